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
