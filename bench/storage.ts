import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import type { ServerProcess } from '../test/harness/server-process';
import {
  fmt,
  freshDir,
  getStats,
  loadAverage,
  log,
  median,
  removeDir,
  rssMb,
  startReady,
  waitIndexed,
  type BenchStats,
  type Report,
  type Row,
} from './common';
import { cpuMicrosPerEvent, cpuSeconds, runWrk, type WrkResult } from './wrk';

/**
 * The storage benchmark of issue 10 (`npm run bench -- --only=storage [--events=10000000]`):
 * N events published with re-sends, with retention off and again with RETENTION_BYTES set;
 * RSS sampled over the run; ready time after a clean restart and after kill -9; time-query
 * and newest-first p99; disk per event of log, index and keys. It uses only HTTP, /stats
 * and the files of the data dir, so it runs on any version of the storage.
 */

/** What the storage workload takes from the benchmark's options. */
export interface StorageOptions {
  storageEvents: number;
  retentionBytes: number;
  rounds: number;
  durationSeconds: number;
  resendPercent: number;
  batchSize: number;
}

/** First event time of bench/wrk/publish.lua (its n-th event has this + 7 n ms). */
const WRK_EPOCH_MS = 1_760_000_000_000;
const WRK_STEP_MS = 7;
const SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024;

/** Bytes on disk (allocated blocks, as du counts them) of the data dir, by part. */
interface DiskUse {
  log: number;
  index: number;
  keys: number;
  other: number;
}

function diskUse(dataDir: string): DiskUse {
  const use: DiskUse = { log: 0, index: 0, keys: 0, other: 0 };
  const walk = (dir: string, part: keyof DiskUse | null): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const name = entry.name.toLowerCase();
      const which: keyof DiskUse =
        part ??
        // The saved key filter (`index.db.keys-filter`) belongs to the keys, not to the index file.
        (name === 'wal'
          ? 'log'
          : name.includes('keys-filter')
            ? 'keys'
            : name.startsWith('index')
              ? 'index'
              : name.includes('key')
                ? 'keys'
                : 'other');
      if (entry.isDirectory()) walk(full, which);
      else if (entry.isFile()) use[which] += fs.statSync(full).blocks * 512;
    }
  };
  walk(dataDir, null);
  return use;
}

/**
 * Bytes of the dedup key tables inside the index file (SQLite's dbstat: pages of each
 * B-tree), moved from `index` to `keys`; 0 when the file or the tables are not there. The
 * server may be running: a read-only connection reads the last committed state.
 */
function moveKeyTables(dataDir: string, use: DiskUse): void {
  const file = path.join(dataDir, 'index.db');
  if (!fs.existsSync(file)) return;
  const db = new Database(file, { readonly: true });
  try {
    const bytes = Number(
      db
        .prepare("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ('key_rows', 'key_gens', 'key_log', 'keys', 'deletions')")
        .pluck()
        .get(),
    );
    const moved = Math.min(bytes, use.index);
    use.index -= moved;
    use.keys += moved;
  } catch {
    // An index of another version without these tables: the split stays as du sees it.
  } finally {
    db.close();
  }
}

/** Events the store holds now: indexed minus deleted by retention (when this version reports it). */
function storedEvents(stats: BenchStats): number {
  return stats.unique_processed - (stats.expired_events ?? 0);
}

