import fs from 'node:fs';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { readSegment, readSegments } from '../wal/reader';
import { eventJsonWithSeq } from '../wal/record';
import type { SegmentInfo } from '../wal/segments';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, FILTER_OPTIONS, parseFilter, UsageError, type EventFilter } from './args';
import { authHeaders, delay, requestJson } from './http-client';
import { DISK, logSegments, matchesFilter, readRetainedLog, writeWithBackpressure } from './log-files';

/** How tail prints each event. */
type Printer = (seq: number, eventJson: string, receivedAtMs: number | null) => Promise<void>;

/** One event tail holds before printing it. */
interface TailEvent {
  seq: number;
  eventJson: string;
  receivedAtMs: number | null;
}

/** Removes seq and received_at from an event as a server shows it; returns the acceptance time (null when absent). */
function takeReaderKeys(event: Record<string, unknown>): number | null {
  const receivedAt = event.received_at;
  delete event.seq;
  delete event.received_at;
  const ms = typeof receivedAt === 'string' ? Date.parse(receivedAt) : Number.NaN;
  return Number.isNaN(ms) ? null : ms;
}

function makePrinter(json: boolean): Printer {
  return (seq, eventJson, receivedAtMs) => {
    if (json) return writeWithBackpressure(process.stdout, `${eventJsonWithSeq(seq, eventJson, receivedAtMs)}\n`);
    const event = JSON.parse(eventJson) as { topic: string; event_id: string; timestamp: string; source: string; payload?: unknown };
    const payload = event.payload === undefined ? '' : ` ${JSON.stringify(event.payload)}`;
    return writeWithBackpressure(
      process.stdout,
      `#${seq} ${event.timestamp} ${event.topic} ${event.event_id} (${event.source})${payload}\n`,
    );
  };
}

