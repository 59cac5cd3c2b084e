/**
 * Which events a read wants: every part optional, combined with AND. GET /events, its
 * histogram and the live tail take the same filter, so a view on the page, its histogram
 * and its live tail show the same events.
 */
export interface EventFilter {
  /** Any of these topics. */
  topics?: string[];
  source?: string;
  /** Timestamp at or after (epoch ms). */
  sinceMs?: number;
  /** Timestamp before (epoch ms). */
  untilMs?: number;
  /** Free text: each word must appear, case-insensitively, in topic, source, event_id or a payload value. */
  words?: string[];
  /** Payload fields that must equal a value written as text (`payload.user.id=123`). */
  fields?: FieldFilter[];
}

/** `payload.<path>=<value>`: the payload field at `path` equals `value` read as text. */
export interface FieldFilter {
  path: string[];
  value: string;
}

/** The parts of a filter that need the event's JSON (not served by index columns). */
export type BodyFilter = Pick<EventFilter, 'words' | 'fields'>;

/** True when a filter has parts that need the event's JSON. */
export function needsBody(filter: BodyFilter): boolean {
  return (filter.words?.length ?? 0) > 0 || (filter.fields?.length ?? 0) > 0;
}

/** A JSON number as JSON.stringify writes it, so that `1.50` finds 1.5 and `1e3` finds 1000. */
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * True when `stored` (a payload value) equals `text`: a string equal to it, a number equal
 * to it read as a JSON number, `true`/`false`/`null` for the text of the same name.
 * Objects and arrays never equal a text.
 */
export function valueEquals(stored: unknown, text: string): boolean {
  if (typeof stored === 'string') return stored === text;
  if (typeof stored === 'number') return JSON_NUMBER.test(text) && Number(text) === stored;
  if (typeof stored === 'boolean' || stored === null) return String(stored) === text;
  return false;
}

/** The value at `path` inside `payload`, own keys only (`__proto__` is a key like any other). */
function fieldAt(payload: unknown, path: string[]): unknown {
  let here: unknown = payload;
  for (const key of path) {
    if (here === null || typeof here !== 'object' || Array.isArray(here) || !Object.hasOwn(here, key)) return undefined;
    here = (here as Record<string, unknown>)[key];
  }
  return here;
}

/** Calls `visit` with the text of every leaf value (strings, numbers, booleans) under `value`. */
function someLeaf(value: unknown, visit: (text: string) => boolean): boolean {
  if (typeof value === 'string') return visit(value);
  if (typeof value === 'number' || typeof value === 'boolean') return visit(String(value));
  if (value === null || typeof value !== 'object') return false;
  for (const inner of Array.isArray(value) ? value : Object.values(value)) {
    if (someLeaf(inner, visit)) return true;
  }
  return false;
}

/** A stored event as its JSON holds it (the fields the filter reads). */
interface StoredEvent {
  topic?: unknown;
  event_id?: unknown;
  source?: unknown;
  payload?: unknown;
}

/**
 * Compiles the body part of a filter into a test on an event's stored JSON text. Words are
 * lower-cased with toLowerCase on both sides. Before parsing, the raw text is checked to
 * contain each word (JSON-escaped) and each string value: a cheap necessary condition that
 * skips most rows of a rare search. It does not look at topics, source or time.
 */
export function compileBodyMatcher(filter: BodyFilter): (body: string) => boolean {
  const words = (filter.words ?? []).map((word) => word.toLowerCase());
  const fields = filter.fields ?? [];
  const escapedWords = words.map((word) => JSON.stringify(word).slice(1, -1));
  // A value equal to a string, boolean or null appears JSON-escaped in the text; a number may
  // be written otherwise (1.50 finds 1.5), so number-like values are not checked here.
  const escapedValues = fields.filter((field) => !JSON_NUMBER.test(field.value)).map((field) => JSON.stringify(field.value).slice(1, -1));
  return (body) => {
    if (escapedWords.length > 0) {
      const lower = body.toLowerCase();
      if (!escapedWords.every((word) => lower.includes(word))) return false;
    }
    if (!escapedValues.every((value) => body.includes(value))) return false;
    let event: StoredEvent;
    try {
      event = JSON.parse(body) as StoredEvent;
    } catch {
      return false;
    }
    for (const field of fields) {
      if (!valueEquals(fieldAt(event.payload, field.path), field.value)) return false;
    }
    for (const word of words) {
      const found = (text: string): boolean => text.toLowerCase().includes(word);
      const inKey = [event.topic, event.event_id, event.source].some((value) => typeof value === 'string' && found(value));
      if (!inKey && !someLeaf(event.payload, found)) return false;
    }
    return true;
  };
}

/** The row columns a filter reads besides the body. */
export interface FilterableRow {
  topic: string;
  source: string;
  tsMs: number;
  body: string;
}

/**
 * Compiles a whole filter into a test on one row (the live tail's rule for new events);
 * the index applies the same rule in SQL for topics, source and time, and this matcher for
 * the body (see IndexStore).
 */
export function compileRowMatcher(filter: EventFilter): (row: FilterableRow) => boolean {
  const topics = filter.topics !== undefined && filter.topics.length > 0 ? new Set(filter.topics) : null;
  const body = needsBody(filter) ? compileBodyMatcher(filter) : null;
  return (row) =>
    (topics === null || topics.has(row.topic)) &&
    (filter.source === undefined || row.source === filter.source) &&
    (filter.sinceMs === undefined || row.tsMs >= filter.sinceMs) &&
    (filter.untilMs === undefined || row.tsMs < filter.untilMs) &&
    (body === null || body(row.body));
}

/**
 * Splits `q` into words: runs of non-space characters, or "double-quoted phrases" kept
 * whole (without the quotes). Returns the words, empty ones dropped.
 */
export function splitWords(q: string): string[] {
  const words: string[] = [];
  for (const match of q.matchAll(/"([^"]*)"|(\S+)/g)) {
    const word = match[1] ?? match[2] ?? '';
    if (word.trim() !== '') words.push(word);
  }
  return words;
}
