import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { KeyTable, keyHash } from './key-table';

/** One event as the index stores it; `body` is the exact event JSON from the log. */
export interface IndexRow {
  seq: number;
  topic: string;
  eventId: string;
  source: string;
  tsMs: number;
  body: string;
  /** keyHash(topic, eventId) when the caller has it already (saves hashing twice). */
  keyHash?: number;
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

/**
 * Schema version 2. The dedup key is held as `key_hash` (a 53-bit number, see keyHash) and
 * looked up through an in-memory KeyTable rather than a unique SQLite index over two TEXT
 * columns: rows are appended in seq order, and the only other B-tree (topic, seq) grows at
 * the end of each topic, so an insert touches no random page. Exactness comes from
 * confirming each hash match against the row's stored topic and event_id.
 */
const SCHEMA_VERSION = 2;
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    key_hash INTEGER NOT NULL,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY) WITHOUT ROWID;
`;

/** Drops an index of an older schema: it is rebuilt from the log, which is the source of truth. */
const DROP_OLD_SCHEMA = `
  DROP TABLE IF EXISTS events;
  DROP TABLE IF EXISTS meta;
  DROP TABLE IF EXISTS topics;
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
  private readonly appendTransaction: (rows: IndexRow[], duplicates: number, conflicts: number) => IndexCounters;
  private current: IndexCounters;
  /** Every stored key by hash; built on first use (at once for a writable store). */
  private keys: KeyTable | null = null;
  /** True when an index of an older schema was dropped on open (recovery rebuilds it from the log). */
  readonly schemaReset: boolean = false;

  /**
   * `withoutSpace` opens an existing index for reads only while the disk is full.
   * `loadKeys` (default: true unless readonly) builds the key table at once; a store that
   * only appends proven-new rows (the index worker) passes false and never needs it.
   */
  constructor(databasePath: string, options: { readonly?: boolean; loadKeys?: boolean; withoutSpace?: boolean } = {}) {
    const readOnly = options.readonly === true || options.withoutSpace === true;
    if (!readOnly) fs.mkdirSync(path.dirname(databasePath), { recursive: true });
    this.db = new Database(databasePath, { readonly: options.readonly === true, fileMustExist: readOnly });
    // A failed open (a full disk) must not leave a handle that holds the file's locks.
    try {
      // On a full disk SQLite cannot create the -shm file of a WAL database; in exclusive locking
      // mode it keeps that index in memory instead, so reads go on (writes fail with SQLITE_FULL).
      if (options.withoutSpace === true) this.db.pragma('locking_mode = EXCLUSIVE');
      // WAL journal: readers (queries, `logagg` on a live data dir) never block the consumer.
      if (!readOnly) this.db.pragma('journal_mode = WAL');
      // NORMAL: a power loss may lose the last index commits but never corrupts the file;
      // the lost rows lie after the checkpoint and are replayed from the fsynced log.
      this.db.pragma('synchronous = NORMAL');
      // A reader from another process waits this long for a lock instead of failing.
      this.db.pragma('busy_timeout = 5000');
      // Rows are built in memory per batch; temp B-trees never need the disk.
      this.db.pragma('temp_store = MEMORY');
      // 16 MiB page cache: inserts append at the right edge of both B-trees and lookups go
      // through the in-memory key table, so few pages are hot.
      this.db.pragma('cache_size = -16384');
      // Checkpoint the SQLite WAL every 8192 pages (32 MiB) instead of 1000: each checkpoint
      // fsyncs the database file, and on a busy disk one fsync costs tens of milliseconds.
      if (!readOnly) this.db.pragma('wal_autocheckpoint = 8192');
      const version = Number(this.db.pragma('user_version', { simple: true }));
      const hasEvents = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() !== undefined;
      if (readOnly && hasEvents && version !== SCHEMA_VERSION) {
        this.db.close();
        throw new Error(`index ${databasePath} has schema version ${version}, expected ${SCHEMA_VERSION}: start the service once to rebuild it from the log`);
      }
      if (!readOnly) {
        if (hasEvents && version !== SCHEMA_VERSION) {
          this.db.exec(DROP_OLD_SCHEMA);
          this.schemaReset = true;
        }
        this.db.exec(SCHEMA);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }
    } catch (err) {
      if (this.db.open) this.db.close();
      throw err;
    }

    this.statements = {
      insert: this.db.prepare('INSERT INTO events (seq, key_hash, topic, event_id, source, ts_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertTopic: this.db.prepare('INSERT OR IGNORE INTO topics (topic) VALUES (?)'),
      bySeq: this.db.prepare('SELECT topic, event_id, body FROM events WHERE seq = ?'),
      allKeys: this.db.prepare('SELECT key_hash, seq FROM events').raw(),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      topics: this.db.prepare('SELECT topic FROM topics ORDER BY topic').pluck(),
      count: this.db.prepare('SELECT count(*) FROM events').pluck(),
    };
    for (const topic of this.statements.topics.all() as string[]) this.topicSet.add(topic);
    this.current = this.readCounters();
    if (options.loadKeys ?? !readOnly) this.keyTable();

    this.applyTransaction = this.db.transaction((rows: IndexRow[], duplicates: number, conflicts: number): IndexCounters => {
      const counters = this.current;
      let inserted = 0;
      let lastSeq = counters.checkpointSeq;
      const keys = this.keyTable();
      for (const row of rows) {
        if (row.seq > lastSeq) lastSeq = row.seq;
        // The first row of a key wins; later ones (in the index or this batch) are ignored.
        const hash = row.keyHash ?? keyHash(row.topic, row.eventId);
        if (!keys.lacks(hash) && this.findStored(hash, row.topic, row.eventId) !== undefined) continue;
        this.statements.insert.run(row.seq, hash, row.topic, row.eventId, row.source, row.tsMs, row.body);
        keys.add(hash, row.seq);
        inserted += 1;
        if (!this.topicSet.has(row.topic)) this.statements.insertTopic.run(row.topic);
      }
      return this.commitCounters(lastSeq, inserted, duplicates, conflicts);
    });
    this.appendTransaction = this.db.transaction((rows: IndexRow[], duplicates: number, conflicts: number): IndexCounters => {
      let lastSeq = this.current.checkpointSeq;
      for (const row of rows) {
        if (row.seq > lastSeq) lastSeq = row.seq;
        this.statements.insert.run(row.seq, row.keyHash ?? keyHash(row.topic, row.eventId), row.topic, row.eventId, row.source, row.tsMs, row.body);
        if (!this.topicSet.has(row.topic)) this.statements.insertTopic.run(row.topic);
      }
      return this.commitCounters(lastSeq, rows.length, duplicates, conflicts);
    });
  }

  /** Writes the checkpoint and counters; runs inside the transaction that holds the rows. */
  private commitCounters(lastSeq: number, inserted: number, duplicates: number, conflicts: number): IndexCounters {
    const counters = this.current;
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
  }

  /**
   * Like applyBatch for rows whose keys the caller has already proven new and distinct (the
   * ingest path's exact dedup): it neither checks nor remembers their keys, so it needs no
   * key table. Returns the counters committed with them.
   */
  appendNewRows(rows: IndexRow[], duplicates = 0, conflicts = 0): IndexCounters {
    this.current = this.appendTransaction(rows, duplicates, conflicts);
    for (const row of rows) this.topicSet.add(row.topic);
    return this.current;
  }

  /**
   * Tells this store about rows that another connection to the same file (the index
   * worker) has committed, with the counters committed alongside: lookups find them from
   * now on and `counters` reports them.
   */
  noteCommitted(rows: IndexRow[], counters: IndexCounters): void {
    const keys = this.keys;
    for (const row of rows) {
      keys?.add(row.keyHash ?? keyHash(row.topic, row.eventId), row.seq);
      this.topicSet.add(row.topic);
    }
    this.current = counters;
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
    try {
      this.current = this.applyTransaction(rows, duplicates, conflicts);
    } catch (err) {
      // The rollback undid rows the key table already holds: rebuild it from what is committed.
      this.keys = null;
      throw err;
    }
    for (const row of rows) this.topicSet.add(row.topic);
    return this.current.uniqueTotal - before;
  }

  /** The stored original of a key, or undefined. `hash` may pass keyHash(topic, eventId) if known. */
  lookup(topic: string, eventId: string, hash = keyHash(topic, eventId)): { seq: number; body: string } | undefined {
    // A new key costs one probe of the in-memory table and no SQLite read.
    if (this.keyTable().lacks(hash)) return undefined;
    return this.findStored(hash, topic, eventId);
  }

  /** Confirms hash matches against stored rows: exact even when two keys share a hash. */
  private findStored(hash: number, topic: string, eventId: string): { seq: number; body: string } | undefined {
    let found: { seq: number; body: string } | undefined;
    this.keyTable().find(hash, (seq) => {
      const row = this.statements.bySeq.get(seq) as { topic: string; event_id: string; body: string } | undefined;
      if (row === undefined || row.topic !== topic || row.event_id !== eventId) return false;
      found = { seq, body: row.body };
      return true;
    });
    return found;
  }

  /** The key table, loaded from the stored key hashes on first use. */
  private keyTable(): KeyTable {
    if (this.keys === null) {
      const keys = new KeyTable(this.current.uniqueTotal);
      for (const [hash, seq] of this.statements.allKeys.iterate() as Iterable<[number, number]>) keys.add(hash, seq);
      this.keys = keys;
    }
    return this.keys;
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
