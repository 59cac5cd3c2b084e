import { expect } from 'chai';
import http from 'node:http';
import { makeEvent, postJson, withoutReceivedAt } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { openSse } from '../harness/sse';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

async function publishMany(url: string, topic: string, from: number, count: number, perRequest = 10): Promise<void> {
  for (let i = from; i < from + count; i += perRequest) {
    const events = Array.from({ length: Math.min(perRequest, from + count - i) }, (_, k) => makeEvent(topic, `e${i + k}`));
    const { status } = await postJson(`${url}/publish`, { events });
    expect(status).to.equal(200);
  }
}

describe('GET /events/stream (live tail)', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), {
      STREAM_HEARTBEAT_MS: '100',
      STREAM_SUBSCRIBERS_MAX: '3',
      STREAM_BUFFER_BYTES_MAX: '16384',
    });
  });

  after(async () => {
    await server?.kill('SIGTERM');
  });

  it('sends each event with its seq as the SSE id: backfill after Last-Event-ID, then live', async () => {
    await publishMany(server.url, 'first', 0, 5);
    const client = await openSse(`${server.url}/events/stream`, 2);
    try {
      expect(client.status).to.equal(200);
      expect(client.headers.get('content-type')).to.match(/^text\/event-stream/);
      await waitFor(() => client.events.length === 3, { what: 'backfill' });
      expect(client.events.map((e) => e.id)).to.deep.equal([3, 4, 5]);
      expect(withoutReceivedAt(client.events[0]!.data as object)).to.deep.equal({ seq: 3, ...makeEvent('first', 'e2') });
      await publishMany(server.url, 'first', 5, 2);
      await waitFor(() => client.events.length === 5, { what: 'live events' });
      expect(client.events.map((e) => e.id)).to.deep.equal([3, 4, 5, 6, 7]);
    } finally {
      client.close();
    }
  });

  it('gives a client that reconnects with Last-Event-ID every later event, with no gap and no repeat', async () => {
    const topic = 'reconnect';
    const publishing = publishMany(server.url, topic, 0, 300, 5);
    const seen: number[] = [];
    let last: number | undefined;
    // Connect, read a little, drop the connection, resume: while events keep arriving.
    for (let round = 0; round < 4; round += 1) {
      const client = await openSse(`${server.url}/events/stream?topic=${topic}`, last);
      const target = seen.length + 20;
      await waitFor(() => seen.length + client.events.length >= target, { what: `round ${round}` });
      client.close();
      await client.ended;
      seen.push(...client.events.map((e) => e.id));
      last = seen[seen.length - 1];
    }
    await publishing;
    const client = await openSse(`${server.url}/events/stream?topic=${topic}`, last);
    await waitFor(() => seen.length + client.events.length === 300, { what: 'every event' });
    client.close();
    seen.push(...client.events.map((e) => e.id));
    const ids = seen;
    expect(new Set(ids).size).to.equal(300);
    expect(ids).to.deep.equal([...ids].sort((a, b) => a - b));
    expect(client.events.every((e) => e.data.topic === topic)).to.equal(true);
  });

  it('sends heartbeat comments on an idle stream', async () => {
    const client = await openSse(`${server.url}/events/stream?topic=idle`);
    try {
      await waitFor(() => client.comments.filter((c) => c === 'heartbeat').length >= 2, { what: 'heartbeats' });
    } finally {
      client.close();
    }
  });

  it('answers 503 subscribers_full with Retry-After past STREAM_SUBSCRIBERS_MAX, and 400 for a bad Last-Event-ID', async () => {
    const open = await Promise.all([1, 2, 3].map(() => openSse(`${server.url}/events/stream?topic=full`)));
    try {
      expect(open.map((c) => c.status)).to.deep.equal([200, 200, 200]);
      const res = await fetch(`${server.url}/events/stream?topic=full`);
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.equal('1');
      expect(await res.json()).to.include({ error: 'subscribers_full' });
    } finally {
      for (const c of open) c.close();
    }
    const bad = await fetch(`${server.url}/events/stream`, { headers: { 'last-event-id': 'abc' } });
    expect(bad.status).to.equal(400);
    expect(await bad.json()).to.include({ error: 'invalid_query' });
    // Closed streams free their slots.
    await waitFor(async () => (await openSse(`${server.url}/events/stream?topic=full`).then((c) => (c.close(), c.status))) === 200, {
      what: 'a free slot',
    });
  });

  it('keeps a reader that stops reading exact: it still gets every event once, in order', async () => {
    const topic = 'slow';
    const received: string[] = [];
    const req = http.get(`${server.url}/events/stream?topic=${topic}`);
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    res.pause();
    const big = 'x'.repeat(8000);
    for (let i = 0; i < 400; i += 20) {
      const events = Array.from({ length: 20 }, (_, k) => makeEvent(topic, `s${i + k}`, { big, k: i + k }));
      expect((await postJson(`${server.url}/publish`, { events })).status).to.equal(200);
    }
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => received.push(chunk));
    res.resume();
    const ids = (): number[] => [...received.join('').matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    await waitFor(() => ids().length >= 400, { timeoutMs: 20_000, what: 'all 400 events' });
    req.destroy();
    const seqs = ids();
    expect(seqs).to.have.length(400);
    expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).to.equal(400);
  });
});

describe('GET /events/stream on shutdown', () => {
  it('ends open streams so that SIGTERM exits 0 promptly', async () => {
    const server = await startServerProcess(makeTempDir(), { SHUTDOWN_TIMEOUT_MS: '5000' });
    const client = await openSse(`${server.url}/events/stream`);
    expect(client.status).to.equal(200);
    const started = Date.now();
    const exit = await server.kill('SIGTERM');
    expect(exit.code).to.equal(0);
    expect(Date.now() - started).to.be.lessThan(4000);
    await client.ended;
  });
});
