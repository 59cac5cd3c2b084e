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
 * The longest line that can be a record: PAYLOAD_BYTES_MAX is at most 16 MiB, plus four
 * fields of at most 255 characters and the framing. A longer line is bad without being
 * held in memory whole, so a reader's memory stays bounded on any file.
 */
export const RECORD_LINE_BYTES_MAX = 17 * 1024 * 1024;

/** One line of a segment: a record, or a bad line with its problem. */
export type ScannedLine = { offset: number; length: number } & ({ record: WalRecord; problem: null } | { record: null; problem: BadLine['problem'] });

/**
 * Splits a segment, given as consecutive chunks of its bytes, into lines and decodes each.
 * A line may span chunks; only the line being read is held, so memory follows the chunk
 * size, not the segment's. A final line without newline is `torn`; a line longer than
 * RECORD_LINE_BYTES_MAX is `bad_frame`. Whether a bad line is a torn tail or corruption is
 * not decided here; see classifyScan and recoverLog.
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
        const text = heldBytes === 0 ? chunk.toString('utf8', from, end) : Buffer.concat([...held, chunk.subarray(from, end)]).toString('utf8');
        const decoded = decodeLine(text);
        yield typeof decoded === 'string' ? { offset: lineStart, length, record: null, problem: decoded } : { offset: lineStart, length, record: decoded, problem: null };
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

/**
 * Splits a segment's bytes into lines and decodes each. It reports every bad line and
 * does not decide whether a bad line is a torn tail or corruption; see classifyScan.
 */
export function scanSegmentBytes(bytes: Buffer): SegmentScan {
  const records: LocatedRecord[] = [];
  const badLines: BadLine[] = [];
  let validBytes = 0;
  for (const line of scanLines([bytes])) {
    if (line.record === null) {
      badLines.push({ offset: line.offset, length: line.length, problem: line.problem });
    } else {
      records.push({ ...line.record, offset: line.offset, length: line.length });
      validBytes = line.offset + line.length;
    }
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
    return corruptLine(firstBad);
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

/** The corruption a line proves (see SegmentLineCheck). */
export type CorruptVerdict = Extract<ScanVerdict, { kind: 'corrupt' }>;

function corruptLine(bad: BadLine): CorruptVerdict {
  return { kind: 'corrupt', offset: bad.offset, problem: bad.problem, detail: `${bad.problem} in a ${bad.length}-byte line` };
}

/**
 * classifyScan's rules applied line by line, for readers that hold one line at a time
 * (recovery, `logagg rebuild`): a bad line followed by a valid record is corruption, named
 * at the bad line; seqs must follow each other from `expectedFirstSeq`; bad lines after the
 * last record are the torn tail of the last segment and corruption in any other (`end`).
 * A record is usable once `record` returned null for it: every line before it was valid.
 */
export class SegmentLineCheck {
  private firstBad: BadLine | null = null;
  private expected: number | null;
  /** Bytes up to the end of the last valid record. */
  validBytes = 0;
  /** Bytes of every line seen. */
  totalBytes = 0;
  /** The seq of the last valid record, null before the first. */
  lastSeq: number | null = null;

  constructor(expectedFirstSeq: number | null) {
    this.expected = expectedFirstSeq;
  }

  bad(line: BadLine): void {
    this.firstBad ??= line;
    this.totalBytes = line.offset + line.length;
  }

  /** The corruption this record proves (a bad line before it, a seq out of turn), or null. */
  record(record: LocatedRecord): CorruptVerdict | null {
    if (this.firstBad !== null) return corruptLine(this.firstBad);
    if (this.expected !== null && record.seq !== this.expected) {
      return { kind: 'corrupt', offset: record.offset, problem: 'seq_gap', detail: `expected seq ${this.expected}, found ${record.seq}` };
    }
    this.expected = record.seq + 1;
    this.lastSeq = record.seq;
    this.validBytes = this.totalBytes = record.offset + record.length;
    return null;
  }

  /** The segment's verdict once its last line was checked. */
  end(isLastSegment: boolean): ScanVerdict {
    if (this.firstBad === null) return { kind: 'clean' };
    if (!isLastSegment) return corruptLine(this.firstBad);
    return { kind: 'torn_tail', offset: this.validBytes, bytes: this.totalBytes - this.validBytes, problem: this.firstBad.problem };
  }
}
