import type { LogDisk } from './disk';
import { decodeLine, isTombstoneEventJson, RECORD_LINE_BYTES_MAX, scanLines, type LineProblem, type WalRecord } from './record';
import { listSegments, readSegmentChunks, segmentsFrom, type SegmentInfo } from './segments';

/**
 * The one reader of the log (after LevelDB's log::Reader): every tool that reads segments
 * goes through readLog or readSegment, and the log's rules live here only. It yields what it
 * finds and decides nothing about what to do with it: recovery stops at the first
 * corruption, verify reports everything and goes on, repair quarantines, export skips,
 * rebuild refuses, tail and replay skip tombstones. It never changes a file.
 *
 * The rules (docs/log-format.md):
 * - A bad line (framing, checksum, JSON, seq field) followed by a valid record in the same
 *   segment, or anywhere in a segment that is not the last, is corruption: one
 *   `corruption` item per line, yielded just before the record that proves it (or at the
 *   end of an older segment).
 * - Bad lines after the last valid record of the last segment are its torn tail (the writer
 *   died mid-write): one `torn_tail` item, not corruption.
 * - The first record of a segment must carry the seq the segment is named for
 *   (`segment_name`); each record must carry the seq after the previous record's, across
 *   segments (`seq_gap` when seqs are missing, `seq_order` when one repeats or goes back). A
 *   gap right after corruption is that corruption's consequence and is not reported again.
 * - A tombstone (a seq whose record `logagg repair` quarantined) is a valid record of the log
 *   and is yielded as `tombstone`, never as an event.
 */

/** A record or tombstone, with where its line starts in its segment and how many bytes it spans. */
export interface ReadRecord {
  segment: SegmentInfo;
  offset: number;
  length: number;
  seq: number;
  /** The exact event text that was logged (for a tombstone, its placeholder object). */
  eventJson: string;
  /** When the service accepted it (epoch ms); null for a version-1 record or a tombstone. */
  receivedAtMs: number | null;
}

/** What is wrong with a bad line: how it failed to decode, or `torn` (no newline at the end of its segment). */
export type BadLineProblem = LineProblem | 'torn';

/** A break in the seqs (see the rules above). */
export type SeqProblem = 'segment_name' | 'seq_gap' | 'seq_order';

/** The seqs missing, or out of order, between a segment's last record and the name of the next one. */
export interface SegmentBoundary {
  /** The seq the next segment is named for. */
  nextFirstSeq: number;
  /** `gap`: seqs lastSeq+1..nextFirstSeq-1 are in no segment; `order`: the next segment starts at or before lastSeq. */
  relation: 'continues' | 'gap' | 'order';
}

/** One thing readLog found, in file order. */
export type LogItem =
  | ({ kind: 'record' } & ReadRecord)
  | ({ kind: 'tombstone' } & ReadRecord)
  | { kind: 'corruption'; segment: SegmentInfo; offset: number; bytes: number; problem: BadLineProblem }
  | {
      kind: 'seq_break';
      segment: SegmentInfo;
      /** Offset of the record whose seq is out of turn. */
      offset: number;
      problem: SeqProblem;
      /** The seq the rules expected (for `segment_name`, the one in the segment's name). */
      expected: number;
      seq: number;
      /** The record is its segment's first (a whole segment may be missing before it). */
      atSegmentStart: boolean;
    }
  | { kind: 'torn_tail'; segment: SegmentInfo; offset: number; bytes: number; problem: BadLineProblem }
  | {
      kind: 'segment_end';
      segment: SegmentInfo;
      isLast: boolean;
      /** Valid records (tombstones included) and the seqs of the first and last, null without any. */
      records: number;
      firstSeq: number | null;
      lastSeq: number | null;
      /** Bytes up to the end of the last valid record (where a torn tail is cut). */
      validBytes: number;
      /** Bytes read (the segment's size when reading reached it). */
      totalBytes: number;
      /** How the next segment's name follows this segment's last seq; null for the last segment. */
      boundary: SegmentBoundary | null;
    };

/** Options of readLog. */
export interface ReadLogOptions {
  disk: LogDisk;
  walDir: string;
  /** Skip segments that hold only seqs below it (default 1: read every segment). */
  fromSeq?: number;
  /**
   * The seq the first record read must carry, or null to take whatever the first segment
   * starts with (the default: a log may start after seq 1 when older segments are gone).
   */
  expectedFirstSeq?: number | null;
  /** Bytes read at once (READ_CHUNK_BYTES); tests make it small to cut lines across chunks. */
  readChunkBytes?: number;
  /** Called now and then with the bytes read so far, over all segments read (progress bars). */
  onBytesRead?: (bytes: number) => void;
}

