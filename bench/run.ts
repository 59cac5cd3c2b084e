import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalEventJson, encodeRecord } from '../src/wal/record';
import { segmentName } from '../src/wal/segments';
import { defineOptions, formatHelp, parseOptions, UsageError } from '../src/cli/options';
import { ChildProgram, startServerProcess, type ServerProcess } from '../test/harness/server-process';
import { benchEvent } from './events';
import { BENCH_PROTOCOLS, type BenchProtocol } from './protocol-bodies';
import type { LoadResult, LoadSpec } from './load';

/**
 * `npm run bench`: the service against its baselines, side by side in one invocation.
 * Every workload is driven by autocannon (or a small http driver) in a separate process;
 * the service runs as `node dist/src/main.js` on a fresh data dir. Prints a table of
 * figures and ratios and writes bench/RESULTS.md. `--quick` for a short run, `--full`
 * adds more rounds and the 10-minute memory soak; `--only=a,b` picks workloads.
 */

interface BenchOptions {
  mode: 'quick' | 'default' | 'full';
  rounds: number;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  batchSize: number;
  sustainedEvents: number;
  recoveryEvents: number;
  recoveryRounds: number;
  soakSeconds: number;
  /** Events per second during the soak (2000/s for 10 minutes stores 1.2M events). */
  soakEventsPerSecond: number;
  only: Set<string> | null;
  resultsPath: string;
  /** Extra environment for the service (`--env=INDEX_WORKER=0,INDEX_BATCH_MAX=500`), to measure settings. */
  serviceEnv: Record<string, string>;
  /** `--compare-env=INDEX_WORKER=0`: each round also runs the service with these settings, interleaved (an A/B on a noisy machine). */
  compareEnv: Record<string, string> | null;
}

const BENCH_DIR = path.resolve(__dirname, '../../bench');
const DIST_BENCH = __dirname;
const WORKLOADS = ['single', 'batch', 'latency', 'sustained', 'recovery', 'query', 'soak', 'protocols'];

const BENCH_DESCRIPTION = `Runs the service against its baselines, side by side, and writes the figures to bench/RESULTS.md.
Flags take a value as --name=V or --name V.`;

/** The flags of `npm run bench`; the numbers left out take the preset of the mode (--quick, default, --full). */
export const BENCH_OPTIONS = defineOptions({
  quick: { type: 'boolean', description: 'a short run' },
  full: { type: 'boolean', description: 'more rounds and the 10-minute memory soak' },
  only: { type: 'string', placeholder: 'A,B', description: `only these workloads (${WORKLOADS.join(', ')})` },
  rounds: { type: 'int', placeholder: 'N', min: 1, max: 1000, defaultText: 'preset', description: 'rounds per workload' },
  duration: { type: 'int', placeholder: 'S', min: 1, max: 3600, defaultText: 'preset', description: 'seconds per round' },
  warmup: {
    type: 'int',
    placeholder: 'S',
    min: 0,
    max: 600,
    defaultText: '1 with --quick, else 2',
    description: 'warm-up seconds before a round',
  },
  connections: {
    type: 'int',
    placeholder: 'N',
    default: 64,
    min: 1,
    max: 10_000,
    description: 'concurrent connections of the load generator',
  },
  sustainedEvents: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 100_000_000,
    defaultText: 'preset',
    description: 'events of the sustained workload',
  },
  recoveryEvents: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 100_000_000,
    defaultText: 'preset',
    description: 'events logged before the recovery workload',
  },
  recoveryRounds: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 1000,
    defaultText: 'preset',
    description: 'rounds of the recovery workload',
  },
  soak: {
    type: 'int',
    placeholder: 'S',
    min: 0,
    max: 7 * 24 * 3600,
    defaultText: '600 with --full, else 0',
    description: 'seconds of the memory soak',
  },
  soakRate: { type: 'int', placeholder: 'N', default: 2000, min: 1, max: 1_000_000, description: 'events per second during the soak' },
  out: { type: 'string', placeholder: 'FILE', defaultText: 'bench/RESULTS.md', description: 'where the results go' },
  env: { type: 'string', placeholder: 'K=V,...', description: 'extra environment for the service, to measure settings' },
  compareEnv: { type: 'string', placeholder: 'K=V,...', description: 'each round also runs the service with these settings, interleaved' },
  help: { type: 'boolean', short: 'h', description: 'this help' },
});

