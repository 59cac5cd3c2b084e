import { defineCommand, EXIT_OK, EXIT_PROBLEM } from './args';
import { postWithRetries, requestJson } from './http-client';
import { waitFor } from './wait';
import { startProgress } from './progress';
import { Random } from './random';

/** An event the simulator sends. */
interface SimEvent {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: Record<string, unknown>;
}

/** Counts of a run: what the plan says, what the answers said, what /stats moved by. */
export interface Counts {
  received: number;
  accepted: number;
  duplicates: number;
}

/** One scenario's expected and observed figures, as `--json` prints them. */
export interface ScenarioReport {
  name: string;
  description: string;
  requests: number;
  expected: Counts;
  responses: Counts;
  stats: Counts;
  retries: number;
  ambiguousRetries: number;
  elapsedMs: number;
  eventsPerSecond: number;
  ok: boolean;
  errors: string[];
}

interface Plan {
  name: string;
  description: string;
  /** Requests, each one event or a batch; taken in order, `concurrency` in flight. */
  requests: Iterator<SimEvent[]>;
  /** Events in all requests (for the progress bar). */
  total: number;
  /** The expected counts; complete once `requests` is exhausted. */
  expected: () => Counts;
  /** Whether a request is sent as `{events:[...]}` (true) or as a bare event. */
  batched: boolean;
  concurrency: number;
}

interface StatsSnapshot {
  received: number;
  unique_processed: number;
  duplicate_dropped: number;
  queue_size: number;
}

async function readStats(url: string): Promise<StatsSnapshot> {
  const answer = await requestJson('GET', `${url}/stats`, undefined, 10_000);
  if (answer.status !== 200) throw new Error(`GET /stats answered ${answer.status}`);
  return answer.body as StatsSnapshot;
}

/** Expected counts of fixed requests: every key's first sending is accepted, every later one is a duplicate. */
function expectedCounts(requests: SimEvent[][]): Counts {
  const seen = new Set<string>();
  const counts: Counts = { received: 0, accepted: 0, duplicates: 0 };
  for (const request of requests) {
    for (const event of request) {
      const key = `${event.topic}\u0000${event.event_id}`;
      counts.received += 1;
      if (seen.has(key)) counts.duplicates += 1;
      else {
        seen.add(key);
        counts.accepted += 1;
      }
    }
  }
  return counts;
}

/** Sends a plan, reads /stats before and after (once the queue is drained), and compares. */
async function runPlan(
  url: string,
  plan: Plan,
  options: { retries: number; timeoutMs: number; drainTimeoutMs: number; progress: boolean },
): Promise<ScenarioReport> {
  const before = await readStats(url);
  const responses: Counts = { received: 0, accepted: 0, duplicates: 0 };
  const errors: string[] = [];
  let retries = 0;
  let ambiguousRetries = 0;
  const total = plan.total;
  const progress = startProgress(options.progress && total >= 1000, plan.name, total, 'events');
  const started = performance.now();
  let requestCount = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const next = plan.requests.next();
      if (next.done === true) return;
      const request = next.value;
      requestCount += 1;
      const body = plan.batched ? JSON.stringify({ events: request }) : JSON.stringify(request[0]);
      const result = await postWithRetries(`${url}/publish`, body, { retries: options.retries, timeoutMs: options.timeoutMs });
      retries += result.retries;
      ambiguousRetries += result.ambiguousRetries;
      progress.increment(request.length);
      if (result.answer === null) {
        errors.push(`no answer: ${result.error?.message}`);
        continue;
      }
      if (result.answer.status !== 200) {
        errors.push(`POST /publish answered ${result.answer.status}: ${JSON.stringify(result.answer.body)}`);
        continue;
      }
      const body200 = result.answer.body as { received: number; accepted: number; duplicates: number };
      responses.received += body200.received;
      responses.accepted += body200.accepted;
      responses.duplicates += body200.duplicates;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, plan.concurrency) }, () => worker()));
  const elapsedMs = performance.now() - started;
  progress.stop();
  const expected = plan.expected();
  // /stats counts unique events once indexed: wait for the queue to drain (bounded).
  const after = await waitFor(
    async () => {
      const stats = await readStats(url);
      return stats.queue_size === 0 && stats.unique_processed - before.unique_processed >= responses.accepted ? stats : null;
    },
    { timeoutMs: options.drainTimeoutMs, intervalMs: 50, what: 'the queue to drain', errors: 'throw' },
  ).catch(() => readStats(url));
  const stats: Counts = {
    received: after.received - before.received,
    accepted: after.unique_processed - before.unique_processed,
    duplicates: after.duplicate_dropped - before.duplicate_dropped,
  };
  const same = (a: Counts, b: Counts): boolean => a.received === b.received && a.accepted === b.accepted && a.duplicates === b.duplicates;
  return {
    name: plan.name,
    description: plan.description,
    requests: requestCount,
    expected,
    responses,
    stats,
    retries,
    ambiguousRetries,
    elapsedMs: Math.round(elapsedMs),
    eventsPerSecond: elapsedMs > 0 ? Math.round((total / elapsedMs) * 1000) : total,
    ok: errors.length === 0 && same(expected, responses) && same(expected, stats),
    errors: errors.slice(0, 10),
  };
}

