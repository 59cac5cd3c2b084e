import { expect } from 'chai';
import { fetchAllEvents, makeEvent, postJson } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../helpers/server-process';
import { makeTempDir } from '../helpers/temp-dir';

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
    expect((await fetchAllEvents(server.url, 'page.a')).map((e) => e.event_id)).to.deep.equal(Array.from({ length: 10 }, (_, i) => `e-${i}`));
  });

  it('still returns one event larger than PAGE_BYTES_MAX, alone on its page', async () => {
    expect((await postJson(`${server.url}/publish`, makeEvent('page.b', 'big', { pad: 'q'.repeat(60 * 1024), more: 'r'.repeat(10 * 1024) }))).status).to.equal(200);
    expect((await postJson(`${server.url}/publish`, makeEvent('page.b', 'small'))).status).to.equal(200);
    const page = (await (await fetch(`${server.url}/events?topic=page.b`)).json()) as { count: number; next_cursor: string | null };
    expect(page.count).to.equal(1);
    expect(page.next_cursor).to.not.equal(null);
  });
});
