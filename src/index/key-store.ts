import type Database from 'better-sqlite3';
import fs from 'node:fs';
import { KeyFilter } from './key-filter';
import type { DedupKey } from './key-hash';

/** The original of a known key: its seq and the digest of its event JSON (eventDigestOf). */
export interface StoredKey {
  seq: number;
  digest: Buffer;
}

/** Options of a KeyStore; see DEDUP_FILTER_BYTES and DEDUP_HORIZON_MS. */
export interface KeyStoreOptions {
  /** Size of the in-memory filter; 0: no filter (a store that only appends, the index worker). */
  filterBytes: number;
  /** Where the filter is saved between runs (`<index>.keys-filter`); null: never saved. */
  filterPath: string | null;
  /** How long a key stays known after retention deleted its event; 0: forever. */
  horizonMs: number;
  /** Told when the filter had to be rebuilt from the table, and why (once the rebuild is done). */
  onFilterRebuilt?: (info: { reason: string; keys: number; elapsedMs: number }) => void;
  /** Rebuild a missing or corrupt filter in steps of maintenanceStep instead of at open (the server). */
  rebuildInBackground?: boolean;
  /** Keys of a level-0 generation (default GEN_KEYS; tests make it small). */
  genKeys?: number;
  /** Generations of a level merged into one (default MERGE_FANOUT). */
  mergeFanout?: number;
  /** Keys stored between two saves of the filter in the background (default FILTER_SAVE_EVERY_KEYS; tests make it small). */
  saveEveryKeys?: number;
}

/**
 * The dedup keys in generations (key layout 2), and the deletions table (the retention
 * contract). `key_rows` is keyed by (generation, 128-bit key): new keys go to the newest
 * level-0 generation, which holds at most GEN_KEYS keys, so an insert touches a page of a
 * small B-tree whatever the number of keys (random keys in one big B-tree touched a random
 * page of it each). A lookup probes each generation (one B-tree seek each, in one
 * statement). MERGE_FANOUT generations of one level are merged in key order into one of
 * the next level (sequential writes, in bounded steps), which keeps the generations few.
 * `digest` lets a re-send be told duplicate or conflict once the original's body is gone.
 * Keys are not deleted with their events: DEDUP_HORIZON_MS decides, and the sweep removes
 * them (a generation whose every seq expired goes whole).
 *
 * A key has at most one row among the generations lookups read, except while a merge
 * copies it (the copy is identical): a put that replaces an expired key deletes its old
 * rows everywhere first.
 */
