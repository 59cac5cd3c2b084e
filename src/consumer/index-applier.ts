import type { IndexRow, IndexStore } from '../index/store';
import { IndexWorkerClient } from './index-worker';

/** One batch for the index: durable rows in seq order, and the duplicates noted since the last batch. */
export interface IndexBatch {
  rows: IndexRow[];
  duplicates: number;
  conflicts: number;
}

/**
 * Commits batches to the SQLite index: the one interface the Consumer calls, whichever
 * thread does the writing. Each apply commits the rows, the checkpoint and the counter
 * deltas in one transaction, or nothing at all (it then throws or rejects, and the
 * consumer retries the same batch later). There are two, picked by INDEX_WORKER; which
 * one stays is for measurements to decide (docs/performance.md).
 */
export interface IndexApplier {
  /** Which writer this is, for logs and benchmark figures. */
  readonly kind: 'inline' | 'worker';
  /**
   * True while apply runs off this thread and can finish the queue by itself at shutdown;
   * false for the inline applier and for a worker whose thread has died.
   */
  readonly concurrent: boolean;
  /**
   * Commits one batch and gives its duration in ms: synchronously (a number) on this
   * thread, or as a promise when another thread writes. The consumer keeps one batch in flight.
   */
  apply(batch: IndexBatch): number | Promise<number>;
  /** Ends the writer (the worker thread exits); nothing more is applied through it. */
  close(): Promise<void>;
}

/**
 * Writes on this thread through IndexStore.applyBatch, which checks every key against the
 * index (the first row of a key wins), so it is also what recovery and shutdown use.
 */
export class InlineApplier implements IndexApplier {
  readonly kind = 'inline';
  readonly concurrent = false;

  constructor(private readonly store: IndexStore) {}

  apply(batch: IndexBatch): number {
    const started = performance.now();
    this.store.applyBatch(batch.rows, batch.duplicates, batch.conflicts);
    return performance.now() - started;
  }

  /** Nothing to release: the store belongs to the caller, which closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Writes on a worker thread (its own connection to the index file, see index-worker.ts)
 * so SQLite inserts use the second core. The rows are appended blindly: the caller must
 * have proven their keys new (publish's exact dedup does). `store` learns of each commit
 * through noteCommitted before apply resolves. A worker that died is replaced on the next apply.
 */
export class WorkerApplier implements IndexApplier {
  readonly kind = 'worker';
  private client: IndexWorkerClient;

  constructor(
    private readonly store: IndexStore,
    private readonly databasePath: string,
  ) {
    this.client = new IndexWorkerClient(databasePath);
  }

  get concurrent(): boolean {
    return !this.client.dead;
  }

  async apply(batch: IndexBatch): Promise<number> {
    if (this.client.dead) this.client = new IndexWorkerClient(this.databasePath);
    const { counters, elapsedMs } = await this.client.apply(batch.rows, batch.duplicates, batch.conflicts);
    this.store.noteCommitted(batch.rows, counters);
    return elapsedMs;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** The applier INDEX_WORKER picks: a worker thread when `worker` is given, else this thread. */
export function createIndexApplier(store: IndexStore, worker: { databasePath: string } | undefined): IndexApplier {
  return worker === undefined ? new InlineApplier(store) : new WorkerApplier(store, worker.databasePath);
}
