import { FIXED_LIMITS } from '../config/config';
import type { ServiceCondition, ServiceState } from '../ingest/aggregator';
import type { EVENTS_QUERY_PARAMETERS, HISTOGRAM_QUERY_PARAMETERS } from './events';
import type { HealthBody, StatsBody } from './status';

/** A JSON value as the OpenAPI document holds it. */
export type JsonObject = Record<string, unknown>;

/** The properties of an answer type, one schema per field: a field added to the type and not here fails to compile. */
type PropertiesOf<Body> = { [Field in keyof Body]-?: JsonObject };

/** A closed object schema: every field of `Body` required, no other field allowed (the answer is always whole). */
function objectSchema<Body>(description: string, properties: PropertiesOf<Body>): JsonObject {
  return { type: 'object', description, required: Object.keys(properties), additionalProperties: false, properties };
}

const count = (description?: string): JsonObject => ({
  type: 'integer',
  minimum: 0,
  ...(description === undefined ? {} : { description }),
});
const nullable = (type: string, description?: string): JsonObject => ({
  type: [type, 'null'],
  ...(description === undefined ? {} : { description }),
});

/** Every member of a string union, listed as keys so that a member missing here fails to compile. */
const membersOf = <Union extends string>(members: Record<Union, true>): Union[] => Object.keys(members) as Union[];

/** The service states (ServiceState) and the conditions /health reports (ServiceCondition). */
const STATES = membersOf<ServiceState>({ starting: true, recovering: true, ready: true, failed: true, stopping: true, stopped: true });
const CONDITIONS = membersOf<ServiceCondition>({
  healthy: true,
  degraded: true,
  no_space: true,
  backlog_full: true,
  database_unavailable: true,
  starting: true,
  recovering: true,
  failed: true,
  stopping: true,
  stopped: true,
});

const STATS_PROPERTIES: PropertiesOf<StatsBody> = {
  received: count('Lifetime: accepted + duplicates (survives restarts).'),
  unique_processed: count('Lifetime: events in the index.'),
  duplicate_dropped: count('Lifetime: events dropped as duplicates.'),
  conflicts: count('Lifetime: duplicates whose content differed from the stored original.'),
  topics: { type: 'array', items: { type: 'string' } },
  uptime_seconds: { type: 'number', minimum: 0 },
  uptime_human: { type: 'string', description: 'As the seed prints it: "1h 0m 0s".' },
  accepted: count('Lifetime: events accepted into the log.'),
  queue_size: count('Events accepted but not yet in the index.'),
  checkpoint_seq: count('Last log seq the index holds.'),
  state: { enum: STATES },
  first_seq: {
    type: 'integer',
    minimum: 1,
    description: 'The oldest seq kept: 1 until retention deletes (RETENTION_BYTES, RETENTION_MS).',
  },
  log_bytes: count('Bytes of the log segments on disk now.'),
  expired_events: count('Lifetime: events deleted by retention (survives restarts).'),
  dedup_keys: count('Dedup keys stored; those of events deleted by retention stay until DEDUP_HORIZON_MS passes.'),
};

const HEALTH_PROPERTIES: PropertiesOf<HealthBody> = {
  status: { enum: CONDITIONS, description: 'healthy and degraded answer 200; the others 503.' },
  consumer_running: { type: 'boolean' },
  queue_size: count(),
  timestamp: { type: 'string', format: 'date-time' },
  log: objectSchema<HealthBody['log']>('The write-ahead log.', {
    durable_seq: nullable('integer', 'Last fsynced seq; null before the log is open.'),
    segment: nullable('string', 'The segment being appended to.'),
    segment_bytes: count(),
    no_space_since: nullable('string', 'Since when the log device has been full.'),
    error: nullable('string', 'Why the log failed, if it did.'),
  }),
  index: objectSchema<HealthBody['index']>('The SQLite index.', {
    checkpoint_seq: count(),
    error: nullable('string', 'Why the index refuses writes for now, if it does.'),
  }),
};

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
    required: ['seq', 'topic', 'event_id', 'timestamp', 'source', 'received_at'],
    properties: {
      seq: { type: 'integer', minimum: 1, description: 'Log sequence number: publish order. Always the first key.' },
      topic: { type: 'string' },
      event_id: { type: 'string' },
      timestamp: { type: 'string', description: 'As published.' },
      source: { type: 'string' },
      payload: { type: 'object', additionalProperties: true, description: 'As published, when it was.' },
      received_at: {
        type: ['string', 'null'],
        format: 'date-time',
        description:
          'When the service accepted the event (RFC 3339, UTC, milliseconds); null for events logged before record format 2. Always the last key.',
      },
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
  Histogram: {
    type: 'object',
    required: ['interval_ms', 'since', 'until', 'total', 'buckets'],
    properties: {
      interval_ms: {
        type: 'integer',
        minimum: 0,
        description: 'Width of each bucket (0 when there was nothing to count and no range was given).',
      },
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
  Stats: objectSchema<StatsBody>('The answer to GET /stats.', STATS_PROPERTIES),
  Health: objectSchema<HealthBody>('The answer to GET /health (200 and 503 alike).', HEALTH_PROPERTIES),
};

const INSTANT_SCHEMA = { type: 'string', examples: ['2025-10-23T10:00:00Z', '15m', '2h', '7d'] };

/** The query parameters of GET /events and its histogram, documented one by one (EVENTS_QUERY_PARAMETERS lists them). */
export const EVENTS_PARAMETER_DOCS: Record<
  (typeof EVENTS_QUERY_PARAMETERS)[number] | (typeof HISTOGRAM_QUERY_PARAMETERS)[number],
  JsonObject
> = {
  topic: {
    name: 'topic',
    in: 'query',
    description: `Only these topics: repeat the parameter for several (any of them), at most ${FIXED_LIMITS.queryTopicsMax}.`,
    schema: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax },
      maxItems: FIXED_LIMITS.queryTopicsMax,
    },
    style: 'form',
    explode: true,
  },
  source: {
    name: 'source',
    in: 'query',
    description: 'Only events from this source.',
    schema: { type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax },
  },
  since: {
    name: 'since',
    in: 'query',
    description:
      'Events whose timestamp is at or after this instant: RFC 3339, or a time before now (`15m`, `2h`, `7d`; units s m h d w), or `now`.',
    schema: INSTANT_SCHEMA,
  },
  until: {
    name: 'until',
    in: 'query',
    description: 'Events whose timestamp is before this instant (same forms as `since`).',
    schema: INSTANT_SCHEMA,
  },
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
export const PAYLOAD_FIELDS_PARAMETER: JsonObject = {
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

/** An OpenAPI answer (Response Object) with a JSON body of `schema`. */
export function jsonAnswer(schema: JsonObject, description: string): JsonObject {
  return { description, content: { 'application/json': { schema } } };
}

/** An OpenAPI answer whose body is text of `mediaType` (HTML, Prometheus text, an event stream). */
export function textAnswer(mediaType: string, description: string): JsonObject {
  return { description, content: { [mediaType]: { schema: { type: 'string' } } } };
}
