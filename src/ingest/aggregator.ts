import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { Consumer } from '../consumer/consumer';
import { AppError } from '../errors';
import { keyHash } from '../index/key-table';
import { PendingKeys, type PendingEntry } from './pending-keys';
import { IndexStore, type EventQuery, type IndexRow } from '../index/store';
import { makeDirDurable, NodeDisk, type LogDisk } from '../wal/disk';
import { canonicalEventJson, isTombstoneEventJson, type LogEvent, type WalRecord } from '../wal/record';
import { recoverLog, type RecoveryReport } from '../wal/recovery';
import { WalWriter, type FlushStats } from '../wal/writer';

/** An event that passed validation, with its timestamp as epoch milliseconds. */
export interface ValidEvent {
  event: LogEvent;
  tsMs: number;
}

/** The per-event outcome of a publish, in request order. */
export interface PublishOutcome {
  status: 'accepted' | 'duplicate';
  seq: number;
  conflict?: true;
}

/** The answer to POST /publish (seed fields plus results and conflicts). */
export interface PublishResult {
  received: number;
  accepted: number;
  duplicates: number;
  conflicts: number;
  message: string;
  results: PublishOutcome[];
}

export type ServiceState = 'starting' | 'recovering' | 'ready' | 'failed' | 'stopping' | 'stopped';

/** Hooks for metrics; every one optional. */
export interface AggregatorObserver {
  onFlush?(stats: FlushStats): void;
  onIndexBatch?(rows: number, elapsedMs: number): void;
  onPublish?(result: PublishResult): void;
}

export interface AggregatorOptions {
  config: Pick<Config, 'walDir' | 'databasePath' | 'queueMaxSize' | 'segmentBytesMax' | 'indexBatchMax' | 'retryAfterSeconds'> & Partial<Pick<Config, 'indexWorker'>>;
  logger: Logger;
  disk?: LogDisk;
  observer?: AggregatorObserver;
  /** Called once when the log fails (fsync/EIO): the process must exit for recovery. */
  onFatal?: (err: Error) => void;
}

/** A durable record on its way to the index, with the fields the index needs. */
interface QueuedRecord extends WalRecord {
  row: IndexRow;
}

/**
 * The first four fields of canonicalEventJson's output, each a JSON string token. Recovery
 * reads them without parsing the payload; anything else falls back to JSON.parse.
 */
const CANONICAL_HEAD = /^\{"topic":("(?:[^"\\]|\\.)*"),"event_id":("(?:[^"\\]|\\.)*"),"timestamp":("(?:[^"\\]|\\.)*"),"source":("(?:[^"\\]|\\.)*")[,}]/;

/** The value of a JSON string token: escapes only cost a JSON.parse when present. */
function jsonStringValue(token: string): string {
  return token.includes('\\') ? (JSON.parse(token) as string) : token.slice(1, -1);
}

/** Builds the index row for a logged event (used by recovery, which has only the JSON). */
export function rowFromEventJson(seq: number, eventJson: string): IndexRow {
  let topic: string;
  let eventId: string;
  let timestamp: string;
  let source: string;
  const head = CANONICAL_HEAD.exec(eventJson);
  if (head !== null) {
    topic = jsonStringValue(head[1]!);
    eventId = jsonStringValue(head[2]!);
    timestamp = jsonStringValue(head[3]!);
    source = jsonStringValue(head[4]!);
  } else {
    ({ topic, event_id: eventId, timestamp, source } = JSON.parse(eventJson) as LogEvent);
  }
  const tsMs = Date.parse(timestamp);
  return { seq, topic, eventId, source, tsMs: Number.isNaN(tsMs) ? 0 : tsMs, body: eventJson };
}

/**
 * The ingest pipeline: synchronous dedup -> log append (group commit) -> consumer ->
 * index, plus the recovery that rebuilds the dedup state at startup. Counts it returns
 * are exact: every accepted key is in the pending map from acceptance until indexed.
 */
