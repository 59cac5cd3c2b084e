import type { LogEvent } from './record';
import type { SegmentInfo } from './segments';

/**
 * Where a record's line lies in the log: the segment (named by its first seq), the byte
 * offset of the line in that file and its bytes including the newline. The index keeps it
 * instead of the event's JSON; readers read the line back (src/wal/position-reader.ts).
 */
export interface LogPosition {
  segment: number;
  offset: number;
  length: number;
}

/** The position of a record the log reader yielded. */
export function positionOf(record: { segment: SegmentInfo; offset: number; length: number }): LogPosition {
  return { segment: record.segment.firstSeq, offset: record.offset, length: record.length };
}

/** A logged event with the fields the index keys and filters on; `body` is its exact JSON text from the log. */
export interface EventRow {
  seq: number;
  topic: string;
  eventId: string;
  source: string;
  tsMs: number;
  /** When the service accepted the event (epoch ms); null (or absent) for a version-1 record. */
  receivedMs?: number | null;
  body: string;
  /** Where its record lies in the log (set once the writer has written it; the SQLite index needs it). */
  position?: LogPosition;
}

/**
 * The first four fields of canonicalEventJson's output, each a JSON string token. Recovery
 * reads them without parsing the payload; anything else falls back to JSON.parse.
 */
const CANONICAL_HEAD =
  /^\{"topic":("(?:[^"\\]|\\.)*"),"event_id":("(?:[^"\\]|\\.)*"),"timestamp":("(?:[^"\\]|\\.)*"),"source":("(?:[^"\\]|\\.)*")[,}]/;

/** The value of a JSON string token: escapes only cost a JSON.parse when present. */
function jsonStringValue(token: string): string {
  return token.includes('\\') ? (JSON.parse(token) as string) : token.slice(1, -1);
}

/**
 * Builds the row the index stores for a logged event, from its seq and its JSON text as
 * the log holds it (recovery, rebuild and export have only that). It does not validate
 * the event: a timestamp that names no instant gives tsMs 0.
 */
export function rowFromEventJson(seq: number, eventJson: string, receivedMs: number | null = null, position?: LogPosition): EventRow {
  let topic: string;
  let eventId: string;
  let timestamp: string;
  let source: string;
  const head = CANONICAL_HEAD.exec(eventJson);
  if (head !== null) {
    topic = jsonStringValue(head[1]!);
    eventId = jsonStringValue(head[2]!);
    timestamp = jsonStringValue(head[3]!);
    source = jsonStringValue(head[4]!);
  } else {
    ({ topic, event_id: eventId, timestamp, source } = JSON.parse(eventJson) as LogEvent);
  }
  const tsMs = Date.parse(timestamp);
  const row: EventRow = { seq, topic, eventId, source, tsMs: Number.isNaN(tsMs) ? 0 : tsMs, receivedMs, body: eventJson };
  if (position !== undefined) row.position = position;
  return row;
}
