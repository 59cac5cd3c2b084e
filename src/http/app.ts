import compression from 'compression';
import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { Pipeline } from '../ingest/pipeline';
import { authMiddleware } from './auth';
import { errorHandler, notFoundHandler } from './errors';
import { ExpectedErrorLog } from './expected-log';
import { ServiceMetrics } from './metrics';
import { buildOpenApiDocument } from './openapi';
import { rateLimiter, type RateLimits } from './rate-limit';
import { requestLogger } from './request-log';
import { RouteIndex } from './route-index';
import { ROUTE_INDEX, ROUTE_TABLE, type HttpMethod, type RouteContext, type RouteSpec } from './routes';
import { compileValidators } from './schemas';
import { StreamHub, type StreamLimits } from './stream';

/** The settings the app reads. */
export type AppLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'> &
  Partial<StreamLimits> &
  Partial<Pick<Config, 'otlpTopicDefault' | 'lokiTopicLabels' | 'lokiTopicDefault' | 'pageBytesMax'>> &
  Partial<RateLimits>;

/** Live-tail settings when the caller gives none (tests building an app from a few limits). */
const STREAM_DEFAULTS: StreamLimits = {
  streamSubscribersMax: 100,
  streamHeartbeatMs: 15_000,
  streamBufferBytesMax: 1024 * 1024,
  retryAfterSeconds: 1,
};

/** What the app adds around the routes; every part optional. */
export interface AppOptions {
  /** The metrics whose `observer` the Aggregator was built with; without it a fresh one (gauges only, no hooks). */
  metrics?: ServiceMetrics;
  /** API key digests per scope; without them (or with none for a scope) that scope is open. */
  apiKeyDigests?: Config['apiKeyDigests'];
  /** The live-tail hub, so its streams can be ended on shutdown (startService passes one). */
  streams?: StreamHub;
  /** The routes to serve; ROUTE_TABLE unless a test builds an app over a table of its own. */
  routes?: readonly RouteSpec[];
}

/** The express route method for each table method. */
const ROUTER_METHODS = { GET: 'get', POST: 'post', PUT: 'put', PATCH: 'patch', DELETE: 'delete' } as const satisfies Record<
  HttpMethod,
  string
>;

/** Builds the express app over an Aggregator; it listens on nothing itself. */
export function createApp(aggregator: Pipeline, limits: AppLimits, logger: Logger, options: AppOptions = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const table = options.routes ?? ROUTE_TABLE;
  const index = options.routes === undefined ? ROUTE_INDEX : new RouteIndex<RouteSpec>(options.routes);
  const metrics = options.metrics ?? new ServiceMetrics().watch({ aggregator });
  const context: RouteContext = {
    aggregator,
    limits,
    validators: compileValidators(),
    metrics,
    streams: options.streams ?? new StreamHub(aggregator, { ...STREAM_DEFAULTS, ...definedOnly(limits) }),
    document: buildOpenApiDocument(limits, { routes: table }),
  };
  // gzip for clients that accept it (1000 events: 178 KB of JSON), but never the live tail:
  // compression buffers, and each event must reach its subscriber at once.
  app.use(
    compression({
      filter: (req, res) => !String(res.getHeader('Content-Type') ?? '').startsWith('text/event-stream') && compression.filter(req, res),
    }),
  );
  // One log line and one metrics sample per request, then access control before any body is read.
  app.use(requestLogger(logger, index, new ExpectedErrorLog(logger, metrics.registry)));
  app.use(metrics.middleware(index));
  app.use(authMiddleware(options.apiKeyDigests ?? { publish: [], read: [] }, index));
  const limiter = rateLimiter(limits, index);
  if (limiter !== null) app.use(limiter);
  // Every route from the table, each with its own body parser (none runs app-wide).
  for (const spec of table) app.route(spec.path)[ROUTER_METHODS[spec.method]](...spec.handlers(context));
  app.use(notFoundHandler(index));
  app.use(errorHandler(logger, limits.retryAfterSeconds));
  return app;
}

function definedOnly(limits: Partial<StreamLimits>): Partial<StreamLimits> {
  const picked: Partial<StreamLimits> = {};
  for (const key of Object.keys(STREAM_DEFAULTS) as Array<keyof StreamLimits>) {
    if (limits[key] !== undefined) picked[key] = limits[key];
  }
  return picked;
}
