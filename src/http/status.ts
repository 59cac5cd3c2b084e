import type { RequestHandler } from 'express';
import type { Aggregator } from '../ingest/aggregator';

/** GET /stats: lifetime counters and live figures. */
export function statsHandler(aggregator: Aggregator): RequestHandler {
  return (_req, res) => {
    res.status(200).json(aggregator.stats());
  };
}

/** GET /health: 200 while writes are accepted, 503 whenever they cannot be. */
export function healthHandler(aggregator: Aggregator): RequestHandler {
  return (_req, res) => {
    const { ok, body } = aggregator.health();
    res.status(ok ? 200 : 503).json(body);
  };
}
