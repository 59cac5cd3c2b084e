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
  /** Wait before retrying a batch the index refused (e.g. SQLITE_FULL). */
  retryDelayMs?: number;
  /**
   * What commits each batch (createIndexApplier picks one by INDEX_WORKER); an InlineApplier
   * over `store` when not given. Shutdown finishes on this thread through `store` whatever it is.
   */
  applier?: IndexApplier;
}

/**
 * Drains durable records from an in-memory queue into the index, one transaction per
 * batch, through its IndexApplier: one batch in flight at a time (on this thread it is
 * done within the turn; on a worker thread rows arriving meanwhile form the next, larger
 * batch). It holds nothing that is not also in the fsynced log: a crash loses only work
 * that recovery redoes.
 */
export class Consumer {
  private readonly options: ConsumerOptions;
  private readonly applier: IndexApplier;
  /** Shutdown's path: whatever the applier, what is left is applied here, on this thread. */
  private readonly inline: InlineApplier;
  private queue: IndexRow[] = [];
  private head = 0;
  private duplicates = 0;
  private conflicts = 0;
  private scheduled = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private lastError: Error | null = null;
  /** The batch the applier is committing now, if any. */
  private inFlight: IndexBatch | null = null;

  constructor(options: ConsumerOptions) {
    this.options = options;
    this.inline = new InlineApplier(options.store);
    this.applier = options.applier ?? this.inline;
  }

  /** Which applier writes the index ('inline' or 'worker'). */
  get applierKind(): IndexApplier['kind'] {
    return this.applier.kind;
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

  /** Duplicates noted but not yet committed to the index (waiting, or in the batch in flight). */
  uncommittedDuplicates(): { duplicates: number; conflicts: number } {
    const flying = this.inFlight;
    return { duplicates: this.duplicates + (flying?.duplicates ?? 0), conflicts: this.conflicts + (flying?.conflicts ?? 0) };
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
   * Applies everything queued right now, synchronously on this thread (shutdown, also
   * after a worker failure). Not while a batch is in flight. Throws if the index refuses
   * a batch; that batch and the rest stay queued.
   */
  applyAll(): void {
    if (this.inFlight !== null) throw new Error('consumer: applyAll while a batch is in flight');
    while (!this.isIdle()) {
      const { batch, end } = this.takeBatch();
      let elapsedMs: number;
      try {
        elapsedMs = this.inline.apply(batch);
      } catch (err) {
        this.returnBatch(batch);
        throw err;
      }
      this.advance(end);
      this.options.onApplied(batch.rows, elapsedMs);
    }
    this.releaseIdle();
  }

  /**
   * Stops after indexing everything queued (through a concurrent applier while it works,
   * else on this thread), then closes the applier. Throws if the index refuses the rows.
   */
  async drain(): Promise<void> {
    if (this.applier.concurrent && this.lastError === null) {
      this.schedule(0);
      await this.whenIdle();
    }
    this.stop();
    while (this.inFlight !== null) await new Promise((resolve) => setImmediate(resolve));
    await this.applier.close();
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

  /** Sends the next batch to the applier; its outcome advances the queue or schedules a retry. */
  private tick(): void {
    if (this.stopped || this.isIdle() || this.inFlight !== null) return;
    const { batch, end } = this.takeBatch();
    this.inFlight = batch;
    let outcome: number | Promise<number>;
    try {
      outcome = this.applier.apply(batch);
    } catch (err) {
      this.failed(batch, err as Error);
      return;
    }
    if (typeof outcome === 'number') this.committed(batch, end, outcome);
    else
      outcome.then(
        (elapsedMs) => this.committed(batch, end, elapsedMs),
        (err: unknown) => this.failed(batch, err as Error),
      );
  }

  private committed(batch: IndexBatch, end: number, elapsedMs: number): void {
    this.inFlight = null;
    this.advance(end);
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
    this.inFlight = null;
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