/**
 * Reads the log's segments in seq order, each in bounded chunks, and yields every record,
 * tombstone, corruption, seq break and torn tail it finds, then a `segment_end` per segment.
 * Memory follows the chunk size and RECORD_LINE_BYTES_MAX, not the segment's size. It reads
 * the segments listed when it starts, each up to the size it had when reading reached it.
 */
export function* readLog(options: ReadLogOptions): Generator<LogItem> {
  const segments = segmentsFrom(listSegments(options.disk, options.walDir), options.fromSeq ?? 1);
  yield* readSegments(options.disk, segments, options);
}

/** As readLog, over a given list of segments in seq order (the last of them is the log's last). */
export function* readSegments(
  disk: LogDisk,
  segments: SegmentInfo[],
  options: Omit<ReadLogOptions, 'disk' | 'walDir' | 'fromSeq'> = {},
): Generator<LogItem> {
  const state: SeqState = { expected: options.expectedFirstSeq ?? null, corruptionSinceRecord: false };
  let doneBytes = 0;
  for (let i = 0; i < segments.length; i += 1) {
    const segment = segments[i]!;
    const next = segments[i + 1];
    const onBytes = options.onBytesRead === undefined ? undefined : (bytes: number) => options.onBytesRead!(doneBytes + bytes);
    let end: Extract<LogItem, { kind: 'segment_end' }> | null = null;
    for (const item of readSegmentWithState(
      disk,
      segment,
      { isLast: next === undefined, from: 0, readChunkBytes: options.readChunkBytes, onBytes },
      state,
    )) {
      if (item.kind === 'segment_end') end = item;
      else yield item;
    }
    const found = end!;
    if (next !== undefined) {
      const lastSeq = found.lastSeq ?? segment.firstSeq - 1;
      const relation = next.firstSeq === lastSeq + 1 ? 'continues' : next.firstSeq > lastSeq + 1 ? 'gap' : 'order';
      found.boundary = { nextFirstSeq: next.firstSeq, relation };
    }
    doneBytes += found.totalBytes;
    options.onBytesRead?.(doneBytes);
    yield found;
  }
}

/** Options of readSegment. */
export interface ReadSegmentOptions {
  /** Whether this is the log's last segment: its trailing bad lines are a torn tail, not corruption. */
  isLast: boolean;
  /** Start reading at this byte offset, the start of a line (tail -f resumes there); no seq is checked then. */
  from?: number;
  readChunkBytes?: number;
}

/**
 * Reads one segment alone, from `from` on, with the same rules as readLog except that seqs
 * are checked only within the bytes read (a `from` past 0 checks none at its first record).
 * For `logagg tail -f`, which follows the newest segment as it grows; the `torn_tail` it
 * yields for a line still being written marks where the next poll resumes.
 */
export function* readSegment(disk: LogDisk, segment: SegmentInfo, options: ReadSegmentOptions): Generator<LogItem> {
  yield* readSegmentWithState(disk, segment, { ...options, from: options.from ?? 0 }, { expected: null, corruptionSinceRecord: false });
}

/** Bytes a tail read looks at first; it doubles up to RECORD_LINE_BYTES_MAX to find a line start. */
const TAIL_READ_BYTES = 64 * 1024;

/**
 * The last valid record of a closed segment, by a bounded read of its tail (at most
 * RECORD_LINE_BYTES_MAX plus a line): retention reads its acceptance time from it. It finds
 * the start of the last whole line and reads from there with readSegment's rules, so a
 * segment whose last line is bad yields null rather than an older record.
 */
export function readLastRecord(disk: LogDisk, segment: SegmentInfo): ReadRecord | null {
  const size = disk.fileSize(segment.path);
  if (size === 0) return null;
  for (let window = TAIL_READ_BYTES; ; window *= 2) {
    const from = Math.max(0, size - window);
    const tail = disk.readRange(segment.path, from, size - from);
    // The newline that ends the line before the last one (the last byte ends the last line).
    const before = tail.lastIndexOf(0x0a, tail.length - 2);
    if (before === -1 && from > 0 && window <= RECORD_LINE_BYTES_MAX) continue;
    const lineStart = before === -1 ? from : from + before + 1;
    let last: ReadRecord | null = null;
    for (const item of readSegment(disk, segment, { isLast: false, from: lineStart })) {
      if (item.kind === 'record' || item.kind === 'tombstone') last = item;
    }
    return last;
  }
}

/**
 * The record a read by position found (src/wal/position-reader.ts): the `length` bytes read
 * (at `start` in `bytes`), newline included, must be one whole line that decodes, checksum
 * and all, to the record of `seq`. Returns the record, or the sentence why not. The event
 * JSON is not parsed again: the checksum proves the bytes are those written, and they were
 * checked then.
 */
