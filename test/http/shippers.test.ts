import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { ELASTIC_BANNER, elasticBannerHandler } from '../../src/http/shippers';

describe('elasticBannerHandler (GET / for Elasticsearch clients)', () => {
  const app = express();
  app.get('/', elasticBannerHandler(), (_req, res) => {
    res.type('text/html').send('<p>the page</p>');
  });

  it('answers an Elasticsearch client (a JSON Accept, or none) with the banner and X-Elastic-Product', async () => {
    for (const accept of ['application/json', 'application/vnd.elasticsearch+json; compatible-with=8', '*/*', undefined]) {
      const req = request(app).get('/');
      if (accept !== undefined) req.set('accept', accept);
      const res = await req;
      expect(res.status, String(accept)).to.equal(200);
      expect(res.headers['x-elastic-product']).to.equal('Elasticsearch');
      expect(res.body).to.deep.equal(ELASTIC_BANNER);
    }
  });

  it('passes a browser (Accept naming text/html) on to the page', async () => {
    const res = await request(app).get('/').set('accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    expect(res.text).to.equal('<p>the page</p>');
    expect(res.headers['x-elastic-product']).to.equal(undefined);
  });
});
