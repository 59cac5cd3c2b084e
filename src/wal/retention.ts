import path from 'node:path';
import type { Logger } from 'pino';
import { FIXED_LIMITS } from '../config/config';
import type { LogDisk } from './disk';
import { readLastRecord } from './reader';
import { listSegments, type SegmentInfo } from './segments';

/**
 * Retention: the log keeps at most RETENTION_BYTES of segments and none whose newest event
 * is older than RETENTION_MS, deleting whole closed segments, oldest first. A deletion runs
 * four steps, in this order, each made durable before the next starts:
 *   a. the index drops the rows of the segment and records first_seq (IndexStore.dropThrough,
 *      committed with synchronous=FULL: its WAL fsync);
 *   b. the marker `wal/RETAINED` names the first retained seq (temp file fsynced, renamed,
 *      wal dir fsynced), so that log-only readers know why the log starts after seq 1;
 *   c. the segment file is unlinked;
 *   d. the wal dir is fsynced, making the unlink durable.
 * A crash between any two steps leaves a state the next start finishes (finishDeletions):
 * segments wholly below the first retained seq are unlinked again, never replayed.
 */

/** The marker file in the wal dir: `{"first_seq":N}`, the first seq the log keeps. */
export const RETAINED_MARKER_NAME = 'RETAINED';

/** The marker's path in a wal dir. */
export function retainedMarkerPath(walDir: string): string {
  return path.join(walDir, RETAINED_MARKER_NAME);
}

/** The first retained seq the marker names, or null when there is no marker (nothing was ever deleted). */
export function readRetainedMarker(disk: LogDisk, walDir: string): number | null {
  const file = retainedMarkerPath(walDir);
  if (!disk.exists(file)) return null;
  const text = disk.readFile(file).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  const firstSeq = (parsed as { first_seq?: unknown } | null)?.first_seq;
  // The marker is written whole and renamed into place: anything else is damage, not a crash.
  if (typeof firstSeq !== 'number' || !Number.isSafeInteger(firstSeq) || firstSeq < 1) {
    throw new Error(`wal retention: marker ${file} is damaged (${JSON.stringify(text.slice(0, 80))}); it must hold {"first_seq":N}`);
  }
  return firstSeq;
}

/**
 * Step b: writes the marker so that it survives power loss whole or not at all: a temp
 * file written and fsynced, renamed over the marker, then the wal dir fsynced (the rename's
 * durability point).
 */
export function writeRetainedMarker(disk: LogDisk, walDir: string, firstSeq: number): void {
  const file = retainedMarkerPath(walDir);
  const temp = `${file}.tmp`;
  disk.writeFileDurably(temp, Buffer.from(`${JSON.stringify({ first_seq: firstSeq })}\n`, 'utf8'));
  disk.renameSync(temp, file);
  disk.fsyncDir(walDir);
}

/** The log as retention left it: where it starts, the segments kept and those awaiting their unlink. */
export interface RetainedLog {
  /** The first seq the log keeps: the marker's (or `atLeast`'s), 1 when nothing was ever deleted. */
  firstSeq: number;
  /** Whether a marker explains a log that starts after seq 1. */
  marked: boolean;
  /** The segments that may hold seqs >= firstSeq, in seq order: what readers read. */
  segments: SegmentInfo[];
  /** Segments wholly below firstSeq: deleted by retention, their unlink not done yet (or undone by a power loss). */
  expired: SegmentInfo[];
}

/**
 * Splits the log's segments at the first retained seq (the marker's, or `atLeast` when
 * that is higher, e.g. the index's first_seq): every log-only reader (verify, export,
 * replay, tail, rebuild) reads `segments` and expects `firstSeq` first. A segment is wholly
 * below firstSeq when the next segment starts at or before it.
 */
