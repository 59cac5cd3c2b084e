import pg from 'pg';
import type { Logger } from 'pino';
import { FIXED_LIMITS } from '../config/config';
import type { EventPage, EventQuery, IndexRow, PageRow } from '../index/store';
import { compileBodyMatcher, needsBody, type EventFilter } from '../query/event-filter';
import type { HistogramSource } from '../query/histogram';
import { EXPIRED_BODY_PREFIX, migrateSchema } from './pg-schema';

/** How to reach the shared database, and the bounds on every wait for it. */
export interface PgIndexOptions {
  url: string;
  /** Connections of this instance's pool (DATABASE_POOL_MAX). */
  poolMax: number;
  /** Bound on connecting and on every statement (DATABASE_TIMEOUT_MS). */
  timeoutMs: number;
  logger: Logger;
}

/** One logged event offered to the database for a decision; strings as the client sent them. */
export interface Candidate {
  localSeq: number;
  topic: string;
  eventId: string;
  source: string;
  tsMs: number;
  receivedMs: number;
  /** The canonical event JSON (without seq or received_at): what dedup compares. */
  body: string;
}

/**
 * What the database decided for one candidate. `accepted_before`: an earlier attempt of this
 * same record committed (its answer was lost), so it is this record's acceptance.
 */
export interface Decision {
  seq: number;
  outcome: 'accepted' | 'accepted_before' | 'duplicate' | 'conflict';
  /** The stored original's canonical JSON for duplicates and conflicts; null when accepted, or when retention deleted it. */
  originalBody: string | null;
  /** The md5 (hex) of the original's canonical JSON when retention deleted its event (its key is still known); else null. */
  originalMd5: string | null;
}

/** Lifetime counters of the whole cluster, and the last global seq. */
export interface ClusterCounters {
  uniqueTotal: number;
  duplicatesTotal: number;
  conflictsTotal: number;
  lastSeq: number;
  /** The lowest global seq still stored (lastSeq + 1 when none is): every seq below it was deleted by retention. */
  firstSeq: number;
  /** Rows deleted by every instance's retention, lifetime. */
  expiredTotal: number;
  /** Keys of deleted events still known (until DEDUP_HORIZON_MS past their deletion). */
  expiredKeys: number;
}

/** What retention did to one instance's rows. */
export interface InstanceRetention {
  /** The first local seq whose row may still be stored (step a of a deletion moved it past the deleted ones). */
  firstLocalSeq: number;
  expiredEvents: number;
  lastDeletionMs: number | null;
}

/** Rows fetched per round trip while a filtered page scans for matches. */
const SCAN_CHUNK_ROWS = 500;

/**
 * The shared index in PostgreSQL: decisions (one round trip per batch), reads in global seq
 * order, counters, and this instance's confirmed local seq. Every wait is bounded by
 * DATABASE_TIMEOUT_MS; the pool reconnects by itself. It does not retry: callers decide.
 */
export class PgIndex implements HistogramSource {
  readonly pool: pg.Pool;

