import type { Request, RequestHandler } from 'express';
import { FIXED_LIMITS } from '../config/config';
import { AppError, type ErrorDetail } from '../errors';
import type { Aggregator } from '../ingest/aggregator';
import type { EventQuery } from '../index/store';

/** The query parameters GET /events understands; anything else is ignored. */
export const EVENTS_QUERY_PARAMETERS = ['topic', 'limit', 'after', 'since', 'until', 'source'] as const;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})$/;

function single(req: Request, name: string, problems: ErrorDetail[]): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    problems.push({ index: -1, path: name, message: 'must be given once, as a plain string' });
    return undefined;
  }
  return value;
}

function instant(name: string, value: string | undefined, problems: ErrorDetail[]): number | undefined {
  if (value === undefined) return undefined;
  const ms = RFC3339.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) problems.push({ index: -1, path: name, message: 'must be an RFC 3339 date-time with Z or an offset' });
  return ms;
}

/** Parses and bounds the query of GET /events; throws 400 invalid_query listing each problem. */
export function parseEventsQuery(req: Request): EventQuery {
  const problems: ErrorDetail[] = [];
  const topic = single(req, 'topic', problems);
  const source = single(req, 'source', problems);
  for (const [name, value] of [['topic', topic], ['source', source]] as const) {
    if (value !== undefined && (value.length === 0 || value.length > FIXED_LIMITS.fieldLengthMax)) {
      problems.push({ index: -1, path: name, message: `must be 1..${FIXED_LIMITS.fieldLengthMax} characters` });
    }
  }
  const limitRaw = single(req, 'limit', problems);
  let limit: number = FIXED_LIMITS.queryLimitDefault;
  if (limitRaw !== undefined) {
    limit = /^\d{1,7}$/.test(limitRaw) ? Number(limitRaw) : Number.NaN;
    if (!(limit >= 1 && limit <= FIXED_LIMITS.queryLimitMax)) {
      problems.push({ index: -1, path: 'limit', message: `must be a whole number from 1 to ${FIXED_LIMITS.queryLimitMax}` });
    }
  }
  const afterRaw = single(req, 'after', problems);
  let afterSeq: number | undefined;
  if (afterRaw !== undefined) {
    afterSeq = /^\d{1,15}$/.test(afterRaw) ? Number(afterRaw) : Number.NaN;
    if (Number.isNaN(afterSeq)) problems.push({ index: -1, path: 'after', message: 'must be a next_cursor value from an earlier page' });
  }
  const sinceMs = instant('since', single(req, 'since', problems), problems);
  const untilMs = instant('until', single(req, 'until', problems), problems);
  if (problems.length > 0) throw new AppError('invalid_query', `${problems.length} problem(s) in the query`, { details: problems });
  const query: EventQuery = { limit };
  if (topic !== undefined) query.topic = topic;
  if (source !== undefined) query.source = source;
  if (afterSeq !== undefined) query.afterSeq = afterSeq;
  if (sinceMs !== undefined) query.sinceMs = sinceMs;
  if (untilMs !== undefined) query.untilMs = untilMs;
  return query;
}

/** What a sent row is replaced with, so that its text can be collected while the page streams. */
const EMPTY_ROW = { seq: 0, body: '' };

/** Bytes of event JSON in one page when the caller names no bound (PAGE_BYTES_MAX's default). */
export const DEFAULT_PAGE_BYTES_MAX = 4 * 1024 * 1024;

/** GET /events: stored events in publish order, paged by `after` = the previous next_cursor; a page is bounded in rows and bytes. */
export function eventsHandler(aggregator: Aggregator, limits: { pageBytesMax?: number } = {}): RequestHandler {
  const pageBytesMax = limits.pageBytesMax ?? DEFAULT_PAGE_BYTES_MAX;
  return (req, res) => {
    const query = parseEventsQuery(req);
    const rows = aggregator.queryEvents(query);
    // The page ends where its events pass pageBytesMax (at least one event per page), so a
    // slow reader pins a bounded answer; next_cursor says where the next page starts.
    let kept = 0;
    let bytes = 0;
    while (kept < rows.length && (kept === 0 || bytes + rows[kept]!.body.length <= pageBytesMax)) {
      bytes += rows[kept]!.body.length;
      kept += 1;
    }
    const nextCursor = rows.length === query.limit || kept < rows.length ? String(rows[kept - 1]!.seq) : null;
    rows.length = kept;
    res.status(200).type('application/json');
    res.write(`{"topic":${JSON.stringify(query.topic ?? null)},"count":${kept},"events":[`);
    // Streamed event by event with backpressure: a slow reader holds the rows not yet sent and
    // one socket buffer, never a second copy of the page. Bodies are the logged JSON text:
    // the seq is spliced in rather than parsed and re-serialised.
    let next = 0;
    const writeRows = (): void => {
      while (next < rows.length) {
        if (res.destroyed) return;
        const row = rows[next]!;
        const more = res.write(`${next === 0 ? '' : ','}{"seq":${row.seq},${row.body.slice(1)}`);
        rows[next] = EMPTY_ROW;
        next += 1;
        if (!more) {
          res.once('drain', writeRows);
          return;
        }
      }
      res.end(`],"next_cursor":${JSON.stringify(nextCursor)}}`);
    };
    writeRows();
  };
}