export function retainedSegments(disk: LogDisk, walDir: string, atLeast = 1): RetainedLog {
  const marker = readRetainedMarker(disk, walDir);
  const bound = Math.max(marker ?? 1, atLeast);
  const all = listSegments(disk, walDir);
  let kept = 0;
  while (kept + 1 < all.length && all[kept + 1]!.firstSeq <= bound) kept += 1;
  const segments = all.slice(kept);
  const expired = all.slice(0, kept);
  // Past a deletion the log starts with the first kept segment's first record.
  const firstSeq = Math.max(marker ?? 1, expired.length > 0 ? segments[0]!.firstSeq : 1);
  return { firstSeq, marked: marker !== null, segments, expired };
}

/**
 * Finishes deletions a crash interrupted (run at start-up before the log is replayed, and
 * before each retention run): with `indexFirstSeq` the index's first_seq (durable, step a),
 * it writes the marker if it lags (step b), unlinks segments wholly below it (step c) and
 * fsyncs the wal dir (step d). Returns the log as retained.
 */
export function finishDeletions(disk: LogDisk, walDir: string, indexFirstSeq: number): RetainedLog {
  const retained = retainedSegments(disk, walDir, indexFirstSeq);
  if (retained.expired.length === 0) return retained;
  const marker = readRetainedMarker(disk, walDir);
  if ((marker ?? 1) < retained.firstSeq) writeRetainedMarker(disk, walDir, retained.firstSeq);
  for (const segment of retained.expired) {
    if (disk.exists(segment.path)) disk.unlink(segment.path);
  }
  disk.fsyncDir(walDir);
  return { ...retained, marked: true, expired: [] };
}

/** Total bytes of the log's segments now (the active one included), for /stats and RETENTION_BYTES. */
export function logBytes(disk: LogDisk, segments: SegmentInfo[]): number {
  let total = 0;
  for (const segment of segments) {
    try {
      total += disk.fileSize(segment.path);
    } catch {
      // Unlinked since it was listed: it holds no bytes any more.
    }
  }
  return total;
}

/** The index as retention needs it (the IndexStore; an interface so that the log layer does not import the index). */
export interface RetentionIndex {
  /** The last seq the index holds (its checkpoint): only segments wholly at or below it may go. */
  checkpointSeq(): number;
  /** The index's first_seq (every row below it is deleted). */
  firstSeq(): number;
  /** IndexStore.dropThrough: step a (the cluster's drop is a PostgreSQL commit, hence the promise). */
  dropThrough(lastSeq: number, deletedAtMs: number, options: { durable: boolean }): number | Promise<number>;
}

/** A step of a deletion, reported to `onStep` in order (the power-loss tests assert the order). */
export type RetentionStep =
  | { step: 'index_chunk'; lastSeq: number }
  | { step: 'index_durable'; lastSeq: number }
  | { step: 'marker_durable'; firstSeq: number }
  | { step: 'unlinked'; segment: string }
  | { step: 'dir_synced' };

/** Why a segment was deleted. */
export type RetentionReason = 'bytes' | 'age';

/** One segment deleted by a run. */
export interface RetentionDeletion {
  segment: string;
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  rowsDeleted: number;
  reason: RetentionReason;
  deletedAtMs: number;
}

/** Options of RetentionRunner. */
export interface RetentionOptions {
  disk: LogDisk;
  walDir: string;
  /** RETENTION_BYTES; 0 = no bound. */
  retentionBytes: number;
  /** RETENTION_MS; 0 = no bound. */
  retentionMs: number;
  index: RetentionIndex;
  /** The segment the writer appends to: never deleted. */
  activeSegmentName: () => string | null;
  /** Seqs whose rows one index transaction deletes; a segment with more is dropped in several, yielding between. */
  dropSeqsMax: number;
  /** How often a run is started without a poke (RETENTION_MS needs a clock). */
  checkIntervalMs: number;
  now?: () => number;
  onDeleted?: (deletion: RetentionDeletion) => void;
  onError?: (err: Error) => void;
  onStep?: (step: RetentionStep) => void;
}