export const KEY_STORE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS key_rows (
    gen INTEGER NOT NULL, key BLOB NOT NULL, seq INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY (gen, key)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS key_gens (
    gen INTEGER PRIMARY KEY, level INTEGER NOT NULL, state TEXT NOT NULL, merged_into INTEGER,
    min_seq INTEGER NOT NULL, max_seq INTEGER NOT NULL, keys INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS deletions (last_seq INTEGER PRIMARY KEY, deleted_at_ms INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS key_log (seq INTEGER PRIMARY KEY, key BLOB NOT NULL, digest BLOB NOT NULL);
`;

/**
 * The key layout, in the meta row `keys_layout` (apart from the index's SCHEMA_VERSION,
 * which resets the events table): 1 (or no row) = one `keys (key PRIMARY KEY, seq, digest)`
 * table; 2 = generations (KEY_STORE_SCHEMA). A layout-1 table is migrated in place at open
 * (migrateKeyLayout), never dropped: the keys of events retention deleted are not in the log.
 */
export const KEY_LAYOUT_VERSION = 3;
const META_KEY_LAYOUT = 'keys_layout';

/** Keys of a level-0 generation, at most: the B-tree that inserts touch (measured in docs/performance.md). */
export const GEN_KEYS = 262_144;
/** Generations of one level merged into one of the next level. */
export const MERGE_FANOUT = 8;
/**
 * Key rows one maintenance step copies, deletes or reads, at most (one short transaction).
 * A step holds the publish thread: 1500 rows took 5-7 ms here, 5000 took 9 ms, and every
 * GET /events arriving meanwhile waited (docs/performance.md, "What held since/until, desc
 * and RSS back at 10M").
 */
export const MAINTENANCE_ROWS_PER_STEP = 1500;
/** One upkeep step in this many deletes copied key_log rows before anything else (see maintenanceStep). */
const GARBAGE_TURN_EVERY = 4;
/** Key rows one step of a filter rebuild in the background reads (about 5 ms here; 50 000 took 68 ms). */
export const FILTER_REBUILD_ROWS_PER_STEP = 4000;
/**
 * Keys of level 0 at most, whatever DEDUP_GENERATION_KEYS says: the in-memory index of its
 * rows takes about 16 bytes a key (LevelZeroIndex), and two of them may exist at once.
 */
export const LEVEL0_KEYS_MAX = 262_144;
/** Live generations a known-key probe names one by one, at most (SQLite allows 500 compound arms). */
const PROBE_ARMS_MAX = 64;
/** Meta key: every key_log row with a lower seq is in a live generation (or swept), and is deleted in steps. */
const META_L0_FROM = 'key_l0_from';

/**
 * Migrates a layout-1 `keys` table to generations in place, in one transaction (a crash
 * leaves the old table whole, and the next open migrates again): its rows, read in key
 * order, are appended to one generation, so the copy writes each page once. Run by the
 * index's writable open, before a KeyStore is made. Returns the keys migrated (0: nothing to do).
 */
export function migrateKeyLayout(db: Database.Database): number {
  const layout = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(META_KEY_LAYOUT) as number | undefined;
  const hasOld = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keys'").get() !== undefined;
  let migrated = 0;
  db.transaction(() => {
    // Layout 2 (generations, the newest filled by inserts) needs nothing: its generations stay
    // as they are, and new keys go to key_log (created by KEY_STORE_SCHEMA).
    if (hasOld && (layout === undefined || layout < 2)) {
      const stats = db.prepare('SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM keys').get() as {
        n: number;
        lo: number | null;
        hi: number | null;
      };
      if (stats.n > 0) {
        const gen = nextGen(db);
        db.prepare('INSERT INTO key_gens (gen, level, state, merged_into, min_seq, max_seq, keys) VALUES (?, ?, ?, NULL, ?, ?, ?)').run(
          gen,
          levelOfSize(stats.n),
          'live',
          stats.lo,
          stats.hi,
          stats.n,
        );
        db.prepare('INSERT INTO key_rows (gen, key, seq, digest) SELECT ?, key, seq, digest FROM keys ORDER BY key').run(gen);
      }
      db.exec('DROP TABLE keys');
      migrated = stats.n;
    }
    if (layout !== KEY_LAYOUT_VERSION) {
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
        META_KEY_LAYOUT,
        KEY_LAYOUT_VERSION,
      );
    }
  })();
  return migrated;
}

/** The level a generation of `keys` keys belongs to: 0 up to GEN_KEYS, one more per MERGE_FANOUT times that. */
function levelOfSize(keys: number): number {
  let level = 0;
  for (let size = GEN_KEYS; keys > size; size *= MERGE_FANOUT) level += 1;
  return level;
}

/** A generation number above every one in use (numbers only grow: a new generation never reuses a dropped one's). */
function nextGen(db: Database.Database): number {
  const highest = db.prepare("SELECT value FROM meta WHERE key = 'key_gen_next'").pluck().get() as number | undefined;
  const used = db.prepare('SELECT coalesce(max(gen), 0) FROM key_gens').pluck().get() as number;
  const gen = Math.max(highest ?? 1, used + 1);
  db.prepare("INSERT INTO meta (key, value) VALUES ('key_gen_next', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(
    gen + 1,
  );
  return gen;
}

/** Meta keys (in IndexStore's meta table) that count key rows: inserted by the applier, removed by the sweep. */
const META_KEYS_INSERTED = 'keys_inserted';
const META_KEYS_SWEPT = 'keys_swept';
/** A random number naming one index file: a saved filter is used only with the index it was saved from. */
const META_INDEX_ID = 'index_id';
/** The generation size the server set (DEDUP_GENERATION_KEYS), for stores opened without one. */
const META_GEN_KEYS = 'key_gen_keys';

/**
 * Keys added to the filter between two background saves, at most: the start after kill -9
 * reads the keys after the last save from the log (about 170k a second here), so this bounds it to about 3 s.
 */
export const FILTER_SAVE_EVERY_KEYS = 500_000;
/** Time between two background saves of the filter while keys are added, at most. */
export const FILTER_SAVE_EVERY_MS = 60_000;
/** Key rows one sweep step reads, at most: one short transaction, never a long stall of the publish thread. */
export const SWEEP_ROWS_PER_STEP = 2000;

/**
 * Generations lookups read: the live ones. A merge's sources stay live until the transaction
 * that makes its target live retires them, and a sealed level 0 is read from memory until
 * the transaction that makes its generation live, so no key is missed.
 */
const READ_GENS = "SELECT gen FROM key_gens WHERE state = 'live'";

/** A row of key_gens. */
interface GenRow {
  gen: number;
  level: number;
  state: 'live' | 'building' | 'retired' | 'sealing';
  mergedInto: number | null;
  minSeq: number;
  maxSeq: number;
  keys: number;
}

/**
 * The in-memory index of level-0 rows (key_log): an open-addressing table (linear probing,
 * home slot from key bytes 4-7) from a key to its seq. A slot holds the key's first 32 bits
 * as SQLite orders blobs (big-endian; 0 is stored as 1, 0 marks an empty slot), which is
 * also what a seal sorts by, and the seq: 12 bytes; the table has 1.3 slots a key (about 16
 * bytes a key). It holds no full key: a matching slot is confirmed by reading the row by seq
 * (one rowid seek), so a stale slot (its row swept or replaced) only costs that read.
 */
class LevelZeroIndex {
  private readonly tags: Uint32Array;
  private readonly seqs: Float64Array;
  private readonly slots: number;
  /** Slots used (rows added), and the highest seq added. */
  count = 0;
  maxSeq = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.slots = Math.max(16, Math.ceil(capacity * 1.3) + 1);
    this.tags = new Uint32Array(this.slots);
    this.seqs = new Float64Array(this.slots);
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** Bytes of its arrays. */
  get bytes(): number {
    return this.tags.byteLength + this.seqs.byteLength;
  }

  private home(key: DedupKey): number {
    return Math.floor((key.readUInt32LE(4) / 0x1_0000_0000) * this.slots);
  }

  private static tagOf(key: DedupKey): number {
    return key.readUInt32BE(0) || 1;
  }

  /** Calls `visit(tag, seq)` for every used slot. */
  forEach(visit: (tag: number, seq: number) => void): void {
    for (let slot = 0; slot < this.slots; slot += 1) if (this.tags[slot] !== 0) visit(this.tags[slot]!, this.seqs[slot]!);
  }

  add(key: DedupKey, seq: number): void {
    const tag = LevelZeroIndex.tagOf(key);
    let slot = this.home(key);
    while (this.tags[slot] !== 0) slot = slot + 1 === this.slots ? 0 : slot + 1;
    this.tags[slot] = tag;
    this.seqs[slot] = seq;
    this.count += 1;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** The slot of `key`: the first whose tag matches and `confirm(seq)` holds; -1 when none. */
  find(key: DedupKey, confirm: (seq: number) => boolean): number {
    const tag = LevelZeroIndex.tagOf(key);
    for (let slot = this.home(key); this.tags[slot] !== 0; slot = slot + 1 === this.slots ? 0 : slot + 1) {
      if (this.tags[slot] === tag && confirm(this.seqs[slot]!)) return slot;
    }
    return -1;
  }

  seqAt(slot: number): number {
    return this.seqs[slot]!;
  }

  setSeq(slot: number, seq: number): void {
    this.seqs[slot] = seq;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }
}

/**
 * Level 0 as this process knows it: `from` (meta key_l0_from; key_log rows below it are
 * copies, deleted in steps), the sealed level being copied into generation `sealGen` (rows
 * from..sealThrough), and the active level new keys go to (rows after sealThrough).
 */
interface LevelZero {
  from: number;
  active: LevelZeroIndex;
  sealed: LevelZeroIndex | null;
  sealGen: number;
  sealThrough: number;
}

/**
 * The copy of a sealed level under way, written in chunks in key order. Its slots are
 * partitioned by key prefix into buckets at the start (two linear passes); a bucket is
 * sorted only when the copy reaches it, so no step sorts the whole level (a native sort of
 * 262 144 numbers held the publish thread for about 25 ms, the whole start of a seal 45 ms).
 */
interface SealWork {
  gen: number;
  count: number;
  /** Per slot: its key prefix times `place` plus its index in `seqs`, grouped by bucket. */
  values: Float64Array;
  seqs: Float64Array;
  place: number;
  /** Where each bucket ends in `values`. */
  bucketEnds: Uint32Array;
  nextBucket: number;
  /** The seqs in key order, resolved up to `sortedThrough`. */
  order: Float64Array;
  sortedThrough: number;
  written: number;
  /** Rows this copy inserted, and their seq range; `exact` when the generation was empty at its start. */
  inserted: number;
  minSeq: number;
  maxSeq: number;
  exact: boolean;
}

/**
 * Dedup keys on disk behind a fixed-size in-memory filter, over the IndexStore's own
 * connection: put() runs inside the caller's transaction, so keys commit with their rows
 * and the checkpoint. A lookup costs one filter probe for a new key and one seek per
 * generation otherwise; it is exact up to 128-bit hash collisions (see key-hash.ts).
 */
export class KeyStore {
  private readonly db: Database.Database;
  private readonly options: KeyStoreOptions;
  private readonly statements;
  private filter: KeyFilter | null = null;
  /**
   * The filter holds every stored key only once this is true; before, lookups skip it and
   * probe the table (exact, slower). A loaded filter is complete once the caller added the
   * keys after its coveredSeq (markFilterComplete).
   */
  private filterComplete = false;
  private filterCoveredSeq = 0;
  private keysSinceSave = 0;
  private lastSaveMs = Date.now();
  private saving = false;
  private closed = false;
  private readonly indexId: number;
  /** Deletions not yet past the horizon, oldest first; every seq <= expiredThrough is expired. */
  private deletions: Array<{ lastSeq: number; deletedAtMs: number }> = [];
  private expiredThrough = 0;
  private deletionsReadThrough = 0;
  /** The sweep's generation and place in key order, and the expiredThrough its pass removes (0: no pass running). */
  private sweepGen = 0;
  private sweepAfter: Buffer | null = null;
  private sweepTarget = 0;
  private sweptThrough = 0;
  private insertedDelta = 0;
  /** Level 0 in memory (loaded at first use; null again after a rollback, which reloads it). */
  private level0: LevelZero | null = null;
  /** The copy of the sealed level 0 under way (null: not started since the last load). */
  private sealWork: SealWork | null = null;
  /** key_log holds rows below level0.from (copies of a finished seal) to delete. */
  private level0Garbage = true;
  /** The upkeep step alternates between a seal's copy and the other work (see maintenanceStep). */
  private sealTurn = false;
  /** Counts steps: every GARBAGE_TURN_EVERY-th deletes copied key_log rows first. */
  private upkeepTurn = 0;
  /** The live generations, newest first, as this connection last wrote them, and their probe (null: read again). */
  private liveGens: { gens: number[]; probe: Database.Statement | null } | null = null;
  private readonly writable: boolean;
  /** A filter rebuild under way in the background: the new filter, its place, and what it is told when done. */
  private rebuilding: {
    filter: KeyFilter;
    gens: number[];
    after: Buffer;
    keys: number;
    reason: string;
    coveredSeq: number;
    started: number;
    /** The seq the read of key_log (first, before the generations) is past; null once it is done. */
    logAfter: number | null;
  } | null = null;
  private readonly mergeStatements = new Map<string, Database.Statement>();
  /** DEDUP_GENERATION_KEYS as the last writable open with one set it (meta `key_gen_keys`). */
  private readonly fileGenKeys: number;

  constructor(db: Database.Database, options: KeyStoreOptions, writable: boolean) {
    this.db = db;
    this.options = options;
    this.writable = writable;
    this.statements = {
      // The newest row of a key wins: an expired row a re-send replaced may remain until the sweep.
      probe: db.prepare(`SELECT seq, digest FROM key_rows WHERE gen IN (${READ_GENS}) AND key = ? ORDER BY seq DESC LIMIT 1`),
      liveGens: db.prepare(`${READ_GENS} ORDER BY gen DESC`).pluck(),
      deleteOlder: db.prepare('DELETE FROM key_rows WHERE gen IN (SELECT gen FROM key_gens) AND key = ? AND seq < ?'),
      // Level 0 (key_log): appended in seq order, read by seq.
      logInsert: db.prepare('INSERT OR REPLACE INTO key_log (seq, key, digest) VALUES (?, ?, ?)'),
      logRow: db.prepare('SELECT key, digest FROM key_log WHERE seq = ?'),
      logDelete: db.prepare('DELETE FROM key_log WHERE seq = ?'),
      logLoad: db.prepare('SELECT seq, key FROM key_log WHERE seq >= ? ORDER BY seq').raw(),
      logCountRange: db.prepare('SELECT count(*) FROM key_log WHERE seq >= ? AND seq <= ?').pluck(),
      logAfter: db.prepare('SELECT seq, key FROM key_log WHERE seq > ? ORDER BY seq LIMIT ?').raw(),
      // A sealed level's rows of one chunk of key order, appended to its generation (OR IGNORE: a
      // chunk copied again after a crash); rows deleted meanwhile (replaced keys) are not found.
      logCopy: db
        .prepare(
          'INSERT OR IGNORE INTO key_rows (gen, key, seq, digest) SELECT ?, key, seq, digest FROM key_log WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY key RETURNING seq',
        )
        .pluck(),
      genHasRows: db.prepare('SELECT 1 FROM key_rows WHERE gen = ? LIMIT 1').pluck(),
      logHasBelow: db.prepare('SELECT 1 FROM key_log WHERE seq < ? LIMIT 1').pluck(),
      // Copied rows go by seq range (at most `rows` seqs from the lowest, so at most that many rows).
      logDeleteBelow: db.prepare('DELETE FROM key_log WHERE seq < min(@from, (SELECT min(seq) FROM key_log) + @rows)'),
      logSweep: db.prepare('DELETE FROM key_log WHERE seq IN (SELECT seq FROM key_log WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?)'),
      // A connection that does not keep level 0 in memory (read-only) scans it: at most two levels of rows.
      logScan: db.prepare('SELECT seq, digest FROM key_log WHERE key = ? AND seq >= ? ORDER BY seq DESC LIMIT 1'),
      behindInsert: db.prepare('INSERT OR REPLACE INTO key_rows (gen, key, seq, digest) VALUES (?, ?, ?, ?)'),
      behindGrow: db.prepare('UPDATE key_gens SET keys = keys + 1, min_seq = min(min_seq, ?), max_seq = max(max_seq, ?) WHERE gen = ?'),
      sealingGen: db.prepare("SELECT gen, max_seq AS maxSeq FROM key_gens WHERE state = 'sealing' ORDER BY gen LIMIT 1"),
      genStats: db.prepare('SELECT count(*) AS keys, min(seq) AS minSeq, max(seq) AS maxSeq FROM key_rows WHERE gen = ?'),
      sealDone: db.prepare("UPDATE key_gens SET state = 'live', keys = ?, min_seq = ?, max_seq = ? WHERE gen = ?"),
      putMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      newGen: db.prepare('INSERT INTO key_gens (gen, level, state, merged_into, min_seq, max_seq, keys) VALUES (?, ?, ?, NULL, ?, ?, 0)'),
      gens: db.prepare(
        'SELECT gen, level, state, merged_into AS mergedInto, min_seq AS minSeq, max_seq AS maxSeq, keys FROM key_gens ORDER BY gen',
      ),
      genKeys: db.prepare('SELECT key FROM key_rows WHERE gen = ? AND key > ? ORDER BY key LIMIT ?').pluck(),
      lastKeyOf: db.prepare('SELECT key FROM key_rows WHERE gen = ? ORDER BY key DESC LIMIT 1').pluck(),
      // The first `rows` keys of a generation go by key range: the key at that offset, then one
      // range delete (4.5x faster than `key IN (SELECT ... LIMIT)`, which seeks each key again).
      genKeyAt: db.prepare('SELECT key FROM key_rows WHERE gen = ? ORDER BY key LIMIT 1 OFFSET ?').pluck(),
      deleteGenThrough: db.prepare('DELETE FROM key_rows WHERE gen = ? AND key <= ?'),
      deleteGenAll: db.prepare('DELETE FROM key_rows WHERE gen = ?'),
      dropGen: db.prepare('DELETE FROM key_gens WHERE gen = ?'),
      setGenKeys: db.prepare('UPDATE key_gens SET keys = ? WHERE gen = ?'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      addMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING'),
      deletionsAfter: db.prepare(
        'SELECT last_seq AS lastSeq, deleted_at_ms AS deletedAtMs FROM deletions WHERE last_seq > ? ORDER BY last_seq',
      ),
      insertDeletion: db.prepare('INSERT INTO deletions (last_seq, deleted_at_ms) VALUES (?, ?) ON CONFLICT (last_seq) DO NOTHING'),
      sweepRead: db.prepare('SELECT key, seq FROM key_rows WHERE gen = ? AND key > ? ORDER BY key LIMIT ?').raw(),
      sweepDelete: db.prepare('DELETE FROM key_rows WHERE gen = ? AND key = ? AND seq <= ?'),
    };
    if (writable) this.statements.setMeta.run(META_INDEX_ID, Math.floor(Math.random() * 2 ** 48));
    // The generation size is the file's: a store opened without one (the index worker) uses the server's.
    if (writable && options.genKeys !== undefined) {
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
        META_GEN_KEYS,
        options.genKeys,
      );
    }
    this.fileGenKeys = Number(this.statements.getMeta.get(META_GEN_KEYS) ?? GEN_KEYS);
    this.indexId = Number(this.statements.getMeta.get(META_INDEX_ID) ?? 0);
    this.readDeletions();
  }

  /** Stored keys: inserted minus swept, as committed (read from the file, so right whichever connection wrote). */
  count(): number {
    const read = (key: string): number => Number(this.statements.getMeta.get(key) ?? 0);
    return read(META_KEYS_INSERTED) - read(META_KEYS_SWEPT);
  }

  /**
   * The stored original of a key, or undefined when it is unknown or expired (its event was
   * deleted by retention longer than the horizon ago). A new key costs one filter probe.
   */
  lookup(key: DedupKey, nowMs = Date.now()): StoredKey | undefined {
    if (this.filterComplete && !this.filter!.mayContain(key)) return undefined;
    const found = this.findInLevelZero(key) ?? this.findInGenerations(key);
    if (found === undefined || this.isExpired(found.seq, nowMs)) return undefined;
    return found;
  }

  /** The level-0 row of a key: through the in-memory index (a writable store) or a scan of key_log. */
  private findInLevelZero(key: DedupKey): StoredKey | undefined {
    if (!this.writable) {
      const from = Number(this.statements.getMeta.get(META_L0_FROM) ?? 0);
      return this.statements.logScan.get(key, from) as StoredKey | undefined;
    }
    const l0 = this.levelZero();
    let digest: Buffer | undefined;
    const confirm = (seq: number): boolean => {
      const row = this.statements.logRow.get(seq) as { key: Buffer; digest: Buffer } | undefined;
      if (row?.key.equals(key) !== true) return false;
      digest = row.digest;
      return true;
    };
    // The active level holds the newest keys: a replaced key's new row is there.
    for (const index of [l0.active, l0.sealed]) {
      if (index === null) continue;
      const slot = index.find(key, confirm);
      if (slot >= 0) return { seq: index.seqAt(slot), digest: digest! };
    }
    return undefined;
  }

  /**
   * The row of a key in the live generations: one statement with one seek per generation,
   * newest first, that stops at the first that holds it (a key has one row among them, or
   * identical copies while a merge runs; a replaced key's older rows are deleted by its put).
   * It is prepared again whenever this connection changes the live generations; a read-only
   * connection, which does not see the writer's changes, reads the list in its statement.
   */
  private findInGenerations(key: DedupKey): StoredKey | undefined {
    if (!this.writable) return this.statements.probe.get(key) as StoredKey | undefined;
    if (this.liveGens === null) {
      const gens = this.statements.liveGens.all() as number[];
      // One statement, an arm a generation newest first: SQLite stops at the first row (LIMIT 1).
      // SQLite allows 500 arms at most: past PROBE_ARMS_MAX (merges far behind) the one
      // statement over every generation is used instead.
      const arms = gens.map((gen) => `SELECT seq, digest FROM key_rows WHERE gen = ${Math.trunc(gen)} AND key = @key`);
      const probe = gens.length === 0 || gens.length > PROBE_ARMS_MAX ? null : this.db.prepare(`${arms.join(' UNION ALL ')} LIMIT 1`);
      this.liveGens = { gens, probe };
    }
    const { gens, probe } = this.liveGens;
    if (probe !== null) return probe.get({ key }) as StoredKey | undefined;
    return gens.length === 0 ? undefined : (this.statements.probe.get(key) as StoredKey | undefined);
  }

  /** True when the key_log row of `seq` holds `key`. */
  private logRowIs(seq: number, key: DedupKey): boolean {
    const row = this.statements.logRow.get(seq) as { key: Buffer } | undefined;
    return row?.key.equals(key) === true;
  }

  /**
   * Stores a key for `seq` inside the caller's transaction: one row appended to key_log
   * (level 0, in seq order: the B-tree grows at its right edge) and a slot of the in-memory
   * index; the filter learns it at once (a rollback leaves a harmless false positive, and
   * reloads level 0). When level 0 is full it is sealed (see seal). With a horizon, an
   * expired row of the same key may still be stored (the sweep had not reached it): it is
   * deleted first unless a complete filter says the key was never stored.
   */
  put(key: DedupKey, seq: number, digest: Buffer): void {
    const l0 = this.levelZero();
    let replaced = 0;
    let slot = -1;
    if (this.options.horizonMs > 0 && (this.filter === null || !this.filterComplete || this.filter.mayContain(key))) {
      const older = (s: number): boolean => s < seq && this.logRowIs(s, key);
      slot = l0.active.find(key, older);
      if (slot >= 0) replaced += this.statements.logDelete.run(l0.active.seqAt(slot)).changes;
      const sealedSlot = l0.sealed === null ? -1 : l0.sealed.find(key, older);
      if (sealedSlot >= 0) replaced += this.statements.logDelete.run(l0.sealed!.seqAt(sealedSlot)).changes;
      replaced += this.statements.deleteOlder.run(key, seq).changes;
    }
    // A replaced key was counted when it was first stored.
    if (replaced === 0) this.insertedDelta += 1;
    if (seq <= l0.sealThrough) {
      // An older seq than level 0's newest (a row re-indexed after `logagg repair` whose key had
      // expired): its row would lie in a sealed or copied range, so it goes where that range went.
      this.putBehind(l0, key, seq, digest);
    } else if (slot >= 0) {
      this.statements.logInsert.run(seq, key, digest);
      l0.active.setSeq(slot, seq);
    } else {
      this.statements.logInsert.run(seq, key, digest);
      l0.active.add(key, seq);
      if (l0.active.full) this.seal(l0);
    }
    this.noteStored(key);
  }

  /**
   * Stores a key whose seq is not above the sealed range: into the sealed level while it is
   * being copied (its sort is done again: chunks copied twice are ignored), else into the
   * newest live generation (one B-tree insert, as in layout 2; a rare path).
   */
  private putBehind(l0: LevelZero, key: DedupKey, seq: number, digest: Buffer): void {
    if (l0.sealed !== null && seq >= l0.from) {
      this.statements.logInsert.run(seq, key, digest);
      l0.sealed.add(key, seq);
      this.sealWork = null;
      return;
    }
    let gen = (this.statements.liveGens.all() as number[])[0];
    if (gen === undefined) {
      // Every generation was swept away: a new one holds the key.
      gen = nextGen(this.db);
      this.statements.newGen.run(gen, 0, 'live', seq, seq);
      this.liveGens = null;
    }
    this.statements.behindInsert.run(gen, key, seq, digest);
    this.statements.behindGrow.run(seq, seq, gen);
  }

  /** Keys of level 0 before it is sealed: DEDUP_GENERATION_KEYS, at most LEVEL0_KEYS_MAX. */
  private get level0Keys(): number {
    return Math.min(this.genKeys, LEVEL0_KEYS_MAX);
  }

  /**
   * Level 0 in memory, loaded from key_log at first use: the rows from key_l0_from on, those
   * of a generation being sealed into its index, the others into the active one (bounded:
   * two levels of rows).
   */
  private levelZero(): LevelZero {
    if (this.level0 !== null) return this.level0;
    const from = Number(this.statements.getMeta.get(META_L0_FROM) ?? 0);
    const sealing = this.statements.sealingGen.get() as { gen: number; maxSeq: number } | undefined;
    const sealThrough = sealing?.maxSeq ?? from - 1;
    const size = (lo: number, hi: number): number => Math.max(this.level0Keys, this.statements.logCountRange.get(lo, hi) as number);
    const l0: LevelZero = {
      from,
      active: new LevelZeroIndex(size(sealThrough + 1, Number.MAX_SAFE_INTEGER)),
      sealed: sealing === undefined ? null : new LevelZeroIndex(size(from, sealThrough)),
      sealGen: sealing?.gen ?? 0,
      sealThrough,
    };
    for (const [seq, key] of this.statements.logLoad.iterate(from) as IterableIterator<[number, Buffer]>) {
      (l0.sealed !== null && seq <= sealThrough ? l0.sealed : l0.active).add(key, seq);
    }
    this.level0 = l0;
    this.sealWork = null;
    this.level0Garbage = true;
    return l0;
  }

  /**
   * Seals the full active level: a 'sealing' generation records its seq range (committed
   * with the puts), and a new active level fills while maintenance steps copy the sealed
   * rows into that generation in key order. If the previous seal is still being copied (the
   * upkeep fell behind), its copy is finished first, in this transaction: at most two
   * levels are ever in memory.
   */
  private seal(l0: LevelZero): void {
    if (l0.sealed !== null) while (this.level0 !== null && this.level0.sealed !== null) this.sealStep(l0, Number.MAX_SAFE_INTEGER);
    const gen = nextGen(this.db);
    this.statements.newGen.run(gen, 0, 'sealing', l0.from, l0.active.maxSeq);
    l0.sealed = l0.active;
    l0.sealGen = gen;
    l0.sealThrough = l0.active.maxSeq;
    l0.active = new LevelZeroIndex(this.level0Keys);
    this.sealWork = null;
  }

  /**
   * One bounded step of the copy of the sealed level into its generation: the first partitions
   * its seqs by key prefix from the in-memory index (partitionSealed); each next one orders
   * the buckets it reaches (sortSealedThrough) and appends up to
   * `rowsMax` rows in key order (one transaction); the last chunk commits with the switch:
   * the generation live, key_l0_from past the sealed rows; then the sealed index is
   * dropped. A crash loses only the in-memory part: the next load sorts the sealed level
   * again and copies on (a chunk copied twice is ignored).
   */
  private sealStep(l0: LevelZero, rowsMax: number): number {
    let work = this.sealWork;
    if (work === null) {
      // The first step partitions the sealed level by key prefix from its in-memory index.
      work = this.partitionSealed(l0);
      this.sealWork = work;
      if (work.count > rowsMax) return work.count;
    }
    const end = Math.min(work.count, work.written + rowsMax);
    this.sortSealedThrough(work, end);
    const seqs = Array.from(work.order.subarray(work.written, end));
    // The last chunk and the switch commit together.
    const copied = this.db.transaction((): { keys: number; minSeq: number; maxSeq: number } => {
      const inserted = seqs.length === 0 ? [] : (this.statements.logCopy.all(work.gen, JSON.stringify(seqs)) as number[]);
      // This copy's rows so far with this chunk's: what the generation holds when the copy began on it empty.
      let { minSeq, maxSeq } = work;
      for (const seq of inserted) {
        minSeq = Math.min(minSeq, seq);
        maxSeq = Math.max(maxSeq, seq);
      }
      const total = { keys: work.inserted + inserted.length, minSeq, maxSeq };
      if (end === work.count) {
        // A copy resumed over rows an earlier one wrote (after a crash, or a key put behind): count them all.
        const stats = work.exact ? total : (this.statements.genStats.get(work.gen) as typeof total);
        if (stats.keys === 0) this.statements.dropGen.run(work.gen);
        else this.statements.sealDone.run(stats.keys, stats.minSeq, stats.maxSeq, work.gen);
        this.statements.putMeta.run(META_L0_FROM, l0.sealThrough + 1);
      }
      return total;
    })();
    // Kept once committed (a rolled-back chunk is copied again).
    const rows = copied.keys - work.inserted;
    work.inserted = copied.keys;
    work.minSeq = copied.minSeq;
    work.maxSeq = copied.maxSeq;
    work.written = end;
    if (end < work.count) return rows;
    l0.from = l0.sealThrough + 1;
    l0.sealed = null;
    l0.sealGen = 0;
    this.sealWork = null;
    this.level0Garbage = true;
    this.liveGens = null;
    return rows;
  }

  /**
   * Starts the copy of the sealed level: each slot's 32-bit key prefix and its place in one
   * Float64Array, partitioned by the prefix's top bits into buckets of about 256 slots
   * (counting sort); sortSealedThrough orders them a bucket at a time.
   */
  private partitionSealed(l0: LevelZero): SealWork {
    const sealed = l0.sealed!;
    const n = sealed.count;
    const placeBits = Math.max(1, Math.ceil(Math.log2(n + 1)));
    const prefixBits = Math.min(32, 53 - placeBits);
    const place = 2 ** placeBits;
    const shift = 2 ** (32 - prefixBits);
    const bucketBits = Math.min(prefixBits, Math.max(0, Math.ceil(Math.log2(n / 256))));
    const perBucket = place * 2 ** (prefixBits - bucketBits);
    const seqs = new Float64Array(n);
    const unsorted = new Float64Array(n);
    const bucketEnds = new Uint32Array(2 ** bucketBits);
    let used = 0;
    sealed.forEach((tag, seq) => {
      seqs[used] = seq;
      const value = Math.floor(tag / shift) * place + used;
      unsorted[used] = value;
      bucketEnds[Math.floor(value / perBucket)]! += 1;
      used += 1;
    });
    for (let b = 1; b < bucketEnds.length; b += 1) bucketEnds[b]! += bucketEnds[b - 1]!;
    const values = new Float64Array(n);
    // Where the next slot of each bucket goes: its start.
    const fill = new Uint32Array(bucketEnds.length);
    for (let b = 1; b < fill.length; b += 1) fill[b] = bucketEnds[b - 1]!;
    for (let i = 0; i < n; i += 1) {
      const value = unsorted[i]!;
      values[fill[Math.floor(value / perBucket)]!++] = value;
    }
    // Rows already in the generation (a copy resumed): the end counts the generation instead of the rows this copy inserts.
    const exact = this.statements.genHasRows.get(l0.sealGen) === undefined;
    return {
      gen: l0.sealGen,
      count: n,
      values,
      seqs,
      place,
      bucketEnds,
      nextBucket: 0,
      order: new Float64Array(n),
      sortedThrough: 0,
      written: 0,
      inserted: 0,
      minSeq: Number.POSITIVE_INFINITY,
      maxSeq: Number.NEGATIVE_INFINITY,
      exact,
    };
  }

  /**
   * Orders the sealed level's seqs by key up to index `end` at least, a bucket at a time:
   * each is sorted natively by prefix; runs of equal prefixes (a few pairs in 262 144 keys)
   * are ordered by whole keys read from key_log.
   */
  private sortSealedThrough(work: SealWork, end: number): void {
    const { values, seqs, place, order } = work;
    const keyAt = (seq: number): Buffer => (this.statements.logRow.get(seq) as { key: Buffer } | undefined)?.key ?? Buffer.alloc(0);
    while (work.sortedThrough < end && work.nextBucket < work.bucketEnds.length) {
      const from = work.sortedThrough;
      const to = work.bucketEnds[work.nextBucket]!;
      work.nextBucket += 1;
      values.subarray(from, to).sort();
      for (let i = from; i < to;) {
        const prefix = Math.floor(values[i]! / place);
        let j = i + 1;
        while (j < to && Math.floor(values[j]! / place) === prefix) j += 1;
        if (j - i === 1) {
          order[i] = seqs[values[i]! - prefix * place]!;
        } else {
          const run = Array.from(values.subarray(i, j), (v) => seqs[v - prefix * place]!);
          const keys = new Map(run.map((seq) => [seq, keyAt(seq)]));
          run.sort((a, b) => Buffer.compare(keys.get(a)!, keys.get(b)!));
          order.set(run, i);
        }
        i = j;
      }
      work.sortedThrough = to;
    }
  }

  /** Writes the count of inserted keys; call inside the transaction that holds the puts. */
  commitCount(): void {
    if (this.insertedDelta !== 0) this.statements.addMeta.run(META_KEYS_INSERTED, this.insertedDelta);
    this.insertedDelta = 0;
  }

  /** Counts key rows inserted by other means (rebuild's copy); call inside their transaction. */
  countInserted(rows: number): void {
    if (rows !== 0) this.statements.addMeta.run(META_KEYS_INSERTED, rows);
  }

  /**
   * Forgets what puts rolled back with their transaction did: the count, and level 0 in
   * memory (reloaded from key_log at next use; a rollback is rare, a load bounded).
   */
  rollbackCount(): void {
    this.insertedDelta = 0;
    this.level0 = null;
    this.sealWork = null;
    this.liveGens = null;
  }

  /** Tells the filter of a key another connection (the index worker) has committed. */
  noteStored(key: DedupKey): void {
    this.rebuilding?.filter.add(key);
    if (this.filter === null) return;
    this.filter.add(key);
    this.keysSinceSave += 1;
  }

  /** Records a deletion by retention; runs inside dropThrough's transaction. */
  recordDeletion(lastSeq: number, deletedAtMs: number): void {
    this.statements.insertDeletion.run(lastSeq, deletedAtMs);
  }

  /** Learns deletions committed since the last call (by this or another connection). */
  readDeletions(): void {
    for (const row of this.statements.deletionsAfter.all(this.deletionsReadThrough) as Array<{ lastSeq: number; deletedAtMs: number }>) {
      this.deletions.push(row);
      this.deletionsReadThrough = row.lastSeq;
    }
  }

  /** Every seq <= this is expired now (0: none); advances as deletions pass the horizon. */
  expiredThroughSeq(nowMs = Date.now()): number {
    if (this.options.horizonMs <= 0) return 0;
    const limitMs = nowMs - this.options.horizonMs;
    while (this.deletions.length > 0 && this.deletions[0]!.deletedAtMs < limitMs) {
      this.expiredThrough = Math.max(this.expiredThrough, this.deletions.shift()!.lastSeq);
    }
    return this.expiredThrough;
  }

  private isExpired(seq: number, nowMs: number): boolean {
    return this.options.horizonMs > 0 && this.deletions.length + this.expiredThrough > 0 && seq <= this.expiredThroughSeq(nowMs);
  }

  /** The rows of key_gens, by generation number. */
  private genRows(): GenRow[] {
    return this.statements.gens.all() as GenRow[];
  }

  /**
   * One bounded step of the sweep that deletes expired key rows, generation by generation
   * (only those holding a seq <= the expired seq; one whose every seq expired goes whole),
   * then level 0's (key_log from key_l0_from: its expired rows are its lowest seqs),
   * in key order from where the last step stopped (at most `rowsMax` rows, one
   * transaction). Returns the rows deleted (0 while a merge must finish first), or null
   * when no sweep is due (nothing newly expired).
   */
  sweepStep(nowMs = Date.now(), rowsMax = SWEEP_ROWS_PER_STEP): number | null {
    this.readDeletions();
    const expiredThrough = this.expiredThroughSeq(nowMs);
    if (this.sweepTarget === 0) {
      if (expiredThrough <= this.sweptThrough) return null;
      this.sweepTarget = expiredThrough;
      this.sweepGen = 0;
      this.sweepAfter = Buffer.alloc(0);
    }
    const target = this.sweepTarget;
    const step = this.db.transaction((): number => {
      const gens = this.genRows();
      // A merge copies rows the sweep would count twice: it finishes first.
      if (gens.some((g) => g.state !== 'live' || g.mergedInto !== null)) return 0;
      const gen = gens.find((g) => g.gen >= this.sweepGen && g.minSeq <= target);
      if (gen === undefined) {
        // Every generation is done: level 0 last, whose expired rows are its first seqs.
        const from = this.level0?.from ?? Number(this.statements.getMeta.get(META_L0_FROM) ?? 0);
        const swept = this.statements.logSweep.run(from, target, rowsMax).changes;
        if (swept > 0) this.statements.addMeta.run(META_KEYS_SWEPT, swept);
        if (swept < rowsMax) {
          // The pass went through every generation and level 0: every key expired at its start is gone.
          this.sweptThrough = target;
          this.sweepTarget = 0;
          this.sweepAfter = null;
        }
        return swept;
      }
      if (gen.gen !== this.sweepGen) {
        this.sweepGen = gen.gen;
        this.sweepAfter = Buffer.alloc(0);
      }
      let deleted = 0;
      let finished: boolean;
      if (gen.maxSeq <= target) {
        deleted = this.deleteFirstRows(gen.gen, rowsMax);
        finished = deleted < rowsMax;
        if (finished) {
          this.statements.dropGen.run(gen.gen);
          this.liveGens = null;
        } else this.statements.setGenKeys.run(Math.max(0, gen.keys - deleted), gen.gen);
      } else {
        const rows = this.statements.sweepRead.all(gen.gen, this.sweepAfter, rowsMax) as Array<[Buffer, number]>;
        for (const [key, seq] of rows) {
          if (seq <= target) deleted += this.statements.sweepDelete.run(gen.gen, key, target).changes;
        }
        if (deleted > 0) this.statements.setGenKeys.run(Math.max(0, gen.keys - deleted), gen.gen);
        finished = rows.length < rowsMax;
        if (!finished) this.sweepAfter = rows[rows.length - 1]![0];
      }
      if (deleted > 0) this.statements.addMeta.run(META_KEYS_SWEPT, deleted);
      if (finished) {
        this.sweepGen = gen.gen + 1;
        this.sweepAfter = Buffer.alloc(0);
      }
      return deleted;
    });
    return step();
  }

  /**
   * One bounded step of the key store's upkeep, for a timer: the filter rebuild in the
   * background, then (every fourth step) deleting copied key_log rows, then (every other
   * step) the copy of a sealed level 0 into its generation, then deleting the rows of
   * generations a merge replaced, then the merge under way, then starting a merge that is
   * due or else the seal's copy, then deleting the key_log rows a finished copy covers, then
   * the sweep of expired keys, then starting a merge when MERGE_FANOUT generations of one
   * level are full. Returns the rows handled, or null when nothing is to do.
   */
  maintenanceStep(nowMs = Date.now(), rowsMax = MAINTENANCE_ROWS_PER_STEP): number | null {
    if (this.rebuilding !== null) return this.filterRebuildStep(FILTER_REBUILD_ROWS_PER_STEP);
    const l0 = this.writable ? this.levelZero() : null;
    // Every fourth step deletes copied key_log rows first: behind the merges' steps it never
    // ran under a sustained ingest (13.2M copied rows waited after 17M keys stored).
    this.upkeepTurn = (this.upkeepTurn + 1) % GARBAGE_TURN_EVERY;
    if (l0 !== null && this.level0Garbage && this.upkeepTurn === 0) {
      const deleted = this.deleteLevelZeroGarbage(l0, rowsMax);
      if (deleted > 0) return deleted;
    }
    // A sealed level's copy and a merge take turns (a seal every step would starve merges
    // when levels are small); a seal goes on every step when nothing else is to do.
    this.sealTurn = !this.sealTurn;
    if (l0?.sealed != null && this.sealTurn) return this.sealStep(l0, rowsMax);
    const gens = this.genRows();
    const retired = gens.find((g) => g.state === 'retired');
    if (retired !== undefined) {
      return this.db.transaction((): number => {
        const deleted = this.deleteFirstRows(retired.gen, rowsMax);
        if (deleted < rowsMax) this.statements.dropGen.run(retired.gen);
        this.liveGens = null;
        return deleted;
      })();
    }
    const building = gens.find((g) => g.state === 'building');
    if (building !== undefined) return this.mergeStep(building, gens, rowsMax);
    // A merge due starts before a seal goes on (with small levels a seal is nearly always pending).
    if (l0 !== null && l0.sealed !== null) return this.startMerge(gens) ? 0 : this.sealStep(l0, rowsMax);
    if (l0 !== null && this.level0Garbage) {
      const deleted = this.deleteLevelZeroGarbage(l0, rowsMax);
      if (deleted > 0) return deleted;
    }
    const swept = this.sweepStep(nowMs, Math.min(rowsMax, SWEEP_ROWS_PER_STEP));
    if (swept !== null) return swept;
    return this.startMerge(gens) ? 0 : null;
  }

  /** Deletes the first `rowsMax` rows of generation `gen` in key order (all when it has fewer); returns how many. */
  private deleteFirstRows(gen: number, rowsMax: number): number {
    const edge = this.statements.genKeyAt.get(gen, rowsMax - 1) as Buffer | undefined;
    return (edge === undefined ? this.statements.deleteGenAll.run(gen) : this.statements.deleteGenThrough.run(gen, edge)).changes;
  }

  /** Deletes up to rowsMax key_log rows below level 0 (copies a finished seal left); returns how many. */
  private deleteLevelZeroGarbage(l0: LevelZero, rowsMax: number): number {
    const deleted = this.statements.logDeleteBelow.run({ from: l0.from, rows: rowsMax }).changes;
    if (deleted < rowsMax) this.level0Garbage = this.statements.logHasBelow.get(l0.from) !== undefined;
    return deleted;
  }

  /** The generations and their sizes, by number. */
  generations(): Array<{ gen: number; level: number; state: string; keys: number }> {
    const gens = this.genRows().map(({ gen, level, state, keys }) => ({ gen, level, state, keys }));
    // Level 0 as one entry (gen 0, state 'level0'): its key_log rows, the sealed ones included
    // (their generation counts none until its copy is done).
    const from = Number(this.statements.getMeta.get(META_L0_FROM) ?? 0);
    const keys = this.statements.logCountRange.get(from, Number.MAX_SAFE_INTEGER) as number;
    return [{ gen: 0, level: 0, state: 'level0', keys }, ...gens];
  }

  /** Level 0 in memory: its keys (active and sealed) and the bytes of their indexes (0 before its first use). */
  levelZeroStats(): { keys: number; sealedKeys: number; bytes: number } {
    const l0 = this.level0;
    if (l0 === null) return { keys: 0, sealedKeys: 0, bytes: 0 };
    return { keys: l0.active.count, sealedKeys: l0.sealed?.count ?? 0, bytes: l0.active.bytes + (l0.sealed?.bytes ?? 0) };
  }

  /**
   * Copies, inside the caller's transaction, the keys with seq < belowSeq of the index
   * attached as `schema` (rebuild's old index): each of its generations to a new one here
   * of the same level, in key order (sequential writes, no sort). Returns the keys copied.
   */
  copyGenerationsFrom(schema: string, belowSeq: number): number {
    const gens = this.db
      .prepare(
        `SELECT gen, level, min_seq AS minSeq, max_seq AS maxSeq FROM ${schema}.key_gens WHERE state = 'live' AND min_seq < ? ORDER BY gen`,
      )
      .all(belowSeq) as Array<{ gen: number; level: number; minSeq: number; maxSeq: number }>;
    const copy = this.db.prepare(
      `INSERT INTO key_rows (gen, key, seq, digest) SELECT ?, key, seq, digest FROM ${schema}.key_rows WHERE gen = ? AND seq < ? ORDER BY key`,
    );
    let copied = 0;
    for (const old of gens) {
      const gen = nextGen(this.db);
      this.statements.newGen.run(gen, old.level, 'live', old.minSeq, Math.min(old.maxSeq, belowSeq - 1));
      const rows = copy.run(gen, old.gen, belowSeq).changes;
      this.statements.setGenKeys.run(rows, gen);
      copied += rows;
    }
    // Its level 0 (key_log from its key_l0_from, a sealed level included) becomes one generation here, sorted by SQLite.
    const from = Number(this.db.prepare(`SELECT value FROM ${schema}.meta WHERE key = ?`).pluck().get(META_L0_FROM) ?? 0);
    const log = this.db
      .prepare(`SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM ${schema}.key_log WHERE seq >= ? AND seq < ?`)
      .get(from, belowSeq) as { n: number; lo: number | null; hi: number | null };
    if (log.n > 0) {
      const gen = nextGen(this.db);
      this.statements.newGen.run(gen, 0, 'live', log.lo, log.hi);
      const rows = this.db
        .prepare(
          `INSERT OR IGNORE INTO key_rows (gen, key, seq, digest) SELECT ?, key, seq, digest FROM ${schema}.key_log WHERE seq >= ? AND seq < ? ORDER BY key`,
        )
        .run(gen, from, belowSeq).changes;
      this.statements.setGenKeys.run(rows, gen);
      copied += rows;
    }
    this.liveGens = null;
    return copied;
  }

  /** Generation sizes and merge fan-out, as set (tests make them small). */
  private get genKeys(): number {
    return this.options.genKeys ?? this.fileGenKeys;
  }

  private get mergeFanout(): number {
    return this.options.mergeFanout ?? MERGE_FANOUT;
  }

  /**
   * Starts a merge of the oldest MERGE_FANOUT live generations of the lowest level that has
   * that many (a sealed level 0 becomes one once copied) into a new generation of the
   * next level; returns false when no level has enough.
   */
  private startMerge(gens: GenRow[]): boolean {
    const levels = [...new Set(gens.map((g) => g.level))].sort((a, b) => a - b);
    for (const level of levels) {
      const candidates = gens.filter((g) => g.level === level && g.state === 'live' && g.mergedInto === null);
      if (candidates.length < this.mergeFanout) continue;
      const sources = candidates.slice(0, this.mergeFanout);
      this.db.transaction(() => {
        const target = nextGen(this.db);
        this.statements.newGen.run(
          target,
          level + 1,
          'building',
          Math.min(...sources.map((g) => g.minSeq)),
          Math.max(...sources.map((g) => g.maxSeq)),
        );
        const mark = this.db.prepare('UPDATE key_gens SET merged_into = ? WHERE gen = ?');
        for (const source of sources) mark.run(target, source.gen);
      })();
      return true;
    }
    return false;
  }

  /**
   * Copies the next `rowsMax` keys of a merge's sources into its target, in key order (the
   * sources are read in key order and merged, no sort: the target's B-tree grows at its
   * right edge). The target's largest key is the merge's place, so a crash resumes where the
   * last commit left it. Where two sources hold a key, the newer seq wins. The last step
   * makes the target live and retires the sources, in one transaction.
   */
  private mergeStep(target: GenRow, gens: GenRow[], rowsMax: number): number {
    const sources = gens.filter((g) => g.mergedInto === target.gen).map((g) => g.gen);
    const sql = sources.length === 0 ? null : this.mergeSql(sources.length);
    return this.db.transaction((): number => {
      const after = (this.statements.lastKeyOf.get(target.gen) as Buffer | undefined) ?? Buffer.alloc(0);
      let copied = 0;
      let more = false;
      if (sql !== null) {
        const params: Record<string, unknown> = { target: target.gen, after, rows: rowsMax };
        sources.forEach((gen, i) => (params[`s${i}`] = gen));
        copied = sql.copy.run(params).changes;
        const last = (this.statements.lastKeyOf.get(target.gen) as Buffer | undefined) ?? after;
        more = sql.more.get({ ...params, after: last, rows: undefined, target: undefined }) !== undefined;
      }
      if (!more) {
        const keys = gens.filter((g) => g.mergedInto === target.gen).reduce((sum, g) => sum + g.keys, 0);
        this.db.prepare("UPDATE key_gens SET state = 'live', keys = ? WHERE gen = ?").run(keys, target.gen);
        this.db.prepare("UPDATE key_gens SET state = 'retired' WHERE merged_into = ?").run(target.gen);
        this.liveGens = null;
      }
      return copied;
    })();
  }

  /** The statements of a merge of `count` sources (@s0.. @s<count-1>), prepared once per count. */
  private mergeSql(count: number): { copy: Database.Statement; more: Database.Statement } {
    const key = String(count);
    let copy = this.mergeStatements.get(`copy${key}`);
    let more = this.mergeStatements.get(`more${key}`);
    if (copy === undefined || more === undefined) {
      const arms = Array.from({ length: count }, (_, i) => `SELECT key, seq, digest FROM key_rows WHERE gen = @s${i} AND key >= @after`);
      // `>=`: the last key copied is read again, so a second source's row of it is not skipped.
      copy = this.db.prepare(
        `INSERT INTO key_rows (gen, key, seq, digest)
         SELECT @target, key, seq, digest FROM (${arms.join(' UNION ALL ')} ORDER BY key LIMIT @rows) WHERE true
         ON CONFLICT (gen, key) DO UPDATE SET seq = excluded.seq, digest = excluded.digest WHERE excluded.seq > key_rows.seq`,
      );
      const later = Array.from({ length: count }, (_, i) => `SELECT 1 FROM key_rows WHERE gen = @s${i} AND key > @after`);
      more = this.db.prepare(`SELECT 1 FROM (${later.join(' UNION ALL ')}) LIMIT 1`);
      this.mergeStatements.set(`copy${key}`, copy);
      this.mergeStatements.set(`more${key}`, more);
    }
    return { copy, more };
  }

  /**
   * Makes the filter: loads the saved one (then the caller adds the keys after the seq it
   * returns and calls markFilterComplete), or rebuilds it from the table when it is missing,
   * corrupt, of another size or of another index (returns checkpointSeq; see rebuildFilter).
   */
  openFilter(checkpointSeq: number): number {
    const { filterBytes, filterPath } = this.options;
    if (filterBytes <= 0) return checkpointSeq;
    if (filterPath !== null) {
      const loaded = KeyFilter.load(filterPath, filterBytes, this.indexId);
      if ('filter' in loaded) {
        this.filter = loaded.filter;
        this.filterCoveredSeq = Math.min(loaded.coveredSeq, checkpointSeq);
        this.filterComplete = false;
        return this.filterCoveredSeq;
      }
      this.rebuildFilter(loaded.problem, checkpointSeq);
      return checkpointSeq;
    }
    this.rebuildFilter('not saved', checkpointSeq);
    return checkpointSeq;
  }

  /**
   * Adds every key of the table to a new filter, generation by generation in key order.
   * With `rebuildInBackground` it only starts: maintenanceStep reads it on in bounded steps,
   * lookups probe the table meanwhile (exact, slower), and keys stored meanwhile go to the
   * new filter too; so start-up does not wait for it. An empty table is done at once.
   */
  rebuildFilter(reason: string, checkpointSeq: number): void {
    this.filterComplete = false;
    this.rebuilding = {
      filter: new KeyFilter(this.options.filterBytes),
      gens: [],
      after: Buffer.alloc(0),
      keys: 0,
      reason,
      coveredSeq: checkpointSeq,
      started: performance.now(),
      logAfter: -1,
    };
    if (this.options.rebuildInBackground === true && this.count() > 0) return;
    do this.filterRebuildStep(FILTER_REBUILD_ROWS_PER_STEP);
    while (this.filterRebuilding);
  }

  /**
   * Reads up to `rowsMax` keys of the filter rebuild: key_log (level 0) in seq order, then the
   * generations (a key a seal copies meanwhile is read in one or the other, or both). Generations are taken in number order,
   * each asked for again after the last: a merge's target has a higher number than its
   * sources, so keys a merge moves while the rebuild runs are read in their new place.
   */
  private filterRebuildStep(rowsMax: number): number {
    const rebuild = this.rebuilding!;
    if (rebuild.logAfter !== null) {
      // key_log first: a row a finished seal deletes meanwhile is then in a live generation, read after.
      const rows = this.statements.logAfter.all(rebuild.logAfter, rowsMax) as Array<[number, Buffer]>;
      for (const [, key] of rows) rebuild.filter.add(key);
      rebuild.keys += rows.length;
      rebuild.logAfter = rows.length < rowsMax ? null : rows[rows.length - 1]![0];
      return rows.length;
    }
    const gen = rebuild.gens.length === 0 ? this.nextRebuildGen(-1) : rebuild.gens[0]!;
    if (gen === undefined) {
      this.finishRebuild();
      return 0;
    }
    if (rebuild.gens.length === 0) rebuild.gens.push(gen);
    const keys = this.statements.genKeys.all(gen, rebuild.after, rowsMax) as Buffer[];
    for (const key of keys) rebuild.filter.add(key);
    rebuild.keys += keys.length;
    if (keys.length < rowsMax) {
      const next = this.nextRebuildGen(gen);
      rebuild.after = Buffer.alloc(0);
      if (next === undefined) this.finishRebuild();
      else rebuild.gens[0] = next;
    } else {
      rebuild.after = keys[keys.length - 1]!;
    }
    return keys.length;
  }

  private nextRebuildGen(after: number): number | undefined {
    return this.db.prepare("SELECT gen FROM key_gens WHERE gen > ? AND state != 'retired' ORDER BY gen LIMIT 1").pluck().get(after) as
      number | undefined;
  }

  private finishRebuild(): void {
    const rebuild = this.rebuilding!;
    this.rebuilding = null;
    this.filter = rebuild.filter;
    this.filterComplete = true;
    this.filterCoveredSeq = rebuild.coveredSeq;
    this.keysSinceSave = Math.max(1, rebuild.keys);
    this.options.onFilterRebuilt?.({ reason: rebuild.reason, keys: rebuild.keys, elapsedMs: performance.now() - rebuild.started });
  }

  /** Declares a loaded filter complete: the caller has added every key stored after its coveredSeq. */
  markFilterComplete(): void {
    if (this.filter !== null && this.rebuilding === null) this.filterComplete = true;
  }

  /** True while a filter rebuild runs in the background. */
  get filterRebuilding(): boolean {
    return this.rebuilding !== null;
  }

  /** True while lookups go through the filter. */
  get filterReady(): boolean {
    return this.filterComplete;
  }

  /**
   * Saves the filter in the background when enough keys or time have passed since the last
   * save; `checkpointSeq` is the index's checkpoint, and every key up to it is in the filter.
   */
  maybeSaveFilter(checkpointSeq: number, nowMs = Date.now()): void {
    const { filterPath } = this.options;
    if (filterPath === null || this.filter === null || !this.filterComplete || this.saving || this.keysSinceSave === 0) return;
    const everyKeys = this.options.saveEveryKeys ?? FILTER_SAVE_EVERY_KEYS;
    if (this.keysSinceSave < everyKeys && nowMs - this.lastSaveMs < FILTER_SAVE_EVERY_MS) return;
    this.saving = true;
    this.keysSinceSave = 0;
    this.lastSaveMs = nowMs;
    // The live bits, read in chunks: they hold every key up to checkpointSeq (see saveLiveInBackground).
    KeyFilter.saveLiveInBackground(filterPath, this.filter.bits, checkpointSeq, this.indexId, () => !this.closed)
      .catch(() => {
        // A failed save costs a longer replay (or a rebuild) at the next start, nothing else.
        this.keysSinceSave = everyKeys;
      })
      .finally(() => {
        this.saving = false;
      });
  }

  /** Saves the filter now (a clean stop) as covering checkpointSeq, and stops background saves. */
  close(checkpointSeq: number): void {
    this.closed = true;
    const { filterPath } = this.options;
    if (filterPath === null || this.filter === null || !this.filterComplete) return;
    try {
      KeyFilter.writeDurably(filterPath, KeyFilter.encode(this.filter.bits, checkpointSeq, this.indexId));
    } catch {
      // A full disk (or any write error) must not fail the stop: the next start rebuilds the
      // filter from the table, or uses the older file plus the log after its seq.
      fs.rmSync(`${filterPath}.tmp`, { force: true });
    }
  }
}
