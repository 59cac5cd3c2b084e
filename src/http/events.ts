import type { RequestHandler } from 'express';
import { FIXED_LIMITS } from '../config/config';
import type { Aggregator } from '../ingest/aggregator';
import { countHistogram } from '../query/histogram';
import { parseEventsQuery, parseHistogramQuery } from '../query/parse-query';

/**
 * The query parameters GET /events understands (besides `payload.<path>`); anything else is
 * ignored. The histogram takes the filter ones plus `buckets`.
 */
export const EVENTS_QUERY_PARAMETERS = ['topic', 'source', 'since', 'until', 'q', 'limit', 'after', 'order'] as const;

/** The parameters GET /events/histogram understands (besides `payload.<path>`). */
export const HISTOGRAM_QUERY_PARAMETERS = ['topic', 'source', 'since', 'until', 'q', 'buckets'] as const;

/** GET /events: stored events oldest first (or newest first with order=desc), paged by `after` = the previous next_cursor. */
export function eventsHandler(aggregator: Aggregator): RequestHandler {
  return (req, res) => {
    const query = parseEventsQuery(req.query);
    const page = aggregator.readPage(query);
    const rows = page.rows;
    const nextCursor = page.nextCursor === null ? null : String(page.nextCursor);
    const topic = query.topics?.length === 1 ? query.topics[0] : undefined;
    // Bodies are the logged JSON text: splice in the seq rather than parse and re-serialise.
    const events = rows.map((row) => `{"seq":${row.seq},${row.body.slice(1)}`).join(',');
    res
      .status(200)
      .type('application/json')
      .send(`{"topic":${JSON.stringify(topic ?? null)},"count":${rows.length},"events":[${events}],"next_cursor":${JSON.stringify(nextCursor)}}`);
  };
}

/** GET /events/histogram: counts of the events the same filter matches, in equal time buckets. */
export function histogramHandler(aggregator: Aggregator): RequestHandler {
  return async (req, res) => {
    const { filter, buckets } = parseHistogramQuery(req.query);
    // A client that goes away stops the count at the next chunk.
    const abandoned = new AbortController();
    res.on('close', () => abandoned.abort(new Error('histogram: client went away')));
    let histogram;
    try {
      histogram = await countHistogram(aggregator.index, filter, buckets, { chunkRows: FIXED_LIMITS.histogramChunkRows, signal: abandoned.signal });
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
