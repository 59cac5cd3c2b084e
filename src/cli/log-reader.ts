import fs from 'node:fs';
import { rowFromEventJson } from '../ingest/aggregator';
import { NodeDisk } from '../wal/disk';
import { isTombstoneEventJson, scanLines, type BadLine, type LocatedRecord } from '../wal/record';
import { listSegments, readSegmentChunks, type SegmentInfo } from '../wal/segments';
import { filterIsSeqOnly, type EventFilter } from './args';
import type { Progress } from './progress';

/** The disk the CLI reads the log through (the server's own framing and file access). */
export const DISK = new NodeDisk();

/** The segments of a log, in seq order. */
export function logSegments(walDir: string): SegmentInfo[] {
  return listSegments(DISK, walDir);
}

/** Total bytes of the given segments (progress bars count bytes). */
export function segmentsBytes(segments: SegmentInfo[]): number {
  let total = 0;
  for (const segment of segments) total += fs.statSync(segment.path).size;
  return total;
}

/** The segments that may hold seqs >= fromSeq (a segment ends where the next one starts). */
export function segmentsFrom(segments: SegmentInfo[], fromSeq: number): SegmentInfo[] {
  return segments.filter((_segment, i) => {
    const next = segments[i + 1];
    return next === undefined || next.firstSeq > fromSeq;
  });
}

/**
 * What readLog yields: each line of a segment as it is decoded (a record or a bad line),
 * then the end of that segment with its bad lines again (few; the records are not kept).
 */
export type LogItem =
  | { kind: 'record'; segment: SegmentInfo; record: LocatedRecord }
  | { kind: 'bad_line'; segment: SegmentInfo; line: BadLine }
  | { kind: 'segment_end'; segment: SegmentInfo; isLast: boolean; badLines: BadLine[]; validBytes: number; totalBytes: number };

/**
 * Reads segments in chunks (READ_CHUNK_BYTES), skipping those that hold only seqs below
 * `fromSeq`, so that memory follows the chunk size rather than SEGMENT_BYTES_MAX. For the
 * readers that go through the log front to back (verify, export, replay, rebuild); it
 * never changes a file. `progress` counts bytes, inside a segment too (one may be 64 MiB).
 */
export function* readLog(segments: SegmentInfo[], fromSeq = 1, progress?: Progress): Generator<LogItem> {
  const last = segments[segments.length - 1];
  let doneBytes = 0;
  for (const segment of segmentsFrom(segments, fromSeq)) {
    const badLines: BadLine[] = [];
    let validBytes = 0;
    let totalBytes = 0;
    for (const line of scanLines(readSegmentChunks(DISK, segment.path))) {
      totalBytes = line.offset + line.length;
      if (line.record === null) {
        const bad: BadLine = { offset: line.offset, length: line.length, problem: line.problem };
        badLines.push(bad);
        yield { kind: 'bad_line', segment, line: bad };
        continue;
      }
      validBytes = totalBytes;
      if ((line.record.seq & 1023) === 0) progress?.update(doneBytes + line.offset);
      yield { kind: 'record', segment, record: { ...line.record, offset: line.offset, length: line.length } };
    }
    doneBytes += totalBytes;
    progress?.update(doneBytes);
    yield { kind: 'segment_end', segment, isLast: segment === last, badLines, validBytes, totalBytes };
  }
}

/** The bad lines of a segment that are not its torn tail, i.e. corruption in the middle of the log. */
export function corruptLines(end: { isLast: boolean; badLines: BadLine[]; validBytes: number }): BadLine[] {
  return end.badLines.filter((bad) => !(end.isLast && bad.offset >= end.validBytes));
}

/**
 * Whether a logged record is an event that passes `filter`. A repair tombstone (the
 * placeholder `repairLog` leaves for a quarantined record) is never an event.
 */
export function matchesFilter(seq: number, eventJson: string, filter: EventFilter): boolean {
  if (isTombstoneEventJson(eventJson)) return false;
  if (filter.fromSeq !== undefined && seq < filter.fromSeq) return false;
  if (filterIsSeqOnly(filter)) return true;
  const row = rowFromEventJson(seq, eventJson);
  if (filter.topics !== undefined && !filter.topics.includes(row.topic)) return false;
  if (filter.source !== undefined && row.source !== filter.source) return false;
  if (filter.sinceMs !== undefined && row.tsMs < filter.sinceMs) return false;
  if (filter.untilMs !== undefined && row.tsMs >= filter.untilMs) return false;
  return true;
}

/** An event line as GET /events and `logagg export` show it: the logged JSON with its seq first. */
export function eventLine(seq: number, eventJson: string): string {
  return `{"seq":${seq},${eventJson.slice(1)}`;
}

/** Writes to a stream, waiting for 'drain' when its buffer is full. */
export function writeWithBackpressure(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream.write(text)) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}
