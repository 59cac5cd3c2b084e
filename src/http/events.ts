import type { RequestHandler } from 'express';
import { FIXED_LIMITS } from '../config/config';
import type { Pipeline } from '../ingest/pipeline';
import { parseEventsQuery, parseHistogramQuery } from '../query/parse-query';
import { eventJsonWithSeq } from '../wal/record';

/**
 * The query parameters GET /events understands (besides `payload.<path>`); anything else is
 * ignored. The histogram takes the filter ones plus `buckets`.
 */
export const EVENTS_QUERY_PARAMETERS = ['topic', 'source', 'since', 'until', 'q', 'limit', 'after', 'order'] as const;

/** The parameters GET /events/histogram understands (besides `payload.<path>`). */
export const HISTOGRAM_QUERY_PARAMETERS = ['topic', 'source', 'since', 'until', 'q', 'buckets'] as const;

/** What a sent row is replaced with, so that its text can be collected while the page streams. */
const EMPTY_ROW = { seq: 0, body: '', receivedMs: null };

/** Characters of event JSON a page's answer is written in at a time (the last chunk ends the answer). */
const PAGE_CHUNK_CHARS = 32 * 1024;

/** Bytes of event JSON in one page when the caller names no bound (PAGE_BYTES_MAX's default). */
export const DEFAULT_PAGE_BYTES_MAX = 4 * 1024 * 1024;

/**
 * GET /events: stored events oldest first (or newest first with order=desc), paged by `after` = the previous
 * next_cursor; a page is bounded in rows, in scanned rows and in bytes.
 */
export function eventsHandler(aggregator: Pipeline, limits: { pageBytesMax?: number } = {}): RequestHandler {
  const pageBytesMax = limits.pageBytesMax ?? DEFAULT_PAGE_BYTES_MAX;
  return async (req, res) => {
    const query = parseEventsQuery(req.query);
    // The store reads rows one at a time up to the byte bound, so a page of large events is never read whole;
    // it reads on a read worker, so a scan never holds the thread that acknowledges publishes.
    const page = await aggregator.readPage({ ...query, bytesMax: pageBytesMax });
    const rows = page.rows;
    // The page ends where its events pass pageBytesMax (at least one event per page), so a
    // slow reader pins a bounded answer; next_cursor says where the next page starts.
    let kept = 0;
    let bytes = 0;
    while (kept < rows.length && (kept === 0 || bytes + rows[kept]!.body.length <= pageBytesMax)) {
      bytes += rows[kept]!.body.length;
      kept += 1;
    }
    // Cut short by its bytes, the page goes on after its last row; else where the store says (a full page, or a bounded scan's edge).
    const nextCursor = kept < rows.length ? String(rows[kept - 1]!.seq) : page.nextCursor === null ? null : String(page.nextCursor);
    rows.length = kept;
    const topic = query.topics?.length === 1 ? query.topics[0] : undefined;
    res.status(200).type('application/json');
    // The head goes with the first chunk: a page that fits in one is one write, with a Content-Length.
    let head = `{"topic":${JSON.stringify(topic ?? null)},"count":${kept},"events":[`;
    // Streamed in chunks of about PAGE_CHUNK_CHARS with backpressure: a slow reader holds the
    // rows not yet sent, one chunk and one socket buffer, never a second copy of the page (one
    // write per event cost more than the rest of the page). Bodies are the logged JSON text:
    // the seq is spliced in rather than parsed and re-serialised.
    let next = 0;
    const end = (text: string): void => {
      const last = `${text}],"next_cursor":${JSON.stringify(nextCursor)}}`;
      // Nothing sent yet: this is the whole answer (compression drops the length when it compresses).
      if (!res.headersSent) res.setHeader('Content-Length', Buffer.byteLength(last));
      res.end(last);
    };
    const writeRows = (): void => {
      while (next < rows.length) {
        if (res.destroyed) return;
        let chunk = head;
        head = '';
        while (next < rows.length && chunk.length < PAGE_CHUNK_CHARS) {
          const row = rows[next]!;
          chunk += `${next === 0 ? '' : ','}${eventJsonWithSeq(row.seq, row.body, row.receivedMs)}`;
          rows[next] = EMPTY_ROW;
          next += 1;
        }
        if (next === rows.length) {
          end(chunk);
          return;
        }
        if (!res.write(chunk)) {
          res.once('drain', writeRows);
          return;
        }
      }
      // No rows at all: the head alone.
      end(head);
    };
    writeRows();
  };
}

/** GET /events/histogram: counts of the events the same filter matches, in equal time buckets. */
export function histogramHandler(aggregator: Pipeline): RequestHandler {
  return async (req, res) => {
    const { filter, buckets } = parseHistogramQuery(req.query);
    // A client that goes away stops the count at the next chunk.
    const abandoned = new AbortController();
    res.on('close', () => abandoned.abort(new Error('histogram: client went away')));
    let histogram;
    try {
      histogram = await aggregator.histogram(filter, buckets, FIXED_LIMITS.histogramChunkRows, abandoned.signal);
    } catch (err) {
      if (abandoned.signal.aborted) return;
      throw err;
    }
    res.status(200).json({
      interval_ms: histogram.intervalMs,
      since: new Date(histogram.sinceMs).toISOString(),
      until: new Date(histogram.untilMs).toISOString(),
      total: histogram.total,
      buckets: histogram.counts.map((count, i) => ({ start: new Date(histogram.sinceMs + i * histogram.intervalMs).toISOString(), count })),
    });
  };
}