function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseOptions(BENCH_OPTIONS, argv);
  const mode = values.full ? 'full' : values.quick ? 'quick' : 'default';
  const presets = {
    quick: { rounds: 3, durationSeconds: 3, sustainedEvents: 30_000, recoveryEvents: 100_000, recoveryRounds: 3, soakSeconds: 0 },
    default: { rounds: 3, durationSeconds: 8, sustainedEvents: 200_000, recoveryEvents: 1_000_000, recoveryRounds: 3, soakSeconds: 0 },
    full: { rounds: 5, durationSeconds: 15, sustainedEvents: 500_000, recoveryEvents: 1_000_000, recoveryRounds: 3, soakSeconds: 600 },
  }[mode];
  const only = values.only;
  const unknown = only?.split(',').filter((name) => !WORKLOADS.includes(name)) ?? [];
  if (unknown.length > 0) throw new UsageError(`--only: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.join(', ')}`);
  return {
    mode,
    rounds: values.rounds ?? presets.rounds,
    durationSeconds: values.duration ?? presets.durationSeconds,
    warmupSeconds: values.warmup ?? (mode === 'quick' ? 1 : 2),
    connections: values.connections,
    batchSize: 100,
    sustainedEvents: values.sustainedEvents ?? presets.sustainedEvents,
    recoveryEvents: values.recoveryEvents ?? presets.recoveryEvents,
    recoveryRounds: values.recoveryRounds ?? presets.recoveryRounds,
    soakSeconds: values.soak ?? presets.soakSeconds,
    soakEventsPerSecond: values.soakRate,
    only: only === undefined ? null : new Set(only.split(',')),
    resultsPath: values.out ?? path.join(BENCH_DIR, 'RESULTS.md'),
    serviceEnv: parseEnv(values.env ?? ''),
    compareEnv: values.compareEnv === undefined ? null : parseEnv(values.compareEnv),
  };
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
}

function wanted(options: BenchOptions, workload: string): boolean {
  if (options.only !== null) return options.only.has(workload);
  // The protocols comparison is long (7 protocols x 2 batch sizes x rounds): only when asked for.
  if (workload === 'protocols') return false;
  return workload !== 'soak' || options.soakSeconds > 0;
}

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** fdatasync latency of a small append on the disk the service writes to, now (the machine's I/O is shared). */
function probeFsync(dir: string, samples = 50): { p50: number; p99: number } {
  const file = path.join(dir, 'fsync-probe.dat');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(256, 0x61);
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i += 1) {
      const started = performance.now();
      fs.writeSync(fd, chunk, 0, chunk.length, i * chunk.length);
      fs.fdatasyncSync(fd);
      times.push(performance.now() - started);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(samples / 2)]!, p99: times[Math.min(samples - 1, Math.floor(samples * 0.99))]! };
}

const fsyncProbes: string[] = [];
/** Records the fsync latency and load average before a workload, for the results. */
function noteMachine(label: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-bench-probe-'));
  try {
    const { p50, p99 } = probeFsync(dir);
    fsyncProbes.push(`${label}: load ${loadAverage()}, fdatasync p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
    log(`machine before ${label}: load ${loadAverage()}, fdatasync p50 ${p50.toFixed(2)} ms p99 ${p99.toFixed(2)} ms`);
  } finally {
    removeDir(dir);
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs a compiled bench script as a child process and parses the one JSON line it prints. */
async function runChild<T>(script: string, spec: unknown): Promise<T> {
  const program = ChildProgram.node(path.join(DIST_BENCH, script), [JSON.stringify(spec)], { env: process.env });
  const exit = await program.exited;
  if (exit.code !== 0) throw new Error(`${script} exited ${exit.code}: ${program.stderr()}`);
  return JSON.parse(program.stdout().trim().split('\n').pop()!) as T;
}

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return runChild<LoadResult>('load.js', spec);
}

/** The bare express baseline as a child process. */
async function startBareServer(): Promise<{ url: string; stop: () => void }> {
  const program = ChildProgram.node(path.join(DIST_BENCH, 'bare-server.js'), [], { env: process.env });
  await program.waitUntil(() => program.stdout().includes('\n') || !program.running, 30_000, 'the bare server to listen');
  if (!program.running) throw new Error(`bare server exited: ${program.stderr()}`);
  const { port } = JSON.parse(program.stdout().split('\n')[0]!) as { port: number };
  return { url: `http://127.0.0.1:${port}`, stop: () => program.killNow() };
}

const tempDirs: string[] = [];
function freshDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `logagg-bench-${label}-`));
  tempDirs.push(dir);
  return dir;
}

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

