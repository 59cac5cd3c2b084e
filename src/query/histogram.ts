import { setImmediate as nextTurn } from 'node:timers/promises';
import type { EventFilter } from './event-filter';

/** Counts of matching events over [sinceMs, untilMs) in equal buckets of intervalMs. */
export interface Histogram {
  intervalMs: number;
  sinceMs: number;
  untilMs: number;
  /** One count per bucket, the first starting at sinceMs; they add up to `total`. */
  counts: number[];
  total: number;
}

/**
 * What the count reads, over seq ranges: the SQLite IndexStore (synchronous) and the cluster's
 * PostgreSQL index (asynchronous) both serve it, so both answer the same histogram.
 */
export interface HistogramSource {
  /** The first and last stored seq, or null when nothing is stored. */
  seqBounds(): SeqRange | null | Promise<SeqRange | null>;
  /** The earliest and latest timestamp of rows matching `filter` with seq in [fromSeq, toSeq]. */
  timeBounds(filter: EventFilter, fromSeq: number, toSeq: number): TimeRange | null | Promise<TimeRange | null>;
  /** False only when no row with seq in [fromSeq, toSeq] can have a timestamp in [sinceMs, untilMs). */
  timeMapOverlaps(sinceMs: number, untilMs: number, fromSeq: number, toSeq: number): boolean | Promise<boolean>;
  /** [bucket index, count] pairs of rows matching `filter` with seq in [fromSeq, toSeq], buckets of intervalMs from sinceMs. */
  countByBucket(
    filter: EventFilter & { sinceMs: number },
    intervalMs: number,
    fromSeq: number,
    toSeq: number,
  ): Array<[number, number]> | Promise<Array<[number, number]>>;
}

interface SeqRange {
  first: number;
  last: number;
}

interface TimeRange {
  minMs: number;
  maxMs: number;
}

/** How the count is spread over event-loop turns. */
export interface HistogramOptions {
  /** Seqs examined per turn; the loop yields between chunks so publishes are served meanwhile. */
  chunkRows: number;
  /** Stops the count early (the client went away); the promise then rejects with its reason. */
  signal?: AbortSignal;
}

/**
 * Counts the events matching `filter` in `buckets` equal buckets over [since, until). A
 * missing since or until becomes the earliest or just past the latest matching timestamp
 * (one more pass). The store is read in chunks of seqs up to the last seq stored when the
 * count starts, so the counts add up to what the same filter matched at that moment; it
 * does not promise to see events indexed while it runs. With nothing to count, `counts`
 * is empty (and intervalMs 0 when the range could not be derived).
 */
export async function countHistogram(
  store: HistogramSource,
  filter: EventFilter,
  buckets: number,
  options: HistogramOptions,
): Promise<Histogram> {
  const seqs = await store.seqBounds();
  let sinceMs = filter.sinceMs;
  let untilMs = filter.untilMs;
  // Derive a missing end of the range from the matching rows themselves.
  if (seqs !== null && (sinceMs === undefined || untilMs === undefined)) {
    let minMs = Number.POSITIVE_INFINITY;
    let maxMs = Number.NEGATIVE_INFINITY;
    for (let from = seqs.first; from <= seqs.last; from += options.chunkRows) {
      const found = await store.timeBounds(filter, from, Math.min(seqs.last, from + options.chunkRows - 1));
      if (found !== null) {
        minMs = Math.min(minMs, found.minMs);
        maxMs = Math.max(maxMs, found.maxMs);
      }
      await yieldTurn(options.signal);
    }
    if (minMs <= maxMs) {
      sinceMs ??= minMs;
      untilMs ??= maxMs + 1;
    }
  }
  if (sinceMs === undefined || untilMs === undefined || untilMs <= sinceMs) {
    // Nothing matches: an empty range at the one bound given (never an until before since).
    const at = sinceMs ?? untilMs ?? 0;
    return { intervalMs: 0, sinceMs: at, untilMs: Math.max(at, untilMs ?? at), counts: [], total: 0 };
  }
  const intervalMs = Math.max(1, Math.ceil((untilMs - sinceMs) / buckets));
  const counts = new Array<number>(Math.ceil((untilMs - sinceMs) / intervalMs)).fill(0);
  let total = 0;
  if (seqs !== null) {
    const ranged = { ...filter, sinceMs, untilMs };
    for (let from = seqs.first; from <= seqs.last; from += options.chunkRows) {
      const to = Math.min(seqs.last, from + options.chunkRows - 1);
      // The time map says which chunks can hold a row of the range: the others are not read.
      if (!(await store.timeMapOverlaps(sinceMs, untilMs, from, to))) continue;
      for (const [bucket, count] of await store.countByBucket(ranged, intervalMs, from, to)) {
        counts[bucket] = (counts[bucket] ?? 0) + count;
        total += count;
      }
      await yieldTurn(options.signal);
    }
  }
  return { intervalMs, sinceMs, untilMs, counts, total };
}

/** Lets other work run; rejects when the count was aborted. */
async function yieldTurn(signal: AbortSignal | undefined): Promise<void> {
  await nextTurn();
  signal?.throwIfAborted();
}
