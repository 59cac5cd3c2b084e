import { API_KEY_LIMITS, FIXED_LIMITS } from './config/config';
import { DETAILS_MAX } from './http/publish';
import { RECORD_LINE_BYTES_MAX } from './wal/record';
import { READ_CHUNK_BYTES } from './wal/segments';
import { SWEEP_ROWS_PER_STEP } from './index/key-store';

/** One limit of the service: what it bounds, where its bound is declared, what happens when it is hit. */
export interface LimitSpec {
  readonly bounds: string;
  /** A setting of SETTINGS (src/config/config.ts) that holds the bound, with its default. */
  readonly setting?: string;
  /** A bound fixed in the code: its value, its unit and the constant that declares it. */
  readonly fixed?: { readonly value: string; readonly declaredIn: string; readonly constant: string };
  readonly whenHit: string;
}

function mebibytes(bytes: number): string {
  return `${bytes / (1024 * 1024)} MiB`;
}

/**
 * Every limit, for docs/operations.md (generated from it by `npm run docs`). It declares no
 * bound itself: each entry points at the setting or constant that does, and
 * test/limits.test.ts checks that those exist and that every bounding setting is listed.
 */
export const LIMITS: readonly LimitSpec[] = [
  {
    bounds: 'dedup key filter memory',
    setting: 'DEDUP_FILTER_BYTES',
    whenHit: 'never grows: past ~0.8 keys a byte more new keys read the keys table once (answers stay exact)',
  },
  {
    bounds: 'key rows one sweep step of expired keys reads',
    fixed: { value: String(SWEEP_ROWS_PER_STEP), declaredIn: 'src/index/key-store.ts', constant: 'SWEEP_ROWS_PER_STEP' },
    whenHit: 'the step commits and the next one goes on 200 ms later',
  },
  {
    bounds: 'request body (after inflation)',
    setting: 'BODY_BYTES_MAX',
    whenHit: '413 `body_too_large`, nothing written',
  },
  { bounds: 'events in one request', setting: 'BATCH_EVENTS_MAX', whenHit: '413 `batch_too_large`, nothing written' },
  {
    bounds: '`topic`, `event_id`, `source`',
    fixed: {
      value: `1..${FIXED_LIMITS.fieldLengthMax} characters`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `validation_failed` (`invalid_query` as a query parameter)',
  },
  {
    bounds: '`timestamp` string',
    fixed: {
      value: `${FIXED_LIMITS.timestampLengthMax} characters`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `validation_failed`',
  },
  { bounds: 'one payload as JSON', setting: 'PAYLOAD_BYTES_MAX', whenHit: '400 `validation_failed`' },
  { bounds: 'payload nesting depth', setting: 'PAYLOAD_DEPTH_MAX', whenHit: '400 `validation_failed`' },
  {
    bounds: 'problems reported for one rejected request',
    fixed: { value: String(DETAILS_MAX), declaredIn: 'src/http/publish.ts', constant: 'DETAILS_MAX' },
    whenHit: 'the rest are summarised in one last detail',
  },
  {
    bounds: 'backlog (accepted, not yet indexed)',
    setting: 'QUEUE_MAX_SIZE',
    whenHit: '503 `backlog_full` + `Retry-After`, nothing written',
  },
  {
    bounds: '`GET /events` page',
    fixed: {
      value: `limit 1..${FIXED_LIMITS.queryLimitMax}, default ${FIXED_LIMITS.queryLimitDefault}`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `invalid_query`',
  },
  {
    bounds: 'event JSON in one `GET /events` page',
    setting: 'PAGE_BYTES_MAX',
    whenHit: 'the page ends early (it always holds one event) with a `next_cursor` to go on from',
  },
  {
    bounds: '`q` of `GET /events`, `/events/histogram`, `/events/stream`',
    fixed: {
      value: `${FIXED_LIMITS.queryWordsMax} words or phrases, ${FIXED_LIMITS.queryTextLengthMax} characters`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `invalid_query`',
  },
  {
    bounds: '`payload.<path>=` filters in one query',
    fixed: {
      value: `${FIXED_LIMITS.queryFieldFiltersMax} filters, ${FIXED_LIMITS.queryFieldDepthMax} levels deep`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `invalid_query`',
  },
  {
    bounds: '`topic` given several times in one query',
    fixed: { value: String(FIXED_LIMITS.queryTopicsMax), declaredIn: 'src/config/config.ts', constant: 'FIXED_LIMITS' },
    whenHit: '400 `invalid_query`',
  },
  {
    bounds: 'stored events one filtered `GET /events` request examines (q, payload.*, source, since, until)',
    fixed: { value: String(FIXED_LIMITS.queryScanRowsMax), declaredIn: 'src/config/config.ts', constant: 'FIXED_LIMITS' },
    whenHit: 'the page ends short (even empty) with a `next_cursor`: follow it until null',
  },
  {
    bounds: '`buckets` of `GET /events/histogram`',
    fixed: {
      value: `1..${FIXED_LIMITS.histogramBucketsMax}, default ${FIXED_LIMITS.histogramBucketsDefault}`,
      declaredIn: 'src/config/config.ts',
      constant: 'FIXED_LIMITS',
    },
    whenHit: '400 `invalid_query`',
  },
  {
    bounds: 'stored events the histogram counts per event-loop turn',
    fixed: { value: String(FIXED_LIMITS.histogramChunkRows), declaredIn: 'src/config/config.ts', constant: 'FIXED_LIMITS' },
    whenHit: 'it yields, then counts the next chunk; it stops when the client goes away',
  },
  { bounds: 'whole request', setting: 'REQUEST_TIMEOUT_MS', whenHit: 'the connection is closed (408)' },
  { bounds: 'receiving the headers', setting: 'HEADERS_TIMEOUT_MS', whenHit: 'the connection is closed (408)' },
  { bounds: 'idle keep-alive connection', setting: 'KEEP_ALIVE_TIMEOUT_MS', whenHit: 'the connection is closed' },
  {
    bounds: 'graceful shutdown (SIGTERM)',
    setting: 'SHUTDOWN_TIMEOUT_MS',
    whenHit: 'remaining connections are cut; exit 1 if the drain did not finish',
  },
  { bounds: 'log segment', setting: 'SEGMENT_BYTES_MAX', whenHit: 'a new segment is started' },
  {
    bounds: 'bytes of log segments kept (off by default)',
    setting: 'RETENTION_BYTES',
    whenHit: 'the oldest closed, wholly indexed segment is deleted (its index rows first)',
  },
  {
    bounds: 'age of the newest event in a closed segment (off by default)',
    setting: 'RETENTION_MS',
    whenHit: 'the segment is deleted, oldest first',
  },
  {
    bounds: 'seqs of index rows retention deletes in one transaction',
    fixed: { value: String(FIXED_LIMITS.retentionDropSeqsMax), declaredIn: 'src/config/config.ts', constant: 'FIXED_LIMITS' },
    whenHit: 'it yields, then deletes the next chunk; the segment file goes after the last one is durable',
  },
  {
    bounds: 'events in one index transaction',
    setting: 'INDEX_BATCH_MAX',
    whenHit: 'the rest go into the next transaction',
  },
  {
    bounds: 'log bytes read at once (recovery, every `logagg` reader)',
    fixed: { value: mebibytes(READ_CHUNK_BYTES), declaredIn: 'src/wal/segments.ts', constant: 'READ_CHUNK_BYTES' },
    whenHit: 'the next chunk is read; memory does not follow the segment size',
  },
  {
    bounds: 'log line a reader will decode',
    fixed: { value: mebibytes(RECORD_LINE_BYTES_MAX), declaredIn: 'src/wal/record.ts', constant: 'RECORD_LINE_BYTES_MAX' },
    whenHit: 'the line is bad (`bad_frame`) and is skipped over without being held in memory',
  },
  {
    bounds: 'one API key',
    fixed: {
      value: `${API_KEY_LIMITS.lengthMin}..${API_KEY_LIMITS.lengthMax} printable ASCII characters, no space or comma`,
      declaredIn: 'src/config/config.ts',
      constant: 'API_KEY_LIMITS',
    },
    whenHit: 'startup stops with one line naming the setting (exit 2)',
  },
  {
    bounds: 'cluster mode: PostgreSQL connections of one instance',
    setting: 'DATABASE_POOL_MAX',
    whenHit: 'requests wait for a free connection, at most `DATABASE_TIMEOUT_MS`, then 503 `database_unavailable`',
  },
  {
    bounds: 'cluster mode: connecting to PostgreSQL, and each statement',
    setting: 'DATABASE_TIMEOUT_MS',
    whenHit: '503 `database_unavailable` + `Retry-After`; nothing acknowledged; logged events are decided once the database answers',
  },
  {
    bounds: 'reads waiting for a read worker (GET /events, histogram, stream catch-up)',
    setting: 'READ_QUEUE_MAX',
    whenHit: '503 `reads_busy` + `Retry-After`',
  },
  {
    bounds: 'time of one read on a read worker',
    setting: 'READ_TIMEOUT_MS',
    whenHit: '503 `read_failed` + `Retry-After`; the worker is ended and replaced',
  },
  {
    bounds: 'read worker threads',
    setting: 'READ_WORKERS',
    whenHit: 'reads wait in the read queue (READ_QUEUE_MAX)',
  },
  {
    bounds: 'open `/events/stream` connections',
    setting: 'STREAM_SUBSCRIBERS_MAX',
    whenHit: '503 `subscribers_full` + `Retry-After`',
  },
  {
    bounds: 'unsent bytes of one live-tail stream',
    setting: 'STREAM_BUFFER_BYTES_MAX',
    whenHit: 'the stream stops pushing and, once drained, reads the rest from the index, in order',
  },
  {
    bounds: 'requests per API key or client address',
    setting: 'RATE_LIMIT_PER_SECOND',
    whenHit: '429 `rate_limited` + `Retry-After`, nothing read or written (probes are not limited)',
  },
  {
    bounds: 'rate-limit buckets kept',
    setting: 'RATE_LIMIT_CLIENTS_MAX',
    whenHit: 'the least recently seen client is forgotten (it starts again with a full bucket)',
  },
];
