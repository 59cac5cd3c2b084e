import fs from 'node:fs/promises';
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AggregatorObserver, RetentionSnapshot } from '../ingest/aggregator';
import type { Pipeline } from '../ingest/pipeline';
import { NodeDisk } from '../wal/disk';
import { listSegments } from '../wal/segments';
import { matchedRoute } from './request-log';
import type { RouteIndex } from './route-index';
import type { ProtocolCounts } from './shippers';

/** Latency buckets (seconds) for whole requests: fsync dominates, so from 0.5 ms to 10 s. */
const REQUEST_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Buckets (seconds) for one fdatasync or one index transaction. */
const IO_SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Buckets for events written by one group commit (one write + one fdatasync). */
const GROUP_COMMIT_EVENTS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384];

/** Where the gauges computed on scrape read from. */
export interface MetricsSources {
  aggregator: Pipeline;
  /** The log directory, for log bytes and segments; without it those gauges stay 0. */
  walDir?: string;
}

/**
 * The service's Prometheus metrics, in a registry of its own (not prom-client's global one,
 * so that one process can build many apps). Counters and histograms are fed by the
 * Aggregator's observer hooks and by every finished request; gauges are computed on scrape.
 * Counters count since this process started; lifetime totals are in /stats.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private sources: MetricsSources | null = null;
  /** The listing of the log taken for the scrape in progress. */
  private logMeasure: Promise<{ bytes: number; segments: number }> | null = null;

  private readonly eventsReceived = this.counter(
    'logagg_events_received_total',
    'Events in publish requests that were answered 200 (accepted + duplicates).',
  );
  private readonly eventsAccepted = this.counter(
    'logagg_events_accepted_total',
    'Events accepted: new (topic, event_id) keys written to the log.',
  );
  private readonly eventsDuplicate = this.counter(
    'logagg_events_duplicate_total',
    'Events dropped as duplicates of a stored (topic, event_id), conflicting ones included.',
  );
  private readonly eventsConflicting = this.counter(
    'logagg_events_conflicting_duplicate_total',
    'Duplicates whose content differs from the stored original (a subset of duplicates).',
  );
  private readonly requestsRejected = new Counter({
    name: 'logagg_requests_rejected_total',
    help: 'Requests answered with an error, by route and reason (the error code of the JSON answer).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly requestSeconds = new Histogram({
    name: 'logagg_http_request_duration_seconds',
    help: 'Time from request start to the last byte of the answer, by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: REQUEST_SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly publishSeconds = new Histogram({
    name: 'logagg_publish_duration_seconds',
    help: 'Latency of POST /publish answered 200: parse, validate, dedup, log append and fdatasync.',
    buckets: REQUEST_SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly fsyncSeconds = new Histogram({
    name: 'logagg_wal_fsync_duration_seconds',
    help: 'Duration of one fdatasync of the log (one per group commit).',
    buckets: IO_SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly groupCommitEvents = new Histogram({
    name: 'logagg_wal_group_commit_events',
    help: 'Events made durable by one group commit (one write + one fdatasync).',
    buckets: GROUP_COMMIT_EVENTS_BUCKETS,
    registers: [this.registry],
  });
  private readonly protocolEvents = new Counter({
    name: 'logagg_protocol_events_total',
    help: 'Records of answered ingest requests by protocol (publish, ndjson, otlp, loki, elastic) and result (accepted, duplicate, rejected).',
    labelNames: ['protocol', 'result'] as const,
    registers: [this.registry],
  });
  private readonly walBytesWritten = this.counter('logagg_wal_written_bytes_total', 'Bytes appended to the log.');
  private readonly indexBatchSeconds = new Histogram({
    name: 'logagg_index_batch_duration_seconds',
    help: 'Duration of one index transaction (a batch of events plus the checkpoint).',
    buckets: IO_SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly indexedEvents = this.counter('logagg_index_applied_events_total', 'Events written to the SQLite index by the consumer.');
  private readonly retentionSegments = this.counter(
    'logagg_retention_deleted_segments_total',
    'Log segments deleted by retention (RETENTION_BYTES, RETENTION_MS) since start.',
  );
  private readonly retentionBytes = this.counter(
    'logagg_retention_deleted_bytes_total',
    'Bytes of log segments deleted by retention since start.',
  );

  /** The hooks to pass as the Aggregator's `observer`. */
  readonly observer: AggregatorObserver = {
    onPublish: (result) => {
      this.eventsReceived.inc(result.received);
      this.eventsAccepted.inc(result.accepted);
      this.eventsDuplicate.inc(result.duplicates);
      this.eventsConflicting.inc(result.conflicts);
    },
    onFlush: (stats) => {
      this.fsyncSeconds.observe(stats.fsyncMs / 1000);
      this.groupCommitEvents.observe(stats.records);
      this.walBytesWritten.inc(stats.bytes);
    },
    onIndexBatch: (rows, elapsedMs) => {
      this.indexBatchSeconds.observe(elapsedMs / 1000);
      this.indexedEvents.inc(rows);
    },
    onRetentionDeletion: (deletion) => {
      this.retentionSegments.inc();
      this.retentionBytes.inc(deletion.bytes);
    },
  };

  /** `defaultMetrics: false` leaves out prom-client's process_* and nodejs_* metrics. */
  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.gauge('logagg_backlog_events', 'Events accepted but not yet in the index (bounded by QUEUE_MAX_SIZE).', (s) =>
      s.aggregator.queueSize(),
    );
    this.gauge('logagg_accepting_writes', '1 when /publish accepts writes (recovery done, log healthy), else 0.', (s) =>
      s.aggregator.acceptsWrites() ? 1 : 0,
    );
    this.gauge(
      'logagg_last_recovery_records_replayed',
      'Log records replayed into the index by the last startup recovery.',
      (s) => s.aggregator.recovery?.recordsReplayed ?? 0,
    );
    this.gauge(
      'logagg_last_recovery_truncated_bytes',
      'Bytes of torn tail cut from the log by the last startup recovery.',
      (s) => s.aggregator.recovery?.tornTail?.bytesDropped ?? 0,
    );
    this.gauge(
      'logagg_last_recovery_duration_seconds',
      'Duration of the last startup recovery.',
      (s) => (s.aggregator.recovery?.durationMs ?? 0) / 1000,
    );
    this.retentionGauge(
      'logagg_log_first_seq',
      'The oldest seq the log and the index keep (1 until retention deletes).',
      (r) => r.firstSeq,
    );
    this.retentionGauge(
      'logagg_expired_events',
      'Events deleted by retention, lifetime (survives restarts; /stats expired_events).',
      (r) => r.expiredTotal,
    );
    this.retentionGauge(
      'logagg_retention_last_deletion_timestamp_seconds',
      'When retention last deleted a segment (Unix time; 0 before the first deletion).',
      (r) => (r.lastDeletionMs ?? 0) / 1000,
    );
    this.gauge(
      'logagg_dedup_keys',
      'Dedup keys stored (those of events deleted by retention included, until DEDUP_HORIZON_MS passes).',
      (s) => s.aggregator.snapshot().dedupKeys,
    );
    this.logGauge('logagg_log_bytes', 'Bytes in the log segment files on disk.', 'bytes');
    this.logGauge('logagg_log_segments', 'Log segment files on disk.', 'segments');
  }

  /** Points the scrape-time gauges at the running pipeline. */
  watch(sources: MetricsSources): this {
    this.sources = sources;
    return this;
  }

  /**
   * Times every request and, when it finishes, records its duration by route and status,
   * POST /publish latency for 200 answers, and rejected requests by their error code
   * (which the error handler leaves in `res.locals.errorCode`).
   */
  middleware(routes: RouteIndex): RequestHandler {
    return (req, res, next) => {
      const started = process.hrtime.bigint();
      res.once('finish', () => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const route = matchedRoute(req, routes);
        this.requestSeconds.observe({ method: req.method, route, status_code: String(res.statusCode) }, seconds);
        if (route === '/publish' && req.method === 'POST' && res.statusCode === 200) this.publishSeconds.observe(seconds);
        const code = (res.locals as { errorCode?: string }).errorCode;
        if (code !== undefined) this.requestsRejected.inc({ route, reason: code });
        const counts = (res.locals as { protocolCounts?: ProtocolCounts }).protocolCounts;
        if (counts !== undefined) {
          this.protocolEvents.inc({ protocol: counts.protocol, result: 'accepted' }, counts.accepted);
          this.protocolEvents.inc({ protocol: counts.protocol, result: 'duplicate' }, counts.duplicates);
          this.protocolEvents.inc({ protocol: counts.protocol, result: 'rejected' }, counts.rejected);
        }
      });
      next();
    };
  }

  /** GET /metrics: the registry in Prometheus text format. */
  handler(): RequestHandler {
    return async (_req, res) => {
      const text = await this.registry.metrics();
      res.status(200).set('Content-Type', this.registry.contentType).send(text);
    };
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  private gauge(name: string, help: string, read: (sources: MetricsSources) => number | undefined): Gauge {
    const gauge: Gauge = new Gauge({
      name,
      help,
      registers: [this.registry],
      collect: () => {
        if (this.sources === null) return;
        const value = read(this.sources);
        if (value !== undefined) gauge.set(value);
      },
    });
    return gauge;
  }

  /** A gauge of the log on disk; both log gauges share one directory listing per scrape. */
  /** A gauge of the pipeline's retention state, read at scrape time; absent until the pipeline is ready. */
  private retentionGauge(name: string, help: string, pick: (retention: RetentionSnapshot) => number): void {
    this.gauge(name, help, (s) => (s.aggregator.state === 'ready' ? pick(s.aggregator.retentionSnapshot()) : undefined));
  }

  private logGauge(name: string, help: string, field: 'bytes' | 'segments'): Gauge {
    const gauge: Gauge = new Gauge({
      name,
      help,
      registers: [this.registry],
      collect: async () => {
        this.logMeasure ??= this.measureLog().finally(() => {
          this.logMeasure = null;
        });
        gauge.set((await this.logMeasure)[field]);
      },
    });
    return gauge;
  }

  /** Sums the sizes of the segment files; a segment removed meanwhile is skipped. */
  private async measureLog(): Promise<{ bytes: number; segments: number }> {
    const walDir = this.sources?.walDir;
    if (walDir === undefined) return { bytes: 0, segments: 0 };
    const segments = listSegments(new NodeDisk(), walDir);
    let bytes = 0;
    for (const segment of segments) {
      try {
        bytes += (await fs.stat(segment.path)).size;
      } catch {
        // rotated or removed between listing and stat: not on disk any more
      }
    }
    return { bytes, segments: segments.length };
  }
}
