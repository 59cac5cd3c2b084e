import path from 'node:path';
import type { LogDisk } from './disk';

/** A segment file of the log, named by the seq of its first record. */
export interface SegmentInfo {
  firstSeq: number;
  name: string;
  path: string;
}

const SEGMENT_PATTERN = /^(\d{20})\.ndjson$/;

/** The file name of the segment whose first record has `firstSeq`. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.ndjson`;
}

/** Lists the log's segments in seq order; other files in the directory are ignored. */
export function listSegments(disk: LogDisk, walDir: string): SegmentInfo[] {
  if (!disk.exists(walDir)) return [];
  const segments: SegmentInfo[] = [];
  for (const name of disk.listDir(walDir)) {
    const match = SEGMENT_PATTERN.exec(name);
    if (match === null) continue;
    segments.push({ firstSeq: Number(match[1]), name, path: path.join(walDir, name) });
  }
  return segments.sort((a, b) => a.firstSeq - b.firstSeq);
}
