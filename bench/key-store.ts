import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KeyFilter } from '../src/index/key-filter';
import { dedupKeyOf, eventDigestOf } from '../src/index/key-hash';
import { KEY_STORE_SCHEMA, KeyStore, migrateKeyLayout } from '../src/index/key-store';

/**
 * The key store alone under random keys: insert rate per million keys (batches of 2000 in
 * one transaction each, the consumer's shape) with the upkeep (merges of generations) run
 * beside it as the server's timer does (steps until it is idle, after each batch: so the
 * rate includes the merges' cost), lookup cost for new and known keys, the filter rebuild
 * from the table, bytes per key and RSS. argv[2]: keys (default 10M).
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
  migrateKeyLayout(db);
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
  let maintenanceMs = 0;
  let maintenanceStepMaxMs = 0;
  for (let seq = 1; seq <= total; seq += batch) {
    insert(seq);
    for (;;) {
      const stepStarted = performance.now();
      const handled = store.maintenanceStep();
      const stepMs = performance.now() - stepStarted;
      maintenanceMs += stepMs;
      maintenanceStepMaxMs = Math.max(maintenanceStepMaxMs, stepMs);
      if (handled === null) break;
    }
    if ((seq + batch - 1) % 1_000_000 === 0) {
      const now = performance.now();
      const keys = seq + batch - 1;
      const cpu = process.cpuUsage(cpuStart);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      cpuStart = process.cpuUsage();
      process.stdout.write(
        `${JSON.stringify({ keys, insertsPerSecond: Math.round(1_000_000 / ((now - windowStart) / 1000)), insertsPerCpuSecond: Math.round(1_000_000 / cpuSeconds), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`,
      );
      windowStart = now;
    }
  }
  // Lookups: new keys (filter answers) and known keys of the generations (filter + one seek per generation until found).
  const probes = 100_000;
  let started = performance.now();
  for (let i = 0; i < probes; i += 1) store.lookup(dedupKeyOf('orders', `new-${i}`));
  const newLookupUs = ((performance.now() - started) * 1000) / probes;
  const known = db.prepare('SELECT key FROM key_rows WHERE seq % 97 = 0 LIMIT 100000').pluck().all() as Buffer[];
  started = performance.now();
  for (const key of known) store.lookup(key);
  const knownLookupUs = ((performance.now() - started) * 1000) / known.length;
  // Recent keys (the usual retry): level 0, in memory, confirmed by one read of key_log by seq.
  const recent = db.prepare('SELECT key FROM key_log ORDER BY seq DESC LIMIT 100000').pluck().all() as Buffer[];
  started = performance.now();
  for (const key of recent) store.lookup(key);
  const recentLookupUs = recent.length === 0 ? 0 : ((performance.now() - started) * 1000) / recent.length;
  const level0 = store.levelZeroStats();
  // Start-up: a second store on the file loads level 0 (key_log) into memory at its first lookup.
  const reopened = new KeyStore(db, { filterBytes: 0, filterPath: null, horizonMs: 0 }, true);
  started = performance.now();
  reopened.lookup(recent[0] ?? known[0]!);
  const level0LoadMs = performance.now() - started;
  started = performance.now();
  const hashUs = (() => {
    for (let i = 0; i < probes; i += 1) dedupKeyOf('orders', `evt-${i}-abcdefgh`);
    return ((performance.now() - started) * 1000) / probes;
  })();
  const generations = store.generations().map((g) => `${g.level}:${g.keys}`);
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
      generations,
      maintenanceSeconds: Math.round(maintenanceMs / 10) / 100,
      maintenanceStepMaxMs: Math.round(maintenanceStepMaxMs),
      bytesPerKey: Math.round((bytes / total) * 10) / 10,
      fileMb: Math.round(bytes / 2 ** 20),
      hashUs: Math.round(hashUs * 100) / 100,
      newLookupUs: Math.round(newLookupUs * 100) / 100,
      knownLookupUs: Math.round(knownLookupUs * 100) / 100,
      recentLookupUs: Math.round(recentLookupUs * 100) / 100,
      level0Keys: level0.keys + level0.sealedKeys,
      level0BytesPerKey:
        level0.keys + level0.sealedKeys === 0 ? 0 : Math.round((level0.bytes / (level0.keys + level0.sealedKeys)) * 10) / 10,
      level0LoadMs: Math.round(level0LoadMs),
      filterRebuildSeconds: Math.round(rebuildSeconds * 100) / 100,
      filterLoadSeconds: Math.round(loadSeconds * 1000) / 1000,
      filterLoaded: 'filter' in loaded,
      maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    })}\n`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main();
