import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildProgram, startServerProcess, type ServerProcess } from '../test/harness/server-process';
import { createTestDatabase, type TestDatabase } from '../test/helpers/pg-database';

/**
 * `npm run bench:cluster`: publish throughput and p99 of the embedded default (SQLite) beside
 * cluster mode on the machine's PostgreSQL with one, two and three instances, for single-event
 * and batched publishes. Load: one wrk per instance (unique event ids), run at the same time;
 * events/s is the sum, p99 the worst instance's. Prints a markdown table; figures depend on
 * the machine's load, which it prints too.
 */

const DURATION_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS_PER_INSTANCE = Number(process.env.BENCH_CONNECTIONS ?? 16);
const BATCH = 100;

const WRK_SCRIPT = `
local counter = 0
local prefix = "x"
local batch = 1
function setup(thread) thread:set("tid", tostring(math.random(1000000000))) end
function init(args) prefix = (args[1] or "x") .. "-" .. tostring(tid) ; batch = tonumber(args[2] or "1") end
function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format('{"topic":"bench","event_id":"%s-%d","timestamp":"2025-10-23T10:00:00Z","source":"wrk","payload":{"n":%d}}', prefix, counter, counter)
  end
  local body = parts[1]
  if batch > 1 then body = '{"events":[' .. table.concat(parts, ",") .. ']}' end
  return wrk.format("POST", "/publish", {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.timeout, latency:percentile(99)))
end
`;

interface Run {
  label: string;
  instances: number;
  cluster: boolean;
  batch: number;
}

async function measure(
  run: Run,
  script: string,
  db: TestDatabase | null,
): Promise<{ eventsPerSecond: number; p99Ms: number; errors: number }> {
  const servers: ServerProcess[] = [];
  try {
    // LOG_LEVEL info: the harness reads the port from the "listening" line.
    const env: Record<string, string> = { LOG_LEVEL: 'info', QUEUE_MAX_SIZE: '1000000' };
    if (db !== null) env.DATABASE_URL = db.url;
    for (let i = 0; i < run.instances; i += 1) {
      servers.push(
        await startServerProcess(fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-bench-cluster-')), env, { listenTimeoutMs: 120_000 }),
      );
    }
    const wrks = servers.map(
      (server, i) =>
        new ChildProgram(
          'wrk',
          [
            '-t2',
            `-c${CONNECTIONS_PER_INSTANCE}`,
            `-d${DURATION_SECONDS}s`,
            '-s',
            script,
            server.url,
            '--',
            `${run.label}-${i}-${Date.now()}`,
            String(run.batch),
          ],
          { env: process.env },
        ),
    );
    let requests = 0;
    let errors = 0;
    let p99Us = 0;
    for (const wrk of wrks) {
      await wrk.exited;
      const match = /RESULT (\d+) (\d+) (\d+)/.exec(wrk.stdout());
      if (match === null) throw new Error(`wrk gave no result:\n${wrk.output()}`);
      requests += Number(match[1]);
      errors += Number(match[2]);
      p99Us = Math.max(p99Us, Number(match[3]));
    }
    return { eventsPerSecond: ((requests - errors) * run.batch) / DURATION_SECONDS, p99Ms: p99Us / 1000, errors };
  } finally {
    for (const server of servers) await server.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-bench-wrk-')), 'publish.lua');
  fs.writeFileSync(script, WRK_SCRIPT);
  const runs: Run[] = [];
  for (const batch of [1, BATCH]) {
    runs.push({ label: 'sqlite', instances: 1, cluster: false, batch });
    for (const instances of [1, 2, 3]) runs.push({ label: `pg${instances}`, instances, cluster: true, batch });
  }
  const lines = [
    `load average before: ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; ${os.cpus().length} cores; ${DURATION_SECONDS} s per run, ${CONNECTIONS_PER_INSTANCE} connections per instance`,
    '',
    '| setup | events per request | events/s | p99 ms (worst instance) | non-2xx |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const run of runs) {
    const db = run.cluster ? await createTestDatabase('logagg_bench') : null;
    try {
      const figures = await measure(run, script, db);
      const setup = run.cluster ? `PostgreSQL, ${run.instances} instance${run.instances > 1 ? 's' : ''}` : 'SQLite (embedded default)';
      const line = `| ${setup} | ${run.batch} | ${Math.round(figures.eventsPerSecond)} | ${figures.p99Ms.toFixed(1)} | ${figures.errors} |`;
      lines.push(line);
      process.stderr.write(`${line}\n`);
    } finally {
      await db?.drop();
    }
  }
  lines.push(
    '',
    `load average after: ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (require.main === module) {
  void main();
}
