import http from 'node:http';
import { benchEvent } from './events';

/**
 * The sustained driver, run as its own process so it does not share an event loop with the
 * server under test: a fixed number of events, a 503 retried after a backoff, then a wait
 * until /stats has indexed them (wrk, bench/wrk.ts, drives every other HTTP workload).
 * argv[2] is a JSON LoadSpec; one JSON LoadResult is printed on stdout.
 */
export interface LoadSpec {
  mode: 'sustained';
  url: string;
  connections: number;
  /** Unique per measurement so no two measurements share keys. */
  prefix: string;
  batchSize?: number;
  /** Events to publish. */
  events?: number;
}

/** What one load run measured; only 2xx answers count as throughput. */
export interface LoadResult {
  requestsPerSecond: number;
  eventsPerSecond: number;
  ok: number;
  non2xx: number;
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  durationSeconds: number;
  /** sustained: seconds until every event was acknowledged, and until /stats counted it indexed. */
  ackedSeconds?: number;
  indexedSeconds?: number;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function post(agent: http.Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function getStats(url: string): Promise<{ unique_processed: number }> {
  const res = await fetch(`${url}/stats`);
  return (await res.json()) as { unique_processed: number };
}

/** Publishes exactly `events` events in batches (a 503 is retried after a short backoff), then polls /stats until all are indexed. */
async function runSustained(spec: LoadSpec): Promise<LoadResult> {
  const total = spec.events ?? 100_000;
  const batchSize = spec.batchSize ?? 100;
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections });
  const target = new URL('/publish', spec.url);
  const before = (await getStats(spec.url)).unique_processed;
  let next = 0;
  let ok = 0;
  let non2xx = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const first = next;
      const count = Math.min(batchSize, total - first);
      next += count;
      const events = [];
      for (let i = 0; i < count; i += 1) events.push(benchEvent(spec.prefix, first + i));
      const body = JSON.stringify({ events });
      for (;;) {
        const sent = performance.now();
        const status = await post(agent, target, body);
        if (status === 200) {
          latencies.push(performance.now() - sent);
          ok += 1;
          break;
        }
        non2xx += 1;
        if (status !== 503) throw new Error(`sustained: POST /publish answered ${status}`);
        // Backpressure from the service: back off as Retry-After asks (scaled down for a bench).
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, () => worker()));
  const ackedSeconds = (performance.now() - started) / 1000;
  const deadline = Date.now() + 600_000;
  while ((await getStats(spec.url)).unique_processed - before < total) {
    if (Date.now() > deadline) throw new Error('sustained: index did not catch up within 600 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const indexedSeconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requestsPerSecond: ok / ackedSeconds,
    eventsPerSecond: total / indexedSeconds,
    ok,
    non2xx,
    errors: 0,
    latencyP50Ms: at(0.5),
    latencyP99Ms: at(0.99),
    durationSeconds: indexedSeconds,
    ackedSeconds,
    indexedSeconds,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const result = await runSustained(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
