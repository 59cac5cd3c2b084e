import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { Aggregator } from '../ingest/aggregator';
import { authMiddleware } from './auth';
import { jsonBodyParser } from './body';
import { docsPageHandler } from './docs-page';
import { errorHandler, notFoundHandler } from './errors';
import { eventsRouter } from './events';
import { ExpectedErrorLog } from './expected-log';
import { ServiceMetrics } from './metrics';
import { buildOpenApiDocument, openApiHandler } from './openapi';
import { isJsonRequest, publishRouter } from './publish';
import { requestLogger } from './request-log';
import { compileValidators } from './schemas';
import { statusRouter } from './status';
import { StreamHub, type StreamLimits } from './stream';

export type AppLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'> &
  Partial<StreamLimits> &
  Partial<Pick<Config, 'pageBytesMax'>>;

/** Live-tail settings when the caller gives none (tests building an app from a few limits). */
const STREAM_DEFAULTS: StreamLimits = { streamSubscribersMax: 100, streamHeartbeatMs: 15_000, streamBufferBytesMax: 1024 * 1024, retryAfterSeconds: 1 };

/** What the app adds around the routes; every part optional. */
export interface AppOptions {
  /** The metrics whose `observer` the Aggregator was built with; without it a fresh one (gauges only, no hooks). */
  metrics?: ServiceMetrics;
  /** API key digests per scope; without them (or with none for a scope) that scope is open. */
  apiKeyDigests?: Config['apiKeyDigests'];
  /** The live-tail hub, so its streams can be ended on shutdown (startService passes one). */
  streams?: StreamHub;
}

/** The methods each known path takes, for 405 answers, route labels and the OpenAPI coverage test. */
export const ROUTES: Record<string, string[]> = {
  '/publish': ['POST'],
  '/events': ['GET'],
  '/events/stream': ['GET'],
  '/stats': ['GET'],
  '/health': ['GET'],
  '/metrics': ['GET'],
  '/openapi.json': ['GET'],
  '/docs': ['GET'],
};

/** Builds the express app over an Aggregator; it listens on nothing itself. */
export function createApp(aggregator: Aggregator, limits: AppLimits, logger: Logger, options: AppOptions = {}): Express {
  const streams = options.streams;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const validators = compileValidators();
  const metrics = options.metrics ?? new ServiceMetrics().watch({ aggregator });
  const document = buildOpenApiDocument(limits);
  // One log line and one metrics sample per request, then access control before any body is read.
  app.use(requestLogger(logger, ROUTES, new ExpectedErrorLog(logger, metrics.registry)));
  app.use(metrics.middleware(ROUTES));
  app.use(authMiddleware(options.apiKeyDigests ?? { publish: [], read: [] }));
  // JSON only, strict UTF-8, numbers kept as sent; bounded on the wire and after inflation.
  app.use('/publish', jsonBodyParser(limits, isJsonRequest));
  app.use(publishRouter(aggregator, validators, limits));
  app.use((streams ?? new StreamHub(aggregator, { ...STREAM_DEFAULTS, ...definedOnly(limits) })).router());
  app.use(eventsRouter(aggregator, { pageBytesMax: limits.pageBytesMax }));
  app.use(statusRouter(aggregator));
  app.get('/metrics', metrics.handler());
  app.get('/openapi.json', openApiHandler(document));
  app.get('/docs', docsPageHandler(document));
  app.use(notFoundHandler(ROUTES));
  app.use(errorHandler(logger));
  return app;
}

function definedOnly(limits: Partial<StreamLimits>): Partial<StreamLimits> {
  const picked: Partial<StreamLimits> = {};
  for (const key of Object.keys(STREAM_DEFAULTS) as Array<keyof StreamLimits>) {
    if (limits[key] !== undefined) picked[key] = limits[key];
  }
  return picked;
}
