import compression from 'compression';
import express, { type Express, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { Pipeline } from '../ingest/pipeline';
import { authMiddleware } from './auth';
import { errorHandler, notFoundHandler } from './errors';
import { ExpectedErrorLog } from './expected-log';
import { serveRouteWithoutRouter } from './lean-route';
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
  /** false: POST /publish goes through the router like every other route (tests compare both ways). */
  leanPublish?: boolean;
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
  const compressible = (req: Request, res: Response): boolean =>
    !String(res.getHeader('Content-Type') ?? '').startsWith('text/event-stream') && compression.filter(req, res);
  const compress = compression({ filter: compressible });
  app.use(compress);
  // One log line and one metrics sample per request, then access control before any body is read.
  const middleware = [
    requestLogger(logger, index, new ExpectedErrorLog(logger, metrics.registry)),
    metrics.middleware(index),
    authMiddleware(options.apiKeyDigests ?? { publish: [], read: [] }, index),
  ];
  const limiter = rateLimiter(limits, index);
  if (limiter !== null) middleware.push(limiter);
  for (const step of middleware) app.use(step);
  // Every route from the table, each with its own body parser (none runs app-wide).
  const routeHandlers = new Map<RouteSpec, RequestHandler[]>();
  for (const spec of table) {
    const handlers = spec.handlers(context);
    routeHandlers.set(spec, handlers);
    app.route(spec.path)[ROUTER_METHODS[spec.method]](...handlers);
  }
  const onUnhandled = notFoundHandler(index);
  const onError = errorHandler(logger, limits.retryAfterSeconds);
  app.use(onUnhandled);
  app.use(onError);
  // The hot path: POST /publish runs the same steps without the router (lean-route.ts).
  const publish = options.leanPublish === false ? undefined : table.find((spec) => spec.method === 'POST' && spec.path === '/publish');
  if (publish !== undefined) {
    const handlers = routeHandlers.get(publish)!;
    serveRouteWithoutRouter(app, index, publish, { compress, compressible, middleware, handlers, onError, onUnhandled }, logger);
  }
  return app;
}

function definedOnly(limits: Partial<StreamLimits>): Partial<StreamLimits> {
  const picked: Partial<StreamLimits> = {};
  for (const key of Object.keys(STREAM_DEFAULTS) as Array<keyof StreamLimits>) {
    if (limits[key] !== undefined) picked[key] = limits[key];
  }
  return picked;
}
