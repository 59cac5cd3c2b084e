import fs from 'node:fs';
import split2 from 'split2';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, FILTER_OPTIONS, parseFilter, UsageError, type EventFilter } from './args';
import { delay, postWithRetries } from './http-client';
import { splitEventJsonSeq } from '../wal/record';
import { segmentsFrom } from '../wal/segments';
import { logSegments, matchesFilter, readRetainedLog, segmentsBytes } from './log-files';
import { startProgress, type Progress } from './progress';

/** One event to re-publish: its JSON as logged (without seq) and its seq in the source. */
interface ReplayEvent {
  seq: number | null;
  json: string;
}

/** The outcome of a replay, as `--json` prints it. */
export interface ReplaySummary {
  to: string;
  from: string;
  sent: number;
  accepted: number;
  duplicates: number;
  conflicts: number;
  batches: number;
  retries: number;
  /** Retries after a network error, whose first attempt may have been applied (then counted as duplicates). */
  ambiguousRetries: number;
  firstSeq: number | null;
  lastSeq: number | null;
  elapsedMs: number;
  eventsPerSecond: number;
  failed: { reason: string; status: number | null; body: unknown; atSeq: number | null } | null;
}

/** Events of the log that match the filter, with progress counted in segment bytes. */
async function* fromLog(walDir: string, filter: EventFilter, progress: Progress): AsyncGenerator<ReplayEvent> {
  // Policy: records only; corruption, seq breaks, tombstones and a torn tail are skipped.
  for (const item of readRetainedLog(walDir, { fromSeq: filter.fromSeq ?? 1, onBytesRead: (bytes) => progress.update(bytes) })) {
    if (item.kind === 'record' && matchesFilter(item.seq, item.eventJson, filter)) yield { seq: item.seq, json: item.eventJson };
  }
}

/** Events of an export file (or stdin), seq stripped, that match the filter. */
async function* fromNdjson(
  input: NodeJS.ReadableStream,
  name: string,
  filter: EventFilter,
  progress: Progress,
): AsyncGenerator<ReplayEvent> {
  let lineNumber = 0;
  for await (const line of input.pipe(split2()) as AsyncIterable<string>) {
    lineNumber += 1;
    progress.increment(Buffer.byteLength(line) + 1);
    if (line.trim() === '') continue;
    let seq: number | null = null;
    let json: string;
    const split = splitEventJsonSeq(line);
    if (split !== null) {
      // The export shape: the seq spliced out without re-serialising the event.
      ({ seq, eventJson: json } = split);
    } else {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`${name} line ${lineNumber}: not JSON`);
      }
      if (typeof parsed.seq === 'number') seq = parsed.seq;
      // The target takes its own acceptance time: received_at is a reader's key, not the event's.
      delete parsed.seq;
      delete parsed.received_at;
      json = JSON.stringify(parsed);
    }
    if (matchesFilter(seq ?? Number.MAX_SAFE_INTEGER, json, filter)) yield { seq, json };
  }
}

/**
 * Re-publishes events in order to another aggregator's POST /publish, in batches bounded by
 * count and bytes, one batch at a time (so the target stores them in the same order),
 * retrying 503/429/network errors with backoff and Retry-After, splitting a batch the target
 * calls too large. Dedup on the target makes it safe to run again: a second run reports
 * every event as a duplicate. It stops at the first answer it cannot retry.
 */
