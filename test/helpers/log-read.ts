import path from 'node:path';
import { NodeDisk, type LogDisk } from '../../src/wal/disk';
import { readSegment, type LogItem } from '../../src/wal/reader';
import type { SegmentInfo } from '../../src/wal/segments';

type Item<K extends LogItem['kind']> = Extract<LogItem, { kind: K }>;

/** A problem the reader found, without the segment it names (tests compare plain values). */
export type ReadProblem = Omit<Item<'corruption'>, 'segment'> | Omit<Item<'seq_break'>, 'segment'> | Omit<Item<'torn_tail'>, 'segment'>;

/** What the log reader finds in one segment file, gathered for assertions. */
export interface SegmentRead {
  records: Array<{ seq: number; offset: number; length: number; eventJson: string; tombstone: boolean }>;
  problems: ReadProblem[];
  validBytes: number;
  totalBytes: number;
}

/** The segment a file is, named by its first seq (1 when its name is not a segment name). */
export function segmentOf(file: string): SegmentInfo {
  const name = path.basename(file);
  const match = /^(\d{20})\.ndjson$/.exec(name);
  return { firstSeq: match === null ? 1 : Number(match[1]), name, path: file };
}

/** Reads one segment file through the log reader (as the log's last segment unless told otherwise). */
export function readSegmentFile(file: string, options: { isLast?: boolean; disk?: LogDisk; readChunkBytes?: number } = {}): SegmentRead {
  const read: SegmentRead = { records: [], problems: [], validBytes: 0, totalBytes: 0 };
  const items = readSegment(options.disk ?? new NodeDisk(), segmentOf(file), {
    isLast: options.isLast ?? true,
    readChunkBytes: options.readChunkBytes,
  });
  for (const item of items) {
    if (item.kind === 'record' || item.kind === 'tombstone') {
      read.records.push({
        seq: item.seq,
        offset: item.offset,
        length: item.length,
        eventJson: item.eventJson,
        tombstone: item.kind === 'tombstone',
      });
    } else if (item.kind === 'segment_end') {
      read.validBytes = item.validBytes;
      read.totalBytes = item.totalBytes;
    } else {
      const { segment: _segment, ...problem } = item;
      read.problems.push(problem);
    }
  }
  return read;
}
