import { Router } from 'express';
import type { Aggregator } from '../ingest/aggregator';

/** GET /stats and GET /health. /health answers 503 whenever writes cannot be accepted. */
export function statusRouter(aggregator: Aggregator): Router {
  const router = Router();
  router.get('/stats', (_req, res) => {
    res.status(200).json(aggregator.stats());
  });
  router.get('/health', (_req, res) => {
    const { ok, body } = aggregator.health();
    res.status(ok ? 200 : 503).json(body);
  });
  return router;
}
