/**
 * Publish latency with and without a reader looping on the worst queries beside it, reads
 * inline (READ_WORKERS=0, as before the read pool) against reads on the pool (READ_WORKERS=1),
 * in one run on one data dir. `npm run build && node dist/bench/reads.js`
 * (READS_BENCH_EVENTS stored events, default 200000; READS_BENCH_SECONDS per phase, default 10).
 * The publisher sends one event per request on one connection, one at a time, and times each
 * answer; the reader is a separate process looping GET /events on the queries no index serves
 * (source=nope, a q= that matches nothing, since far in the past with a filter that matches
 * nothing), each examining the full scan bound. Figures on a loaded machine are noisy: the
 * load average is printed with them.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { makeTempDir } from '../test/helpers/temp-dir';
import { startServerProcess } from '../test/harness/server-process';

const EVENTS = Number(process.env.READS_BENCH_EVENTS ?? 200_000);
const SECONDS = Number(process.env.READS_BENCH_SECONDS ?? 10);

/** The queries no index serves: each examines FIXED_LIMITS.queryScanRowsMax rows and finds nothing. */
const WORST_QUERIES = ['/events?source=nope', '/events?q=zz-matches-nothing', '/events?since=2000-01-01T00:00:00Z&source=nope'];

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function post(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function event(i: number): Record<string, unknown> {
  return {
    topic: `topic-${i % 20}`,
    event_id: `e-${i}`,
    timestamp: new Date().toISOString(),
    source: `host-${i % 5}`,
    payload: { level: i % 7 === 0 ? 'error' : 'info', message: `request ${i} served in ${i % 900} ms` },
  };
}

async function seed(url: string): Promise<void> {
  const batch = 1000;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < EVENTS) {
      const from = next;
      next += batch;
      const events = Array.from({ length: Math.min(batch, EVENTS - from) }, (_, k) => event(from + k));
      const status = await post(`${url}/publish`, JSON.stringify({ events }));
      if (status !== 200) throw new Error(`seed: publish answered ${status}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

let published = EVENTS;

/** Publishes one event at a time for SECONDS; the latencies in ms, sorted. */
async function publishFor(url: string): Promise<number[]> {
  const samples: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    const body = JSON.stringify(event(published));
    published += 1;
    const started = process.hrtime.bigint();
    const status = await post(`${url}/publish`, body);
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (status !== 200) throw new Error(`publish answered ${status}`);
  }
  return samples.sort((a, b) => a - b);
}

/** A separate process looping on the worst queries; resolves with the reads it made once stopped. */
function startReader(url: string): { stop: () => Promise<number> } {
  const script = `
    const urls = ${JSON.stringify(WORST_QUERIES.map((q) => url + q))};
    let n = 0, stop = false;
    process.on('message', () => { stop = true; });
    (async () => {
      while (!stop) {
        const res = await fetch(urls[n % urls.length]);
        await res.arrayBuffer();
        n += 1;
      }
      process.send(n, () => process.exit(0));
    })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    stop: () =>
      new Promise<number>((resolve) => {
        child.once('message', (n) => resolve(Number(n)));
        child.send('stop');
      }),
  };
}

function line(mode: string, phase: string, samples: number[], extra = ''): string {
  return `| ${mode} | ${phase} | ${samples.length} | ${percentile(samples, 50).toFixed(2)} | ${percentile(samples, 99).toFixed(2)} | ${extra} |`;
}

async function main(): Promise<void> {
  const dataDir = makeTempDir('logagg-reads-bench-');
  const rows: string[] = [];
  const server = await startServerProcess(dataDir, { READ_WORKERS: '1' });
  const seeded = Date.now();
  await seed(server.url);
  process.stdout.write(`seeded ${EVENTS} events in ${Date.now() - seeded} ms (load ${os.loadavg()[0]!.toFixed(2)})\n`);
  await server.kill('SIGTERM');
  for (const [mode, workers] of [
    ['inline (READ_WORKERS=0)', '0'],
    ['pool (READ_WORKERS=1)', '1'],
  ] as const) {
    const running = await startServerProcess(dataDir, { READ_WORKERS: workers });
    try {
      // A warm-up read of each query, then publishes alone, then with the reader beside them.
      for (const query of WORST_QUERIES) await (await fetch(`${running.url}${query}`)).arrayBuffer();
      const alone = await publishFor(running.url);
      rows.push(line(mode, 'publish alone', alone, `load ${os.loadavg()[0]!.toFixed(2)}`));
      const reader = startReader(running.url);
      const beside = await publishFor(running.url);
      const reads = await reader.stop();
      rows.push(
        line(
          mode,
          'publish + reader on worst queries',
          beside,
          `${(reads / SECONDS).toFixed(1)} reads/s, load ${os.loadavg()[0]!.toFixed(2)}`,
        ),
      );
    } finally {
      await running.kill('SIGTERM');
    }
  }
  process.stdout.write(
    [
      `\nreads bench: ${EVENTS} stored events, ${SECONDS} s per phase, one event per publish, ${os.cpus().length} cores`,
      '| reads | phase | publishes | p50 ms | p99 ms | notes |',
      '|---|---|---:|---:|---:|---|',
      ...rows,
      '',
    ].join('\n'),
  );
  agent.destroy();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
