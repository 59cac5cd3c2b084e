import { expect } from 'chai';
import { fetchAllEvents, makeEvent, postJson } from '../helpers/events';
import { rawConnect } from '../helpers/raw-http';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

describe('GET /events pages bounded in bytes (PAGE_BYTES_MAX, real server process)', function () {
  this.timeout(30_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), { PAGE_BYTES_MAX: String(64 * 1024), PAYLOAD_BYTES_MAX: String(256 * 1024) });
    const events = Array.from({ length: 10 }, (_, i) => makeEvent('page.a', `e-${i}`, { pad: 'p'.repeat(20 * 1024) }));
    expect((await postJson(`${server.url}/publish`, { events })).body.accepted).to.equal(10);
  });

  after(async () => {
    await server.kill('SIGTERM');
  });

  it('ends a page before its events pass PAGE_BYTES_MAX, with next_cursor where it stopped', async () => {
    const res = await fetch(`${server.url}/events?topic=page.a&limit=100`);
    const text = await res.text();
    expect(Buffer.byteLength(text)).to.be.below(64 * 1024 + 1024);
    const page = JSON.parse(text) as { count: number; events: Array<{ seq: number }>; next_cursor: string | null };
    expect(page.count).to.equal(3);
    expect(page.next_cursor).to.equal(String(page.events[2]!.seq));
    expect((await fetchAllEvents(server.url, 'page.a')).map((e) => e.event_id)).to.deep.equal(
      Array.from({ length: 10 }, (_, i) => `e-${i}`),
    );
  });

  it('answers a page of up to 32k characters in one write with a Content-Length, a longer one in chunks', async () => {
    // Not compressed (fetch asks for gzip by default, and compression sends that chunked).
    const identity = { headers: { 'Accept-Encoding': 'identity' } };
    const small = await fetch(`${server.url}/events?topic=page.a&limit=1`, identity);
    const smallText = await small.text();
    expect(small.headers.get('content-length')).to.equal(String(Buffer.byteLength(smallText)));
    expect(small.headers.get('transfer-encoding')).to.equal(null);
    expect((JSON.parse(smallText) as { count: number }).count).to.equal(1);
    const large = await fetch(`${server.url}/events?topic=page.a&limit=3`, identity);
    expect(large.headers.get('transfer-encoding')).to.equal('chunked');
    const page = (await large.json()) as { count: number; events: Array<{ event_id: string }> };
    expect(page.events.map((e) => e.event_id)).to.deep.equal(['e-0', 'e-1', 'e-2']);
  });

  it('still returns one event larger than PAGE_BYTES_MAX, alone on its page', async () => {
    expect(
      (await postJson(`${server.url}/publish`, makeEvent('page.b', 'big', { pad: 'q'.repeat(60 * 1024), more: 'r'.repeat(10 * 1024) })))
        .status,
    ).to.equal(200);
    expect((await postJson(`${server.url}/publish`, makeEvent('page.b', 'small'))).status).to.equal(200);
    const page = (await (await fetch(`${server.url}/events?topic=page.b`)).json()) as { count: number; next_cursor: string | null };
    expect(page.count).to.equal(1);
    expect(page.next_cursor).to.not.equal(null);
  });
});

describe('GET /events with slow readers (real server process)', function () {
  this.timeout(90_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), {
      PAGE_BYTES_MAX: String(1024 * 1024),
      PAYLOAD_BYTES_MAX: String(64 * 1024),
      BODY_BYTES_MAX: String(8 * 1024 * 1024),
    });
    for (let batch = 0; batch < 5; batch += 1) {
      const events = Array.from({ length: 100 }, (_, i) => makeEvent('slow.a', `e-${batch}-${i}`, { pad: 's'.repeat(32 * 1024) }));
      expect((await postJson(`${server.url}/publish`, { events })).body.accepted).to.equal(100);
    }
  });

  after(async () => {
    await server.kill('SIGTERM');
  });

  /** The server's resident memory, from its own /metrics. */
  async function residentBytes(): Promise<number> {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]);
  }

  it('pins a bounded page per client that does not read, and keeps answering /health', async () => {
    const before = await residentBytes();
    const sockets = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const conn = await rawConnect(server.port, 'GET /events?topic=slow.a&limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n');
        conn.socket.pause();
        return conn;
      }),
    );
    // Each socket was answered at least its status line: the page is being sent, not read.
    await waitFor(() => sockets.every((conn) => conn.socket.readableLength > 0 || conn.received() !== ''), {
      what: 'the answers to start',
    });
    expect((await fetch(`${server.url}/health`)).status).to.equal(200);
    const growth = (await residentBytes()) - before;
    for (const conn of sockets) conn.socket.destroy();
    // 16 MB of events per unbounded page, times 6 clients, would be hundreds of MB.
    expect(growth, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`).to.be.below(64 * 1024 * 1024);
  });
});
