import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalEventJson, encodeRecord } from '../src/wal/record';
import { segmentName } from '../src/wal/segments';
import { defineOptions, formatHelp, parseOptions, UsageError } from '../src/cli/options';
import { ChildProgram, type ServerProcess } from '../test/harness/server-process';
import {
  DIST_BENCH,
  fmt,
  freshDir,
  getStats,
  loadAverage,
  log,
  median,
  ratioRow,
  removeDir,
  removeTempDirs,
  rssMb,
  runChild,
  serviceSettings,
  startDurable,
  waitIndexed,
  type Report,
  type Row,
} from './common';
import { benchEvent } from './events';
import { BENCH_PROTOCOLS, protocolRequest, type BenchProtocol } from './protocol-bodies';
import type { LoadResult } from './load';
import type { PeerResult } from './peer';
import { benchStorage, type StorageOptions } from './storage';
import { cpuMicrosPerEvent, cpuSeconds, requireWrk, runWrk, type WrkResult, type WrkSpec } from './wrk';

/**
 * `npm run bench`: the service against its baselines and its peer, side by side in one
 * invocation. HTTP load comes from wrk (bench/wrk/*.lua, one thread: it costs little CPU
 * on this 2-core machine); the service runs as `node dist/src/main.js` on a fresh data
 * dir; every figure has the CPU time per event of the process that produced it. Prints a
 * table of figures, ratios and targets and writes bench/RESULTS.md. `--quick` for a short
 * run, `--full` adds rounds, 60-second sustained runs and the memory soak; `--only=a,b`
 * picks workloads.
 */

interface BenchOptions extends StorageOptions {
  mode: 'quick' | 'default' | 'full';
  rounds: number;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  batchSize: number;
  /** Share of events that re-send an earlier one (duplicates), in percent. */
  resendPercent: number;
  sustainedEvents: number;
  recoveryEvents: number;
  recoveryRounds: number;
  soakSeconds: number;
  /** Events per second during the soak (2000/s for 10 minutes stores 1.2M events). */
  soakEventsPerSecond: number;
  only: Set<string> | null;
  resultsPath: string;
  /** Extra environment for the service (`--env=INDEX_BATCH_MAX=500`), to measure settings. */
  serviceEnv: Record<string, string>;
  /** `--compare-env=INDEX_BATCH_MAX=500`: each round also runs the service with these settings, interleaved (an A/B on a noisy machine). */
  compareEnv: Record<string, string> | null;
  natsUrl: string;
}

const BENCH_DIR = path.resolve(__dirname, '../../bench');
const WORKLOADS = ['single', 'batch', 'peer', 'latency', 'sustained', 'recovery', 'query', 'storage', 'soak', 'protocols'];
/** Workloads that run only when named in --only (long, or a separate question). */
const ON_REQUEST = new Set(['protocols', 'storage']);

const BENCH_DESCRIPTION = `Runs the service against its baselines and NATS JetStream, side by side, and writes the figures to bench/RESULTS.md.
Flags take a value as --name=V or --name V. Needs wrk (apt-get install wrk).`;

