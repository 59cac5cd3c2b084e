import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { FIXED_LIMITS } from '../config/config';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import type { SnapshotPage } from '../index/read-pool';
import type { EventPage, EventQuery, IndexRow } from '../index/store';
import type { EventFilter } from '../query/event-filter';
import { countHistogram, type Histogram } from '../query/histogram';
import type {
  AggregatorObserver,
  PipelineSnapshot,
  PublishOutcome,
  PublishReport,
  RetentionSnapshot,
  ServiceCondition,
  ServiceState,
  ValidEvent,
} from '../ingest/aggregator';
import type { Pipeline } from '../ingest/pipeline';
import { makeDirDurable, NodeDisk, type LogDisk } from '../wal/disk';
import { rowFromEventJson } from '../wal/event-row';
import { canonicalEventJson, isTombstoneEventJson, type WalRecord } from '../wal/record';
import { recoverLog, type RecoveryReport } from '../wal/recovery';
import {
  finishDeletions,
  logBytes,
  retainedSegments,
  startServiceRetention,
  type RetentionDeletion,
  type RetentionRunner,
} from '../wal/retention';
import { WalWriter } from '../wal/writer';
import { loadInstanceId } from './instance-id';
import { InstanceLease, InstanceLeaseError, isLeaseLost } from './instance-lease';
import { PgIndex, type Candidate, type ClusterCounters, type Decision, type InstanceRetention } from './pg-index';
import { TailFeed } from './tail-feed';

/** The settings the cluster pipeline reads. */
export type ClusterConfig = Pick<
  Config,
  | 'dataDir'
  | 'walDir'
  | 'queueMaxSize'
  | 'segmentBytesMax'
  | 'indexBatchMax'
  | 'retryAfterSeconds'
  | 'shutdownTimeoutMs'
  | 'retentionBytes'
  | 'retentionMs'
  | 'dedupHorizonMs'
> & { databaseUrl: string; databasePoolMax: number; databaseTimeoutMs: number };

export interface ClusterPipelineOptions {
  config: ClusterConfig;
  logger: Logger;
  disk?: LogDisk;
  observer?: AggregatorObserver;
  /** Called once when the log fails (fsync/EIO): the process must exit for recovery. */
  onFatal?: (err: Error) => void;
}

/**
 * One key on its way to a decision: logged (or being logged) by this instance and not yet
 * decided. While it is here, the same key published again on this instance waits for it
 * instead of being logged twice, which keeps dedup exact within the instance.
 */
interface CandidateEntry {
  key: string;
  candidate: Candidate;
  /** Set once its record is fsynced and queued for a decision. */
  logged: boolean;
  /** False once the request that logged it gave up (503): a re-send of the same event takes its answer over. */
  owned: boolean;
  waiters: Array<{ resolve: (decision: Decision) => void; reject: (err: Error) => void }>;
}

interface LoggedRecord extends WalRecord {
  entry: CandidateEntry;
}

/** Keys of deleted events the horizon sweep forgets per statement. */
const KEY_SWEEP_BATCH = 5000;

/** Back-off between decision attempts while the database fails, doubling up to the last. */
const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000];

/**
 * The ingest pipeline of cluster mode (DATABASE_URL): validate -> in-instance dedup against
 * keys in flight -> local log append (group commit, fsync) -> one PostgreSQL round trip per
 * batch decides every key globally (unique constraint, in one transaction with the counters
 * and this instance's confirmed local seq) -> answer. Nothing is acknowledged before both
 * the fsync and the commit. Records logged but not decided (a crash, a failed commit) are
 * decided again, in local seq order, before anything newer: at restart from the log, and
 * while running from memory. It does not keep a local index: reads go to the database.
 */