export class Aggregator {
  private readonly options: AggregatorOptions;
  private readonly disk: LogDisk;
  private stateValue: ServiceState = 'starting';
  private readonly startedAt = Date.now();
  private store: IndexStore | null = null;
  private writer: WalWriter<QueuedRecord> | null = null;
  private consumer: Consumer | null = null;
  private readonly pending = new PendingKeys();
  private duplicatesTotal = 0;
  private conflictsTotal = 0;
  private recoveryValue: (RecoveryReport & { durationMs: number }) | null = null;
  private failure: Error | null = null;
  private readonly indexedListeners = new Set<(rows: IndexRow[]) => void>();
  /** Since when a full disk holds up recovery at start-up; null otherwise. */
  private noSpaceAtStartSince: number | null = null;
  /** Set when the shutdown drain could not index what the log holds (recovery replays it). */
  private drainError: Error | null = null;
  private openCancelled = false;
  private spacelessReadsFailed = false;

  constructor(options: AggregatorOptions) {
    this.options = options;
    this.disk = options.disk ?? new NodeDisk();
  }

  get state(): ServiceState {
    return this.stateValue;
  }

  get recovery(): (RecoveryReport & { durationMs: number }) | null {
    return this.recoveryValue;
  }

  get index(): IndexStore {
    if (this.store === null) throw new Error('aggregator: index not open');
    return this.store;
  }

  /**
   * Opens the index, replays the log after the checkpoint (yielding between chunks so
   * /health can answer "recovering"), then starts accepting writes.
   */
  async open(): Promise<RecoveryReport> {
    // A full disk at start-up (SQLite cannot even size its -shm file, or the replay cannot
    // write) is waited out as the running server waits it out: reads from the index as it
    // is, publishes 503 log_no_space, and recovery is tried again until space returns.
    for (;;) {
      try {
        const report = await this.recover();
        this.closeSpacelessReads();
        return report;
      } catch (err) {
        if (!isNoSpaceError(err)) {
          this.closeSpacelessReads();
          throw err;
        }
        if (this.noSpaceAtStartSince === null) {
          this.noSpaceAtStartSince = Date.now();
          this.options.logger.warn({ code: (err as NodeJS.ErrnoException).code }, `recovery: the disk is full (${(err as Error).message}); serving reads, refusing writes, retrying every ${NO_SPACE_RETRY_MS} ms`);
        }
        this.stateValue = 'recovering';
        this.openSpacelessReads();
        await new Promise((resolve) => setTimeout(resolve, NO_SPACE_RETRY_MS));
        this.closeSpacelessReads();
        if (this.openCancelled) throw new Error('recovery: stopped while waiting for disk space; nothing was written');
      }
    }
  }

  /** Ends open()'s wait for disk space (a stop while the disk is full); recovery has not run then. */
  cancelOpen(): void {
    this.openCancelled = true;
  }

  /** The index opened for reads only while a full disk holds up recovery; null when it cannot be opened either. */
  private openSpacelessReads(): void {
    try {
      this.store = new IndexStore(this.options.config.databasePath, { withoutSpace: true });
    } catch (err) {
      this.store = null;
      if (!this.spacelessReadsFailed) this.options.logger.warn({ err }, 'recovery: cannot open the index for reads while the disk is full');
      this.spacelessReadsFailed = true;
    }
  }

  private closeSpacelessReads(): void {
    if (this.noSpaceAtStartSince === null || this.stateValue === 'ready') return;
    this.store?.close();
    this.store = null;
  }

