import path from 'node:path';
import type { ValidEvent } from '../../src/ingest/aggregator';
import type { LogEvent } from '../../src/wal/record';

/**
 * An Aggregator's config for a data dir with 4 KiB segments and small index batches, so a
 * few hundred events fill many segments (retention and log-position tests); `extra` adds
 * the settings under test.
 */
export function smallSegmentConfig(
  dataDir: string,
  extra: { retentionBytes?: number; retentionMs?: number; dedupHorizonMs?: number } = {},
) {
  return {
    walDir: path.join(dataDir, 'wal'),
    databasePath: path.join(dataDir, 'index.db'),
    queueMaxSize: 10_000,
    segmentBytesMax: 4096,
    indexBatchMax: 16,
    retryAfterSeconds: 1,
    ...extra,
  };
}

/** `count` valid events `<prefix>-<i>` with a 100-byte pad, their topic and payload chosen by the caller. */
export function paddedEvents(
  prefix: string,
  count: number,
  topicOf: (i: number) => string,
  payloadOf: (i: number) => Record<string, unknown> = () => ({}),
): ValidEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const event: LogEvent = {
      topic: topicOf(i),
      event_id: `${prefix}-${i}`,
      timestamp: '2025-10-23T10:00:00.000Z',
      source: 's',
      payload: { ...payloadOf(i), pad: 'x'.repeat(100) },
    };
    return { event, tsMs: Date.parse(event.timestamp) };
  });
}
