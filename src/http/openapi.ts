import type { RequestHandler } from 'express';
import { FIXED_LIMITS, type Config } from '../config/config';
import { ERROR_CATALOGUE, type ErrorCode } from '../errors';
import { scopeForPath } from './auth';
import { EVENTS_QUERY_PARAMETERS, HISTOGRAM_QUERY_PARAMETERS } from './events';
import { BATCH_SCHEMA, EVENT_SCHEMA } from './schemas';

type JsonObject = Record<string, unknown>;

/** The limits the document states; they come from the running configuration. */
export type DocumentedLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'>;

/** The schemas ajv validates with, by the `$id` they carry; they enter the document unchanged but for refs. */
export const VALIDATED_SCHEMAS: Record<string, JsonObject> = {
  [EVENT_SCHEMA.$id]: EVENT_SCHEMA as unknown as JsonObject,
  [BATCH_SCHEMA.$id]: BATCH_SCHEMA as unknown as JsonObject,
};

/**
 * Turns a schema ajv compiles into an OpenAPI component: `$id` dropped and every
 * `$ref: "<id>"` rewritten to `#/components/schemas/<id>`, so references resolve inside the
 * document. Nothing else changes (a test checks the reverse mapping gives the ajv schema back).
 */
export function toComponentSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toComponentSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === '$id') continue;
    if (key === '$ref' && typeof value === 'string' && VALIDATED_SCHEMAS[value] !== undefined) out.$ref = `#/components/schemas/${value}`;
    else out[key] = toComponentSchema(value);
  }
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Schemas of the answers (not validated by the service; tests validate real answers against them). */
const ANSWER_SCHEMAS: Record<string, JsonObject> = {
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
      events: { type: 'array', items: ref('StoredEvent') },
      next_cursor: { type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last page.' },
    },
  },
  Histogram: {
    type: 'object',
    required: ['interval_ms', 'since', 'until', 'total', 'buckets'],
    properties: {
      interval_ms: { type: 'integer', minimum: 0, description: 'Width of each bucket (0 when there was nothing to count and no range was given).' },
      since: { type: 'string', description: 'Start of the first bucket (RFC 3339).' },
      until: { type: 'string', description: 'End of the range, exclusive (RFC 3339).' },
      total: { type: 'integer', minimum: 0, description: 'Sum of the counts: the events the filters match.' },
      buckets: {
        type: 'array',
        items: {
          type: 'object',
          required: ['start', 'count'],
          properties: { start: { type: 'string', description: 'RFC 3339.' }, count: { type: 'integer', minimum: 0 } },
        },
      },
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

/** A JSON error answer that carries one of `codes`. */
function errorAnswer(codes: ErrorCode[]): JsonObject {
  const retry = codes.some((code) => ERROR_CATALOGUE[code].status === 503);
  const answer: JsonObject = {
    description: codes.map((code) => `\`${code}\`: ${ERROR_CATALOGUE[code].meaning}`).join('\n'),
    content: { 'application/json': { schema: { allOf: [ref('Error'), { properties: { error: { enum: codes } } }] } } },
  };
  if (retry) answer.headers = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
  return answer;
}

/** Error answers grouped by status, for the codes a route can give. */
function errorAnswers(codes: ErrorCode[]): Record<string, JsonObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CATALOGUE[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, JsonObject> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) out[String(status)] = errorAnswer(list);
  return out;
}

const json = (schema: JsonObject, description: string) => ({ description, content: { 'application/json': { schema } } });

/** One operation of the table below; `security` is filled from the auth rules. */
type Operation = JsonObject & { summary: string; responses: Record<string, JsonObject> };

/**
 * The documented operations by path and method. One entry per route: a test walks the
 * express router and fails when a route is missing here, so adding a route means adding
 * a line here.
 */
export function documentedOperations(limits: DocumentedLimits): Record<string, Record<string, Operation>> {
  return {
    '/publish': {
      post: {
        operationId: 'publish',
        summary: 'Publish one event or a batch',
        description:
          `Answers 200 only after every accepted event is fsynced to the log. Each (topic, event_id) is stored once, forever; ` +
          `re-sent events are counted as duplicates (with conflict: true when their content differs). A batch with one invalid ` +
          `event is rejected whole. Body at most ${limits.bodyBytesMax} bytes after inflation (Content-Encoding gzip, deflate ` +
          `or br accepted), at most ${limits.batchEventsMax} events, payload at most ${limits.payloadBytesMax} bytes as JSON ` +
          `and ${limits.payloadDepthMax} levels deep.`,
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { oneOf: [ref(EVENT_SCHEMA.$id), ref(BATCH_SCHEMA.$id)] } } },
        },
        responses: {
          '200': json(ref('PublishResult'), 'Every accepted event is durable; counts are exact.'),
          ...errorAnswers([
            'invalid_json',
            'validation_failed',
            'invalid_compressed_body',
            'unauthorized',
            'forbidden',
            'body_too_large',
            'batch_too_large',
            'unsupported_media_type',
            'recovering',
            'backlog_full',
            'log_no_space',
            'log_failed',
            'shutting_down',
          ]),
        },
      },
    },
    '/events': {
      get: {
        operationId: 'queryEvents',
        summary: 'Stored events in publish order, paged',
        description:
          `Filters combine with AND. Topics alone are served by an index; with any other filter (q, payload.*, source, ` +
          `since, until) one request examines at most ${FIXED_LIMITS.queryScanRowsMax} stored events in seq order from the ` +
          `cursor: the page may then be short, or empty, and still carry a next_cursor to go on from.`,
        parameters: [...EVENTS_QUERY_PARAMETERS.map((name) => EVENTS_PARAMETER_DOCS[name]), PAYLOAD_FIELDS_PARAMETER],
        responses: {
          '200': json(ref('EventsPage'), 'One page; follow next_cursor (null: nothing more now) for more.'),
          ...errorAnswers(['invalid_query', 'unauthorized', 'forbidden']),
        },
      },
    },
    '/events/histogram': {
      get: {
        operationId: 'histogramEvents',
        summary: 'Counts of the events GET /events would match, in equal time buckets over [since, until)',
        description:
          'A missing since or until becomes the earliest or just past the latest matching timestamp. The counts add up to ' +
          'the number of events the filters match (those indexed when the count started).',
        parameters: [...HISTOGRAM_QUERY_PARAMETERS.map((name) => EVENTS_PARAMETER_DOCS[name]), PAYLOAD_FIELDS_PARAMETER],
        responses: {
          '200': json(ref('Histogram'), 'The buckets, oldest first.'),
          ...errorAnswers(['invalid_query', 'unauthorized', 'forbidden']),
        },
      },
    },
    '/events/stream': {
      get: {
        operationId: 'streamEvents',
        summary: 'Live tail (Server-Sent Events): stored events after the resume point, then new ones; the SSE id is the seq',
        description: 'Takes the filters of GET /events (relative since/until are resolved once, when the stream opens).',
        parameters: [
          ...HISTOGRAM_QUERY_PARAMETERS.filter((name) => name !== 'buckets').map((name) => EVENTS_PARAMETER_DOCS[name]),
          PAYLOAD_FIELDS_PARAMETER,
          { ...EVENTS_PARAMETER_DOCS.after, description: 'Resume after this seq.' },
          { name: 'Last-Event-ID', in: 'header', description: 'Resume after this seq (wins over `after`).', schema: { type: 'string' } },
        ],
        responses: {
          '200': { description: 'Event stream; each data line is one stored event.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          ...errorAnswers(['invalid_query', 'unauthorized', 'forbidden', 'recovering', 'subscribers_full', 'shutting_down']),
        },
      },
    },
    '/stats': {
      get: {
        operationId: 'stats',
        summary: 'Lifetime counters and live figures',
        responses: { '200': json(ref('Stats'), 'Counters survive restarts.'), ...errorAnswers(['unauthorized', 'forbidden']) },
      },
    },
    '/health': {
      get: {
        operationId: 'health',
        summary: 'Whether writes are accepted now (never needs a key)',
        responses: {
          '200': json(ref('Health'), 'Healthy (or degraded): writes are accepted.'),
          '503': json(ref('Health'), 'Recovering, out of space, failed or stopping: writes are refused.'),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        responses: {
          '200': { description: 'Prometheus text format 0.0.4.', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errorAnswers(['unauthorized', 'forbidden']),
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This OpenAPI 3.1 document',
        responses: { '200': { description: 'The document.', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
    '/docs': {
      get: {
        operationId: 'docs',
        summary: 'This document as a readable HTML page',
        responses: { '200': { description: 'A self-contained HTML page.', content: { 'text/html': { schema: { type: 'string' } } } } },
      },
    },
  };
}

const INSTANT_SCHEMA = { type: 'string', examples: ['2025-10-23T10:00:00Z', '15m', '2h', '7d'] };

/** The query parameters of GET /events and its histogram, documented one by one (EVENTS_QUERY_PARAMETERS lists them). */
const EVENTS_PARAMETER_DOCS: Record<(typeof EVENTS_QUERY_PARAMETERS)[number] | (typeof HISTOGRAM_QUERY_PARAMETERS)[number], JsonObject> = {
  topic: {
    name: 'topic',
    in: 'query',
    description: `Only these topics: repeat the parameter for several (any of them), at most ${FIXED_LIMITS.queryTopicsMax}.`,
    schema: { type: 'array', items: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax }, maxItems: FIXED_LIMITS.queryTopicsMax },
    style: 'form',
    explode: true,
  },
  source: { name: 'source', in: 'query', description: 'Only events from this source.', schema: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax } },
  since: {
    name: 'since',
    in: 'query',
    description: 'Events whose timestamp is at or after this instant: RFC 3339, or a time before now (`15m`, `2h`, `7d`; units s m h d w), or `now`.',
    schema: INSTANT_SCHEMA,
  },
  until: { name: 'until', in: 'query', description: 'Events whose timestamp is before this instant (same forms as `since`).', schema: INSTANT_SCHEMA },
  q: {
    name: 'q',
    in: 'query',
    description:
      `Free text: every word (or "quoted phrase") must appear, case-insensitively, in the topic, source, event_id or any ` +
      `payload value. At most ${FIXED_LIMITS.queryWordsMax} words and ${FIXED_LIMITS.queryTextLengthMax} characters.`,
    schema: { type: 'string', maxLength: FIXED_LIMITS.queryTextLengthMax },
  },
  limit: {
    name: 'limit',
    in: 'query',
    description: `Page size (default ${FIXED_LIMITS.queryLimitDefault}).`,
    schema: { type: 'integer', minimum: 1, maximum: FIXED_LIMITS.queryLimitMax, default: FIXED_LIMITS.queryLimitDefault },
  },
  after: {
    name: 'after',
    in: 'query',
    description: 'A next_cursor from the previous page: the page goes on after it in the chosen order (older events with order=desc).',
    schema: { type: 'string' },
  },
  order: {
    name: 'order',
    in: 'query',
    description: '`asc`: oldest first, in publish (seq) order; `desc`: newest first.',
    schema: { enum: ['asc', 'desc'], default: 'asc' },
  },
  buckets: {
    name: 'buckets',
    in: 'query',
    description: `Number of equal buckets over [since, until) (default ${FIXED_LIMITS.histogramBucketsDefault}).`,
    schema: { type: 'integer', minimum: 1, maximum: FIXED_LIMITS.histogramBucketsMax, default: FIXED_LIMITS.histogramBucketsDefault },
  },
};

/** `payload.<dotted.path>=<value>`, documented as one free-form object parameter (any `payload.*` name). */
const PAYLOAD_FIELDS_PARAMETER: JsonObject = {
  name: 'payload',
  in: 'query',
  description:
    `Payload field filters, \`payload.<dotted.path>=<value>\` (for example \`payload.level=error&payload.user.id=123\`): ` +
    `the field must equal the value, a string as is, a number, \`true\`, \`false\` or \`null\` written as text. ` +
    `Repeatable, combined with AND; at most ${FIXED_LIMITS.queryFieldFiltersMax}, paths at most ${FIXED_LIMITS.queryFieldDepthMax} levels deep.`,
  schema: { type: 'object', additionalProperties: { type: 'string' } },
  style: 'form',
  explode: true,
};

/**
 * The OpenAPI 3.1 document of the service. Request schemas are the ajv schemas
 * (EVENT_SCHEMA, BATCH_SCHEMA) via toComponentSchema; each operation's security and
 * `x-scope` come from the same rule the auth middleware applies (scopeForPath).
 */
export function buildOpenApiDocument(limits: DocumentedLimits, options: { version?: string } = {}): JsonObject {
  const paths: Record<string, Record<string, Operation>> = {};
  for (const [path, operations] of Object.entries(documentedOperations(limits))) {
    paths[path] = {};
    for (const [method, operation] of Object.entries(operations)) {
      const scope = scopeForPath(path);
      paths[path]![method] = { ...operation, 'x-scope': scope ?? 'open', security: scope === null ? [] : [{ bearerAuth: [] }] };
    }
  }
  const schemas: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(VALIDATED_SCHEMAS)) schemas[id] = toComponentSchema(schema);
  Object.assign(schemas, ANSWER_SCHEMAS);
  return {
    openapi: '3.1.0',
    info: {
      title: 'log-aggregator',
      version: options.version ?? '0.1.0',
      description:
        'Durable, deduplicating HTTP event ingest: exactly-once effect per (topic, event_id), each acknowledged event ' +
        'fsynced to the log before the 200. API keys (when configured): `Authorization: Bearer <key>`, scope publish for ' +
        'POST /publish, scope read for reads and /metrics; a scope without keys is open.',
    },
    paths,
    components: {
      schemas,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key of the scope the operation names in x-scope.' } },
    },
  };
}

/** GET /openapi.json. */
export function openApiHandler(document: JsonObject): RequestHandler {
  const body = JSON.stringify(document);
  return (_req, res) => {
    res.status(200).type('application/json').send(body);
  };
}
