import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import type { EventRow, LogPosition } from '../wal/event-row';
import { LogPositionReader } from '../wal/position-reader';
import type { LogDisk } from '../wal/disk';
import type { WalRecord } from '../wal/record';
import { FIXED_LIMITS } from '../config/config';
import { compileBodyMatcher, needsBody, type BodyFilter, type EventFilter } from '../query/event-filter';
import { dedupKeyOf, eventDigestOf, type DedupKey } from './key-hash';
import { KEY_STORE_SCHEMA, KeyStore, migrateKeyLayout, type KeyStoreOptions, type StoredKey } from './key-store';

/**
 * One event as the index stores it: its fields and `position`, where its record lies in the
 * log (required here; the JSON itself is not stored, `body` only gives its digest).
 */
export interface IndexRow extends EventRow {
  /** dedupKeyOf(topic, eventId) when the caller has it already (saves hashing twice). */
  key?: DedupKey;
}

/** Lifetime counters kept in the index, committed with the rows they describe. */
export interface IndexCounters {
  checkpointSeq: number;
  uniqueTotal: number;
  duplicatesTotal: number;
  conflictsTotal: number;
}

/**
 * A read of GET /events: the shared filter, a cursor and an order. `afterSeq` is a
 * next_cursor: the page goes on after it in the chosen order (older rows for desc).
 */
export interface EventQuery extends EventFilter {
  afterSeq?: number;
  /** `asc` (default): oldest first, in seq (publish) order; `desc`: newest first. */
  order?: 'asc' | 'desc';
  limit: number;
  /**
   * Rows in seq order a filter not served by an index (source, time, q, payload) may
   * examine; default FIXED_LIMITS.queryScanRowsMax. Infinity: no bound (tools and tests).
   */
  scanRowsMax?: number;
  /**
   * Bytes of event bodies a page may read (PAGE_BYTES_MAX): rows are read one at a time and
   * the read stops after the first row that passes it, so a page of large events never sits
   * in memory whole; the caller cuts that last row. Default: no bound.
   */
  bytesMax?: number;
}

/** One stored event as readers get it: its seq, its logged JSON and its acceptance time (null for a version-1 record). */
export interface PageRow {
  seq: number;
  body: string;
  receivedMs: number | null;
}

/** One page of matching rows, in the query's order, and where the next page starts. */
export interface EventPage {
  rows: PageRow[];
  /**
   * Pass as `afterSeq` for the next page; null when nothing more matches now. A page may be
   * short, even empty, and still have one: its scan bound was reached (see scanRowsMax).
   */
  nextCursor: number | null;
}

/** First and last seq stored. */
export interface SeqBounds {
  first: number;
  last: number;
}

/**
 * Seqs per block of the time map (table time_blocks): block b covers seqs
 * [b * TIME_BLOCK_SEQS, (b + 1) * TIME_BLOCK_SEQS - 1]. A since/until query skips every block
 * whose time range misses its window, so it scans at most the blocks it overlaps.
 */
export const TIME_BLOCK_SEQS = 1024;

/**
 * Schema version 5: an event row keeps its topic's id (table topics) instead of the topic's
 * text, in the row and in events_by_topic; version 4 made a row keep where its record lies
 * in the log (segment, byte offset, line bytes) instead of a copy of its JSON, readers read
 * bodies from the log (src/wal/position-reader.ts). Version 3 added received_ms and the time
 * map (record format 2); the dedup keys live in their own table (src/index/key-store.ts)
 * behind an in-memory filter of fixed size, so neither memory nor start-up grows with history.
 * Event rows are appended in seq order and the (topic_id, seq) B-tree grows at the end of each
 * topic, so an event insert touches no random page; a key insert touches one.
 */
const SCHEMA_VERSION = 5;
/** Schema 4 (topic text in each event row) is upgraded in place, rows, keys and checkpoint kept (see UPGRADE_FROM_4). */
const SCHEMA_VERSION_TOPIC_TEXT = 4;
/** The columns of the events table (schema 5): the schema and the schema-4 upgrade create it alike. */
const EVENTS_COLUMNS = `(
    seq INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    received_ms INTEGER,
    log_segment INTEGER NOT NULL,
    log_offset INTEGER NOT NULL,
    log_length INTEGER NOT NULL
  )`;
/** Schema 3 (bodies in SQLite) is upgraded in place, keeping its keys; its events are re-indexed from the log (see UPGRADE_FROM_3). */
const SCHEMA_VERSION_BODIES = 3;
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events ${EVENTS_COLUMNS};
  CREATE TABLE IF NOT EXISTS time_blocks (
    block INTEGER PRIMARY KEY,
    min_ts_ms INTEGER NOT NULL,
    max_ts_ms INTEGER NOT NULL,
    min_received_ms INTEGER,
    max_received_ms INTEGER
  );
  CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic_id, seq);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE);
${KEY_STORE_SCHEMA}`;

/**
 * Upgrades a schema-3 index: its event rows (with bodies), time map and topics are dropped
 * and re-indexed from the log (the checkpoint goes back to the first retained seq), but the
 * dedup keys, the deletions and the retention meta stay: the keys of events retention
 * deleted are in no log any more, and dropping them would break the dedup horizon. The
 * rows dropped leave unique_total; the replay re-inserts an event row whose key names its
 * seq (counting it again) and leaves that key as it is.
 */
const UPGRADE_FROM_3 = `
  UPDATE meta SET value = value - (SELECT count(*) FROM events) WHERE key = 'unique_total';
  DROP TABLE IF EXISTS events;
  DROP TABLE IF EXISTS time_blocks;
  DROP TABLE IF EXISTS topics;
  UPDATE meta SET value = coalesce((SELECT value - 1 FROM meta WHERE key = 'first_seq'), 0) WHERE key = 'checkpoint_seq';
