import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The HTTP load generator of the benchmark: wrk (C, one thread, little CPU) driven by the
 * Lua scripts in bench/wrk/, and the CPU accounting that goes beside every figure.
 */

/** Where the Lua scripts live (the source tree: they are not compiled). */
export const WRK_SCRIPTS = path.resolve(__dirname, '../../bench/wrk');

/** One wrk run: which script, its arguments, and how hard. */
export interface WrkSpec {
  url: string;
  script: 'publish' | 'paths' | 'bodies';
  /** Passed to the script's init(args). */
  args: string[];
  connections: number;
  durationSeconds: number;
  threads?: number;
  /** Spaces each connection's requests by this many ms (a rough fixed load; see publish.lua). */
  delayMs?: number;
  /** Polled every 100 ms; once true, wrk gets SIGINT and ends with its summary (a run of a fixed size). */
  stopWhen?: () => Promise<boolean>;
}

/** What wrk measured; only 2xx/3xx answers count as ok. */
export interface WrkResult {
  requests: number;
  ok: number;
  /** Answers that were not 2xx or 3xx (a 503 is backpressure). */
  non2xx: number;
  /** Connect, read, write errors and timeouts. */
  errors: number;
  seconds: number;
  okPerSecond: number;
  latencyP50Ms: number;
  latencyP90Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** CPU seconds (user + sys) wrk itself used. */
  generatorCpuSeconds: number;
  /** The script's own count: re-sent events (publish), re-sent bodies (bodies). */
  extra: number;
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect_errors: number;
  read_errors: number;
  write_errors: number;
  status_errors: number;
  timeouts: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  cpu_ticks: number;
  extra: number;
}

const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Throws with how to install wrk when it is absent. */
export function requireWrk(): void {
  const probe = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (probe.error !== undefined) {
    throw new Error('wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu; .ci/run installs it), or build it from its sources');
  }
}

/** Runs wrk once and parses the `WRK_JSON` line that the script's done() prints. */
export function runWrk(spec: WrkSpec): Promise<WrkResult> {
  const args = [
    `-t${spec.threads ?? 1}`,
    `-c${spec.connections}`,
    `-d${spec.durationSeconds}s`,
    '--timeout',
    '30s',
    '-s',
    path.join(WRK_SCRIPTS, `${spec.script}.lua`),
    spec.url,
    '--',
    ...spec.args,
  ];
  const env = { ...process.env, WRK_DELAY_MS: String(spec.delayMs ?? 0) };
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.on('error', reject);
    let polling = false;
    const poller =
      spec.stopWhen === undefined
        ? null
        : setInterval(() => {
            if (polling) return;
            polling = true;
            spec.stopWhen!()
              .then((stop) => {
                if (stop) child.kill('SIGINT');
              })
              .catch(() => undefined)
              .finally(() => (polling = false));
          }, 100);
    child.on('close', (code) => {
      if (poller !== null) clearInterval(poller);
      const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk exited ${code}: ${err}${out}`));
        return;
      }
      const json = JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
      const seconds = json.duration_us / 1e6;
      const ok = json.requests - json.status_errors;
      resolve({
        requests: json.requests,
        ok,
        non2xx: json.status_errors,
        errors: json.connect_errors + json.read_errors + json.write_errors + json.timeouts,
        seconds,
        okPerSecond: ok / seconds,
        latencyP50Ms: json.p50_us / 1000,
        latencyP90Ms: json.p90_us / 1000,
        latencyP99Ms: json.p99_us / 1000,
        latencyMaxMs: json.max_us / 1000,
        generatorCpuSeconds: json.cpu_ticks / CLOCK_TICKS_PER_SECOND,
        extra: json.extra,
      });
    });
  });
}

/** CPU seconds (user + sys) a live process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Runs `measure` and returns its result with the CPU seconds process `pid` used meanwhile. */
export async function withCpu<T>(pid: number, measure: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
  const before = cpuSeconds(pid);
  const result = await measure();
  return { result, cpuSeconds: cpuSeconds(pid) - before };
}

/** Microseconds of CPU per event, as printed beside every figure. */
export function cpuMicrosPerEvent(cpu: number, events: number): number {
  return events > 0 ? (cpu * 1e6) / events : Number.NaN;
}
