import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildProgram, startServerProcess, type ServerProcess } from '../test/harness/server-process';

/** Helpers every benchmark workload shares: logging, temp dirs, the server under test, the report. */

/** The compiled bench scripts (dist/bench), run as child processes. */
export const DIST_BENCH = __dirname;

/** One line of the printed table. */
export interface Row {
  target: string;
  measured: string;
  baseline: string;
  ratio: string;
  goal: string;
  met: string;
}

/** The table and the per-round details that bench/RESULTS.md shows. */
export interface Report {
  rows: Row[];
  details: string[];
}

/** A progress line on stderr, with the time. */
export function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** The load average (1, 5, 15 min), as every figure is quoted with it. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** The median (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A figure for the table: whole numbers with separators from 100 up. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(n >= 10 ? 1 : 2);
}

/** A row comparing a figure with its baseline; met when the ratio reaches `goal`. */
export function ratioRow(target: string, measured: number, baseline: number, unit: string, goal: number, extra = ''): Row {
  const ratio = measured / baseline;
  return {
    target,
    measured: `${fmt(measured)} ${unit}${extra}`,
    baseline: `${fmt(baseline)} ${unit}`,
    ratio: `${ratio.toFixed(2)} x`,
    goal: `>= ${goal} x`,
    met: Number.isFinite(ratio) && ratio >= goal ? 'met' : 'not met',
  };
}

/** Runs a compiled bench script as a child process and parses the last line it prints as JSON. */
export async function runChild<T>(script: string, spec: unknown): Promise<T> {
  const program = ChildProgram.node(path.join(DIST_BENCH, script), [JSON.stringify(spec)], { env: process.env });
  const exit = await program.exited;
  if (exit.code !== 0) throw new Error(`${script} exited ${exit.code}: ${program.stderr()}`);
  return JSON.parse(program.stdout().trim().split('\n').pop()!) as T;
}

const tempDirs: string[] = [];

/** A fresh temp dir, removed when the benchmark ends. */
export function freshDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `logagg-bench-${label}-`));
  tempDirs.push(dir);
  return dir;
}

/** Removes a dir and everything in it. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Removes every dir freshDir made. */
export function removeTempDirs(): void {
  for (const dir of tempDirs) removeDir(dir);
}

/** Resident set size of a live process in MiB, from /proc/<pid>/status. */
export function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Extra environment for every service the benchmark starts (`--env`). */
export const serviceSettings: { env: Record<string, string> } = { env: {} };

/** How long a server may take to recover before the benchmark gives up (a loaded machine replaying millions of events). */
const READY_TIMEOUT_MS = 900_000;

/** Starts the service on a data dir and waits until /health answers 200 (recovery done), for up to 15 minutes. */
export async function startReady(dataDir: string, env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServerProcess(dataDir, { LOG_LEVEL: 'info', ...serviceSettings.env, ...env }, { waitReady: false });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`server exited during recovery:\n${server.output()}`);
    const ok = await fetch(`${server.url}/health`).then(
      (res) => res.status === 200,
      () => false,
    );
    if (ok) return server;
    if (Date.now() > deadline) {
      await server.kill('SIGKILL');
      throw new Error(`server not ready after ${READY_TIMEOUT_MS / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The durable service on a data dir (fresh unless given), ready. */
export async function startDurable(
  label: string,
  dataDir = freshDir(label),
  extraEnv: Record<string, string> = {},
): Promise<{ server: ServerProcess; dataDir: string }> {
  return { server: await startReady(dataDir, extraEnv), dataDir };
}

/** The /stats fields the benchmark reads (the others vary between versions of the service). */
export interface BenchStats {
  accepted: number;
  unique_processed: number;
  duplicate_dropped: number;
  queue_size: number;
  first_seq?: number;
  expired_events?: number;
  dedup_keys?: number;
  log_bytes?: number;
}

/** GET /stats. */
export async function getStats(url: string): Promise<BenchStats> {
  const res = await fetch(`${url}/stats`);
  return (await res.json()) as BenchStats;
}

/** Waits until every accepted event is indexed; returns the seconds it took (Infinity past `timeoutMs`). */
export async function waitIndexed(url: string, timeoutMs = 600_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const stats = await getStats(url);
    if (stats.unique_processed >= stats.accepted && stats.queue_size === 0) return (performance.now() - started) / 1000;
    if (performance.now() - started > timeoutMs) return Number.POSITIVE_INFINITY;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
