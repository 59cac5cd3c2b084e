import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { Consumer } from '../consumer/consumer';
import { AppError } from '../errors';
import { Checkpointer } from '../index/checkpointer';
import { dedupKeyOf, eventDigestOf, keyNumberOf } from '../index/key-hash';
import { PendingKeys, type PendingEntry } from './pending-keys';
import { ReadPool, readInline, type ReadStoreOptions, type SnapshotPage } from '../index/read-pool';
import { IndexStore, type EventQuery, type IndexRow, type PageRow } from '../index/store';
import type { EventFilter } from '../query/event-filter';
import type { Histogram } from '../query/histogram';
import { makeDirDurable, NodeDisk, type LogDisk } from '../wal/disk';
import { rowFromEventJson } from '../wal/event-row';
import { readLog } from '../wal/reader';
import { canonicalEventJson, isTombstoneEventJson, type LogEvent, type WalRecord } from '../wal/record';
import { recoverLog, type RecoveryReport } from '../wal/recovery';
import {
  finishDeletions,
  logBytes,
  retainedSegments,
  startServiceRetention,
  type RetentionDeletion,
  type RetentionRunner,
  type RetentionStep,
} from '../wal/retention';
import { WalWriter, type FlushStats } from '../wal/writer';

/** An event that passed validation, with its timestamp as epoch milliseconds. */
export interface ValidEvent {
  event: LogEvent;
  tsMs: number;
  /** canonicalEventJson(event), when the validator has built it already (it serialised the payload to bound its size). */
  eventJson?: string;
}

/** The per-event outcome of a publish, in request order. */
export interface PublishOutcome {
  status: 'accepted' | 'duplicate';
  seq: number;
  conflict?: true;
}

/** What one publish did: exact counts and one outcome per event (the HTTP answer adds the seed's message). */
export interface PublishReport {
  received: number;
  accepted: number;
  duplicates: number;
  conflicts: number;
  results: PublishOutcome[];
}

export type ServiceState = 'starting' | 'recovering' | 'ready' | 'failed' | 'stopping' | 'stopped';

/** The state as far as writes go: `ready` is split into healthy, degraded and no_space. */
export type ServiceCondition =
  | 'healthy'
  | 'degraded'
  | 'no_space'
  | 'backlog_full'
  /** Cluster mode: the shared PostgreSQL does not answer. */
  | 'database_unavailable'
  | Exclude<ServiceState, 'ready'>;

/** What Aggregator.snapshot reports: lifetime counters (surviving restarts) and live figures. */
export interface PipelineSnapshot {
  state: ServiceState;
  condition: ServiceCondition;
  startedAtMs: number;
  /** Events accepted into the log, lifetime (the last durable seq). */
  acceptedTotal: number;
  /** Events in the index, lifetime. */
  uniqueTotal: number;
  /** Dedup keys stored (those of events retention deleted included, until the horizon sweeps them). */
  dedupKeys: number;
  duplicatesTotal: number;
  conflictsTotal: number;
  checkpointSeq: number;
  queueSize: number;
  /** Null before the log is open. */
  durableSeq: number | null;
  segment: { name: string | null; bytes: number } | null;
  noSpaceSinceMs: number | null;
  logError: string | null;
  consumerRunning: boolean;
  indexError: string | null;
}

/** Hooks for metrics; every one optional. */
export interface AggregatorObserver {
  onFlush?(stats: FlushStats): void;
  onIndexBatch?(rows: number, elapsedMs: number): void;
  onPublish?(result: PublishReport): void;
  onRetentionDeletion?(deletion: RetentionDeletion): void;
  /** Each step of a deletion, in order (the power-loss tests check it). */
  onRetentionStep?(step: RetentionStep): void;
}

/** Where the log starts and what retention deleted, for /stats and /metrics. */
export interface RetentionSnapshot {
  /** The oldest seq kept (1 until retention deletes). */
  firstSeq: number;
  /** Bytes of the log's segments now. */
  logBytes: number;
  /** Index rows deleted by retention, lifetime. */
  expiredTotal: number;
  lastDeletionMs: number | null;
}

