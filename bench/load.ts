import autocannon from 'autocannon';
import http from 'node:http';
import { benchEvent } from './events';
import { protocolRequest, type BenchProtocol, type ProtocolRequest } from './protocol-bodies';

/**
 * The load generator, run as its own process so it does not share an event loop with the
 * server under test. argv[2] is a JSON LoadSpec; one JSON LoadResult is printed on stdout.
 */
export interface LoadSpec {
  /** single: one event per POST; batch: `batchSize` events per POST; query: GET /events pages; sustained: a fixed number of events, retried on 503, then wait until /stats has indexed them. */
  mode: 'single' | 'batch' | 'query' | 'sustained' | 'protocol';
  /** protocol: which ingest protocol carries the `batchSize` events of each request. */
  protocol?: BenchProtocol;
  /** protocol: events whose requests are encoded before the run. */
  poolEvents?: number;
  url: string;
  connections: number;
  durationSeconds: number;
  /** Unique per measurement so no two measurements share keys. */
  prefix: string;
  batchSize?: number;
  /** Requests per second across all connections (latency at a fixed load). */
  overallRate?: number;
  /** query: the largest seq stored, to pick random cursors below it. */
  seqMax?: number;
  /** sustained: events to publish. */
  events?: number;
  /** Unmeasured load first, so JIT warm-up is not measured (same for service and baseline). */
  warmupSeconds?: number;
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
  /** protocol: requests whose body had to be encoded during the run (the pool ran out). */
  liveBodies?: number;
  /** sustained: seconds until every event was acknowledged, and until /stats counted it indexed. */
  ackedSeconds?: number;
  indexedSeconds?: number;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  let counter = 0;
  let liveBodies = 0;
  const batchSize = spec.batchSize ?? 1;
  let request: autocannon.AutocannonRequest;
  if (spec.mode === 'protocol') {
    // Bodies are encoded before the run, so the cost of encoding (protobuf, snappy) in this
    // process, which shares the machine's cores with the server, is not measured; past the
    // pool they are encoded on the fly (counted in `liveBodies`).
    const protocol = spec.protocol ?? 'publish';
    const pool: ProtocolRequest[] = [];
    for (let first = 0; first < (spec.poolEvents ?? 0); first += batchSize)
      pool.push(protocolRequest(protocol, spec.prefix, first, batchSize));
    request = {
      method: 'POST',
      path: protocolRequest(protocol, spec.prefix, 0, 1).path,
      setupRequest: (req) => {
        const index = counter / batchSize;
        const next = pool[index] ?? protocolRequest(protocol, spec.prefix, counter, batchSize);
        if (index >= pool.length) liveBodies += 1;
        pool[index] = undefined as unknown as ProtocolRequest;
        counter += batchSize;
        return { ...req, headers: { 'content-type': next.contentType }, body: next.body };
      },
    };
  } else if (spec.mode === 'query') {
    const seqMax = spec.seqMax ?? 1;
    request = {
      method: 'GET',
      setupRequest: (req) => ({ ...req, path: `/events?limit=100&after=${Math.floor(Math.random() * Math.max(1, seqMax - 100))}` }),
    };
  } else {
    request = {
      method: 'POST',
      path: '/publish',
      headers: JSON_HEADERS,
      setupRequest: (req) => {
        let body: string;
        if (spec.mode === 'single') {
          body = JSON.stringify(benchEvent(spec.prefix, counter));
          counter += 1;
        } else {
          const events = [];
          for (let i = 0; i < batchSize; i += 1) events.push(benchEvent(spec.prefix, counter + i));
          counter += batchSize;
          body = JSON.stringify({ events });
        }
        return { ...req, body };
      },
    };
  }
  if ((spec.warmupSeconds ?? 0) > 0) {
    await autocannon({
      url: spec.url,
      connections: spec.connections,
      duration: spec.warmupSeconds,
      overallRate: spec.overallRate,
      timeout: 30,
      requests: [request],
    });
  }
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.durationSeconds,
    overallRate: spec.overallRate,
    timeout: 30,
    requests: [request],
  });
  const ok = result['2xx'];
  const perRequest = spec.mode === 'batch' || spec.mode === 'protocol' ? batchSize : 1;
  return {
    requestsPerSecond: ok / result.duration,
    eventsPerSecond: (ok * perRequest) / result.duration,
    ok,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    durationSeconds: result.duration,
    ...(spec.mode === 'protocol' ? { liveBodies } : {}),
  };
}

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
  const result = spec.mode === 'sustained' ? await runSustained(spec) : await runAutocannon(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
