import path from 'node:path';
import { makeDirDurable, type LogDisk } from './disk';
import { scanLines, SegmentLineCheck, type WalRecord } from './record';
import { listSegments, readSegmentChunks, type SegmentInfo } from './segments';
import type { WriterStart } from './writer';

/** A bad record in the middle of the log: startup stops and names file and offset. */
export class LogCorruptionError extends Error {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, detail: string) {
    super(`wal recovery: corrupt record in ${file} at byte offset ${offset}: ${detail}; run \`npx logagg verify\` then \`npx logagg repair\``);
    this.name = 'LogCorruptionError';
    this.file = file;
    this.offset = offset;
  }
}

/** What recovery found and did, for the startup log line and /metrics. */
export interface RecoveryReport {
  segmentsRead: number;
  recordsReplayed: number;
  lastSeq: number;
  tornTail: { file: string; offset: number; bytesDropped: number; savedTo: string } | null;
}

export interface RecoverLogOptions {
  disk: LogDisk;
  walDir: string;
  /** Last seq the index holds; records after it are handed to onRecords. */
  checkpointSeq: number;
  /** Receives records to replay, in seq order and in chunks; awaited, so it may yield. */
  onRecords: (records: WalRecord[]) => Promise<void>;
  /** Records per onRecords call. */
  chunkRecords: number;
  /** Bytes of a segment read at once (READ_CHUNK_BYTES); tests make it small to cross lines. */
  readChunkBytes?: number;
}

/**
 * Reads the log from the segment holding checkpoint+1 to the end, replays the records after
 * the checkpoint, and cuts a torn tail off the last segment (its bytes kept in
 * `wal/quarantine/`). Corruption anywhere else throws LogCorruptionError. It does not
 * read segments wholly covered by the checkpoint; `logagg verify` does.
 *
 * Segments are read in chunks, and records are replayed as they are read, so memory
 * follows the chunk size, not SEGMENT_BYTES_MAX. A record is replayed only when every line
 * before it is valid; should a bad line turn out to be corruption (a valid record follows
 * it), the records replayed before it are valid ones and stay in the index.
 */
export async function recoverLog(options: RecoverLogOptions): Promise<{ start: WriterStart; report: RecoveryReport }> {
  const { disk, walDir, checkpointSeq } = options;
  // The log directory's own name must survive power loss before anything in it is acknowledged.
  makeDirDurable(disk, walDir);
  const segments = listSegments(disk, walDir);
  let startIndex = 0;
  for (let i = 0; i < segments.length; i += 1) {
    if (segments[i]!.firstSeq <= checkpointSeq + 1) startIndex = i;
  }

  const report: RecoveryReport = { segmentsRead: 0, recordsReplayed: 0, lastSeq: checkpointSeq, tornTail: null };
  let lastSegment: { info: SegmentInfo; size: number } | null = null;
  let expectedSeq: number | null = null;
  for (let i = startIndex; i < segments.length; i += 1) {
    const segment = segments[i]!;
    const isLast = i === segments.length - 1;
    report.segmentsRead += 1;
    const check = new SegmentLineCheck(null);
    let chunk: WalRecord[] = [];
    for (const line of scanLines(readSegmentChunks(disk, segment.path, options.readChunkBytes))) {
      if (line.record === null) {
        check.bad(line);
        continue;
      }
      const first = check.lastSeq === null;
      const corrupt = check.record({ ...line.record, offset: line.offset, length: line.length });
      if (corrupt !== null) throw new LogCorruptionError(segment.path, corrupt.offset, corrupt.detail);
      const { seq } = line.record;
      if (first && seq !== segment.firstSeq) {
        throw new LogCorruptionError(segment.path, line.offset, `segment named for seq ${segment.firstSeq} starts with seq ${seq}`);
      }
      if (first && expectedSeq !== null && seq !== expectedSeq) {
        throw new LogCorruptionError(segment.path, line.offset, `expected seq ${expectedSeq}, found ${seq} (a segment is missing)`);
      }
      // Replay what the index does not have yet, in bounded chunks.
      if (seq <= checkpointSeq) continue;
      chunk.push(line.record);
      if (chunk.length >= options.chunkRecords) {
        await options.onRecords(chunk);
        report.recordsReplayed += chunk.length;
        chunk = [];
      }
    }
    const verdict = check.end(isLast);
    if (verdict.kind === 'corrupt') throw new LogCorruptionError(segment.path, verdict.offset, verdict.detail);
    if (chunk.length > 0) {
      await options.onRecords(chunk);
      report.recordsReplayed += chunk.length;
    }
    if (verdict.kind === 'torn_tail') report.tornTail = cutTornTail(disk, walDir, segment, verdict.offset);
    if (check.lastSeq !== null) {
      expectedSeq = check.lastSeq + 1;
      report.lastSeq = Math.max(report.lastSeq, check.lastSeq);
    }
    if (isLast) lastSegment = { info: segment, size: check.validBytes };
  }
  const nextSeq = report.lastSeq + 1;
  return { start: { nextSeq, lastSegment }, report };
}

/** Saves the torn bytes beside the log, then truncates the segment to its last valid record. */
function cutTornTail(disk: LogDisk, walDir: string, segment: SegmentInfo, offset: number): NonNullable<RecoveryReport['tornTail']> {
  const quarantineDir = path.join(walDir, 'quarantine');
  makeDirDurable(disk, quarantineDir);
  const savedTo = path.join(quarantineDir, `${segment.name}.${offset}.torn`);
  const torn = disk.readRange(segment.path, offset, disk.fileSize(segment.path) - offset);
  disk.writeFileSync(savedTo, torn);
  disk.fsyncDir(quarantineDir);
  disk.truncateFileSync(segment.path, offset);
  return { file: segment.path, offset, bytesDropped: torn.length, savedTo };
}