/** The seed's publisher scenarios, with ids unique to this run so that a rerun starts fresh. */
function seedScenarios(runId: string, random: () => number): Plan[] {
  let n = 0;
  const event = (topic: string, id?: string): SimEvent => {
    n += 1;
    return {
      topic,
      event_id: id ?? `${runId}-${n}`,
      timestamp: new Date(Date.UTC(2025, 9, 23, 10, 0, n % 60)).toISOString(),
      source: 'logagg-publish',
      payload: { run: runId, n },
    };
  };
  const once = event('sim.login');
  const a = event('sim.batch');
  const b = event('sim.batch');
  const c = event('sim.batch');
  const old1 = event('sim.mixed');
  const old2 = event('sim.mixed');
  const topics = ['sim.orders', 'sim.payments', 'sim.users'];
  const pool: SimEvent[] = [];
  const fast: SimEvent[][] = [];
  for (let r = 0; r < 20; r += 1) {
    const request: SimEvent[] = [];
    for (let i = 0; i < 10; i += 1) {
      if (pool.length > 0 && random() < 0.3) request.push(pool[Math.floor(random() * pool.length)]!);
      else {
        const fresh = event(topics[Math.floor(random() * topics.length)]!);
        pool.push(fresh);
        request.push(fresh);
      }
    }
    fast.push(request);
  }
  const fixed = (name: string, description: string, requests: SimEvent[][], batched: boolean, concurrency: number): Plan => ({
    name,
    description,
    requests: requests[Symbol.iterator](),
    total: requests.reduce((n, r) => n + r.length, 0),
    expected: () => expectedCounts(requests),
    batched,
    concurrency,
  });
  return [
    fixed('same-event-3x', 'the same event sent 3 times, one request each', [[once], [once], [once]], false, 1),
    fixed('batch-internal-duplicates', 'one batch of 5 with 2 duplicates inside it (a, b, a, c, b)', [[a, b, a, c, b]], true, 1),
    fixed(
      'mixed-batch',
      'a batch of 2 events, then a batch with those 2 again and 2 new ones',
      [
        [old1, old2],
        [old1, event('sim.mixed'), old2, event('sim.mixed')],
      ],
      true,
      1,
    ),
    fixed('several-topics', '3 events in each of 3 topics, one batch', [topics.flatMap((t) => [event(t), event(t), event(t)])], true, 1),
    fixed('high-frequency', '20 batches of 10 sent 4 at a time, ~30% random duplicates (within and across batches)', fast, true, 4),
  ];
}

/**
 * The load mode: `count` events in batches, `dupRate` of them re-sends of earlier ones.
 * Requests are generated as they are sent, and an event is rebuilt from its number, so
 * memory does not grow with `count`.
 */
function loadPlan(
  runId: string,
  random: () => number,
  options: { count: number; batch: number; dupRate: number; topics: number; concurrency: number },
): Plan {
  const eventNumber = (n: number): SimEvent => ({
    topic: `load.topic-${n % options.topics}`,
    event_id: `${runId}-${n}`,
    timestamp: new Date(Date.UTC(2025, 9, 23, 10, 0, 0) + n).toISOString(),
    source: 'logagg-publish',
    payload: { run: runId, n },
  });
  const expected: Counts = { received: 0, accepted: 0, duplicates: 0 };
  function* requests(): Generator<SimEvent[]> {
    let fresh = 0;
    let sent = 0;
    while (sent < options.count) {
      const request: SimEvent[] = [];
      for (; request.length < options.batch && sent < options.count; sent += 1) {
        expected.received += 1;
        if (fresh > 0 && random() < options.dupRate) {
          expected.duplicates += 1;
          request.push(eventNumber(1 + Math.floor(random() * fresh)));
        } else {
          fresh += 1;
          expected.accepted += 1;
          request.push(eventNumber(fresh));
        }
      }
      yield request;
    }
  }
  return {
    name: 'load',
    description: `${options.count} events in batches of ${options.batch}, ${Math.round(options.dupRate * 100)}% duplicates, ${options.topics} topics, ${options.concurrency} concurrent requests`,
    requests: requests(),
    total: options.count,
    expected: () => ({ ...expected }),
    batched: true,
    concurrency: options.concurrency,
  };
}

