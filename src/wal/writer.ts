import path from 'node:path';
import { wrapError } from '../errors';
import { makeDirDurable, type FileHandleId, type LogDisk } from './disk';
import { WalError } from './errors';
import { encodeRecord, type WalRecord } from './record';
import { segmentName, type SegmentInfo } from './segments';

/** Where the writer continues after recovery: the open last segment and its valid size. */
export interface WriterStart {
  nextSeq: number;
  lastSegment: { info: SegmentInfo; size: number } | null;
}

/**
 * Where one group commit's records went: the segment (by its first seq), the byte offset of
 * the first record's line, and each line's bytes in record order (the next line starts where
 * one ends). The index keeps these positions instead of the events' JSON.
 */
export interface BatchPosition {
  segment: number;
  offset: number;
  lineBytes: number[];
}

/** Figures of one group commit, for metrics. */
export interface FlushStats {
  records: number;
  bytes: number;
  fsyncMs: number;
}

export interface WalWriterOptions<R extends WalRecord = WalRecord> {
  disk: LogDisk;
  walDir: string;
  /** A segment is rotated before a write would take it past this size. */
  segmentBytesMax: number;
  start: WriterStart;
  /** Called after each successful fdatasync with its records, in seq order, and where they lie in the log. */
  onDurable: (records: R[], stats: FlushStats, position: BatchPosition) => void;
  /** Called once when the log can no longer be trusted (fsync/EIO); the process must stop. */
  onFatal: (err: Error) => void;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Errors after which the partial write is cut away and writes may later resume. */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/**
 * Appends records to the NDJSON log with group commit: every append that arrives while a
 * flush is in progress shares the next single write + fdatasync. `append` assigns seqs
 * synchronously; the promise it returns resolves only after the fdatasync covering them.
 * It does not index anything; onDurable hands the records on.
 */
export class WalWriter<R extends WalRecord = WalRecord> {
  private readonly options: WalWriterOptions<R>;
  private nextSeqValue: number;
  private durableSeqValue: number;
  private queued: R[] = [];
  private waiters: Waiter[] = [];
  private flushing = false;
  /** A group commit is scheduled (setImmediate) and has not taken its batch yet. */
  private flushScheduled = false;
  private failure: Error | null = null;
  private handle: FileHandleId | null = null;
  private segment: SegmentInfo | null;
  private segmentSize: number;
  private closed = false;
  /** Set while the last write failed for lack of space; cleared by the next success. */
  noSpaceSince: number | null = null;

  constructor(options: WalWriterOptions<R>) {
    this.options = options;
    this.nextSeqValue = options.start.nextSeq;
    this.durableSeqValue = options.start.nextSeq - 1;
    this.segment = options.start.lastSegment?.info ?? null;
    this.segmentSize = options.start.lastSegment?.size ?? 0;
    if (this.segment !== null) this.handle = options.disk.openForWrite(this.segment.path);
  }

  /** The seq the next accepted event will get. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** The highest seq known to be fsynced. */
  get durableSeq(): number {
    return this.durableSeqValue;
  }

  /** Records accepted but not yet fsynced. */
  get pendingCount(): number {
    return this.nextSeqValue - 1 - this.durableSeqValue;
  }

  /**
   * True from the first append of a group commit until its write starts (within one
   * event-loop turn): other work of the turn (the index consumer) yields to it so that the
   * fsync starts first and no answer waits for indexing.
   */
  get flushPending(): boolean {
    return this.flushScheduled;
  }

  get failed(): Error | null {
    return this.failure;
  }

  get currentSegment(): { name: string | null; bytes: number } {
    return { name: this.segment?.name ?? null, bytes: this.segmentSize };
  }

  /**
   * Queues records for the next group commit. Their seqs must be nextSeq, nextSeq+1, ...
   * (callers read nextSeq synchronously before building them). Returns a promise that
   * settles when they are durable (or their write failed).
   */
  append(records: R[]): { firstSeq: number; durable: Promise<void> } {
    this.assertWritable();
    const firstSeq = this.nextSeqValue;
    for (const record of records) {
      if (record.seq !== this.nextSeqValue) throw new Error(`wal append: seq ${record.seq} out of order, expected ${this.nextSeqValue}`);
      this.queued.push(record);
      this.nextSeqValue += 1;
    }
    const durable = this.waitDurable(this.nextSeqValue - 1);
    this.scheduleFlush();
    return { firstSeq, durable };
  }

