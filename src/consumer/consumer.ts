import type { Logger } from 'pino';
import type { IndexRow, IndexStore } from '../index/store';
import { InlineApplier, type IndexApplier, type IndexBatch } from './index-applier';

export interface ConsumerOptions {
  store: IndexStore;
  /** Rows per index transaction. */
  batchMax: number;
  logger: Logger;
  /** Called after each committed batch with its rows (the dedup state forgets them then). */
  onApplied: (rows: IndexRow[], elapsedMs: number) => void;
  /**
   * True while other work must go first (the log writer's group commit waiting to start):
   * the consumer then lets the turn pass and tries again in the next one.
   */
  yieldWhile?: () => boolean;
  /** Wait before retrying a batch the index refused (e.g. SQLITE_FULL). */
  retryDelayMs?: number;
  /** What commits each batch: an InlineApplier over `store` when not given (tests pass one that refuses). */
  applier?: IndexApplier;
  /**
   * Longest wait (ms) of a row for more to share its transaction: while fewer than
   * `coalesceRows` are queued and none waited this long, the batch waits (a timer). 0 or
   * absent: one transaction per event-loop turn, whatever it holds.
   */
  coalesceMs?: number;
  /** Rows queued at which a batch starts without waiting (at most batchMax). */
  coalesceRows?: number;
}

/**
 * Drains durable records from an in-memory queue into the index, one transaction of at
 * most batchMax rows per event-loop turn (setImmediate), on this thread: answers are sent
 * in the turn of the fsync that covers them, before any indexing, and rows arriving
 * between two turns join the next batch. With `coalesceMs`, a few rows wait (at most that
 * long, or until `coalesceRows` are queued) for others to share their transaction, so a
 * stream of single events does not commit one tiny transaction per turn; no answer waits
 * for it (answers are sent before rows are queued here). It holds nothing that is not
 * also in the fsynced log: a crash loses only work that recovery redoes.
 */
export class Consumer {
  private readonly options: ConsumerOptions;
  private readonly applier: IndexApplier;
  private queue: IndexRow[] = [];
  private head = 0;
  private duplicates = 0;
  private conflicts = 0;
  private scheduled = false;
  /** The timer of a batch waiting for more rows (coalesceMs), while one is pending. */
  private coalesceTimer: NodeJS.Timeout | null = null;
  /** When the oldest uncommitted row or count was queued; null when there is none. */
  private oldestQueuedMs: number | null = null;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private lastError: Error | null = null;

  constructor(options: ConsumerOptions) {
    this.options = options;
    this.applier = options.applier ?? new InlineApplier(options.store);
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
    this.noteQueued();
  }

  /** Adds duplicates to the lifetime counters; they are committed with the next batch. */
  noteDuplicates(duplicates: number, conflicts: number): void {
    this.duplicates += duplicates;
    this.conflicts += conflicts;
    this.noteQueued();
  }

  /** Duplicates noted but not yet committed to the index. */
  uncommittedDuplicates(): { duplicates: number; conflicts: number } {
    return { duplicates: this.duplicates, conflicts: this.conflicts };
  }

  /** Resolves once the queue is empty and every counter is committed. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    // Someone waits for the queue to empty: a batch waiting for company starts now.
    this.startWaitingBatch();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Commits now, in this turn, the rows that were made durable and wait in the queue (for
   * company, or for the next turn), so a read that follows an answer finds every event it
   * acknowledged. Nothing while stopped or while a refused batch waits for its retry.
   */
  applyQueued(): void {
    if (this.stopped || this.lastError !== null || this.isIdle()) return;
    if (this.coalesceTimer !== null) {
      clearTimeout(this.coalesceTimer);
      this.coalesceTimer = null;
      this.scheduled = false;
    }
    this.commitBatch();
  }

  /** Stops scheduling; the caller drains first with whenIdle if it wants the work done. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Applies everything queued right now (shutdown). Throws if the index refuses a batch;
   * that batch and the rest stay queued.
   */
  applyAll(): void {
    while (!this.isIdle()) {
      const { batch, end } = this.takeBatch();
      let elapsedMs: number;
      try {
        elapsedMs = this.applier.apply(batch);
      } catch (err) {
        this.returnBatch(batch);
        throw err;
      }
      this.advance(end);
      this.options.onApplied(batch.rows, elapsedMs);
    }
    this.oldestQueuedMs = null;
    this.releaseIdle();
  }

