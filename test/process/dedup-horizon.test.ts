import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { listSegments } from '../../src/wal/segments';
import { NodeDisk } from '../../src/wal/disk';
import { waitFor } from '../../src/cli/wait';
import { fetchAllEvents, getJson, makeEvent, postJson, type TestEvent } from '../helpers/events';
import { runLogagg } from '../harness/logagg-process';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { openTestStore } from '../helpers/logged-rows';

/** Small segments, so that a hundred events fill several and retention has some to delete. */
const SMALL_SEGMENTS = { SEGMENT_BYTES_MAX: '4096' };

async function publish(url: string, events: TestEvent[]): Promise<Array<{ status: string; seq: number; conflict?: true }>> {
  const res = await postJson(`${url}/publish`, { events });
  expect(res.status, JSON.stringify(res.body)).to.equal(200);
  return res.body.results as Array<{ status: string; seq: number; conflict?: true }>;
}

async function stopCleanly(server: ServerProcess): Promise<void> {
  const exit = await server.kill('SIGTERM');
  expect(exit.code, server.output()).to.equal(0);
}

/**
 * Retention's work, done by hand on a stopped server as the contract orders it: the index
 * drops the rows of every segment but the last (durably, with the deletion's time), then
 * the segment files go. Returns the last deleted seq.
 */
function deleteOldSegments(dataDir: string, deletedAtMs: number): number {
  const segments = listSegments(new NodeDisk(), path.join(dataDir, 'wal')).sort((a, b) => a.firstSeq - b.firstSeq);
  expect(segments.length).to.be.greaterThan(2);
  const lastSeq = segments[segments.length - 1]!.firstSeq - 1;
  const store = openTestStore(path.join(dataDir, 'index.db'), { loadKeys: false });
  store.dropThrough(lastSeq, deletedAtMs);
  store.close();
  for (const segment of segments.slice(0, -1)) fs.rmSync(segment.path);
  return lastSeq;
}