  /** Settles once `seq` is durable; rejects if the write that should cover it fails. */
  waitDurable(seq: number): Promise<void> {
    if (seq <= this.durableSeqValue) return Promise.resolve();
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** Waits for every queued record to be flushed, then closes the segment file. */
  async close(): Promise<void> {
    while ((this.flushing || this.queued.length > 0) && this.failure === null) {
      await this.waitDurable(this.nextSeqValue - 1).catch(() => undefined);
    }
    this.closed = true;
    if (this.handle !== null) {
      this.options.disk.close(this.handle);
      this.handle = null;
    }
  }

  private assertWritable(): void {
    if (this.failure !== null) {
      throw new WalError('failed', 'the log failed and the service is stopping for recovery', { cause: this.failure });
    }
    if (this.closed) throw new WalError('closed', 'the log is closed');
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.flushScheduled = true;
    // Let every request parsed in this tick join the same group commit.
    setImmediate(() => void this.flushLoop());
  }

  /**
   * Writes and fsyncs batch after batch: everything appended while one write + fdatasync
   * runs forms the next batch, which starts as soon as that fdatasync returns (its answers
   * are released first, as microtasks of the same turn).
   */
  private async flushLoop(): Promise<void> {
    this.flushScheduled = false;
    while (this.queued.length > 0 && this.failure === null) {
      const batch = this.queued;
      this.queued = [];
      await this.flushBatch(batch);
    }
    this.flushing = false;
  }

  private async flushBatch(batch: R[]): Promise<void> {
    const { disk } = this.options;
    const lines = batch.map((r) => encodeRecord(r.seq, r.eventJson, r.receivedAtMs));
    const text = lines.join('');
    const data = Buffer.from(text, 'utf8');
    const firstSeq = batch[0]!.seq;
    const lastSeq = batch[batch.length - 1]!.seq;
    let handle: FileHandleId;
    try {
      handle = this.ensureSegment(firstSeq, data.length);
    } catch (err) {
      await this.failBatch(firstSeq, wrapError(`wal append: open segment ${segmentName(firstSeq)}`, err), null);
      return;
    }
    const startSize = this.segmentSize;
    try {
      await disk.write(handle, data, startSize);
    } catch (err) {
      await this.failBatch(firstSeq, wrapError(`wal append: write segment ${this.segment!.name}`, err), startSize);
      return;
    }
    const fsyncStart = performance.now();
    try {
      // Durability point: the acknowledgement of every record in `batch` waits for this.
      await disk.fdatasync(handle);
    } catch (err) {
      this.fail(wrapError(`wal append: fdatasync segment ${this.segment!.name}`, err));
      return;
    }
    const fsyncMs = performance.now() - fsyncStart;
    this.segmentSize = startSize + data.length;
    this.durableSeqValue = lastSeq;
    this.noSpaceSince = null;
    this.releaseWaiters();
    // An all-ASCII batch (the usual case) has as many bytes per line as characters.
    const lineBytes = data.length === text.length ? lines.map((l) => l.length) : lines.map((l) => Buffer.byteLength(l, 'utf8'));
    const position: BatchPosition = { segment: this.segment!.firstSeq, offset: startSize, lineBytes };
    this.options.onDurable(batch, { records: batch.length, bytes: data.length, fsyncMs }, position);
  }

  /** Returns the handle to write `bytes` at, rotating to a new segment when the bound would be passed. */
  private ensureSegment(firstSeq: number, bytes: number): FileHandleId {
    const { disk, walDir, segmentBytesMax } = this.options;
    if (this.handle !== null && this.segment !== null && (this.segmentSize === 0 || this.segmentSize + bytes <= segmentBytesMax)) {
      return this.handle;
    }
    // The old segment is complete: every flush ended with its fdatasync.
    if (this.handle !== null) disk.close(this.handle);
    this.handle = null;
    makeDirDurable(disk, walDir);
    const name = segmentName(firstSeq);
    const info: SegmentInfo = { firstSeq, name, path: path.join(walDir, name) };
    const handle = disk.openForWrite(info.path);
    // A new segment's name must survive power loss before anything in it is acknowledged.
    disk.fsyncDir(walDir);
    this.handle = handle;
    this.segment = info;
    this.segmentSize = 0;
    return handle;
  }

  private releaseWaiters(): void {
    const still: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.seq <= this.durableSeqValue) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }

  /**
   * A write failed. Out of space: cut the partial bytes, give back the seqs, answer 503 to
   * this batch and everything queued behind it, and let the next append try again.
   * Anything else is fatal.
   */
  private async failBatch(firstSeq: number, err: Error, cutTo: number | null): Promise<void> {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!NO_SPACE_CODES.has(code)) {
      this.fail(err);
      return;
    }
    if (cutTo !== null && this.handle !== null) {
      try {
        await this.options.disk.truncate(this.handle, cutTo);
      } catch (truncateErr) {
        this.fail(wrapError('wal append: cut partial write after ENOSPC', truncateErr));
        return;
      }
    }
    this.queued = [];
    this.nextSeqValue = firstSeq;
    this.noSpaceSince ??= Date.now();
    const error = new WalError('no_space', `the log device is full: ${err.message}`, { cause: err });
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  /** Fail-stop: nothing more is acknowledged; no fsync retry (the page cache state is unknown). */
  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = new WalError('failed', `the log could not be made durable: ${err.message}`, { cause: err });
    this.queued = [];
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.failure);
    this.options.onFatal(err);
  }
}
