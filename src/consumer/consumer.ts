import type { Logger } from 'pino';
import type { IndexRow, IndexStore } from '../index/store';
import { IndexWorkerClient } from './index-worker';

export interface ConsumerOptions {
  store: IndexStore;
  /** Rows per index transaction. */
  batchMax: number;
  logger: Logger;
  /** Called after each committed batch with its rows (the dedup state forgets them then). */
  onApplied: (rows: IndexRow[], elapsedMs: number) => void;
  /** Wait before retrying a batch the index refused (e.g. SQLITE_FULL). */
  retryDelayMs?: number;
  /**
   * Write the index from a worker thread (its own connection to `store`'s file) instead of
   * this thread. Rows must then be proven new by the caller; `store` learns of each commit
   * through noteCommitted before onApplied is called.
   */
  worker?: { databasePath: string };
}

/**
 * Drains durable records from an in-memory queue into the index, one transaction per
 * batch: on this thread one batch per event-loop turn, or on a worker thread with one
 * batch in flight (rows arriving meanwhile form the next, larger batch). It holds nothing
 * that is not also in the fsynced log: a crash loses only work that recovery redoes.
 */
export class Consumer {
  private readonly options: ConsumerOptions;
  private queue: IndexRow[] = [];
  private head = 0;
  private duplicates = 0;
  private conflicts = 0;
  private scheduled = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private lastError: Error | null = null;
  private worker: IndexWorkerClient | null = null;
  private inFlight = false;

  constructor(options: ConsumerOptions) {
    this.options = options;
    if (options.worker !== undefined) this.worker = new IndexWorkerClient(options.worker.databasePath);
  }

  /** Rows waiting to be indexed. */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** False once stopped, or while the index refuses writes. */
  get running(): boolean {
    return !this.stopped && this.lastError === null;
  }

  get error(): Error | null {
    return this.lastError;
  }

  enqueue(rows: IndexRow[]): void {
    for (const row of rows) this.queue.push(row);
    this.schedule(0);
  }

  /** Adds duplicates to the lifetime counters; they are committed with the next batch. */
  noteDuplicates(duplicates: number, conflicts: number): void {
    this.duplicates += duplicates;
    this.conflicts += conflicts;
    this.schedule(0);
  }

  /** Resolves once the queue is empty and every counter is committed. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops scheduling; the caller drains first with whenIdle if it wants the work done. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Applies everything queued right now, synchronously on this thread (used by recovery,
   * and by shutdown after a worker failure). Not while a worker batch is in flight.
   */
  applyAll(): void {
    if (this.inFlight) throw new Error('consumer: applyAll while a worker batch is in flight');
    while (!this.isIdle()) this.applyOneBatch();
  }

  /**
   * Stops after indexing everything queued (through the worker while it works, else on
   * this thread), then ends the worker thread. Throws if the index refuses the rows.
   */
  async drain(): Promise<void> {
    if (this.worker !== null && !this.worker.dead && this.lastError === null) {
      this.schedule(0);
      await this.whenIdle();
    }
    this.stop();
    while (this.inFlight) await new Promise((resolve) => setImmediate(resolve));
    await this.worker?.close();
    this.applyAll();
  }

  private isIdle(): boolean {
    return this.size === 0 && this.duplicates === 0 && this.conflicts === 0;
  }

  private schedule(delayMs: number): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.tick();
    };
    if (delayMs > 0) setTimeout(run, delayMs).unref();
    else setImmediate(run);
  }

  private tick(): void {
    if (this.stopped || this.isIdle()) return;
    if (this.worker !== null) {
      this.sendToWorker();
      return;
    }
    try {
      this.applyOneBatch();
    } catch (err) {
      // The rows stay queued (and stay in the log): retry later, keep serving reads.
      if (this.lastError === null) this.options.logger.error({ err }, 'index apply failed; retrying');
      this.lastError = err as Error;
      this.schedule(this.options.retryDelayMs ?? 1000);
      return;
    }
    if (this.lastError !== null) {
      this.options.logger.info('index apply recovered');
      this.lastError = null;
    }
    if (this.isIdle()) this.releaseIdle();
    else this.schedule(0);
  }

  private applyOneBatch(): void {
    const end = Math.min(this.queue.length, this.head + this.options.batchMax);
    const rows = this.queue.slice(this.head, end);
    const started = performance.now();
    this.options.store.applyBatch(rows, this.duplicates, this.conflicts);
    this.duplicates = 0;
    this.conflicts = 0;
    this.head = end;
    this.compactQueue();
    this.options.onApplied(rows, performance.now() - started);
    if (this.isIdle()) this.releaseIdle();
  }

  /** Sends the next batch to the worker; its answer advances the queue or schedules a retry. */
  private sendToWorker(): void {
    if (this.inFlight) return;
    if (this.worker!.dead) this.worker = new IndexWorkerClient(this.options.worker!.databasePath);
    const end = Math.min(this.queue.length, this.head + this.options.batchMax);
    const rows = this.queue.slice(this.head, end);
    const duplicates = this.duplicates;
    const conflicts = this.conflicts;
    this.duplicates = 0;
    this.conflicts = 0;
    this.inFlight = true;
    this.worker!.apply(rows, duplicates, conflicts).then(
      ({ counters, elapsedMs }) => {
        this.inFlight = false;
        this.options.store.noteCommitted(rows, counters);
        this.head = end;
        this.compactQueue();
        if (this.lastError !== null) {
          this.options.logger.info('index apply recovered');
          this.lastError = null;
        }
        this.options.onApplied(rows, elapsedMs);
        if (this.isIdle()) this.releaseIdle();
        else this.schedule(0);
      },
      (err: unknown) => {
        this.inFlight = false;
        // Nothing of the batch was committed: its rows stay queued and its counts come back.
        this.duplicates += duplicates;
        this.conflicts += conflicts;
        if (this.lastError === null) this.options.logger.error({ err }, 'index apply failed; retrying');
        this.lastError = err instanceof Error ? err : new Error(String(err));
        this.schedule(this.options.retryDelayMs ?? 1000);
      },
    );
  }

  private compactQueue(): void {
    // Compact the array now and then instead of shifting on every batch.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private releaseIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
