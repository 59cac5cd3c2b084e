import { FIXED_LIMITS } from '../config/config';
import { AppError, type ErrorDetail } from '../errors';
import type { EventQuery } from '../index/store';
import { splitWords, type EventFilter, type FieldFilter } from './event-filter';
import { INSTANT_SYNTAX, parseInstant } from './instant';

/** A parsed query string as express's simple parser gives it: a text, or a list when repeated. */
export type RawQuery = Record<string, unknown>;

/** The prefix of payload field filters: `payload.level=error`. */
export const FIELD_FILTER_PREFIX = 'payload.';

/** Collects the problems of one query so that a 400 lists all of them at once. */
class Problems {
  readonly list: ErrorDetail[] = [];

  add(path: string, message: string): void {
    this.list.push({ index: -1, path, message });
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new AppError('invalid_query', `${this.list.length} problem(s) in the query`, { details: this.list });
  }
}

/** The values of a parameter given any number of times (none: empty). */
function many(query: RawQuery, name: string, problems: Problems): string[] {
  const value = query[name];
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  if (!values.every((one): one is string => typeof one === 'string')) {
    problems.add(name, 'must be a plain string');
    return [];
  }
  return values;
}

/** The value of a parameter that may be given once. */
function single(query: RawQuery, name: string, problems: Problems): string | undefined {
  const values = many(query, name, problems);
  if (values.length > 1) problems.add(name, 'must be given once');
  return values.length === 1 ? values[0] : undefined;
}

function fieldLength(name: string, value: string, problems: Problems): void {
  if (value.length === 0 || value.length > FIXED_LIMITS.fieldLengthMax)
    problems.add(name, `must be 1..${FIXED_LIMITS.fieldLengthMax} characters`);
}

function instant(query: RawQuery, name: string, nowMs: number, problems: Problems): number | undefined {
  const text = single(query, name, problems);
  if (text === undefined) return undefined;
  const ms = parseInstant(text, nowMs);
  if (ms === null) problems.add(name, `must be ${INSTANT_SYNTAX}`);
  return ms ?? undefined;
}

/** Reads `payload.<dotted.path>=<value>` parameters; each path segment must be non-empty. */
function fieldFilters(query: RawQuery, problems: Problems): FieldFilter[] {
  const fields: FieldFilter[] = [];
  for (const name of Object.keys(query)) {
    if (!name.startsWith(FIELD_FILTER_PREFIX)) continue;
    const path = name.slice(FIELD_FILTER_PREFIX.length).split('.');
    if (path.some((key) => key === '') || name.length > FIXED_LIMITS.fieldLengthMax) {
      problems.add(name, `must name a payload field as payload.<key>[.<key>...], at most ${FIXED_LIMITS.fieldLengthMax} characters`);
      continue;
    }
    if (path.length > FIXED_LIMITS.queryFieldDepthMax) {
      problems.add(name, `must name a field at most ${FIXED_LIMITS.queryFieldDepthMax} levels deep`);
      continue;
    }
    for (const value of many(query, name, problems)) {
      if (value.length > FIXED_LIMITS.fieldLengthMax) problems.add(name, `value must be at most ${FIXED_LIMITS.fieldLengthMax} characters`);
      else fields.push({ path, value });
    }
  }
  if (fields.length > FIXED_LIMITS.queryFieldFiltersMax)
    problems.add('payload.*', `at most ${FIXED_LIMITS.queryFieldFiltersMax} field filters`);
  return fields;
}

/** Reads the filter every read route shares: topic (repeatable), source, since, until, q, payload.*. */
function parseFilter(query: RawQuery, nowMs: number, problems: Problems): EventFilter {
  const filter: EventFilter = {};
  const topics = many(query, 'topic', problems);
  for (const topic of topics) fieldLength('topic', topic, problems);
  if (topics.length > FIXED_LIMITS.queryTopicsMax) problems.add('topic', `may be given at most ${FIXED_LIMITS.queryTopicsMax} times`);
  if (topics.length > 0) filter.topics = [...new Set(topics)];
  const source = single(query, 'source', problems);
  if (source !== undefined) {
    fieldLength('source', source, problems);
    filter.source = source;
  }
  const sinceMs = instant(query, 'since', nowMs, problems);
  if (sinceMs !== undefined) filter.sinceMs = sinceMs;
  const untilMs = instant(query, 'until', nowMs, problems);
  if (untilMs !== undefined) filter.untilMs = untilMs;
  const q = single(query, 'q', problems);
  if (q !== undefined) {
    const words = splitWords(q);
    if (q.length > FIXED_LIMITS.queryTextLengthMax) problems.add('q', `must be at most ${FIXED_LIMITS.queryTextLengthMax} characters`);
    else if (words.length > FIXED_LIMITS.queryWordsMax) problems.add('q', `must have at most ${FIXED_LIMITS.queryWordsMax} words`);
    else if (words.length > 0) filter.words = words;
  }
  const fields = fieldFilters(query, problems);
  if (fields.length > 0) filter.fields = fields;
  return filter;
}

/** A whole number within bounds, or a problem named after the parameter. */
function boundedInt(query: RawQuery, name: string, min: number, max: number, fallback: number, problems: Problems): number {
  const text = single(query, name, problems);
  if (text === undefined) return fallback;
  const value = /^\d{1,7}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) problems.add(name, `must be a whole number from ${min} to ${max}`);
  return value;
}

/**
 * Parses and bounds the query of GET /events (and the live tail's filter): the shared
 * filter plus limit, after (a next_cursor) and order. Relative times are resolved against
 * `nowMs`. Unknown parameters are ignored; every problem is listed in one 400 invalid_query.
 */
export function parseEventsQuery(query: RawQuery, nowMs = Date.now()): EventQuery {
  const problems = new Problems();
  const filter = parseFilter(query, nowMs, problems);
  const limit = boundedInt(query, 'limit', 1, FIXED_LIMITS.queryLimitMax, FIXED_LIMITS.queryLimitDefault, problems);
  const afterText = single(query, 'after', problems);
  let afterSeq: number | undefined;
  if (afterText !== undefined) {
    afterSeq = /^\d{1,15}$/.test(afterText) ? Number(afterText) : undefined;
    if (afterSeq === undefined) problems.add('after', 'must be a next_cursor value from an earlier page');
  }
  const order = single(query, 'order', problems) ?? 'asc';
  if (order !== 'asc' && order !== 'desc') problems.add('order', 'must be asc (oldest first) or desc (newest first)');
  problems.throwIfAny();
  const parsed: EventQuery = { ...filter, limit, order: order as 'asc' | 'desc' };
  if (afterSeq !== undefined) parsed.afterSeq = afterSeq;
  return parsed;
}

/** What GET /events/histogram counts: the shared filter over a number of equal buckets. */
export interface HistogramQuery {
  filter: EventFilter;
  buckets: number;
}

/** Parses GET /events/histogram: the shared filter plus `buckets`; throws 400 invalid_query. */
export function parseHistogramQuery(query: RawQuery, nowMs = Date.now()): HistogramQuery {
  const problems = new Problems();
  const filter = parseFilter(query, nowMs, problems);
  const buckets = boundedInt(query, 'buckets', 1, FIXED_LIMITS.histogramBucketsMax, FIXED_LIMITS.histogramBucketsDefault, problems);
  if (filter.sinceMs !== undefined && filter.untilMs !== undefined && filter.untilMs <= filter.sinceMs) {
    problems.add('until', 'must be after since');
  }
  problems.throwIfAny();
  return { filter, buckets };
}