  private async recover(): Promise<RecoveryReport> {
    const { config, logger } = this.options;
    this.stateValue = 'recovering';
    const started = performance.now();
    // Create the log directory (and a new data dir) with durable names before the index
    // creates the data dir by itself, which would leave its name unsynced.
    try {
      makeDirDurable(this.disk, config.walDir);
    } catch (err) {
      this.stateValue = 'failed';
      throw err;
    }
    const store = new IndexStore(config.databasePath);
    this.closeSpacelessReads();
    this.store = store;
    if (store.schemaReset) logger.warn('recovery: the index had an older schema; dropped it, rebuilding from the log');
    const { checkpointSeq } = store.counters;
    logger.info({ checkpointSeq, walDir: config.walDir }, 'recovery: replaying log after checkpoint');
    let recovered;
    try {
      recovered = await recoverLog({
        disk: this.disk,
        walDir: config.walDir,
        checkpointSeq,
        chunkRecords: config.indexBatchMax,
        onRecords: async (records) => {
          // Tombstones left by `logagg repair` hold a seq but no event.
          store.applyBatch(records.filter((r) => !isTombstoneEventJson(r.eventJson)).map((r) => rowFromEventJson(r.seq, r.eventJson)));
          await new Promise<void>((resolve) => setImmediate(resolve));
        },
      });
    } catch (err) {
      store.close();
      this.stateValue = 'failed';
      throw err;
    }
    const { start, report } = recovered;
    if (report.tornTail !== null) {
      logger.warn({ ...report.tornTail }, `recovery: cut torn tail of ${report.tornTail.bytesDropped} bytes at offset ${report.tornTail.offset}`);
    }
    if (store.counters.checkpointSeq + 1 > start.nextSeq) {
      logger.warn({ checkpointSeq: store.counters.checkpointSeq, logLastSeq: start.nextSeq - 1 }, 'recovery: the index is ahead of the log (segments missing?); continuing after the index');
      start.nextSeq = store.counters.checkpointSeq + 1;
    }
    this.duplicatesTotal = store.counters.duplicatesTotal;
    this.conflictsTotal = store.counters.conflictsTotal;

    this.consumer = new Consumer({
      store,
      batchMax: config.indexBatchMax,
      logger,
      // Live rows are proven new by publish's exact dedup, so a worker may append them blindly.
      worker: config.indexWorker === true ? { databasePath: config.databasePath } : undefined,
      onApplied: (rows, elapsedMs) => {
        for (const row of rows) {
          this.pending.removeSeq(row.keyHash ?? keyHash(row.topic, row.eventId), row.seq);
        }
        this.options.observer?.onIndexBatch?.(rows.length, elapsedMs);
        // A failing listener must not look like a failed index batch (which would be retried).
        for (const listener of this.indexedListeners) {
          try {
            listener(rows);
          } catch (err) {
            logger.error({ err }, 'index listener failed');
          }
        }
      },
    });
    this.writer = new WalWriter<QueuedRecord>({
      disk: this.disk,
      walDir: config.walDir,
      segmentBytesMax: config.segmentBytesMax,
      start,
      retryAfterSeconds: config.retryAfterSeconds,
      onDurable: (records, stats) => {
        this.consumer!.enqueue(records.map((r) => r.row));
        this.options.observer?.onFlush?.(stats);
      },
      onFatal: (err) => {
        this.failure = err;
        this.stateValue = 'failed';
        logger.fatal({ err }, 'log failed; refusing writes and stopping for recovery');
        this.options.onFatal?.(err);
      },
    });
    this.recoveryValue = { ...report, durationMs: performance.now() - started };
    this.stateValue = 'ready';
    if (this.noSpaceAtStartSince !== null) logger.info('recovery: space returned');
    this.noSpaceAtStartSince = null;
    logger.info({ ...report, tornTail: report.tornTail !== null, durationMs: Math.round(this.recoveryValue.durationMs) }, 'recovery: done, accepting writes');
    return report;
  }

