import { expect } from 'chai';
import { makeEvent } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { waitFor } from '../../src/cli/wait';
import { ROUTE_TABLE } from '../../src/http/routes';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request logs', () => {
  let svc: InProcessService;
  before(async () => {
    svc = await startInProcessService();
  });
  after(async () => svc.stop());

  /** The one request line logged for this request id. */
  async function lineFor(requestId: string): Promise<Record<string, any>> {
    const lines = await waitFor(() => {
      const found = svc.logLines().filter((line) => line.request_id === requestId);
      return found.length > 0 ? found : null;
    });
    expect(lines, `log lines for ${requestId}`).to.have.length(1);
    return lines[0]!;
  }

  it('writes one structured line per request: method, route, status, duration and request id', async () => {
    const res = await fetch(`${svc.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'client-id-42' },
      body: JSON.stringify(makeEvent('log.t', 'e1')),
    });
    expect(res.status).to.equal(200);
    expect(res.headers.get('x-request-id')).to.equal('client-id-42');
    const line = await lineFor('client-id-42');
    // debug: an ingest route (the next tests); this service logs at debug.
    expect(line).to.deep.include({ level: 20, route: '/publish', msg: line.msg });
    expect(line.req).to.deep.equal({ method: 'POST', path: '/publish' });
    expect(line.res).to.deep.equal({ status: 200 });
    expect(line.responseTime).to.be.a('number').and.at.least(0);
    expect(line.msg).to.match(/^POST \/publish 200 \d+ms$/);
  });

  it('generates a request id when the client sent none or an unusable one, and echoes it', async () => {
    for (const sent of [undefined, 'has spaces in it', 'x'.repeat(129), 'quote"id']) {
      const headers: Record<string, string> = sent === undefined ? {} : { 'x-request-id': sent };
      const res = await fetch(`${svc.url}/stats`, { headers });
      await res.arrayBuffer();
      const id = res.headers.get('x-request-id')!;
      expect(id, String(sent)).to.match(UUID);
      expect((await lineFor(id)).route).to.equal('/stats');
    }
  });

  it('logs the matched route, never the query string', async () => {
    const res = await fetch(`${svc.url}/events?topic=private-topic&limit=5`, { headers: { 'x-request-id': 'query-1' } });
    await res.arrayBuffer();
    const line = await lineFor('query-1');
    expect(line.route).to.equal('/events');
    expect(line.req.path).to.equal('/events');
    expect(JSON.stringify(line)).not.to.contain('private-topic');
  });

  it('adds the error code to error answers, at warn for 4xx', async () => {
    const res = await fetch(`${svc.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'bad-1' },
      body: '{"topic":',
    });
    await res.arrayBuffer();
    const line = await lineFor('bad-1');
    expect(line).to.deep.include({ level: 40, route: '/publish', error_code: 'invalid_json' });
    expect(line.res.status).to.equal(400);
    const missing = await fetch(`${svc.url}/nowhere/at/all`, { headers: { 'x-request-id': 'missing-1' } });
    await missing.arrayBuffer();
    expect(await lineFor('missing-1')).to.deep.include({ route: '(unmatched)', error_code: 'not_found' });
  });

  it('logs successful probes (/health, /metrics) and ingest requests at debug only, other routes at info', async () => {
    for (const path of ['/health', '/metrics']) {
      const res = await fetch(`${svc.url}${path}`, { headers: { 'x-request-id': `probe${path.replace('/', '-')}` } });
      await res.arrayBuffer();
      expect((await lineFor(`probe${path.replace('/', '-')}`)).level, path).to.equal(20);
    }
    const loki = await fetch(`${svc.url}/loki/api/v1/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'loki-1' },
      body: JSON.stringify({ streams: [{ stream: { service_name: 'log.t' }, values: [['1761213600123000000', 'one line']] }] }),
    });
    await loki.arrayBuffer();
    expect(loki.status).to.equal(204);
    expect(await lineFor('loki-1')).to.deep.include({ level: 20, route: '/loki/api/v1/push' });
    const stats = await fetch(`${svc.url}/stats`, { headers: { 'x-request-id': 'stats-1' } });
    await stats.arrayBuffer();
    expect((await lineFor('stats-1')).level).to.equal(30);
  });

  it('marks every route that publishers and shippers push events to as ingest, and no other', () => {
    const ingest = ROUTE_TABLE.filter((route) => route.logging === 'ingest').map((route) => `${route.method} ${route.path}`);
    const pushing = ROUTE_TABLE.filter((route) => route.method === 'POST' && route.scope === 'publish').map(
      (route) => `${route.method} ${route.path}`,
    );
    expect(ingest).to.deep.equal(pushing);
    expect(ingest).to.include.members(['POST /publish', 'POST /v1/logs', 'POST /loki/api/v1/push', 'POST /_bulk']);
  });
});

describe('request logs at the default LOG_LEVEL=info', () => {
  let svc: InProcessService;
  before(async () => {
    svc = await startInProcessService({ LOG_LEVEL: 'info' });
  });
  after(async () => svc.stop());

  it('writes no line for a successful publish, a warn line for a failed one, an info line for a read', async () => {
    const ok = await fetch(`${svc.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'quiet-ok' },
      body: JSON.stringify(makeEvent('log.t', 'q1')),
    });
    expect(ok.status).to.equal(200);
    await ok.arrayBuffer();
    const bad = await fetch(`${svc.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'quiet-bad' },
      body: '{"topic":',
    });
    await bad.arrayBuffer();
    const read = await fetch(`${svc.url}/events?topic=log.t`, { headers: { 'x-request-id': 'quiet-read' } });
    await read.arrayBuffer();
    // Lines are written in the order the answers finished: once the read's is there, the others would be too.
    const lines = await waitFor(() => {
      const found = svc.logLines().filter((line) => String(line.request_id ?? '').startsWith('quiet-'));
      return found.some((line) => line.request_id === 'quiet-read') ? found : null;
    });
    expect(lines.map((line) => [line.request_id, line.level])).to.deep.equal([
      ['quiet-bad', 40],
      ['quiet-read', 30],
    ]);
  });
});
