import { Writable } from 'node:stream';
import { expect } from 'chai';
import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { digestApiKey } from '../../src/config/config';
import { createApp } from '../../src/http/app';
import { buildOpenApiDocument } from '../../src/http/openapi';
import { RouteIndex, type RoutePattern } from '../../src/http/route-index';
import { ROUTE_TABLE, type RouteSpec } from '../../src/http/routes';
import { Aggregator } from '../../src/ingest/aggregator';
import { testConfig } from '../helpers/service';

type Json = Record<string, any>;

describe('RouteIndex', () => {
  const routes: RoutePattern[] = [
    { method: 'POST', path: '/publish', scope: 'publish' },
    { method: 'GET', path: '/health', scope: null, logging: 'quiet' },
    { method: 'GET', path: '/', scope: null },
    { method: 'POST', path: '/', scope: 'publish' },
    { method: 'POST', path: '/:index/_bulk', scope: 'publish' },
    { method: 'GET', path: '/ui/*asset', scope: null },
  ];
  const index = new RouteIndex(routes);

  it('matches paths as express does: case-insensitive, a trailing slash ignored, :name and *name', () => {
    expect(index.find('POST', '/PUBLISH/')?.path).to.equal('/publish');
    expect(index.find('POST', '/logs-2025/_bulk')?.path).to.equal('/:index/_bulk');
    expect(index.find('GET', '/ui/css/site.css')?.path).to.equal('/ui/*asset');
    expect(index.find('POST', '/a/b/_bulk')).to.equal(undefined);
    expect(index.find('GET', '/ui')).to.equal(undefined);
    expect(index.find('GET', '/publishx')).to.equal(undefined);
  });

  it('serves HEAD by the GET entry, and never throws on a malformed %-escape', () => {
    expect(index.find('HEAD', '/health')?.path).to.equal('/health');
    expect(index.isQuiet('HEAD', '/Health/')).to.equal(true);
    expect(index.find('GET', '/ui/%E0%A4%A')?.path).to.equal('/ui/*asset');
  });

  it('gives each request the scope of its entry, and read to anything not in the table', () => {
    expect(index.scopeFor('GET', '/')).to.equal(null);
    expect(index.scopeFor('POST', '/')).to.equal('publish');
    expect(index.scopeFor('POST', '/x/_bulk')).to.equal('publish');
    expect(index.scopeFor('GET', '/ui/app.js')).to.equal(null);
    // Another method on a known path (a 405) needs the first scope the path's entries name.
    expect(index.scopeFor('GET', '/publish')).to.equal('publish');
    expect(index.scopeFor('DELETE', '/')).to.equal('publish');
    expect(index.scopeFor('POST', '/health')).to.equal(null);
    for (const path of ['/nowhere', '/publish/x', '/health/x', '/ui']) expect(index.scopeFor('GET', path), path).to.equal('read');
  });

  it('labels a request by its table pattern (bounded), and lists the methods of a path for Allow', () => {
    expect(index.label('/logs-7/_bulk')).to.equal('/:index/_bulk');
    expect(index.label('/nowhere')).to.equal(null);
    expect(index.allowedMethods('/')).to.deep.equal(['GET', 'POST']);
    expect(index.allowedMethods('/nowhere')).to.deep.equal([]);
  });

  it('refuses a table that lists one (method, path) twice', () => {
    expect(() => new RouteIndex([...routes, { method: 'POST', path: '/Publish/', scope: 'read' }])).to.throw(/listed twice/);
  });
});

