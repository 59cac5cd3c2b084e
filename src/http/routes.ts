/**
 * The route table: every HTTP route of the service, listed once. Routing (createApp),
 * access control (auth.ts), request logs (request-log.ts), metric route labels
 * (metrics.ts), 404/405 answers (errors.ts) and the OpenAPI document (openapi.ts) are all
 * derived from it; none of them keeps a list of paths of its own.
 *
 * How to add a route:
 * 1. Write its handler in a file of its own under src/http/: a function that takes what it
 *    needs from the RouteContext and returns an express RequestHandler. Expected failures
 *    are thrown as AppError (src/errors.ts); a body it reads is parsed by the parser the
 *    entry lists first in `handlers` (express.json, express.raw, express.text...), since
 *    no parser runs for the whole app.
 * 2. Add one entry to ROUTE_TABLE below: method, path (express 5 syntax: `/:name` for a
 *    segment, `/*name` for the rest of the path), scope, operationId, summary, answers,
 *    the error codes it can give, an example, and `handlers`.
 * That is all. test/http/openapi.test.ts checks that the app routes exactly the table and
 * that each documented entry's examples are answered as the document says.
 *
 * Rules: one entry per (method, path); a route that must answer differently by Accept
 * (an HTML page and a JSON banner on the same path) negotiates inside its handler
 * (`req.accepts`). A path not in the table needs the read scope (deny by default).
 * Static assets set `openapi: false` and are left out of the document.
 */
import type { RequestHandler } from 'express';
import { FIXED_LIMITS, type ApiScope } from '../config/config';
import type { ErrorCode } from '../errors';
import type { Pipeline } from '../ingest/pipeline';
import { EVENTS_PARAMETER_DOCS, PAYLOAD_FIELDS_PARAMETER, jsonAnswer, schemaRef, textAnswer, type JsonObject } from './api-schemas';
import type { AppLimits } from './app';
import { eventsHandler, EVENTS_QUERY_PARAMETERS, HISTOGRAM_QUERY_PARAMETERS, histogramHandler } from './events';
import type { ServiceMetrics } from './metrics';
import { INGEST_ERRORS, publishBodyParser, publishHandler } from './publish';
import { RouteIndex } from './route-index';
import { BATCH_SCHEMA, EVENT_SCHEMA, type Validators } from './schemas';
import { elasticBannerHandler, SHIPPER_ROUTES } from './shippers';
import { healthHandler, statsHandler } from './status';
import type { StreamHub } from './stream';
import { openApiHandler, pageHandler, swaggerAssetsHandler, swaggerPageHandler, uiAssetsHandler } from './web-assets';

/** The methods a route may serve (HEAD is served by GET, as express does). */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The limits the OpenAPI document states; they come from the running configuration. */
export type DocumentedLimits = Pick<AppLimits, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'>;

/** What createApp hands every route's `handlers` when it builds the app. */
export interface RouteContext {
  aggregator: Pipeline;
  limits: AppLimits;
  validators: Validators;
  metrics: ServiceMetrics;
  streams: StreamHub;
  /** The OpenAPI document built from this table. */
  document: JsonObject;
}

/**
 * One worked request and its answer. It becomes an OpenAPI example of the operation, and a
 * test sends it to a running service (in table order) and checks the answer's status and
 * that the answer matches the documented schema.
 */
export interface RouteExample {
  /** Key of the example in the document (letters, digits, `_`, `-`). */
  name: string;
  summary: string;
  /** Query parameters of the request. */
  query?: Record<string, string>;
  /** Request body, sent as the first media type of `requestBody`. */
  body?: unknown;
  /** Status of the answer. */
  status: number;
  /** An answer of that status (shown in the document; the test checks the schema, not these values). */
  answer?: unknown;
}

