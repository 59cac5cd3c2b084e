import express, { type RequestHandler } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config';
import { AppError, type ErrorCode, type ErrorDetail } from '../errors';
import type { PublishReport, ValidEvent } from '../ingest/aggregator';
import type { Pipeline } from '../ingest/pipeline';
import { decodeUtf8 } from '../protocols/common';
import { parseNdjson } from '../protocols/ndjson';
import { canonicalEventJsonWith, type LogEvent } from '../wal/record';
import { jsonBodyParser } from './body';
import { describeAjvError, type Validators } from './schemas';

/**
 * The error codes every ingest route shares (/publish and the shippers' routes): reading and
 * bounding the body, validation, and the pipeline states that refuse writes.
 */
export const INGEST_ERRORS: readonly ErrorCode[] = [
  'invalid_json',
  'invalid_utf8',
  'number_not_kept',
  'validation_failed',
  'invalid_compressed_body',
  'body_too_large',
  'batch_too_large',
  'unsupported_media_type',
  'recovering',
  'backlog_full',
  'log_no_space',
  'log_failed',
  'shutting_down',
  'database_unavailable',
];
import type { ProtocolCounts } from './shippers';

type PublishLimits = Pick<Config, 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'>;

/** Most problems reported for one rejected request; the rest are summarised in one line. */
export const DETAILS_MAX = 100;

/**
 * Depth of nested objects/arrays (a scalar is 0, `{}` is 1). It goes no deeper than
 * `stopAbove + 1` levels, so hostile nesting cannot blow the stack: past the bound it returns
 * some depth above it at once. Recursive, with no allocation (the walk with an explicit stack
 * made a pair and an Object.values array per node: about 0.8 µs per small payload against
 * 0.2 to 0.4 µs).
 */
export function jsonDepth(value: unknown, stopAbove: number): number {
  return depthFrom(value, 1, stopAbove);
}

/** jsonDepth of `node`, found at `depth`. */
function depthFrom(node: unknown, depth: number, stopAbove: number): number {
  if (node === null || typeof node !== 'object') return 0;
  if (depth > stopAbove) return depth;
  let deepest = depth;
  if (Array.isArray(node)) {
    for (const child of node as unknown[]) {
      deepest = Math.max(deepest, depthFrom(child, depth + 1, stopAbove));
      if (deepest > stopAbove) return deepest;
    }
    return deepest;
  }
  for (const key in node) {
    deepest = Math.max(deepest, depthFrom((node as Record<string, unknown>)[key], depth + 1, stopAbove));
    if (deepest > stopAbove) return deepest;
  }
  return deepest;
}

/**
 * Validates a parsed body (one event or {"events": [...]}) and returns the events with
 * their instants. Throws AppError: 413 batch_too_large, or 400 validation_failed listing
 * every problem; a batch with one bad event is rejected whole.
 */
export function parsePublishBody(body: unknown, validators: Validators, limits: PublishLimits): ValidEvent[] {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('validation_failed', 'body must be one event object or {"events": [...]}', {
      details: [{ index: -1, path: '(root)', message: 'must be an object' }],
    });
  }
  const isBatch = Object.prototype.hasOwnProperty.call(body, 'events');
  if (isBatch) {
    const list = (body as { events: unknown }).events;
    if (Array.isArray(list) && list.length > limits.batchEventsMax) {
      throw new AppError('batch_too_large', `batch of ${list.length} events is over BATCH_EVENTS_MAX=${limits.batchEventsMax}`);
    }
  }
  const validate = isBatch ? validators.batch : validators.event;
  const details: ErrorDetail[] = [];
  if (!validate(body)) {
    for (const error of validate.errors ?? []) details.push(describeAjvError(error, isBatch));
  }
  const events: LogEvent[] = details.length === 0 ? (isBatch ? (body as { events: LogEvent[] }).events : [body as LogEvent]) : [];

  // What JSON Schema cannot say: a real instant, payload size and depth.
  const valid: ValidEvent[] = [];
  events.forEach((event, index) => {
    const tsMs = Date.parse(event.timestamp);
    // The index keeps these as UTF-8 text, where every lone surrogate becomes U+FFFD: two such
    // ids would collide there, and a re-send would no longer match the stored original.
    for (const key of ['topic', 'event_id', 'source'] as const) {
      if (LONE_SURROGATE.test(event[key]))
        details.push({ index, path: key, message: 'must be well-formed Unicode (a \\uD800-\\uDFFF escape alone is not)' });
    }
    if (Number.isNaN(tsMs)) details.push({ index, path: 'timestamp', message: 'must name a real instant' });
    let payloadJson: string | undefined;
    if (event.payload !== undefined) {
      const depth = jsonDepth(event.payload, limits.payloadDepthMax);
      if (depth > limits.payloadDepthMax) {
        details.push({ index, path: 'payload', message: `must nest at most ${limits.payloadDepthMax} levels` });
      } else {
        payloadJson = JSON.stringify(event.payload);
        const bytes = Buffer.byteLength(payloadJson);
        if (bytes > limits.payloadBytesMax) {
          details.push({ index, path: 'payload', message: `must be at most ${limits.payloadBytesMax} bytes as JSON (is ${bytes})` });
        }
      }
    }
    if (details.length > 0) return;
    const copy: LogEvent = {
      topic: event.topic,
      event_id: event.event_id,
      timestamp: event.timestamp,
      source: event.source,
      payload: event.payload,
    };
    // The log's text, built here once from the payload JSON the size check made.
    valid.push({ event: copy, tsMs, eventJson: canonicalEventJsonWith(copy, payloadJson) });
  });
  if (details.length > 0) {
    const shown = details.slice(0, DETAILS_MAX);
    if (details.length > DETAILS_MAX)
      shown.push({ index: -1, path: '(root)', message: `and ${details.length - DETAILS_MAX} more problems` });
    throw new AppError('validation_failed', `${details.length} problem(s) in the request; nothing was written`, { details: shown });
  }
  return valid;
}

