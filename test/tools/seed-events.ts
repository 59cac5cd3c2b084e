/** Events that look like a small service's logs, for the browser tests and the screenshots. */
export interface SeedEvent {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: Record<string, unknown>;
}

const TOPICS = ['orders', 'payments', 'auth'] as const;
const SOURCES: Record<(typeof TOPICS)[number], string[]> = { orders: ['api-1', 'api-2'], payments: ['billing'], auth: ['auth-svc'] };
const MESSAGES: Record<(typeof TOPICS)[number], string[]> = {
  orders: ['order created', 'order shipped', 'order cancelled by user', 'inventory check timeout'],
  payments: ['payment captured', 'card declined', 'refund issued', 'gateway timeout after 5s'],
  auth: ['user logged in', 'password reset requested', 'token expired', 'login failed: bad password'],
};

/**
 * `count` events spread evenly over the `spanMs` before `endMs`, in time order,
 * deterministic: every 7th is level "error", user ids cycle over 1..40.
 */
export function seedEvents(count: number, endMs: number, spanMs: number): SeedEvent[] {
  const events: SeedEvent[] = [];
  for (let i = 0; i < count; i += 1) {
    const topic = TOPICS[i % TOPICS.length]!;
    const sources = SOURCES[topic];
    const messages = MESSAGES[topic];
    const level = i % 7 === 0 ? 'error' : i % 5 === 0 ? 'warn' : 'info';
    events.push({
      topic,
      event_id: `${topic}-${String(i).padStart(5, '0')}`,
      timestamp: new Date(endMs - spanMs + Math.floor((spanMs * i) / count)).toISOString(),
      source: sources[i % sources.length]!,
      payload: { level, message: messages[(i >> 1) % messages.length]!, user: { id: (i % 40) + 1 }, duration_ms: (i * 37) % 900 },
    });
  }
  return events;
}