describe('real server process: dedup keys and the dedup horizon', function () {
  this.timeout(120_000);

  it('answers re-sends of events deleted by retention inside the horizon, across restart and rebuild, and accepts them past it', async () => {
    const dataDir = makeTempDir();
    const events = Array.from({ length: 100 }, (_, i) => makeEvent('orders', `old-${i}`, { i, text: 'x'.repeat(40) }));
    let server = await startServerProcess(dataDir, SMALL_SEGMENTS);
    for (let i = 0; i < events.length; i += 10) await publish(server.url, events.slice(i, i + 10));
    await stopCleanly(server);
    const deletedThrough = deleteOldSegments(dataDir, Date.now() - 60_000);
    const changed = { ...events[0]!, payload: { other: true } };

    // Inside the horizon: the original's seq, and a conflict when the content differs.
    const inside = { ...SMALL_SEGMENTS, DEDUP_HORIZON_MS: '3600000' };
    server = await startServerProcess(dataDir, inside);
    const stored = await fetchAllEvents(server.url);
    expect(stored.map((e) => e.seq)[0]).to.equal(deletedThrough + 1);
    expect(await publish(server.url, [events[0]!, changed, events[99]!])).to.deep.equal([
      { status: 'duplicate', seq: 1 },
      { status: 'duplicate', seq: 1, conflict: true },
      { status: 'duplicate', seq: 100 },
    ]);
    expect((await getJson(`${server.url}/stats`)).body.dedup_keys).to.equal(100);
    await stopCleanly(server);

    // Rebuild reads only the log, which no longer holds seq 1: the old index gives its key.
    const rebuilt = await runLogagg(['rebuild', '--data-dir', dataDir]);
    expect(rebuilt.code, rebuilt.stdout + rebuilt.stderr).to.equal(0);
    expect(rebuilt.stdout).to.match(new RegExp(`${deletedThrough} dedup key\\(s\\) of events before seq ${deletedThrough + 1}`));
    server = await startServerProcess(dataDir, inside);
    expect(await publish(server.url, [events[0]!, changed])).to.deep.equal([
      { status: 'duplicate', seq: 1 },
      { status: 'duplicate', seq: 1, conflict: true },
    ]);
    await stopCleanly(server);

    // Past the horizon (the deletion was a minute ago): a re-send is a new original.
    server = await startServerProcess(dataDir, { ...SMALL_SEGMENTS, DEDUP_HORIZON_MS: '1000' });
    const [again] = await publish(server.url, [changed]);
    expect(again!.status).to.equal('accepted');
    expect(again!.seq).to.be.greaterThan(100);
    expect(await publish(server.url, [changed, events[0]!, events[99]!])).to.deep.equal([
      { status: 'duplicate', seq: again!.seq },
      { status: 'duplicate', seq: again!.seq, conflict: true },
      { status: 'duplicate', seq: 100 },
    ]);
    await stopCleanly(server);
    server = await startServerProcess(dataDir, { ...SMALL_SEGMENTS, DEDUP_HORIZON_MS: '1000' });
    expect(await publish(server.url, [changed])).to.deep.equal([{ status: 'duplicate', seq: again!.seq }]);
    await stopCleanly(server);
  });

  it('keeps dedup exact after kill -9, with a saved filter that covers part of the keys, and with a corrupt one', async () => {
    const dataDir = makeTempDir();
    const first = Array.from({ length: 60 }, (_, i) => makeEvent('t', `a-${i}`));
    const second = Array.from({ length: 60 }, (_, i) => makeEvent('t', `b-${i}`));
    let server = await startServerProcess(dataDir);
    await publish(server.url, first);
    await stopCleanly(server);
    expect(fs.existsSync(path.join(dataDir, 'index.db.keys-filter'))).to.equal(true);

    // The saved filter covers `first`; `second` is indexed after it, then the process dies.
    server = await startServerProcess(dataDir);
    await publish(server.url, second);
    await waitFor(async () => (await getJson(`${server.url}/health`)).body.queue_size === 0, { what: 'queue to drain' });
    await server.kill('SIGKILL');

    server = await startServerProcess(dataDir);
    // Start-up read the 60 keys after the saved filter's seq from the log, not the whole table.
    const restarted = server;
    const filterLine = await restarted.waitForOutput(/"keysAdded":(\d+)/, 'the key filter line of start-up');
    expect(filterLine[1]).to.equal('60');
    const all = [...first, ...second];
    const answers = await publish(server.url, all);
    expect(answers.map((a) => a.status)).to.deep.equal(all.map(() => 'duplicate'));
    expect(answers.map((a) => a.seq)).to.deep.equal(all.map((_, i) => i + 1));

    // Concurrent identical publishes of a new event: exactly one is accepted.
    const fresh = makeEvent('t', 'concurrent');
    const racing = await Promise.all(Array.from({ length: 16 }, () => publish(server.url, [fresh])));
    const outcomes = racing.map(([result]) => result!);
    expect(outcomes.filter((o) => o.status === 'accepted')).to.have.length(1);
    expect(new Set(outcomes.map((o) => o.seq)).size).to.equal(1);
    await stopCleanly(server);

    const filterFile = path.join(dataDir, 'index.db.keys-filter');
    const bytes = fs.readFileSync(filterFile);
    bytes.fill(0xff, 64, 4096);
    fs.writeFileSync(filterFile, bytes);
    server = await startServerProcess(dataDir);
    // The rebuild runs in the background after start-up (lookups read the table meanwhile): its
    // start and its end are logged (a line may reach the pipe a moment after /health says ready).
    const started = server;
    await started.waitForOutput('key filter rebuilding from the keys table in the background', 'the key filter rebuild to start');
    await started.waitForOutput('key filter rebuilt from the keys table', 'key filter rebuild');
    const later = await publish(server.url, [...all, fresh]);
    expect(later.map((a) => a.status)).to.deep.equal([...all, fresh].map(() => 'duplicate'));
    expect(later[later.length - 1]!.seq).to.equal(outcomes[0]!.seq);
    expect((await getJson(`${server.url}/stats`)).body.dedup_keys).to.equal(all.length + 1);
    await stopCleanly(server);
  });
});