/** Publishes `events` events (re-sends included) with wrk, batched, sampling the server's RSS every second. */
async function publishAll(
  server: ServerProcess,
  options: StorageOptions,
  prefix: string,
): Promise<{ wrk: WrkResult; rss: number[]; cpuPerEvent: number; indexedSeconds: number }> {
  const rss: number[] = [];
  const pid = server.child.pid!;
  const sampler = setInterval(() => rss.push(rssMb(pid)), 1000);
  const cpuBefore = cpuSeconds(pid);
  const receivedBefore = await getStats(server.url);
  const target = receivedBefore.accepted + receivedBefore.duplicate_dropped + options.storageEvents;
  try {
    const wrk = await runWrk({
      url: server.url,
      script: 'publish',
      args: [prefix, String(options.batchSize), String(options.resendPercent), String(options.storageEvents)],
      connections: 16,
      durationSeconds: 24 * 3600,
      // publish.lua stops sending at the count; wrk itself ends on SIGINT once all are answered.
      stopWhen: async () => {
        const now = await getStats(server.url);
        return now.accepted + now.duplicate_dropped >= target;
      },
    });
    const catchUp = await waitIndexed(server.url, 600_000);
    rss.push(rssMb(pid));
    return {
      wrk,
      rss,
      cpuPerEvent: cpuMicrosPerEvent(cpuSeconds(pid) - cpuBefore, options.storageEvents),
      indexedSeconds: wrk.seconds + catchUp,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** Seconds from spawning the server until /health answers 200. */
async function timeReady(dataDir: string, env: Record<string, string>): Promise<{ server: ServerProcess; seconds: number }> {
  const started = performance.now();
  const server = await startReady(dataDir, env);
  return { server, seconds: (performance.now() - started) / 1000 };
}

/** p99 of GET pages over a list of paths, `rounds` runs, 4 connections. */
async function queryP99(
  server: ServerProcess,
  paths: string[],
  options: StorageOptions,
): Promise<{ p99: number; p50: number; perRound: number[] }> {
  const file = path.join(freshDir('paths'), 'paths.txt');
  fs.writeFileSync(file, `${paths.join('\n')}\n`);
  const runs: WrkResult[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    runs.push(
      await runWrk({
        url: server.url,
        script: 'paths',
        args: [file],
        connections: 4,
        durationSeconds: Math.min(options.durationSeconds, 5),
      }),
    );
  }
  return {
    p99: median(runs.map((r) => r.latencyP99Ms)),
    p50: median(runs.map((r) => r.latencyP50Ms)),
    perRound: runs.map((r) => r.latencyP99Ms),
  };
}

function row(target: string, measured: string, goal: string, met: boolean | null, baseline = '-', ratio = '-'): Row {
  return { target, measured, baseline, ratio, goal, met: met === null ? '-' : met ? 'met' : 'not met' };
}

/** One storage run: retention off (`retentionBytes` null) or on. */
async function storageRun(options: StorageOptions, report: Report, retentionBytes: number | null): Promise<void> {
  const label = retentionBytes === null ? 'retention off' : `RETENTION_BYTES=${fmt(retentionBytes)}`;
  const segmentBytes =
    retentionBytes === null
      ? SEGMENT_BYTES_DEFAULT
      : Math.min(SEGMENT_BYTES_DEFAULT, Math.max(1024 * 1024, Math.floor(retentionBytes / 8)));
  const env: Record<string, string> =
    retentionBytes === null ? {} : { RETENTION_BYTES: String(retentionBytes), SEGMENT_BYTES_MAX: String(segmentBytes) };
  const dataDir = freshDir('storage');
  const n = options.storageEvents;
  let server = (await timeReady(dataDir, env)).server;
  try {
    log(`storage (${label}): publishing ${fmt(n)} events, ${options.resendPercent} % re-sends (load ${loadAverage()})`);
    const published = await publishAll(server, options, `storage-${retentionBytes === null ? 'off' : 'on'}`);
    const stats = await getStats(server.url);
    const total = stats.accepted + stats.duplicate_dropped;
    const ackedPerSecond = total / published.wrk.seconds;
    const indexedPerSecond = total / published.indexedSeconds;
    const stored = storedEvents(stats);
    const rss = published.rss;
    const rssMax = Math.max(...rss);
    const quarter = rss[Math.floor(rss.length / 4)] ?? rss[0]!;
    const end = rss[rss.length - 1]!;
    const flat = end <= quarter * 1.15;
    log(
      `  ${fmt(ackedPerSecond)} ev/s acknowledged, ${fmt(indexedPerSecond)} indexed, RSS max ${fmt(rssMax)} MB, ${published.wrk.non2xx} non-2xx`,
    );
    report.rows.push(
      row(
        `storage, ${label}: sustained ingest of ${fmt(total)} events (${options.batchSize} a request, 16 connections), acknowledged / indexed`,
        `${fmt(ackedPerSecond)} / ${fmt(indexedPerSecond)} ev/s, p99 ${fmt(published.wrk.latencyP99Ms)} ms, ${published.wrk.non2xx} non-2xx, ${fmt(published.cpuPerEvent)} µs CPU/ev`,
        '>= 50,000 ev/s indexed',
        indexedPerSecond >= 50_000,
      ),
    );
    report.rows.push(
      row(
        `storage, ${label}: server RSS over the publish run (sampled every second)`,
        `max ${fmt(rssMax)} MB; at 25 % ${fmt(quarter)} MB, at the end ${fmt(end)} MB (${flat ? 'flat' : 'growing'})`,
        '<= 256 MB, flat',
        rssMax <= 256 && flat,
      ),
    );
    const disk = diskUse(dataDir);
    moveKeyTables(dataDir, disk);
    const perEvent = (bytes: number): string => `${fmt(bytes / Math.max(1, stored))} B`;
    const logged = disk.log;
    const ratio = (disk.log + disk.index + disk.keys) / Math.max(1, logged);
    report.rows.push(
      row(
        `storage, ${label}: disk per stored event (${fmt(stored)} stored${stats.first_seq === undefined ? '' : `, first_seq ${fmt(stats.first_seq)}`})`,
        `log ${perEvent(disk.log)}, index ${perEvent(disk.index)}, keys ${perEvent(disk.keys)}${disk.other > 0 ? `, other ${perEvent(disk.other)}` : ''}; data dir ${fmt((disk.log + disk.index + disk.keys + disk.other) / 1024 ** 2)} MiB`,
        '(log + index + keys) <= 1.5 x log',
        ratio <= 1.5,
        `log ${perEvent(disk.log)}`,
        `${ratio.toFixed(2)} x`,
      ),
    );
    if (retentionBytes !== null) {
      const bound = retentionBytes + segmentBytes;
      const deleted = (stats.first_seq ?? 1) > 1;
      report.rows.push(
        row(
          `storage, ${label}: log within the retention bound plus one segment (SEGMENT_BYTES_MAX ${fmt(segmentBytes)})`,
          `log ${fmt(disk.log / 1024 ** 2)} MiB, bound ${fmt(bound / 1024 ** 2)} MiB; ${deleted ? `deletions ran (first_seq ${fmt(stats.first_seq!)}, expired ${fmt(stats.expired_events ?? 0)})` : 'no deletion seen (/stats has no first_seq > 1: retention absent in this build, or the log never passed the bound)'}`,
          'log <= RETENTION_BYTES + 1 segment',
          disk.log <= bound,
        ),
      );
      const dataDirBytes = disk.log + disk.index + disk.keys + disk.other;
      report.rows.push(
        row(
          `storage, ${label}: data dir within the retention bound plus one segment plus the index and keys`,
          `data dir ${fmt(dataDirBytes / 1024 ** 2)} MiB = log ${fmt(disk.log / 1024 ** 2)} + index ${fmt(disk.index / 1024 ** 2)} + keys ${fmt(disk.keys / 1024 ** 2)} + other ${fmt(disk.other / 1024 ** 2)} MiB; bound ${fmt((bound + disk.index + disk.keys) / 1024 ** 2)} MiB`,
          'data dir <= RETENTION_BYTES + 1 segment + index + keys',
          dataDirBytes <= bound + disk.index + disk.keys,
        ),
      );
    }
    // Ready after a clean stop, three times.
    const clean: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      await server.kill('SIGTERM');
      const ready = await timeReady(dataDir, env);
      server = ready.server;
      clean.push(ready.seconds);
    }
    // Ready after kill -9 the moment a short burst ends (the unindexed tail is what recovery replays).
    const killed: number[] = [];
    const tails: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      await runWrk({
        url: server.url,
        script: 'publish',
        args: [`storage-kill-${round}-${Date.now()}`, String(options.batchSize), '0'],
        connections: 16,
        durationSeconds: 2,
      });
      await server.kill('SIGKILL');
      const ready = await timeReady(dataDir, env);
      server = ready.server;
      killed.push(ready.seconds);
      // The recovery line may reach the pipe a moment after /health says ready.
      const line = await server.waitForOutput(/"recordsReplayed":(\d+)/, 'the recovery log line').catch(() => null);
      tails.push(Number(line?.[1] ?? Number.NaN));
    }
    report.rows.push(
      row(
        `storage, ${label}: ready after a clean restart / after kill -9 (${fmt(storedEvents(await getStats(server.url)))} stored; median of 3)`,
        `${median(clean).toFixed(2)} s / ${median(killed).toFixed(2)} s (records replayed after the kill ${tails.map(fmt).join(', ')})`,
        'clean <= 5 s',
        median(clean) <= 5,
      ),
    );
    report.details.push(
      `storage ${label}: ready after clean restart ${clean.map((s) => s.toFixed(2)).join(', ')} s; after kill -9 ${killed.map((s) => s.toFixed(2)).join(', ')} s`,
    );
    // Time queries over the retained range (retention drops the oldest events first).
    const now = await getStats(server.url);
    const unique = stats.accepted;
    const firstN = Math.max(0, unique - storedEvents(stats));
    const topics = ['auth', 'billing', 'search', 'checkout', 'email', 'audit', 'api', 'jobs'];
    const windows = Array.from({ length: 4000 }, (_, i) => {
      const from = firstN + Math.floor(Math.random() * Math.max(1, unique - firstN - 2000));
      const since = new Date(WRK_EPOCH_MS + from * WRK_STEP_MS).toISOString();
      const until = new Date(WRK_EPOCH_MS + (from + 2000) * WRK_STEP_MS).toISOString();
      return `/events?limit=100&since=${since}&until=${until}${i % 2 === 0 ? `&topic=${topics[i % topics.length]!}` : ''}`;
    });
    const timeQueries = await queryP99(server, windows, options);
    report.rows.push(
      row(
        `storage, ${label}: GET /events page of 100 with since/until (half with a topic), ${fmt(storedEvents(now))} stored, 4 connections`,
        `p99 ${fmt(timeQueries.p99)} ms (p50 ${fmt(timeQueries.p50)} ms)`,
        'p99 <= 20 ms',
        timeQueries.p99 <= 20,
      ),
    );
    const desc = await queryP99(
      server,
      ['/events?order=desc&limit=100', ...topics.map((t) => `/events?order=desc&limit=100&topic=${t}`)],
      options,
    );
    report.rows.push(
      row(
        `storage, ${label}: GET /events?order=desc first page of 100 (with and without a topic)`,
        `p99 ${fmt(desc.p99)} ms (p50 ${fmt(desc.p50)} ms)`,
        'p99 <= 10 ms',
        desc.p99 <= 10,
      ),
    );
    report.details.push(
      `storage ${label}: since/until p99 per round ${timeQueries.perRound.map(fmt).join(', ')} ms; order=desc ${desc.perRound.map(fmt).join(', ')} ms; RSS samples (MB, every s) ${rss.map((r) => Math.round(r)).join(' ')}`,
    );
    if (retentionBytes === null) await readerBesidePublish(server, options, report);
  } finally {
    await server.kill('SIGKILL');
    removeDir(dataDir);
  }
}

/** Publish p99 alone and with a reader looping on a query no index serves (`source=nope`), in the same run (issue 10 item 6). */
async function readerBesidePublish(server: ServerProcess, options: StorageOptions, report: Report): Promise<void> {
  const file = path.join(freshDir('paths'), 'worst.txt');
  fs.writeFileSync(file, '/events?source=nope&limit=100\n');
  const seconds = Math.min(options.durationSeconds, 5);
  const publish = (prefix: string): Promise<WrkResult> =>
    runWrk({ url: server.url, script: 'publish', args: [prefix, '1', '0'], connections: 16, durationSeconds: seconds, delayMs: 10 });
  const alone = await publish(`reader-alone-${Date.now()}`);
  const [beside, reader] = await Promise.all([
    publish(`reader-beside-${Date.now()}`),
    runWrk({ url: server.url, script: 'paths', args: [file], connections: 1, durationSeconds: seconds }),
  ]);
  report.rows.push(
    row(
      'storage: publish p99 (single events, 16 connections, 10 ms apart) with one reader looping on GET /events?source=nope',
      `p99 ${fmt(beside.latencyP99Ms)} ms at ${fmt(beside.okPerSecond)} req/s (reader: ${fmt(reader.okPerSecond)} pages/s, p99 ${fmt(reader.latencyP99Ms)} ms)`,
      'no stall: close to alone',
      null,
      `alone p99 ${fmt(alone.latencyP99Ms)} ms at ${fmt(alone.okPerSecond)} req/s`,
      `${(beside.latencyP99Ms / Math.max(0.001, alone.latencyP99Ms)).toFixed(2)} x`,
    ),
  );
}

/** Both storage runs: retention off, then RETENTION_BYTES. */
export async function benchStorage(options: StorageOptions, report: Report): Promise<void> {
  await storageRun(options, report, null);
  await storageRun(options, report, options.retentionBytes);
}
