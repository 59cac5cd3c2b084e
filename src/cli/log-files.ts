import fs from 'node:fs';
import { rowFromEventJson } from '../wal/event-row';
import { NodeDisk } from '../wal/disk';
import { isTombstoneEventJson } from '../wal/record';
import { listSegments, type SegmentInfo } from '../wal/segments';
import { filterIsSeqOnly, type EventFilter } from './args';

/*
 * What the commands share around the log. Reading it is src/wal/reader.ts's job: every
 * command reads segments through readLog there and picks its own policy.
 */

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
