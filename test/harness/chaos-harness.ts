import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeDisk } from '../../src/wal/disk';
import { readSegments, type LogItem } from '../../src/wal/reader';
import { retainedSegments } from '../../src/wal/retention';
import { PublisherLedger, type SentEvent } from './chaos-publisher';
import { Random } from '../../src/cli/random';
import { waitFor } from '../../src/cli/wait';
import { ServerRun } from './server-process';

/** Settings of one chaos campaign (flags of `npm run chaos`). */
export interface ChaosOptions {
  /** Kill/restart cycles to run. */
  cycles: number;
  /** Bound on the whole campaign; no new cycle starts after it (0 = none). */
  durationMs: number;
  /** Concurrent at-least-once publishers. */
  publishers: number;
  /** Data dir the server runs on; a fresh temp dir when omitted. */
  dataDir?: string;
  /** Longest time the server runs in a cycle before the kill. */
  cycleMs: number;
  /** SEGMENT_BYTES_MAX of the server: small, so that kills land during rotation. */
  segmentBytesMax: number;
  /** Most events in one batch request. */
  batchEventsMax: number;
  /** Seed of the campaign's random choices (timing itself is not reproducible). */
  seed: number;
  /** Keep the data dir after a successful campaign. */
  keepDataDir: boolean;
  /** Progress lines go here (one every `progressEvery` cycles); null for none. */
  progress: ((line: string) => void) | null;
  progressEvery: number;
  /**
   * Retention mode: the server's RETENTION_BYTES (0: off). With a small SEGMENT_BYTES_MAX,
   * deletions run all the time, and a kill mode lands during them.
   */
  retentionBytes: number;
  /** Chance that an event of a request is a re-send of an acknowledged one. */
  resendAckedChance: number;
  /**
   * Retention mode: at the end, re-send every acknowledged event that retention deleted and
   * require a `duplicate` answer naming its original seq (needs a key store that outlives rows).
   */
  checkExpiredResends: boolean;
}

/** Defaults of every flag: a short campaign (30 cycles) that finishes in well under a minute on an idle machine. */
export const CHAOS_DEFAULTS: ChaosOptions = {
  cycles: 30,
  durationMs: 0,
  publishers: 4,
  cycleMs: 400,
  segmentBytesMax: 16 * 1024,
  batchEventsMax: 20,
  seed: 1,
  keepDataDir: false,
  progress: null,
  progressEvery: 50,
  retentionBytes: 0,
  resendAckedChance: 0.1,
  checkExpiredResends: false,
};

/** Where in a server's life the SIGKILL lands. */
export type KillMode = 'random' | 'after_ack' | 'rotation' | 'recovery' | 'deletion';
const KILL_MODES: readonly KillMode[] = ['random', 'after_ack', 'rotation', 'recovery', 'deletion'];

/** The verdict of a campaign; `ok` is true only when every count of harm is 0. */
export interface ChaosResult {
  ok: boolean;
  cycles: number;
  acked: number;
  /** Acknowledged keys missing from the index or the log. */
  lost: number;
  /** Keys stored more than once (index rows or log records). */
  duplicated: number;
  /** Stored content or seq differing from what was sent and acknowledged; unreadable log records. */
  garbled: number;
  /** Stored keys that no publisher ever sent. */
  unsent: number;
  /** Retention mode: acknowledged events deleted by retention (absent, and rightly so). */
  expired: number;
  /** The first retained seq at the end (1 without retention). */
  firstSeq: number;
  /** Retention mode: events GET /events returned from below the first retained seq (their segment is gone). */
  resurrected: number;
  /** Retention mode (checkExpiredResends): expired events re-sent, and those not answered as the original's duplicate. */
  expiredResent: number;
  expiredForgotten: number;
  /** Contract breaches seen in answers (see PublisherFigures.violations). */
  violations: string[];
  statsOk: boolean;
  statsProblems: string[];
  stored: number;
  tornTails: number;
  kills: Record<KillMode, number>;
  requests: number;
  resentAcked: number;
  elapsedMs: number;
  dataDir: string;
  /** Why the campaign stopped early (a server that would not start, a timeout); null if it ran to the end. */
  aborted: string | null;
  /** Examples of each harm, for the report. */
  examples: string[];
}