export class ClusterPipeline implements Pipeline {
  private stateValue: ServiceState = 'starting';
  private readonly startedAt = Date.now();
  private readonly disk: LogDisk;
  private db: PgIndex | null = null;
  private feed: TailFeed | null = null;
  private writer: WalWriter<LoggedRecord> | null = null;
  private instanceId = '';
  private lease: InstanceLease | null = null;
  private readonly pending = new Map<string, CandidateEntry>();
  /** Logged entries awaiting their decision, in local seq order. */
  private readonly queue: CandidateEntry[] = [];
  private extra = { duplicates: 0, conflicts: 0 };
  private extraWaiters: Array<() => void> = [];
  private deciding = false;
  private decidingDone: Promise<void> = Promise.resolve();
  private dbError: Error | null = null;
  private retryIndex = 0;
  private confirmedLocalSeq = 0;
  private counters: ClusterCounters = {
    uniqueTotal: 0,
    duplicatesTotal: 0,
    conflictsTotal: 0,
    lastSeq: 0,
    firstSeq: 1,
    expiredTotal: 0,
    expiredKeys: 0,
  };
  private retention: RetentionRunner | null = null;
  private retained: InstanceRetention = { firstLocalSeq: 1, expiredEvents: 0, lastDeletionMs: null };
  private keySweep: NodeJS.Timeout | null = null;
  private topicList: string[] = [];
  private recoveryValue: (RecoveryReport & { durationMs: number }) | null = null;
  private failure: Error | null = null;
  private openCancelled = false;

  constructor(private readonly options: ClusterPipelineOptions) {
    this.disk = options.disk ?? new NodeDisk();
  }

  get state(): ServiceState {
    return this.stateValue;
  }

  get recovery(): (RecoveryReport & { durationMs: number }) | null {
    return this.recoveryValue;
  }

  /**
   * Connects and migrates the schema (waiting for the database as long as it is away), then
   * decides the log's records after this instance's confirmed local seq, then accepts writes.
   */
  async open(): Promise<RecoveryReport> {
    const { config, logger } = this.options;
    this.stateValue = 'recovering';
    const started = performance.now();
    makeDirDurable(this.disk, config.walDir);
    this.instanceId = loadInstanceId(config.dataDir);
    const db = new PgIndex({ url: config.databaseUrl, poolMax: config.databasePoolMax, timeoutMs: config.databaseTimeoutMs, logger });
    this.db = db;
    const lease = new InstanceLease(db.pool, this.instanceId, config.dataDir);
    this.lease = lease;
    const confirmed = await this.untilDatabaseAnswers('recovery: connect and migrate', async () => {
      const before = await db.migrate();
      // Before anything is decided: no other live process may decide for this instance id.
      await lease.acquire();
      return { before, confirmed: await db.confirmedLocalSeq(this.instanceId), retained: await db.instanceRetention(this.instanceId) };
    });
    this.retained = confirmed.retained;
    lease.startRenewing((err) => this.failOnLease(err));
    if (confirmed.before === 0) logger.info('recovery: created the cluster schema');
    this.confirmedLocalSeq = confirmed.confirmed;
    logger.info(
      { instanceId: this.instanceId, confirmedLocalSeq: this.confirmedLocalSeq, walDir: config.walDir },
      'recovery: deciding the log after the confirmed seq',
    );

    let recovered;
    let retainedFirstSeq: number;
    try {
      // A deletion a crash interrupted (rows gone from the database, the segment still here) is
      // finished first: the replay must not decide again events retention let go.
      retainedFirstSeq = finishDeletions(this.disk, config.walDir, this.retained.firstLocalSeq).firstSeq;
      recovered = await recoverLog({
        disk: this.disk,
        walDir: config.walDir,
        checkpointSeq: this.confirmedLocalSeq,
        chunkRecords: config.indexBatchMax,
        onRecords: (records) => this.decideReplayed(records),
      });
    } catch (err) {
      this.stateValue = 'failed';
      throw err;
    }
    const { start, report } = recovered;
    // A retained log that holds no record yet goes on at the marker.
    if (start.nextSeq < retainedFirstSeq) start.nextSeq = retainedFirstSeq;
    if (report.tornTail !== null) {
      logger.warn(
        { ...report.tornTail },
        `recovery: cut torn tail of ${report.tornTail.bytesDropped} bytes at offset ${report.tornTail.offset}`,
      );
    }
    if (this.confirmedLocalSeq + 1 > start.nextSeq) {
      logger.warn(
        { confirmedLocalSeq: this.confirmedLocalSeq, logLastSeq: start.nextSeq - 1 },
        'recovery: the database confirmed more than the log holds (segments missing?); continuing after it',
      );
      start.nextSeq = this.confirmedLocalSeq + 1;
    }
    this.writer = new WalWriter<LoggedRecord>({
      disk: this.disk,
      walDir: config.walDir,
      segmentBytesMax: config.segmentBytesMax,
      start,
      onDurable: (records, stats) => {
        for (const record of records) {
          record.entry.logged = true;
          this.queue.push(record.entry);
        }
        this.options.observer?.onFlush?.(stats);
        this.kickDecider();
      },
      onFatal: (err) => {
        this.failure = err;
        this.stateValue = 'failed';
        logger.fatal({ err }, 'log failed; refusing writes and stopping for recovery');
        this.options.onFatal?.(err);
      },
    });
    this.startRetention(db);
    await this.untilDatabaseAnswers('recovery: read counters', () => this.refreshSnapshot());
    this.feed = new TailFeed(db, { url: config.databaseUrl, timeoutMs: config.databaseTimeoutMs, logger }, this.counters.lastSeq);
    this.recoveryValue = { ...report, durationMs: performance.now() - started };
    this.stateValue = 'ready';
    logger.info(
      { ...report, tornTail: report.tornTail !== null, durationMs: Math.round(this.recoveryValue.durationMs), instanceId: this.instanceId },
      'recovery: done, accepting writes',
    );
    return report;
  }

