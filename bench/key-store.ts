import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KeyFilter } from '../src/index/key-filter';
import { dedupKeyOf, eventDigestOf } from '../src/index/key-hash';
import { KEY_STORE_SCHEMA, KeyStore } from '../src/index/key-store';

/**
 * The keys table alone under random keys: insert rate per million keys (batches of 2000 in
 * one transaction each, the consumer's shape), lookup cost for new and known keys, the
 * filter rebuild from the table, bytes per key and RSS. argv[2]: keys (default 10M).
 * `node dist/bench/key-store.js 10000000`; prints one JSON line per million (wall and CPU
 * rates: on a shared machine the CPU rate is the one that compares) and a summary.
 */
function main(): void {
  const total = Number(process.argv[2] ?? 10_000_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-keys-'));
  const file = path.join(dir, 'index.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -16384');
  db.pragma('wal_autocheckpoint = 8192');
  db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID; ${KEY_STORE_SCHEMA}`);
  const store = new KeyStore(db, { filterBytes: 32 * 1024 * 1024, filterPath: path.join(dir, 'index.db.keys-filter'), horizonMs: 0 }, true);
  store.openFilter(0);
  const batch = 2000;
  const insert = db.transaction((from: number) => {
    for (let seq = from; seq < from + batch; seq += 1) {
      const id = `evt-${seq}-${Math.random().toString(36).slice(2, 10)}`;
      store.put(dedupKeyOf('orders', id), seq, eventDigestOf(id));
    }
    store.commitCount();
  });
  let windowStart = performance.now();
  let cpuStart = process.cpuUsage();
  for (let seq = 1; seq <= total; seq += batch) {
    insert(seq);
    if ((seq + batch - 1) % 1_000_000 === 0) {
      const now = performance.now();
      const keys = seq + batch - 1;
      const cpu = process.cpuUsage(cpuStart);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      cpuStart = process.cpuUsage();
      process.stdout.write(
        `${JSON.stringify({ keys, insertsPerSecond: Math.round(1_000_000 / ((now - windowStart) / 1000)), insertsPerCpuSecond: Math.round(1_000_000 / cpuSeconds), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20) })}\n`,
      );
      windowStart = now;
    }
  }
  // Lookups: new keys (filter answers) and known keys (filter + one table probe).
  const probes = 100_000;
  let started = performance.now();
  for (let i = 0; i < probes; i += 1) store.lookup(dedupKeyOf('orders', `new-${i}`));
  const newLookupUs = ((performance.now() - started) * 1000) / probes;
  const known = db.prepare('SELECT key FROM keys LIMIT 100000 OFFSET 12345').pluck().all() as Buffer[];
  started = performance.now();
  for (const key of known) store.lookup(key);
  const knownLookupUs = ((performance.now() - started) * 1000) / known.length;
  started = performance.now();
  const hashUs = (() => {
    for (let i = 0; i < probes; i += 1) dedupKeyOf('orders', `evt-${i}-abcdefgh`);
    return ((performance.now() - started) * 1000) / probes;
  })();
  store.rebuildFilter('bench', total);
  started = performance.now();
  store.rebuildFilter('bench', total);
  const rebuildSeconds = (performance.now() - started) / 1000;
  store.close(total);
  started = performance.now();
  const loaded = KeyFilter.load(
    path.join(dir, 'index.db.keys-filter'),
    32 * 1024 * 1024,
    Number(db.prepare("SELECT value FROM meta WHERE key = 'index_id'").pluck().get()),
  );
  const loadSeconds = (performance.now() - started) / 1000;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const bytes = fs.statSync(file).size;
  process.stdout.write(
    `${JSON.stringify({
      keys: total,
      bytesPerKey: Math.round((bytes / total) * 10) / 10,
      fileMb: Math.round(bytes / 2 ** 20),
      hashUs: Math.round(hashUs * 100) / 100,
      newLookupUs: Math.round(newLookupUs * 100) / 100,
      knownLookupUs: Math.round(knownLookupUs * 100) / 100,
      filterRebuildSeconds: Math.round(rebuildSeconds * 100) / 100,
      filterLoadSeconds: Math.round(loadSeconds * 1000) / 1000,
      filterLoaded: 'filter' in loaded,
      maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    })}\n`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main();