let serviceEnv: Record<string, string> = {};

/** The durable service on a fresh data dir (info logs: nothing is logged per request). */
async function startDurable(
  label: string,
  dataDir = freshDir(label),
  extraEnv: Record<string, string> = {},
): Promise<{ server: ServerProcess; dataDir: string }> {
  const server = await startServerProcess(dataDir, { LOG_LEVEL: 'info', ...serviceEnv, ...extraEnv });
  return { server, dataDir };
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Writes `count` records of bench events straight into a log directory with the service's framing. */
function writeWal(walDir: string, prefix: string, count: number, segmentBytesMax = 64 * 1024 * 1024): void {
  fs.mkdirSync(walDir, { recursive: true });
  let fd = -1;
  let size = 0;
  let parts: string[] = [];
  let partsBytes = 0;
  const flush = (): void => {
    if (parts.length === 0) return;
    fs.writeSync(fd, parts.join(''));
    parts = [];
    partsBytes = 0;
  };
  for (let i = 0; i < count; i += 1) {
    const seq = i + 1;
    const line = encodeRecord(seq, canonicalEventJson(benchEvent(prefix, i)));
    const bytes = Buffer.byteLength(line);
    if (fd === -1 || size + bytes > segmentBytesMax) {
      flush();
      if (fd !== -1) {
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      }
      fd = fs.openSync(path.join(walDir, segmentName(seq)), 'w');
      size = 0;
    }
    parts.push(line);
    partsBytes += bytes;
    size += bytes;
    if (partsBytes > 4 * 1024 * 1024) flush();
  }
  flush();
  if (fd !== -1) {
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
}

interface Row {
  target: string;
  measured: string;
  baseline: string;
  ratio: string;
  goal: string;
  met: string;
}

interface Report {
  rows: Row[];
  details: string[];
}

function ratioRow(target: string, measured: number, baseline: number, unit: string, goal: number, extra = ''): Row {
  const ratio = measured / baseline;
  return {
    target,
    measured: `${fmt(measured)} ${unit}${extra}`,
    baseline: `${fmt(baseline)} ${unit}`,
    ratio: `${ratio.toFixed(2)} x`,
    goal: `>= ${goal} x`,
    met: ratio >= goal ? 'yes' : 'NO',
  };
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(n >= 10 ? 1 : 2);
}

/** Durable single-event and batched publish against the bare endpoint, alternating, `rounds` times. */
async function benchThroughput(options: BenchOptions, report: Report, medians: Record<string, number>): Promise<void> {
  const bare = await startBareServer();
  try {
    for (const kind of ['single', 'batch'] as const) {
      if (!wanted(options, kind)) continue;
      const bareRuns: LoadResult[] = [];
      const durableRuns: LoadResult[] = [];
      const compareRuns: LoadResult[] = [];
      for (let round = 0; round < options.rounds; round += 1) {
        const spec = {
          mode: kind,
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          batchSize: options.batchSize,
          warmupSeconds: options.warmupSeconds,
        };
        log(`${kind} round ${round + 1}: bare (load ${loadAverage()})`);
        bareRuns.push(await runLoad({ ...spec, url: bare.url, prefix: `bare-${kind}-${round}` }));
        log(`${kind} round ${round + 1}: durable (load ${loadAverage()})`);
        const { server, dataDir } = await startDurable(kind);
        try {
          durableRuns.push(await runLoad({ ...spec, url: server.url, prefix: `durable-${kind}-${round}` }));
        } finally {
          await server.kill('SIGKILL');
          removeDir(dataDir);
        }
        if (options.compareEnv !== null) {
          const other = await startDurable(kind, freshDir(kind), options.compareEnv);
          try {
            compareRuns.push(await runLoad({ ...spec, url: other.server.url, prefix: `compare-${kind}-${round}` }));
          } finally {
            await other.server.kill('SIGKILL');
            removeDir(other.dataDir);
          }
        }
        log(
          `  bare ${fmt(bareRuns[round]!.eventsPerSecond)} ev/s, durable ${fmt(durableRuns[round]!.eventsPerSecond)} ev/s (non2xx ${durableRuns[round]!.non2xx})${compareRuns[round] ? `, with ${JSON.stringify(options.compareEnv)} ${fmt(compareRuns[round]!.eventsPerSecond)} ev/s` : ''}`,
        );
      }
      const key = kind === 'single' ? 'requestsPerSecond' : 'eventsPerSecond';
      const bareMedian = median(bareRuns.map((r) => r[key]));
      const durableMedian = median(durableRuns.map((r) => r[key]));
      medians[`${kind}Durable`] = durableMedian;
      if (kind === 'single') {
        report.rows.push(
          ratioRow(
            `durable single-event publish, ${options.connections} connections (requests/s)`,
            durableMedian,
            bareMedian,
            'req/s',
            0.6,
          ),
        );
      } else {
        report.rows.push(
          ratioRow(`durable batched publish, ${options.batchSize} events/request (events/s)`, durableMedian, bareMedian, 'ev/s', 0.5),
        );
      }
      if (options.compareEnv !== null) {
        report.rows.push(
          ratioRow(
            `  the same with ${JSON.stringify(options.compareEnv)} (interleaved)`,
            median(compareRuns.map((r) => r[key])),
            bareMedian,
            kind === 'single' ? 'req/s' : 'ev/s',
            kind === 'single' ? 0.6 : 0.5,
          ),
        );
        report.details.push(`${kind} with ${JSON.stringify(options.compareEnv)}: ${compareRuns.map((r) => fmt(r[key])).join(', ')}`);
      }
      report.details.push(
        `${kind}: bare ${key} per round ${bareRuns.map((r) => fmt(r[key])).join(', ')}; durable ${durableRuns.map((r) => fmt(r[key])).join(', ')}; ` +
          `durable p99 ${durableRuns.map((r) => r.latencyP99Ms).join(', ')} ms; durable non-2xx ${durableRuns.map((r) => r.non2xx).join(', ')}`,
      );
    }
  } finally {
    bare.stop();
  }
}

/** Batch sizes of the protocols comparison, and its connections (16 x 1000 events stays far below QUEUE_MAX_SIZE). */
const PROTOCOL_BATCH_SIZES = [100, 1000] as const;
const PROTOCOL_CONNECTIONS = 16;
/** Events encoded before each protocol run (warm-up and measurement draw from them). */
const PROTOCOL_POOL_EVENTS = 250_000;

/**
 * Events per second of each ingest protocol carrying the same records, beside POST /publish
 * in the same run: per round and batch size one fresh service, the protocols in a rotated
 * order (so none always runs on the fullest index). Goal: each at least 0.7x /publish.
 */
async function benchProtocols(options: BenchOptions, report: Report): Promise<void> {
  for (const batchSize of PROTOCOL_BATCH_SIZES) {
    const runs = new Map<BenchProtocol, number[]>(BENCH_PROTOCOLS.map((p) => [p, []]));
    const nonOk = new Map<BenchProtocol, number[]>(BENCH_PROTOCOLS.map((p) => [p, []]));
    for (let round = 0; round < options.rounds; round += 1) {
      const { server, dataDir } = await startDurable(`protocols-${batchSize}`);
      try {
        const order = BENCH_PROTOCOLS.map((_, i) => BENCH_PROTOCOLS[(i + round) % BENCH_PROTOCOLS.length]!);
        for (const protocol of order) {
          const spec = {
            mode: 'protocol' as const,
            protocol,
            batchSize,
            poolEvents: PROTOCOL_POOL_EVENTS,
            connections: PROTOCOL_CONNECTIONS,
            durationSeconds: options.durationSeconds,
            warmupSeconds: options.warmupSeconds,
          };
          const result = await runLoad({ ...spec, url: server.url, prefix: `${protocol}-${batchSize}-${round}` });
          // Only 2xx answers count; a 503 (backlog over QUEUE_MAX_SIZE while the index catches up) is backpressure, shown per round.
          nonOk.get(protocol)!.push(result.non2xx + result.errors);
          runs.get(protocol)!.push(result.eventsPerSecond);
          log(
            `protocols x${batchSize} round ${round + 1}: ${protocol} ${fmt(result.eventsPerSecond)} ev/s (p99 ${result.latencyP99Ms} ms, ${result.liveBodies} bodies encoded live, ${result.non2xx} non-2xx, load ${loadAverage()})`,
          );
        }
      } finally {
        await server.kill('SIGKILL');
        removeDir(dataDir);
      }
    }
    const publishMedian = median(runs.get('publish')!);
    for (const protocol of BENCH_PROTOCOLS) {
      if (protocol === 'publish') continue;
      report.rows.push(
        ratioRow(
          `${protocol}, ${batchSize} records/request, ${PROTOCOL_CONNECTIONS} connections (events/s) vs /publish`,
          median(runs.get(protocol)!),
          publishMedian,
          'ev/s',
          0.7,
        ),
      );
    }
    report.details.push(
      `protocols x${batchSize}: ${BENCH_PROTOCOLS.map((p) => `${p} ${runs.get(p)!.map(fmt).join(', ')}`).join('; ')} ev/s per round`,
    );
    report.details.push(
      `protocols x${batchSize} non-2xx answers (503 backpressure) per round: ${BENCH_PROTOCOLS.map((p) => `${p} ${nonOk.get(p)!.join(', ')}`).join('; ')}`,
    );
  }
}

/** Publish latency at half the measured maximum single-event throughput. */
async function benchLatency(options: BenchOptions, report: Report, medians: Record<string, number>): Promise<void> {
  let maxRate = medians.singleDurable;
  if (maxRate === undefined) {
    const { server, dataDir } = await startDurable('latency-max');
    try {
      maxRate = (
        await runLoad({
          mode: 'single',
          url: server.url,
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          prefix: 'latency-max',
        })
      ).requestsPerSecond;
    } finally {
      await server.kill('SIGKILL');
      removeDir(dataDir);
    }
  }
  const rate = Math.max(1, Math.round(maxRate / 2));
  const runs: LoadResult[] = [];
  const bareRuns: LoadResult[] = [];
  // The bare endpoint at the same rate shows what the shared machine alone adds to latency.
  const bare = await startBareServer();
  try {
    for (let round = 0; round < options.rounds; round += 1) {
      const spec = {
        mode: 'single' as const,
        connections: options.connections,
        durationSeconds: options.durationSeconds,
        overallRate: rate,
        warmupSeconds: options.warmupSeconds,
      };
      log(`latency round ${round + 1} at ${rate} req/s (load ${loadAverage()})`);
      bareRuns.push(await runLoad({ ...spec, url: bare.url, prefix: `latency-bare-${round}` }));
      const { server, dataDir } = await startDurable('latency');
      try {
        runs.push(await runLoad({ ...spec, url: server.url, prefix: `latency-${round}` }));
      } finally {
        await server.kill('SIGKILL');
        removeDir(dataDir);
      }
    }
  } finally {
    bare.stop();
  }
  const p99 = median(runs.map((r) => r.latencyP99Ms));
  const p50 = median(runs.map((r) => r.latencyP50Ms));
  const bareP99 = median(bareRuns.map((r) => r.latencyP99Ms));
  const bareP50 = median(bareRuns.map((r) => r.latencyP50Ms));
  log(`  latency at ${rate} req/s: p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms (bare p50 ${fmt(bareP50)} ms, p99 ${fmt(bareP99)} ms)`);
  report.rows.push({
    target: `publish latency at half of max throughput (${rate} req/s, ${options.connections} connections)`,
    measured: `p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms`,
    baseline: `bare p50 ${fmt(bareP50)} ms, p99 ${fmt(bareP99)} ms`,
    ratio: '-',
    goal: 'report',
    met: '-',
  });
  report.details.push(
    `latency: durable p99 per round ${runs.map((r) => r.latencyP99Ms).join(', ')} ms at ${runs.map((r) => fmt(r.requestsPerSecond)).join(', ')} req/s; bare p99 ${bareRuns.map((r) => r.latencyP99Ms).join(', ')} ms`,
  );
}

/** Acknowledged and indexed (/stats caught up) against raw better-sqlite3 inserts of the same rows. */
async function benchSustained(options: BenchOptions, report: Report): Promise<void> {
  const serviceRuns: LoadResult[] = [];
  const compareRuns: LoadResult[] = [];
  const rawRuns: number[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    const prefix = `sustained-${round}`;
    if (options.compareEnv !== null) {
      const other = await startDurable('sustained', freshDir('sustained'), options.compareEnv);
      try {
        compareRuns.push(
          await runLoad({
            mode: 'sustained',
            url: other.server.url,
            connections: 16,
            durationSeconds: 0,
            batchSize: options.batchSize,
            events: options.sustainedEvents,
            prefix,
          }),
        );
      } finally {
        await other.server.kill('SIGKILL');
        removeDir(other.dataDir);
      }
    }
    log(`sustained round ${round + 1}: service, ${options.sustainedEvents} events (load ${loadAverage()})`);
    const { server, dataDir } = await startDurable('sustained');
    try {
      serviceRuns.push(
        await runLoad({
          mode: 'sustained',
          url: server.url,
          connections: 16,
          durationSeconds: 0,
          batchSize: options.batchSize,
          events: options.sustainedEvents,
          prefix,
        }),
      );
    } finally {
      await server.kill('SIGKILL');
      removeDir(dataDir);
    }
    log(`sustained round ${round + 1}: raw insert (load ${loadAverage()})`);
    const rawDir = freshDir('raw');
    try {
      rawRuns.push(
        (
          await runChild<{ rowsPerSecond: number }>('raw-insert.js', {
            dbPath: path.join(rawDir, 'raw.db'),
            prefix,
            count: options.sustainedEvents,
            batchRows: 2000,
          })
        ).rowsPerSecond,
      );
    } finally {
      removeDir(rawDir);
    }
    log(`  service ${fmt(serviceRuns[round]!.eventsPerSecond)} ev/s indexed, raw ${fmt(rawRuns[round]!)} rows/s`);
  }
  const service = median(serviceRuns.map((r) => r.eventsPerSecond));
  report.rows.push(
    ratioRow(
      `sustained end-to-end, ${fmt(options.sustainedEvents)} events acknowledged and indexed (events/s)`,
      service,
      median(rawRuns),
      'ev/s',
      0.8,
    ),
  );
  if (options.compareEnv !== null) {
    report.rows.push(
      ratioRow(
        `  the same with ${JSON.stringify(options.compareEnv)} (interleaved)`,
        median(compareRuns.map((r) => r.eventsPerSecond)),
        median(rawRuns),
        'ev/s',
        0.8,
      ),
    );
    report.details.push(
      `sustained with ${JSON.stringify(options.compareEnv)}: ${compareRuns.map((r) => fmt(r.eventsPerSecond)).join(', ')} ev/s`,
    );
  }
  report.details.push(
    `sustained: service indexed ev/s per round ${serviceRuns.map((r) => fmt(r.eventsPerSecond)).join(', ')} (acked after ${serviceRuns.map((r) => r.ackedSeconds!.toFixed(2)).join(', ')} s, indexed after ${serviceRuns.map((r) => r.indexedSeconds!.toFixed(2)).join(', ')} s, 503 retries ${serviceRuns.map((r) => r.non2xx).join(', ')}); raw rows/s ${rawRuns.map(fmt).join(', ')}`,
  );
}

/** Recovery of a log into an empty index vs raw inserts; then GET /events p99 and RSS on the full store. */
async function benchRecoveryAndQuery(options: BenchOptions, report: Report): Promise<void> {
  const dataDir = freshDir('recovery');
  const walDir = path.join(dataDir, 'wal');
  const count = options.recoveryEvents;
  log(`writing ${count} records to a log (load ${loadAverage()})`);
  writeWal(walDir, 'recovery', count);
  const clearIndex = (): void => {
    for (const name of fs.readdirSync(dataDir)) if (name.startsWith('index.db')) fs.rmSync(path.join(dataDir, name));
  };
  if (wanted(options, 'recovery')) {
    const recoveryRuns: Array<{ seconds: number; recordsReplayed: number; maxRssMb: number }> = [];
    const rawRuns: number[] = [];
    for (let round = 0; round < options.recoveryRounds; round += 1) {
      clearIndex();
      log(`recovery round ${round + 1}: replay ${count} records (load ${loadAverage()})`);
      const run = await runChild<{ seconds: number; recordsReplayed: number; maxRssMb: number }>('recover.js', {
        dataDir,
        env: serviceEnv,
      });
      if (run.recordsReplayed !== count) throw new Error(`recovery replayed ${run.recordsReplayed} of ${count}`);
      recoveryRuns.push(run);
      log(`recovery round ${round + 1}: raw insert (load ${loadAverage()})`);
      const rawDir = freshDir('raw');
      try {
        rawRuns.push(
          (
            await runChild<{ rowsPerSecond: number }>('raw-insert.js', {
              dbPath: path.join(rawDir, 'raw.db'),
              prefix: 'recovery',
              count,
              batchRows: 2000,
            })
          ).rowsPerSecond,
        );
      } finally {
        removeDir(rawDir);
      }
      log(`  recovery ${run.seconds.toFixed(2)} s = ${fmt(count / run.seconds)} rows/s, raw ${fmt(rawRuns[round]!)} rows/s`);
    }
    const seconds = median(recoveryRuns.map((r) => r.seconds));
    report.rows.push(
      ratioRow(
        `recovery: replay ${fmt(count)} logged events into an empty index (rows/s)`,
        count / seconds,
        median(rawRuns),
        'rows/s',
        0.8,
        ` (${seconds.toFixed(1)} s)`,
      ),
    );
    report.rows.push({
      target: `recovery time for ${fmt(count)} events`,
      measured: `${seconds.toFixed(1)} s`,
      baseline: '-',
      ratio: '-',
      goal: '< 30 s',
      met: seconds < 30 ? 'yes' : 'NO',
    });
    report.details.push(
      `recovery: seconds per round ${recoveryRuns.map((r) => r.seconds.toFixed(2)).join(', ')}; peak RSS of the recovering process ${recoveryRuns.map((r) => fmt(r.maxRssMb)).join(', ')} MB; raw rows/s ${rawRuns.map(fmt).join(', ')}`,
    );
  } else {
    // The query bench needs an index over the log: let the service build it on startup.
    clearIndex();
  }
  if (wanted(options, 'query')) {
    log(`query: server on ${count} stored events (load ${loadAverage()})`);
    const { server } = await startDurable('query', dataDir);
    try {
      const rssAtStart = rssMb(server.child.pid!);
      const runs: LoadResult[] = [];
      for (let round = 0; round < options.rounds; round += 1) {
        runs.push(
          await runLoad({
            mode: 'query',
            url: server.url,
            connections: 4,
            durationSeconds: options.durationSeconds,
            prefix: 'query',
            seqMax: count,
            warmupSeconds: round === 0 ? options.warmupSeconds : 0,
          }),
        );
      }
      const rssAfter = rssMb(server.child.pid!);
      const p99 = median(runs.map((r) => r.latencyP99Ms));
      report.rows.push({
        target: `GET /events page of 100 with ${fmt(count)} stored, 4 connections (p99)`,
        measured: `${fmt(p99)} ms (p50 ${fmt(median(runs.map((r) => r.latencyP50Ms)))} ms, ${fmt(median(runs.map((r) => r.requestsPerSecond)))} req/s)`,
        baseline: '-',
        ratio: '-',
        goal: '<= 5 ms',
        met: p99 <= 5 ? 'yes' : 'NO',
      });
      report.rows.push({
        target: `server RSS with ${fmt(count)} events stored (after start / after queries)`,
        measured: `${fmt(rssAtStart)} / ${fmt(rssAfter)} MB`,
        baseline: '-',
        ratio: '-',
        goal: '<= 256 MB',
        met: Math.max(rssAtStart, rssAfter) <= 256 ? 'yes' : 'NO',
      });
      report.details.push(`query: p99 per round ${runs.map((r) => r.latencyP99Ms).join(', ')} ms`);
    } finally {
      await server.kill('SIGKILL');
    }
  }
  removeDir(dataDir);
}

/** Ten minutes (by default) of steady batched load at a fixed rate; RSS sampled every 10 s must stay flat and under the bound. */
async function benchSoak(options: BenchOptions, report: Report): Promise<void> {
  const { server, dataDir } = await startDurable('soak');
  const rate = Math.max(1, Math.round(options.soakEventsPerSecond / options.batchSize));
  const samples: Array<[number, number]> = [];
  const started = Date.now();
  const sampler = setInterval(() => samples.push([(Date.now() - started) / 1000, rssMb(server.child.pid!)]), 10_000);
  try {
    log(`soak: ${options.soakSeconds} s at ${rate} requests/s of ${options.batchSize} events (load ${loadAverage()})`);
    const result = await runLoad({
      mode: 'batch',
      url: server.url,
      connections: 8,
      durationSeconds: options.soakSeconds,
      overallRate: rate,
      batchSize: options.batchSize,
      prefix: 'soak',
    });
    clearInterval(sampler);
    samples.push([(Date.now() - started) / 1000, rssMb(server.child.pid!)]);
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as { unique_processed: number; accepted: number };
    const firstMinute = samples.filter(([t]) => t <= 60).map(([, r]) => r);
    const lastMinute = samples.filter(([t]) => t >= options.soakSeconds - 60).map(([, r]) => r);
    const max = Math.max(...samples.map(([, r]) => r));
    report.rows.push({
      target: `memory over a ${Math.round(options.soakSeconds / 60)}-minute sustained run (${fmt(stats.accepted)} events stored)`,
      measured: `RSS first minute ${fmt(median(firstMinute))} MB, last minute ${fmt(median(lastMinute))} MB, max ${fmt(max)} MB`,
      baseline: '-',
      ratio: '-',
      goal: '<= 256 MB, flat',
      met: max <= 256 ? 'yes' : 'NO',
    });
    report.details.push(
      `soak: ${fmt(result.eventsPerSecond)} ev/s acknowledged, non-2xx ${result.non2xx}; RSS samples (s: MB) ${samples.map(([t, r]) => `${Math.round(t)}: ${Math.round(r)}`).join(', ')}`,
    );
  } finally {
    clearInterval(sampler);
    await server.kill('SIGKILL');
    removeDir(dataDir);
  }
}

function renderTable(rows: Row[]): string {
  const header = ['target', 'measured', 'baseline (same run)', 'ratio', 'goal', 'met'];
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${[r.target, r.measured, r.baseline, r.ratio, r.goal, r.met].join(' | ')} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options: BenchOptions;
  try {
    if (parseOptions(BENCH_OPTIONS, argv, { helpFlag: 'help' }).help) {
      const usage = { usage: ['npm run bench -- [options]'], description: BENCH_DESCRIPTION };
      process.stdout.write(`${formatHelp(usage, BENCH_OPTIONS)}\n`);
      return;
    }
    options = parseBenchArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}; see \`npm run bench -- --help\`\n`);
    process.exit(2);
  }
  serviceEnv = options.serviceEnv;
  const report: Report = { rows: [], details: [] };
  const medians: Record<string, number> = {};
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  log(`mode ${options.mode}: ${options.rounds} rounds of ${options.durationSeconds} s, load average ${loadAtStart}`);
  // Results are written after every workload, so a long run that is cut short keeps what it measured.
  const write = (complete: boolean): string => {
    const table = renderTable(report.rows);
    fs.writeFileSync(options.resultsPath, renderResults(options, startedAt, loadAtStart, table, report, complete));
    return table;
  };
  try {
    if (wanted(options, 'single') || wanted(options, 'batch')) {
      noteMachine('throughput');
      await benchThroughput(options, report, medians);
      write(false);
    }
    if (wanted(options, 'latency')) {
      noteMachine('latency');
      await benchLatency(options, report, medians);
      write(false);
    }
    if (wanted(options, 'sustained')) {
      noteMachine('sustained');
      await benchSustained(options, report);
      write(false);
    }
    if (wanted(options, 'recovery') || wanted(options, 'query')) {
      noteMachine('recovery and query');
      await benchRecoveryAndQuery(options, report);
      write(false);
    }
    if (wanted(options, 'protocols')) {
      noteMachine('protocols');
      await benchProtocols(options, report);
      write(false);
    }
    if (wanted(options, 'soak')) {
      noteMachine('soak');
      await benchSoak(options, report);
    }
  } finally {
    for (const dir of tempDirs) removeDir(dir);
  }
  const table = write(true);
  process.stdout.write(`\n${table}\n`);
  log(`wrote ${options.resultsPath}`);
}

function renderResults(
  options: BenchOptions,
  startedAt: Date,
  loadAtStart: string,
  table: string,
  report: Report,
  complete: boolean,
): string {
  return [
    `# Benchmark results`,
    '',
    `\`npm run bench${options.mode === 'default' ? '' : ` -- --${options.mode}`}\` at ${startedAt.toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}.`,
    `Load average (1, 5, 15 min) at start ${loadAtStart}, at ${complete ? 'end' : 'last update (run still going or cut short)'} ${loadAverage()} (the machine is shared).`,
    `Service environment: ${Object.keys(options.serviceEnv).length === 0 ? 'defaults' : JSON.stringify(options.serviceEnv)}.`,
    `Figures are medians of ${options.rounds} rounds (recovery: ${options.recoveryRounds}); every baseline was measured in the same invocation.`,
    '',
    table,
    '',
    '## Per-round figures',
    '',
    ...report.details.map((d) => `- ${d}`),
    '',
    '## The machine before each workload (load average 1/5/15 min; fdatasync of a 256-byte append, 50 samples)',
    '',
    ...fsyncProbes.map((d) => `- ${d}`),
    '',
  ].join('\n');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    for (const dir of tempDirs) removeDir(dir);
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