/** True for the error of a file that is no longer there (retention deleted the segment). */
function isGone(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** A segment file's size, or null once it is gone. */
function sizeOrGone(file: string): number | null {
  try {
    return fs.statSync(file).size;
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** Resolves when SIGINT or SIGTERM arrives (tail -f ends cleanly, exit 0). */
function untilSignal(): { stopped: () => boolean; wait: Promise<void> } {
  let stopped = false;
  const wait = new Promise<void>((resolve) => {
    const stop = (): void => {
      stopped = true;
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return { stopped: () => stopped, wait };
}

/**
 * The last `count` matching events of a data dir's log, reading segments newest first (each
 * in chunks, keeping only the matches it may print), and the log's last seq (0 when empty).
 */
function lastEventsOfLog(walDir: string, filter: EventFilter, count: number): { events: TailEvent[]; lastSeq: number } {
  const segments = logSegments(walDir);
  const events: TailEvent[] = [];
  let lastSeq = 0;
  for (let i = segments.length - 1; i >= 0 && (events.length < count || lastSeq === 0); i -= 1) {
    const want = count - events.length;
    let kept: TailEvent[] = [];
    let segmentLast = 0;
    // Policy: records only (a tombstone still counts for the log's last seq).
    try {
      for (const item of readSegments(DISK, [segments[i]!])) {
        if (item.kind !== 'record' && item.kind !== 'tombstone') continue;
        segmentLast = item.seq;
        if (item.kind === 'tombstone' || want <= 0 || !matchesFilter(item.seq, item.eventJson, filter)) continue;
        kept.push({ seq: item.seq, eventJson: item.eventJson, receivedAtMs: item.receivedAtMs });
        if (kept.length >= 2 * want) kept = kept.slice(-want);
      }
    } catch (err) {
      // Retention deleted this segment after it was listed: it and every older one are gone.
      if (isGone(err)) break;
      throw err;
    }
    if (lastSeq === 0) lastSeq = segmentLast;
    events.unshift(...kept.slice(-want));
  }
  return { events, lastSeq };
}

/**
 * Follows a data dir's log by polling: reads complete lines appended to the newest segment
 * (a partial line waits for its newline), moves to the next segment when one appears, and
 * starts over from the valid size if recovery cut a torn tail. It never writes to the log.
 */
async function followLog(
  walDir: string,
  filter: EventFilter,
  afterSeq: number,
  print: Printer,
  pollMs: number,
  stopped: () => boolean,
  wait: Promise<void>,
): Promise<void> {
  let lastSeq = afterSeq;
  let current: { segment: SegmentInfo; offset: number } | null = null;
  while (!stopped()) {
    const segments = logSegments(walDir);
    if (current === null) {
      // Start in the segment that holds lastSeq + 1 (or the newest), from its beginning.
      const start = [...segments].reverse().find((s) => s.firstSeq <= lastSeq + 1) ?? segments[0];
      if (start !== undefined) current = { segment: start, offset: 0 };
    }
    if (current !== null) {
      const segment: SegmentInfo = current.segment;
      // The writer finishes a segment before starting the next: once one exists, this one is complete.
      const next: SegmentInfo | undefined = segments.find((s) => s.firstSeq > segment.firstSeq);
      let size = sizeOrGone(segment.path);
      if (size !== null && size < current.offset) current.offset = 0;
      if (size !== null && size > current.offset) {
        // The bytes appended since the last read. Policy: skip bad lines (saying so) and
        // tombstones; a torn tail of the newest segment is a line still being written (or
        // one recovery will cut), so the next poll resumes at it. Once open, the segment is
        // read to its end even if retention deletes it meanwhile.
        let consumed = current.offset;
        try {
          for (const item of readSegment(DISK, segment, { isLast: next === undefined, from: current.offset })) {
            if (item.kind === 'torn_tail') break;
            if (item.kind === 'segment_end') {
              consumed = item.totalBytes;
              break;
            }
            if (item.kind === 'corruption') {
              process.stderr.write(`tail: skipped a bad line (${item.problem}) in ${segment.path} at byte offset ${item.offset}\n`);
              consumed = item.offset + item.bytes;
              continue;
            }
            if (item.kind !== 'record' && item.kind !== 'tombstone') continue;
            consumed = item.offset + item.length;
            if (item.seq <= lastSeq) continue;
            lastSeq = item.seq;
            if (item.kind === 'record' && matchesFilter(item.seq, item.eventJson, filter))
              await print(item.seq, item.eventJson, item.receivedAtMs);
          }
        } catch (err) {
          if (!isGone(err)) throw err;
          size = null;
        }
        current.offset = consumed;
      }
      if (size === null) {
        // Retention deleted the segment before this follower opened it (the active segment
        // never goes, so a newer one exists): say which events it missed, go on after them.
        const after = logSegments(walDir).find((s) => s.firstSeq > segment.firstSeq);
        if (after !== undefined) {
          if (after.firstSeq > lastSeq + 1)
            process.stderr.write(`tail: events ${lastSeq + 1} to ${after.firstSeq - 1} were deleted by retention before they were read\n`);
          lastSeq = Math.max(lastSeq, after.firstSeq - 1);
          current = { segment: after, offset: 0 };
          continue;
        }
      }
      // Move on to the next segment once this one is read to its end.
      if (next !== undefined && size === current.offset) {
        current = { segment: next, offset: 0 };
        continue;
      }
    }
    await Promise.race([delay(pollMs), wait]);
  }
}

/** A 4xx answer to the stream request: retrying would not help (exit 1). */
class StreamRefusedError extends Error {}

/**
 * Follows GET /events/stream on a server, reconnecting with Last-Event-ID after a drop or a
 * 503 (waiting Retry-After), so no event is missed or printed twice.
 */
async function followUrl(
  url: string,
  filter: EventFilter,
  afterSeq: number,
  print: Printer,
  stopped: () => boolean,
  wait: Promise<void>,
): Promise<void> {
  let lastSeq = afterSeq;
  const serverTopic = filter.topics?.length === 1 ? filter.topics[0] : undefined;
  const controller = new AbortController();
  void wait.then(() => controller.abort());
  while (!stopped()) {
    let waitMs = 1000;
    try {
      const query = serverTopic === undefined ? '' : `?topic=${encodeURIComponent(serverTopic)}`;
      const res = await fetch(`${url}/events/stream${query}`, {
        headers: { accept: 'text/event-stream', 'last-event-id': String(lastSeq), ...authHeaders() },
        signal: controller.signal,
      });
      if (res.status !== 200) {
        const retryAfter = Number(res.headers.get('retry-after'));
        if (Number.isFinite(retryAfter) && retryAfter > 0) waitMs = retryAfter * 1000;
        process.stderr.write(`tail: ${url}/events/stream answered ${res.status} ${await res.text()}; retrying in ${waitMs} ms\n`);
        if (res.status >= 400 && res.status < 500) throw new StreamRefusedError(`the server refused the stream: ${res.status}`);
      } else {
        // eventsource-parser frames the stream (LF or CRLF line ends, comments, multi-line data).
        const decoder = new TextDecoder();
        const messages: EventSourceMessage[] = [];
        const parser = createParser({ onEvent: (message) => messages.push(message) });
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
          for (const message of messages.splice(0)) {
            // The server deleted the events after lastSeq up to first_seq - 1 (retention): say so, go on.
            if (message.event === 'expired') process.stderr.write(`tail: events deleted by retention: ${message.data}\n`);
            if (message.id === undefined) continue;
            const seq = Number(message.id);
            if (!(seq > lastSeq)) continue;
            lastSeq = seq;
            const event = JSON.parse(message.data) as Record<string, unknown>;
            const receivedAtMs = takeReaderKeys(event);
            const eventJson = JSON.stringify(event);
            if (matchesFilter(seq, eventJson, filter)) await print(seq, eventJson, receivedAtMs);
          }
        }
        process.stderr.write(`tail: stream ended; reconnecting after seq ${lastSeq}\n`);
      }
    } catch (err) {
      if (stopped()) return;
      if (err instanceof StreamRefusedError) throw err;
      process.stderr.write(`tail: ${(err as Error).message}; reconnecting after seq ${lastSeq} in ${waitMs} ms\n`);
    }
    await Promise.race([delay(waitMs), wait]);
  }
}

/** The GET /events parameters that serve a CLI filter on the server (every topic, source, since, until). */
function serverFilterParams(filter: EventFilter): URLSearchParams {
  const params = new URLSearchParams();
  for (const topic of filter.topics ?? []) params.append('topic', topic);
  if (filter.source !== undefined) params.set('source', filter.source);
  if (filter.sinceMs !== undefined) params.set('since', new Date(filter.sinceMs).toISOString());
  if (filter.untilMs !== undefined) params.set('until', new Date(filter.untilMs).toISOString());
  return params;
}

/**
 * The matching events a server's GET /events gives for -n, oldest first: with --from-seq every
 * one from there (paging oldest first), else the last `count`, read newest first with
 * order=desc (a page of `count` at most, following next_cursor only when a filter's scan
 * bound cut a page short), so it costs the pages it prints, not the history.
 */
async function lastEventsOfUrl(url: string, filter: EventFilter, count: number, timeoutMs: number): Promise<TailEvent[]> {
  const newestFirst = filter.fromSeq === undefined;
  if (newestFirst && count === 0) return [];
  let after: string | null = newestFirst ? null : String(filter.fromSeq! - 1);
  const found: TailEvent[] = [];
  for (;;) {
    const params = serverFilterParams(filter);
    params.set('limit', String(newestFirst ? Math.min(1000, count - found.length) : 1000));
    if (newestFirst) params.set('order', 'desc');
    if (after !== null) params.set('after', after);
    const answer = await requestJson('GET', `${url}/events?${params.toString()}`, undefined, timeoutMs);
    if (answer.status !== 200) throw new Error(`GET /events answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    const page = answer.body as { events: Array<Record<string, unknown>>; next_cursor: string | null };
    for (const event of page.events) {
      const seq = event.seq as number;
      const receivedAtMs = takeReaderKeys(event);
      const eventJson = JSON.stringify(event);
      if (matchesFilter(seq, eventJson, filter)) found.push({ seq, eventJson, receivedAtMs });
    }
    if (page.next_cursor === null || (newestFirst && found.length >= count)) break;
    after = page.next_cursor;
  }
  return newestFirst ? found.slice(0, count).reverse() : found;
}

/** `logagg tail [-f]`: print the newest events, and with -f every new one as it arrives. */
export const tailCommand = defineCommand({
  name: 'tail',
  usage: ['logagg tail [-f] [-n N] [--data-dir DIR | --url URL] [filters] [--json]'],
  description: `Prints the last N matching events (or every one from --from-seq), then with -f every new one
as it arrives, until Ctrl-C (exit 0).
From a data dir it reads the log files (safe while the server runs; -f polls them).
From --url it asks the running server: GET /events newest first (order=desc) for the
last N, then the live stream GET /events/stream (Server-Sent Events), reconnecting with
Last-Event-ID after a drop, so nothing is missed or printed twice.
Output: one line per event, "#seq timestamp topic event_id (source) payload";
with --json the NDJSON shape of \`logagg export\`.`,
  examples: ['npx logagg tail -f --data-dir ./data', 'npx logagg tail -f --url http://127.0.0.1:8080 --topic user.login --json'],
  options: {
    ...FILTER_OPTIONS,
    follow: { type: 'boolean', short: 'f', description: 'keep printing new events' },
    lines: {
      type: 'int',
      short: 'n',
      placeholder: 'N',
      default: 10,
      min: 0,
      max: 1_000_000,
      description: 'how many of the newest events to print first; 0 = none',
    },
    url: { type: 'url', placeholder: 'URL', description: 'follow a running server instead of a data dir' },
    pollMs: {
      type: 'int',
      placeholder: 'N',
      default: 200,
      min: 10,
      max: 60_000,
      description: 'data-dir mode: how often -f looks for new bytes',
    },
  },
  async run(context) {
    const filter = parseFilter(context.options);
    const { lines: count, pollMs, url, follow } = context.options;
    const print = makePrinter(context.json);
    const signal = untilSignal();
    let lastSeq: number;
    if (url !== undefined) {
      let initial: TailEvent[];
      try {
        initial = await lastEventsOfUrl(url, filter, count, 30_000);
      } catch (err) {
        process.stderr.write(`tail: ${(err as Error).message}\n`);
        return EXIT_PROBLEM;
      }
      for (const e of initial) await print(e.seq, e.eventJson, e.receivedAtMs);
      lastSeq = initial.length > 0 ? initial[initial.length - 1]!.seq : Math.max(0, (filter.fromSeq ?? 1) - 1);
      if (initial.length === 0 && filter.fromSeq === undefined) {
        const stats = await requestJson('GET', `${url}/stats`, undefined, 30_000).catch(() => null);
        const accepted = (stats?.body as { accepted?: unknown } | null | undefined)?.accepted;
        if (stats?.status === 200 && typeof accepted === 'number') lastSeq = accepted;
      }
      if (follow) await followUrl(url, filter, lastSeq, print, signal.stopped, signal.wait);
      return EXIT_OK;
    }
    const paths = dataPaths(context);
    if (!fs.existsSync(paths.dataDir)) throw new UsageError(`data dir ${paths.dataDir} does not exist`);
    if (filter.fromSeq !== undefined) {
      // Everything from --from-seq, printed as it is read.
      lastSeq = filter.fromSeq - 1;
      for (const item of readRetainedLog(paths.walDir, { fromSeq: filter.fromSeq })) {
        if (item.kind !== 'record' || !matchesFilter(item.seq, item.eventJson, filter)) continue;
        await print(item.seq, item.eventJson, item.receivedAtMs);
        lastSeq = item.seq;
      }
    } else {
      const last = lastEventsOfLog(paths.walDir, filter, count);
      for (const e of last.events) await print(e.seq, e.eventJson, e.receivedAtMs);
      // Follow from the end of the log, not from its beginning.
      lastSeq = last.lastSeq;
    }
    if (follow) await followLog(paths.walDir, filter, lastSeq, print, pollMs, signal.stopped, signal.wait);
    return EXIT_OK;
  },
});