  /**
   * Dedups `events` against the index, the not-yet-indexed log and each other, appends
   * the new ones, and resolves once they (and any pending original a duplicate names)
   * are fsynced. Throws AppError (503) when writes cannot be accepted; nothing is written then.
   */
  async publish(events: ValidEvent[]): Promise<PublishResult> {
    const writer = this.assertWritable();
    const { config } = this.options;

    // Decide each event synchronously, so concurrent requests see each other's keys.
    const results: PublishOutcome[] = [];
    const fresh: QueuedRecord[] = [];
    const added: Array<[number, PendingEntry]> = [];
    let waitForSeq = 0;
    let nextSeq = writer.nextSeq;
    let duplicates = 0;
    let conflicts = 0;
    for (const { event, tsMs } of events) {
      const eventJson = canonicalEventJson(event);
      const hash = keyHash(event.topic, event.event_id);
      const pending = this.pending.get(hash, event.topic, event.event_id);
      const original = pending ?? this.store!.lookup(event.topic, event.event_id, hash);
      if (original !== undefined) {
        const originalJson = pending !== undefined ? pending.eventJson : (original as { body: string }).body;
        const outcome: PublishOutcome = { status: 'duplicate', seq: original.seq };
        if (originalJson !== eventJson) {
          outcome.conflict = true;
          conflicts += 1;
        }
        // A duplicate of a not-yet-durable original is answered only once the original is.
        if (pending !== undefined) waitForSeq = Math.max(waitForSeq, pending.seq);
        duplicates += 1;
        results.push(outcome);
        continue;
      }
      const seq = nextSeq;
      nextSeq += 1;
      const entry: PendingEntry = { seq, eventJson, topic: event.topic, eventId: event.event_id, next: null };
      this.pending.add(hash, entry);
      added.push([hash, entry]);
      fresh.push({ seq, eventJson, row: { seq, topic: event.topic, eventId: event.event_id, source: event.source, tsMs, body: eventJson, keyHash: hash } });
      results.push({ status: 'accepted', seq });
    }

    // Only new events grow the backlog: a retry made of duplicates writes nothing and passes.
    const backlog = this.consumer!.size + writer.pendingCount;
    if (fresh.length > 0 && backlog + fresh.length > config.queueMaxSize) {
      for (const [hash, entry] of added) this.pending.removeSeq(hash, entry.seq);
      throw new AppError('backlog_full', `backlog of ${backlog} events is over QUEUE_MAX_SIZE=${config.queueMaxSize}`, {
        retryAfterSeconds: config.retryAfterSeconds,
      });
    }

    try {
      if (fresh.length > 0) {
        const { durable } = writer.append(fresh);
        waitForSeq = Math.max(waitForSeq, fresh[fresh.length - 1]!.seq);
        await durable;
      }
      await writer.waitDurable(waitForSeq);
    } catch (err) {
      // Nothing of this request is acknowledged: forget its keys so a retry is accepted.
      for (const [hash, entry] of added) this.pending.removeSeq(hash, entry.seq);
      throw err;
    }

    this.duplicatesTotal += duplicates;
    this.conflictsTotal += conflicts;
    if (duplicates > 0) this.consumer!.noteDuplicates(duplicates, conflicts);
    if (duplicates > 0) this.logDuplicates(events, results);
    const result: PublishResult = {
      received: events.length,
      accepted: fresh.length,
      duplicates,
      conflicts,
      message: `Received ${events.length} events, accepted ${fresh.length}, rejected ${duplicates} duplicates`,
      results,
    };
    this.options.observer?.onPublish?.(result);
    return result;
  }

  /**
   * One line per dropped duplicate, as the seed logs them: debug for plain retries (they
   * are routine under at-least-once delivery), warn for conflicts (same key, other content).
   */
  private logDuplicates(events: ValidEvent[], results: PublishOutcome[]): void {
    const { logger } = this.options;
    const debug = logger.isLevelEnabled('debug');
    events.forEach(({ event }, index) => {
      const outcome = results[index]!;
      if (outcome.status !== 'duplicate' || (!debug && outcome.conflict !== true)) return;
      const fields = { topic: event.topic, event_id: event.event_id, source: event.source, seq: outcome.seq };
      if (outcome.conflict === true) logger.warn(fields, 'conflicting duplicate dropped: same (topic, event_id), other content');
      else logger.debug(fields, 'duplicate event detected and dropped');
    });
  }

  /**
   * Calls `listener` with every batch of rows the consumer commits to the index, in seq
   * order, from now on (the live tail); rows replayed by recovery are not announced.
   * Returns the function that unsubscribes.
   */
  onIndexed(listener: (rows: IndexRow[]) => void): () => void {
    this.indexedListeners.add(listener);
    return () => this.indexedListeners.delete(listener);
  }

  /** Stored events in publish order. Reads what the index has; not-yet-indexed events follow shortly. */
  queryEvents(query: EventQuery): Array<{ seq: number; body: string }> {
    return this.index.queryEvents(query);
  }

  /** Lifetime counters (surviving restarts) and live figures. */
  stats(): Record<string, unknown> {
    const counters = this.store?.counters;
    const uniqueProcessed = counters?.uniqueTotal ?? 0;
    const acceptedTotal = this.writer?.durableSeq ?? counters?.checkpointSeq ?? 0;
    const uptimeSeconds = (Date.now() - this.startedAt) / 1000;
    return {
      received: acceptedTotal + this.duplicatesTotal,
      unique_processed: uniqueProcessed,
      duplicate_dropped: this.duplicatesTotal,
      conflicts: this.conflictsTotal,
      topics: this.store?.topics() ?? [],
      uptime_seconds: Math.round(uptimeSeconds * 10) / 10,
      uptime_human: formatUptime(uptimeSeconds),
      accepted: acceptedTotal,
      queue_size: this.queueSize(),
      checkpoint_seq: counters?.checkpointSeq ?? 0,
      state: this.stateValue,
    };
  }