  /** Stops after indexing everything queued. Throws if the index refuses the rows. */
  drain(): void {
    this.stop();
    this.applyAll();
  }

  private isIdle(): boolean {
    return this.size === 0 && this.duplicates === 0 && this.conflicts === 0;
  }

  /** Notes that rows or counts were queued: a batch is scheduled, or a waiting one starts once enough rows are there. */
  private noteQueued(): void {
    this.oldestQueuedMs ??= Date.now();
    if (this.coalesceTimer !== null && this.size >= this.coalesceRowsMin()) this.startWaitingBatch();
    else this.schedule(0);
  }

  /** Rows queued at which a batch does not wait. */
  private coalesceRowsMin(): number {
    return Math.max(1, Math.min(this.options.coalesceRows ?? 1, this.options.batchMax));
  }

  /** Milliseconds the next batch should still wait for more rows; 0 to start it now. */
  private coalesceWaitMs(): number {
    const limitMs = this.options.coalesceMs ?? 0;
    if (limitMs <= 0 || this.oldestQueuedMs === null || this.idleWaiters.length > 0) return 0;
    if (this.size >= this.coalesceRowsMin()) return 0;
    return Math.max(0, this.oldestQueuedMs + limitMs - Date.now());
  }

  /** Replaces a pending coalesce timer by a batch in the next turn. */
  private startWaitingBatch(): void {
    if (this.coalesceTimer === null) return;
    clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    this.scheduled = false;
    this.schedule(0);
  }

  private schedule(delayMs: number, coalescing = false): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.coalesceTimer = null;
      this.tick();
    };
    if (delayMs <= 0) {
      setImmediate(run);
      return;
    }
    const timer = setTimeout(run, delayMs).unref();
    if (coalescing) this.coalesceTimer = timer;
  }

  /** The next batch: at most batchMax rows and every duplicate noted so far (the rows stay queued until committed). */
  private takeBatch(): { batch: IndexBatch; end: number } {
    const end = Math.min(this.queue.length, this.head + this.options.batchMax);
    const batch: IndexBatch = { rows: this.queue.slice(this.head, end), duplicates: this.duplicates, conflicts: this.conflicts };
    this.duplicates = 0;
    this.conflicts = 0;
    return { batch, end };
  }

  /** Gives an uncommitted batch's counts back; its rows never left the queue. */
  private returnBatch(batch: IndexBatch): void {
    this.duplicates += batch.duplicates;
    this.conflicts += batch.conflicts;
  }

  /** Commits the next batch; a refused one stays queued and is retried after a delay. */
  private tick(): void {
    if (this.stopped || this.isIdle()) return;
    if (this.options.yieldWhile?.() === true) {
      // Queued after the writer's setImmediate: the write and its fsync start before this batch.
      this.schedule(0);
      return;
    }
    const waitMs = this.coalesceWaitMs();
    if (waitMs > 0) {
      this.schedule(waitMs, true);
      return;
    }
    this.commitBatch();
  }

  /** Commits the next batch now; a refused one stays queued and is retried after a delay. */
  private commitBatch(): void {
    const { batch, end } = this.takeBatch();
    let elapsedMs: number;
    try {
      elapsedMs = this.applier.apply(batch);
    } catch (err) {
      this.failed(batch, err as Error);
      return;
    }
    this.advance(end);
    // What is left (past batchMax) goes in the next turn; nothing new waits behind it.
    this.oldestQueuedMs = this.isIdle() ? null : Date.now() - (this.options.coalesceMs ?? 0);
    if (this.lastError !== null) {
      this.options.logger.info('index apply recovered');
      this.lastError = null;
    }
    this.options.onApplied(batch.rows, elapsedMs);
    if (this.isIdle()) this.releaseIdle();
    else this.schedule(0);
  }

  /** Nothing of the batch was committed: its rows stay queued (and in the log); retry later, serve reads meanwhile. */
  private failed(batch: IndexBatch, err: Error): void {
    this.returnBatch(batch);
    if (this.lastError === null) this.options.logger.error({ err }, 'index apply failed; retrying');
    this.lastError = err;
    this.schedule(this.options.retryDelayMs ?? 1000);
  }

  /** Drops committed rows from the head of the queue. */
  private advance(end: number): void {
    this.head = end;
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