/** The one summary line of a campaign. */
export function summaryLine(result: ChaosResult): string {
  const kills = KILL_MODES.map((mode) => `${mode}:${result.kills[mode]}`).join(',');
  return (
    `cycles=${result.cycles} acked=${result.acked} lost=${result.lost} duplicated=${result.duplicated} garbled=${result.garbled} ` +
    `unsent=${result.unsent} expired=${result.expired} resurrected=${result.resurrected} expired_forgotten=${result.expiredForgotten}/${result.expiredResent} violations=${result.violations.length} stats=${result.statsOk ? 'ok' : 'MISMATCH'} stored=${result.stored} ` +
    `torn_tails=${result.tornTails} kills=${kills} requests=${result.requests} resent_acked=${result.resentAcked} ` +
    `elapsed_s=${(result.elapsedMs / 1000).toFixed(1)}${result.aborted === null ? '' : ' ABORTED'}`
  );
}

/** Bound on a server start (listening, then recovery done). */
const START_TIMEOUT_MS = 60_000;
/** Bound on one publish request. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Client back-off after a 503 or a refused connection. */
const RETRY_BACKOFF_MS = 20;
/** Bound on the final drain (every outstanding request answered 200). */
const DRAIN_TIMEOUT_MS = 120_000;

const TEXT_PIECES = ['a', 'Z', '0', ' ', '"', '\\', '\n', 'é', 'ß', '日本', '\u2028', '😀', '\u0000', '{', '}', '__proto__'];

interface Campaign {
  options: ChaosOptions;
  ledger: PublisherLedger;
  url: string | null;
  draining: boolean;
  stopped: boolean;
  onAck: (() => void) | null;
  wakeups: Array<() => void>;
}

function wake(campaign: Campaign): void {
  const wakeups = campaign.wakeups.splice(0);
  for (const resolve of wakeups) resolve();
}

