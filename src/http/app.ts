import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { Aggregator } from '../ingest/aggregator';
import { errorHandler, notFoundHandler } from './errors';
import { eventsRouter } from './events';
import { isJsonRequest, publishRouter } from './publish';
import { compileValidators } from './schemas';
import { statusRouter } from './status';
import { StreamHub, type StreamLimits } from './stream';

export type AppLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'> & Partial<StreamLimits>;

/** Live-tail settings when the caller gives none (tests building an app from a few limits). */
const STREAM_DEFAULTS: StreamLimits = { streamSubscribersMax: 100, streamHeartbeatMs: 15_000, streamBufferBytesMax: 1024 * 1024, retryAfterSeconds: 1 };

/** The methods each known path takes, for 405 answers. */
export const ROUTES: Record<string, string[]> = {
  '/publish': ['POST'],
  '/events': ['GET'],
  '/events/stream': ['GET'],
  '/stats': ['GET'],
  '/health': ['GET'],
};

/**
 * Builds the express app over an Aggregator; it listens on nothing itself. Pass `streams`
 * to end live-tail streams on shutdown (startService does).
 */
export function createApp(aggregator: Aggregator, limits: AppLimits, logger: Logger, streams?: StreamHub): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const validators = compileValidators();
  // JSON only, bounded after inflation (gzip/deflate/br bodies are inflated by body-parser).
  app.use('/publish', express.json({ limit: limits.bodyBytesMax, type: isJsonRequest, strict: true }));
  app.use(publishRouter(aggregator, validators, limits));
  app.use((streams ?? new StreamHub(aggregator, { ...STREAM_DEFAULTS, ...definedOnly(limits) })).router());
  app.use(eventsRouter(aggregator));
  app.use(statusRouter(aggregator));
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
