import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';

/** One event as the index stores it; `body` is the exact event JSON from the log. */
export interface IndexRow {
  seq: number;
  topic: string;
  eventId: string;
  source: string;
  tsMs: number;
  body: string;
}

/** Lifetime counters kept in the index, committed with the rows they describe. */
export interface IndexCounters {
  checkpointSeq: number;
  uniqueTotal: number;
  duplicatesTotal: number;
  conflictsTotal: number;
}

/** Filters of GET /events; all optional, combined with AND. */
export interface EventQuery {
  topic?: string;
  source?: string;
  afterSeq?: number;
  sinceMs?: number;
  untilMs?: number;
  limit: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  -- The dedup key: one row per (topic, event_id), forever.
  CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (topic, event_id);
  CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY) WITHOUT ROWID;
`;

const COUNTER_KEYS = {
  checkpointSeq: 'checkpoint_seq',
  uniqueTotal: 'unique_total',
  duplicatesTotal: 'duplicates_total',
  conflictsTotal: 'conflicts_total',
} as const;

/**
 * The SQLite index over the log: dedup lookups, queries and lifetime counters. It can
 * always be rebuilt from the log; the checkpoint says how far it has applied it.
 */
export class IndexStore {
  readonly db: Database.Database;
  private readonly topicSet = new Set<string>();
  private readonly statements;
  private readonly queryCache = new Map<string, Database.Statement>();
  private readonly applyTransaction: (rows: IndexRow[], duplicates: number, conflicts: number) => IndexCounters;
  private current: IndexCounters;

  constructor(databasePath: string, options: { readonly?: boolean } = {}) {
    if (options.readonly !== true) fs.mkdirSync(path.dirname(databasePath), { recursive: true });
    this.db = new Database(databasePath, { readonly: options.readonly === true, fileMustExist: options.readonly === true });
    // WAL journal: readers (queries, `logagg` on a live data dir) never block the consumer.
    if (options.readonly !== true) this.db.pragma('journal_mode = WAL');
    // NORMAL: a power loss may lose the last index commits but never corrupts the file;
    // the lost rows lie after the checkpoint and are replayed from the fsynced log.
    this.db.pragma('synchronous = NORMAL');
    // A reader from another process waits this long for a lock instead of failing.
    this.db.pragma('busy_timeout = 5000');
    // Rows are built in memory per batch; temp B-trees never need the disk.
    this.db.pragma('temp_store = MEMORY');
    // 64 MiB page cache: the dedup index's hot pages stay in memory.
    this.db.pragma('cache_size = -65536');
    if (options.readonly !== true) this.db.exec(SCHEMA);

    this.statements = {
      insert: this.db.prepare('INSERT OR IGNORE INTO events (seq, topic, event_id, source, ts_ms, body) VALUES (?, ?, ?, ?, ?, ?)'),
      insertTopic: this.db.prepare('INSERT OR IGNORE INTO topics (topic) VALUES (?)'),
      lookup: this.db.prepare('SELECT seq, body FROM events WHERE topic = ? AND event_id = ?'),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      topics: this.db.prepare('SELECT topic FROM topics ORDER BY topic').pluck(),
      count: this.db.prepare('SELECT count(*) FROM events').pluck(),
    };
    for (const topic of this.statements.topics.all() as string[]) this.topicSet.add(topic);
    this.current = this.readCounters();

    this.applyTransaction = this.db.transaction((rows: IndexRow[], duplicates: number, conflicts: number): IndexCounters => {
      const counters = this.current;
      let inserted = 0;
      let lastSeq = counters.checkpointSeq;
      for (const row of rows) {
        const info = this.statements.insert.run(row.seq, row.topic, row.eventId, row.source, row.tsMs, row.body);
        inserted += info.changes;
        if (row.seq > lastSeq) lastSeq = row.seq;
        if (!this.topicSet.has(row.topic)) this.statements.insertTopic.run(row.topic);
      }
      const next: IndexCounters = {
        checkpointSeq: lastSeq,
        uniqueTotal: counters.uniqueTotal + inserted,
        duplicatesTotal: counters.duplicatesTotal + duplicates,
        conflictsTotal: counters.conflictsTotal + conflicts,
      };
      // The checkpoint commits with the rows: after a crash the index is never ahead of it.
      this.statements.setMeta.run(COUNTER_KEYS.checkpointSeq, next.checkpointSeq);
      this.statements.setMeta.run(COUNTER_KEYS.uniqueTotal, next.uniqueTotal);
      if (duplicates !== 0) this.statements.setMeta.run(COUNTER_KEYS.duplicatesTotal, next.duplicatesTotal);
      if (conflicts !== 0) this.statements.setMeta.run(COUNTER_KEYS.conflictsTotal, next.conflictsTotal);
      return next;
    });
  }

  /** The checkpoint and lifetime counters as last committed. */
  get counters(): IndexCounters {
    return this.current;
  }

  /** Reads the checkpoint and lifetime counters from disk (0 for a new index). */
  readCounters(): IndexCounters {
    const read = (key: string): number => Number(this.statements.getMeta.get(key) ?? 0);
    return {
      checkpointSeq: read(COUNTER_KEYS.checkpointSeq),
      uniqueTotal: read(COUNTER_KEYS.uniqueTotal),
      duplicatesTotal: read(COUNTER_KEYS.duplicatesTotal),
      conflictsTotal: read(COUNTER_KEYS.conflictsTotal),
    };
  }

  /**
   * Inserts rows and advances the checkpoint and counters in one transaction. A row whose
   * key is already stored is ignored (the first one wins). Returns the rows inserted.
   */
  applyBatch(rows: IndexRow[], duplicates = 0, conflicts = 0): number {
    const before = this.current.uniqueTotal;
    this.current = this.applyTransaction(rows, duplicates, conflicts);
    for (const row of rows) this.topicSet.add(row.topic);
    return this.current.uniqueTotal - before;
  }

  /** The stored original of a key, or undefined. */
  lookup(topic: string, eventId: string): { seq: number; body: string } | undefined {
    return this.statements.lookup.get(topic, eventId) as { seq: number; body: string } | undefined;
  }

  /** Every topic seen, sorted. */
  topics(): string[] {
    return [...this.topicSet].sort();
  }

  /** Counts rows directly (slow on big indexes; for verify and tests). */
  countRows(): number {
    return Number(this.statements.count.get());
  }

  /** Events matching `query` in seq (publish) order. */
  queryEvents(query: EventQuery): Array<{ seq: number; body: string }> {
    const clauses: string[] = [];
    const params: Array<string | number> = [];
    if (query.topic !== undefined) {
      clauses.push('topic = ?');
      params.push(query.topic);
    }
    if (query.source !== undefined) {
      clauses.push('source = ?');
      params.push(query.source);
    }
    if (query.afterSeq !== undefined) {
      clauses.push('seq > ?');
      params.push(query.afterSeq);
    }
    if (query.sinceMs !== undefined) {
      clauses.push('ts_ms >= ?');
      params.push(query.sinceMs);
    }
    if (query.untilMs !== undefined) {
      clauses.push('ts_ms < ?');
      params.push(query.untilMs);
    }
    const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
    const sql = `SELECT seq, body FROM events ${where} ORDER BY seq LIMIT ?`;
    let statement = this.queryCache.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.queryCache.set(sql, statement);
    }
    return statement.all(...params, query.limit) as Array<{ seq: number; body: string }>;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