  /** Ends open()'s waits for the database (a stop while it is away). */
  cancelOpen(): void {
    this.openCancelled = true;
  }

  /** Runs `step` until it succeeds, waiting between attempts while the database is away. */
  private async untilDatabaseAnswers<T>(what: string, step: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const value = await step();
        this.dbError = null;
        return value;
      } catch (err) {
        if (err instanceof AppError || err instanceof InstanceLeaseError || !isDatabaseUnavailable(err)) throw err;
        if (this.dbError === null)
          this.options.logger.warn(
            { code: (err as { code?: unknown }).code },
            `${what}: the database is unavailable (${(err as Error).message}); retrying`,
          );
        this.dbError = err as Error;
        if (this.openCancelled) throw new Error(`${what}: stopped while waiting for the database`, { cause: err });
        await sleep(RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]!);
      }
    }
  }

  /** Recovery's chunk: the records after the confirmed seq, decided in order, as often as it takes. */
  private async decideReplayed(records: WalRecord[]): Promise<void> {
    const entries: CandidateEntry[] = [];
    const extra = { duplicates: 0, conflicts: 0 };
    for (const record of records) {
      if (isTombstoneEventJson(record.eventJson)) continue;
      const row = rowFromEventJson(record.seq, record.eventJson);
      const key = keyOf(row.topic, row.eventId);
      // The unconfirmed tail holds a key once (later copies waited for it); count any other copy as a duplicate.
      if (this.pending.has(key) || entries.some((e) => e.key === key)) {
        extra.duplicates += 1;
        continue;
      }
      const receivedMs = record.receivedAtMs ?? Date.now();
      entries.push({
        key,
        candidate: {
          localSeq: record.seq,
          topic: row.topic,
          eventId: row.eventId,
          source: row.source,
          tsMs: row.tsMs,
          receivedMs,
          body: row.body,
        },
        logged: true,
        owned: false,
        waiters: [],
      });
    }
    const last = records[records.length - 1]!.seq;
    const db = this.db!;
    await this.untilDatabaseAnswers('recovery: decide the unconfirmed log', () =>
      db.decide(
        this.leaseOwner(),
        last,
        entries.map((e) => e.candidate),
        extra,
      ),
    );
    this.confirmedLocalSeq = last;
  }

  /**
   * Dedups `events` against the keys this instance has in flight and each other, logs the
   * new ones, and resolves once they are fsynced and the database has decided them (and
   * every in-flight original a duplicate names). Throws AppError (503) when writes cannot
   * be accepted or the database did not answer in time; nothing is acknowledged then.
   */
  async publish(events: ValidEvent[]): Promise<PublishReport> {
    const writer = this.assertWritable();
    const { config } = this.options;
    const receivedMs = Date.now();
    const own: Array<{ index: number; entry: CandidateEntry }> = [];
    const joined: Array<{ index: number; entry: CandidateEntry; body: string; takeover: boolean }> = [];
    const records: LoggedRecord[] = [];
    let nextSeq = writer.nextSeq;
    events.forEach(({ event, tsMs }, index) => {
      const body = canonicalEventJson(event);
      const key = keyOf(event.topic, event.event_id);
      const inFlight = this.pending.get(key);
      if (inFlight !== undefined) {
        // A re-send of an event whose request gave up takes that request's answer over.
        const takeover = !inFlight.owned && inFlight.candidate.body === body;
        if (takeover) inFlight.owned = true;
        joined.push({ index, entry: inFlight, body, takeover });
        return;
      }
      const entry: CandidateEntry = {
        key,
        candidate: { localSeq: nextSeq, topic: event.topic, eventId: event.event_id, source: event.source, tsMs, receivedMs, body },
        logged: false,
        owned: true,
        waiters: [],
      };
      nextSeq += 1;
      this.pending.set(key, entry);
      own.push({ index, entry });
      records.push({ seq: entry.candidate.localSeq, eventJson: body, receivedAtMs: receivedMs, entry });
    });
    const giveUp = (): void => {
      for (const { entry } of own) {
        entry.owned = false;
        if (entry.logged) continue;
        // Never logged (the append failed): requests waiting on it get their 503 now.
        this.pending.delete(entry.key);
        for (const waiter of [...entry.waiters]) waiter.reject(new Error('its record could not be logged'));
      }
      for (const join of joined) if (join.takeover) join.entry.owned = false;
    };

    // Only new events grow the backlog: a retry made of duplicates writes nothing and passes.
    const backlog = this.queueSize();
    if (records.length > 0 && backlog + records.length > config.queueMaxSize) {
      giveUp();
      throw new AppError('backlog_full', `backlog of ${backlog} events is over QUEUE_MAX_SIZE=${config.queueMaxSize}`, {
        retryAfterSeconds: config.retryAfterSeconds,
      });
    }

    const decisions = new Map<CandidateEntry, Decision>();
    try {
      if (records.length > 0) await writer.append(records).durable;
      const deadline = Date.now() + 2 * config.databaseTimeoutMs;
      const waits = [...own, ...joined].map(async ({ entry }) => decisions.set(entry, await this.waitDecision(entry, deadline)));
      await Promise.all(waits);
    } catch (err) {
      giveUp();
      throw err instanceof AppError
        ? err
        : new AppError('database_unavailable', `the database did not decide in time: ${(err as Error).message}`, {
            retryAfterSeconds: config.retryAfterSeconds,
            cause: err,
          });
    }

    // Answers, in request order.
    const results: PublishOutcome[] = new Array<PublishOutcome>(events.length);
    for (const { index, entry } of own) results[index] = outcomeOf(decisions.get(entry)!);
    const extra = { duplicates: 0, conflicts: 0 };
    for (const { index, entry, body, takeover } of joined) {
      const decision = decisions.get(entry)!;
      if (takeover) {
        results[index] = outcomeOf(decision);
        continue;
      }
      const original =
        decision.outcome === 'accepted' || decision.outcome === 'accepted_before' ? entry.candidate.body : decision.originalBody;
      const outcome: PublishOutcome = { status: 'duplicate', seq: decision.seq };
      // An original deleted by retention is known by its digest only.
      const differs = original === null && decision.originalMd5 !== null ? md5Hex(body) !== decision.originalMd5 : original !== body;
      if (differs) outcome.conflict = true;
      extra.duplicates += 1;
      if (outcome.conflict === true) extra.conflicts += 1;
      results[index] = outcome;
    }
    // Duplicates found here (against keys in flight) reach the database's counters with the next decision.
    if (extra.duplicates > 0) await this.addExtraCounts(extra);

    let accepted = 0;
    let duplicates = 0;
    let conflicts = 0;
    for (const outcome of results) {
      if (outcome.status === 'accepted') accepted += 1;
      else duplicates += 1;
      if (outcome.conflict === true) conflicts += 1;
    }
    const report: PublishReport = { received: events.length, accepted, duplicates, conflicts, results };
    this.options.observer?.onPublish?.(report);
    return report;
  }

  /** Resolves with the entry's decision; rejects when the attempt that carries it fails or at `deadlineMs`. */
  private waitDecision(entry: CandidateEntry, deadlineMs: number): Promise<Decision> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          waiter.reject(new Error(`no decision within ${2 * this.options.config.databaseTimeoutMs} ms`));
        },
        Math.max(0, deadlineMs - Date.now()),
      );
      const waiter = {
        resolve: (decision: Decision) => {
          clearTimeout(timer);
          resolve(decision);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          const at = entry.waiters.indexOf(waiter);
          if (at >= 0) entry.waiters.splice(at, 1);
          reject(err);
        },
      };
      entry.waiters.push(waiter);
    });
  }

  /** Queues duplicate counts for the database and waits (boundedly) for the decision that commits them. */
  private addExtraCounts(extra: { duplicates: number; conflicts: number }): Promise<void> {
    this.extra.duplicates += extra.duplicates;
    this.extra.conflicts += extra.conflicts;
    return new Promise((resolve) => {
      // The events are decided already: a late counter commit must not turn the answer into a 503.
      const timer = setTimeout(resolve, this.options.config.databaseTimeoutMs);
      this.extraWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.kickDecider();
    });
  }

  private kickDecider(): void {
    if (this.deciding) return;
    this.deciding = true;
    this.decidingDone = this.runDecider().finally(() => {
      this.deciding = false;
    });
  }

  /**
   * The group commit of decisions: one round trip for everything logged meanwhile (up to
   * INDEX_BATCH_MAX events), strictly in local seq order, one at a time; a failed attempt is
   * retried with back-off, and records stay queued (they are in the fsynced log) until it succeeds.
   */
  private async runDecider(): Promise<void> {
    const db = this.db!;
    const { config, logger } = this.options;
    while (
      this.queue.length > 0 ||
      this.extra.duplicates > 0 ||
      this.extraWaiters.length > 0 ||
      (this.dbError !== null && this.stateValue === 'ready')
    ) {
      const batch = this.queue.slice(0, config.indexBatchMax);
      const extra = this.extra;
      const extraWaiters = this.extraWaiters;
      this.extra = { duplicates: 0, conflicts: 0 };
      this.extraWaiters = [];
      try {
        if (batch.length === 0 && extra.duplicates === 0) {
          // Nothing to decide: a probe, so that writes resume once the database is back.
          await db.pool.query('SELECT 1');
        } else {
          const last = batch.length === 0 ? null : batch[batch.length - 1]!.candidate.localSeq;
          const decisions = await db.decide(
            this.leaseOwner(),
            last,
            batch.map((e) => e.candidate),
            extra,
          );
          this.queue.splice(0, batch.length);
          if (last !== null) this.confirmedLocalSeq = last;
          // More of the log is confirmed: a closed segment may now be due.
          if (last !== null) this.retention?.poke();
          batch.forEach((entry, i) => {
            this.pending.delete(entry.key);
            const decision = decisions[i]!;
            for (const waiter of entry.waiters.splice(0)) waiter.resolve(decision);
          });
        }
        for (const done of extraWaiters) done();
        if (this.dbError !== null) logger.info('database: available again; accepting writes');
        this.dbError = null;
        this.retryIndex = 0;
      } catch (err) {
        if (isLeaseLost(err)) {
          this.failOnLease(new InstanceLeaseError(`decision refused: ${(err as Error).message}; stopping`));
          for (const entry of batch) for (const waiter of [...entry.waiters]) waiter.reject(err as Error);
          for (const done of extraWaiters) done();
          return;
        }
        this.extra.duplicates += extra.duplicates;
        this.extra.conflicts += extra.conflicts;
        for (const done of extraWaiters) done();
        if (this.dbError === null)
          logger.warn(
            { err, undecided: this.queue.length },
            `database: decision failed (${(err as Error).message}); refusing writes, retrying`,
          );
        this.dbError = err as Error;
        const failure = new AppError('database_unavailable', `the database did not decide: ${(err as Error).message}`, {
          retryAfterSeconds: config.retryAfterSeconds,
          cause: err,
        });
        for (const entry of batch) for (const waiter of [...entry.waiters]) waiter.reject(failure);
        if (this.stateValue !== 'ready' && this.stateValue !== 'stopping') return;
        await sleep(RETRY_DELAYS_MS[Math.min(this.retryIndex, RETRY_DELAYS_MS.length - 1)]!);
        this.retryIndex += 1;
      }
    }
  }

  /**
   * One page of stored events of the whole cluster, in global seq order. Its snapshotSeq is
   * the last seq the page examined (its last row, else the cursor): a lower bound of what the
   * read saw, so the live tail never skips a row another instance committed meanwhile.
   */
  async readPage(query: EventQuery): Promise<SnapshotPage> {
    let page: EventPage;
    try {
      page = await this.database().readPage(query);
    } catch (err) {
      throw this.readFailure(err);
    }
    const last = page.rows.length > 0 ? page.rows[page.rows.length - 1]!.seq : (query.afterSeq ?? 0);
    return { ...page, snapshotSeq: query.order === 'desc' ? (query.afterSeq ?? 0) : last, threadId: 0 };
  }

  /**
   * The histogram of GET /events/histogram over the whole cluster, counted as the embedded
   * index counts it (countHistogram): one query per `chunkRows` global seqs, so each
   * statement's work is bounded and `signal` stops the count between them.
   */
  async histogram(filter: EventFilter, buckets: number, chunkRows: number, signal?: AbortSignal): Promise<Histogram> {
    try {
      return await countHistogram(this.database(), filter, buckets, { chunkRows, signal });
    } catch (err) {
      if (signal?.aborted === true) throw err;
      throw this.readFailure(err);
    }
  }

  /** Announces every row any instance stores, in global seq order (the live tail). */
  onIndexed(listener: (rows: IndexRow[]) => void): () => void {
    return this.feed?.subscribe(listener) ?? (() => undefined);
  }

  /** Reads the cluster's counters and topics into the snapshot; throws 503 database_unavailable. */
  async refreshSnapshot(): Promise<void> {
    try {
      const db = this.database();
      const [counters, topics] = await Promise.all([db.counters(), db.topics()]);
      this.counters = counters;
      this.topicList = topics;
    } catch (err) {
      throw this.readFailure(err);
    }
  }

  /**
   * The lowest global seq still stored, as last read (refreshSnapshot): every seq below it was
   * deleted by some instance's retention. Seqs above it may be gone too, where one instance's
   * retention went further than another's (docs/scaling.md).
   */
  get firstSeq(): number {
    return this.counters.firstSeq;
  }

  /**
   * first_seq and expired_events of the whole cluster (as last read); log_bytes and the time
   * of the last deletion are this instance's own (its log, its retention).
   */
  retentionSnapshot(): RetentionSnapshot {
    const segments = retainedSegments(this.disk, this.options.config.walDir, this.retained.firstLocalSeq).segments;
    return {
      firstSeq: this.counters.firstSeq,
      expiredTotal: this.counters.expiredTotal,
      lastDeletionMs: this.retained.lastDeletionMs,
      logBytes: logBytes(this.disk, segments),
    };
  }

  /** Runs retention until nothing more is due (tests; the service runs it by itself). */
  async runRetention(): Promise<RetentionDeletion[]> {
    return this.retention === null ? [] : this.retention.runUntilDone();
  }

  /**
   * Retention of this instance's log (RETENTION_BYTES / RETENTION_MS), with the steps of the
   * embedded one (src/wal/retention.ts); its step a is one PostgreSQL transaction that deletes
   * this instance's rows of the segment and keeps their keys, and only segments wholly at or
   * below the confirmed local seq (decided and committed) go. With DEDUP_HORIZON_MS, keys of
   * deleted events are swept past the horizon.
   */
  private startRetention(db: PgIndex): void {
    const { config, logger } = this.options;
    this.retention = startServiceRetention({
      disk: this.disk,
      walDir: config.walDir,
      config,
      index: {
        checkpointSeq: () => this.confirmedLocalSeq,
        firstSeq: () => this.retained.firstLocalSeq,
        dropThrough: async (lastSeq, deletedAtMs) => {
          const deleted = await db.expire(this.leaseOwner(), lastSeq, deletedAtMs);
          this.retained = {
            firstLocalSeq: Math.max(this.retained.firstLocalSeq, lastSeq + 1),
            expiredEvents: this.retained.expiredEvents + deleted,
            lastDeletionMs: deleted > 0 ? deletedAtMs : this.retained.lastDeletionMs,
          };
          return deleted;
        },
      },
      activeSegmentName: () => this.writer?.currentSegment.name ?? null,
      logger,
      observer: this.options.observer,
      onError: (err) => {
        if (!isLeaseLost(err)) return false;
        this.failOnLease(new InstanceLeaseError(`retention refused: ${err.message}; stopping`));
        return true;
      },
    });
    const horizonMs = config.dedupHorizonMs ?? 0;
    if (horizonMs > 0) {
      const sweep = async (): Promise<void> => {
        // Bounded: KEY_SWEEP_BATCH keys per statement, until none is due.
        while ((await db.sweepKeys(Date.now() - horizonMs, KEY_SWEEP_BATCH)) === KEY_SWEEP_BATCH && this.stateValue === 'ready');
      };
      this.keySweep = setInterval(() => void sweep().catch(() => undefined), FIXED_LIMITS.retentionCheckMs);
      this.keySweep.unref();
    }
  }

  /**
   * Lifetime counters of the whole cluster as last read (refreshSnapshot), and this
   * instance's live figures; checkpointSeq is the last global seq.
   */
  snapshot(): PipelineSnapshot {
    const segment = this.writer?.currentSegment;
    return {
      state: this.stateValue,
      condition: this.condition(),
      startedAtMs: this.startedAt,
      acceptedTotal: this.counters.uniqueTotal,
      uniqueTotal: this.counters.uniqueTotal,
      duplicatesTotal: this.counters.duplicatesTotal,
      conflictsTotal: this.counters.conflictsTotal,
      // Every key the cluster knows: of the events stored, and of those retention deleted within the horizon.
      dedupKeys: this.counters.uniqueTotal - this.counters.expiredTotal + this.counters.expiredKeys,
      checkpointSeq: this.counters.lastSeq,
      queueSize: this.queueSize(),
      durableSeq: this.writer?.durableSeq ?? null,
      segment: segment === undefined ? null : { name: segment.name, bytes: segment.bytes },
      noSpaceSinceMs: this.writer?.noSpaceSince ?? null,
      logError: this.failure?.message ?? null,
      consumerRunning: this.stateValue === 'ready',
      indexError: this.dbError === null ? (this.feed?.error ?? null) : `database: ${this.dbError.message}`,
    };
  }

  topics(): string[] {
    return this.topicList;
  }

  /** Events logged (or being logged) by this instance and not yet decided. */
  queueSize(): number {
    return this.queue.length + (this.writer?.pendingCount ?? 0);
  }

  /** Like Aggregator.condition, plus database_unavailable while the database does not answer. */
  condition(): ServiceCondition {
    if (this.stateValue === 'recovering' && this.dbError !== null) return 'database_unavailable';
    if (this.stateValue !== 'ready') return this.stateValue;
    if (this.writer?.noSpaceSince != null) return 'no_space';
    if (this.dbError !== null) return 'database_unavailable';
    if (this.queueSize() >= this.options.config.queueMaxSize) return 'backlog_full';
    return 'healthy';
  }

  acceptsWrites(): boolean {
    return this.condition() === 'healthy';
  }

  /** Refuses writes, flushes the log, decides what it can within the shutdown bound, and closes. */
  async close(): Promise<void> {
    if (this.stateValue === 'stopped' || this.stateValue === 'stopping') return;
    const failed = this.stateValue === 'failed';
    this.stateValue = 'stopping';
    if (this.keySweep !== null) clearInterval(this.keySweep);
    await this.retention?.stop();
    if (this.writer !== null) await this.writer.close();
    // What is not decided by then stays in the log and is decided at the next start.
    const deadline = Date.now() + this.options.config.shutdownTimeoutMs / 2;
    while (this.queue.length > 0 && Date.now() < deadline && this.dbError === null) {
      this.kickDecider();
      await Promise.race([this.decidingDone, sleep(50)]);
    }
    await this.feed?.close();
    await this.lease?.release();
    await this.db?.close().catch(() => undefined);
    this.stateValue = failed ? 'failed' : 'stopped';
  }

  /** What a decision names: this instance and its lease's token. */
  private leaseOwner(): { instanceId: string; token: string } {
    return { instanceId: this.instanceId, token: this.lease!.token };
  }

  /** Another process took this instance id over: refuse everything and stop (as a failed log does). */
  private failOnLease(err: InstanceLeaseError): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.stateValue = 'failed';
    this.options.logger.fatal({ err, instanceId: this.instanceId }, err.message);
    this.options.onFatal?.(err);
  }

  private database(): PgIndex {
    if (this.db === null || this.stateValue === 'starting') {
      throw new AppError('recovering', 'the service is connecting to the database', {
        retryAfterSeconds: this.options.config.retryAfterSeconds,
      });
    }
    return this.db;
  }

  private readFailure(err: unknown): Error {
    if (err instanceof AppError) return err;
    return new AppError('database_unavailable', `the database did not answer: ${(err as Error).message}`, {
      retryAfterSeconds: this.options.config.retryAfterSeconds,
      cause: err,
    });
  }

  private assertWritable(): WalWriter<LoggedRecord> {
    const retryAfterSeconds = this.options.config.retryAfterSeconds;
    switch (this.stateValue) {
      case 'ready':
        break;
      case 'starting':
      case 'recovering':
        throw new AppError('recovering', 'recovery is deciding the unconfirmed log; no write is accepted before it is done', {
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
    // While the database is away nothing new is logged: it could not be decided, and a 503 must mean "not stored".
    if (this.dbError !== null) {
      throw new AppError('database_unavailable', `the database is unavailable: ${this.dbError.message}`, {
        retryAfterSeconds,
        cause: this.dbError,
      });
    }
    return this.writer!;
  }
}

/** The answer for a key this request logged (or took over). */
function outcomeOf(decision: Decision): PublishOutcome {
  switch (decision.outcome) {
    case 'accepted':
    case 'accepted_before':
      return { status: 'accepted', seq: decision.seq };
    case 'duplicate':
      return { status: 'duplicate', seq: decision.seq };
    case 'conflict':
      return { status: 'duplicate', seq: decision.seq, conflict: true };
  }
}

/** The in-flight map's key: exact for any strings (JSON escapes the separator). */
function keyOf(topic: string, eventId: string): string {
  return JSON.stringify([topic, eventId]);
}

/** Errors that mean "the database is away or too slow" (retried), as opposed to a bug or a refused statement. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  // Class 08: connection exception; 57P0x: shutdown / cannot connect now; 57014: statement timeout; 53: resources.
  if (/^(08|53|57P0)/.test(code) || code === '57014') return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /timeout|terminated|Connection terminated|connect ECONNREFUSED|not queryable|ended/i.test(message);
}

/** The md5 of a canonical event JSON, as PostgreSQL's md5() of the same text in a UTF8 database. */
function md5Hex(body: string): string {
  return createHash('md5').update(body, 'utf8').digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
