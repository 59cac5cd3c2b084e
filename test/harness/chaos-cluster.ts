import { Random } from '../../src/cli/random';
import { waitFor } from '../../src/cli/wait';
import { makeTempDir } from '../helpers/temp-dir';
import { createTestDatabase, PG_HOST, PG_PORT, type TestDatabase } from '../helpers/pg-database';
import { startServerProcess, type ServerProcess } from './server-process';
import { TcpProxy } from './tcp-proxy';

/** Settings of a cluster chaos campaign (`npm run chaos -- --instances N`). */
export interface ClusterChaosOptions {
  instances: number;
  cycles: number;
  publishers: number;
  /** Most events in one batch request. */
  batchEventsMax: number;
  seed: number;
  /** Progress lines go here (one every `progressEvery` cycles); null for none. */
  progress: ((line: string) => void) | null;
  progressEvery: number;
  /** Retention mode: every instance's RETENTION_BYTES (0: off), with 4 KiB segments so deletions run all the time. */
  retentionBytes: number;
}

export const CLUSTER_CHAOS_DEFAULTS: ClusterChaosOptions = {
  instances: 3,
  cycles: 6,
  publishers: 4,
  batchEventsMax: 10,
  seed: 1,
  progress: null,
  progressEvery: 25,
  retentionBytes: 0,
};

/** The faults a cycle injects. */
export type ClusterFault = 'kill' | 'outage' | 'latency' | 'kill_during_outage';
const FAULTS: readonly ClusterFault[] = ['kill', 'outage', 'latency', 'kill_during_outage'];

/** The verdict; `ok` only when every count of harm is 0 and /stats agrees everywhere. */
export interface ClusterChaosResult {
  ok: boolean;
  cycles: number;
  faults: Record<ClusterFault, number>;
  requests: number;
  acked: number;
  stored: number;
  /** Sum of `accepted` over every 200 answer. */
  acceptedAnswered: number;
  /** Stored keys no 200 answered as accepted: each had an attempt whose outcome its client never learnt (a cut connection, a 503 after logging). */
  storedUnanswered: number;
  lost: number;
  duplicated: number;
  garbled: number;
  unsent: number;
  /** Retention mode: keys no longer stored whose re-send answered duplicate with the acknowledged seq (deleted, key kept). */
  expired: number;
  /** A stored key never answered accepted although no attempt of it was uncertain, a key answered accepted twice, a 4xx. */
  violations: string[];
  statsProblems: string[];
  elapsedMs: number;
  aborted: string | null;
  examples: string[];
}

/** The one summary line of a campaign. */
export function clusterSummaryLine(r: ClusterChaosResult): string {
  const faults = FAULTS.map((f) => `${f}:${r.faults[f]}`).join(',');
  return (
    `cluster cycles=${r.cycles} acked=${r.acked} stored=${r.stored} accepted_answered=${r.acceptedAnswered} ` +
    `stored_unanswered=${r.storedUnanswered} expired=${r.expired} lost=${r.lost} duplicated=${r.duplicated} garbled=${r.garbled} unsent=${r.unsent} ` +
    `violations=${r.violations.length} stats=${r.statsProblems.length === 0 ? 'ok' : 'MISMATCH'} faults=${faults} ` +
    `requests=${r.requests} elapsed_s=${(r.elapsedMs / 1000).toFixed(1)}${r.aborted === null ? '' : ' ABORTED'}`
  );
}

interface PublishAnswer {
  accepted?: number;
  results?: Array<{ status: string; seq: number; conflict?: boolean }>;
}

interface KeyState {
  body: { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };
  payloadJson: string;
  ackedSeq: number | null;
  acceptedAnswers: number;
  /** An attempt ended without a 200 (connection cut, timeout, 503): it may have been stored unanswered. */
  uncertain: boolean;
}

/** One instance: its data dir (kept across restarts) and the running process, if any. */
class Instance {
  server: ServerProcess | null = null;
  readonly dataDir = makeTempDir('logagg-cluster-');

  constructor(private readonly env: Record<string, string>) {}

  get url(): string | null {
    return this.server?.url ?? null;
  }

  async start(): Promise<void> {
    // Ready means recovery is done; while the database is away that waits for it.
    // A machine loaded by other work can take long to start a process: wait generously.
    this.server = await startServerProcess(this.dataDir, this.env, { listenTimeoutMs: 120_000 });
  }

