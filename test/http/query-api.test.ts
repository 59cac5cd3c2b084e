import { expect } from 'chai';
import http from 'node:http';
import zlib from 'node:zlib';
import { FIXED_LIMITS } from '../../src/config/config';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

interface Stored {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload?: Record<string, unknown>;
}

/**
 * When the events were published (set in `before`, not when the module loads: a long suite
 * runs for many minutes before this file's tests, and relative times like `until=15m` are
 * relative to the server's clock at query time).
 */
let NOW = Date.now();
/** Minutes before NOW, as RFC 3339. */
const ago = (minutes: number) => new Date(NOW - minutes * 60_000).toISOString();

const eventsAtNow = () => [
  { topic: 'web', event_id: 'w1', timestamp: ago(170), source: 'nginx', payload: { level: 'info', msg: 'GET /index 200', status: 200 } },
  {
    topic: 'db',
    event_id: 'd1',
    timestamp: ago(90),
    source: 'pg',
    payload: { level: 'error', msg: 'Connection RESET by peer', user: { id: 123 } },
  },
  { topic: 'web', event_id: 'w2', timestamp: ago(50), source: 'nginx', payload: { level: 'error', msg: 'upstream timeout', status: 504 } },
  {
    topic: 'jobs',
    event_id: 'j1',
    timestamp: ago(20),
    source: 'cron',
    payload: { level: 'info', msg: 'connection reset, retrying', user: { id: '123' } },
  },
  {
    topic: 'db',
    event_id: 'd2',
    timestamp: ago(5),
    source: 'pg',
    payload: { level: 'warn', msg: 'slow query', ok: true, user: { id: 124 } },
  },
];
let EVENTS = eventsAtNow();

