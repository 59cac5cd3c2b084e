import { crc32 } from 'node:zlib';

/**
 * Framing of one log record: a single NDJSON line, in format version 2
 *   {"crc":"<8 hex>","v":2,"seq":<n>,"received_at":"<RFC 3339 UTC ms>","event":{...}}\n
 * or in format version 1 (logs written before received_at, and tombstones, which have no
 * acceptance time)
 *   {"crc":"<8 hex>","seq":<n>,"event":{...}}\n
 * where crc is the CRC-32 of every byte after `{"crc":"xxxxxxxx",` up to (not including)
 * the newline. Any reader can use `jq` on the log; this module adds the integrity check.
 */

/** The stored shape of an event: the seed's fields, payload kept as the client sent it. */
export interface LogEvent {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload?: Record<string, unknown>;
}

/** One decoded record; `eventJson` is the exact text that was logged. */
export interface WalRecord {
  seq: number;
  eventJson: string;
  /** When the service accepted the event (epoch ms); null for a version-1 record or a tombstone. */
  receivedAtMs: number | null;
}

/** The record format version encodeRecord writes for an event with an acceptance time. */
export const RECORD_FORMAT_VERSION = 2;

const PREFIX = '{"crc":"';
/** `{"crc":"` + 8 hex digits + `",` */
const HEADER_LENGTH = PREFIX.length + 8 + 2;
const NEWLINE = 0x0a;

/**
 * The only key of a tombstone record's event: `logagg repair` puts one in place of each seq
 * whose record was corrupt and moved to quarantine, so seqs stay continuous. It is not an
 * event: the index and every reader skip it.
 */
export const TOMBSTONE_EVENT_KEY = 'logagg_tombstone';

/** True for the event JSON of a tombstone record (see TOMBSTONE_EVENT_KEY). */
export function isTombstoneEventJson(eventJson: string): boolean {
  return eventJson.startsWith(`{"${TOMBSTONE_EVENT_KEY}":`);
}

/** Serialises an event with a fixed key order so equal events give equal text. */
export function canonicalEventJson(event: LogEvent): string {
  const ordered: LogEvent = {
    topic: event.topic,
    event_id: event.event_id,
    timestamp: event.timestamp,
    source: event.source,
  };
  if (event.payload !== undefined) ordered.payload = event.payload;
  return JSON.stringify(ordered);
}

function crcHex(text: string): string {
  return crc32(text).toString(16).padStart(8, '0');
}

/**
 * canonicalEventJson for an event whose fields are strings (a validated event), from its
 * payload already serialised (`undefined` when it has none): the same text, without
 * serialising the payload a second time.
 */
export function canonicalEventJsonWith(event: LogEvent, payloadJson: string | undefined): string {
  const head = `{"topic":${JSON.stringify(event.topic)},"event_id":${JSON.stringify(event.event_id)},"timestamp":${JSON.stringify(event.timestamp)},"source":${JSON.stringify(event.source)}`;
  return payloadJson === undefined ? `${head}}` : `${head},"payload":${payloadJson}}`;
}

/** The last time receivedAtText formatted: every record of one request shares its time. */
let lastReceivedAt = { ms: Number.NaN, text: '' };

/** An acceptance time as records and readers show it: RFC 3339, UTC, milliseconds. */
export function receivedAtText(receivedAtMs: number): string {
  if (receivedAtMs !== lastReceivedAt.ms) lastReceivedAt = { ms: receivedAtMs, text: new Date(receivedAtMs).toISOString() };
  return lastReceivedAt.text;
}

/**
 * An event as GET /events, its stream and `logagg export` show it: the logged event JSON
 * with `"seq":N` spliced in as its first key and `"received_at"` (null for a version-1
 * record) as its last, without re-serialising the event.
 */
export function eventJsonWithSeq(seq: number, eventJson: string, receivedAtMs: number | null): string {
  const inner = eventJson.slice(1, -1);
  const receivedAt = receivedAtMs === null ? 'null' : `"${receivedAtText(receivedAtMs)}"`;
  return `{"seq":${seq},${inner}${inner.length > 0 ? ',' : ''}"received_at":${receivedAt}}`;
}

/** `,"received_at":<string or null>}` at the end of a reader's event line. */
const RECEIVED_AT_TAIL = /,"received_at":(?:"([^"\\]*)"|null)\}$/;

/**
 * The reverse of eventJsonWithSeq: the seq, the event JSON without seq and received_at (what
 * a publisher sends), and the acceptance time; null for another shape. A line without
 * received_at (exported before format version 2) splits too, with receivedAtMs null.
 */