/**
 * Deletes segments past RETENTION_BYTES or RETENTION_MS, one segment per run and the
 * oldest first, never the active segment nor one the index checkpoint does not cover
 * wholly. Runs are started by `poke` (after each index commit) and a timer, one at a time;
 * a run's index work is cut into transactions of dropSeqsMax seqs with a turn of the event
 * loop between them, so publishes are not held up long.
 */
export class RetentionRunner {
  private readonly options: RetentionOptions;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  /** The last run started: the next one waits for it. */
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(options: RetentionOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Whether any bound is set (both 0: the runner does nothing). */
  get enabled(): boolean {
    return this.options.retentionBytes > 0 || this.options.retentionMs > 0;
  }

  /** Starts the timer. */
  start(): void {
    if (!this.enabled || this.timer !== null) return;
    this.timer = setInterval(() => this.poke(), this.options.checkIntervalMs);
    this.timer.unref();
  }

  /** Asks for a run soon (coalesced: many pokes, one run). */
  poke(): void {
    if (!this.enabled || this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.stopped) void this.runUntilDone().catch((err: unknown) => this.options.onError?.(err as Error));
    });
  }

  /** Stops the timer and waits for a run in progress to reach the end of its current step. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.running.catch(() => undefined);
  }

  /**
   * Deletes segments until nothing more is due, after any run in progress (runs never
   * overlap). The service pokes it; tests call it directly. A failed step is retried by a
   * later run: every step is idempotent and checked again.
   */
  runUntilDone(): Promise<RetentionDeletion[]> {
    const run = this.running
      .catch(() => undefined)
      .then(async () => {
        const done: RetentionDeletion[] = [];
        while (!this.stopped) {
          const deletion = await this.runOnce();
          if (deletion === null) break;
          done.push(deletion);
          // One segment per turn: yield before the next.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        return done;
      });
    this.running = run;
    return run;
  }

  /** Deletes the oldest due segment; null when none is due. Callers go through runUntilDone, one run at a time. */
  private async runOnce(): Promise<RetentionDeletion | null> {
    const { disk, walDir, index } = this.options;
    const step = (s: RetentionStep): void => this.options.onStep?.(s);
    // A deletion a crash or failure interrupted is finished first.
    const retained = finishDeletions(disk, walDir, index.firstSeq());
    const plan = this.plan(retained.segments);
    if (plan === null) return null;
    const { segment, lastSeq, reason } = plan;
    const deletedAtMs = this.now();

    // a. Index rows, in bounded transactions; the last one commits with synchronous=FULL:
    //    its fsync of the SQLite WAL makes it and every earlier commit (the checkpoint that
    //    covers lastSeq included) durable. Nothing is unlinked before it returns.
    let rowsDeleted = 0;
    for (let from = Math.max(index.firstSeq(), segment.firstSeq); from + this.options.dropSeqsMax - 1 < lastSeq; from = index.firstSeq()) {
      rowsDeleted += await index.dropThrough(from + this.options.dropSeqsMax - 1, deletedAtMs, { durable: false });
      step({ step: 'index_chunk', lastSeq: from + this.options.dropSeqsMax - 1 });
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.stopped) return null;
    }
    rowsDeleted += await index.dropThrough(lastSeq, deletedAtMs, { durable: true });
    step({ step: 'index_durable', lastSeq });

    // b. The marker: temp file fsynced, renamed, wal dir fsynced.
    writeRetainedMarker(disk, walDir, lastSeq + 1);
    step({ step: 'marker_durable', firstSeq: lastSeq + 1 });

    // c. The segment's name goes.
    disk.unlink(segment.path);
    step({ step: 'unlinked', segment: segment.name });

    // d. The wal dir fsync makes the unlink durable (undone by a power loss before it, the
    //    next start unlinks the segment again: it lies wholly below the marker).
    disk.fsyncDir(walDir);
    step({ step: 'dir_synced' });

    const deletion: RetentionDeletion = {
      segment: segment.name,
      firstSeq: segment.firstSeq,
      lastSeq,
      bytes: plan.bytes,
      rowsDeleted,
      reason,
      deletedAtMs,
    };
    this.options.onDeleted?.(deletion);
    return deletion;
  }

  /** The oldest segment due for deletion, if it is closed and wholly indexed. */
  private plan(segments: SegmentInfo[]): { segment: SegmentInfo; lastSeq: number; bytes: number; reason: RetentionReason } | null {
    const { disk, retentionBytes, retentionMs, index } = this.options;
    const oldest = segments[0];
    const next = segments[1];
    if (oldest === undefined || next === undefined) return null;
    // Closed (the writer has moved on) and wholly covered by the index checkpoint.
    if (oldest.name === this.options.activeSegmentName()) return null;
    const lastSeq = next.firstSeq - 1;
    if (lastSeq > index.checkpointSeq()) return null;
    const bytes = logBytes(disk, [oldest]);
    if (retentionBytes > 0 && logBytes(disk, segments) > retentionBytes) return { segment: oldest, lastSeq, bytes, reason: 'bytes' };
    if (retentionMs > 0 && this.newestReceivedMs(oldest) < this.now() - retentionMs)
      return { segment: oldest, lastSeq, bytes, reason: 'age' };
    return null;
  }

  /**
   * When the segment's newest event was accepted: its last record's receivedAtMs (record
   * format 2), else the file's mtime (format-1 records carry no acceptance time; the last
   * append to a closed segment is its newest event's, give or take a group commit).
   */
  private newestReceivedMs(segment: SegmentInfo): number {
    const last = readLastRecord(this.options.disk, segment);
    return last?.receivedAtMs ?? this.options.disk.modifiedAtMs(segment.path);
  }
}

