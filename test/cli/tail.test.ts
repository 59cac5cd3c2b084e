import { expect } from 'chai';
import { parseNdjson, runLogagg, spawnLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { makeEvent, postJson } from '../helpers/events';
import { startServerProcess } from '../harness/server-process';
import { waitFor } from '../../src/cli/wait';

describe('logagg tail', () => {
  it('prints the last N matching events of a data dir', async () => {
    const dataDir = await makeDataDir([variedEvents(30)], { segmentBytesMax: 4096 });
    const last = await runLogagg(['tail', '--data-dir', dataDir, '-n', '3', '--json']);
    expect(last.code).to.equal(0);
    expect(parseNdjson(last.stdout).map((e) => e.seq)).to.deep.equal([28, 29, 30]);
    const byTopic = await runLogagg(['tail', '--data-dir', dataDir, '-n', '2', '--topic', 'orders']);
    expect(byTopic.stdout.trim().split('\n')).to.deep.equal([
      '#25 2025-10-23T10:00:24.000Z orders evt-24 (api) {"i":24,"text":"event number 24"}',
      '#28 2025-10-23T10:00:27.000Z orders evt-27 (worker) {"i":27,"text":"event number 27"}',
    ]);
  });

  it('-f follows a live data dir and a server URL (SSE) as events arrive, and exits 0 on Ctrl-C', async () => {
    const dataDir = await makeDataDir([variedEvents(5)]);
    const server = await startServerProcess(dataDir, { SEGMENT_BYTES_MAX: '4096' });
    const fromDir = spawnLogagg(['tail', '-f', '--data-dir', dataDir, '-n', '1', '--json', '--poll-ms', '50']);
    // From seq 6: whatever it misses while starting, it reads back before following.
    const fromUrl = spawnLogagg(['tail', '-f', '--url', server.url, '--from-seq', '6', '--json', '--topic', 'live']);
    try {
      await waitFor(() => parseNdjson(fromDir.stdout()).length === 1, { what: 'the first line' });
      // Enough events to rotate segments (4 KiB each) while tail follows.
      for (let i = 0; i < 40; i += 10) {
        const events = Array.from({ length: 10 }, (_, k) =>
          makeEvent(i % 20 === 0 ? 'live' : 'other', `f${i + k}`, { filler: 'y'.repeat(200) }),
        );
        expect((await postJson(`${server.url}/publish`, { events })).status).to.equal(200);
      }
      await waitFor(() => parseNdjson(fromDir.stdout()).length === 41, { what: 'tail -f on the data dir' });
      await waitFor(() => parseNdjson(fromUrl.stdout()).length === 20, { what: 'tail -f on the URL' }).catch((err: unknown) => {
        throw new Error(`${String(err)}\nstdout: ${fromUrl.stdout()}\nstderr: ${fromUrl.stderr()}`);
      });
      expect(parseNdjson(fromDir.stdout()).map((e) => e.seq)).to.deep.equal(Array.from({ length: 41 }, (_, i) => i + 5));
      const live = parseNdjson(fromUrl.stdout());
      expect(live.map((e) => e.seq)).to.deep.equal([6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35]);
      expect(live.every((e) => e.topic === 'live')).to.equal(true);
      expect(await fromDir.stop('SIGINT')).to.equal(0);
      expect(await fromUrl.stop('SIGINT')).to.equal(0);
    } finally {
      await fromDir.stop('SIGKILL');
      await fromUrl.stop('SIGKILL');
      await server.kill('SIGTERM');
    }
  });
});

describe('logagg tail -f --url across a server restart', () => {
  it('reconnects with Last-Event-ID and prints every event once', async () => {
    const dataDir = await makeDataDir([variedEvents(3)]);
    let server = await startServerProcess(dataDir);
    const port = server.port;
    const tail = spawnLogagg(['tail', '-f', '--url', server.url, '--from-seq', '1', '--json']);
    try {
      await waitFor(() => parseNdjson(tail.stdout()).length === 3, { what: 'the first 3 events' });
      const first = server;
      expect((await first.kill('SIGTERM')).code, `server exit code; its output:\n${first.output()}`).to.equal(0);
      await waitFor(() => tail.stderr().includes('reconnecting after seq 3'), { what: 'tail to notice the restart' });
      server = await startServerProcess(dataDir, { PORT: String(port) });
      expect(
        (await postJson(`${server.url}/publish`, { events: [makeEvent('restart', 'r1'), makeEvent('restart', 'r2')] })).status,
      ).to.equal(200);
      await waitFor(() => parseNdjson(tail.stdout()).length === 5, { timeoutMs: 15_000, what: 'events after the restart' });
      expect(parseNdjson(tail.stdout()).map((e) => e.seq)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(await tail.stop('SIGINT')).to.equal(0);
    } finally {
      await tail.stop('SIGKILL');
      await server.kill('SIGTERM');
    }
  });
});