`;

/**
 * Upgrades a schema-4 index in place, in one transaction: topics get ids (every topic of the
 * topics table and of the event rows), each event row is copied with its topic's id in place
 * of the text, and events_by_topic is built again on (topic_id, seq). Nothing else is
 * touched: the keys, the deletions, the time map, the retention meta and the checkpoint stay,
 * so nothing is re-indexed. It reads and writes every row once (seconds per million rows);
 * the old rows' pages stay in the file as free pages, which later inserts reuse.
 */
const UPGRADE_FROM_4 = `
  ALTER TABLE topics RENAME TO topics_v4;
  CREATE TABLE topics (id INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE);
  INSERT INTO topics (topic) SELECT topic FROM topics_v4 UNION SELECT DISTINCT topic FROM events ORDER BY 1;
  DROP TABLE topics_v4;
  DROP INDEX IF EXISTS events_by_topic;
  ALTER TABLE events RENAME TO events_v4;
  CREATE TABLE events ${EVENTS_COLUMNS};
  INSERT INTO events (seq, topic_id, event_id, source, ts_ms, received_ms, log_segment, log_offset, log_length)
    SELECT e.seq, t.id, e.event_id, e.source, e.ts_ms, e.received_ms, e.log_segment, e.log_offset, e.log_length
    FROM events_v4 AS e JOIN topics AS t ON t.topic = e.topic ORDER BY e.seq;
  DROP TABLE events_v4;
`;

/** Drops an index of an older schema: it is rebuilt from the log, which is the source of truth. */
const DROP_OLD_SCHEMA = `
  DROP TABLE IF EXISTS events;
  DROP TABLE IF EXISTS meta;
  DROP TABLE IF EXISTS topics;
  DROP TABLE IF EXISTS time_blocks;
  DROP TABLE IF EXISTS keys;
  DROP TABLE IF EXISTS key_rows;
  DROP TABLE IF EXISTS key_gens;
  DROP TABLE IF EXISTS key_log;
  DROP TABLE IF EXISTS deletions;
