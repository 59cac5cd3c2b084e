import { makeDirDurable, type LogDisk } from './disk';
import { cutTornTail } from './quarantine';
import { describeBadLine, describeSeqBreak, readLog } from './reader';
import type { WalRecord } from './record';
import { positionOf, type LogPosition } from './event-row';
import type { SegmentInfo } from './segments';
import type { WriterStart } from './writer';

/** A bad record in the middle of the log: startup stops and names file and offset. */
export class LogCorruptionError extends Error {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, detail: string) {
    super(
      `wal recovery: corrupt record in ${file} at byte offset ${offset}: ${detail}; run \`npx logagg verify\` then \`npx logagg repair\``,
    );
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

/** A record replayed by recovery, with where its line lies in the log. */
export interface PositionedRecord extends WalRecord {
  position: LogPosition;
}

export interface RecoverLogOptions {
  disk: LogDisk;
  walDir: string;
  /** Last seq the index holds; records after it are handed to onRecords. */
  checkpointSeq: number;
  /** Receives records to replay, in seq order and in chunks; awaited, so it may yield. */
  onRecords: (records: PositionedRecord[]) => Promise<void>;
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
  const report: RecoveryReport = { segmentsRead: 0, recordsReplayed: 0, lastSeq: checkpointSeq, tornTail: null };
  let lastSegment: { info: SegmentInfo; size: number } | null = null;
  let torn: { segment: SegmentInfo; offset: number } | null = null;
  let chunk: PositionedRecord[] = [];
  const replayChunk = async (): Promise<void> => {
    if (chunk.length === 0) return;
    await options.onRecords(chunk);
    report.recordsReplayed += chunk.length;
    chunk = [];
  };
  // Policy: stop at the first corruption or seq break; a torn tail is the end of the log.
  for (const item of readLog({ disk, walDir, fromSeq: checkpointSeq + 1, readChunkBytes: options.readChunkBytes })) {
    switch (item.kind) {
      case 'corruption':
        throw new LogCorruptionError(item.segment.path, item.offset, describeBadLine(item));
      case 'seq_break':
        throw new LogCorruptionError(item.segment.path, item.offset, describeSeqBreak(item));
      case 'torn_tail':
        torn = { segment: item.segment, offset: item.offset };
        break;
      case 'record':
      case 'tombstone':
        // Replay what the index does not have yet, in bounded chunks; tombstones too, so
        // that the checkpoint passes their seqs.
        if (item.seq <= checkpointSeq) break;
        chunk.push({ seq: item.seq, eventJson: item.eventJson, receivedAtMs: item.receivedAtMs, position: positionOf(item) });
        if (chunk.length >= options.chunkRecords) await replayChunk();
        break;
      case 'segment_end':
        report.segmentsRead += 1;
        await replayChunk();
        if (item.lastSeq !== null) report.lastSeq = Math.max(report.lastSeq, item.lastSeq);
        if (item.isLast) lastSegment = { info: item.segment, size: item.validBytes };
        break;
    }
  }
  if (torn !== null) {
    const cut = cutTornTail(disk, walDir, torn.segment, torn.offset);
    report.tornTail = { file: torn.segment.path, offset: torn.offset, bytesDropped: cut.bytesDropped, savedTo: cut.savedTo };
  }
  const nextSeq = report.lastSeq + 1;
  return { start: { nextSeq, lastSegment }, report };
}
