import path from 'node:path';
import { makeDirDurable, NodeDisk, type LogDisk } from './disk';
import { classifyScan, encodeRecord, scanSegmentBytes, TOMBSTONE_EVENT_KEY, type SegmentScan } from './record';
import { listSegments, type SegmentInfo } from './segments';

/** Options of repairLog. The service must not be running on the same log. */
export interface RepairOptions {
  /** The log directory (`DATA_DIR/wal`). */
  walDir: string;
  disk?: LogDisk;
  /**
   * Also move corrupt records (a bad line followed by valid ones, or in an older segment)
   * into quarantine, putting a tombstone record in place of each seq they held. Without it
   * only a torn tail is cut and corruption is reported in `remaining`, untouched.
   */
  quarantineCorrupt?: boolean;
  /** Report what would change; change nothing. */
  dryRun?: boolean;
}

/** One change repairLog made (or, with dryRun, would make). */
export interface RepairChange {
  kind: 'torn_tail_cut' | 'corrupt_quarantined';
  /** The segment file changed. */
  file: string;
  /** Byte offset of the first removed byte in the segment as it was. */
  offset: number;
  /** Bytes removed from the segment. */
  bytesRemoved: number;
  /** Files the removed bytes were saved to (empty with dryRun). */
  savedTo: string[];
  /** Where the whole segment was copied before it was rewritten (corrupt_quarantined only). */
  backupOf: string | null;
  /** Seqs whose records were lost and now hold a tombstone. */
  seqsTombstoned: number[];
}

/** A problem repairLog found and left in place. */
export interface RepairProblem {
  file: string;
  offset: number;
  detail: string;
}

/** What repairLog found and did. `changes` lists exactly what was written; nothing else was touched. */
export interface RepairResult {
  segmentsChecked: number;
  recordsValid: number;
  changes: RepairChange[];
  remaining: RepairProblem[];
  /** True when the log would now start cleanly (no remaining problem). */
  clean: boolean;
}

/** The event JSON of a tombstone: the seq existed, its record was unreadable and moved out. */
function tombstoneJson(savedTo: string): string {
  return JSON.stringify({ [TOMBSTONE_EVENT_KEY]: { reason: 'corrupt record moved to quarantine by repair', saved_to: path.basename(savedTo) } });
}

/**
 * Checks every segment of the log and repairs what it may: a torn tail of the last segment
 * is cut (its bytes saved to `wal/quarantine/`); with `quarantineCorrupt`, corrupt lines
 * anywhere are moved to quarantine and tombstones keep the seqs continuous (the whole
 * segment is copied to quarantine first). It never deletes a byte without saving it,
 * and it does not touch the index: start the service (or rebuild the index) afterwards.
 */
export function repairLog(options: RepairOptions): RepairResult {
  const disk = options.disk ?? new NodeDisk();
  const { walDir } = options;
  const quarantineDir = path.join(walDir, 'quarantine');
  const result: RepairResult = { segmentsChecked: 0, recordsValid: 0, changes: [], remaining: [], clean: false };
  const segments = listSegments(disk, walDir);
  let expectedSeq: number | null = null;

  segments.forEach((segment, i) => {
    const isLast = i === segments.length - 1;
    const bytes = disk.readFile(segment.path);
    const scan = scanSegmentBytes(bytes);
    result.segmentsChecked += 1;
    result.recordsValid += scan.records.length;
    const nextFirstSeq = isLast ? null : segments[i + 1]!.firstSeq;
    const verdict = classifyScan(scan, isLast, expectedSeq ?? segment.firstSeq);
    const lastRecord = scan.records[scan.records.length - 1];

    if (verdict.kind === 'torn_tail') {
      const savedTo = path.join(quarantineDir, `${segment.name}.${verdict.offset}.torn`);
      if (options.dryRun !== true) {
        // Save first, then cut: a crash between the two leaves both copies.
        makeDirDurable(disk, quarantineDir);
        disk.writeFileSync(savedTo, bytes.subarray(verdict.offset));
        disk.fsyncDir(quarantineDir);
        disk.truncateFileSync(segment.path, verdict.offset);
      }
      result.changes.push({
        kind: 'torn_tail_cut',
        file: segment.path,
        offset: verdict.offset,
        bytesRemoved: verdict.bytes,
        savedTo: options.dryRun === true ? [] : [savedTo],
        backupOf: null,
        seqsTombstoned: [],
      });
    } else if (verdict.kind === 'corrupt') {
      const bad = scan.badLines.length > 0 && verdict.problem !== 'seq_gap';
      if (!bad || options.quarantineCorrupt !== true) {
        result.remaining.push({ file: segment.path, offset: verdict.offset, detail: verdict.detail });
      } else {
        const change = quarantineCorruptLines(disk, segment, bytes, scan, isLast, nextFirstSeq, quarantineDir, options.dryRun === true);
        if (change === null) result.remaining.push({ file: segment.path, offset: verdict.offset, detail: `${verdict.detail} (seqs around it are not continuous; left in place)` });
        else result.changes.push(change);
      }
    }
    if (lastRecord !== undefined) expectedSeq = Math.max(lastRecord.seq + 1, expectedSeq ?? 0);
    // A segment that ended in a corrupt region continues where the next one starts.
    if (nextFirstSeq !== null) expectedSeq = nextFirstSeq;
  });
  result.clean = result.remaining.length === 0;
  return result;
}