/** One route: what it is, who may call it, what it answers, and the handlers that serve it. */
export interface RouteSpec {
  method: HttpMethod;
  /** Express 5 path syntax; matched case-insensitively, a trailing slash ignored. */
  path: string;
  /** The API-key scope it needs; null = open to anyone who reaches the port. */
  scope: ApiScope | null;
  /** Stable operation name, unique in the table (OpenAPI operationId, generated client method). */
  operationId: string;
  summary: string;
  /** Longer text (markdown); a function when it states configured limits. */
  description?: string | ((limits: DocumentedLimits) => string);
  /** OpenAPI Parameter Objects (query, header; path parameters are added from `path` when not listed). */
  parameters?: readonly JsonObject[];
  /** OpenAPI Request Body Object. */
  requestBody?: JsonObject;
  /** The answers other than errors, by status: OpenAPI Response Objects. */
  answers: Readonly<Record<string, JsonObject>>;
  /**
   * The catalogue codes it can answer with, besides 404/405 and, for a route with a scope,
   * unauthorized and forbidden (added from `scope`).
   */
  errors: readonly ErrorCode[];
  /**
   * Which request line a successful answer gets (errors always log at warn or error):
   * `normal` (the default) info; `quiet` debug, and the rate limit spares the route (probes
   * scraped every few seconds); `ingest` debug, rate limited like any route (the routes
   * shippers push to: a line for each of their requests at info would grow the service's
   * own log with the traffic, and cost about a tenth of the CPU of a one-event publish;
   * docs/operations.md, "Request logs").
   */
  logging?: 'normal' | 'quiet' | 'ingest';
  /** Worked examples; every documented route has at least one. */
  examples?: readonly RouteExample[];
  /** false: routed and access-controlled, but left out of the OpenAPI document (static assets). */
  openapi?: boolean;
  /** The handlers in order: a body parser first when the route reads a body, then the route's own. */
  handlers(context: RouteContext): RequestHandler[];
}

/** The seed's example events (README), as its curl examples send them. */
/** The acceptance time the examples show (a real answer has the instant the service accepted the event). */
const EXAMPLE_RECEIVED_AT = '2025-10-23T10:00:00.123Z';

const EXAMPLE_LOGIN = {
  topic: 'user.login',
  event_id: 'evt-001',
  timestamp: '2025-10-23T10:00:00Z',
  source: 'auth-service',
  payload: { user_id: 'user-123' },
};
const EXAMPLE_ORDER = {
  topic: 'order.created',
  event_id: 'evt-002',
  timestamp: '2025-10-23T10:01:00Z',
  source: 'order-service',
  payload: { order_id: 'ord-456' },
};