function printHuman(url: string, reports: ScenarioReport[]): void {
  const out: string[] = [`publish -> ${url}`];
  const row = (label: string, c: Counts): string =>
    `    ${label.padEnd(22)} received ${String(c.received).padStart(7)}  accepted ${String(c.accepted).padStart(7)}  duplicates ${String(c.duplicates).padStart(7)}`;
  for (const r of reports) {
    out.push(
      `  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.description} (${r.requests} requests, ${r.elapsedMs} ms, ${r.eventsPerSecond} events/s)`,
    );
    out.push(row('expected', r.expected));
    out.push(row('observed (answers)', r.responses));
    out.push(row('observed (/stats delta)', r.stats));
    if (r.retries > 0)
      out.push(
        `    ${r.retries} retries${r.ambiguousRetries > 0 ? `, ${r.ambiguousRetries} after network errors (their first attempt may have been applied)` : ''}`,
      );
    for (const e of r.errors) out.push(`    error: ${e}`);
  }
  const failed = reports.filter((r) => !r.ok).length;
  out.push(
    failed === 0
      ? `all ${reports.length} scenario(s) match`
      : `${failed} of ${reports.length} scenario(s) differ (another publisher on the same server also moves /stats)`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

const SCENARIO_NAMES = ['same-event-3x', 'batch-internal-duplicates', 'mixed-batch', 'several-topics', 'high-frequency'];

/** `logagg publish --url`: the seed's publisher scenarios and a load mode, expected vs observed. */
export const publishCommand = defineCommand({
  name: 'publish',
  usage: [
    'logagg publish --url URL [--scenario NAME] [--json]',
    'logagg publish --url URL --count N [--batch N] [--dup-rate R] [--topics N] [--concurrency N] [--retries N]',
  ],
  description: `Publishes to a running aggregator and prints, per scenario, the expected counts beside the
observed ones: the sums of the /publish answers and the /stats deltas (read before and after,
once the queue is drained). Event ids carry a run id, so every run starts fresh.
Scenarios (default: all): ${SCENARIO_NAMES.join(', ')}.
Load mode (--count): N events in batches, a share of them re-sends of earlier events.
Exit 1 when any figure differs (another publisher on the same server also moves /stats).`,
  examples: [
    'npx logagg publish --url http://127.0.0.1:8080',
    'npx logagg publish --url http://127.0.0.1:8080 --count 100000 --batch 500 --dup-rate 0.3 --concurrency 8',
  ],
  options: {
    url: { type: 'url', placeholder: 'URL', required: true, description: 'the aggregator' },
    scenario: {
      type: 'string',
      placeholder: 'NAME',
      default: 'all',
      choices: ['all', ...SCENARIO_NAMES],
      description: 'run one scenario (names above), or all',
    },
    count: { type: 'int', placeholder: 'N', min: 1, max: 100_000_000, description: 'load mode: events to send, duplicates included' },
    batch: { type: 'int', placeholder: 'N', default: 100, min: 1, max: 100_000, description: 'load mode: events per request' },
    dupRate: { type: 'number', placeholder: 'R', default: 0.2, min: 0, max: 1, description: 'load mode: share of re-sent events' },
    topics: { type: 'int', placeholder: 'N', default: 3, min: 1, max: 100_000, description: 'load mode: topics to spread over' },
    concurrency: { type: 'int', placeholder: 'N', default: 4, min: 1, max: 1000, description: 'load mode: requests in flight' },
    retries: { type: 'int', placeholder: 'N', default: 5, min: 0, max: 1000, description: 'retries per request on 503/network errors' },
    seed: { type: 'int', placeholder: 'N', min: 0, max: 2 ** 31, defaultText: 'from the clock', description: 'random seed' },
    runId: { type: 'string', placeholder: 'ID', defaultText: 'sim-<time>', description: 'prefix of the event ids' },
  },
  async run(context) {
    const { url, retries, scenario, count } = context.options;
    const seed = context.options.seed ?? Date.now() % 2 ** 31;
    const rng = new Random(seed);
    const random = (): number => rng.next();
    const runId = context.options.runId ?? `sim-${Date.now().toString(36)}-${Math.floor(random() * 1e6).toString(36)}`;
    let plans: Plan[];
    if (count !== undefined) {
      const { batch, dupRate, topics, concurrency } = context.options;
      plans = [loadPlan(runId, random, { count, batch, dupRate, topics, concurrency })];
    } else {
      plans = seedScenarios(runId, random).filter((p) => scenario === 'all' || p.name === scenario);
    }
    const reports: ScenarioReport[] = [];
    for (const plan of plans) {
      try {
        reports.push(await runPlan(url, plan, { retries, timeoutMs: 30_000, drainTimeoutMs: 60_000, progress: context.progress }));
      } catch (err) {
        process.stderr.write(`publish: ${plan.name}: ${(err as Error).message}\n`);
        return EXIT_PROBLEM;
      }
    }
    const ok = reports.every((r) => r.ok);
    if (context.json) process.stdout.write(`${JSON.stringify({ url, runId, seed, ok, scenarios: reports }, null, 2)}\n`);
    else printHuman(url, reports);
    return ok ? EXIT_OK : EXIT_PROBLEM;
  },
});