export async function replayEvents(
  events: AsyncIterable<ReplayEvent>,
  options: {
    to: string;
    from: string;
    batchEventsMax: number;
    batchBytesMax: number;
    retries: number;
    timeoutMs: number;
    rate: number | undefined;
    onRetry?: (reason: string, waitMs: number) => void;
  },
): Promise<ReplaySummary> {
  const started = performance.now();
  const summary: ReplaySummary = {
    to: options.to,
    from: options.from,
    sent: 0,
    accepted: 0,
    duplicates: 0,
    conflicts: 0,
    batches: 0,
    retries: 0,
    ambiguousRetries: 0,
    firstSeq: null,
    lastSeq: null,
    elapsedMs: 0,
    eventsPerSecond: 0,
    failed: null,
  };
  const url = `${options.to}/publish`;
  // With a rate limit, batches shrink so that a second's worth is spread over the second.
  const batchMax =
    options.rate === undefined ? options.batchEventsMax : Math.max(1, Math.min(options.batchEventsMax, Math.ceil(options.rate / 4)));

  const send = async (batch: ReplayEvent[]): Promise<boolean> => {
    if (options.rate !== undefined) {
      const dueMs = started + (summary.sent / options.rate) * 1000;
      const waitMs = dueMs - performance.now();
      if (waitMs > 0) await delay(waitMs);
    }
    const body = `{"events":[${batch.map((e) => e.json).join(',')}]}`;
    const { answer, error, retries, ambiguousRetries } = await postWithRetries(url, body, {
      retries: options.retries,
      timeoutMs: options.timeoutMs,
      onRetry: options.onRetry,
    });
    summary.retries += retries;
    summary.ambiguousRetries += ambiguousRetries;
    const atSeq = batch[0]!.seq;
    if (answer === null) {
      summary.failed = { reason: `no answer after ${retries} retries: ${error?.message}`, status: null, body: null, atSeq };
      return false;
    }
    if (answer.status === 413 && batch.length > 1) {
      // The target's limits are lower than ours: halve and go on.
      const half = Math.ceil(batch.length / 2);
      return (await send(batch.slice(0, half))) && (await send(batch.slice(half)));
    }
    if (answer.status !== 200) {
      summary.failed = { reason: `POST /publish answered ${answer.status}`, status: answer.status, body: answer.body, atSeq };
      return false;
    }
    const result = answer.body as { accepted: number; duplicates: number; conflicts?: number };
    summary.batches += 1;
    summary.sent += batch.length;
    summary.accepted += result.accepted;
    summary.duplicates += result.duplicates;
    summary.conflicts += result.conflicts ?? 0;
    summary.firstSeq ??= batch[0]!.seq;
    summary.lastSeq = batch[batch.length - 1]!.seq;
    return true;
  };

  let batch: ReplayEvent[] = [];
  let batchBytes = 0;
  for await (const event of events) {
    const bytes = Buffer.byteLength(event.json) + 1;
    if (batch.length > 0 && (batch.length >= batchMax || batchBytes + bytes > options.batchBytesMax)) {
      if (!(await send(batch))) break;
      batch = [];
      batchBytes = 0;
    }
    batch.push(event);
    batchBytes += bytes;
  }
  if (summary.failed === null && batch.length > 0) await send(batch);
  summary.elapsedMs = Math.round(performance.now() - started);
  summary.eventsPerSecond = summary.elapsedMs > 0 ? Math.round((summary.sent / summary.elapsedMs) * 1000) : summary.sent;
  return summary;
}

