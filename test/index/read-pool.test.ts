import { expect } from 'chai';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { AppError } from '../../src/errors';
import { ReadPool } from '../../src/index/read-pool';
import { IndexStore, type IndexRow } from '../../src/index/store';
import { makeTempDir } from '../helpers/temp-dir';
import { openTestStore, applyLogged, walDirOf } from '../helpers/logged-rows';

const BASE_MS = Date.parse('2025-10-23T10:00:00Z');
/** Enough rows that a histogram counted one seq per turn takes far longer than the 100 ms timeout below. */
const ROWS = 20_000;

function row(seq: number): IndexRow {
  const topic = `t${seq % 3}`;
  const body = JSON.stringify({ topic, event_id: String(seq), timestamp: new Date(BASE_MS + seq).toISOString(), source: 's' });
  return { seq, topic, eventId: String(seq), source: 's', tsMs: BASE_MS + seq, body };
}

describe('ReadPool (index reads on worker threads)', () => {
  let store: IndexStore;
  let databasePath: string;
  const pools: ReadPool[] = [];

  function pool(options: { workers?: number; queueMax?: number; timeoutMs?: number } = {}): ReadPool {
    const made = new ReadPool({
      databasePath,
      storeOptions: { walDir: walDirOf(databasePath) },
      workers: options.workers ?? 1,
      queueMax: options.queueMax ?? 8,
      timeoutMs: options.timeoutMs ?? 30_000,
      retryAfterSeconds: 2,
    });
    pools.push(made);
    return made;
  }

  before(() => {
    databasePath = path.join(makeTempDir(), 'index.sqlite');
    store = openTestStore(databasePath);
    applyLogged(
      store,
      Array.from({ length: ROWS }, (_, i) => row(i + 1)),
    );
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    store.close();
  });

  it('reads on another thread and answers what the store itself answers, with the snapshot it read', async () => {
    const reads = pool();
    const query = { topics: ['t1'], order: 'desc' as const, limit: 7, afterSeq: 200 };
    const page = await reads.readPage(query);
    expect(page.threadId).to.not.equal(threadId);
    expect(reads.threadIds).to.include(page.threadId);
    expect({ rows: page.rows, nextCursor: page.nextCursor }).to.deep.equal(store.readPage(query));
    expect(page.snapshotSeq).to.equal(ROWS);
    // A commit made before a read is sent is in that read's snapshot.
    applyLogged(store, [row(ROWS + 1)]);
    const next = await reads.readPage({ order: 'desc', limit: 1 });
    expect(next.rows.map((r) => r.seq)).to.deep.equal([ROWS + 1]);
    expect(next.snapshotSeq).to.equal(ROWS + 1);
  });

  it('counts a histogram on the worker as countHistogram does on this thread', async () => {
    const histogram = await pool().histogram({ topics: ['t0'] }, 10, 5000);
    expect(histogram.total).to.equal(store.queryEvents({ topics: ['t0'], limit: 100_000 }).length);
    expect(histogram.counts.reduce((a, b) => a + b, 0)).to.equal(histogram.total);
  });

  it('refuses a read past READ_QUEUE_MAX with 503 reads_busy and Retry-After, and serves the others', async () => {
    const reads = pool({ workers: 1, queueMax: 2 });
    await reads.ready;
    // Sent in one turn: the worker cannot answer before all are submitted, so one runs, two wait.
    const results = await Promise.allSettled([0, 1, 2, 3].map(() => reads.readPage({ limit: 5 })));
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const refused = (results[3] as PromiseRejectedResult).reason as AppError;
    expect(refused).to.be.instanceOf(AppError);
    expect(refused.code).to.equal('reads_busy');
    expect(refused.status).to.equal(503);
    expect(refused.retryAfterSeconds).to.equal(2);
    expect(reads.queued).to.equal(0);
  });

  it('fails the reads a killed worker held with read_failed (no hang) and replaces the worker', async () => {
    const reads = pool({ workers: 1, queueMax: 8 });
    await reads.ready;
    const before = reads.threadIds;
    const held = reads.histogram({}, 100, 1);
    const waiting = reads.readPage({ limit: 3 });
    await reads.killWorker(0);
    const failure = await held.then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).to.be.instanceOf(AppError);
    expect((failure as AppError).code).to.equal('read_failed');
    expect((failure as AppError).message).to.match(/read worker exited/);
    // The read that was waiting runs on the new worker.
    const page = await waiting;
    expect(page.rows.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    expect(reads.threadIds).to.have.length(1);
    expect(reads.threadIds).to.not.deep.equal(before);
    expect(page.threadId).to.equal(reads.threadIds[0]);
  });

  it('ends a read past READ_TIMEOUT_MS with read_failed and goes on with a fresh worker', async () => {
    const reads = pool({ workers: 1, timeoutMs: 100 });
    // One seq per chunk and a turn between chunks, over ROWS rows: far longer than 100 ms.
    const slow = reads.histogram({}, 1000, 1);
    const failure = await slow.then(
      () => null,
      (err: unknown) => err,
    );
    expect((failure as AppError).code).to.equal('read_failed');
    expect((failure as AppError).message).to.match(/READ_TIMEOUT_MS=100/);
    const page = await reads.readPage({ limit: 1 });
    expect(page.rows.map((r) => r.seq)).to.deep.equal([1]);
  });

  it('fails reads with shutting_down once closed', async () => {
    const reads = pool();
    await reads.close();
    const failure = await reads.readPage({ limit: 1 }).then(
      () => null,
      (err: unknown) => err,
    );
    expect((failure as AppError).code).to.equal('shutting_down');
  });
});
