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
  /** Told when the filter had to be rebuilt from the table, and why. */
  onFilterRebuilt?: (info: { reason: string; keys: number; elapsedMs: number }) => void;
}

/**
 * The dedup keys table and the deletions table (the retention contract). `keys` is keyed
 * by the 128-bit key, so a lookup is one B-tree probe; `digest` lets a re-send be told
 * duplicate or conflict once the original's body is gone. Keys are not deleted with their
 * events: DEDUP_HORIZON_MS decides, and the sweep removes them.
 */
export const KEY_STORE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS keys (key BLOB PRIMARY KEY, seq INTEGER NOT NULL, digest BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS deletions (last_seq INTEGER PRIMARY KEY, deleted_at_ms INTEGER NOT NULL);
`;

/** Meta keys (in IndexStore's meta table) that count key rows: inserted by the applier, removed by the sweep. */
const META_KEYS_INSERTED = 'keys_inserted';
const META_KEYS_SWEPT = 'keys_swept';
/** A random number naming one index file: a saved filter is used only with the index it was saved from. */
const META_INDEX_ID = 'index_id';

/** Keys added to the filter between two background saves, at most (the replay after kill -9 follows it). */
export const FILTER_SAVE_EVERY_KEYS = 1_000_000;
/** Time between two background saves of the filter while keys are added, at most. */
export const FILTER_SAVE_EVERY_MS = 60_000;
/** Key rows one sweep step reads, at most: one short transaction, never a long stall of the publish thread. */
export const SWEEP_ROWS_PER_STEP = 2000;

/**
 * Dedup keys on disk behind a fixed-size in-memory filter, over the IndexStore's own
 * connection: put() runs inside the caller's transaction, so keys commit with their rows
 * and the checkpoint. A lookup costs one filter probe for a new key and one table probe
 * otherwise; it is exact up to 128-bit hash collisions (see key-hash.ts).
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
  /** The sweep's place in key order, and the expiredThrough its pass removes (0: no pass running). */
  private sweepAfter: Buffer | null = null;
  private sweepTarget = 0;
  private sweptThrough = 0;
  private insertedDelta = 0;

  constructor(db: Database.Database, options: KeyStoreOptions, writable: boolean) {
    this.db = db;
    this.options = options;
    this.statements = {
      probe: db.prepare('SELECT seq, digest FROM keys WHERE key = ?'),
      insert: db.prepare('INSERT INTO keys (key, seq, digest) VALUES (?, ?, ?)'),
      replace: db.prepare('UPDATE keys SET seq = ?, digest = ? WHERE key = ?'),
      allKeys: db.prepare('SELECT key FROM keys').pluck(),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      addMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING'),
      deletionsAfter: db.prepare(
        'SELECT last_seq AS lastSeq, deleted_at_ms AS deletedAtMs FROM deletions WHERE last_seq > ? ORDER BY last_seq',
      ),
      insertDeletion: db.prepare('INSERT INTO deletions (last_seq, deleted_at_ms) VALUES (?, ?) ON CONFLICT (last_seq) DO NOTHING'),
      sweepRead: db.prepare('SELECT key, seq FROM keys WHERE key > ? ORDER BY key LIMIT ?').raw(),
      sweepDelete: db.prepare('DELETE FROM keys WHERE key = ? AND seq <= ?'),
    };
    if (writable) this.statements.setMeta.run(META_INDEX_ID, Math.floor(Math.random() * 2 ** 48));
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
    const found = this.statements.probe.get(key) as StoredKey | undefined;
    if (found === undefined || this.isExpired(found.seq, nowMs)) return undefined;
    return found;
  }

  /**
   * Stores a key for `seq` inside the caller's transaction, replacing an expired row of
   * the same key; the filter learns it at once (a rollback leaves a harmless false positive).
   */
  put(key: DedupKey, seq: number, digest: Buffer): void {
    try {
      this.statements.insert.run(key, seq, digest);
      this.insertedDelta += 1;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw err;
      // An expired key sent again (or a blind append of one): the new original replaces it.
      this.statements.replace.run(seq, digest, key);
    }
    this.noteStored(key);
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

  /** Forgets the count of puts rolled back with their transaction. */
  rollbackCount(): void {
    this.insertedDelta = 0;
  }

  /** Tells the filter of a key another connection (the index worker) has committed. */
  noteStored(key: DedupKey): void {
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

  /**
   * One bounded step of the sweep that deletes expired key rows, in key order from where
   * the last step stopped (at most SWEEP_ROWS_PER_STEP rows read, one transaction). Returns
   * the rows deleted, or null when no sweep is due (nothing newly expired).
   */
  sweepStep(nowMs = Date.now(), rowsMax = SWEEP_ROWS_PER_STEP): number | null {
    this.readDeletions();
    const expiredThrough = this.expiredThroughSeq(nowMs);
    if (this.sweepTarget === 0) {
      if (expiredThrough <= this.sweptThrough) return null;
      this.sweepTarget = expiredThrough;
      this.sweepAfter = Buffer.alloc(0);
    }
    const target = this.sweepTarget;
    const step = this.db.transaction((): number => {
      const rows = this.statements.sweepRead.all(this.sweepAfter, rowsMax) as Array<[Buffer, number]>;
      let deleted = 0;
      for (const [key, seq] of rows) {
        if (seq <= target) deleted += this.statements.sweepDelete.run(key, target).changes;
      }
      if (deleted > 0) this.statements.addMeta.run(META_KEYS_SWEPT, deleted);
      if (rows.length < rowsMax) {
        // The pass reached the end of the table: every key expired at its start is gone.
        this.sweptThrough = target;
        this.sweepTarget = 0;
        this.sweepAfter = null;
      } else {
        this.sweepAfter = rows[rows.length - 1]![0];
      }
      return deleted;
    });
    return step();
  }

  /**
   * Makes the filter: loads the saved one (then the caller adds the keys after the seq it
   * returns and calls markFilterComplete), or rebuilds it from the table when it is missing,
   * corrupt, of another size or of another index (complete at once; returns checkpointSeq).
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

  /** Adds every key of the table to a new filter (a full scan of the table). */
  rebuildFilter(reason: string, checkpointSeq: number): void {
    const started = performance.now();
    const filter = new KeyFilter(this.options.filterBytes);
    let keys = 0;
    for (const key of this.statements.allKeys.iterate() as Iterable<Buffer>) {
      filter.add(key);
      keys += 1;
    }
    this.filter = filter;
    this.filterComplete = true;
    this.filterCoveredSeq = checkpointSeq;
    this.keysSinceSave = keys;
    this.options.onFilterRebuilt?.({ reason, keys, elapsedMs: performance.now() - started });
  }

  /** Declares a loaded filter complete: the caller has added every key stored after its coveredSeq. */
  markFilterComplete(): void {
    if (this.filter !== null) this.filterComplete = true;
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
    if (this.keysSinceSave < FILTER_SAVE_EVERY_KEYS && nowMs - this.lastSaveMs < FILTER_SAVE_EVERY_MS) return;
    this.saving = true;
    this.keysSinceSave = 0;
    this.lastSaveMs = nowMs;
    // A copy (one memcpy of the filter) so that the file holds exactly the keys up to checkpointSeq.
    const image = KeyFilter.encode(Buffer.from(this.filter.bits), checkpointSeq, this.indexId);
    KeyFilter.writeDurablyInBackground(filterPath, image, () => !this.closed)
      .catch(() => {
        // A failed save costs a longer replay (or a rebuild) at the next start, nothing else.
        this.keysSinceSave = FILTER_SAVE_EVERY_KEYS;
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
