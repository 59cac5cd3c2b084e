import type { IndexRow, IndexStore } from '../index/store';

/** One batch for the index: durable rows in seq order, and the duplicates noted since the last batch. */
export interface IndexBatch {
  rows: IndexRow[];
  duplicates: number;
  conflicts: number;
}

/**
 * Commits batches to the SQLite index on this thread, for the Consumer: each apply
 * commits the rows, the checkpoint and the counter deltas in one transaction, or nothing
 * at all (it then throws, and the consumer retries the same batch later). An interface so
 * that tests can refuse a batch; the service has one, InlineApplier.
 */
export interface IndexApplier {
  /** Commits one batch and gives its duration in ms. */
  apply(batch: IndexBatch): number;
}

/**
 * Writes through IndexStore.appendNewRows: the consumer's rows are live records whose keys
 * publish's exact dedup proved new and distinct (a key stays in PendingKeys until its row
 * is committed), so they are stored without a key lookup. Recovery, which replays rows no
 * one has checked, goes through IndexStore.applyBatch instead.
 */
export class InlineApplier implements IndexApplier {
  constructor(private readonly store: IndexStore) {}

  apply(batch: IndexBatch): number {
    const started = performance.now();
    this.store.appendNewRows(batch.rows, batch.duplicates, batch.conflicts);
    return performance.now() - started;
  }
}