export function decodeRecordAt(bytes: Buffer, length: number, seq: number, start = 0): WalRecord | string {
  if (length < 1 || bytes[start + length - 1] !== 0x0a) return 'is not a whole line';
  const decoded = decodeLine(bytes.toString('utf8', start, start + length - 1), { checkJson: false });
  if (typeof decoded === 'string') return `is not a record (${decoded})`;
  if (decoded.seq !== seq) return `holds seq ${decoded.seq}`;
  return decoded;
}

/** The seq rules' memory, carried from one segment to the next. */
interface SeqState {
  /** The seq the next record must carry; null before the first record when none was given. */
  expected: number | null;
  /** A corruption was yielded since the last record: a seq gap now is its consequence. */
  corruptionSinceRecord: boolean;
}

function* readSegmentWithState(
  disk: LogDisk,
  segment: SegmentInfo,
  options: { isLast: boolean; from: number; readChunkBytes?: number | undefined; onBytes?: ((bytes: number) => void) | undefined },
  state: SeqState,
): Generator<LogItem> {
  const { from } = options;
  // Bad lines since the last valid record: corruption or torn tail, told by what follows.
  let pending: Array<{ offset: number; bytes: number; problem: BadLineProblem }> = [];
  let records = 0;
  let firstSeq: number | null = null;
  let lastSeq: number | null = null;
  let validBytes = from;
  let totalBytes = from;
  for (const line of scanLines(readSegmentChunks(disk, segment.path, options.readChunkBytes, from))) {
    const offset = from + line.offset;
    totalBytes = offset + line.length;
    if (line.record === null) {
      pending.push({ offset, bytes: line.length, problem: line.problem });
      continue;
    }
    // A valid record after bad lines: they cannot be a torn tail.
    for (const bad of pending) yield { kind: 'corruption', segment, ...bad };
    if (pending.length > 0) state.corruptionSinceRecord = true;
    pending = [];

    const { seq, eventJson, receivedAtMs } = line.record;
    const atSegmentStart = firstSeq === null && from === 0;
    if (atSegmentStart && seq !== segment.firstSeq) {
      yield { kind: 'seq_break', segment, offset, problem: 'segment_name', expected: segment.firstSeq, seq, atSegmentStart };
    }
    const { expected } = state;
    if (expected !== null && seq < expected) {
      yield { kind: 'seq_break', segment, offset, problem: 'seq_order', expected, seq, atSegmentStart };
    } else if (expected !== null && seq > expected && !state.corruptionSinceRecord) {
      yield { kind: 'seq_break', segment, offset, problem: 'seq_gap', expected, seq, atSegmentStart };
    }
    state.corruptionSinceRecord = false;
    state.expected = seq + 1;

    records += 1;
    firstSeq ??= seq;
    lastSeq = seq;
    validBytes = totalBytes;
    if ((records & 1023) === 0) options.onBytes?.(totalBytes - from);
    const record: ReadRecord = { segment, offset, length: line.length, seq, eventJson, receivedAtMs };
    yield isTombstoneEventJson(eventJson) ? { kind: 'tombstone', ...record } : { kind: 'record', ...record };
  }

  // Bad lines after the last record: the torn tail of the last segment, corruption in any other.
  const firstTrailing = pending[0];
  if (firstTrailing !== undefined && options.isLast) {
    yield { kind: 'torn_tail', segment, offset: validBytes, bytes: totalBytes - validBytes, problem: firstTrailing.problem };
  } else if (firstTrailing !== undefined) {
    for (const bad of pending) yield { kind: 'corruption', segment, ...bad };
    state.corruptionSinceRecord = true;
  }
  yield { kind: 'segment_end', segment, isLast: options.isLast, records, firstSeq, lastSeq, validBytes, totalBytes, boundary: null };
}

/**
 * The sentence recovery and rebuild give for a seq break (verify words its report itself).
 * Recovery's wording is part of its contract: tests and operators read it.
 */
export function describeSeqBreak(item: Extract<LogItem, { kind: 'seq_break' }>): string {
  if (item.problem === 'segment_name') return `segment named for seq ${item.expected} starts with seq ${item.seq}`;
  if (item.atSegmentStart && item.problem === 'seq_gap') return `expected seq ${item.expected}, found ${item.seq} (a segment is missing)`;
  if (item.atSegmentStart) return `expected seq ${item.expected}, found ${item.seq} (segments overlap)`;
  return `expected seq ${item.expected}, found ${item.seq}`;
}

/** The sentence for a corrupt line, as recovery, rebuild, verify and repair give it. */
export function describeBadLine(item: { problem: BadLineProblem; bytes: number }): string {
  return `${item.problem} in a ${item.bytes}-byte line`;
}
