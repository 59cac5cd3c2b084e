import type { RequestHandler } from 'express';
import type { ServiceCondition, ServiceState } from '../ingest/aggregator';
import type { Pipeline } from '../ingest/pipeline';

/** The answer to GET /stats: the seed's fields, then this service's own. */
export interface StatsBody {
  /** Lifetime: accepted + duplicates (survives restarts). */
  received: number;
  /** Lifetime: events in the index. */
  unique_processed: number;
  duplicate_dropped: number;
  conflicts: number;
  topics: string[];
  uptime_seconds: number;
  uptime_human: string;
  accepted: number;
  queue_size: number;
  checkpoint_seq: number;
  state: ServiceState;
  /** The oldest seq kept: 1 until retention deletes, then the first seq of the oldest segment kept. */
  first_seq: number;
  /** Bytes of the log's segments on disk now. */
  log_bytes: number;
  /** Lifetime: events deleted by retention (survives restarts). */
  expired_events: number;
  /** Dedup keys stored, those of events deleted by retention included until DEDUP_HORIZON_MS passes. */
  dedup_keys: number;
}

/** The answer to GET /health, whatever its status code. */
export interface HealthBody {
  status: ServiceCondition;
  consumer_running: boolean;
  queue_size: number;
  /** When the answer was made (ISO 8601). */
  timestamp: string;
  log: {
    durable_seq: number | null;
    segment: string | null;
    segment_bytes: number;
    no_space_since: string | null;
    error: string | null;
  };
  index: { checkpoint_seq: number; error: string | null };
}

/** "1h 0m 0s", as the seed prints uptime. */
export function formatUptime(seconds: number): string {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return `${h}h ${m}m ${s}s`;
}

/** The /stats answer from the pipeline's snapshot; at rest received = unique_processed + duplicate_dropped. */
export function statsBody(aggregator: Pipeline, nowMs = Date.now()): StatsBody {
  const snapshot = aggregator.snapshot();
  const retention = aggregator.retentionSnapshot();
  const uptimeSeconds = (nowMs - snapshot.startedAtMs) / 1000;
  return {
    received: snapshot.acceptedTotal + snapshot.duplicatesTotal,
    unique_processed: snapshot.uniqueTotal,
    duplicate_dropped: snapshot.duplicatesTotal,
    conflicts: snapshot.conflictsTotal,
    topics: aggregator.topics(),
    uptime_seconds: Math.round(uptimeSeconds * 10) / 10,
    uptime_human: formatUptime(uptimeSeconds),
    accepted: snapshot.acceptedTotal,
    queue_size: snapshot.queueSize,
    checkpoint_seq: snapshot.checkpointSeq,
    state: snapshot.state,
    first_seq: retention.firstSeq,
    log_bytes: retention.logBytes,
    expired_events: retention.expiredTotal,
    dedup_keys: snapshot.dedupKeys,
  };
}

/** The /health answer, and whether writes are accepted now (200) or not (503). */
export function healthBody(aggregator: Pipeline, nowMs = Date.now()): { ok: boolean; body: HealthBody } {
  const snapshot = aggregator.snapshot();
  const ok = snapshot.condition === 'healthy' || snapshot.condition === 'degraded';
  const noSpace = snapshot.noSpaceSinceMs;
  return {
    ok,
    body: {
      status: snapshot.condition,
      consumer_running: snapshot.consumerRunning,
      queue_size: snapshot.queueSize,
      timestamp: new Date(nowMs).toISOString(),
      log: {
        durable_seq: snapshot.durableSeq,
        segment: snapshot.segment?.name ?? null,
        segment_bytes: snapshot.segment?.bytes ?? 0,
        no_space_since: noSpace === null ? null : new Date(noSpace).toISOString(),
        error: snapshot.logError,
      },
      index: { checkpoint_seq: snapshot.checkpointSeq, error: snapshot.indexError },
    },
  };
}

/** GET /stats: lifetime counters and live figures. */
export function statsHandler(aggregator: Pipeline): RequestHandler {
  return async (_req, res) => {
    // Cluster mode reads the counters of every instance from the database first.
    await aggregator.refreshSnapshot?.();
    res.status(200).json(statsBody(aggregator));
  };
}

/** GET /health: 200 while writes are accepted, 503 whenever they cannot be. */
export function healthHandler(aggregator: Pipeline): RequestHandler {
  return (_req, res) => {
    const { ok, body } = healthBody(aggregator);
    res.status(ok ? 200 : 503).json(body);
  };
}
