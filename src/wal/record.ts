import { crc32 } from 'node:zlib';

/**
 * Framing of one log record: a single NDJSON line
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
}

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

/** Frames one record as a full line including its trailing newline. */
export function encodeRecord(seq: number, eventJson: string): string {
  const body = `"seq":${seq},"event":${eventJson}}`;
  return `${PREFIX}${crcHex(body)}",${body}\n`;
}

/** Why a line was rejected; `null` means the line is a valid record. */
export type LineProblem = 'bad_frame' | 'bad_crc' | 'bad_json' | 'bad_seq';

/**
 * Decodes one line (without its newline). It checks framing, checksum and JSON shape,
 * not the position of the seq in the log; that is the reader's job.
 */
export function decodeLine(line: string): WalRecord | LineProblem {
  if (line.length < HEADER_LENGTH + 2 || !line.startsWith(PREFIX) || line.slice(PREFIX.length + 8, HEADER_LENGTH) !== '",') {
    return 'bad_frame';
  }
  const expected = line.slice(PREFIX.length, PREFIX.length + 8);
  const body = line.slice(HEADER_LENGTH);
  if (crcHex(body) !== expected) return 'bad_crc';
  const seqMatch = /^"seq":(\d{1,16}),"event":/.exec(body);
  if (seqMatch === null || !body.endsWith('}')) return 'bad_frame';
  const seq = Number(seqMatch[1]);
  if (!Number.isSafeInteger(seq) || seq < 1) return 'bad_seq';
  const eventJson = body.slice(seqMatch[0].length, -1);
  try {
    const parsed: unknown = JSON.parse(eventJson);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'bad_json';
  } catch {
    return 'bad_json';
  }
  return { seq, eventJson };
}

/** A record found in a buffer, with where its line starts and how many bytes it spans. */
export interface LocatedRecord extends WalRecord {
  offset: number;
  length: number;
}

/** A line that failed to decode, with where it is. */
export interface BadLine {
  offset: number;
  length: number;
  problem: LineProblem | 'torn';
}

/** The outcome of scanning one segment's bytes. */
export interface SegmentScan {
  records: LocatedRecord[];
  /** Lines that failed, in order; a final line without newline is `torn`. */
  badLines: BadLine[];
  /** Bytes up to the end of the last valid record. */
  validBytes: number;
  totalBytes: number;
}

/**
 * Splits a segment's bytes into lines and decodes each. It reports every bad line and
 * does not decide whether a bad line is a torn tail or corruption; see classifyScan.
 */
export function scanSegmentBytes(bytes: Buffer): SegmentScan {
  const records: LocatedRecord[] = [];
  const badLines: BadLine[] = [];
  let validBytes = 0;
  let offset = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(NEWLINE, offset);
    if (end === -1) {
      badLines.push({ offset, length: bytes.length - offset, problem: 'torn' });
      break;
    }
    const decoded = decodeLine(bytes.toString('utf8', offset, end));
    const length = end + 1 - offset;
    if (typeof decoded === 'string') {
      badLines.push({ offset, length, problem: decoded });
    } else {
      records.push({ ...decoded, offset, length });
      validBytes = end + 1;
    }
    offset = end + 1;
  }
  return { records, badLines, validBytes, totalBytes: bytes.length };
}

/** The verdict on a scan: clean, a torn tail that may be cut, or corruption that must stop startup. */
export type ScanVerdict =
  | { kind: 'clean' }
  | { kind: 'torn_tail'; offset: number; bytes: number; problem: BadLine['problem'] }
  | { kind: 'corrupt'; offset: number; problem: BadLine['problem'] | 'seq_gap'; detail: string };

/**
 * Classifies a scan. Bad bytes after the last valid record of the LAST segment are a torn
 * tail (the writer died mid-write: LevelDB's rule); a bad line followed by a valid record,
 * or any bad line in an older segment, is corruption. `expectedFirstSeq` checks continuity
 * (a record `repair` quarantined is replaced by a tombstone, so there is no accepted gap).
 */
export function classifyScan(
  scan: SegmentScan,
  isLastSegment: boolean,
  expectedFirstSeq: number | null,
): ScanVerdict {
  // A bad line is reported first: the seq gap it leaves behind is its consequence.
  const firstBad = scan.badLines[0];
  if (firstBad !== undefined && (firstBad.offset < scan.validBytes || !isLastSegment)) {
    return { kind: 'corrupt', offset: firstBad.offset, problem: firstBad.problem, detail: `${firstBad.problem} in a ${firstBad.length}-byte line` };
  }
  let expected = expectedFirstSeq;
  for (const record of scan.records) {
    if (expected !== null && record.seq !== expected) {
      return { kind: 'corrupt', offset: record.offset, problem: 'seq_gap', detail: `expected seq ${expected}, found ${record.seq}` };
    }
    expected = record.seq + 1;
  }
  if (firstBad === undefined) return { kind: 'clean' };
  return { kind: 'torn_tail', offset: scan.validBytes, bytes: scan.totalBytes - scan.validBytes, problem: firstBad.problem };
}