/**
 * Rewrites one segment without its bad lines: each run of bad lines goes to its own
 * quarantine file and is replaced by tombstones for the seqs it must have held (from the
 * seqs of the valid records around it). Returns null when those seqs cannot be told.
 */
function quarantineCorruptLines(
  disk: LogDisk,
  segment: SegmentInfo,
  bytes: Buffer,
  scan: SegmentScan,
  isLast: boolean,
  nextFirstSeq: number | null,
  quarantineDir: string,
  dryRun: boolean,
): RepairChange | null {
  // Walk lines in order: valid records and runs of bad lines between them.
  type Piece = { kind: 'record'; offset: number; length: number; seq: number } | { kind: 'bad'; offset: number; length: number };
  const pieces: Piece[] = [
    ...scan.records.map((r) => ({ kind: 'record' as const, offset: r.offset, length: r.length, seq: r.seq })),
    ...scan.badLines.map((b) => ({ kind: 'bad' as const, offset: b.offset, length: b.length })),
  ].sort((a, b) => a.offset - b.offset);

  const out: Buffer[] = [];
  const tombstoned: number[] = [];
  const saved: Array<{ offset: number; data: Buffer; savedTo: string }> = [];
  let previousSeq = segment.firstSeq - 1;
  let firstRemoved = -1;
  let bytesRemoved = 0;
  for (let k = 0; k < pieces.length; k += 1) {
    const piece = pieces[k]!;
    if (piece.kind === 'record') {
      out.push(bytes.subarray(piece.offset, piece.offset + piece.length));
      previousSeq = piece.seq;
      continue;
    }
    // A run of bad lines, up to the next valid record.
    let end = k;
    while (end + 1 < pieces.length && pieces[end + 1]!.kind === 'bad') end += 1;
    const runStart = piece.offset;
    const runEnd = pieces[end]!.offset + pieces[end]!.length;
    const following = pieces[end + 1];
    const nextSeq = following !== undefined ? (following as { seq: number }).seq : nextFirstSeq;
    // A trailing run in the last segment is a torn tail: cut, no tombstone.
    if (nextSeq === null && !isLast) return null;
    const savedTo = path.join(quarantineDir, `${segment.name}.${runStart}.corrupt`);
    saved.push({ offset: runStart, data: bytes.subarray(runStart, runEnd), savedTo });
    if (nextSeq !== null) {
      if (nextSeq <= previousSeq) return null;
      for (let seq = previousSeq + 1; seq < nextSeq; seq += 1) {
        tombstoned.push(seq);
        out.push(Buffer.from(encodeRecord(seq, tombstoneJson(savedTo))));
      }
    }
    if (firstRemoved === -1) firstRemoved = runStart;
    bytesRemoved += runEnd - runStart;
    k = end;
  }
  const backup = path.join(quarantineDir, `${segment.name}.original`);
  if (!dryRun) {
    // Backup of the whole segment first, then the removed runs, then the rewrite.
    makeDirDurable(disk, quarantineDir);
    disk.writeFileSync(backup, bytes);
    for (const run of saved) disk.writeFileSync(run.savedTo, run.data);
    disk.fsyncDir(quarantineDir);
    disk.writeFileSync(segment.path, Buffer.concat(out));
  }
  return {
    kind: 'corrupt_quarantined',
    file: segment.path,
    offset: firstRemoved,
    bytesRemoved,
    savedTo: dryRun ? [] : saved.map((s) => s.savedTo),
    backupOf: dryRun ? null : backup,
    seqsTombstoned: tombstoned,
  };
}