describe('an app built from a route table', () => {
  const PUBLISH_KEY = 'publish-key-0123456789abcdef';
  const READ_KEY = 'read-key-0123456789abcdef';
  /** Routes of the kinds the table must carry: a raw body, a path parameter, a wildcard, an Accept-negotiated page. */
  const extra: RouteSpec[] = [
    {
      method: 'POST',
      path: '/:index/_bulk',
      scope: 'publish',
      operationId: 'bulk',
      summary: 'A raw NDJSON body',
      requestBody: { content: { 'application/x-ndjson': { schema: { type: 'string' } } } },
      answers: { '200': { description: 'Lines counted.' } },
      errors: ['body_too_large'],
      handlers: () => [
        express.text({ type: 'application/x-ndjson', limit: 1024 }),
        (req, res) => {
          res.json({
            index: req.params.index,
            lines: String(req.body)
              .split('\n')
              .filter((l) => l !== '').length,
          });
        },
      ],
    },
    {
      method: 'GET',
      path: '/',
      scope: null,
      operationId: 'home',
      summary: 'An HTML page or a JSON banner, by Accept',
      answers: { '200': { description: 'The page or the banner.' } },
      errors: [],
      handlers: () => [
        (req, res) => {
          if (req.accepts(['text/html', 'application/json']) === 'text/html') res.type('text/html').send('<p>page</p>');
          else res.json({ name: 'banner' });
        },
      ],
    },
    {
      method: 'GET',
      path: '/ui/*asset',
      scope: null,
      operationId: 'uiAsset',
      summary: 'Static assets',
      answers: { '200': { description: 'A file.' } },
      errors: [],
      openapi: false,
      handlers: () => [
        (req, res) => {
          res.type('text/css').send(`/* ${(req.params as { asset: string[] }).asset.join('/')} */`);
        },
      ],
    },
  ];
  // The extra entries stand in for the service's own where they share a (method, path), and
  // for the page's assets, whose /ui/*file would match the stand-in's /ui/*asset first.
  const replaced = (spec: RouteSpec): boolean =>
    spec.path.startsWith('/ui/') || extra.some((e) => e.method === spec.method && e.path === spec.path);
  const table = [...ROUTE_TABLE.filter((spec) => !replaced(spec)), ...extra];
  let app: express.Express;
  let logText = '';
  before(() => {
    const config = testConfig({ API_KEYS_PUBLISH: PUBLISH_KEY, API_KEYS_READ: READ_KEY });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logText += chunk.toString();
        callback();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const aggregator = new Aggregator({ config, logger });
    const apiKeyDigests = { publish: [digestApiKey(PUBLISH_KEY)], read: [digestApiKey(READ_KEY)] };
    app = createApp(aggregator, config, logger, { apiKeyDigests, routes: table });
  });

  it('routes a raw body through the parser its entry names, behind the entry scope', async () => {
    const body = '{"index":{}}\n{"message":"a"}\n';
    const denied = await request(app).post('/logs/_bulk').set('content-type', 'application/x-ndjson').send(body);
    expect(denied.status).to.equal(401);
    const forbidden = await request(app)
      .post('/logs/_bulk')
      .set('authorization', `Bearer ${READ_KEY}`)
      .set('content-type', 'application/x-ndjson')
      .send(body);
    expect(forbidden.status).to.equal(403);
    const ok = await request(app)
      .post('/logs/_bulk')
      .set('authorization', `Bearer ${PUBLISH_KEY}`)
      .set('content-type', 'application/x-ndjson')
      .send(body);
    expect(ok.status).to.equal(200);
    expect(ok.body).to.deep.equal({ index: 'logs', lines: 2 });
    const big = await request(app)
      .post('/logs/_bulk')
      .set('authorization', `Bearer ${PUBLISH_KEY}`)
      .set('content-type', 'application/x-ndjson')
      .send('x'.repeat(2000));
    expect(big.status).to.equal(413);
    expect(big.body.error).to.equal('body_too_large');
  });

  it('serves wildcard paths and content negotiation, open as their entries say', async () => {
    const css = await request(app).get('/ui/css/site.css');
    expect(css.status).to.equal(200);
    expect(css.text).to.equal('/* css/site.css */');
    expect((await request(app).get('/').set('accept', 'text/html')).text).to.equal('<p>page</p>');
    expect((await request(app).get('/').set('accept', 'application/json')).body).to.deep.equal({ name: 'banner' });
  });

  it('keeps deny by default: a path not in the table needs a read key, then answers 404', async () => {
    expect((await request(app).get('/nowhere')).status).to.equal(401);
    const missing = await request(app).get('/nowhere').set('authorization', `Bearer ${READ_KEY}`);
    expect(missing.status).to.equal(404);
    expect(missing.body.error).to.equal('not_found');
    const wrong = await request(app).delete('/ui/x.css');
    expect(wrong.status).to.equal(405);
    expect(wrong.headers.allow).to.equal('GET');
  });

  it('documents the parameterised route with its path parameter and leaves static assets out', () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- Json is any: the cast gives the document's paths a type
    const document = buildOpenApiDocument(testConfig(), { routes: table }) as Json;
    const bulk = document.paths['/{index}/_bulk'].post;
    expect(bulk.parameters).to.deep.equal([{ name: 'index', in: 'path', required: true, schema: { type: 'string' } }]);
    expect(Object.keys(bulk.responses)).to.include.members(['200', '401', '403', '413']);
    expect(Object.keys(document.paths).some((path) => path.startsWith('/ui'))).to.equal(false);
  });

  it('logs each request with its table pattern as the route, never the raw path', async () => {
    await request(app)
      .post('/secret-index/_bulk')
      .set('authorization', `Bearer ${PUBLISH_KEY}`)
      .set('content-type', 'application/x-ndjson')
      .send('{}\n');
    const lines = logText
      .split('\n')
      .filter((line) => line.includes('"route"'))
      .map((line) => JSON.parse(line) as Json);
    expect(lines.map((line) => line.route)).to.include('/:index/_bulk');
    expect(lines.map((line) => line.route)).to.include('/ui/*asset');
  });
});