/** `logagg replay --to URL`: re-publish logged (or exported) events to another aggregator. */
export const replayCommand = defineCommand({
  name: 'replay',
  usage: ['logagg replay --to URL [--data-dir DIR | --input FILE] [filters] [options]'],
  description: `Re-publishes events, in seq order, to URL's POST /publish: from the log of DATA_DIR (default),
or from an NDJSON file written by \`logagg export\` (--input FILE, or - for stdin). Batches are
sent one at a time so the target stores them in the same order. 503, 429 and network errors
are retried with backoff (Retry-After honoured); a 413 batch is split in halves. Safe to run
twice: the target's dedup answers the second run with duplicates only. Prints sent, accepted,
duplicates. Exit 1 if a batch could not be delivered (the output says from which seq to resume
with --from-seq).`,
  examples: [
    'npx logagg replay --data-dir ./data --to http://127.0.0.1:8081',
    'npx logagg replay --to http://127.0.0.1:8081 --topic user.login --rate 200',
    'npx logagg export --out all.ndjson && npx logagg replay --input all.ndjson --to http://127.0.0.1:8081',
  ],
  options: {
    ...FILTER_OPTIONS,
    to: { type: 'url', placeholder: 'URL', required: true, description: 'target aggregator, e.g. http://127.0.0.1:8081' },
    input: { type: 'string', placeholder: 'FILE', description: "read an export file instead of the log ('-' = stdin)" },
    batch: { type: 'int', placeholder: 'N', default: 500, min: 1, max: 10_000, description: 'events per request' },
    batchBytes: {
      type: 'int',
      placeholder: 'N',
      default: 512 * 1024,
      min: 1024,
      max: 64 * 1024 * 1024,
      description: 'request body bound in bytes',
    },
    rate: {
      type: 'number',
      placeholder: 'N',
      min: 0.001,
      max: 10_000_000,
      defaultText: 'unlimited',
      description: 'at most N events per second',
    },
    retries: { type: 'int', placeholder: 'N', default: 8, min: 0, max: 1000, description: 'retries per batch' },
    timeoutMs: { type: 'int', placeholder: 'N', default: 30_000, min: 100, max: 3_600_000, description: 'per-request timeout' },
  },
  async run(context) {
    const { to, input } = context.options;
    const filter = parseFilter(context.options);
    const options = {
      to,
      batchEventsMax: context.options.batch,
      batchBytesMax: context.options.batchBytes,
      retries: context.options.retries,
      timeoutMs: context.options.timeoutMs,
      rate: context.options.rate,
      onRetry: (reason: string, waitMs: number) => {
        if (!context.json) process.stderr.write(`replay: retrying in ${Math.round(waitMs)} ms: ${reason}\n`);
      },
    };
    let events: AsyncIterable<ReplayEvent>;
    let progress: Progress;
    let from: string;
    if (input !== undefined) {
      const stdin = input === '-';
      if (!stdin && !fs.existsSync(input)) throw new UsageError(`--input ${input} does not exist`);
      progress = startProgress(context.progress && !stdin, 'replay', stdin ? 0 : fs.statSync(input).size, 'bytes');
      events = fromNdjson(stdin ? process.stdin : fs.createReadStream(input), input, filter, progress);
      from = stdin ? 'stdin' : input;
    } else {
      const paths = dataPaths(context);
      if (!fs.existsSync(paths.walDir)) throw new UsageError(`no log at ${paths.walDir}`);
      progress = startProgress(
        context.progress,
        'replay',
        segmentsBytes(segmentsFrom(logSegments(paths.walDir), filter.fromSeq ?? 1)),
        'bytes',
      );
      events = fromLog(paths.walDir, filter, progress);
      from = paths.walDir;
    }
    let summary: ReplaySummary;
    try {
      summary = await replayEvents(events, { ...options, from });
    } finally {
      progress.stop();
    }
    if (context.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      const lines = [
        `replay ${summary.from} -> ${summary.to}: sent ${summary.sent}, accepted ${summary.accepted}, duplicates ${summary.duplicates}, conflicts ${summary.conflicts}`,
        `  ${summary.batches} batches, ${summary.retries} retries, ${summary.elapsedMs} ms (${summary.eventsPerSecond} events/s)${summary.lastSeq !== null ? `, seqs ${summary.firstSeq}..${summary.lastSeq}` : ''}`,
      ];
      if (summary.ambiguousRetries > 0)
        lines.push(
          `  ${summary.ambiguousRetries} retries after network errors: their first attempt may have been applied (counted as duplicates then)`,
        );
      if (summary.failed !== null) {
        lines.push(`FAILED: ${summary.failed.reason}${summary.failed.body !== null ? `: ${JSON.stringify(summary.failed.body)}` : ''}`);
        if (summary.failed.atSeq !== null) lines.push(`  resume with --from-seq ${summary.failed.atSeq}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return summary.failed === null ? EXIT_OK : EXIT_PROBLEM;
  },
});
