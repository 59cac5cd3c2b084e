import path from 'node:path';
import { expect } from 'chai';
import { fetchAllEvents, makeEvent, postJson } from '../helpers/events';
import { mountSmallFs, type SmallFs } from '../helpers/small-fs';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** Waits until /health reports `status`, with the server's output in the error otherwise. */
async function waitForHealth(server: ServerProcess, status: string): Promise<number> {
  return waitFor(
    async () => {
      const res = await fetch(`${server.url}/health`);
      return ((await res.json()) as { status: string }).status === status ? res.status : 0;
    },
    { timeoutMs: 30_000, what: `/health to say ${status}` },
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${server.output()}`);
  });
}

describe('a full disk across restarts (real server process, tmpfs)', function () {
  this.timeout(90_000);
  let fsys: SmallFs;
  let server: ServerProcess | null = null;

  beforeEach(function () {
    const mounted = mountSmallFs(8 * 1024 * 1024);
    if ('skipReason' in mounted) {
      console.log(`      skipped: ${mounted.skipReason}`);
      this.skip();
    }
    fsys = mounted;
  });

  afterEach(async () => {
    await server?.kill('SIGKILL');
    server = null;
    fsys?.unmount();
  });

  it('starts read-only while full: reads served, publishes 503 log_no_space, writes resume by themselves', async () => {
    server = await startServerProcess(fsys.dir);
    for (let i = 0; i < 20; i += 1)
      expect((await postJson(`${server.url}/publish`, makeEvent('full.a', `e-${i}`, { pad: 'x'.repeat(2000) }))).status).to.equal(200);
    expect((await server.kill('SIGTERM')).code).to.equal(0);
    fsys.fill();

    server = await startServerProcess(fsys.dir, {}, { waitReady: false });
    expect(await waitForHealth(server, 'no_space')).to.equal(503);
    const read = await fetchAllEvents(server.url, 'full.a').catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}${server!.output()}`);
    });
    expect(read.length).to.equal(20);
    const refused = await postJson(`${server.url}/publish`, makeEvent('full.a', 'late'));
    expect(refused.status).to.equal(503);
    expect(refused.body.error).to.equal('log_no_space');
    expect(refused.headers.get('retry-after')).to.equal('1');
    // Expected 503s: one warn line per code and window, no stack, every answer counted.
    for (let i = 0; i < 30; i += 1)
      expect((await postJson(`${server.url}/publish`, makeEvent('full.a', `late-${i}`))).status).to.equal(503);
    const lines = server
      .output()
      .split('\n')
      .filter((line) => line.includes('"error_code":"log_no_space"'));
    expect(lines.length, lines.join('\n')).to.be.within(1, 4);
    for (const line of lines) expect(JSON.parse(line)).to.deep.include({ level: 40 }).and.not.to.have.property('err');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/logagg_expected_errors_total\{code="log_no_space"\} (\d+)/.exec(metrics)?.[1])).to.equal(31);

    fsys.free();
    expect(await waitForHealth(server, 'healthy')).to.equal(200);
    expect((await postJson(`${server.url}/publish`, makeEvent('full.a', 'late'))).body.accepted).to.equal(1);
    expect((await postJson(`${server.url}/publish`, makeEvent('full.a', 'e-3', { pad: 'x'.repeat(2000) }))).body.duplicates).to.equal(1);
    expect((await fetchAllEvents(server.url, 'full.a')).length).to.equal(21);
    expect(server.output()).to.contain('recovery: the disk is full');
  });

  it('stops cleanly on SIGTERM while start-up waits for space', async () => {
    server = await startServerProcess(fsys.dir);
    expect((await postJson(`${server.url}/publish`, makeEvent('full.d', 'e-1'))).status).to.equal(200);
    expect((await server.kill('SIGTERM')).code).to.equal(0);
    fsys.fill();
    server = await startServerProcess(fsys.dir, {}, { waitReady: false });
    expect(await waitForHealth(server, 'no_space')).to.equal(503);
    const exit = await server.kill('SIGTERM');
    expect(exit.code, server.output()).to.equal(0);
    expect(server.output()).not.to.contain('shutdown bound passed');
  });

  it('exits non-zero on SIGTERM when the index cannot take what the log holds, saying so, and loses nothing', async () => {
    const dataDir = makeTempDir();
    const env = { DATABASE_PATH: path.join(fsys.dir, 'index.db') };
    server = await startServerProcess(dataDir, env);
    fsys.fill();
    for (let i = 0; i < 30; i += 1)
      expect((await postJson(`${server.url}/publish`, makeEvent('full.b', `e-${i}`, { pad: 'y'.repeat(4000) }))).status).to.equal(200);
    await waitFor(
      async () => ((await (await fetch(`${server!.url}/health`)).json()) as { index: { error: string | null } }).index.error !== null,
      { what: 'the index to fail' },
    );
    const exit = await server.kill('SIGTERM');
    expect(exit.code, server.output()).to.not.equal(0);
    expect(server.output()).to.match(/shutdown: could not index \d+ logged events/);

    fsys.free();
    server = await startServerProcess(dataDir, env);
    expect((await fetchAllEvents(server.url, 'full.b')).map((e) => e.event_id)).to.deep.equal(
      Array.from({ length: 30 }, (_, i) => `e-${i}`),
    );
  });

  it('says 503 backlog_full on /health while the backlog refuses writes, and still answers a retry of duplicates', async () => {
    const env = { DATABASE_PATH: path.join(fsys.dir, 'index.db'), QUEUE_MAX_SIZE: '20' };
    server = await startServerProcess(makeTempDir(), env);
    fsys.fill();
    const batch = { events: Array.from({ length: 20 }, (_, i) => makeEvent('full.c', `e-${i}`, { pad: 'z'.repeat(4000) })) };
    expect((await postJson(`${server.url}/publish`, batch)).body.accepted).to.equal(20);
    expect((await postJson(`${server.url}/publish`, makeEvent('full.c', 'new'))).body.error).to.equal('backlog_full');
    expect(await waitForHealth(server, 'backlog_full')).to.equal(503);
    const retry = await postJson(`${server.url}/publish`, batch);
    expect(retry.status, JSON.stringify(retry.body)).to.equal(200);
    expect(retry.body.duplicates).to.equal(20);

    fsys.free();
    expect(await waitForHealth(server, 'healthy')).to.equal(200);
    expect((await postJson(`${server.url}/publish`, makeEvent('full.c', 'new'))).body.accepted).to.equal(1);
  });
});