  constructor(private readonly options: PgIndexOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      connectionTimeoutMillis: options.timeoutMs,
      // Server-side bound, and a client-side one a little later for a connection that hangs.
      statement_timeout: options.timeoutMs,
      query_timeout: options.timeoutMs + 1000,
      idleTimeoutMillis: 30_000,
      application_name: 'log-aggregator',
    });
    // An idle connection that breaks (database restart) must not crash the process; the pool replaces it.
    this.pool.on('error', (err) => options.logger.warn(`database: idle connection lost (${err.message})`));
  }

  /** Creates or upgrades the schema (under an advisory lock); returns the version found. */
  migrate(): Promise<number> {
    return migrateSchema(this.pool);
  }

  /** The last local seq of `instanceId` whose decision committed (0 for a new instance). */
  async confirmedLocalSeq(instanceId: string): Promise<number> {
    const result = await this.pool.query<{ confirmed_local_seq: string }>(
      'SELECT confirmed_local_seq FROM logagg_instances WHERE instance_id = $1',
      [instanceId],
    );
    return Number(result.rows[0]?.confirmed_local_seq ?? 0);
  }

  /**
   * Decides `candidates` (distinct keys, in local seq order) in one transaction that also adds
   * `extra` duplicates counted by the instance itself and confirms `lastLocalSeq` (null: none).
   * Only the holder of the instance's lease may decide (else the error isLeaseLost names).
   * Returns one decision per candidate, in order. A rejection leaves the outcome unknown:
   * deciding the same records again is safe (see Decision's accepted_before).
   */
  async decide(
    lease: { instanceId: string; token: string },
    lastLocalSeq: number | null,
    candidates: readonly Candidate[],
    extra: { duplicates: number; conflicts: number },
  ): Promise<Decision[]> {
    const result = await this.pool.query<{ ord: string; seq: string; outcome: Decision['outcome']; original_body: string | null }>(
      'SELECT ord, seq, outcome, original_body FROM logagg_decide_leased($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)',
      [
        lease.token,
        lease.instanceId,
        lastLocalSeq,
        Date.now(),
        candidates.map((c) => c.localSeq),
        candidates.map((c) => JSON.stringify(c.topic)),
        candidates.map((c) => JSON.stringify(c.eventId)),
        candidates.map((c) => JSON.stringify(c.source)),
        candidates.map((c) => c.tsMs),
        candidates.map((c) => c.receivedMs),
        candidates.map((c) => c.body),
        extra.duplicates,
        extra.conflicts,
      ],
    );
    if (result.rows.length !== candidates.length) {
      throw new Error(`decide: ${result.rows.length} decisions for ${candidates.length} candidates`);
    }
    return result.rows.map((row) => {
      const expired = row.original_body?.startsWith(EXPIRED_BODY_PREFIX) === true;
      return {
        seq: Number(row.seq),
        outcome: row.outcome,
        originalBody: expired ? null : row.original_body,
        originalMd5: expired ? row.original_body!.slice(EXPIRED_BODY_PREFIX.length) : null,
      };
    });
  }

  /** The cluster's lifetime counters, last and first global seq, read together (one statement, one snapshot). */
  async counters(): Promise<ClusterCounters> {
    const result = await this.pool.query<{
      unique_total: string;
      duplicates_total: string;
      conflicts_total: string;
      last_seq: string;
      first_seq: string | null;
      expired_total: string;
      expired_keys: string;
    }>(
      `SELECT unique_total, duplicates_total, conflicts_total, last_seq, expired_total, expired_keys,
         (SELECT min(seq) FROM logagg_events) AS first_seq
       FROM logagg_counters WHERE id = 1`,
    );
    const row = result.rows[0];
    const lastSeq = Number(row?.last_seq ?? 0);
    return {
      uniqueTotal: Number(row?.unique_total ?? 0),
      duplicatesTotal: Number(row?.duplicates_total ?? 0),
      conflictsTotal: Number(row?.conflicts_total ?? 0),
      lastSeq,
      firstSeq: row?.first_seq == null ? lastSeq + 1 : Number(row.first_seq),
      expiredTotal: Number(row?.expired_total ?? 0),
      expiredKeys: Number(row?.expired_keys ?? 0),
    };
  }

  /** What retention did to `instanceId`'s rows (all zero for an instance that never deleted). */
  async instanceRetention(instanceId: string): Promise<InstanceRetention> {
    const result = await this.pool.query<{ first_local_seq: string; expired_events: string; last_deletion_ms: string | null }>(
      'SELECT first_local_seq, expired_events, last_deletion_ms FROM logagg_instances WHERE instance_id = $1',
      [instanceId],
    );
    const row = result.rows[0];
    return {
      firstLocalSeq: Number(row?.first_local_seq ?? 1),
      expiredEvents: Number(row?.expired_events ?? 0),
      lastDeletionMs: row?.last_deletion_ms == null ? null : Number(row.last_deletion_ms),
    };
  }

  /**
   * Retention's step a: deletes this instance's rows with local seq <= lastLocalSeq, keeping
   * their keys, in one committed transaction (lease checked, under the decision lock).
   * Returns the rows deleted; a repeat deletes nothing more.
   */
  async expire(lease: { instanceId: string; token: string }, lastLocalSeq: number, deletedAtMs: number): Promise<number> {
    const result = await this.pool.query<{ n: string }>('SELECT logagg_expire($1, $2, $3, $4) AS n', [
      lease.token,
      lease.instanceId,
      lastLocalSeq,
      deletedAtMs,
    ]);
    return Number(result.rows[0]?.n ?? 0);
  }

  /** The dedup horizon: forgets at most `limit` keys of events deleted before `beforeMs`; returns how many. */
  async sweepKeys(beforeMs: number, limit: number): Promise<number> {
    const result = await this.pool.query<{ n: string }>('SELECT logagg_sweep_keys($1, $2) AS n', [beforeMs, limit]);
    return Number(result.rows[0]?.n ?? 0);
  }

  /** Every topic stored, sorted as the SQLite index sorts them (by code unit). */
  async topics(): Promise<string[]> {
    const result = await this.pool.query<{ topic_json: string }>('SELECT topic_json FROM logagg_topics');
    return result.rows.map((row) => JSON.parse(row.topic_json) as string).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Stored rows after global seq `afterSeq`, oldest first, at most `limit` (the live tail's feed). */
  async rowsAfter(afterSeq: number, limit: number): Promise<IndexRow[]> {
    const result = await this.pool.query<{
      seq: string;
      topic_json: string;
      event_id_json: string;
      source_json: string;
      ts_ms: string;
      received_ms: string;
      body: string;
    }>(
      'SELECT seq, topic_json, event_id_json, source_json, ts_ms, received_ms, body FROM logagg_events WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return result.rows.map((row) => ({
      seq: Number(row.seq),
      topic: JSON.parse(row.topic_json) as string,
      eventId: JSON.parse(row.event_id_json) as string,
      source: JSON.parse(row.source_json) as string,
      tsMs: Number(row.ts_ms),
      receivedMs: Number(row.received_ms),
      body: row.body,
    }));
  }

  /**
   * One page of GET /events in global seq order: topics, source, time and the cursor in SQL;
   * free text and payload fields matched here over at most scanRowsMax rows, after which the
   * page ends with a next_cursor at the last row examined (as the SQLite index does).
   */
  async readPage(query: EventQuery): Promise<EventPage> {
    const desc = query.order === 'desc';
    const clauses: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (query.topics !== undefined && query.topics.length > 0)
      clauses.push(`topic_json = ANY(${param(query.topics.map((t) => JSON.stringify(t)))})`);
    if (query.source !== undefined) clauses.push(`source_json = ${param(JSON.stringify(query.source))}`);
    if (query.sinceMs !== undefined) clauses.push(`ts_ms >= ${param(query.sinceMs)}`);
    if (query.untilMs !== undefined) clauses.push(`ts_ms < ${param(query.untilMs)}`);
    const body = needsBody(query) ? compileBodyMatcher(query) : null;
    const scanRowsMax = body === null ? Number.POSITIVE_INFINITY : (query.scanRowsMax ?? FIXED_LIMITS.queryScanRowsMax);
    const bytesMax = query.bytesMax ?? Number.POSITIVE_INFINITY;
    const rows: PageRow[] = [];
    let bytes = 0;
    let scanned = 0;
    let cursor = query.afterSeq ?? null;
    for (;;) {
      const chunk = body === null ? query.limit - rows.length : Math.min(SCAN_CHUNK_ROWS, scanRowsMax - scanned);
      const where = [...clauses];
      const chunkParams = params.length;
      if (cursor !== null) where.push(`seq ${desc ? '<' : '>'} ${param(cursor)}`);
      const sql =
        `SELECT seq, body, received_ms FROM logagg_events${where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`} ` +
        `ORDER BY seq ${desc ? 'DESC' : 'ASC'} LIMIT ${param(chunk)}`;
      const result = await this.pool.query<{ seq: string; body: string; received_ms: string }>(sql, params);
      params.length = chunkParams;
      for (const row of result.rows) {
        const seq = Number(row.seq);
        scanned += 1;
        cursor = seq;
        if (body !== null && !body(row.body)) continue;
        rows.push({ seq, body: row.body, receivedMs: Number(row.received_ms) });
        bytes += row.body.length;
        // A full page, or one past its bytes, goes on after its last row.
        if (rows.length === query.limit || bytes > bytesMax) return { rows, nextCursor: seq };
      }
      if (result.rows.length < chunk) return { rows, nextCursor: null };
      // The scan bound: the page ends here and the next one goes on after the last row examined.
      if (scanned >= scanRowsMax) return { rows, nextCursor: cursor };
    }
  }

  /** The first and last stored global seq, or null when nothing is stored (the histogram's range). */
  async seqBounds(): Promise<{ first: number; last: number } | null> {
    const result = await this.pool.query<{ first: string | null; last: string | null }>(
      'SELECT min(seq) AS first, max(seq) AS last FROM logagg_events',
    );
    const row = result.rows[0];
    return row?.first == null || row.last == null ? null : { first: Number(row.first), last: Number(row.last) };
  }

  /** The earliest and latest timestamp of rows matching `filter` with seq in [fromSeq, toSeq]. */
  async timeBounds(filter: EventFilter, fromSeq: number, toSeq: number): Promise<{ minMs: number; maxMs: number } | null> {
    let minMs = Number.POSITIVE_INFINITY;
    let maxMs = Number.NEGATIVE_INFINITY;
    if (needsBody(filter)) {
      await this.scanMatching(filter, fromSeq, toSeq, (tsMs) => {
        minMs = Math.min(minMs, tsMs);
        maxMs = Math.max(maxMs, tsMs);
      });
    } else {
      const { where, params } = filterWhere(filter, fromSeq, toSeq);
      const result = await this.pool.query<{ min_ms: string | null; max_ms: string | null }>(
        `SELECT min(ts_ms) AS min_ms, max(ts_ms) AS max_ms FROM logagg_events WHERE ${where}`,
        params,
      );
      const row = result.rows[0];
      if (row?.min_ms == null || row.max_ms == null) return null;
      minMs = Number(row.min_ms);
      maxMs = Number(row.max_ms);
    }
    return minMs <= maxMs ? { minMs, maxMs } : null;
  }

  /** There is no time map here: every seq range may hold the window (the count query reads it by seq). */
  timeMapOverlaps(): boolean {
    return true;
  }

  /**
   * [bucket, count] pairs of rows matching `filter` with seq in [fromSeq, toSeq], buckets of
   * intervalMs from filter.sinceMs: one GROUP BY over the seq range, or, for free text and
   * payload fields, a scan of it in chunks of SCAN_CHUNK_ROWS rows matched here.
   */
  async countByBucket(
    filter: EventFilter & { sinceMs: number },
    intervalMs: number,
    fromSeq: number,
    toSeq: number,
  ): Promise<Array<[number, number]>> {
    if (needsBody(filter)) {
      const counts = new Map<number, number>();
      await this.scanMatching(filter, fromSeq, toSeq, (tsMs) => {
        const bucket = Math.floor((tsMs - filter.sinceMs) / intervalMs);
        counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
      });
      return [...counts];
    }
    const { where, params } = filterWhere(filter, fromSeq, toSeq);
    const since = `$${params.push(filter.sinceMs)}`;
    const interval = `$${params.push(intervalMs)}`;
    const result = await this.pool.query<{ bucket: string; n: string }>(
      `SELECT (ts_ms - ${since}::bigint) / ${interval}::bigint AS bucket, count(*) AS n FROM logagg_events WHERE ${where} GROUP BY bucket`,
      params,
    );
    return result.rows.map((row) => [Number(row.bucket), Number(row.n)]);
  }

  /** Calls `visit` with the timestamp of every row in [fromSeq, toSeq] that matches `filter` (body included). */
  private async scanMatching(filter: EventFilter, fromSeq: number, toSeq: number, visit: (tsMs: number) => void): Promise<void> {
    const matches = compileBodyMatcher(filter);
    let from = fromSeq;
    for (;;) {
      const { where, params } = filterWhere(filter, from, toSeq);
      const result = await this.pool.query<{ seq: string; ts_ms: string; body: string }>(
        `SELECT seq, ts_ms, body FROM logagg_events WHERE ${where} ORDER BY seq LIMIT ${SCAN_CHUNK_ROWS}`,
        params,
      );
      for (const row of result.rows) if (matches(row.body)) visit(Number(row.ts_ms));
      if (result.rows.length < SCAN_CHUNK_ROWS) return;
      from = Number(result.rows[result.rows.length - 1]!.seq) + 1;
    }
  }

  /** Ends the pool's connections. */
  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The SQL condition (with its parameters) for a filter's topics, source and time, and a seq range. */
function filterWhere(filter: EventFilter, fromSeq: number, toSeq: number): { where: string; params: unknown[] } {
  const params: unknown[] = [fromSeq, toSeq];
  const clauses = ['seq >= $1', 'seq <= $2'];
  if (filter.topics !== undefined && filter.topics.length > 0)
    clauses.push(`topic_json = ANY($${params.push(filter.topics.map((t) => JSON.stringify(t)))})`);
  if (filter.source !== undefined) clauses.push(`source_json = $${params.push(JSON.stringify(filter.source))}`);
  if (filter.sinceMs !== undefined) clauses.push(`ts_ms >= $${params.push(filter.sinceMs)}`);
  if (filter.untilMs !== undefined) clauses.push(`ts_ms < $${params.push(filter.untilMs)}`);
  return { where: clauses.join(' AND '), params };
}
