import path from 'node:path';
import { makeDirDurable, type LogDisk } from './disk';
import { classifyScan, scanSegmentBytes, type WalRecord } from './record';
import { listSegments, type SegmentInfo } from './segments';
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
}

/**
 * Reads the log from the segment holding checkpoint+1 to the end, replays the records after
 * the checkpoint, and cuts a torn tail off the last segment (its bytes kept in
 * `wal/quarantine/`). Corruption anywhere else throws LogCorruptionError. It does not
 * read segments wholly covered by the checkpoint; `logagg verify` does.
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
    const bytes = disk.readFile(segment.path);
    const scan = scanSegmentBytes(bytes);
    report.segmentsRead += 1;
    const firstRecord = scan.records[0];
    // A bad line is named first: a wrong first seq or a gap after it is its consequence.
    const verdict = classifyScan(scan, isLast, firstRecord?.seq ?? segment.firstSeq);
    if (verdict.kind === 'corrupt') throw new LogCorruptionError(segment.path, verdict.offset, verdict.detail);
    if (firstRecord !== undefined && firstRecord.seq !== segment.firstSeq) {
      throw new LogCorruptionError(segment.path, firstRecord.offset, `segment named for seq ${segment.firstSeq} starts with seq ${firstRecord.seq}`);
    }
    if (firstRecord !== undefined && expectedSeq !== null && firstRecord.seq !== expectedSeq) {
      throw new LogCorruptionError(segment.path, firstRecord.offset, `expected seq ${expectedSeq}, found ${firstRecord.seq} (a segment is missing)`);
    }
    if (verdict.kind === 'torn_tail') {
      report.tornTail = cutTornTail(disk, walDir, segment, bytes, verdict.offset);
    }

    // Replay what the index does not have yet, in bounded chunks.
    let chunk: WalRecord[] = [];
    for (const record of scan.records) {
      if (record.seq <= checkpointSeq) continue;
      chunk.push({ seq: record.seq, eventJson: record.eventJson });
      if (chunk.length >= options.chunkRecords) {
        await options.onRecords(chunk);
        report.recordsReplayed += chunk.length;
        chunk = [];
      }
    }
    if (chunk.length > 0) {
      await options.onRecords(chunk);
      report.recordsReplayed += chunk.length;
    }
    const lastRecord = scan.records[scan.records.length - 1];
    if (lastRecord !== undefined) {
      expectedSeq = lastRecord.seq + 1;
      report.lastSeq = Math.max(report.lastSeq, lastRecord.seq);
    }
    if (isLast) lastSegment = { info: segment, size: scan.validBytes };
  }
  const nextSeq = report.lastSeq + 1;
  return { start: { nextSeq, lastSegment }, report };
}

/** Saves the torn bytes beside the log, then truncates the segment to its last valid record. */
function cutTornTail(disk: LogDisk, walDir: string, segment: SegmentInfo, bytes: Buffer, offset: number): NonNullable<RecoveryReport['tornTail']> {
  const quarantineDir = path.join(walDir, 'quarantine');
  makeDirDurable(disk, quarantineDir);
  const savedTo = path.join(quarantineDir, `${segment.name}.${offset}.torn`);
  disk.writeFileSync(savedTo, bytes.subarray(offset));
  disk.fsyncDir(quarantineDir);
  disk.truncateFileSync(segment.path, offset);
  return { file: segment.path, offset, bytesDropped: bytes.length - offset, savedTo };
}