  async kill(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.kill('SIGKILL');
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Runs a cluster chaos campaign: N real server processes on one fresh database reached
 * through a TCP proxy; at-least-once publishers that send each attempt to a random live
 * instance; cycles of SIGKILL + restart, database outages (the proxy cuts every connection)
 * and latency; then a drain and the checks: every acknowledged key stored once with its first
 * payload and seq, nothing unsent, accepted answers = stored keys less those whose acceptance
 * was never answered (each of which had an uncertain attempt), /stats equal on every instance.
 */
export async function runClusterChaos(input: Partial<ClusterChaosOptions> = {}): Promise<ClusterChaosResult> {
  const options = { ...CLUSTER_CHAOS_DEFAULTS, ...input };
  const started = Date.now();
  const random = new Random(options.seed);
  const result: ClusterChaosResult = {
    ok: false,
    cycles: 0,
    faults: { kill: 0, outage: 0, latency: 0, kill_during_outage: 0 },
    requests: 0,
    acked: 0,
    stored: 0,
    acceptedAnswered: 0,
    storedUnanswered: 0,
    lost: 0,
    duplicated: 0,
    garbled: 0,
    unsent: 0,
    expired: 0,
    violations: [],
    statsProblems: [],
    elapsedMs: 0,
    aborted: null,
    examples: [],
  };
  const keys = new Map<string, KeyState>();
  const acked: string[] = [];
  let draining = false;
  let stopped = false;

  const db: TestDatabase = await createTestDatabase('logagg_chaos');
  const proxy = await TcpProxy.start(PG_HOST, PG_PORT);
  const env = {
    DATABASE_URL: db.urlAt(proxy.port),
    DATABASE_TIMEOUT_MS: '1000',
    RETRY_AFTER_SECONDS: '1',
    SEGMENT_BYTES_MAX: String(options.retentionBytes > 0 ? 4096 : 16 * 1024),
    RETENTION_BYTES: String(options.retentionBytes),
    LOG_LEVEL: 'info',
  };
  const instances = Array.from({ length: options.instances }, () => new Instance(env));

  const liveUrl = (r: Random): string | null => {
    const up = instances.map((i) => i.url).filter((u): u is string => u !== null);
    return up.length === 0 ? null : r.pick(up);
  };

  const publisher = async (id: number): Promise<void> => {
    const r = new Random(options.seed * 1000 + id + 1);
    let counter = 0;
    let outstanding: string[] | null = null;
    while (!stopped) {
      if (outstanding === null) {
        if (draining) return;
        const size = r.chance(0.5) ? 1 : 1 + r.int(options.batchEventsMax);
        outstanding = [];
        for (let i = 0; i < size; i += 1) {
          if (acked.length > 0 && r.chance(0.1)) {
            outstanding.push(r.pick(acked));
            continue;
          }
          counter += 1;
          const payload = { publisher: id, n: counter, text: 'x'.repeat(r.int(200)), quote: '"\\\u0000é' };
          const body = {
            topic: `chaos-${r.int(3)}`,
            event_id: `p${id}-${counter}`,
            timestamp: new Date().toISOString(),
            source: `p${id}`,
            payload,
          };
          const key = `${body.topic}\u0000${body.event_id}`;
          if (!outstanding.includes(key)) {
            keys.set(key, { body, payloadJson: JSON.stringify(payload), ackedSeq: null, acceptedAnswers: 0, uncertain: false });
            outstanding.push(key);
          }
        }
      }
      const url = liveUrl(r);
      if (url === null) {
        await pause(50);
        continue;
      }
      const events = outstanding.map((k) => keys.get(k)!.body);
      result.requests += 1;
      let status: number;
      let answer: unknown = null;
      try {
        const res = await fetch(`${url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(events.length === 1 ? events[0] : { events }),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        status = res.status;
        answer = await res.json().catch(() => null);
      } catch {
        status = 0;
      }
      if (status !== 200) {
        if (status !== 0 && status !== 503)
          violation(result, `a valid request was answered ${status}: ${JSON.stringify(answer).slice(0, 200)}`);
        for (const k of outstanding) keys.get(k)!.uncertain = true;
        await pause(20);
        continue;
      }
      const answered = answer as PublishAnswer | null;
      const results = answered?.results ?? [];
      if (results.length !== outstanding.length)
        violation(result, `200 without one result per event: ${JSON.stringify(answer).slice(0, 200)}`);
      result.acceptedAnswered += answered?.accepted ?? 0;
      outstanding.forEach((k, i) => {
        const state = keys.get(k)!;
        const outcome = results[i];
        if (outcome === undefined) return;
        if (outcome.conflict === true) violation(result, `conflict for a key only ever sent with one content: ${k}`);
        if (outcome.status === 'accepted') state.acceptedAnswers += 1;
        if (state.ackedSeq === null) {
          state.ackedSeq = outcome.seq;
          acked.push(k);
        } else if (state.ackedSeq !== outcome.seq) {
          violation(result, `seq of ${k} changed from ${state.ackedSeq} to ${outcome.seq}`);
        }
      });
      outstanding = null;
    }
  };

  let publishers: Array<Promise<void>> = [];
  try {
    await Promise.all(instances.map((i) => i.start()));
    publishers = Array.from({ length: options.publishers }, (_, id) => publisher(id));
    for (; result.cycles < options.cycles; result.cycles += 1) {
      await pause(100 + random.int(300));
      const fault = random.pick(FAULTS);
      result.faults[fault] += 1;
      const victim = random.pick(instances);
      switch (fault) {
        case 'kill':
          await victim.kill();
          await pause(random.int(200));
          await victim.start();
          break;
        case 'outage':
          proxy.setMode('down');
          await pause(200 + random.int(600));
          proxy.setMode('pass');
          break;
        case 'latency':
          proxy.latencyMs = 50 + random.int(400);
          await pause(300 + random.int(500));
          proxy.latencyMs = 0;
          break;
        case 'kill_during_outage':
          proxy.setMode('down');
          await pause(random.int(300));
          await victim.kill();
          proxy.setMode('pass');
          await victim.start();
          break;
      }
      if (options.progress !== null && (result.cycles + 1) % options.progressEvery === 0) {
        options.progress(
          `cycle ${result.cycles + 1}/${options.cycles}: acked=${acked.length} requests=${result.requests} elapsed_s=${((Date.now() - started) / 1000).toFixed(0)}`,
        );
      }
    }

    // Drain: no faults; every publisher finishes its outstanding request.
    draining = true;
    await withDeadline(Promise.all(publishers), 120_000, 'the publishers to drain');
    await verify(instances, keys, result, options.retentionBytes > 0);
  } catch (err) {
    result.aborted = (err as Error).stack ?? String(err);
  } finally {
    stopped = true;
    await Promise.race([Promise.all(publishers), pause(5000)]);
    for (const instance of instances) await instance.kill();
    await proxy.close();
    await db.drop().catch(() => undefined);
  }
  result.acked = acked.length;
  result.elapsedMs = Date.now() - started;
  result.ok =
    result.aborted === null &&
    result.lost === 0 &&
    result.duplicated === 0 &&
    result.garbled === 0 &&
    result.unsent === 0 &&
    result.violations.length === 0 &&
    result.statsProblems.length === 0;
  return result;
}

interface StoredEvent {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: unknown;
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return res.json();
}

async function verify(instances: Instance[], keys: Map<string, KeyState>, result: ClusterChaosResult, retention: boolean): Promise<void> {
  const urls = instances.map((i) => i.url!);
  // Every instance has decided what it logged (queue_size 0), so the stored set is final; with
  // retention, also no deletion between the reads below: expired_events holds still for longer than a retention check.
  let settled: { since: number; expired: number } | null = null;
  let settledExpired = 0;
  await waitFor(
    async () => {
      let expired = 0;
      for (const url of urls) {
        const stats = (await getJson(`${url}/stats`)) as { queue_size: number; expired_events?: number };
        if (stats.queue_size !== 0) return false;
        expired = stats.expired_events ?? 0;
      }
      if (!retention) return true;
      if (settled?.expired !== expired) settled = { since: Date.now(), expired };
      settledExpired = expired;
      return Date.now() - settled.since > RETENTION_SETTLE_MS;
    },
    { timeoutMs: 60_000, what: 'every instance to decide its log' },
  );
  const seen = new Map<string, number>();
  let after: number | null = null;
  for (;;) {
    const page = (await getJson(`${urls[0]}/events?limit=1000${after === null ? '' : `&after=${after}`}`)) as {
      events: StoredEvent[];
      next_cursor: string | null;
    };
    for (const stored of page.events) {
      result.stored += 1;
      const key = `${stored.topic}\u0000${stored.event_id}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const state = keys.get(key);
      if (state === undefined) {
        result.unsent += 1;
        example(result, `stored but never sent: ${key}`);
        continue;
      }
      const same =
        JSON.stringify(stored.payload) === state.payloadJson &&
        stored.timestamp === state.body.timestamp &&
        stored.source === state.body.source;
      if (!same || (state.ackedSeq !== null && stored.seq !== state.ackedSeq)) {
        result.garbled += 1;
        example(result, `garbled: ${key} stored seq ${stored.seq}, acked seq ${state.ackedSeq}`);
      }
    }
    if (page.next_cursor === null) break;
    after = Number(page.next_cursor);
  }
  // Retention mode: a key no longer stored but acknowledged must still be known with its seq (deleted, key kept).
  const expiredKeys = new Set<string>();
  const storedByResend = retention ? await findExpired(urls[0]!, keys, seen, expiredKeys, result) : 0;
  for (const [key, state] of keys) {
    const count = (seen.get(key) ?? 0) + (expiredKeys.has(key) ? 1 : 0);
    if (count > 1) {
      result.duplicated += 1;
      example(result, `stored ${count} times: ${key}`);
    }
    if (state.ackedSeq !== null && count === 0) {
      result.lost += 1;
      example(result, `acknowledged with seq ${state.ackedSeq} but not stored: ${key}`);
    }
    if (state.acceptedAnswers > 1) violation(result, `answered accepted ${state.acceptedAnswers} times: ${key}`);
    if (count === 1 && state.acceptedAnswers === 0) {
      result.storedUnanswered += 1;
      if (!state.uncertain) violation(result, `stored, never answered accepted, and no attempt was uncertain: ${key}`);
    }
  }
  const everStored = result.stored + result.expired;
  if (result.acceptedAnswered !== everStored - result.storedUnanswered) {
    result.statsProblems.push(
      `accepted answers ${result.acceptedAnswered} != stored ${result.stored} + expired ${result.expired} - unanswered ${result.storedUnanswered}`,
    );
  }
  // /stats: the same on every instance, and equal to the stored events.
  const all = (await Promise.all(urls.map((u) => getJson(`${u}/stats`)))) as Array<{
    received: number;
    unique_processed: number;
    duplicate_dropped: number;
    accepted: number;
    expired_events?: number;
  }>;
  for (const [i, stats] of all.entries()) {
    if (stats.unique_processed !== everStored + storedByResend)
      result.statsProblems.push(
        `instance ${i}: unique_processed=${stats.unique_processed}, stored ${result.stored} + expired ${result.expired} + stored by the final re-send ${storedByResend}`,
      );
    // The final re-send logs records too, so retention may delete more after it: compare the count read before it.
    if (retention && settledExpired !== result.expired)
      result.statsProblems.push(`expired_events=${settledExpired} before the re-send, expired keys found ${result.expired}`);
    if (stats.received !== stats.unique_processed + stats.duplicate_dropped)
      result.statsProblems.push(`instance ${i}: received != unique + duplicates`);
    const first = all[0]!;
    if (stats.received !== first.received || stats.duplicate_dropped !== first.duplicate_dropped) {
      result.statsProblems.push(`instance ${i} /stats ${JSON.stringify(stats)} differs from instance 0 ${JSON.stringify(first)}`);
    }
  }
}

/** How long expired_events must hold still before the final reads (longer than a retention check, 1 s). */
const RETENTION_SETTLE_MS = 2500;

/**
 * Re-sends every key sent but not stored now (a duplicate of a stored key changes nothing);
 * one answered `duplicate` was stored and deleted by retention with its key kept: it must
 * carry the acknowledged seq. One answered `accepted` was never stored before; were it
 * acknowledged, it is lost (found by the caller). Runs after the pages, before /stats.
 */
async function findExpired(
  url: string,
  keys: Map<string, KeyState>,
  seen: Map<string, number>,
  expired: Set<string>,
  result: ClusterChaosResult,
): Promise<number> {
  const missing = [...keys.keys()].filter((key) => !seen.has(key));
  const fresh: string[] = [];
  for (let i = 0; i < missing.length; i += 500) {
    const slice = missing.slice(i, i + 500);
    const res = await fetch(`${url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: slice.map((k) => keys.get(k)!.body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (res.status !== 200) throw new Error(`the re-send of missing keys answered ${res.status}`);
    const answer = (await res.json()) as PublishAnswer;
    slice.forEach((key, j) => {
      const outcome = answer.results?.[j];
      const state = keys.get(key)!;
      if (outcome?.status === 'duplicate') {
        expired.add(key);
        result.expired += 1;
        if (state.ackedSeq !== null && outcome.seq !== state.ackedSeq) {
          result.garbled += 1;
          example(result, `expired ${key} answered seq ${outcome.seq}, acked seq ${state.ackedSeq}`);
        }
        if (outcome.conflict === true) violation(result, `the re-send of expired ${key} is a conflict`);
      } else {
        fresh.push(key);
      }
    });
  }
  // Stored now by the re-send itself: /stats counts them, the campaign does not.
  return fresh.length;
}

function violation(result: ClusterChaosResult, text: string): void {
  if (result.violations.length < 100) result.violations.push(text);
}

function example(result: ClusterChaosResult, text: string): void {
  if (result.examples.length < 20) result.examples.push(text);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