/** Waits for the next server URL (or a stop), or for at most `ms`. */
function pause(campaign: Campaign, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    campaign.wakeups.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function randomText(random: Random, maxPieces: number): string {
  let text = '';
  const pieces = random.int(maxPieces);
  for (let i = 0; i < pieces; i += 1) text += random.pick(TEXT_PIECES);
  return text;
}

/** One at-least-once publisher: it re-sends the same request until a 200, whatever happens. */
async function runPublisher(campaign: Campaign, id: number): Promise<void> {
  const random = new Random(campaign.options.seed * 1000 + id + 1);
  const { ledger } = campaign;
  let counter = 0;
  let outstanding: { events: SentEvent[]; single: boolean } | null = null;

  const newEvent = (): SentEvent => {
    counter += 1;
    const topic = `chaos-${random.int(4)}`;
    const eventId = `p${id}-${counter}`;
    const payload: Record<string, unknown> = { publisher: id, n: counter, text: randomText(random, 40) };
    if (random.chance(0.1)) payload.nested = { list: [1, 'two', { three: null }], deep: { deeper: { flag: true } } };
    if (random.chance(0.05)) payload.padding = 'x'.repeat(random.int(4000));
    const body = { topic, event_id: eventId, timestamp: new Date().toISOString(), source: `chaos-p${id}`, payload };
    const sent: SentEvent = { topic, eventId, body, payloadJson: JSON.stringify(payload) };
    ledger.register(sent);
    return sent;
  };

  while (!campaign.stopped) {
    if (outstanding === null) {
      if (campaign.draining) return;
      const size = random.chance(0.5) ? 1 : 1 + random.int(campaign.options.batchEventsMax);
      const events: SentEvent[] = [];
      for (let i = 0; i < size; i += 1) {
        const resend = random.chance(campaign.options.resendAckedChance) ? ledger.pickAcked(random) : null;
        if (resend !== null) ledger.figures.resentAcked += 1;
        events.push(resend ?? newEvent());
      }
      outstanding = { events, single: size === 1 && random.chance(0.7) };
    }
    const url = campaign.url;
    if (url === null) {
      await pause(campaign, 1000);
      continue;
    }
    const request = outstanding;
    const payload = request.single ? request.events[0]!.body : { events: request.events.map((e) => e.body) };
    ledger.figures.requests += 1;
    let status: number;
    let answer: unknown;
    try {
      const res = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      status = res.status;
      answer = await res.json().catch(() => null);
    } catch {
      // The server died under the request: its events may or may not be stored; re-send.
      ledger.figures.networkErrors += 1;
      if (campaign.url === url) await pause(campaign, RETRY_BACKOFF_MS);
      continue;
    }
    if (status === 200) {
      ledger.figures.ok += 1;
      ledger.recordAnswer(request.events, answer as Parameters<PublisherLedger['recordAnswer']>[1]);
      outstanding = null;
      campaign.onAck?.();
    } else if (status === 503) {
      ledger.figures.unavailable += 1;
      await pause(campaign, RETRY_BACKOFF_MS);
    } else {
      ledger.violation(`a valid request was answered ${status}: ${JSON.stringify(answer).slice(0, 300)}`);
      outstanding = null;
    }
  }
}

/** Bytes of a server's output kept for a failure report (the last few dozen lines). */
const SERVER_OUTPUT_BYTES_MAX = 16 * 1024;

async function startServer(dataDir: string, options: ChaosOptions): Promise<ServerRun> {
  const env = {
    SEGMENT_BYTES_MAX: String(options.segmentBytesMax),
    BATCH_EVENTS_MAX: String(Math.max(options.batchEventsMax, 1)),
    RETRY_AFTER_SECONDS: '1',
    RETENTION_BYTES: String(options.retentionBytes),
  };
  return new ServerRun(dataDir, env, { outputBytesMax: SERVER_OUTPUT_BYTES_MAX });
}

/** Arms the kill of this cycle and resolves once the server is dead. */
async function killServer(campaign: Campaign, server: ServerRun, mode: KillMode, random: Random, walDir: string): Promise<void> {
  const { cycleMs } = campaign.options;
  let watcher: fs.FSWatcher | null = null;
  // 'recovery' kills within the first milliseconds after listening, while the log is replayed.
  const delayMs = mode === 'random' ? random.int(cycleMs + 1) : mode === 'recovery' ? random.int(60) : cycleMs * 3;
  const fallback = setTimeout(() => server.killNow(), delayMs);
  if (mode === 'after_ack') {
    campaign.onAck = () => server.killNow();
  } else if (mode === 'rotation' && fs.existsSync(walDir)) {
    // A new segment file appears: the writer is between creating it and its first fdatasync.
    watcher = fs.watch(walDir, (_event, name) => {
      if (typeof name === 'string' && name.endsWith('.ndjson')) server.killNow();
    });
  } else if (mode === 'deletion' && fs.existsSync(walDir)) {
    // The retention marker is being replaced: a deletion is between its index drop and its unlink.
    watcher = fs.watch(walDir, (_event, name) => {
      if (typeof name === 'string' && name.startsWith('RETAINED')) server.killNow();
    });
  }
  await server.exited;
  clearTimeout(fallback);
  watcher?.close();
  campaign.onAck = null;
}

/**
 * Runs a chaos campaign: the real server on one data dir, several at-least-once publishers,
 * SIGKILL at random instants (any time, right after an acknowledgement, as a new segment
 * appears, during recovery), restart, repeat; then a last clean run that drains every
 * publisher and checks the index, the log and /stats against what was acknowledged.
 */
export async function runChaos(input: Partial<ChaosOptions> = {}): Promise<ChaosResult> {
  const options: ChaosOptions = { ...CHAOS_DEFAULTS, ...input };
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-chaos-'));
  const walDir = path.join(dataDir, 'wal');
  const started = Date.now();
  const random = new Random(options.seed);
  const campaign: Campaign = {
    options,
    ledger: new PublisherLedger(),
    url: null,
    draining: false,
    stopped: false,
    onAck: null,
    wakeups: [],
  };
  const kills: Record<KillMode, number> = { random: 0, after_ack: 0, rotation: 0, recovery: 0, deletion: 0 };
  const modes = options.retentionBytes > 0 ? KILL_MODES : KILL_MODES.filter((mode) => mode !== 'deletion');
  let tornTails = 0;
  let aborted: string | null = null;
  let cycles = 0;
  const publishers = Array.from({ length: options.publishers }, (_, id) => runPublisher(campaign, id));

  // The kill/restart cycles.
  let server: ServerRun | null = null;
  try {
    while (cycles < options.cycles && (options.durationMs === 0 || Date.now() - started < options.durationMs)) {
      const mode = random.pick(modes);
      server = await startServer(dataDir, options);
      const current = server;
      await current.waitUntil(() => current.port !== null || !current.running, START_TIMEOUT_MS, 'the server to listen');
      if (!current.running) throw new Error(`the server exited by itself at start (cycle ${cycles + 1}):\n${current.output()}`);
      campaign.url = `http://127.0.0.1:${current.port}`;
      wake(campaign);
      if (mode !== 'recovery') {
        await current.waitUntil(() => current.recoveryDone || !current.running, START_TIMEOUT_MS, 'recovery to finish');
        if (!current.running) throw new Error(`the server exited by itself during recovery (cycle ${cycles + 1}):\n${current.output()}`);
      }
      await killServer(campaign, current, mode, random, walDir);
      const exit = await current.exited;
      campaign.url = null;
      tornTails += current.tornTails;
      if (exit.signal !== 'SIGKILL')
        throw new Error(`the server exited by itself (${JSON.stringify(exit)}) in cycle ${cycles + 1}:\n${current.output()}`);
      kills[mode] += 1;
      cycles += 1;
      if (options.progress !== null && cycles % options.progressEvery === 0) {
        options.progress(
          `cycle ${cycles}/${options.cycles}: acked=${campaign.ledger.ackedCount} requests=${campaign.ledger.figures.requests} torn_tails=${tornTails} elapsed_s=${((Date.now() - started) / 1000).toFixed(0)}`,
        );
      }
    }
  } catch (err) {
    aborted = (err as Error).message;
    server?.killNow();
  }

  // The final run: no kill; every publisher finishes its outstanding request.
  const result: ChaosResult = {
    ok: false,
    cycles,
    acked: 0,
    lost: 0,
    duplicated: 0,
    garbled: 0,
    unsent: 0,
    expired: 0,
    firstSeq: 1,
    resurrected: 0,
    expiredResent: 0,
    expiredForgotten: 0,
    violations: campaign.ledger.figures.violations,
    statsOk: false,
    statsProblems: [],
    stored: 0,
    tornTails,
    kills,
    requests: 0,
    resentAcked: 0,
    elapsedMs: 0,
    dataDir,
    aborted,
    examples: [],
  };
  campaign.draining = true;
  if (aborted === null) {
    const final = await startServer(dataDir, options);
    try {
      await final.waitUntil(() => final.recoveryDone || !final.running, START_TIMEOUT_MS, 'the final recovery');
      if (!final.running) throw new Error(`the server exited by itself in the final run:\n${final.output()}`);
      tornTails += final.tornTails;
      result.tornTails = tornTails;
      campaign.url = `http://127.0.0.1:${final.port}`;
      wake(campaign);
      await withDeadline(Promise.all(publishers), DRAIN_TIMEOUT_MS, 'the publishers to drain');
      await verifyIndex(campaign.url, campaign.ledger, result, options.retentionBytes > 0);
      if (options.checkExpiredResends) await resendExpired(campaign.url, campaign.ledger, result, Math.max(options.batchEventsMax, 1));
      final.child.kill('SIGTERM');
      const exit = await withDeadline(final.exited, 30_000, 'the final server to stop');
      if (exit.code !== 0) result.statsProblems.push(`the final server stopped with ${JSON.stringify(exit)} after SIGTERM`);
      verifyLog(walDir, campaign.ledger, result);
    } catch (err) {
      result.aborted = (err as Error).message;
    } finally {
      final.killNow();
    }
  }
  campaign.stopped = true;
  wake(campaign);
  await Promise.race([Promise.all(publishers), pauseMs(5000)]);

  result.acked = [...campaign.ledger.keys.values()].filter((k) => k.ackedSeq !== null).length;
  result.requests = campaign.ledger.figures.requests;
  result.resentAcked = campaign.ledger.figures.resentAcked;
  result.elapsedMs = Date.now() - started;
  result.ok =
    result.aborted === null &&
    result.lost === 0 &&
    result.duplicated === 0 &&
    result.garbled === 0 &&
    result.unsent === 0 &&
    result.resurrected === 0 &&
    result.expiredForgotten === 0 &&
    result.violations.length === 0 &&
    result.statsOk;
  if (result.ok && !options.keepDataDir && options.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  return result;
}

function pauseMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
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

function example(result: ChaosResult, text: string): void {
  if (result.examples.length < 20) result.examples.push(text);
}

/** The fields of GET /stats that the final checks read. */
interface StatsAnswer {
  queue_size: number;
  unique_processed: number;
  accepted: number;
  received: number;
  duplicate_dropped: number;
  checkpoint_seq: number;
  first_seq: number;
  expired_events: number;
}

/** One page of GET /events, as far as the final checks read it. */
interface EventsPage {
  events: Array<{ seq: number; topic: string; event_id: string; timestamp: string; source: string; payload: unknown }>;
  next_cursor: string | null;
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return res.json();
}

/** Longer than the retention runner's check interval (FIXED_LIMITS.retentionCheckMs, 1 s). */
const RETENTION_SETTLE_MS = 2500;

/** Compares every stored event (GET /events, all pages) and /stats with the ledger. */
async function verifyIndex(url: string, ledger: PublisherLedger, result: ChaosResult, retention: boolean): Promise<void> {
  // Everything acknowledged is in the log; wait until the consumer has indexed it.
  const caughtUp = (): Promise<StatsAnswer> =>
    waitFor(
      async () => {
        const current = (await getJson(`${url}/stats`)) as StatsAnswer;
        return current.queue_size === 0 ? current : null;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: 'the index to catch up (queue_size 0)', errors: 'throw' },
    );
  let stats = await caughtUp();
  // Retention may still delete a segment after the index caught up (it runs after commits and
  // once a second): wait until the log's start stays put for longer than a retention check, so
  // that /stats and the pages below describe the same log.
  for (let settled = !retention, tries = 0; !settled; tries += 1) {
    if (tries >= 60) throw new Error(`retention did not come to rest: first_seq still moving (${stats.first_seq})`);
    await new Promise((resolve) => setTimeout(resolve, RETENTION_SETTLE_MS));
    const again = await caughtUp();
    settled = again.first_seq === stats.first_seq && again.expired_events === stats.expired_events;
    stats = again;
  }

  const seen = new Map<string, number>();
  let after: string | null = null;
  result.firstSeq = stats.first_seq;
  for (;;) {
    const page = (await getJson(`${url}/events?limit=1000${after === null ? '' : `&after=${after}`}`)) as EventsPage;
    for (const stored of page.events) {
      result.stored += 1;
      if (stored.seq < stats.first_seq) {
        result.resurrected += 1;
        example(result, `GET /events returned seq ${stored.seq}, below the first retained seq ${stats.first_seq}`);
      }
      const key = PublisherLedger.keyOf(stored.topic, stored.event_id);
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const record = ledger.keys.get(key);
      if (record === undefined) {
        result.unsent += 1;
        example(result, `stored but never sent: ${key}`);
        continue;
      }
      const sent = record.event.body;
      const same =
        JSON.stringify(stored.payload) === record.event.payloadJson && stored.timestamp === sent.timestamp && stored.source === sent.source;
      if (!same || (record.ackedSeq !== null && stored.seq !== record.ackedSeq)) {
        result.garbled += 1;
        example(result, `garbled: ${key} stored seq ${stored.seq} ${JSON.stringify(stored).slice(0, 200)}, acked seq ${record.ackedSeq}`);
      }
    }
    if (page.next_cursor === null) break;
    after = page.next_cursor;
  }
  for (const [key, record] of ledger.keys) {
    const count = seen.get(key) ?? 0;
    if (count > 1) {
      result.duplicated += 1;
      example(result, `stored ${count} times: ${key}`);
    }
    if (record.ackedSeq !== null && count === 0 && record.ackedSeq < stats.first_seq) {
      result.expired += 1;
    } else if (record.ackedSeq !== null && count === 0) {
      result.lost += 1;
      example(result, `acknowledged with seq ${record.ackedSeq} but not in the index: ${key}`);
    }
  }

  // Stats agree with the index, at rest.
  const problems = result.statsProblems;
  // Events retention deleted still count in the lifetime counters.
  const everStored = result.stored + stats.expired_events;
  if (stats.unique_processed !== everStored)
    problems.push(
      `unique_processed=${stats.unique_processed} but the index holds ${result.stored} events and ${stats.expired_events} expired`,
    );
  if (stats.accepted !== everStored)
    problems.push(`accepted=${stats.accepted} but the index holds ${result.stored} events and ${stats.expired_events} expired`);
  if (stats.received !== stats.unique_processed + stats.duplicate_dropped) {
    problems.push(
      `received=${stats.received} is not unique_processed + duplicate_dropped = ${stats.unique_processed + stats.duplicate_dropped}`,
    );
  }
  if (stats.checkpoint_seq !== stats.accepted) problems.push(`checkpoint_seq=${stats.checkpoint_seq} but accepted=${stats.accepted}`);
  result.statsOk = problems.length === 0;
}

/** Reads every segment of the log into `result`: each record valid, each key once, nothing unsent, nothing acknowledged missing. */
export function verifyLog(walDir: string, ledger: PublisherLedger, result: ChaosResult): void {
  const counts = new Map<string, number>();
  // Policy: after a clean stop, any corruption, seq break or torn tail garbles its segment; the
  // log starts where the retention marker says (at seq 1 without one).
  let problem: LogItem | null = null;
  const retained = retainedSegments(new NodeDisk(), walDir);
  if (retained.expired.length > 0) {
    result.garbled += 1;
    example(result, `after a clean stop, segments below the first retained seq remain: ${retained.expired.map((s) => s.name).join(', ')}`);
  }
  for (const item of readSegments(new NodeDisk(), retained.segments, { expectedFirstSeq: retained.firstSeq })) {
    if (item.kind === 'corruption' || item.kind === 'seq_break' || item.kind === 'torn_tail') problem ??= item;
    if (item.kind === 'segment_end' && problem !== null) {
      result.garbled += 1;
      example(
        result,
        `log segment ${item.segment.name} after a clean stop has a ${problem.kind}: ${JSON.stringify({ ...problem, segment: undefined })}`,
      );
      problem = null;
    }
    if (item.kind !== 'record') continue;
    const event = JSON.parse(item.eventJson) as { topic: string; event_id: string };
    const key = PublisherLedger.keyOf(event.topic, event.event_id);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  for (const [key, count] of counts) {
    if (!ledger.keys.has(key)) {
      result.unsent += 1;
      example(result, `in the log but never sent: ${key}`);
    }
    if (count > 1) {
      result.duplicated += 1;
      example(result, `in the log ${count} times: ${key}`);
    }
  }
  for (const [key, record] of ledger.keys) {
    if (record.ackedSeq !== null && !counts.has(key) && record.ackedSeq >= retained.firstSeq) {
      result.lost += 1;
      example(result, `acknowledged with seq ${record.ackedSeq} but not in the log: ${key}`);
    }
  }
}

/**
 * Re-sends every acknowledged event that retention deleted (seq below the first retained
 * one): each must be answered `duplicate` with its original seq (the key outlives its event).
 */
async function resendExpired(url: string, ledger: PublisherLedger, result: ChaosResult, batchEvents: number): Promise<void> {
  const expired = [...ledger.keys.values()].filter((k) => k.ackedSeq !== null && k.ackedSeq < result.firstSeq);
  for (let i = 0; i < expired.length; i += batchEvents) {
    const batch = expired.slice(i, i + batchEvents);
    const res = await fetch(`${url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: batch.map((k) => k.event.body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const answer = (await res.json()) as { results?: Array<{ status: string; seq: number }> };
    if (res.status !== 200)
      result.statsProblems.push(`re-sending expired events was answered ${res.status}: ${JSON.stringify(answer).slice(0, 200)}`);
    batch.forEach((k, index) => {
      result.expiredResent += 1;
      const outcome = answer.results?.[index];
      if (outcome?.status === 'duplicate' && outcome.seq === k.ackedSeq) return;
      result.expiredForgotten += 1;
      example(
        result,
        `expired ${PublisherLedger.keyOf(k.event.topic, k.event.eventId)} (seq ${k.ackedSeq}) re-sent: ${JSON.stringify(outcome)}`,
      );
    });
  }
}