`;

const COUNTER_KEYS = {
  checkpointSeq: 'checkpoint_seq',
  uniqueTotal: 'unique_total',
  duplicatesTotal: 'duplicates_total',
  conflictsTotal: 'conflicts_total',
} as const;

/** Meta keys of retention (kept apart from IndexCounters: only dropThrough writes them). */
const RETENTION_KEYS = {
  firstSeq: 'first_seq',
  expiredTotal: 'expired_events',
  lastDeletionMs: 'last_deletion_ms',
} as const;

/** What retention has deleted from the index, lifetime (all three survive restarts). */
export interface RetentionState {
  /** The oldest seq the index may hold: every row below it was deleted by retention (1 when none was). */
  firstSeq: number;
  /** Index rows deleted by retention, lifetime. */
  expiredTotal: number;
  /** When the last deletion was committed (epoch ms), null before the first. */
  lastDeletionMs: number | null;
}

/**
 * The SQLite index over the log: dedup lookups, queries and lifetime counters. It can
 * always be rebuilt from the log; the checkpoint says how far it has applied it.
 */
export class IndexStore {
  private readonly db: Database.Database;
  /** Every topic's id, as committed (loaded on open; a writer adds those its commits add). */
  private readonly topicIds = new Map<string, number>();
  /** Ids of topics the running transaction added: they join topicIds once it commits. */
  private readonly pendingTopicIds = new Map<string, number>();
  private readonly statements;
  private readonly queryCache = new Map<string, Database.Statement>();
  /** Compiled body matchers by their filter's JSON, for the SQL function event_matches. */
  private readonly matcherCache = new Map<string, (body: string) => boolean>();
  /** The log the rows point into (the walDir option), or null. */
  readonly walDir: string | null;
  /** Reads event bodies from the log by position; null when the store was opened without its log. */
  private readonly bodies: LogPositionReader | null;
  /**
   * Records event_matches read and matched while selectRows runs (null otherwise), so a
   * page's rows are not read twice; at most the rows its LIMITs let through.
   */
  private matchedRecords: Map<number, WalRecord> | null = null;
  private readonly applyTransaction: (rows: IndexRow[], duplicates: number, conflicts: number) => IndexCounters;
  private readonly appendTransaction: (rows: IndexRow[], duplicates: number, conflicts: number) => IndexCounters;
  private current: IndexCounters;
  private retention: RetentionState;
  /** The dedup keys: an on-disk table behind a fixed-size filter. */
  private readonly keys: KeyStore;
  private filterOpened = false;
  private readonly readOnly: boolean;
  /** True when an index of an older schema was dropped on open (recovery rebuilds it from the log). */
  readonly schemaReset: boolean = false;
  /** True when a schema-3 index was upgraded on open: its events are re-indexed from the log, its keys kept. */
  readonly schemaUpgraded: boolean = false;
  /** Set when a schema-4 index was upgraded on open (its rows given topic ids in place; nothing re-indexed). */
  readonly topicIdsUpgrade: { rows: number; elapsedMs: number } | null = null;
  /** Keys the open migrated from an older key layout (0: none; see migrateKeyLayout). */
  readonly keysMigrated: number = 0;

  /**
   * `withoutSpace` opens an existing index for reads only while the disk is full.
   * `loadKeys` (default: true unless readonly) opens the key filter at once (see
   * openKeyFilter); a store that only appends proven-new rows (the index worker) passes
   * false and never makes one. `keys` sizes the filter, names its file and sets the horizon
   * (default: DEFAULT_KEY_OPTIONS, filter not saved). `walDir` is the log the rows point
   * into: every read of an event body goes there (a store without it can write and look up
   * keys, not read pages); `logDisk` is the disk it is read through (default: the real one;
   * not for read workers, which cannot be handed one).
   */
  constructor(
    databasePath: string,
    options: {
      readonly?: boolean;
      loadKeys?: boolean;
      withoutSpace?: boolean;
      keys?: Partial<KeyStoreOptions>;
      walDir?: string;
      logDisk?: LogDisk;
    } = {},
  ) {
    const readOnly = options.readonly === true || options.withoutSpace === true;
    this.readOnly = readOnly;
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
        throw new Error(
          `index ${databasePath} has schema version ${version}, expected ${SCHEMA_VERSION}: start the service once to ${
            version === SCHEMA_VERSION_TOPIC_TEXT || version === SCHEMA_VERSION_BODIES ? 'upgrade it' : 'rebuild it from the log'
          }`,
        );
      }
      if (!readOnly) {
        if (hasEvents && version === SCHEMA_VERSION_BODIES) {
          this.db.transaction(() => this.db.exec(UPGRADE_FROM_3))();
          this.schemaUpgraded = true;
        } else if (hasEvents && version === SCHEMA_VERSION_TOPIC_TEXT) {
          this.topicIdsUpgrade = upgradeFrom4(this.db);
        } else if (hasEvents && version !== SCHEMA_VERSION) {
          this.db.exec(DROP_OLD_SCHEMA);
          this.schemaReset = true;
        }
        this.db.exec(SCHEMA);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
        // The key layout has its own version (a meta row): an older keys table is migrated, never dropped.
        this.keysMigrated = migrateKeyLayout(this.db);
      } else if (
        hasEvents &&
        this.db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('key_rows', 'key_log')").pluck().get() !== 2
      ) {
        this.db.close();
        throw new Error(`index ${databasePath} has an older key layout: start the service once to migrate it`);
      }
    } catch (err) {
      if (this.db.open) this.db.close();
      throw err;
    }

    this.statements = {
      // OR REPLACE: a row re-indexed after an upgrade or a repair takes its record's new position.
      insert: this.db.prepare(
        'INSERT OR REPLACE INTO events (seq, topic_id, event_id, source, ts_ms, received_ms, log_segment, log_offset, log_length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      // min()/max() of two values ignore neither NULL: coalesce keeps a version-1 block's null times out.
      noteBlock: this.db.prepare(
        `INSERT INTO time_blocks (block, min_ts_ms, max_ts_ms, min_received_ms, max_received_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (block) DO UPDATE SET
           min_ts_ms = min(min_ts_ms, excluded.min_ts_ms),
           max_ts_ms = max(max_ts_ms, excluded.max_ts_ms),
           min_received_ms = coalesce(min(min_received_ms, excluded.min_received_ms), min_received_ms, excluded.min_received_ms),
           max_received_ms = coalesce(max(max_received_ms, excluded.max_received_ms), max_received_ms, excluded.max_received_ms)`,
      ),
      insertTopic: this.db.prepare('INSERT OR IGNORE INTO topics (topic) VALUES (?)'),
      topicId: this.db.prepare('SELECT id FROM topics WHERE topic = ?').pluck(),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      topics: this.db.prepare('SELECT topic, id FROM topics').raw(),
      count: this.db.prepare('SELECT count(*) FROM events').pluck(),
    };
    this.retention = this.readRetention();
    for (const [topic, id] of this.statements.topics.all() as Array<[string, number]>) this.topicIds.set(topic, id);
    // The free-text and payload-field rule (src/query/event-filter.ts), callable from SQL so
    // that LIMIT and the seq bounds apply to matching rows.
    // The body is read from the log by the row's position; a row whose segment is gone matches nothing.
    this.walDir = options.walDir ?? null;
    this.bodies = options.walDir === undefined ? null : new LogPositionReader(options.walDir, { disk: options.logDisk });
    this.db.function(
      'event_matches',
      { deterministic: true },
      (seq: unknown, segment: unknown, offset: unknown, length: unknown, filterJson: unknown) => {
        const seqNumber = Number(seq);
        const record = this.readRecord(seqNumber, { segment: Number(segment), offset: Number(offset), length: Number(length) });
        if (record === null || !this.bodyMatcher(String(filterJson))(record.eventJson)) return 0;
        this.matchedRecords?.set(seqNumber, record);
        return 1;
      },
    );
    this.current = this.readCounters();
    const loadKeys = options.loadKeys ?? !readOnly;
    try {
      // It writes the index's id on a new file: a full disk fails here, and must not leak the handle.
      this.keys = new KeyStore(this.db, { ...DEFAULT_KEY_OPTIONS, ...(loadKeys ? {} : { filterBytes: 0 }), ...options.keys }, !readOnly);
      if (loadKeys) this.openKeyFilter();
    } catch (err) {
      this.db.close();
      throw err;
    }

    this.applyTransaction = this.db.transaction((rows: IndexRow[], duplicates: number, conflicts: number): IndexCounters => {
      this.pendingTopicIds.clear();
      const counters = this.current;
      let inserted = 0;
      let lastSeq = counters.checkpointSeq;
      for (const row of rows) {
        if (row.seq > lastSeq) lastSeq = row.seq;
        // The first row of a key wins; later ones (in the index or this batch) are ignored.
        const key = row.key ?? dedupKeyOf(row.topic, row.eventId);
        const known = this.keys.lookup(key);
        if (known !== undefined && known.seq !== row.seq) continue;
        this.insertRow(row);
        inserted += 1;
        // A key that names this very seq: its row is being re-indexed (upgrade, repair); the key stays as it is.
        if (known !== undefined) continue;
        this.keys.put(key, row.seq, eventDigestOf(row.body));
      }
      this.noteTimeBlocks(rows);
      this.keys.commitCount();
      return this.commitCounters(lastSeq, inserted, duplicates, conflicts);
    });
    this.appendTransaction = this.db.transaction((rows: IndexRow[], duplicates: number, conflicts: number): IndexCounters => {
      this.pendingTopicIds.clear();
      let lastSeq = this.current.checkpointSeq;
      for (const row of rows) {
        if (row.seq > lastSeq) lastSeq = row.seq;
        this.insertRow(row);
        this.keys.put(row.key ?? dedupKeyOf(row.topic, row.eventId), row.seq, eventDigestOf(row.body));
      }
      this.noteTimeBlocks(rows);
      this.keys.commitCount();
      return this.commitCounters(lastSeq, rows.length, duplicates, conflicts);
    });
  }

  /** Inserts (or re-positions) one event row; a row must say where its record lies in the log. */
  private insertRow(row: IndexRow): void {
    const position = row.position;
    if (position === undefined) throw new Error(`index insert: row of seq ${row.seq} has no log position`);
    this.statements.insert.run(
      row.seq,
      this.topicIdOf(row.topic),
      row.eventId,
      row.source,
      row.tsMs,
      row.receivedMs ?? null,
      position.segment,
      position.offset,
      position.length,
    );
  }

  /**
   * The id of `topic`, added to the topics table (inside the running transaction) when it has
   * none; a topic keeps its id for good (ids are never reused: retention deletes no topic).
   */
  private topicIdOf(topic: string): number {
    const known = this.topicIds.get(topic) ?? this.pendingTopicIds.get(topic);
    if (known !== undefined) return known;
    this.statements.insertTopic.run(topic);
    const id = Number(this.statements.topicId.get(topic));
    this.pendingTopicIds.set(topic, id);
    return id;
  }

  /** After a commit: the topics its transaction added join topicIds (a rolled-back one's are cleared when the next starts). */
  private commitTopicIds(): void {
    for (const [topic, id] of this.pendingTopicIds) this.topicIds.set(topic, id);
    this.pendingTopicIds.clear();
  }

  /**
   * The record of `seq` read from the log at `position`, or null when its segment is gone
   * (retention deleted it after this read's snapshot was taken). Throws when the store has no
   * log, or when the bytes there are not that record (never served as an event).
   */
  private readRecord(seq: number, position: LogPosition): WalRecord | null {
    if (this.bodies === null) throw new Error('index read: this store was opened without its log directory (walDir)');
    return this.bodies.read(seq, position);
  }

  /**
   * Widens the time map's blocks to cover `rows`; runs inside the transaction that inserts
   * them, so the map never misses a committed row. A row ignored as a duplicate may widen
   * its block: the map is a superset, which costs scan work, never a missed row.
   */
  private noteTimeBlocks(rows: IndexRow[]): void {
    let block = -1;
    let minTs = 0;
    let maxTs = 0;
    let minReceived: number | null = null;
    let maxReceived: number | null = null;
    const flush = (): void => {
      if (block >= 0) this.statements.noteBlock.run(block, minTs, maxTs, minReceived, maxReceived);
    };
    for (const row of rows) {
      const rowBlock = Math.floor(row.seq / TIME_BLOCK_SEQS);
      if (rowBlock !== block) {
        flush();
        block = rowBlock;
        minTs = maxTs = row.tsMs;
        minReceived = maxReceived = row.receivedMs ?? null;
      } else {
        minTs = Math.min(minTs, row.tsMs);
        maxTs = Math.max(maxTs, row.tsMs);
        if (row.receivedMs !== undefined && row.receivedMs !== null) {
          minReceived = minReceived === null ? row.receivedMs : Math.min(minReceived, row.receivedMs);
          maxReceived = maxReceived === null ? row.receivedMs : Math.max(maxReceived, row.receivedMs);
        }
      }
    }
    flush();
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
   * ingest path's exact dedup): it stores their keys without looking them up, so it needs no
   * filter. Returns the counters committed with them.
   */
  appendNewRows(rows: IndexRow[], duplicates = 0, conflicts = 0): IndexCounters {
    try {
      this.current = this.appendTransaction(rows, duplicates, conflicts);
    } catch (err) {
      this.keys.rollbackCount();
      throw err;
    }
    this.commitTopicIds();
    // The ingest path: without this save a kill -9 made the next start read every key since the last clean stop from the log.
    if (!this.readOnly) this.keys.maybeSaveFilter(this.current.checkpointSeq);
    return this.current;
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

  /** What retention has deleted, as last committed by this connection (see readRetention). */
  get retained(): RetentionState {
    return this.retention;
  }

  /** Reads retention's first seq and counters from disk (another connection may have deleted). */
  readRetention(): RetentionState {
    const read = (key: string): number | null => {
      const value = this.statements.getMeta.get(key);
      return value === undefined ? null : Number(value);
    };
    return {
      firstSeq: read(RETENTION_KEYS.firstSeq) ?? 1,
      expiredTotal: read(RETENTION_KEYS.expiredTotal) ?? 0,
      lastDeletionMs: read(RETENTION_KEYS.lastDeletionMs),
    };
  }

  /**
   * Retention's index step: deletes every row with seq <= lastSeq, records the deletion in
   * `deletions`, sets meta first_seq to lastSeq + 1 and adds the rows to expired_events, all
   * in one transaction. With `durable` (the default) it commits with synchronous=FULL, so
   * the commit's WAL frames are fsynced before it returns; SQLite's WAL is append-only, so
   * that fsync also makes every earlier commit durable, including the checkpoint that
   * covers lastSeq. Only after it returns may a segment be unlinked. It never deletes
   * dedup keys (the key store keeps those; DEDUP_HORIZON_MS), nor rows after the checkpoint.
   * Returns the rows deleted.
   */
  dropThrough(lastSeq: number, deletedAtMs: number, options: { durable?: boolean } = {}): number {
    if (lastSeq > this.current.checkpointSeq) {
      throw new Error(`index dropThrough: seq ${lastSeq} is past the checkpoint ${this.current.checkpointSeq}`);
    }
    const durable = options.durable ?? true;
    // synchronous cannot change inside a transaction: set it around the one commit that needs it.
    if (durable) this.db.pragma('synchronous = FULL');
    try {
      const { state, deleted } = this.db.transaction(() => this.dropRows(lastSeq, deletedAtMs))();
      this.retention = state;
      this.keys.readDeletions();
      return deleted;
    } finally {
      if (durable) this.db.pragma('synchronous = NORMAL');
    }
  }

  /** The body of dropThrough's transaction. */
  private dropRows(lastSeq: number, deletedAtMs: number): { state: RetentionState; deleted: number } {
    const before = this.readRetention();
    const deleted = this.prepared('DELETE FROM events WHERE seq <= ?').run(lastSeq).changes;
    // Time-map blocks wholly at or below lastSeq cover no row any more (a block partly above stays).
    this.prepared('DELETE FROM time_blocks WHERE block < ?').run(Math.floor((lastSeq + 1) / TIME_BLOCK_SEQS));
    // The deletion is recorded for the key store's horizon; keys themselves stay (DEDUP_HORIZON_MS).
    this.keys.recordDeletion(lastSeq, deletedAtMs);
    const state: RetentionState = {
      firstSeq: Math.max(before.firstSeq, lastSeq + 1),
      expiredTotal: before.expiredTotal + deleted,
      lastDeletionMs: deletedAtMs,
    };
    this.statements.setMeta.run(RETENTION_KEYS.firstSeq, state.firstSeq);
    this.statements.setMeta.run(RETENTION_KEYS.expiredTotal, state.expiredTotal);
    this.statements.setMeta.run(RETENTION_KEYS.lastDeletionMs, deletedAtMs);
    return { state, deleted };
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
      // The filter may keep the rolled-back keys: false positives only, the table decides.
      this.keys.rollbackCount();
      throw err;
    }
    this.commitTopicIds();
    if (!this.readOnly) this.keys.maybeSaveFilter(this.current.checkpointSeq);
    return this.current.uniqueTotal - before;
  }

  /**
   * The stored original of a key (its seq and event digest), or undefined when the key is
   * unknown or past DEDUP_HORIZON_MS. `key` may pass dedupKeyOf(topic, eventId) if known.
   * A new key costs one filter probe and no SQLite read.
   */
  lookup(topic: string, eventId: string, key = dedupKeyOf(topic, eventId)): StoredKey | undefined {
    if (!this.filterOpened && !this.readOnly) this.openKeyFilter();
    return this.keys.lookup(key);
  }

  /**
   * Opens the key filter: the saved one when it matches this index, else one rebuilt from
   * the keys table. Returns the seq through which it holds every key; the caller (recovery)
   * adds the keys of the log after it with addKeysToFilter, then calls keyFilterComplete.
   * Until then lookups skip the filter and probe the table: exact, only slower.
   */
  openKeyFilter(): number {
    this.filterOpened = true;
    return this.keys.openFilter(this.current.checkpointSeq);
  }

  /** Adds keys stored after the saved filter's seq (read from the log by recovery). */
  addKeysToFilter(keys: Iterable<DedupKey>): void {
    for (const key of keys) this.keys.noteStored(key);
  }

  /** Lookups go through the filter from now on (see openKeyFilter). */
  keyFilterComplete(): void {
    this.keys.markFilterComplete();
  }

  /** True while the key filter is rebuilt in the background (lookups read the table meanwhile). */
  get keyFilterRebuilding(): boolean {
    return this.keys.filterRebuilding;
  }

  /** Rebuilds the filter from the keys table (when the log cannot give the keys after the saved seq). */
  rebuildKeyFilter(reason: string): void {
    this.keys.rebuildFilter(reason, this.current.checkpointSeq);
  }

  /** Dedup keys stored (expired ones not yet swept included). */
  dedupKeyCount(): number {
    return this.keys.count();
  }

  /**
   * One bounded step of the sweep of expired keys (DEDUP_HORIZON_MS); returns the key rows
   * deleted, or null when nothing is due. Short: call it from a timer.
   */
  sweepExpiredKeys(nowMs = Date.now()): number | null {
    return this.keys.sweepStep(nowMs);
  }

  /**
   * One bounded step of the key store's upkeep (the filter rebuild in the background, the
   * merge of generations, the sweep of expired keys); returns null when nothing is to do.
   * Short: call it from a timer.
   */
  keyMaintenanceStep(nowMs = Date.now(), rowsMax?: number): number | null {
    return this.keys.maintenanceStep(nowMs, rowsMax);
  }

  /** Level 0 of the key store in memory (keys of its active and sealed levels, bytes of their indexes), for tests. */
  keyLevelZero(): { keys: number; sealedKeys: number; bytes: number } {
    return this.keys.levelZeroStats();
  }

  /** The key store's generations (level, state, keys), for tests and the benchmark. */
  keyGenerations(): Array<{ gen: number; level: number; state: string; keys: number }> {
    return this.keys.generations();
  }

  /** Every topic seen, sorted. */
  topics(): string[] {
    return [...this.topicIds.keys()].sort();
  }

  /** Counts rows directly (slow on big indexes; for verify and tests). */
  countRows(): number {
    return Number(this.statements.count.get());
  }

  /**
   * Runs `read` inside one read transaction, so that everything it reads (counters, rows)
   * comes from the same snapshot even while a server commits (WAL mode); `logagg verify`
   * uses it. It commits afterwards, or rolls back when `read` throws.
   */
  withSnapshot<T>(read: () => T): T {
    return this.db.transaction(read)();
  }

  /**
   * Every stored event's seq and body in seq order, the bodies read from the log (tools and
   * tests; a row whose segment is gone is left out).
   */
  *eventsInSeqOrder(): Generator<{ seq: number; body: string }> {
    for (const { seq, position } of this.rowsInSeqOrder()) {
      const record = this.readRecord(seq, position);
      if (record !== null) yield { seq, body: record.eventJson };
    }
  }

  /**
   * The event JSON of `seq` read from the log at `position` (a row of rowsInSeqOrder), or null
   * when its segment is gone; throws PositionMismatchError when the log holds no such record there.
   */
  readEventAt(seq: number, position: LogPosition): string | null {
    return this.readRecord(seq, position)?.eventJson ?? null;
  }

  /** Every row's seq and log position in seq order, read one at a time (for comparing with the log). */
  rowsInSeqOrder(): IterableIterator<{ seq: number; position: LogPosition }> {
    const rows = this.db
      .prepare('SELECT seq, log_segment AS segment, log_offset AS offset, log_length AS length FROM events ORDER BY seq')
      .iterate() as IterableIterator<{ seq: number } & LogPosition>;
    return (function* positioned(): Generator<{ seq: number; position: LogPosition }> {
      for (const { seq, segment, offset, length } of rows) yield { seq, position: { segment, offset, length } };
    })();
  }

  /** Log segment files this store holds open to read bodies (bounded; tests check it). */
  get openLogHandles(): number {
    return this.bodies?.openHandles ?? 0;
  }

  /** Events matching `query` in its order, without a scan bound (tools and tests; see readPage). */
  queryEvents(query: EventQuery): PageRow[] {
    return this.readPage({ ...query, scanRowsMax: Number.POSITIVE_INFINITY }).rows;
  }

  /**
   * One page of events matching `query`, oldest or newest first. Topics alone (and the
   * cursor) are served by indexes, so such a page costs its own rows. Any other filter is
   * checked row by row over at most scanRowsMax rows in seq order from the cursor; when
   * that bound ends the scan, the page is short and nextCursor says where to go on.
   * Reads the rows and the store's bounds in one transaction, so they agree.
   */
  readPage(query: EventQuery): EventPage {
    // Segments retention unlinked since the last page: close their handles (their space goes back).
    this.bodies?.releaseUnlinked();
    // Read-ahead over the log for the page's rows, which lie side by side there (position-reader.ts).
    const read = this.db.transaction((): EventPage => {
      const desc = query.order === 'desc';
      const scanRowsMax = query.scanRowsMax ?? FIXED_LIMITS.queryScanRowsMax;
      const bounded =
        Number.isFinite(scanRowsMax) &&
        (query.source !== undefined || query.sinceMs !== undefined || query.untilMs !== undefined || needsBody(query));
      let fromSeq = Number.NEGATIVE_INFINITY;
      let toSeq = Number.POSITIVE_INFINITY;
      if (desc && query.afterSeq !== undefined) toSeq = query.afterSeq - 1;
      if (!desc && query.afterSeq !== undefined) fromSeq = query.afterSeq + 1;
      if (query.sinceMs !== undefined || query.untilMs !== undefined) return this.readTimePage(query, fromSeq, toSeq, desc, scanRowsMax);
      // The scan window: scanRowsMax seqs from the cursor, unless the store ends first.
      let edge: number | null = null;
      const bounds = bounded ? this.seqBounds() : null;
      if (bounds !== null) {
        if (desc) {
          const top = Math.min(toSeq, bounds.last);
          if (top - scanRowsMax + 1 > bounds.first) fromSeq = edge = top - scanRowsMax + 1;
        } else {
          const bottom = Math.max(fromSeq, bounds.first);
          if (bottom + scanRowsMax - 1 < bounds.last) toSeq = edge = bottom + scanRowsMax - 1;
        }
      }
      const { rows, cut, lastSeq } = this.selectRows(query, fromSeq, toSeq, desc);
      // A full page, or one cut short, goes on after the last row it read; else at the scan's edge.
      const nextCursor = rows.length === query.limit || cut ? lastSeq : edge;
      return { rows, nextCursor };
    });
    return this.bodies === null ? read() : this.bodies.withReadAhead(read);
  }

  /**
   * A page of a since/until query: only the time map's blocks whose time range overlaps the
   * window are read, in the page's order, and scanRowsMax bounds the seqs of the blocks read
   * (blocks skipped cost nothing). When the bound ends the scan, nextCursor is its edge.
   */
  private readTimePage(query: EventQuery, fromSeq: number, toSeq: number, desc: boolean, scanRowsMax: number): EventPage {
    const clauses: string[] = [];
    const params: number[] = [];
    if (query.sinceMs !== undefined) {
      clauses.push('max_ts_ms >= ?');
      params.push(query.sinceMs);
    }
    if (query.untilMs !== undefined) {
      clauses.push('min_ts_ms < ?');
      params.push(query.untilMs);
    }
    if (Number.isFinite(fromSeq)) {
      clauses.push('block >= ?');
      params.push(Math.floor(fromSeq / TIME_BLOCK_SEQS));
    }
    if (Number.isFinite(toSeq)) {
      clauses.push('block <= ?');
      params.push(Math.floor(toSeq / TIME_BLOCK_SEQS));
    }
    const blocks = this.prepared(`SELECT block FROM time_blocks ${whereClause(clauses)} ORDER BY block ${desc ? 'DESC' : 'ASC'}`)
      .pluck()
      .iterate(...params) as IterableIterator<number>;
    const rows: PageRow[] = [];
    const bytesMax = query.bytesMax ?? Number.POSITIVE_INFINITY;
    let bytes = 0;
    let budget = scanRowsMax;
    // Set when the budget ran out exactly at a block's end: the cursor goes there if another block follows.
    let spentAt: number | null = null;
    for (const block of blocks) {
      let low = Math.max(block * TIME_BLOCK_SEQS, fromSeq);
      let high = Math.min(block * TIME_BLOCK_SEQS + TIME_BLOCK_SEQS - 1, toSeq);
      if (low > high) continue;
      if (spentAt !== null) return { rows, nextCursor: spentAt };
      let edge: number | null = null;
      if (high - low + 1 > budget) {
        if (desc) low = edge = high - budget + 1;
        else high = edge = low + budget - 1;
      }
      budget -= high - low + 1;
      const found = this.selectRows({ ...query, limit: query.limit - rows.length, bytesMax: bytesMax - bytes }, low, high, desc);
      for (const row of found.rows) {
        rows.push(row);
        bytes += row.body.length;
      }
      // A full page, or one cut short, goes on after the last row it read; else at the scan's edge.
      if (rows.length === query.limit || found.cut) return { rows, nextCursor: found.lastSeq };
      if (edge !== null) return { rows, nextCursor: edge };
      if (budget === 0) spentAt = desc ? low : high;
    }
    return { rows, nextCursor: null };
  }

  /**
   * Rows of `query` with seq in [fromSeq, toSeq], in order, at most query.limit and about
   * query.bytesMax, their bodies read from the log. A row whose segment retention unlinked
   * meanwhile is skipped (its event is deleted); then, or when the bytes bound ends it, the
   * result is `cut` and the next page starts after `lastSeq`, the last row it read.
   */
  private selectRows(
    query: EventQuery,
    fromSeq: number,
    toSeq: number,
    desc: boolean,
  ): { rows: PageRow[]; cut: boolean; lastSeq: number | null } {
    const direction = desc ? 'DESC' : 'ASC';
    const { clauses, params } = this.filterClauses(query, fromSeq, toSeq);
    const topics = query.topics ?? [];
    let sql: string;
    let all: Array<string | number> = [];
    if (topics.length <= 1) {
      if (topics.length === 1) {
        clauses.unshift(`topic_id = ${TOPIC_ID}`);
        params.unshift(topics[0]!);
      }
      sql = `SELECT ${PAGE_COLUMNS} FROM events ${whereClause(clauses)} ORDER BY seq ${direction} LIMIT ?`;
      all = [...params, query.limit];
    } else {
      // One index walk per topic, each bounded by the limit, merged: the first `limit` rows of
      // the union are the first `limit` rows overall (each is among the first of its topic).
      const one = `SELECT * FROM (SELECT ${PAGE_COLUMNS} FROM events WHERE ${[`topic_id = ${TOPIC_ID}`, ...clauses].join(' AND ')} ORDER BY seq ${direction} LIMIT ?)`;
      sql = `${topics.map(() => one).join(' UNION ALL ')} ORDER BY seq ${direction} LIMIT ?`;
      for (const topic of topics) all.push(topic, ...params, query.limit);
      all.push(query.limit);
    }
    const bytesMax = query.bytesMax ?? Number.POSITIVE_INFINITY;
    const rows: PageRow[] = [];
    let bytes = 0;
    let lastSeq: number | null = null;
    let skipped = false;
    const matched = needsBody(query) ? new Map<number, WalRecord>() : null;
    this.matchedRecords = matched;
    try {
      for (const row of this.prepared(sql).iterate(...all) as IterableIterator<PositionedPageRow>) {
        lastSeq = row.seq;
        const record = matched?.get(row.seq) ?? this.readRecord(row.seq, { segment: row.segment, offset: row.offset, length: row.length });
        if (record === null) {
          skipped = true;
          continue;
        }
        rows.push({ seq: row.seq, body: record.eventJson, receivedMs: row.receivedMs });
        bytes += record.eventJson.length;
        // Stopping the iteration ends the statement; the page goes on from the last row kept.
        if (bytes > bytesMax) return { rows, cut: true, lastSeq };
      }
    } finally {
      this.matchedRecords = null;
    }
    return { rows, cut: skipped, lastSeq };
  }

  /** SQL conditions (and their parameters) for a filter's source, time and body, and a seq range. */
  private filterClauses(filter: EventFilter, fromSeq: number, toSeq: number): { clauses: string[]; params: Array<string | number> } {
    const clauses: string[] = [];
    const params: Array<string | number> = [];
    if (Number.isFinite(fromSeq)) {
      clauses.push('seq >= ?');
      params.push(fromSeq);
    }
    if (Number.isFinite(toSeq)) {
      clauses.push('seq <= ?');
      params.push(toSeq);
    }
    if (filter.source !== undefined) {
      clauses.push('source = ?');
      params.push(filter.source);
    }
    if (filter.sinceMs !== undefined) {
      clauses.push('ts_ms >= ?');
      params.push(filter.sinceMs);
    }
    if (filter.untilMs !== undefined) {
      clauses.push('ts_ms < ?');
      params.push(filter.untilMs);
    }
    if (needsBody(filter)) {
      clauses.push('event_matches(seq, log_segment, log_offset, log_length, ?)');
      params.push(JSON.stringify({ words: filter.words ?? [], fields: filter.fields ?? [] }));
    }
    return { clauses, params };
  }

  /** Topic condition for aggregate queries (no order needed, so IN is enough). */
  private topicClause(filter: EventFilter): { clauses: string[]; params: string[] } {
    const topics = filter.topics ?? [];
    if (topics.length === 0) return { clauses: [], params: [] };
    return { clauses: [`topic_id IN (SELECT id FROM topics WHERE topic IN (${topics.map(() => '?').join(', ')}))`], params: [...topics] };
  }

  /**
   * Whether the time map has a block within seqs [fromSeq, toSeq] whose timestamps overlap
   * [sinceMs, untilMs): when false, no row there can match, and the range need not be read.
   */
  timeMapOverlaps(sinceMs: number, untilMs: number, fromSeq: number, toSeq: number): boolean {
    const sql = 'SELECT 1 FROM time_blocks WHERE block >= ? AND block <= ? AND max_ts_ms >= ? AND min_ts_ms < ? LIMIT 1';
    return (
      this.prepared(sql).get(Math.floor(fromSeq / TIME_BLOCK_SEQS), Math.floor(toSeq / TIME_BLOCK_SEQS), sinceMs, untilMs) !== undefined
    );
  }

  /** The first and last stored seq, or null for an empty store. */
  seqBounds(): SeqBounds | null {
    const row = this.prepared(SEQ_BOUNDS_SQL).get() as {
      first: number | null;
      last: number | null;
    };
    return row.first === null || row.last === null ? null : { first: row.first, last: row.last };
  }

  /** The earliest and latest timestamp (epoch ms) of rows matching `filter` with seq in [fromSeq, toSeq]. */
  timeBounds(filter: EventFilter, fromSeq: number, toSeq: number): { minMs: number; maxMs: number } | null {
    const topic = this.topicClause(filter);
    const rest = this.filterClauses(filter, fromSeq, toSeq);
    const sql = `SELECT min(ts_ms) AS minMs, max(ts_ms) AS maxMs FROM events ${whereClause([...topic.clauses, ...rest.clauses])}`;
    const row = this.prepared(sql).get(...topic.params, ...rest.params) as { minMs: number | null; maxMs: number | null };
    return row.minMs === null || row.maxMs === null ? null : { minMs: row.minMs, maxMs: row.maxMs };
  }

  /**
   * Counts rows matching `filter` (whose sinceMs/untilMs must be set) with seq in [fromSeq,
   * toSeq], per bucket of `intervalMs` from filter.sinceMs: [bucket index, count] pairs.
   */
  countByBucket(filter: EventFilter & { sinceMs: number }, intervalMs: number, fromSeq: number, toSeq: number): Array<[number, number]> {
    const topic = this.topicClause(filter);
    const rest = this.filterClauses(filter, fromSeq, toSeq);
    const sql =
      `SELECT (ts_ms - CAST(? AS INTEGER)) / CAST(? AS INTEGER) AS bucket, count(*) AS n FROM events ` +
      `${whereClause([...topic.clauses, ...rest.clauses])} GROUP BY bucket`;
    return this.prepared(sql)
      .raw()
      .all(filter.sinceMs, intervalMs, ...topic.params, ...rest.params) as Array<[number, number]>;
  }

  /** A prepared statement per SQL text; the texts are built from a bounded set of shapes. */
  private prepared(sql: string): Database.Statement {
    let statement = this.queryCache.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.queryCache.set(sql, statement);
    }
    return statement;
  }

  /** The body matcher of a filter given as JSON (a bounded cache: a page asks the same few). */
  private bodyMatcher(filterJson: string): (body: string) => boolean {
    let matcher = this.matcherCache.get(filterJson);
    if (matcher === undefined) {
      if (this.matcherCache.size >= 64) this.matcherCache.clear();
      matcher = compileBodyMatcher(JSON.parse(filterJson) as BodyFilter);
      this.matcherCache.set(filterJson, matcher);
    }
    return matcher;
  }

  /**
   * Copies from another index file (the old index `logagg rebuild` replaces) the dedup keys
   * with seq < belowSeq, those of events no longer in the log, plus its deletions and its
   * first_seq, in one transaction. Returns the keys copied; throws when the file cannot be
   * read as an index of this schema (the caller says those keys are lost).
   */
  copyKeysFrom(otherPath: string, belowSeq: number): number {
    this.db.prepare('ATTACH DATABASE ? AS other').run(otherPath);
    try {
      return this.db.transaction((): number => {
        const copied = this.keys.copyGenerationsFrom('other', belowSeq);
        this.keys.countInserted(copied);
        this.db
          .prepare('INSERT OR IGNORE INTO deletions (last_seq, deleted_at_ms) SELECT last_seq, deleted_at_ms FROM other.deletions')
          .run();
        const firstSeq = this.db.prepare("SELECT value FROM other.meta WHERE key = 'first_seq'").pluck().get() as number | undefined;
        if (firstSeq !== undefined) this.statements.setMeta.run('first_seq', firstSeq);
        return copied;
      })();
    } finally {
      this.db.prepare('DETACH DATABASE other').run();
      this.keys.readDeletions();
    }
  }

  /**
   * After `logagg repair` rewrote the log from `seq` on (byte positions moved): deletes the
   * event rows from `seq` on and moves the checkpoint before it, in one transaction, so the
   * next start re-indexes them from the repaired log with their new positions. Dedup keys
   * stay; the rows deleted leave unique_total and come back into it as they are re-indexed
   * (a seq repair made a tombstone does not). Returns the rows deleted.
   */
  invalidateFrom(seq: number): number {
    return this.db.transaction((): number => {
      const deleted = this.db.prepare('DELETE FROM events WHERE seq >= ?').run(seq).changes;
      const checkpointSeq = Math.min(this.current.checkpointSeq, seq - 1);
      const uniqueTotal = this.current.uniqueTotal - deleted;
      this.statements.setMeta.run(COUNTER_KEYS.checkpointSeq, checkpointSeq);
      this.statements.setMeta.run(COUNTER_KEYS.uniqueTotal, uniqueTotal);
      this.current = { ...this.current, checkpointSeq, uniqueTotal };
      return deleted;
    })();
  }

  /** Saves the key filter (a clean stop starts without rebuilding it) and closes the file. */
  close(): void {
    this.bodies?.close();
    if (!this.db.open) return;
    if (!this.readOnly) this.keys.close(this.current.checkpointSeq);
    this.db.close();
  }
}

/** Key options of a store that names none: the defaults of DEDUP_FILTER_BYTES and DEDUP_HORIZON_MS, no saved filter. */
export const DEFAULT_KEY_OPTIONS: KeyStoreOptions = { filterBytes: 32 * 1024 * 1024, filterPath: null, horizonMs: 0 };

/**
 * The first and last seq: two subqueries, so each is one step down the rowid B-tree. A single
 * `SELECT min(seq), max(seq)` is not: SQLite's min/max shortcut takes one aggregate only, and
 * with two it scans the smallest index whole (100 ms at 900k rows, paid by every page with a
 * source or body filter and every histogram). Exported for the test of its plan.
 */
export const SEQ_BOUNDS_SQL = 'SELECT (SELECT min(seq) FROM events) AS first, (SELECT max(seq) FROM events) AS last';

/** The columns a page reads: the row's seq, acceptance time and log position (its body comes from the log). */
const PAGE_COLUMNS = 'seq, received_ms AS receivedMs, log_segment AS segment, log_offset AS offset, log_length AS length';

/**
 * A topic's id in SQL, from its text as the parameter (NULL for a topic never stored, which
 * matches no row). Uncorrelated: SQLite evaluates it once and walks events_by_topic with it.
 */
const TOPIC_ID = '(SELECT id FROM topics WHERE topic = ?)';

/** A page row as SQL gives it, before its body is read from the log. */
type PositionedPageRow = { seq: number; receivedMs: number | null } & LogPosition;

/**
 * UPGRADE_FROM_4 with events_by_topic built again and user_version 5, in one transaction (a
 * crash leaves schema 4 whole, or schema 5); then the SQLite WAL, which holds every page it
 * wrote, is checkpointed and truncated, so the file does not keep that size.
 */
function upgradeFrom4(db: Database.Database): { rows: number; elapsedMs: number } {
  const started = performance.now();
  const rows = db.transaction((): number => {
    db.exec(UPGRADE_FROM_4);
    db.exec('CREATE INDEX events_by_topic ON events (topic_id, seq)');
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return Number(db.prepare('SELECT count(*) FROM events').pluck().get());
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  return { rows, elapsedMs: performance.now() - started };
}

/** `WHERE a AND b`, or nothing for no conditions. */
function whereClause(clauses: string[]): string {
  return clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
}