/** The flags of `npm run bench`; the numbers left out take the preset of the mode (--quick, default, --full). */
export const BENCH_OPTIONS = defineOptions({
  quick: { type: 'boolean', description: 'a short run' },
  full: { type: 'boolean', description: 'more rounds, 60 s sustained runs and the 10-minute memory soak' },
  only: {
    type: 'string',
    placeholder: 'A,B',
    description: `only these workloads (${WORKLOADS.join(', ')}; protocols and storage run only when named)`,
  },
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
  resend: { type: 'int', placeholder: 'PCT', default: 10, min: 0, max: 90, description: 'percent of events that re-send an earlier one' },
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
  events: {
    type: 'int',
    placeholder: 'N',
    min: 1000,
    max: 1_000_000_000,
    defaultText: 'preset',
    description: 'events the storage workload publishes (10000000 for the full run)',
  },
  retentionBytes: {
    type: 'int',
    placeholder: 'B',
    min: 4096,
    max: Number.MAX_SAFE_INTEGER,
    defaultText: '1 GB from 5M events, else 32 MB',
    description: 'RETENTION_BYTES of the storage workload',
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
  nats: {
    type: 'string',
    placeholder: 'URL',
    defaultText: '127.0.0.1:4222',
    description: 'the NATS JetStream server of the peer workload',
  },
  out: { type: 'string', placeholder: 'FILE', defaultText: 'bench/RESULTS.md', description: 'where the results go' },
  env: { type: 'string', placeholder: 'K=V,...', description: 'extra environment for the service, to measure settings' },
  compareEnv: { type: 'string', placeholder: 'K=V,...', description: 'each round also runs the service with these settings, interleaved' },
  help: { type: 'boolean', short: 'h', description: 'this help' },
});

function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseOptions(BENCH_OPTIONS, argv);
  const mode = values.full ? 'full' : values.quick ? 'quick' : 'default';
  const presets = {
    quick: {
      rounds: 3,
      durationSeconds: 3,
      sustainedEvents: 30_000,
      recoveryEvents: 100_000,
      recoveryRounds: 3,
      soakSeconds: 0,
      events: 100_000,
    },
    default: {
      rounds: 3,
      durationSeconds: 8,
      sustainedEvents: 200_000,
      recoveryEvents: 1_000_000,
      recoveryRounds: 3,
      soakSeconds: 0,
      events: 500_000,
    },
    full: {
      rounds: 5,
      durationSeconds: 60,
      sustainedEvents: 500_000,
      recoveryEvents: 1_000_000,
      recoveryRounds: 3,
      soakSeconds: 600,
      events: 10_000_000,
    },
  }[mode];
  const only = values.only;
  const unknown = only?.split(',').filter((name) => !WORKLOADS.includes(name)) ?? [];
  if (unknown.length > 0) throw new UsageError(`--only: unknown workload(s) ${unknown.join(', ')}; known: ${WORKLOADS.join(', ')}`);
  const events = values.events ?? presets.events;
  return {
    mode,
    rounds: values.rounds ?? presets.rounds,
    durationSeconds: values.duration ?? presets.durationSeconds,
    warmupSeconds: values.warmup ?? (mode === 'quick' ? 1 : 2),
    connections: values.connections,
    batchSize: 100,
    resendPercent: values.resend,
    sustainedEvents: values.sustainedEvents ?? presets.sustainedEvents,
    recoveryEvents: values.recoveryEvents ?? presets.recoveryEvents,
    recoveryRounds: values.recoveryRounds ?? presets.recoveryRounds,
    storageEvents: events,
    retentionBytes: values.retentionBytes ?? (events >= 5_000_000 ? 1024 ** 3 : 32 * 1024 ** 2),
    soakSeconds: values.soak ?? presets.soakSeconds,
    soakEventsPerSecond: values.soakRate,
    only: only === undefined ? null : new Set(only.split(',')),
    resultsPath: values.out ?? path.join(BENCH_DIR, 'RESULTS.md'),
    serviceEnv: parseEnv(values.env ?? ''),
    compareEnv: values.compareEnv === undefined ? null : parseEnv(values.compareEnv),
    natsUrl: values.nats ?? '127.0.0.1:4222',
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
  if (ON_REQUEST.has(workload)) return false;
  return workload !== 'soak' || options.soakSeconds > 0;
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

/** A bare baseline (`express` or `http`, see bench/bare-server.ts) as a child process. */
async function startBareServer(kind: 'express' | 'http'): Promise<{ url: string; pid: number; stop: () => void }> {
  const program = ChildProgram.node(path.join(DIST_BENCH, 'bare-server.js'), [kind], { env: process.env });
  await program.waitUntil(() => program.stdout().includes('\n') || !program.running, 30_000, 'the bare server to listen');
  if (!program.running) throw new Error(`bare server exited: ${program.stderr()}`);
  const { port } = JSON.parse(program.stdout().split('\n')[0]!) as { port: number };
  return { url: `http://127.0.0.1:${port}`, pid: program.child.pid!, stop: () => program.killNow() };
}

/** One measured HTTP run: wrk's figures, events/s acknowledged, and the CPU of the process under test. */
interface Measured {
  wrk: WrkResult;
  eventsPerSecond: number;
  /** µs of user+sys CPU of the server process per acknowledged event. */
  cpuPerEvent: number;
  /** µs of CPU of wrk itself per acknowledged event. */
  generatorCpuPerEvent: number;
  /** Service only: seconds from the end of the load until every accepted event was indexed. */
  catchUpSeconds?: number;
}

/** A warm-up run (not measured), then the measured run, with the server's CPU time around it. */
async function measureHttp(
  url: string,
  pid: number,
  spec: Omit<WrkSpec, 'url' | 'durationSeconds'>,
  durationSeconds: number,
  warmupSeconds: number,
  eventsPerRequest: number,
): Promise<Measured> {
  // The warm-up of a publish run uses other event ids (its first argument is the id prefix).
  const [prefix, ...rest] = spec.args;
  const warmupArgs = spec.script === 'publish' ? [`${prefix}-w`, ...rest] : spec.args;
  if (warmupSeconds > 0) await runWrk({ ...spec, url, durationSeconds: warmupSeconds, args: warmupArgs });
  const before = cpuSeconds(pid);
  const wrk = await runWrk({ ...spec, url, durationSeconds });
  const cpu = cpuSeconds(pid) - before;
  const events = wrk.ok * eventsPerRequest;
  return {
    wrk,
    eventsPerSecond: events / wrk.seconds,
    cpuPerEvent: cpuMicrosPerEvent(cpu, events),
    generatorCpuPerEvent: cpuMicrosPerEvent(wrk.generatorCpuSeconds, events),
  };
}

/** "12,345 ev/s, p99 12 ms, 40 µs CPU/ev": a figure as the table shows it. */
function figure(m: { eventsPerSecond: number; latencyP99Ms: number; cpuPerEvent: number }): string {
  return `${fmt(m.eventsPerSecond)} ev/s, p99 ${fmt(m.latencyP99Ms)} ms, ${fmt(m.cpuPerEvent)} µs CPU/ev`;
}

function medianMeasured(runs: Measured[]): {
  eventsPerSecond: number;
  latencyP99Ms: number;
  cpuPerEvent: number;
  generatorCpuPerEvent: number;
  non2xx: number;
  catchUpSeconds: number;
} {
  return {
    eventsPerSecond: median(runs.map((r) => r.eventsPerSecond)),
    latencyP99Ms: median(runs.map((r) => r.wrk.latencyP99Ms)),
    cpuPerEvent: median(runs.map((r) => r.cpuPerEvent)),
    generatorCpuPerEvent: median(runs.map((r) => r.generatorCpuPerEvent)),
    non2xx: Math.max(...runs.map((r) => r.wrk.non2xx + r.wrk.errors)),
    catchUpSeconds: Math.max(...runs.map((r) => r.catchUpSeconds ?? 0)),
  };
}

function perRound(runs: Measured[]): string {
  return runs
    .map(
      (r) =>
        `${fmt(r.eventsPerSecond)} (p99 ${fmt(r.wrk.latencyP99Ms)} ms, ${fmt(r.cpuPerEvent)} µs/ev${r.wrk.non2xx > 0 ? `, ${r.wrk.non2xx} non-2xx` : ''}${r.catchUpSeconds !== undefined ? `, indexed ${r.catchUpSeconds.toFixed(2)} s after` : ''})`,
    )
    .join('; ');
}

/** The service's medians that later workloads compare with (the peer, the latency rate). */
interface ServiceFigures {
  single?: { eventsPerSecond: number; latencyP99Ms: number; cpuPerEvent: number };
  batch?: { eventsPerSecond: number; latencyP99Ms: number; cpuPerEvent: number };
}

/** The service on a fresh data dir under one measured wrk run; then how long the index took to catch up. */
async function measureService(
  label: string,
  env: Record<string, string>,
  spec: Omit<WrkSpec, 'url' | 'durationSeconds'>,
  options: BenchOptions,
  eventsPerRequest: number,
): Promise<Measured> {
  const { server, dataDir } = await startDurable(label, freshDir(label), env);
  try {
    const measured = await measureHttp(
      server.url,
      server.child.pid!,
      spec,
      options.durationSeconds,
      options.warmupSeconds,
      eventsPerRequest,
    );
    measured.catchUpSeconds = await waitIndexed(server.url, 120_000);
    return measured;
  } finally {
    await server.kill('SIGKILL');
    removeDir(dataDir);
  }
}

/**
 * Single-event and batched publish: per round the bare node:http echo, the bare express
 * echo, the service (and the --compare-env service), alternating, plus the group-committed
 * fdatasync floor of the same records. Targets of issue 15.
 */
async function benchThroughput(options: BenchOptions, report: Report, figures: ServiceFigures): Promise<void> {
  const bareHttp = await startBareServer('http');
  const bareExpress = await startBareServer('express');
  try {
    for (const kind of ['single', 'batch'] as const) {
      if (!wanted(options, kind)) continue;
      const perRequest = kind === 'single' ? 1 : options.batchSize;
      const runs = { http: [] as Measured[], express: [] as Measured[], service: [] as Measured[], compare: [] as Measured[] };
      const floors: Array<{ eventsPerSecond: number; flushP99Ms: number; cpuMicrosPerEvent: number }> = [];
      for (let round = 0; round < options.rounds; round += 1) {
        const spec = (prefix: string): Omit<WrkSpec, 'url' | 'durationSeconds'> => ({
          script: 'publish',
          args: [`${prefix}-${kind}-${round}`, String(perRequest), String(options.resendPercent)],
          connections: options.connections,
        });
        log(`${kind} round ${round + 1}: bare node:http, bare express, service (load ${loadAverage()})`);
        runs.http.push(
          await measureHttp(bareHttp.url, bareHttp.pid, spec('http'), options.durationSeconds, options.warmupSeconds, perRequest),
        );
        runs.express.push(
          await measureHttp(bareExpress.url, bareExpress.pid, spec('express'), options.durationSeconds, options.warmupSeconds, perRequest),
        );
        runs.service.push(await measureService(kind, {}, spec('service'), options, perRequest));
        if (options.compareEnv !== null)
          runs.compare.push(await measureService(kind, options.compareEnv, spec('compare'), options, perRequest));
        const floorDir = freshDir('floor');
        floors.push(
          await runChild('fsync-floor.js', {
            dir: floorDir,
            clients: options.connections,
            perRequest,
            seconds: Math.min(options.durationSeconds, 5),
          }),
        );
        removeDir(floorDir);
        log(
          `  node:http ${fmt(runs.http[round]!.eventsPerSecond)}, express ${fmt(runs.express[round]!.eventsPerSecond)}, service ${fmt(runs.service[round]!.eventsPerSecond)} ev/s (p99 ${fmt(runs.service[round]!.wrk.latencyP99Ms)} ms, non2xx ${runs.service[round]!.wrk.non2xx})${runs.compare[round] ? `, with ${JSON.stringify(options.compareEnv)} ${fmt(runs.compare[round]!.eventsPerSecond)}` : ''}; fsync floor ${fmt(floors[round]!.eventsPerSecond)} ev/s`,
        );
      }
      const service = medianMeasured(runs.service);
      const express = medianMeasured(runs.express);
      const nodeHttp = medianMeasured(runs.http);
      const floor = {
        eventsPerSecond: median(floors.map((f) => f.eventsPerSecond)),
        latencyP99Ms: median(floors.map((f) => f.flushP99Ms)),
        cpuPerEvent: median(floors.map((f) => f.cpuMicrosPerEvent)),
      };
      figures[kind] = service;
      const ratio = service.eventsPerSecond / express.eventsPerSecond;
      const goal = kind === 'single' ? { ratio: 0.7, p99: 20 } : { ratio: 0.4, p99: 100 };
      const sustainedOk = kind === 'single' || (service.non2xx === 0 && service.catchUpSeconds <= 2);
      const met = ratio >= goal.ratio && service.latencyP99Ms <= goal.p99 && sustainedOk;
      const title =
        kind === 'single'
          ? `single event per request, ${options.connections} connections`
          : `${options.batchSize} events per request, ${options.connections} connections, ${options.durationSeconds} s sustained (no 503, indexed within 2 s)`;
      report.rows.push({
        target: title,
        measured: `${figure(service)}${kind === 'batch' ? `, ${service.non2xx} non-2xx, indexed ${service.catchUpSeconds.toFixed(2)} s after` : ''}`,
        baseline: `bare express ${figure(express)}`,
        ratio: `${ratio.toFixed(2)} x`,
        goal: `>= ${goal.ratio} x, p99 <= ${goal.p99} ms${kind === 'batch' ? ', no 503, indexed <= 2 s' : ''}`,
        met: met ? 'met' : 'not met',
      });
      report.rows.push({
        target: '  the same against a bare node:http echo',
        measured: '',
        baseline: `node:http ${figure(nodeHttp)}`,
        ratio: `${(service.eventsPerSecond / nodeHttp.eventsPerSecond).toFixed(2)} x`,
        goal: '-',
        met: '-',
      });
      report.rows.push({
        target: `  the same against group-committed fdatasync of the same records (${options.connections} x ${perRequest} a flush)`,
        measured: '',
        baseline: `floor ${fmt(floor.eventsPerSecond)} ev/s, flush p99 ${fmt(floor.latencyP99Ms)} ms, ${fmt(floor.cpuPerEvent)} µs CPU/ev`,
        ratio: `${(service.eventsPerSecond / floor.eventsPerSecond).toFixed(2)} x`,
        goal: '-',
        met: '-',
      });
      if (options.compareEnv !== null) {
        const compare = medianMeasured(runs.compare);
        report.rows.push({
          target: `  the service with ${JSON.stringify(options.compareEnv)} (interleaved)`,
          measured: `${figure(compare)}, ${compare.non2xx} non-2xx, indexed ${compare.catchUpSeconds.toFixed(2)} s after`,
          baseline: `bare express ${fmt(express.eventsPerSecond)} ev/s`,
          ratio: `${(compare.eventsPerSecond / express.eventsPerSecond).toFixed(2)} x`,
          goal: '-',
          met: '-',
        });
        report.details.push(`${kind} with ${JSON.stringify(options.compareEnv)} per round: ${perRound(runs.compare)}`);
      }
      report.details.push(`${kind} service per round: ${perRound(runs.service)}`);
      report.details.push(`${kind} bare express per round: ${perRound(runs.express)}; bare node:http: ${perRound(runs.http)}`);
      report.details.push(
        `${kind} wrk's own CPU per event: ${fmt(service.generatorCpuPerEvent)} µs (service runs), ${fmt(express.generatorCpuPerEvent)} µs (express runs); fsync floor per round ${floors.map((f) => fmt(f.eventsPerSecond)).join(', ')} ev/s`,
      );
    }
  } finally {
    bareHttp.stop();
    bareExpress.stop();
  }
}

/** The nats-server's pid, to charge it its CPU (null when it runs elsewhere). */
function natsServerPid(): number | null {
  try {
    const pid = Number(execFileSync('pidof', ['-s', 'nats-server'], { encoding: 'utf8' }).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** NATS JetStream on the same events (Nats-Msg-Id dedup, file storage), 1, 64 and 512 acks in flight, beside the service. */
async function benchPeer(options: BenchOptions, report: Report, figures: ServiceFigures): Promise<void> {
  if (figures.single === undefined) {
    log('peer: measuring the service single-event figure first');
    const runs: Measured[] = [];
    for (let round = 0; round < options.rounds; round += 1) {
      runs.push(
        await measureService(
          'peer-service',
          {},
          { script: 'publish', args: [`peer-service-${round}`, '1', String(options.resendPercent)], connections: options.connections },
          options,
          1,
        ),
      );
    }
    figures.single = medianMeasured(runs);
  }
  const natsPid = natsServerPid();
  const results = new Map<number, Array<PeerResult & { serverCpuPerEvent: number }>>();
  for (let round = 0; round < options.rounds; round += 1) {
    for (const inFlight of [1, options.connections, 512]) {
      log(`peer round ${round + 1}: NATS JetStream, ${inFlight} in flight (load ${loadAverage()})`);
      const before = natsPid === null ? 0 : cpuSeconds(natsPid);
      const result = await runChild<PeerResult>('peer.js', {
        url: options.natsUrl,
        prefix: `peer-${round}-${inFlight}`,
        inFlight,
        seconds: options.durationSeconds,
        warmupSeconds: options.warmupSeconds,
        resendPercent: options.resendPercent,
      });
      // Charged from the end of the warm-up is not possible from here: the warm-up's CPU is in it too, spread over both runs' events.
      const serverCpu = natsPid === null ? Number.NaN : cpuSeconds(natsPid) - before;
      const warmupShare = options.durationSeconds / (options.durationSeconds + options.warmupSeconds);
      const list = results.get(inFlight) ?? [];
      list.push({ ...result, serverCpuPerEvent: cpuMicrosPerEvent(serverCpu * warmupShare, result.acked) });
      results.set(inFlight, list);
      log(`  ${fmt(result.eventsPerSecond)} ev/s, p99 ${fmt(result.latencyP99Ms)} ms`);
    }
  }
  const ours = figures.single;
  for (const [inFlight, runs] of results) {
    const peer = {
      eventsPerSecond: median(runs.map((r) => r.eventsPerSecond)),
      latencyP99Ms: median(runs.map((r) => r.latencyP99Ms)),
      cpuPerEvent: median(runs.map((r) => r.serverCpuPerEvent)),
    };
    const ratio = ours.eventsPerSecond / peer.eventsPerSecond;
    report.rows.push({
      target: `ahead of NATS JetStream (dedup by Nats-Msg-Id, file storage), ${inFlight === 1 ? 'awaiting each ack' : `${inFlight} acks in flight`}; ours: single event per request, ${options.connections} connections`,
      measured: figure(ours),
      baseline: `JetStream ${figure(peer)} (nats-server CPU), client ${fmt(median(runs.map((r) => r.clientCpuMicrosPerEvent)))} µs/ev`,
      ratio: `${ratio.toFixed(2)} x`,
      goal: inFlight === 1 ? '>= 1 x' : 'report',
      met: inFlight === 1 ? (ratio >= 1 ? 'met' : 'not met') : '-',
    });
    report.details.push(
      `peer ${inFlight} in flight per round: ${runs.map((r) => `${fmt(r.eventsPerSecond)} ev/s p99 ${fmt(r.latencyP99Ms)} ms (${r.duplicates} duplicates of ${r.acked} acks)`).join('; ')}`,
    );
  }
  if (figures.batch !== undefined) {
    const peer512 = results.get(512)!;
    report.rows.push({
      target: `  ours batched (${options.batchSize} a request) against JetStream with 512 in flight`,
      measured: figure(figures.batch),
      baseline: `JetStream ${fmt(median(peer512.map((r) => r.eventsPerSecond)))} ev/s`,
      ratio: `${(figures.batch.eventsPerSecond / median(peer512.map((r) => r.eventsPerSecond))).toFixed(2)} x`,
      goal: 'report',
      met: '-',
    });
  }
  report.details.push(
    'what each side promises: our 200 comes after the fdatasync that covers the event, and the dedup is exact for as long as the key store keeps keys (forever by default); ' +
      "JetStream's ack comes after the message is in its file store's write path, not after an fsync (sync_interval defaults to 2 minutes), and its Nats-Msg-Id dedup window is 2 minutes (duplicate_window 120 s here).",
  );
}

/** Publish latency at about half the measured maximum single-event throughput (each connection spaced by wrk's delay()). */
async function benchLatency(options: BenchOptions, report: Report, figures: ServiceFigures): Promise<void> {
  let maxRate = figures.single?.eventsPerSecond;
  if (maxRate === undefined) {
    const run = await measureService(
      'latency-max',
      {},
      { script: 'publish', args: ['latency-max', '1', '0'], connections: options.connections },
      options,
      1,
    );
    maxRate = run.eventsPerSecond;
  }
  const rate = Math.max(1, Math.round(maxRate / 2));
  const delayMs = Math.max(1, Math.round((options.connections * 1000) / rate));
  const runs: Measured[] = [];
  const bareRuns: Measured[] = [];
  // The bare endpoint at the same spacing shows what the shared machine alone adds to latency.
  const bare = await startBareServer('express');
  try {
    for (let round = 0; round < options.rounds; round += 1) {
      const spec = (prefix: string): Omit<WrkSpec, 'url' | 'durationSeconds'> => ({
        script: 'publish',
        args: [`${prefix}-${round}`, '1', String(options.resendPercent)],
        connections: options.connections,
        delayMs,
      });
      log(`latency round ${round + 1} at about ${rate} req/s (load ${loadAverage()})`);
      bareRuns.push(await measureHttp(bare.url, bare.pid, spec('latency-bare'), options.durationSeconds, options.warmupSeconds, 1));
      runs.push(await measureService('latency', {}, spec('latency'), options, 1));
    }
  } finally {
    bare.stop();
  }
  const p50 = median(runs.map((r) => r.wrk.latencyP50Ms));
  const p99 = median(runs.map((r) => r.wrk.latencyP99Ms));
  const bareP50 = median(bareRuns.map((r) => r.wrk.latencyP50Ms));
  const bareP99 = median(bareRuns.map((r) => r.wrk.latencyP99Ms));
  report.rows.push({
    target: `publish latency at about half of max throughput (target ${rate} req/s, measured ${fmt(median(runs.map((r) => r.eventsPerSecond)))}, ${options.connections} connections)`,
    measured: `p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, ${fmt(median(runs.map((r) => r.cpuPerEvent)))} µs CPU/ev`,
    baseline: `bare express p50 ${fmt(bareP50)} ms, p99 ${fmt(bareP99)} ms`,
    ratio: '-',
    goal: 'report',
    met: '-',
  });
  report.details.push(`latency: service per round ${perRound(runs)}; bare ${perRound(bareRuns)}`);
}

/** The raw index baseline: the same rows into the service's own schema through IndexStore (bench/raw-insert.ts). */
async function rawInsert(prefix: string, count: number): Promise<{ rowsPerSecond: number; cpuMicrosPerRow: number }> {
  const rawDir = freshDir('raw');
  try {
    return await runChild<{ rowsPerSecond: number; cpuMicrosPerRow: number }>('raw-insert.js', {
      dbPath: path.join(rawDir, 'raw.db'),
      prefix,
      count,
      batchRows: 2000,
    });
  } finally {
    removeDir(rawDir);
  }
}

/** Acknowledged and indexed (/stats caught up) against the raw insert of the same rows through IndexStore. */
async function benchSustained(options: BenchOptions, report: Report): Promise<void> {
  const serviceRuns: Array<LoadResult & { cpuPerEvent: number }> = [];
  const compareRuns: LoadResult[] = [];
  const rawRuns: Array<{ rowsPerSecond: number; cpuMicrosPerRow: number }> = [];
  const run = async (server: ServerProcess, prefix: string): Promise<LoadResult & { cpuPerEvent: number }> => {
    const before = cpuSeconds(server.child.pid!);
    const result = await runChild<LoadResult>('load.js', {
      mode: 'sustained',
      url: server.url,
      connections: 16,
      batchSize: options.batchSize,
      events: options.sustainedEvents,
      prefix,
    });
    return { ...result, cpuPerEvent: cpuMicrosPerEvent(cpuSeconds(server.child.pid!) - before, options.sustainedEvents) };
  };
  for (let round = 0; round < options.rounds; round += 1) {
    const prefix = `sustained-${round}`;
    if (options.compareEnv !== null) {
      const other = await startDurable('sustained', freshDir('sustained'), options.compareEnv);
      try {
        compareRuns.push(await run(other.server, prefix));
      } finally {
        await other.server.kill('SIGKILL');
        removeDir(other.dataDir);
      }
    }
    log(`sustained round ${round + 1}: service, ${options.sustainedEvents} events (load ${loadAverage()})`);
    const { server, dataDir } = await startDurable('sustained');
    try {
      serviceRuns.push(await run(server, prefix));
    } finally {
      await server.kill('SIGKILL');
      removeDir(dataDir);
    }
    log(`sustained round ${round + 1}: raw insert through IndexStore (load ${loadAverage()})`);
    rawRuns.push(await rawInsert(prefix, options.sustainedEvents));
    log(`  service ${fmt(serviceRuns[round]!.eventsPerSecond)} ev/s indexed, raw ${fmt(rawRuns[round]!.rowsPerSecond)} rows/s`);
  }
  const service = median(serviceRuns.map((r) => r.eventsPerSecond));
  report.rows.push(
    ratioRow(
      `sustained end-to-end, ${fmt(options.sustainedEvents)} events acknowledged and indexed, 16 connections (node driver), vs raw IndexStore.appendNewRows`,
      service,
      median(rawRuns.map((r) => r.rowsPerSecond)),
      'ev/s',
      0.8,
      `, ${fmt(median(serviceRuns.map((r) => r.cpuPerEvent)))} µs CPU/ev (raw ${fmt(median(rawRuns.map((r) => r.cpuMicrosPerRow)))} µs/row)`,
    ),
  );
  if (options.compareEnv !== null) {
    report.rows.push(
      ratioRow(
        `  the same with ${JSON.stringify(options.compareEnv)} (interleaved)`,
        median(compareRuns.map((r) => r.eventsPerSecond)),
        median(rawRuns.map((r) => r.rowsPerSecond)),
        'ev/s',
        0.8,
      ),
    );
    report.details.push(
      `sustained with ${JSON.stringify(options.compareEnv)}: ${compareRuns.map((r) => fmt(r.eventsPerSecond)).join(', ')} ev/s`,
    );
  }
  report.details.push(
    `sustained: service indexed ev/s per round ${serviceRuns.map((r) => fmt(r.eventsPerSecond)).join(', ')} (acked after ${serviceRuns.map((r) => r.ackedSeconds!.toFixed(2)).join(', ')} s, indexed after ${serviceRuns.map((r) => r.indexedSeconds!.toFixed(2)).join(', ')} s, 503 retries ${serviceRuns.map((r) => r.non2xx).join(', ')}); raw rows/s ${rawRuns.map((r) => fmt(r.rowsPerSecond)).join(', ')}`,
  );
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

/** Recovery of a log into an empty index vs the raw insert; then GET /events p99 and RSS on the full store. */
async function benchRecoveryAndQuery(options: BenchOptions, report: Report): Promise<void> {
  const dataDir = freshDir('recovery');
  const walDir = path.join(dataDir, 'wal');
  const count = options.recoveryEvents;
  log(`writing ${count} records to a log (load ${loadAverage()})`);
  writeWal(walDir, 'recovery', count);
  const clearIndex = (): void => {
    for (const name of fs.readdirSync(dataDir)) if (name !== 'wal') fs.rmSync(path.join(dataDir, name), { recursive: true, force: true });
  };
  if (wanted(options, 'recovery')) {
    const recoveryRuns: Array<{ seconds: number; recordsReplayed: number; maxRssMb: number }> = [];
    const rawRuns: Array<{ rowsPerSecond: number; cpuMicrosPerRow: number }> = [];
    for (let round = 0; round < options.recoveryRounds; round += 1) {
      clearIndex();
      log(`recovery round ${round + 1}: replay ${count} records (load ${loadAverage()})`);
      const run = await runChild<{ seconds: number; recordsReplayed: number; maxRssMb: number }>('recover.js', {
        dataDir,
        env: serviceSettings.env,
      });
      if (run.recordsReplayed !== count) throw new Error(`recovery replayed ${run.recordsReplayed} of ${count}`);
      recoveryRuns.push(run);
      log(`recovery round ${round + 1}: raw insert (load ${loadAverage()})`);
      rawRuns.push(await rawInsert('recovery', count));
      log(`  recovery ${run.seconds.toFixed(2)} s = ${fmt(count / run.seconds)} rows/s, raw ${fmt(rawRuns[round]!.rowsPerSecond)} rows/s`);
    }
    const seconds = median(recoveryRuns.map((r) => r.seconds));
    report.rows.push(
      ratioRow(
        `recovery: replay ${fmt(count)} logged events into an empty index (rows/s), vs raw IndexStore.appendNewRows`,
        count / seconds,
        median(rawRuns.map((r) => r.rowsPerSecond)),
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
      met: seconds < 30 ? 'met' : 'not met',
    });
    report.details.push(
      `recovery: seconds per round ${recoveryRuns.map((r) => r.seconds.toFixed(2)).join(', ')}; peak RSS of the recovering process ${recoveryRuns.map((r) => fmt(r.maxRssMb)).join(', ')} MB; raw rows/s ${rawRuns.map((r) => fmt(r.rowsPerSecond)).join(', ')}`,
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
      const pathsFile = path.join(freshDir('paths'), 'paths.txt');
      const paths = Array.from({ length: 5000 }, () => `/events?limit=100&after=${Math.floor(Math.random() * Math.max(1, count - 100))}`);
      fs.writeFileSync(pathsFile, `${paths.join('\n')}\n`);
      const runs: Measured[] = [];
      for (let round = 0; round < options.rounds; round += 1) {
        runs.push(
          await measureHttp(
            server.url,
            server.child.pid!,
            { script: 'paths', args: [pathsFile], connections: 4 },
            options.durationSeconds,
            round === 0 ? options.warmupSeconds : 0,
            1,
          ),
        );
      }
      const rssAfter = rssMb(server.child.pid!);
      const p99 = median(runs.map((r) => r.wrk.latencyP99Ms));
      report.rows.push({
        target: `GET /events page of 100 at a random cursor with ${fmt(count)} stored, 4 connections (p99)`,
        measured: `${fmt(p99)} ms (p50 ${fmt(median(runs.map((r) => r.wrk.latencyP50Ms)))} ms, ${fmt(median(runs.map((r) => r.wrk.okPerSecond)))} req/s, ${fmt(median(runs.map((r) => r.cpuPerEvent)))} µs CPU/page)`,
        baseline: '-',
        ratio: '-',
        goal: '<= 5 ms',
        met: p99 <= 5 ? 'met' : 'not met',
      });
      report.rows.push({
        target: `server RSS with ${fmt(count)} events stored (after start / after queries)`,
        measured: `${fmt(rssAtStart)} / ${fmt(rssAfter)} MB`,
        baseline: '-',
        ratio: '-',
        goal: '<= 256 MB',
        met: Math.max(rssAtStart, rssAfter) <= 256 ? 'met' : 'not met',
      });
      report.details.push(`query: p99 per round ${runs.map((r) => fmt(r.wrk.latencyP99Ms)).join(', ')} ms`);
    } finally {
      await server.kill('SIGKILL');
    }
  }
  removeDir(dataDir);
}

/** Ten minutes (by default) of steady batched load at a fixed rate; RSS sampled every 10 s must stay flat and under the bound. */
async function benchSoak(options: BenchOptions, report: Report): Promise<void> {
  const { server, dataDir } = await startDurable('soak');
  const connections = 8;
  const requestsPerSecond = Math.max(1, options.soakEventsPerSecond / options.batchSize);
  const samples: Array<[number, number]> = [];
  const started = Date.now();
  const sampler = setInterval(() => samples.push([(Date.now() - started) / 1000, rssMb(server.child.pid!)]), 10_000);
  try {
    log(
      `soak: ${options.soakSeconds} s at about ${fmt(requestsPerSecond)} requests/s of ${options.batchSize} events (load ${loadAverage()})`,
    );
    const result = await measureHttp(
      server.url,
      server.child.pid!,
      {
        script: 'publish',
        args: ['soak', String(options.batchSize), String(options.resendPercent)],
        connections,
        delayMs: Math.round((connections * 1000) / requestsPerSecond),
      },
      options.soakSeconds,
      0,
      options.batchSize,
    );
    clearInterval(sampler);
    samples.push([(Date.now() - started) / 1000, rssMb(server.child.pid!)]);
    const stats = await getStats(server.url);
    const firstMinute = samples.filter(([t]) => t <= 60).map(([, r]) => r);
    const lastMinute = samples.filter(([t]) => t >= options.soakSeconds - 60).map(([, r]) => r);
    const max = Math.max(...samples.map(([, r]) => r));
    report.rows.push({
      target: `memory over a ${Math.round(options.soakSeconds / 60)}-minute sustained run (${fmt(stats.accepted)} events stored)`,
      measured: `RSS first minute ${fmt(median(firstMinute))} MB, last minute ${fmt(median(lastMinute))} MB, max ${fmt(max)} MB`,
      baseline: '-',
      ratio: '-',
      goal: '<= 256 MB, flat',
      met: max <= 256 ? 'met' : 'not met',
    });
    report.details.push(
      `soak: ${fmt(result.eventsPerSecond)} ev/s acknowledged, non-2xx ${result.wrk.non2xx}; RSS samples (s: MB) ${samples.map(([t, r]) => `${Math.round(t)}: ${Math.round(r)}`).join(', ')}`,
    );
  } finally {
    clearInterval(sampler);
    await server.kill('SIGKILL');
    removeDir(dataDir);
  }
}

/** Batch sizes of the protocols comparison, and its connections (16 x 1000 events stays far below QUEUE_MAX_SIZE). */
const PROTOCOL_BATCH_SIZES = [100, 1000] as const;
const PROTOCOL_CONNECTIONS = 16;
/** Events encoded before each protocol run (wrk's Lua cannot encode protobuf or snappy; past the pool it re-sends). */
const PROTOCOL_POOL_EVENTS = 400_000;

/** Writes the requests of a protocol to a pool file for bench/wrk/bodies.lua: `<length>\n<bytes>` each. */
function writeBodyPool(file: string, protocol: BenchProtocol, prefix: string, batchSize: number): { path: string; contentType: string } {
  const fd = fs.openSync(file, 'w');
  let first = protocolRequest(protocol, prefix, 0, 1);
  try {
    for (let start = 0; start < PROTOCOL_POOL_EVENTS; start += batchSize) {
      const request = protocolRequest(protocol, prefix, start, batchSize);
      if (start === 0) first = request;
      const body = typeof request.body === 'string' ? Buffer.from(request.body) : request.body;
      fs.writeSync(fd, `${body.length}\n`);
      fs.writeSync(fd, body);
    }
  } finally {
    fs.closeSync(fd);
  }
  return { path: first.path, contentType: first.contentType };
}

/**
 * Events per second of each ingest protocol carrying the same records, beside POST /publish
 * in the same run: per round and batch size one fresh service, the protocols in a rotated
 * order (so none always runs on the fullest index). Goal: each at least 0.7x /publish.
 */
async function benchProtocols(options: BenchOptions, report: Report): Promise<void> {
  for (const batchSize of PROTOCOL_BATCH_SIZES) {
    const runs = new Map<BenchProtocol, Measured[]>(BENCH_PROTOCOLS.map((p) => [p, []]));
    for (let round = 0; round < options.rounds; round += 1) {
      const { server, dataDir } = await startDurable(`protocols-${batchSize}`);
      const poolDir = freshDir('pool');
      try {
        const order = BENCH_PROTOCOLS.map((_, i) => BENCH_PROTOCOLS[(i + round) % BENCH_PROTOCOLS.length]!);
        for (const protocol of order) {
          const poolFile = path.join(poolDir, `${protocol}.pool`);
          const target = writeBodyPool(poolFile, protocol, `${protocol}-${batchSize}-${round}`, batchSize);
          const result = await measureHttp(
            server.url,
            server.child.pid!,
            { script: 'bodies', args: [poolFile, target.path, target.contentType, '1'], connections: PROTOCOL_CONNECTIONS },
            options.durationSeconds,
            options.warmupSeconds,
            batchSize,
          );
          fs.rmSync(poolFile, { force: true });
          runs.get(protocol)!.push(result);
          log(
            `protocols x${batchSize} round ${round + 1}: ${protocol} ${fmt(result.eventsPerSecond)} ev/s (p99 ${fmt(result.wrk.latencyP99Ms)} ms, ${result.wrk.extra} bodies re-sent, ${result.wrk.non2xx} non-2xx, load ${loadAverage()})`,
          );
        }
      } finally {
        await server.kill('SIGKILL');
        removeDir(dataDir);
        removeDir(poolDir);
      }
    }
    const publishMedian = median(runs.get('publish')!.map((r) => r.eventsPerSecond));
    for (const protocol of BENCH_PROTOCOLS) {
      if (protocol === 'publish') continue;
      const list = runs.get(protocol)!;
      report.rows.push(
        ratioRow(
          `${protocol}, ${batchSize} records/request, ${PROTOCOL_CONNECTIONS} connections (events/s) vs /publish`,
          median(list.map((r) => r.eventsPerSecond)),
          publishMedian,
          'ev/s',
          0.7,
          `, ${fmt(median(list.map((r) => r.cpuPerEvent)))} µs CPU/ev`,
        ),
      );
    }
    report.details.push(`protocols x${batchSize}: ${BENCH_PROTOCOLS.map((p) => `${p} ${perRound(runs.get(p)!)}`).join(' | ')}`);
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
  requireWrk();
  serviceSettings.env = options.serviceEnv;
  const report: Report = { rows: [], details: [] };
  const figures: ServiceFigures = {};
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
    const steps: Array<[string[], string, () => Promise<void>]> = [
      [['single', 'batch'], 'throughput', () => benchThroughput(options, report, figures)],
      [['peer'], 'peer', () => benchPeer(options, report, figures)],
      [['latency'], 'latency', () => benchLatency(options, report, figures)],
      [['sustained'], 'sustained', () => benchSustained(options, report)],
      [['recovery', 'query'], 'recovery and query', () => benchRecoveryAndQuery(options, report)],
      [['storage'], 'storage', () => benchStorage(options, report)],
      [['protocols'], 'protocols', () => benchProtocols(options, report)],
      [['soak'], 'soak', () => benchSoak(options, report)],
    ];
    for (const [workloads, label, run] of steps) {
      if (!workloads.some((w) => wanted(options, w))) continue;
      noteMachine(label);
      await run();
      write(false);
    }
  } finally {
    removeTempDirs();
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
  const flags = process.argv.slice(2).join(' ');
  return [
    `# Benchmark results`,
    '',
    `\`npm run bench${flags === '' ? '' : ` -- ${flags}`}\` at ${startedAt.toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}.`,
    `Load average (1, 5, 15 min) at start ${loadAtStart}, at ${complete ? 'end' : 'last update (run still going or cut short)'} ${loadAverage()} (the machine is shared).`,
    `Service environment: ${Object.keys(options.serviceEnv).length === 0 ? 'defaults' : JSON.stringify(options.serviceEnv)}.`,
    `Load generator: wrk, 1 thread, bodies built per request in Lua (bench/wrk/), ${options.resendPercent} % of events re-sent (duplicates).`,
    `Figures are medians of ${options.rounds} rounds (recovery: ${options.recoveryRounds}); every baseline was measured in the same invocation.`,
    'CPU per event is user+sys of the process under test (from /proc/<pid>/stat) over the measured run, divided by the events it acknowledged.',
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
    removeTempDirs();
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