/**
 * Validates events one by one, as the protocols that answer per record need (OTLP partial
 * success, bulk items): each is checked exactly as a single-event /publish body is, and
 * comes back as its ValidEvent or the problems that reject it alone.
 */
export function checkEachEvent(
  events: LogEvent[],
  validators: Validators,
  limits: PublishLimits,
): Array<ValidEvent | { problems: ErrorDetail[] }> {
  return events.map((event) => {
    try {
      return parsePublishBody(event, validators, limits)[0]!;
    } catch (err) {
      if (err instanceof AppError && err.code === 'validation_failed') return { problems: err.details ?? [] };
      throw err;
    }
  });
}

/**
 * The events of an NDJSON /publish body: one event per non-empty line, validated as one
 * batch (so a bad line rejects the request and nothing is written); problems name lines.
 */
export function parseNdjsonPublishBody(text: string, validators: Validators, limits: PublishLimits): ValidEvent[] {
  const lines = parseNdjson(text, limits.batchEventsMax, 'event');
  try {
    return parsePublishBody({ events: lines.map((line) => line.value) }, validators, limits);
  } catch (err) {
    if (!(err instanceof AppError) || err.details === undefined) throw err;
    const details = err.details.map((detail) =>
      detail.index < 0 ? detail : { ...detail, message: `line ${lines[detail.index]!.line}: ${detail.message}` },
    );
    throw new AppError(err.code, err.message, { details });
  }
}
/** A surrogate code unit not part of a pair (in `u` mode a pair is one code point and does not match). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const JSON_CONTENT_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;
const NDJSON_CONTENT_TYPE = /^application\/(?:x-)?ndjson\s*(?:;|$)/i;

/** True for application/json and application/*+json, with or without parameters. */
export function isJsonRequest(req: IncomingMessage): boolean {
  return JSON_CONTENT_TYPE.test(req.headers['content-type'] ?? '');
}

/** True for application/x-ndjson (and application/ndjson), with or without parameters. */
export function isNdjsonRequest(req: IncomingMessage): boolean {
  return NDJSON_CONTENT_TYPE.test(req.headers['content-type'] ?? '');
}

/** The answer to POST /publish: the seed's fields (and its message) plus conflicts and results. */
export interface PublishAnswer extends PublishReport {
  message: string;
}

/** The report of a publish as the seed answered it, with its message line. */
export function publishAnswer(report: PublishReport): PublishAnswer {
  const { received, accepted, duplicates, conflicts, results } = report;
  const message = `Received ${received} events, accepted ${accepted}, rejected ${duplicates} duplicates`;
  return { received, accepted, duplicates, conflicts, message, results };
}

/**
 * The body parser of POST /publish: JSON (parsed with strict UTF-8, numbers kept as sent) or
 * NDJSON (kept as bytes for parseNdjsonPublishBody), both bounded by BODY_BYTES_MAX after
 * inflation (gzip/deflate/br bodies are inflated); anything else is left unread for the handler's 415.
 */
export function publishBodyParser(limits: Pick<Config, 'bodyBytesMax'>): RequestHandler {
  const json = jsonBodyParser(limits, isJsonRequest);
  const ndjson: RequestHandler = express.raw({ limit: limits.bodyBytesMax, type: isNdjsonRequest });
  return (req, res, next) => (isNdjsonRequest(req) ? ndjson(req, res, next) : json(req, res, next));
}

/**
 * POST /publish: one event, {"events": [...]}, a top-level array of events, or NDJSON (one
 * event per line); answers 200 only after every accepted event is fsynced.
 */
export function publishHandler(aggregator: Pipeline, validators: Validators, limits: PublishLimits): RequestHandler {
  return async (req, res) => {
    const ndjson = isNdjsonRequest(req);
    if (!isJsonRequest(req) && !ndjson) {
      throw new AppError(
        'unsupported_media_type',
        `Content-Type must be application/json or application/x-ndjson, got ${JSON.stringify(req.headers['content-type'] ?? '(none)')}`,
      );
    }
    if (req.body === undefined || (ndjson && !Buffer.isBuffer(req.body))) {
      throw new AppError('invalid_json', 'the body is empty; send one event or {"events": [...]}');
    }
    let events: ValidEvent[];
    if (ndjson) events = parseNdjsonPublishBody(decodeUtf8(req.body as Buffer, 'the NDJSON body'), validators, limits);
    else events = parsePublishBody(Array.isArray(req.body) ? { events: req.body } : req.body, validators, limits);
    const result = await aggregator.publish(events);
    res.locals.protocolCounts = {
      protocol: ndjson ? 'ndjson' : 'publish',
      accepted: result.accepted,
      duplicates: result.duplicates,
      rejected: 0,
    } satisfies ProtocolCounts;
    sendJson(res, 200, publishAnswer(result));
  };
}

/**
 * Answers `value` as JSON with the status and headers express's `res.status(status).json()`
 * gives a POST (Content-Type application/json; charset=utf-8, Content-Length; no ETag, which
 * the app disables), the same bytes on the wire; but the text goes to `res.end` as a string,
 * so Node sends it with the head in one socket write (express makes a Buffer of a text of
 * 1000 characters or more, which Node writes as two chunks).
 */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(text)));
  res.end(text);
}
