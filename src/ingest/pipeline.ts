import type { SnapshotPage } from '../index/read-pool';
import type { EventQuery, IndexRow } from '../index/store';
import type { EventFilter } from '../query/event-filter';
import type { Histogram } from '../query/histogram';
import type { RecoveryReport } from '../wal/recovery';
import type { PipelineSnapshot, PublishReport, RetentionSnapshot, ServiceState, ValidEvent } from './aggregator';

/**
 * What the HTTP layer and the server need of an ingest pipeline: the embedded Aggregator
 * (SQLite) and the ClusterPipeline (PostgreSQL, src/cluster/) both provide it. Reads may
 * answer with a promise; callers await them.
 */
export interface Pipeline {
  readonly state: ServiceState;
  readonly recovery: (RecoveryReport & { durationMs: number }) | null;
  open(): Promise<unknown>;
  cancelOpen(): void;
  close(): Promise<void>;
  publish(events: ValidEvent[]): Promise<PublishReport>;
  /** One bounded page, read off the thread that acknowledges publishes where the pipeline can. */
  readPage(query: EventQuery): Promise<SnapshotPage>;
  /** GET /events/histogram's counts, over the whole cluster in cluster mode. */
  histogram(filter: EventFilter, buckets: number, chunkRows: number, signal?: AbortSignal): Promise<Histogram>;
  onIndexed(listener: (rows: IndexRow[]) => void): () => void;
  snapshot(): PipelineSnapshot;
  /** The oldest seq readers can get (retention deletes whole segments before it). */
  readonly firstSeq: number;
  /** Where the log starts, its size and what retention deleted (lists the wal dir: not for hot paths). */
  retentionSnapshot(): RetentionSnapshot;
  /** Brings snapshot() and topics() up to date where they come from elsewhere (the cluster's database). */
  refreshSnapshot?(): Promise<void>;
  topics(): string[];
  queueSize(): number;
  acceptsWrites(): boolean;
}