  /** Events accepted but not yet indexed (unsynced plus queued). */
  queueSize(): number {
    return (this.consumer?.size ?? 0) + (this.writer?.pendingCount ?? 0);
  }

  /** The /health answer and whether writes can be accepted now. */
  health(): { ok: boolean; body: Record<string, unknown> } {
    const noSpace = this.writer?.noSpaceSince ?? this.noSpaceAtStartSince;
    let status: string = this.stateValue === 'ready' ? 'healthy' : this.stateValue;
    if ((this.stateValue === 'ready' || this.stateValue === 'recovering') && noSpace !== null) status = 'no_space';
    // A full backlog refuses every new event: not a place to send writes.
    else if (this.stateValue === 'ready' && this.queueSize() >= this.options.config.queueMaxSize) status = 'backlog_full';
    else if (this.stateValue === 'ready' && this.consumer?.error) status = 'degraded';
    const ok = status === 'healthy' || status === 'degraded';
    const segment = this.writer?.currentSegment;
    return {
      ok,
      body: {
        status,
        consumer_running: this.consumer?.running ?? false,
        queue_size: this.queueSize(),
        timestamp: new Date().toISOString(),
        log: {
          durable_seq: this.writer?.durableSeq ?? null,
          segment: segment?.name ?? null,
          segment_bytes: segment?.bytes ?? 0,
          no_space_since: noSpace === null ? null : new Date(noSpace).toISOString(),
          error: this.failure?.message ?? null,
        },
        index: { checkpoint_seq: this.store?.counters.checkpointSeq ?? 0, error: this.consumer?.error?.message ?? null },
      },
    };
  }

  /** Refuses writes, flushes what was accepted, indexes it and closes files. Idempotent. */
  async close(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    const failed = this.stateValue === 'failed';
    this.stateValue = 'stopping';
    if (this.writer !== null) await this.writer.close();
    if (this.consumer !== null) {
      // After a log failure the queue still holds only durable records: index them too.
      const queued = this.consumer.size;
      try {
        await this.consumer.drain();
      } catch (err) {
        // Nothing is lost (every queued event is in the fsynced log), but the stop is not clean.
        this.drainError = err as Error;
        this.options.logger.error(
          { err, eventsNotIndexed: this.consumer.size || queued },
          `shutdown: could not index ${this.consumer.size || queued} logged events (${(err as Error).message}); they stay in the log and are replayed into the index on restart`,
        );
      }
    }
    if (this.noSpaceAtStartSince !== null) this.closeSpacelessReads();
    else this.store?.close();
    this.stateValue = failed || this.drainError !== null ? 'failed' : 'stopped';
  }

  private assertWritable(): WalWriter<QueuedRecord> {
    const retryAfterSeconds = this.options.config.retryAfterSeconds;
    switch (this.stateValue) {
      case 'ready':
        return this.writer!;
      case 'starting':
      case 'recovering':
        if (this.noSpaceAtStartSince !== null) {
          throw new AppError('log_no_space', 'the disk is full: the service started read-only and accepts writes once space returns', { retryAfterSeconds });
        }
        throw new AppError('recovering', 'recovery is replaying the log; no write is accepted before the dedup state is complete', { retryAfterSeconds });
      case 'failed':
        throw new AppError('log_failed', 'the log failed and the service is stopping for recovery', { retryAfterSeconds, cause: this.failure });
      default:
        throw new AppError('shutting_down', 'the service is shutting down', { retryAfterSeconds });
    }
  }
}

/** How often recovery is tried again while a full disk holds it up at start-up. */
const NO_SPACE_RETRY_MS = 250;

/** Errors that mean "no space left" (the log's or SQLite's), which wait for space instead of failing. */
export function isNoSpaceError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 5; e = e.cause as typeof e, depth += 1) {
    if (typeof e.code === 'string' && NO_SPACE_ERROR_CODES.has(e.code)) return true;
  }
  return false;
}

const NO_SPACE_ERROR_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE']);

/** "1h 0m 0s", as the seed prints uptime. */
export function formatUptime(seconds: number): string {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return `${h}h ${m}m ${s}s`;
}
