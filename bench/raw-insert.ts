import Database from 'better-sqlite3';
import { canonicalEventJson } from '../src/wal/record';
import { benchEvent } from './events';

/**
 * The raw SQLite baseline, run as its own process: better-sqlite3 inserting the same rows
 * the service indexes into the seed's schema (payload plus a unique (topic, event_id)
 * index and a (topic, seq) index), one prepared statement, `batchRows` rows a transaction,
 * journal_mode=WAL, synchronous=NORMAL. Row building is not timed; only the inserts are.
 * argv[2] is {dbPath, prefix, count, batchRows}; prints {rowsPerSecond, seconds}.
 */
export function rawInsertRate(
  dbPath: string,
  prefix: string,
  count: number,
  batchRows: number,
): { rowsPerSecond: number; seconds: number } {
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('temp_store = MEMORY');
  db.pragma('cache_size = -65536');
  db.exec(`
    CREATE TABLE events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, event_id TEXT NOT NULL, source TEXT NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE UNIQUE INDEX events_by_key ON events (topic, event_id);
    CREATE INDEX events_by_topic ON events (topic, seq);
  `);
  const insert = db.prepare('INSERT INTO events (seq, topic, event_id, source, ts_ms, body) VALUES (?, ?, ?, ?, ?, ?)');
  const insertMany = db.transaction((rows: Array<[number, string, string, string, number, string]>) => {
    for (const row of rows) insert.run(...row);
  });
  let seconds = 0;
  for (let start = 0; start < count; start += batchRows) {
    const rows: Array<[number, string, string, string, number, string]> = [];
    for (let i = start; i < Math.min(count, start + batchRows); i += 1) {
      const event = benchEvent(prefix, i);
      rows.push([i + 1, event.topic, event.event_id, event.source, Date.parse(event.timestamp), canonicalEventJson(event)]);
    }
    const started = performance.now();
    insertMany(rows);
    seconds += (performance.now() - started) / 1000;
  }
  db.close();
  return { rowsPerSecond: count / seconds, seconds };
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { dbPath: string; prefix: string; count: number; batchRows: number };
  process.stdout.write(`${JSON.stringify(rawInsertRate(spec.dbPath, spec.prefix, spec.count, spec.batchRows))}\n`);
}
