import { expect } from 'chai';
import { fetchAllEvents, getJson, makeEvent, postJson, type TestEvent } from '../helpers/events';
import { startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

const keyOf = (e: { topic: string; event_id: string }): string => `${e.topic}\u0000${e.event_id}`;

/**
 * At-least-once publishers against a real server: each keeps sending its events (singles
 * and batches) and records what was acknowledged, until told to stop.
 */
function runPublishers(url: string, count: number, stop: { now: boolean }) {
  const acked = new Map<string, TestEvent>();
  const sent = new Map<string, TestEvent>();
  const workers = Array.from({ length: count }, async (_, worker) => {
    let n = 0;
    while (!stop.now) {
      const size = n % 3 === 0 ? 1 : 1 + (n % 17);
      const events = Array.from({ length: size }, (_, i) =>
        makeEvent(`topic-${(n + i) % 4}`, `w${worker}-n${n}-i${i}`, { worker, n, i, text: 'é✓\u0000' }),
      );
      for (const e of events) sent.set(keyOf(e), e);
      n += 1;
      try {
        const res = await postJson(`${url}/publish`, size === 1 ? events[0] : { events });
        if (res.status === 200) for (const e of events) acked.set(keyOf(e), e);
      } catch {
        // connection refused or reset: the server is gone; nothing was acknowledged
        return;
      }
    }
  });
  return { acked, sent, done: Promise.all(workers) };
}

describe('real server process: kill -9 and restart', function () {
  this.timeout(90_000);

  it('keeps every acknowledged event exactly once with an equal payload after SIGKILL under load', async () => {
    const dataDir = makeTempDir();
    // Small segments so the load also crosses segment rotations.
    const env = { SEGMENT_BYTES_MAX: '65536' };
    const server = await startServerProcess(dataDir, env);
    const stop = { now: false };
    const load = runPublishers(server.url, 8, stop);
    await waitFor(() => load.acked.size >= 3000, { timeoutMs: 30_000, what: '3000 acknowledged events' });
    await server.kill('SIGKILL');
    stop.now = true;
    await load.done;

    const restarted = await startServerProcess(dataDir, env);
    try {
      await waitFor(async () => (await getJson(`${restarted.url}/health`)).body.queue_size === 0, { what: 'queue to drain' });
      const stored = await fetchAllEvents(restarted.url);
      const storedByKey = new Map<string, TestEvent>();
      for (const e of stored) {
        expect(storedByKey.has(keyOf(e)), `stored twice: ${keyOf(e)}`).to.equal(false);
        storedByKey.set(keyOf(e), { topic: e.topic, event_id: e.event_id, timestamp: e.timestamp, source: e.source, payload: e.payload });
      }
      let lost = 0;
      for (const [key, event] of load.acked) {
        const found = storedByKey.get(key);
        if (found === undefined) lost += 1;
        else expect(found).to.deep.equal(event);
      }
      expect(lost, 'acknowledged events lost').to.equal(0);
      for (const key of storedByKey.keys()) expect(load.sent.has(key), `stored but never sent: ${key}`).to.equal(true);

      const stats = (await getJson(`${restarted.url}/stats`)).body;
      expect(stats.unique_processed).to.equal(stored.length);
      expect(stats.received).to.equal(stats.unique_processed + stats.duplicate_dropped);

      // Retrying every acknowledged event after the crash is a duplicate, never a second copy.
      const retry = [...load.acked.values()].slice(0, 1000);
      const res = await postJson(`${restarted.url}/publish`, { events: retry });
      expect(res.status).to.equal(200);
      expect(res.body).to.include({ accepted: 0, duplicates: retry.length, conflicts: 0 });
    } finally {
      await restarted.kill('SIGKILL');
    }
  });

  it('drains and exits 0 on SIGTERM; a restart keeps everything and rejects old events as duplicates', async () => {
    const dataDir = makeTempDir();
    const server = await startServerProcess(dataDir);
    const events = Array.from({ length: 50 }, (_, i) => makeEvent('sigterm', `e${i}`));
    expect((await postJson(`${server.url}/publish`, { events })).status).to.equal(200);
    expect((await postJson(`${server.url}/publish`, events[0])).body.duplicates).to.equal(1);
    const exit = await server.kill('SIGTERM');
    expect(exit.code).to.equal(0);
    expect(server.output()).to.contain('"clean":true');

    const restarted = await startServerProcess(dataDir);
    try {
      const stats = (await getJson(`${restarted.url}/stats`)).body;
      expect(stats).to.include({ received: 51, unique_processed: 50, duplicate_dropped: 1 });
      const again = await postJson(`${restarted.url}/publish`, { events });
      expect(again.body).to.include({ accepted: 0, duplicates: 50 });
      const stored = await fetchAllEvents(restarted.url, 'sigterm');
      expect(stored.map((e) => e.event_id)).to.deep.equal(events.map((e) => e.event_id));
      // No records replayed: the clean shutdown left the index at the end of the log.
      expect(restarted.output()).to.match(/"recordsReplayed":0/);
    } finally {
      await restarted.kill('SIGKILL');
    }
  });

  it('stops startup on a corrupt record in the middle of the log, naming file and offset', async () => {
    const { dataDirFromWalFixture } = await import('../helpers/fixtures');
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const server = await startServerProcess(dataDir, {}, { waitReady: false });
    const exit = await server.exited;
    expect(exit.code).to.equal(1);
    expect(server.output()).to.match(/corrupt record in \S+00000000000000000001\.ndjson at byte offset 147/);
  });

  it('cuts a torn tail by itself, logs the bytes dropped and keeps every complete record', async () => {
    const { dataDirFromWalFixture } = await import('../helpers/fixtures');
    const dataDir = dataDirFromWalFixture('torn-tail');
    const server = await startServerProcess(dataDir);
    try {
      await server.waitForOutput('cut torn tail of 40 bytes at offset 441', 'the torn-tail log line');
      const stored = await fetchAllEvents(server.url);
      expect(stored.map((e) => e.seq)).to.deep.equal([1, 2, 3]);
      const next = await postJson(`${server.url}/publish`, makeEvent('fixture', 'evt-4'));
      expect(next.body.results).to.deep.equal([{ status: 'accepted', seq: 4 }]);
    } finally {
      await server.kill('SIGKILL');
    }
  });

  it('rejects a bad setting with one line naming it and exit code 2', async () => {
    const server = startServerProcess(makeTempDir(), { QUEUE_MAX_SIZE: 'lots' }, { waitReady: false });
    const error = await server.then(
      () => null,
      (err: unknown) => err as Error,
    );
    expect(error?.message).to.match(/invalid setting QUEUE_MAX_SIZE="lots"/);
  });
});
