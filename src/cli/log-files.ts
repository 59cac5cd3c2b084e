import fs from 'node:fs';
import { rowFromEventJson } from '../wal/event-row';
import { NodeDisk } from '../wal/disk';
import { readSegments, type LogItem, type ReadLogOptions } from '../wal/reader';
import { isTombstoneEventJson } from '../wal/record';
import { retainedSegments } from '../wal/retention';
import { segmentsFrom, type SegmentInfo } from '../wal/segments';
import { filterIsSeqOnly, type EventFilter } from './args';

/*
 * What the commands share around the log. Reading it is src/wal/reader.ts's job: every
 * command reads segments through readLog there and picks its own policy.
 */

/** The disk the CLI reads the log through (the server's own framing and file access). */
export const DISK = new NodeDisk();

/**
 * The segments of a log that retention keeps, in seq order: segments wholly below the first
 * retained seq (`wal/RETAINED`), deleted but not unlinked yet, are left out.
 */
export function logSegments(walDir: string): SegmentInfo[] {
  return retainedSegments(DISK, walDir).segments;
}

/**
 * readLog over the segments retention keeps, from the one that may hold `fromSeq` on. Where
 * the marker says the log starts after seq 1, it expects that seq first (a gap after it is
 * still a seq break); without a marker it takes the first seq as it comes.
 */
export function readRetainedLog(walDir: string, options: Pick<ReadLogOptions, 'fromSeq' | 'onBytesRead'> = {}): Generator<LogItem> {
  const retained = retainedSegments(DISK, walDir);
  const segments = segmentsFrom(retained.segments, options.fromSeq ?? 1);
  const expectedFirstSeq = retained.marked && segments[0] === retained.segments[0] ? retained.firstSeq : null;
  return readSegments(DISK, segments, { expectedFirstSeq, onBytesRead: options.onBytesRead });
}

/** Total bytes of the given segments (progress bars count bytes). */
export function segmentsBytes(segments: SegmentInfo[]): number {
  let total = 0;
  for (const segment of segments) total += fs.statSync(segment.path).size;
  return total;
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

/** Writes to a stream, waiting for 'drain' when its buffer is full. */
export function writeWithBackpressure(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream.write(text)) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}
