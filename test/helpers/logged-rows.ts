import fs from 'node:fs';
import path from 'node:path';
import { IndexStore, type IndexCounters, type IndexRow } from '../../src/index/store';
import type { EventRow } from '../../src/wal/event-row';
import { encodeRecord } from '../../src/wal/record';
import { segmentName } from '../../src/wal/segments';

/**
 * The log directory next to an index file (`<dir of index>/wal`), as a data dir lays them out:
 * store-level tests open the store with it so that it reads bodies from a real log.
 */
export function walDirOf(databasePath: string): string {
  return path.join(path.dirname(databasePath), 'wal');
}

/**
 * Writes each row's body as the log record of its seq (format 2 when it has receivedMs) into
 * the log `walDir`, in a segment named for the first row's seq (appended to when
 * it exists), and returns the rows with the position the index keeps. The index only points
 * into the log, so a store-level test writes its rows here before it applies them.
 */
export function logRows<T extends EventRow>(walDir: string, rows: T[]): T[] {
  if (rows.length === 0) return rows;
  fs.mkdirSync(walDir, { recursive: true });
  const segment = rows[0]!.seq;
  const file = path.join(walDir, segmentName(segment));
  let offset = fs.existsSync(file) ? fs.statSync(file).size : 0;
  const lines: string[] = [];
  const positioned = rows.map((row) => {
    const line = encodeRecord(row.seq, row.body, row.receivedMs ?? null);
    const length = Buffer.byteLength(line);
    lines.push(line);
    const position = { segment, offset, length };
    offset += length;
    return { ...row, position };
  });
  fs.appendFileSync(file, lines.join(''));
  return positioned;
}

/** Opens an index whose log lies next to it (see walDirOf), as a data dir lays them out. */
export function openTestStore(databasePath: string, options: ConstructorParameters<typeof IndexStore>[1] = {}): IndexStore {
  return new IndexStore(databasePath, { walDir: walDirOf(databasePath), ...options });
}

/** IndexStore.applyBatch of rows first written to the store's log (see logRows). */
export function applyLogged(store: IndexStore, rows: IndexRow[], duplicates = 0, conflicts = 0): number {
  return store.applyBatch(logRows(walDirOfStore(store), rows), duplicates, conflicts);
}

/** IndexStore.appendNewRows of rows first written to the store's log (see logRows). */
export function appendLogged(store: IndexStore, rows: IndexRow[], duplicates = 0, conflicts = 0): IndexCounters {
  return store.appendNewRows(logRows(walDirOfStore(store), rows), duplicates, conflicts);
}

function walDirOfStore(store: IndexStore): string {
  if (store.walDir === null) throw new Error('test store opened without its log: use openTestStore');
  return store.walDir;
}
