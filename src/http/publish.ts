import type { RequestHandler } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/config';
import { AppError, type ErrorDetail } from '../errors';
import type { Aggregator, ValidEvent } from '../ingest/aggregator';
import type { LogEvent } from '../wal/record';
import { jsonBodyParser } from './body';
import { describeAjvError, type Validators } from './schemas';

type PublishLimits = Pick<Config, 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'>;

/** Most problems reported for one rejected request; the rest are summarised in one line. */
const DETAILS_MAX = 100;

/** Depth of nested objects/arrays, walked iteratively so hostile nesting cannot blow the stack. */
export function jsonDepth(value: unknown, stopAbove: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > stopAbove) return deepest;
    for (const child of Object.values(node as object)) stack.push([child, depth + 1]);
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
      if (LONE_SURROGATE.test(event[key])) details.push({ index, path: key, message: 'must be well-formed Unicode (a \\uD800-\\uDFFF escape alone is not)' });
    }
    if (Number.isNaN(tsMs)) details.push({ index, path: 'timestamp', message: 'must name a real instant' });
    if (event.payload !== undefined) {
      const depth = jsonDepth(event.payload, limits.payloadDepthMax);
      if (depth > limits.payloadDepthMax) {
        details.push({ index, path: 'payload', message: `must nest at most ${limits.payloadDepthMax} levels` });
      } else {
        const bytes = Buffer.byteLength(JSON.stringify(event.payload));
        if (bytes > limits.payloadBytesMax) {
          details.push({ index, path: 'payload', message: `must be at most ${limits.payloadBytesMax} bytes as JSON (is ${bytes})` });
        }
      }
    }
    valid.push({
      event: { topic: event.topic, event_id: event.event_id, timestamp: event.timestamp, source: event.source, payload: event.payload },
      tsMs,
    });
  });
  if (details.length > 0) {
    const shown = details.slice(0, DETAILS_MAX);
    if (details.length > DETAILS_MAX) shown.push({ index: -1, path: '(root)', message: `and ${details.length - DETAILS_MAX} more problems` });
    throw new AppError('validation_failed', `${details.length} problem(s) in the request; nothing was written`, { details: shown });
  }
  return valid;
}

/** A surrogate code unit not part of a pair (in `u` mode a pair is one code point and does not match). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const JSON_CONTENT_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** True for application/json and application/*+json, with or without parameters. */
export function isJsonRequest(req: IncomingMessage): boolean {
  return JSON_CONTENT_TYPE.test(req.headers['content-type'] ?? '');
}

/** The body parser of POST /publish: JSON only, strict UTF-8, numbers kept as sent, bounded on the wire and after inflation. */
export function publishBodyParser(limits: Pick<Config, 'bodyBytesMax'>): RequestHandler {
  return jsonBodyParser(limits, isJsonRequest);
}

/** POST /publish: answers 200 only after every accepted event is fsynced. */
export function publishHandler(aggregator: Aggregator, validators: Validators, limits: PublishLimits): RequestHandler {
  return async (req, res) => {
    if (!isJsonRequest(req)) {
      throw new AppError('unsupported_media_type', `Content-Type must be application/json, got ${JSON.stringify(req.get('content-type') ?? '(none)')}`);
    }
    if (req.body === undefined) {
      throw new AppError('invalid_json', 'the body is empty; send one event or {"events": [...]}');
    }
    const events = parsePublishBody(req.body, validators, limits);
    const result = await aggregator.publish(events);
    res.status(200).json(result);
  };
}
