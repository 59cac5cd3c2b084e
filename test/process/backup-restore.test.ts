import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { runLogagg } from '../harness/logagg-process';
import { fetchAllEvents, getJson, makeEvent, postJson } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

/** What a client sees of a data dir: every event and the lifetime counters. */
async function observe(server: ServerProcess): Promise<{ events: unknown[]; stats: Record<string, unknown> }> {
  const { body } = await getJson(`${server.url}/stats`);
  return { events: await fetchAllEvents(server.url), stats: body as Record<string, unknown> };
}

/** Stops a server as an operator does (SIGTERM) and checks that it exited cleanly. */
async function stop(server: ServerProcess): Promise<void> {
  const exit = await server.kill('SIGTERM');
  expect(exit.code, server.output()).to.equal(0);
}

describe('backup and restore, as docs/operations.md describes them', () => {
  let source: string;
  let original: { events: unknown[]; stats: Record<string, unknown> };

  before(async function () {
    this.timeout(60_000);
    source = makeTempDir('logagg-backup-');
    const server = await startServerProcess(source, { SEGMENT_BYTES_MAX: '4096' });
    const events = Array.from({ length: 60 }, (_, i) => makeEvent(`topic-${i % 3}`, `evt-${i}`));
    for (let i = 0; i < events.length; i += 15) {
      // Each batch re-sends two earlier events, so the duplicate counters are not zero.
      const { status } = await postJson(`${server.url}/publish`, { events: [...events.slice(i, i + 15), events[0], events[1]] });
      expect(status).to.equal(200);
    }
    await fetchAllEvents(server.url);
    original = await observe(server);
    expect(original.events).to.have.length(60);
    expect(original.stats.duplicate_dropped).to.equal(8);
    await stop(server);
    expect(fs.existsSync(path.join(source, 'logagg.lock')), 'the stopped server removed its lock').to.equal(false);
    expect(fs.readdirSync(path.join(source, 'wal')).filter((name) => name.endsWith('.ndjson')).length).to.be.above(1);
  });

  /** A new data dir holding a copy of the named entries of the backed-up one. */
  function restore(entries: string[]): string {
    const target = makeTempDir('logagg-restore-');
    for (const entry of entries) fs.cpSync(path.join(source, entry), path.join(target, entry), { recursive: true });
    return target;
  }

  it('restores every event from wal/ alone: the server rebuilds the index on start; only the duplicate counters restart', async function () {
    this.timeout(60_000);
    const server = await startServerProcess(restore(['wal']));
    try {
      const after = await observe(server);
      expect(after.events).to.deep.equal(original.events);
      expect(after.stats).to.include({ unique_processed: 60, checkpoint_seq: 60, duplicate_dropped: 0 });
      // Dedup holds across the restore: a re-send is a duplicate of its original seq.
      const { body } = await postJson(`${server.url}/publish`, makeEvent('topic-0', 'evt-0'));
      expect(body.results).to.deep.equal([{ status: 'duplicate', seq: 1 }]);
    } finally {
      await stop(server);
    }
  });

  it('restores wal/ with `logagg rebuild` before the start, after which `logagg verify` finds nothing', async function () {
    this.timeout(60_000);
    const target = restore(['wal']);
    const rebuilt = await runLogagg(['rebuild', '--data-dir', target]);
    expect(rebuilt.code, rebuilt.stderr).to.equal(0);
    const verified = await runLogagg(['verify', '--data-dir', target]);
    expect(verified.code, verified.stdout).to.equal(0);
    const server = await startServerProcess(target);
    try {
      expect((await observe(server)).events).to.deep.equal(original.events);
    } finally {
      await stop(server);
    }
  });

  it('keeps the duplicate counters when the index files are restored with the log', async function () {
    this.timeout(60_000);
    const indexFiles = fs.readdirSync(source).filter((name) => name.startsWith('index.db'));
    const server = await startServerProcess(restore(['wal', ...indexFiles]));
    try {
      const after = await observe(server);
      expect(after.events).to.deep.equal(original.events);
      expect(after.stats).to.include({ unique_processed: 60, duplicate_dropped: 8, received: 68 });
    } finally {
      await stop(server);
    }
  });
});