describe('GET /events query parameters and GET /events/histogram (real server)', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir());
    NOW = Date.now();
    EVENTS = eventsAtNow();
    const res = await fetch(`${server.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: EVENTS }),
    });
    expect(res.status).to.equal(200);
    await waitFor(async () => (await ids('')).length === EVENTS.length, { what: 'events indexed' });
  });
  after(async () => {
    await server?.kill('SIGTERM');
  });

  async function get(path: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${server.url}${path}`);
    return { status: res.status, body: await res.json() };
  }

  async function ids(query: string): Promise<string[]> {
    const { status, body } = await get(`/events?${query}`);
    expect(status, JSON.stringify(body)).to.equal(200);
    return (body.events as Stored[]).map((e) => e.event_id);
  }

  it('q: every word must appear, case-insensitively, in topic, source, event_id or a payload value', async () => {
    expect(await ids('q=connection%20reset')).to.deep.equal(['d1', 'j1']);
    expect(await ids('q=RESET%20pg')).to.deep.equal(['d1']);
    expect(await ids('q=%22reset%20by%22')).to.deep.equal(['d1']);
    expect(await ids('q=504')).to.deep.equal(['w2']);
    expect(await ids('q=w2')).to.deep.equal(['w2']);
    // Keys are not values.
    expect(await ids('q=level')).to.deep.equal([]);
  });

  it('payload.<path>=: equality on a payload field, numbers and booleans written as text, AND-combined', async () => {
    expect(await ids('payload.level=error')).to.deep.equal(['d1', 'w2']);
    expect(await ids('payload.user.id=123')).to.deep.equal(['d1', 'j1']);
    expect(await ids('payload.user.id=123&payload.level=error')).to.deep.equal(['d1']);
    expect(await ids('payload.ok=true')).to.deep.equal(['d2']);
    expect(await ids('payload.status=504&topic=web')).to.deep.equal(['w2']);
    expect(await ids('payload.nothing=here')).to.deep.equal([]);
  });

  it('topic may be given several times (any of them); source and the topic field of the answer', async () => {
    expect(await ids('topic=web&topic=jobs')).to.deep.equal(['w1', 'w2', 'j1']);
    expect((await get('/events?topic=web&topic=jobs')).body.topic).to.equal(null);
    expect((await get('/events?topic=web')).body.topic).to.equal('web');
    expect(await ids('topic=db&source=pg&payload.level=warn')).to.deep.equal(['d2']);
  });

  it('since/until take relative times before now (15m, 2h, 7d) as well as RFC 3339', async () => {
    expect(await ids('since=1h')).to.deep.equal(['w2', 'j1', 'd2']);
    expect(await ids('since=2h&until=30m')).to.deep.equal(['d1', 'w2']);
    expect(await ids('since=7d&until=now')).to.have.length(5);
    expect(await ids(`since=${encodeURIComponent(ago(60))}&until=15m`)).to.deep.equal(['w2', 'j1']);
  });

  it('order=desc gives the newest first, and next_cursor older pages, with every filter', async () => {
    expect(await ids('order=desc')).to.deep.equal(['d2', 'j1', 'w2', 'd1', 'w1']);
    const first = await get('/events?order=desc&limit=2&q=e');
    expect(first.body.events.map((e: Stored) => e.event_id)).to.deep.equal(['d2', 'j1']);
    const second = await get(`/events?order=desc&limit=2&q=e&after=${first.body.next_cursor}`);
    expect(second.body.events.map((e: Stored) => e.event_id)).to.deep.equal(['w2', 'd1']);
    const third = await get(`/events?order=desc&limit=2&q=e&after=${second.body.next_cursor}`);
    expect(third.body.events.map((e: Stored) => e.event_id)).to.deep.equal(['w1']);
    expect(third.body.next_cursor).to.equal(null);
  });

  it('GET /events/histogram counts the same filter in equal buckets that add up to the matches', async () => {
    const { status, body } = await get('/events/histogram?since=4h&until=now&buckets=4');
    expect(status).to.equal(200);
    expect(body.interval_ms).to.equal(3_600_000);
    expect(body.buckets).to.have.length(4);
    expect(body.buckets.map((b: { count: number }) => b.count)).to.deep.equal([0, 1, 1, 3]);
    expect(body.buckets[0].start).to.equal(new Date(Date.parse(body.since)).toISOString());
    const filtered = await get('/events/histogram?payload.level=error&topic=web&topic=db');
    expect(filtered.body.total).to.equal(2);
    expect(filtered.body.buckets.reduce((sum: number, b: { count: number }) => sum + b.count, 0)).to.equal(2);
    expect(filtered.body.buckets).to.have.length(FIXED_LIMITS.histogramBucketsDefault);
    // Without since/until the range is that of the matching events.
    expect(Date.parse(filtered.body.since)).to.equal(Date.parse(ago(90)));
    expect(Date.parse(filtered.body.until)).to.equal(Date.parse(ago(50)) + 1);
    const none = await get('/events/histogram?q=nothing-matches-this');
    expect(none.body).to.deep.include({ total: 0, buckets: [] });
  });

  const BAD: Array<[string, string]> = [
    ['/events?order=newest', 'order'],
    ['/events?since=yesterday', 'since'],
    ['/events?until=15x', 'until'],
    ['/events?since=-5m', 'since'],
    ['/events?q=a&q=b', 'q'],
    [`/events?q=${'x'.repeat(FIXED_LIMITS.queryTextLengthMax + 1)}`, 'q'],
    ['/events?payload.=x', 'payload.'],
    ['/events?payload.a..b=x', 'payload.a..b'],
    [`/events?${Array.from({ length: FIXED_LIMITS.queryTopicsMax + 1 }, (_, i) => `topic=t${i}`).join('&')}`, 'topic'],
    ['/events?topic=a&topic=', 'topic'],
    ['/events/histogram?buckets=0', 'buckets'],
    [`/events/histogram?buckets=${FIXED_LIMITS.histogramBucketsMax + 1}`, 'buckets'],
    ['/events/histogram?buckets=ten', 'buckets'],
    ['/events/histogram?since=1h&until=2h', 'until'],
    ['/events/histogram?since=soon', 'since'],
    ['/events/stream?q=a&q=b', 'q'],
  ];
  for (const [path, parameter] of BAD) {
    it(`answers 400 invalid_query naming ${parameter} for ${path.slice(0, 50)}`, async () => {
      const { status, body } = await get(path);
      expect(status).to.equal(400);
      expect(body.error).to.equal('invalid_query');
      expect(body.details.map((d: { path: string }) => d.path)).to.include(parameter);
    });
  }

  it('gzips answers (over 1 KiB) for clients that accept it', async () => {
    const answer = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      http
        .get(`${server.url}/events/histogram?buckets=100`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
        })
        .on('error', reject);
    });
    expect(answer.encoding).to.equal('gzip');
    expect(JSON.parse(zlib.gunzipSync(answer.body).toString()).total).to.equal(EVENTS.length);
  });

  it('does not compress the live tail, which delivers each new event at once, filtered', async () => {
    const received: string[] = [];
    let encoding: string | undefined = 'unset';
    const request = http.get(
      `${server.url}/events/stream?payload.level=error&after=${EVENTS.length}`,
      { headers: { 'accept-encoding': 'gzip' } },
      (res) => {
        encoding = res.headers['content-encoding'];
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => received.push(chunk));
      },
    );
    try {
      await waitFor(() => received.join('').includes('retry:'), { what: 'the stream to open' });
      const events = [
        { topic: 'web', event_id: 'live-info', timestamp: ago(0), source: 'nginx', payload: { level: 'info' } },
        { topic: 'web', event_id: 'live-error', timestamp: ago(0), source: 'nginx', payload: { level: 'error' } },
      ];
      const res = await fetch(`${server.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
      });
      expect(res.status).to.equal(200);
      const acknowledged = Date.now();
      await waitFor(() => received.join('').includes('"live-error"'), { timeoutMs: 10_000, intervalMs: 5, what: 'the live event' });
      console.log(`      live tail (gzip accepted): event received ${Date.now() - acknowledged} ms after the publish was acknowledged`);
      expect(encoding).to.equal(undefined);
      expect(received.join('')).not.to.contain('live-info');
    } finally {
      request.destroy();
    }
  });

  it('serves the page at / and its files from the installed packages, nothing from elsewhere', async () => {
    const res = await fetch(`${server.url}/`, { headers: { accept: 'text/html' } }); // what a browser asks for; other clients get the Elasticsearch banner
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/html/);
    const html = await res.text();
    expect(html).not.to.match(/(src|href)="(https?:)?\/\//i);
    const files = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]!);
    expect(files).to.include.members(['/ui/app.js', '/ui/style.css', '/ui/uPlot.iife.min.js', '/ui/uPlot.min.css']);
    for (const file of files) expect((await fetch(`${server.url}${file}`)).status, file).to.equal(200);
    expect((await fetch(`${server.url}/ui/../package.json`)).status).to.equal(404);
    expect((await fetch(`${server.url}/ui/index.html.bak`)).status).to.equal(404);
  });
});
