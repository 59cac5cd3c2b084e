import type { LogEvent } from '../src/wal/record';

/** Topics the benchmark spreads its events over (a realistic handful, not one per event). */
export const BENCH_TOPICS = ['auth', 'billing', 'search', 'checkout', 'email', 'audit', 'api', 'jobs'];

/**
 * The i-th benchmark event of a run: a unique random-looking event_id (like a UUID from a
 * publisher) and a ~120-byte payload. Equal (prefix, i) always give the same event.
 */
export function benchEvent(prefix: string, i: number): LogEvent {
  // A scrambled id so keys arrive in random order, as real UUIDs do.
  const scrambled = (Math.imul(i + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0');
  return {
    topic: BENCH_TOPICS[i % BENCH_TOPICS.length]!,
    event_id: `${prefix}-${scrambled}-${i.toString(36)}`,
    timestamp: new Date(1_760_000_000_000 + i * 7).toISOString(),
    source: `bench-host-${i % 16}`,
    payload: { level: 'info', message: 'user request handled', request_ms: i % 997, path: '/api/v1/items', status: 200 },
  };
}
