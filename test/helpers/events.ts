/** Builders for test events and a small JSON-over-fetch client. */
export interface TestEvent {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload?: Record<string, unknown>;
}

export function makeEvent(topic: string, eventId: string, payload: Record<string, unknown> = { n: eventId }): TestEvent {
  return { topic, event_id: eventId, timestamp: '2025-10-23T10:00:00Z', source: 'test-suite', payload };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

/** Pages through GET /events with next_cursor and returns every stored event. */
export async function fetchAllEvents(baseUrl: string, topic?: string): Promise<Array<TestEvent & { seq: number }>> {
  const all: Array<TestEvent & { seq: number }> = [];
  let after: string | null = null;
  for (;;) {
    const params = new URLSearchParams({ limit: '1000' });
    if (topic !== undefined) params.set('topic', topic);
    if (after !== null) params.set('after', after);
    const { status, body } = await getJson(`${baseUrl}/events?${params.toString()}`);
    if (status !== 200) throw new Error(`GET /events answered ${status}: ${JSON.stringify(body)}`);
    all.push(...body.events);
    if (body.next_cursor === null) return all;
    after = body.next_cursor;
  }
}

/** How a reader shows an acceptance time: RFC 3339, UTC, milliseconds. */
const RECEIVED_AT_PATTERN = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * An event as GET /events, the stream or export show it, without `received_at`, after checking
 * that it is the event's last key and an instant of the last `withinMs` (default 10 minutes);
 * `null` (a version-1 record) only when `allowNull`.
 */
export function withoutReceivedAt<T extends object>(
  event: T,
  options: { withinMs?: number; allowNull?: boolean } = {},
): Omit<T, 'received_at'> {
  const keys = Object.keys(event);
  if (keys[keys.length - 1] !== 'received_at') throw new Error(`received_at is not the last key of ${JSON.stringify(event)}`);
  const { received_at: receivedAt, ...rest } = event as T & { received_at: unknown };
  if (receivedAt === null && options.allowNull === true) return rest;
  if (typeof receivedAt !== 'string' || !RECEIVED_AT_PATTERN.test(receivedAt))
    throw new Error(`received_at ${String(receivedAt)} is no RFC 3339 UTC ms instant`);
  const ageMs = Date.now() - Date.parse(receivedAt);
  if (ageMs < -1000 || ageMs > (options.withinMs ?? 600_000)) throw new Error(`received_at ${receivedAt} is not recent`);
  return rest;
}