export function splitEventJsonSeq(line: string): { seq: number; eventJson: string; receivedAtMs: number | null } | null {
  const match = /^\{"seq":(\d+),/.exec(line);
  if (match === null) return null;
  const tail = RECEIVED_AT_TAIL.exec(line);
  const end = tail === null ? line.length : tail.index;
  const receivedAtMs = tail?.[1] === undefined ? null : Date.parse(tail[1]);
  return {
    seq: Number(match[1]),
    eventJson: `{${line.slice(match[0].length, end)}${tail === null ? '' : '}'}`,
    receivedAtMs: receivedAtMs === null || Number.isNaN(receivedAtMs) ? null : receivedAtMs,
  };
}

/**
 * Frames one record as a full line including its trailing newline: format version 2 when
 * it has an acceptance time, version 1 (no received_at) when receivedAtMs is null.
 */
export function encodeRecord(seq: number, eventJson: string, receivedAtMs: number | null = null): string {
  const body =
    receivedAtMs === null
      ? `"seq":${seq},"event":${eventJson}}`
      : `"v":${RECORD_FORMAT_VERSION},"seq":${seq},"received_at":"${receivedAtText(receivedAtMs)}","event":${eventJson}}`;
  return `${PREFIX}${crcHex(body)}",${body}\n`;
}

/** The head of a version-2 record's body, up to its event; the time is checked by Date.parse. */
const V2_HEAD = /^"v":2,"seq":(\d{1,16}),"received_at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","event":/;
/** The head of a version-1 record's body. */
const V1_HEAD = /^"seq":(\d{1,16}),"event":/;

/** Why a line was rejected; `null` means the line is a valid record. */
export type LineProblem = 'bad_frame' | 'bad_crc' | 'bad_json' | 'bad_seq';

/**
 * Decodes one line (without its newline). It checks framing, checksum and JSON shape,
 * not the position of the seq in the log; that is the reader's job. `checkJson: false`
 * skips parsing the event (a reader by position whose checksum already proves the bytes).
 */
export function decodeLine(line: string, options: { checkJson?: boolean } = {}): WalRecord | LineProblem {
  if (line.length < HEADER_LENGTH + 2 || !line.startsWith(PREFIX) || line.slice(PREFIX.length + 8, HEADER_LENGTH) !== '",') {
    return 'bad_frame';
  }
  const expected = line.slice(PREFIX.length, PREFIX.length + 8);
  const body = line.slice(HEADER_LENGTH);
  if (crcHex(body) !== expected) return 'bad_crc';
  // A version-2 body starts with "v"; anything else is read as version 1.
  const seqMatch = body.startsWith('"v":') ? V2_HEAD.exec(body) : V1_HEAD.exec(body);
  if (seqMatch === null || !body.endsWith('}')) return 'bad_frame';
  const seq = Number(seqMatch[1]);
  if (!Number.isSafeInteger(seq) || seq < 1) return 'bad_seq';
  const receivedAtMs = seqMatch[2] === undefined ? null : Date.parse(seqMatch[2]);
  if (receivedAtMs !== null && Number.isNaN(receivedAtMs)) return 'bad_frame';
  const eventJson = body.slice(seqMatch[0].length, -1);
  if (options.checkJson === false) return { seq, eventJson, receivedAtMs };
  try {
    const parsed: unknown = JSON.parse(eventJson);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'bad_json';
  } catch {
    return 'bad_json';
  }
  return { seq, eventJson, receivedAtMs };
}

/**
 * The longest line that can be a record: PAYLOAD_BYTES_MAX is at most 16 MiB, plus four
 * fields of at most 255 characters and the framing. A longer line is bad without being
 * held in memory whole, so a reader's memory stays bounded on any file.
 */
export const RECORD_LINE_BYTES_MAX = 17 * 1024 * 1024;

/** One line of a segment: a record, or a bad line with its problem (`torn`: no newline at the end). */
export type ScannedLine = { offset: number; length: number } & (
  { record: WalRecord; problem: null } | { record: null; problem: LineProblem | 'torn' }
);

/**
 * Splits a segment, given as consecutive chunks of its bytes, into lines and decodes each.
 * A line may span chunks; only the line being read is held, so memory follows the chunk
 * size, not the segment's. A final line without newline is `torn`; a line longer than
 * RECORD_LINE_BYTES_MAX is `bad_frame`. Whether a bad line is a torn tail or corruption is
 * not decided here but in the log reader (src/wal/reader.ts), its only caller.
 */
export function* scanLines(chunks: Iterable<Buffer>): Generator<ScannedLine> {
  let position = 0;
  let lineStart = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  let overlong = false;
  for (const chunk of chunks) {
    let from = 0;
    for (let end = chunk.indexOf(NEWLINE, from); end !== -1; end = chunk.indexOf(NEWLINE, from)) {
      const length = position + end + 1 - lineStart;
      if (overlong || heldBytes + end - from > RECORD_LINE_BYTES_MAX) {
        yield { offset: lineStart, length, record: null, problem: 'bad_frame' };
      } else {
        const text =
          heldBytes === 0 ? chunk.toString('utf8', from, end) : Buffer.concat([...held, chunk.subarray(from, end)]).toString('utf8');
        const decoded = decodeLine(text);
        yield typeof decoded === 'string'
          ? { offset: lineStart, length, record: null, problem: decoded }
          : { offset: lineStart, length, record: decoded, problem: null };
      }
      held = [];
      heldBytes = 0;
      overlong = false;
      lineStart = position + end + 1;
      from = end + 1;
    }
    if (from < chunk.length && !overlong) {
      if (heldBytes + chunk.length - from > RECORD_LINE_BYTES_MAX) {
        overlong = true;
        held = [];
        heldBytes = 0;
      } else {
        held.push(chunk.subarray(from));
        heldBytes += chunk.length - from;
      }
    }
    position += chunk.length;
  }
  if (lineStart < position) yield { offset: lineStart, length: position - lineStart, record: null, problem: 'torn' };
}