export interface AggregatorOptions {
  config: Pick<Config, 'walDir' | 'databasePath' | 'queueMaxSize' | 'segmentBytesMax' | 'indexBatchMax' | 'retryAfterSeconds'> &
    Partial<
      Pick<
        Config,
        | 'retentionBytes'
        | 'retentionMs'
        | 'readWorkers'
        | 'readQueueMax'
        | 'readTimeoutMs'
        | 'dedupFilterBytes'
        | 'dedupHorizonMs'
        | 'dedupGenerationKeys'
      >
    >;
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
  private retention: RetentionRunner | null = null;
  private readonly pending = new PendingKeys();
  private recoveryValue: (RecoveryReport & { durationMs: number }) | null = null;
  private failure: Error | null = null;
  private readonly indexedListeners = new Set<(rows: IndexRow[]) => void>();
  /** Since when a full disk holds up recovery at start-up; null otherwise. */
  private noSpaceAtStartSince: number | null = null;
  /** Set when the shutdown drain could not index what the log holds (recovery replays it). */
  private drainError: Error | null = null;
  private openCancelled = false;
  private spacelessReadsFailed = false;
  /** The read workers (READ_WORKERS); null before recovery is done, and with READ_WORKERS=0 (reads inline). */
  private reads: ReadPool | null = null;
  /** Runs the index's WAL checkpoints off this thread (see checkpointer.ts). */
  private checkpointer: Checkpointer | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;

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
          this.options.logger.warn(
            { code: (err as NodeJS.ErrnoException).code },
            `recovery: the disk is full (${(err as Error).message}); serving reads, refusing writes, retrying every ${NO_SPACE_RETRY_MS} ms`,
          );
        }
        this.stateValue = 'recovering';
        this.openSpacelessReads();
        await new Promise((resolve) => setTimeout(resolve, NO_SPACE_RETRY_MS));
        this.closeSpacelessReads();
        if (this.openCancelled) throw new Error('recovery: stopped while waiting for disk space; nothing was written', { cause: err });
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
      this.store = new IndexStore(this.options.config.databasePath, { ...this.storeOptions(), logDisk: this.disk, withoutSpace: true });
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
    const store = new IndexStore(config.databasePath, {
      ...this.storeOptions(),
      logDisk: this.disk,
      loadKeys: false,
      keys: {
        filterPath: `${config.databasePath}.keys-filter`,
        ...(config.dedupFilterBytes === undefined ? {} : { filterBytes: config.dedupFilterBytes }),
        ...(config.dedupHorizonMs === undefined ? {} : { horizonMs: config.dedupHorizonMs }),
        ...(config.dedupGenerationKeys === undefined ? {} : { genKeys: config.dedupGenerationKeys }),
        rebuildInBackground: true,
        onFilterRebuilt: ({ reason, keys, elapsedMs }) => {
          const fields = { reason, keys, elapsedMs: Math.round(elapsedMs) };
          // A new data dir has no filter file and no keys: nothing is wrong then.
          if (keys === 0 && reason === 'missing') logger.info(fields, 'recovery: new key filter (no keys stored yet)');
          else logger.warn(fields, `recovery: key filter rebuilt from the keys table (${reason})`);
        },
      },
    });
    this.closeSpacelessReads();
    this.store = store;
    if (store.schemaReset) logger.warn('recovery: the index had an older schema; dropped it, rebuilding from the log');
    if (store.schemaUpgraded) {
      logger.warn('recovery: the index had schema 3 (event bodies in SQLite); re-indexing its events from the log, keeping its dedup keys');
    }
    if (store.topicIdsUpgrade !== null) {
      logger.warn(
        store.topicIdsUpgrade,
        'recovery: the index had schema 4 (topic text in each event row); gave its rows topic ids in place',
      );
    }
    const { checkpointSeq } = store.counters;
    this.catchUpKeyFilter(store);
    logger.info({ checkpointSeq, walDir: config.walDir }, 'recovery: replaying log after checkpoint');
    let recovered;
    let retainedFirstSeq: number;
    try {
      // A deletion a crash interrupted is finished before the replay, which must not bring
      // back events of a segment the index (or the marker) has already let go.
      retainedFirstSeq = finishDeletions(this.disk, config.walDir, store.retained.firstSeq).firstSeq;
      recovered = await recoverLog({
        disk: this.disk,
        walDir: config.walDir,
        checkpointSeq,
        chunkRecords: config.indexBatchMax,
        onRecords: async (records) => {
          // Tombstones left by `logagg repair` hold a seq but no event.
          store.applyBatch(
            records
              .filter((r) => !isTombstoneEventJson(r.eventJson))
              .map((r) => rowFromEventJson(r.seq, r.eventJson, r.receivedAtMs, r.position)),
          );
          await new Promise<void>((resolve) => setImmediate(resolve));
        },
      });
    } catch (err) {
      store.close();
      this.stateValue = 'failed';
      throw err;
    }
    const { start, report } = recovered;
    // A retained log that holds no record yet (its records lost with the power) goes on at the marker.
    if (start.nextSeq < retainedFirstSeq) start.nextSeq = retainedFirstSeq;
    // An index rebuilt from a retained log learns where the log starts.
    if (store.retained.firstSeq < retainedFirstSeq && store.counters.checkpointSeq >= retainedFirstSeq - 1) {
      store.dropThrough(retainedFirstSeq - 1, Date.now());
    }
    if (report.tornTail !== null) {
      logger.warn(
        { ...report.tornTail },
        `recovery: cut torn tail of ${report.tornTail.bytesDropped} bytes at offset ${report.tornTail.offset}`,
      );
    }
    if (store.counters.checkpointSeq + 1 > start.nextSeq) {
      logger.warn(
        { checkpointSeq: store.counters.checkpointSeq, logLastSeq: start.nextSeq - 1 },
        'recovery: the index is ahead of the log (segments missing?); continuing after the index',
      );
      start.nextSeq = store.counters.checkpointSeq + 1;
    }

    this.consumer = new Consumer({
      store,
      batchMax: config.indexBatchMax,
      coalesceMs: INDEX_COALESCE_MS,
      coalesceRows: INDEX_COALESCE_ROWS,
      logger,
      // Indexing comes after answers: a group commit about to start goes before an index batch.
      yieldWhile: () => this.writer?.flushPending === true,
      onApplied: (rows, elapsedMs) => {
        for (const row of rows) {
          this.pending.removeSeq(keyNumberOf(row.key ?? dedupKeyOf(row.topic, row.eventId)), row.seq);
        }
        this.options.observer?.onIndexBatch?.(rows.length, elapsedMs);
        // The checkpoint moved: a closed segment may now be wholly indexed and due.
        this.retention?.poke();
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
      onDurable: (records, stats, position) => {
        // The index keeps where each record lies in the log, not its JSON.
        let offset = position.offset;
        for (let i = 0; i < records.length; i += 1) {
          const length = position.lineBytes[i]!;
          records[i]!.row.position = { segment: position.segment, offset, length };
          offset += length;
        }
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
    this.retention = startServiceRetention({
      disk: this.disk,
      walDir: config.walDir,
      config,
      index: {
        checkpointSeq: () => store.counters.checkpointSeq,
        firstSeq: () => store.retained.firstSeq,
        dropThrough: (lastSeq, deletedAtMs, options) => store.dropThrough(lastSeq, deletedAtMs, options),
      },
      activeSegmentName: () => this.writer?.currentSegment.name ?? null,
      logger,
      observer: this.options.observer,
    });
    this.recoveryValue = { ...report, durationMs: performance.now() - started };
    this.reads = this.openReadPool();
    this.checkpointer = new Checkpointer({
      databasePath: config.databasePath,
      onWorkerExit: (reason) => logger.error({ reason }, `index checkpoint worker ${reason}; replacing it`),
    });
    this.startKeySweep(store);
    this.stateValue = 'ready';
    if (this.noSpaceAtStartSince !== null) logger.info('recovery: space returned');
    this.noSpaceAtStartSince = null;
    logger.info(
      {
        ...report,
        tornTail: report.tornTail !== null,
        durationMs: Math.round(this.recoveryValue.durationMs),
      },
      'recovery: done, accepting writes',
    );
    return report;
  }

  /**
   * Opens the key filter and adds the keys the saved one lacks: those of the records after
   * its seq up to the checkpoint, read from the log (sequential, and bounded by what was
   * indexed since the last save, not by history). When the log cannot give them all (a
   * segment is gone, a record is bad), the filter is rebuilt from the keys table instead.
   */
  private catchUpKeyFilter(store: IndexStore): void {
    const { config, logger } = this.options;
    const started = performance.now();
    const coveredSeq = store.openKeyFilter();
    const { checkpointSeq } = store.counters;
    let added = 0;
    if (coveredSeq < checkpointSeq) {
      let expected = coveredSeq + 1;
      let gap: string | null = null;
      for (const item of readLog({ disk: this.disk, walDir: config.walDir, fromSeq: coveredSeq + 1 })) {
        if (item.kind === 'segment_end') continue;
        if (item.kind !== 'record' && item.kind !== 'tombstone') {
          gap = `the log has a ${item.kind} at ${item.segment.name} offset ${item.offset}`;
          break;
        }
        if (item.seq < expected) continue;
        if (item.seq > checkpointSeq) break;
        if (item.seq !== expected) {
          gap = `the log starts at seq ${item.seq}, after the filter's seq ${coveredSeq}`;
          break;
        }
        expected += 1;
        if (item.kind === 'tombstone') continue;
        const row = rowFromEventJson(item.seq, item.eventJson);
        store.addKeysToFilter([dedupKeyOf(row.topic, row.eventId)]);
        added += 1;
      }
      if (gap === null && expected <= checkpointSeq) gap = `the log ends at seq ${expected - 1}, before the checkpoint ${checkpointSeq}`;
      if (gap !== null) {
        logger.warn({ coveredSeq, checkpointSeq }, `recovery: key filter to be rebuilt from the keys table: ${gap}`);
        store.rebuildKeyFilter(gap);
        return;
      }
    }
    if (store.keyFilterRebuilding) {
      logger.warn('recovery: key filter rebuilding from the keys table in the background (lookups read the table until it is done)');
      return;
    }
    store.keyFilterComplete();
    logger.info({ coveredSeq, keysAdded: added, elapsedMs: Math.round(performance.now() - started) }, 'recovery: key filter loaded');
  }

  /** Runs the bounded sweep of expired keys on a timer (unref'd), faster while a pass is under way. */
  private startKeySweep(store: IndexStore): void {
    const tick = (): void => {
      let handled: number | null = null;
      try {
        handled = store.keyMaintenanceStep();
      } catch (err) {
        // A busy or full index: the upkeep tries again later; lookups ignore expired keys anyway,
        // and a merge or a filter rebuild resumes where its last commit left it.
        this.options.logger.warn({ err }, 'key store upkeep failed; retrying later');
      }
      this.sweepTimer = setTimeout(tick, handled === null ? KEY_SWEEP_IDLE_MS : KEY_SWEEP_STEP_MS);
      this.sweepTimer.unref();
    };
    this.sweepTimer = setTimeout(tick, store.keyFilterRebuilding ? KEY_SWEEP_STEP_MS : KEY_SWEEP_IDLE_MS);
    this.sweepTimer.unref();
  }

  /**
   * Dedups `events` against the index, the not-yet-indexed log and each other, appends
   * the new ones, and resolves once they (and any pending original a duplicate names)
   * are fsynced. Throws AppError (503) when writes cannot be accepted; nothing is written then.
   */
  async publish(events: ValidEvent[]): Promise<PublishReport> {
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
    // One acceptance time per request: every event of it is accepted at this instant.
    const receivedAtMs = Date.now();
    for (const valid of events) {
      const { event, tsMs } = valid;
      const eventJson = valid.eventJson ?? canonicalEventJson(event);
      const key = dedupKeyOf(event.topic, event.event_id);
      const hash = keyNumberOf(key);
      const pending = this.pending.get(hash, event.topic, event.event_id);
      const stored = pending === undefined ? this.store!.lookup(event.topic, event.event_id, key) : undefined;
      const original = pending ?? stored;
      if (original !== undefined) {
        // A pending original has its JSON; a stored one only its digest (its body may be gone).
        const same = pending !== undefined ? pending.eventJson === eventJson : eventDigestOf(eventJson).equals(stored!.digest);
        const outcome: PublishOutcome = { status: 'duplicate', seq: original.seq };
        if (!same) {
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
      fresh.push({
        seq,
        eventJson,
        receivedAtMs,
        row: {
          seq,
          topic: event.topic,
          eventId: event.event_id,
          source: event.source,
          tsMs,
          receivedMs: receivedAtMs,
          body: eventJson,
          key,
        },
      });
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

    if (duplicates > 0) this.consumer!.noteDuplicates(duplicates, conflicts);
    if (duplicates > 0) this.logDuplicates(events, results);
    const report: PublishReport = {
      received: events.length,
      accepted: fresh.length,
      duplicates,
      conflicts,
      results,
    };
    this.options.observer?.onPublish?.(report);
    return report;
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

  /** Stored events matching `query`, without a scan bound (tools and tests; see readPage). */
  queryEvents(query: EventQuery): PageRow[] {
    this.indexAcknowledged();
    return this.index.queryEvents(query);
  }

  /**
   * One bounded page of stored events (see IndexStore.readPage), read on a read worker (inline
   * with READ_WORKERS=0 or before recovery is done); not-yet-indexed events follow shortly.
   * Rejects with AppError reads_busy / read_failed (503) when the read pool cannot serve it.
   */
  async readPage(query: EventQuery): Promise<SnapshotPage> {
    this.indexAcknowledged();
    if (this.reads !== null) return this.reads.readPage(query);
    const result = await readInline(this.index, { op: 'page', query });
    if (!('page' in result)) throw new Error('aggregator: a page read answered something else');
    return result.page;
  }

  /** The histogram of GET /events/histogram (see countHistogram), read as readPage reads. */
  async histogram(filter: EventFilter, buckets: number, chunkRows: number, signal?: AbortSignal): Promise<Histogram> {
    this.indexAcknowledged();
    if (this.reads !== null) return this.reads.histogram(filter, buckets, chunkRows, signal);
    const result = await readInline(this.index, { op: 'histogram', filter, buckets, chunkRows }, signal);
    if (!('histogram' in result)) throw new Error('aggregator: a histogram read answered something else');
    return result.histogram;
  }

  /** The read pool, or null when reads run inline (tests look at its threads). */
  get readPool(): ReadPool | null {
    return this.reads;
  }

  /** The options every connection to the index is opened with (the main store's and the read workers'). */
  private storeOptions(): ReadStoreOptions {
    // Rows point into this log: every body a read serves is read from it by position.
    return { walDir: this.options.config.walDir };
  }

  private openReadPool(): ReadPool | null {
    const { config, logger } = this.options;
    const workers = config.readWorkers ?? 1;
    if (workers === 0) return null;
    return new ReadPool({
      databasePath: config.databasePath,
      storeOptions: this.storeOptions(),
      workers,
      queueMax: config.readQueueMax ?? 64,
      timeoutMs: config.readTimeoutMs ?? 10_000,
      retryAfterSeconds: config.retryAfterSeconds,
      onWorkerExit: (reason) => logger.error({ reason }, `read worker ${reason}; replaced it`),
    });
  }

  /**
   * The pipeline's lifetime counters and live figures, typed (the HTTP layer shapes /stats
   * and /health from it). Duplicate and conflict totals are the index's committed ones plus
   * those the consumer has not committed yet: the consumer and the store own them, this
   * class keeps no copy.
   */
  snapshot(): PipelineSnapshot {
    this.indexAcknowledged();
    const counters = this.store?.counters;
    const uncommitted = this.consumer?.uncommittedDuplicates() ?? { duplicates: 0, conflicts: 0 };
    const segment = this.writer?.currentSegment;
    return {
      state: this.stateValue,
      condition: this.condition(),
      startedAtMs: this.startedAt,
      acceptedTotal: this.writer?.durableSeq ?? counters?.checkpointSeq ?? 0,
      uniqueTotal: counters?.uniqueTotal ?? 0,
      dedupKeys: this.dedupKeys(),
      duplicatesTotal: (counters?.duplicatesTotal ?? 0) + uncommitted.duplicates,
      conflictsTotal: (counters?.conflictsTotal ?? 0) + uncommitted.conflicts,
      checkpointSeq: counters?.checkpointSeq ?? 0,
      queueSize: this.queueSize(),
      durableSeq: this.writer?.durableSeq ?? null,
      segment: segment === undefined ? null : { name: segment.name, bytes: segment.bytes },
      noSpaceSinceMs: this.writer?.noSpaceSince ?? this.noSpaceAtStartSince,
      logError: this.failure?.message ?? null,
      consumerRunning: this.consumer?.running ?? false,
      indexError: this.consumer?.error?.message ?? null,
    };
  }

  /** The oldest seq kept (1 until retention deletes): earlier seqs are in neither the index nor the log. */
  get firstSeq(): number {
    return this.store?.retained.firstSeq ?? 1;
  }

  /** Where the log starts, its size and what retention deleted (lists the wal dir: not for hot paths). */
  retentionSnapshot(): RetentionSnapshot {
    const retained = this.store?.retained ?? { firstSeq: 1, expiredTotal: 0, lastDeletionMs: null };
    const segments = retainedSegments(this.disk, this.options.config.walDir, retained.firstSeq).segments;
    return { ...retained, logBytes: logBytes(this.disk, segments) };
  }

  /** Runs retention until nothing more is due (tests; the service runs it by itself). */
  async runRetention(): Promise<RetentionDeletion[]> {
    return this.retention === null ? [] : this.retention.runUntilDone();
  }

  /** Dedup keys stored, or 0 before the index is open (or when it cannot be read). */
  private dedupKeys(): number {
    try {
      return this.store?.dedupKeyCount() ?? 0;
    } catch {
      return 0;
    }
  }

  /** The topics in the index, sorted. */
  topics(): string[] {
    this.indexAcknowledged();
    return this.store?.topics() ?? [];
  }

  /**
   * Commits the durable rows waiting for their index batch (INDEX_COALESCE_MS) before a read,
   * so that whoever got an answer finds its events in the next read, as without the wait.
   */
  private indexAcknowledged(): void {
    this.consumer?.applyQueued();
  }

  /** Events accepted but not yet indexed (unsynced plus queued). */
  queueSize(): number {
    return (this.consumer?.size ?? 0) + (this.writer?.pendingCount ?? 0);
  }

  /**
   * The service's condition for writes: ready splits into healthy, degraded (the index
   * refuses writes for now; the log still accepts), no_space (the log device is full) and
   * backlog_full (the queue is at QUEUE_MAX_SIZE).
   */
  condition(): ServiceCondition {
    const noSpace = this.writer?.noSpaceSince ?? this.noSpaceAtStartSince;
    // A full disk at start-up holds recovery up: reads are served, writes wait for space.
    if ((this.stateValue === 'ready' || this.stateValue === 'recovering') && noSpace !== null) return 'no_space';
    if (this.stateValue !== 'ready') return this.stateValue;
    // A full backlog refuses every new event: not a place to send writes.
    if (this.queueSize() >= this.options.config.queueMaxSize) return 'backlog_full';
    return this.consumer?.error ? 'degraded' : 'healthy';
  }

  /** True when /publish accepts writes now (healthy or degraded). */
  acceptsWrites(): boolean {
    const condition = this.condition();
    return condition === 'healthy' || condition === 'degraded';
  }

  /** Refuses writes, flushes what was accepted, indexes it and closes files. Idempotent. */
  async close(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    const failed = this.stateValue === 'failed';
    this.stateValue = 'stopping';
    // No deletion starts any more; one in progress ends its current step first.
    if (this.retention !== null) await this.retention.stop();
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    if (this.writer !== null) await this.writer.close();
    if (this.consumer !== null) {
      // After a log failure the queue still holds only durable records: index them too.
      const queued = this.consumer.size;
      try {
        this.consumer.drain();
      } catch (err) {
        // Nothing is lost (every queued event is in the fsynced log), but the stop is not clean.
        this.drainError = err as Error;
        this.options.logger.error(
          { err, eventsNotIndexed: this.consumer.size || queued },
          `shutdown: could not index ${this.consumer.size || queued} logged events (${(err as Error).message}); they stay in the log and are replayed into the index on restart`,
        );
      }
    }
    // Reads still waiting fail with shutting_down; the workers close their connections first.
    await this.reads?.close();
    this.reads = null;
    // Its connection closes before the main one, which folds the WAL into the file and removes it.
    await this.checkpointer?.close();
    this.checkpointer = null;
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
          throw new AppError('log_no_space', 'the disk is full: the service started read-only and accepts writes once space returns', {
            retryAfterSeconds,
          });
        }
        throw new AppError('recovering', 'recovery is replaying the log; no write is accepted before the dedup state is complete', {
          retryAfterSeconds,
        });
      case 'failed':
        throw new AppError('log_failed', 'the log failed and the service is stopping for recovery', {
          retryAfterSeconds,
          cause: this.failure,
        });
      default:
        throw new AppError('shutting_down', 'the service is shutting down', { retryAfterSeconds });
    }
  }
}

/**
 * Pause between two steps of the key store's upkeep while one is under way (a sweep pass,
 * a merge of generations, a filter rebuild; each step is bounded to a few ms, see
 * key-store.ts): short steps often, so that no request waits long behind one.
 */
const KEY_SWEEP_STEP_MS = 5;
/** How often the upkeep looks for newly expired keys and full generations when none is under way. */
const KEY_SWEEP_IDLE_MS = 1000;

/**
 * Longest a durable row waits for others to share its index transaction (Consumer
 * coalesceMs): at one event a request the consumer otherwise commits a transaction of a
 * handful of rows every event-loop turn. It delays only the index and the live tail (which
 * follows the index), never an answer, and adds at most this much to the index's catch-up.
 */
const INDEX_COALESCE_MS = 20;
/** Rows queued at which an index batch starts without waiting (2000-row flushes of batched publishes never wait). */
const INDEX_COALESCE_ROWS = 256;

/** How often recovery is tried again while a full disk holds it up at start-up. */
const NO_SPACE_RETRY_MS = 250;

/** Errors that mean "no space left" (the log's or SQLite's), which wait for space instead of failing. */
export function isNoSpaceError(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown } | null | undefined, depth = 0;
    e !== undefined && e !== null && depth < 5;
    e = e.cause as typeof e, depth += 1
  ) {
    if (typeof e.code === 'string' && NO_SPACE_ERROR_CODES.has(e.code)) return true;
  }
  return false;
}

const NO_SPACE_ERROR_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE']);
