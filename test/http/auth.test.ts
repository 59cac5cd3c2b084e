import { expect } from 'chai';
import { credentialsOf, scopeForPath } from '../../src/http/auth';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { makeEvent } from '../helpers/events';

const PUBLISH_KEY = 'pub-key-0123456789abcdef';
const READ_KEY = 'read-key-0123456789abcdef';
const BOTH_KEY = 'both-key-0123456789abcdef';

async function call(url: string, options: { method?: string; key?: string; authorization?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method: options.method ?? 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics, docs)
  }
  return { status: res.status, body, headers: res.headers };
}

describe('access control (API keys)', () => {
  describe('scopeForPath', () => {
    const table: Array<[string, string | null]> = [
      ['/publish', 'publish'],
      ['/PUBLISH/', 'publish'],
      ['/events', 'read'],
      ['/events/stream', 'read'],
      ['/stats', 'read'],
      ['/metrics', 'read'],
      ['/anything-else', 'read'],
      ['/health', null],
      ['/Health/', null],
      ['/openapi.json', null],
      ['/docs', null],
    ];
    for (const [path, scope] of table) {
      it(`${path} needs ${scope ?? 'no key'}`, () => {
        expect(scopeForPath(path)).to.equal(scope);
      });
    }
  });

  describe('credentialsOf', () => {
    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    const table: Array<[string, string[] | null]> = [
      ['Bearer k-1', ['k-1']],
      ['bearer k-1', ['k-1']],
      [`Basic ${b64('fluent-bit:k-1')}`, ['k-1']],
      [`Basic ${b64(':k-1')}`, ['k-1']],
      [`Basic ${b64('no-colon')}`, null],
      [`Basic ${b64('user:')}`, null],
      ['Basic not*base64', null],
      [`ApiKey ${b64('id-7:k-1')}`, [b64('id-7:k-1'), 'k-1']],
      ['ApiKey k-1', ['k-1']],
      ['Digest k-1', null],
      ['Bearer k-1 extra', null],
    ];
    for (const [header, keys] of table) {
      it(`reads ${JSON.stringify(header)} as ${JSON.stringify(keys)}`, () => {
        expect(credentialsOf(header)).to.deep.equal(keys);
      });
    }
  });

  describe('without keys', () => {
    let svc: InProcessService;
    before(async () => {
      svc = await startInProcessService();
    });
    after(async () => svc.stop());

    it('is open, as the seed was: publish and read need no key', async () => {
      expect((await call(`${svc.url}/publish`, { method: 'POST', body: makeEvent('auth.open', 'e1') })).status).to.equal(200);
      expect((await call(`${svc.url}/events?topic=auth.open`)).body.count).to.equal(1);
      expect((await call(`${svc.url}/stats`)).status).to.equal(200);
      expect((await call(`${svc.url}/metrics`)).status).to.equal(200);
    });

    it('ignores an Authorization header it has no keys to check against', async () => {
      expect((await call(`${svc.url}/stats`, { key: 'whatever-key-0123456789' })).status).to.equal(200);
    });

    it('logs no access-control warning when listening on loopback only', () => {
      expect(svc.logLines().filter((line) => /access control/.test(line.msg))).to.deep.equal([]);
    });
  });

  describe('with publish and read keys', () => {
    let svc: InProcessService;
    before(async () => {
      svc = await startInProcessService({ API_KEYS_PUBLISH: `${PUBLISH_KEY}, ${BOTH_KEY}`, API_KEYS_READ: `${READ_KEY},${BOTH_KEY}` });
    });
    after(async () => svc.stop());

    it('answers 401 unauthorized with a JSON error and a Bearer challenge when no key is sent', async () => {
      const res = await call(`${svc.url}/publish`, { method: 'POST', body: makeEvent('auth.t', 'a1') });
      expect(res.status).to.equal(401);
      expect(res.body.error).to.equal('unauthorized');
      expect(res.body.message).to.match(/Bearer/);
      expect(res.headers.get('www-authenticate')).to.match(/^Bearer realm="log-aggregator"/);
    });

    it('answers 401 for an unknown key and for a header that is not "Bearer <key>"', async () => {
      for (const authorization of [
        `Bearer ${PUBLISH_KEY}x`,
        `Basic ${Buffer.from('a:b').toString('base64')}`,
        'Bearer',
        `Bearer ${PUBLISH_KEY} extra`,
      ]) {
        const res = await call(`${svc.url}/publish`, { method: 'POST', authorization, body: makeEvent('auth.t', 'a2') });
        expect(res.status, authorization).to.equal(401);
        expect(res.body.error).to.equal('unauthorized');
      }
    });

    it('answers 403 forbidden for a read key on /publish, and writes nothing', async () => {
      const res = await call(`${svc.url}/publish`, { method: 'POST', key: READ_KEY, body: makeEvent('auth.forbidden', 'f1') });
      expect(res.status).to.equal(403);
      expect(res.body).to.deep.include({ error: 'forbidden' });
      expect((await call(`${svc.url}/events?topic=auth.forbidden`, { key: READ_KEY })).body.count).to.equal(0);
    });

    it('answers 403 for a publish key on every read route', async () => {
      for (const path of ['/events', '/stats', '/metrics', '/events/stream']) {
        const res = await call(`${svc.url}${path}`, { key: PUBLISH_KEY });
        expect(res.status, path).to.equal(403);
        expect(res.body.error).to.equal('forbidden');
      }
    });

    it('accepts each key in its own scope, and a key listed in both scopes everywhere', async () => {
      expect((await call(`${svc.url}/publish`, { method: 'POST', key: PUBLISH_KEY, body: makeEvent('auth.ok', 'k1') })).status).to.equal(
        200,
      );
      expect((await call(`${svc.url}/publish`, { method: 'POST', key: BOTH_KEY, body: makeEvent('auth.ok', 'k2') })).status).to.equal(200);
      expect((await call(`${svc.url}/events?topic=auth.ok`, { key: READ_KEY })).body.count).to.equal(2);
      expect((await call(`${svc.url}/stats`, { key: BOTH_KEY })).status).to.equal(200);
      const metrics = await call(`${svc.url}/metrics`, { key: READ_KEY });
      expect(metrics.status).to.equal(200);
      expect(metrics.body).to.match(/logagg_events_accepted_total 2/);
    });

    it('cannot be bypassed by case or a trailing slash in the path', async () => {
      for (const path of ['/PUBLISH', '/publish/', '/Publish/']) {
        const res = await call(`${svc.url}${path}`, { method: 'POST', body: makeEvent('auth.bypass', path) });
        expect(res.status, path).to.equal(401);
      }
      for (const path of ['/STATS', '/events/', '/Metrics']) {
        expect((await call(`${svc.url}${path}`)).status, path).to.equal(401);
      }
    });

    it('keeps /health, /openapi.json and /docs open', async () => {
      for (const path of ['/health', '/openapi.json', '/docs']) {
        expect((await call(`${svc.url}${path}`)).status, path).to.equal(200);
      }
    });

    it('accepts a key sent as the password of Basic, or as ApiKey (plain or base64 id:key), as Elasticsearch outputs send it', async () => {
      const b64 = (text: string): string => Buffer.from(text).toString('base64');
      const schemes = [`Basic ${b64(`fluent-bit:${PUBLISH_KEY}`)}`, `ApiKey ${PUBLISH_KEY}`, `ApiKey ${b64(`key-id:${PUBLISH_KEY}`)}`];
      for (const [i, authorization] of schemes.entries()) {
        const res = await call(`${svc.url}/publish`, { method: 'POST', authorization, body: makeEvent('auth.schemes', `s${i}`) });
        expect(res.status, authorization).to.equal(200);
      }
      const readWithBasic = await call(`${svc.url}/events?topic=auth.schemes`, { authorization: `Basic ${b64(`grafana:${READ_KEY}`)}` });
      expect(readWithBasic.body.count).to.equal(3);
      const forbidden = await call(`${svc.url}/stats`, { authorization: `Basic ${b64(`x:${PUBLISH_KEY}`)}` });
      expect(forbidden.status).to.equal(403);
    });

    it('never writes a key into the log', () => {
      const text = svc.logText();
      expect(text).to.contain('"route":"/publish"');
      for (const key of [PUBLISH_KEY, READ_KEY, BOTH_KEY]) expect(text).not.to.contain(key);
      expect(text.toLowerCase()).not.to.contain('authorization');
    });
  });
});
