import { FIXED_LIMITS } from '../config/config';
import type { EVENTS_QUERY_PARAMETERS } from './events';

/** A JSON value as the OpenAPI document holds it. */
export type JsonObject = Record<string, unknown>;

/** A reference to the named schema in the document's components. */
export const schemaRef = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });

/** Schemas of the answers (not validated by the service; tests validate real answers against them). */
export const ANSWER_SCHEMAS: Record<string, JsonObject> = {
  PublishResult: {
    type: 'object',
    required: ['received', 'accepted', 'duplicates', 'conflicts', 'message', 'results'],
    properties: {
      received: { type: 'integer', minimum: 0, description: 'Events in the request.' },
      accepted: { type: 'integer', minimum: 0, description: 'New (topic, event_id) keys, now durable in the log.' },
      duplicates: { type: 'integer', minimum: 0, description: 'Events whose key was already stored (or earlier in this request).' },
      conflicts: { type: 'integer', minimum: 0, description: 'Duplicates whose content differs from the stored original.' },
      message: { type: 'string' },
      results: {
        type: 'array',
        description: 'One entry per event, in request order.',
        items: {
          type: 'object',
          required: ['status', 'seq'],
          properties: {
            status: { enum: ['accepted', 'duplicate'] },
            seq: { type: 'integer', minimum: 1, description: 'Log sequence number of the stored event (the original, for a duplicate).' },
            conflict: { const: true, description: 'Present on a duplicate whose content differs from the original.' },
          },
          additionalProperties: false,
        },
      },
    },
  },
  Error: {
    type: 'object',
    required: ['error', 'message'],
    properties: {
      error: { type: 'string', description: 'Stable error code (see the error catalogue).' },
      message: { type: 'string' },
      details: {
        type: 'array',
        items: {
          type: 'object',
          required: ['index', 'path', 'message'],
          properties: {
            index: { type: 'integer', description: 'Position of the event in the request; -1 for the request as a whole.' },
            path: { type: 'string' },
            message: { type: 'string' },
          },
        },
      },
    },
  },
  StoredEvent: {
    type: 'object',
    required: ['seq', 'topic', 'event_id', 'timestamp', 'source'],
    properties: {
      seq: { type: 'integer', minimum: 1, description: 'Log sequence number: publish order.' },
      topic: { type: 'string' },
      event_id: { type: 'string' },
      timestamp: { type: 'string', description: 'As published.' },
      source: { type: 'string' },
      payload: { type: 'object', description: 'As published, when it was.' },
    },
  },
  EventsPage: {
    type: 'object',
    required: ['topic', 'count', 'events', 'next_cursor'],
    properties: {
      topic: { type: ['string', 'null'] },
      count: { type: 'integer', minimum: 0 },
      events: { type: 'array', items: schemaRef('StoredEvent') },
      next_cursor: { type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last page.' },
    },
  },
  Stats: {
    type: 'object',
    required: ['received', 'unique_processed', 'duplicate_dropped', 'topics', 'uptime_seconds', 'uptime_human'],
    properties: {
      received: { type: 'integer', minimum: 0, description: 'Lifetime: accepted + duplicates (survives restarts).' },
      unique_processed: { type: 'integer', minimum: 0, description: 'Lifetime: events in the index.' },
      duplicate_dropped: { type: 'integer', minimum: 0 },
      conflicts: { type: 'integer', minimum: 0 },
      topics: { type: 'array', items: { type: 'string' } },
      uptime_seconds: { type: 'number' },
      uptime_human: { type: 'string' },
      accepted: { type: 'integer', minimum: 0 },
      queue_size: { type: 'integer', minimum: 0 },
      checkpoint_seq: { type: 'integer', minimum: 0 },
      state: { type: 'string' },
    },
  },
  Health: {
    type: 'object',
    required: ['status', 'consumer_running', 'queue_size', 'timestamp'],
    properties: {
      status: { enum: ['healthy', 'degraded', 'no_space', 'starting', 'recovering', 'failed', 'stopping', 'stopped'] },
      consumer_running: { type: 'boolean' },
      queue_size: { type: 'integer', minimum: 0 },
      timestamp: { type: 'string' },
      log: { type: 'object' },
      index: { type: 'object' },
    },
  },
};

/** The query parameters of GET /events, documented one by one (EVENTS_QUERY_PARAMETERS lists them). */
export const EVENTS_PARAMETER_DOCS: Record<(typeof EVENTS_QUERY_PARAMETERS)[number], JsonObject> = {
  topic: { name: 'topic', in: 'query', description: 'Only this topic.', schema: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax } },
  limit: {
    name: 'limit',
    in: 'query',
    description: `Page size (default ${FIXED_LIMITS.queryLimitDefault}).`,
    schema: { type: 'integer', minimum: 1, maximum: FIXED_LIMITS.queryLimitMax, default: FIXED_LIMITS.queryLimitDefault },
  },
  after: { name: 'after', in: 'query', description: 'A next_cursor from the previous page: events after it.', schema: { type: 'string' } },
  since: { name: 'since', in: 'query', description: 'Events whose timestamp is at or after this RFC 3339 instant.', schema: { type: 'string', format: 'date-time' } },
  until: { name: 'until', in: 'query', description: 'Events whose timestamp is before this RFC 3339 instant.', schema: { type: 'string', format: 'date-time' } },
  source: { name: 'source', in: 'query', description: 'Only events from this source.', schema: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax } },
};

/** An OpenAPI answer (Response Object) with a JSON body of `schema`. */
export function jsonAnswer(schema: JsonObject, description: string): JsonObject {
  return { description, content: { 'application/json': { schema } } };
}

/** An OpenAPI answer whose body is text of `mediaType` (HTML, Prometheus text, an event stream). */
export function textAnswer(mediaType: string, description: string): JsonObject {
  return { description, content: { [mediaType]: { schema: { type: 'string' } } } };
}