/** What a service's pipeline (the Aggregator, the ClusterPipeline) gives its retention; the rest is the same for both. */
export interface ServiceRetentionOptions {
  disk: LogDisk;
  walDir: string;
  config: { retentionBytes?: number; retentionMs?: number };
  index: RetentionIndex;
  activeSegmentName: () => string | null;
  logger: Pick<Logger, 'info' | 'error'>;
  observer?: { onRetentionDeletion?(deletion: RetentionDeletion): void; onRetentionStep?(step: RetentionStep): void };
  /** A failed run's error before it is logged; true when the caller handled it (nothing is logged). */
  onError?: (err: Error) => boolean;
}

/**
 * The service's retention runner, started and poked once (a segment may be due already):
 * FIXED_LIMITS' chunk size and check interval, deletions logged at info and passed to the
 * observer, failed runs logged at error (every step is retried by a later run).
 */
export function startServiceRetention(options: ServiceRetentionOptions): RetentionRunner {
  const { logger, observer } = options;
  const runner = new RetentionRunner({
    disk: options.disk,
    walDir: options.walDir,
    retentionBytes: options.config.retentionBytes ?? 0,
    retentionMs: options.config.retentionMs ?? 0,
    index: options.index,
    activeSegmentName: options.activeSegmentName,
    dropSeqsMax: FIXED_LIMITS.retentionDropSeqsMax,
    checkIntervalMs: FIXED_LIMITS.retentionCheckMs,
    onDeleted: (deletion) => {
      logger.info({ ...deletion }, `retention: deleted segment ${deletion.segment} (${deletion.reason})`);
      observer?.onRetentionDeletion?.(deletion);
    },
    onStep: (step) => observer?.onRetentionStep?.(step),
    onError: (err) => {
      if (options.onError?.(err) !== true) logger.error({ err }, `retention: deletion failed, retried on the next run: ${err.message}`);
    },
  });
  runner.start();
  runner.poke();
  return runner;
}
