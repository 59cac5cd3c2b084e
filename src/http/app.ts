import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { Aggregator } from '../ingest/aggregator';
import { errorHandler, notFoundHandler } from './errors';
import { eventsRouter } from './events';
import { isJsonRequest, publishRouter } from './publish';
import { compileValidators } from './schemas';
import { statusRouter } from './status';

export type AppLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax'>;

/** The methods each known path takes, for 405 answers. */
export const ROUTES: Record<string, string[]> = {
  '/publish': ['POST'],
  '/events': ['GET'],
  '/stats': ['GET'],
  '/health': ['GET'],
};

/** Builds the express app over an Aggregator; it listens on nothing itself. */
export function createApp(aggregator: Aggregator, limits: AppLimits, logger: Logger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const validators = compileValidators();
  // JSON only, bounded after inflation (gzip/deflate/br bodies are inflated by body-parser).
  app.use('/publish', express.json({ limit: limits.bodyBytesMax, type: isJsonRequest, strict: true }));
  app.use(publishRouter(aggregator, validators, limits));
  app.use(eventsRouter(aggregator));
  app.use(statusRouter(aggregator));
  app.use(notFoundHandler(ROUTES));
  app.use(errorHandler(logger));
  return app;
}