/** Every route of the service, in the order express tries them. */
export const ROUTE_TABLE: readonly RouteSpec[] = [
  // Ingest.
  {
    method: 'POST',
    path: '/publish',
    scope: 'publish',
    logging: 'ingest',
    operationId: 'publish',
    summary: 'Publish one event or a batch',
    description: (limits) =>
      `Answers 200 only after every accepted event is fsynced to the log. Each (topic, event_id) is stored once, ` +
      `forever; re-sent events are counted as duplicates (with conflict: true when their content differs). A batch ` +
      `with one invalid event is rejected whole. Body at most ${limits.bodyBytesMax} bytes after inflation ` +
      `(Content-Encoding gzip, deflate or br accepted), at most ${limits.batchEventsMax} events, payload at most ` +
      `${limits.payloadBytesMax} bytes as JSON and ${limits.payloadDepthMax} levels deep. A top-level JSON array of ` +
      `events, or application/x-ndjson (one event per line; a bad line is reported with its line number), is taken ` +
      `as a batch.`,
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { oneOf: [schemaRef(EVENT_SCHEMA.$id), schemaRef(BATCH_SCHEMA.$id)] } },
        'application/x-ndjson': { schema: { type: 'string', description: 'One Event object per line; blank lines are skipped.' } },
      },
    },
    answers: { '200': jsonAnswer(schemaRef('PublishResult'), 'Every accepted event is durable; counts are exact.') },
    errors: INGEST_ERRORS,
    examples: [
      {
        name: 'single',
        summary: 'One event',
        body: EXAMPLE_LOGIN,
        status: 200,
        answer: {
          received: 1,
          accepted: 1,
          duplicates: 0,
          conflicts: 0,
          message: 'Received 1 events, accepted 1, rejected 0 duplicates',
          results: [{ status: 'accepted', seq: 1 }],
        },
      },
      {
        name: 'batch',
        summary: 'A batch: the event above re-sent (a duplicate) and a new one',
        body: { events: [EXAMPLE_LOGIN, EXAMPLE_ORDER] },
        status: 200,
        answer: {
          received: 2,
          accepted: 1,
          duplicates: 1,
          conflicts: 0,
          message: 'Received 2 events, accepted 1, rejected 1 duplicates',
          results: [
            { status: 'duplicate', seq: 1 },
            { status: 'accepted', seq: 2 },
          ],
        },
      },
    ],
    handlers: ({ aggregator, validators, limits }) => [publishBodyParser(limits), publishHandler(aggregator, validators, limits)],
  },
  // The shippers' protocols (src/http/shippers.ts): OTLP logs, Loki push, Elasticsearch bulk.
  ...SHIPPER_ROUTES,

  // Reading.
  {
    method: 'GET',
    path: '/events',
    scope: 'read',
    operationId: 'queryEvents',
    summary: 'Stored events, oldest or newest first, filtered and paged',
    description:
      `Filters combine with AND. Topics alone are served by an index; with any other filter (q, payload.*, source, ` +
      `since, until) one request examines at most ${FIXED_LIMITS.queryScanRowsMax} stored events in seq order from the ` +
      `cursor: the page may then be short, or empty, and still carry a next_cursor to go on from.`,
    parameters: [...EVENTS_QUERY_PARAMETERS.map((name) => EVENTS_PARAMETER_DOCS[name]), PAYLOAD_FIELDS_PARAMETER],
    answers: { '200': jsonAnswer(schemaRef('EventsPage'), 'One page; follow next_cursor (null: nothing more now) for more.') },
    errors: ['invalid_query', 'reads_busy', 'read_failed', 'shutting_down', 'database_unavailable'],
    examples: [
      {
        name: 'byTopic',
        summary: 'The events of one topic',
        query: { topic: 'user.login', limit: '10' },
        status: 200,
        answer: {
          topic: 'user.login',
          count: 1,
          events: [{ seq: 1, ...EXAMPLE_LOGIN, received_at: EXAMPLE_RECEIVED_AT }],
          next_cursor: null,
        },
      },
      {
        name: 'search',
        summary: 'Newest first: a free-text search and a payload field, over the last 7 days',
        query: { q: 'signed', 'payload.level': 'info', since: '7d', order: 'desc' },
        status: 200,
        answer: { topic: null, count: 0, events: [], next_cursor: null },
      },
      {
        name: 'badOrder',
        summary: 'An order that is neither asc nor desc',
        query: { order: 'newest' },
        status: 400,
        answer: {
          error: 'invalid_query',
          message: '1 problem(s) in the query',
          details: [{ index: -1, path: 'order', message: 'must be asc (oldest first) or desc (newest first)' }],
        },
      },
    ],
    handlers: ({ aggregator, limits }) => [eventsHandler(aggregator, limits)],
  },
  {
    method: 'GET',
    path: '/events/histogram',
    scope: 'read',
    operationId: 'histogramEvents',
    summary: 'Counts of the events GET /events would match, in equal time buckets over [since, until)',
    description:
      'A missing since or until becomes the earliest or just past the latest matching timestamp. The counts add up to ' +
      'the number of events the filters match (those indexed when the count started). The count runs in chunks of ' +
      `${FIXED_LIMITS.histogramChunkRows} stored events, yielding between them.`,
    parameters: [...HISTOGRAM_QUERY_PARAMETERS.map((name) => EVENTS_PARAMETER_DOCS[name]), PAYLOAD_FIELDS_PARAMETER],
    answers: { '200': jsonAnswer(schemaRef('Histogram'), 'The buckets, oldest first.') },
    errors: ['invalid_query', 'reads_busy', 'read_failed', 'shutting_down', 'database_unavailable'],
    examples: [
      {
        name: 'lastHour',
        summary: 'One topic over the last hour, in 3 buckets',
        query: { topic: 'user.signup', since: '1h', buckets: '3' },
        status: 200,
        answer: {
          interval_ms: 1_200_000,
          since: '2025-10-23T09:00:00.000Z',
          until: '2025-10-23T10:00:00.000Z',
          total: 2,
          buckets: [
            { start: '2025-10-23T09:00:00.000Z', count: 0 },
            { start: '2025-10-23T09:20:00.000Z', count: 2 },
            { start: '2025-10-23T09:40:00.000Z', count: 0 },
          ],
        },
      },
      {
        name: 'badBuckets',
        summary: 'Zero buckets',
        query: { buckets: '0' },
        status: 400,
        answer: {
          error: 'invalid_query',
          message: '1 problem(s) in the query',
          details: [{ index: -1, path: 'buckets', message: 'must be a whole number from 1 to 1000' }],
        },
      },
    ],
    handlers: ({ aggregator }) => [histogramHandler(aggregator)],
  },
  {
    method: 'GET',
    path: '/events/stream',
    scope: 'read',
    operationId: 'streamEvents',
    summary: 'Live tail (Server-Sent Events): stored events after the resume point, then new ones; the SSE id is the seq',
    description: 'Takes the filters of GET /events (relative since/until are resolved once, when the stream opens).',
    parameters: [
      ...HISTOGRAM_QUERY_PARAMETERS.filter((name) => name !== 'buckets').map((name) => EVENTS_PARAMETER_DOCS[name]),
      PAYLOAD_FIELDS_PARAMETER,
      { ...EVENTS_PARAMETER_DOCS.after, description: 'Resume after this seq.' },
      { name: 'Last-Event-ID', in: 'header', description: 'Resume after this seq (wins over `after`).', schema: { type: 'string' } },
    ],
    answers: { '200': textAnswer('text/event-stream', 'Event stream; each data line is one stored event.') },
    errors: ['invalid_query', 'recovering', 'subscribers_full', 'shutting_down', 'reads_busy', 'read_failed'],
    examples: [
      {
        name: 'resume',
        summary: 'Follow one topic from seq 0',
        query: { topic: 'user.login', after: '0' },
        status: 200,
        answer: `retry: 1000\n: stream after seq 0\n\nid: 1\ndata: ${JSON.stringify({ seq: 1, ...EXAMPLE_LOGIN, received_at: EXAMPLE_RECEIVED_AT })}\n\n`,
      },
    ],
    handlers: ({ streams }) => [streams.handler()],
  },
  {
    method: 'GET',
    path: '/stats',
    scope: 'read',
    operationId: 'stats',
    summary: 'Lifetime counters and live figures',
    answers: { '200': jsonAnswer(schemaRef('Stats'), 'Counters survive restarts.') },
    errors: ['database_unavailable'],
    examples: [
      {
        name: 'afterTheSeedExamples',
        summary: 'After the two publish examples',
        status: 200,
        answer: {
          received: 3,
          unique_processed: 2,
          duplicate_dropped: 1,
          conflicts: 0,
          topics: ['order.created', 'user.login'],
          uptime_seconds: 12.3,
          uptime_human: '0h 0m 12s',
          accepted: 2,
          queue_size: 0,
          checkpoint_seq: 2,
          state: 'ready',
          first_seq: 1,
          log_bytes: 612,
          expired_events: 0,
          dedup_keys: 2,
        },
      },
    ],
    handlers: ({ aggregator }) => [statsHandler(aggregator)],
  },

  // Probes and the API description (open).
  {
    method: 'GET',
    path: '/health',
    scope: null,
    operationId: 'health',
    summary: 'Whether writes are accepted now (never needs a key)',
    answers: {
      '200': jsonAnswer(schemaRef('Health'), 'Healthy (or degraded): writes are accepted.'),
      '503': jsonAnswer(schemaRef('Health'), 'Recovering, out of space, failed or stopping: writes are refused.'),
    },
    errors: [],
    logging: 'quiet',
    examples: [
      {
        name: 'healthy',
        summary: 'Accepting writes',
        status: 200,
        answer: {
          status: 'healthy',
          consumer_running: true,
          queue_size: 0,
          timestamp: '2025-10-23T10:30:45.123Z',
          log: { durable_seq: 2, segment: '00000000000000000001.ndjson', segment_bytes: 366, no_space_since: null, error: null },
          index: { checkpoint_seq: 2, error: null },
        },
      },
    ],
    handlers: ({ aggregator }) => [healthHandler(aggregator)],
  },
  {
    method: 'GET',
    path: '/metrics',
    scope: 'read',
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format)',
    answers: { '200': textAnswer('text/plain', 'Prometheus text format 0.0.4.') },
    errors: [],
    logging: 'quiet',
    examples: [
      {
        name: 'scrape',
        summary: 'One scrape (two of its metrics)',
        status: 200,
        answer:
          '# HELP logagg_events_accepted_total Events accepted: new (topic, event_id) keys written to the log.\n' +
          '# TYPE logagg_events_accepted_total counter\nlogagg_events_accepted_total 2\n' +
          '# HELP logagg_backlog_events Events accepted but not yet in the index (bounded by QUEUE_MAX_SIZE).\n' +
          '# TYPE logagg_backlog_events gauge\nlogagg_backlog_events 0\n',
      },
    ],
    handlers: ({ metrics }) => [metrics.handler()],
  },
  {
    method: 'GET',
    path: '/openapi.json',
    scope: null,
    operationId: 'openapi',
    summary: 'This OpenAPI 3.1 document',
    answers: { '200': jsonAnswer({ type: 'object' }, 'The document.') },
    errors: [],
    examples: [
      {
        name: 'document',
        summary: 'The start of the document',
        status: 200,
        answer: { openapi: '3.1.0', info: { title: 'log-aggregator', version: '0.1.0', license: { name: 'MIT', identifier: 'MIT' } } },
      },
    ],
    handlers: ({ document }) => [openApiHandler(document)],
  },
  {
    method: 'GET',
    path: '/docs',
    scope: null,
    operationId: 'docs',
    summary: 'Swagger UI over this document, with try-it-out',
    answers: { '200': textAnswer('text/html', 'Swagger UI (its files are served under /docs/, no network needed).') },
    errors: [],
    examples: [
      { name: 'page', summary: 'The page', status: 200, answer: '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">...' },
    ],
    handlers: () => [swaggerPageHandler()],
  },
  {
    method: 'GET',
    path: '/docs/*file',
    scope: null,
    operationId: 'docsAsset',
    summary: "Swagger UI's scripts and styles (from the swagger-ui-dist package)",
    answers: { '200': textAnswer('application/octet-stream', 'The file.') },
    errors: [],
    logging: 'quiet',
    openapi: false,
    handlers: () => [swaggerAssetsHandler()],
  },

  // The explorer page (open: it holds no data; its requests to the API carry the reader's key).
  {
    method: 'GET',
    path: '/',
    scope: null,
    operationId: 'explorerPage',
    summary: 'The explorer page for a browser (Accept: text/html); the Elasticsearch banner for any other client',
    answers: { '200': textAnswer('text/html', 'The page, or the Elasticsearch banner (JSON) for a client that does not ask for HTML.') },
    errors: [],
    openapi: false,
    // One entry per (method, path): the banner answers clients that do not ask for HTML, the page the rest.
    handlers: () => [elasticBannerHandler(), pageHandler()],
  },
  {
    method: 'GET',
    path: '/ui/*file',
    scope: null,
    operationId: 'explorerAsset',
    summary: "The explorer's scripts, styles and libraries (uPlot), all served locally",
    answers: { '200': textAnswer('application/octet-stream', 'The file.') },
    errors: [],
    logging: 'quiet',
    openapi: false,
    handlers: () => [uiAssetsHandler()],
  },
];

/** The table, indexed for lookups by request path (what the middlewares ask). */
export const ROUTE_INDEX = new RouteIndex<RouteSpec>(ROUTE_TABLE);
