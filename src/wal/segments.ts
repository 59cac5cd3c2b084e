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

/** The segments that may hold seqs >= fromSeq (a segment ends where the next one starts). */
export function segmentsFrom(segments: SegmentInfo[], fromSeq: number): SegmentInfo[] {
  return segments.filter((_segment, i) => {
    const next = segments[i + 1];
    return next === undefined || next.firstSeq > fromSeq;
  });
}

/** How much of a segment a reader holds at once (see readSegmentChunks). */
export const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * A segment's bytes from `from` on, in consecutive chunks of `chunkBytes`, up to `to` or the
 * size it had when the reading started, so that memory follows the chunk size and not
 * SEGMENT_BYTES_MAX. The file stays open until the last chunk (or until the caller stops).
 */
export function* readSegmentChunks(disk: LogDisk, file: string, chunkBytes = READ_CHUNK_BYTES, from = 0, to?: number): Generator<Buffer> {
  // One handle for the whole read: a segment retention unlinks meanwhile is still read to its end.
  const handle = disk.openForRead(file);
  try {
    const size = Math.min(handle.size(), to ?? Number.MAX_SAFE_INTEGER);
    for (let position = from; position < size;) {
      const chunk = handle.read(position, Math.min(chunkBytes, size - position));
      if (chunk.length === 0) return;
      yield chunk;
      position += chunk.length;
    }
  } finally {
    handle.close();
  }
}
