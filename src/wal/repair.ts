import path from 'node:path';
import { makeDirDurable, NodeDisk, type LogDisk } from './disk';
import { classifyScan, encodeRecord, scanSegmentBytes, TOMBSTONE_EVENT_KEY, type SegmentScan } from './record';
import { listSegments, type SegmentInfo } from './segments';

/**
 * Suffix of a segment's new content while a repair writes it. Recovery and the tools read
 * only `<20 digits>.ndjson`, so a copy left by a crash is ignored; the next repair overwrites it.
 */
const REWRITE_SUFFIX = '.rewrite';

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
  /** Called after each segment is checked, with its size in bytes (for a progress bar). */
  onSegmentChecked?: (segmentBytes: number) => void;
}

/** One change repairLog made (or, with dryRun, would make). */
export interface RepairChange {
  /**
   * `corrupt_quarantined`: bad lines moved out (tombstones for their seqs, and for any seq
   * missing in the same segment); `missing_tombstoned`: no bad bytes, but seqs missing from
   * the log (a seq gap with nothing left to quarantine) got tombstones.
   */
  kind: 'torn_tail_cut' | 'corrupt_quarantined' | 'missing_tombstoned';
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
  /** What is wrong: a bad-line problem (`bad_crc`, `bad_json`, ...), `seq_gap` or `seq_order`. */
  problem: string;
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

/** The event JSON of a tombstone: the seq existed, its record was unreadable and moved out (or was missing). */
function tombstoneJson(savedTo: string | null): string {
  if (savedTo === null) return JSON.stringify({ [TOMBSTONE_EVENT_KEY]: { reason: 'record missing from the log (no bytes left), filled by repair' } });
  return JSON.stringify({ [TOMBSTONE_EVENT_KEY]: { reason: 'corrupt record moved to quarantine by repair', saved_to: path.basename(savedTo) } });
}

/** A path in the quarantine that does not exist yet: a second repair never overwrites the first's files. */
function freshPath(disk: LogDisk, dir: string, name: string, taken: Set<string>): string {
  let candidate = path.join(dir, name);
  for (let n = 1; disk.exists(candidate) || taken.has(candidate); n += 1) candidate = path.join(dir, `${name}.${n}`);
  taken.add(candidate);
  return candidate;
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
  const taken = new Set<string>();

  segments.forEach((segment, i) => {
    const isLast = i === segments.length - 1;
    const bytes = disk.readFile(segment.path);
    const scan = scanSegmentBytes(bytes);
    result.segmentsChecked += 1;
    result.recordsValid += scan.records.length;
    const nextFirstSeq = isLast ? null : segments[i + 1]!.firstSeq;
    const verdict = classifyScan(scan, isLast, expectedSeq ?? segment.firstSeq);
    const lastRecord = scan.records[scan.records.length - 1];

    // Seqs missing between this segment's last record and the next segment's first.
    const lastSeq = lastRecord?.seq ?? segment.firstSeq - 1;
    const endGap = nextFirstSeq !== null && nextFirstSeq > lastSeq + 1;
    if (nextFirstSeq !== null && nextFirstSeq <= lastSeq) {
      result.remaining.push({ problem: 'seq_order', file: segment.path, offset: lastRecord?.offset ?? 0, detail: `seq ${lastSeq} here but the next segment starts at seq ${nextFirstSeq}: repair cannot reorder the log; restore it from a backup` });
    } else if (verdict.kind === 'torn_tail' && !endGap) {
      const savedTo = freshPath(disk, quarantineDir, `${segment.name}.${verdict.offset}.torn`, taken);
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
    } else if (verdict.kind === 'corrupt' || endGap) {
      const problem: RepairProblem =
        verdict.kind === 'corrupt'
          ? { problem: verdict.problem, file: segment.path, offset: verdict.offset, detail: verdict.detail }
          : { problem: 'seq_gap', file: segment.path, offset: bytes.length, detail: `seqs ${lastSeq + 1}..${nextFirstSeq! - 1} are missing before the next segment` };
      if (options.quarantineCorrupt !== true) {
        result.remaining.push(problem);
      } else {
        const change = rewriteWithTombstones(disk, segment, bytes, scan, isLast, nextFirstSeq, quarantineDir, taken, options.dryRun === true);
        if (change === null) result.remaining.push({ ...problem, problem: problem.problem === 'seq_gap' ? 'seq_order' : problem.problem, detail: `${problem.detail} (seqs around it are not in order; left in place)` });
        else result.changes.push(change);
      }
    }
    options.onSegmentChecked?.(bytes.length);
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
 * seqs of the valid records around it); a seq missing with no bad bytes in its place (a
 * gap, also before the next segment) gets a tombstone too. Returns null when the seqs
 * cannot be told (they go backwards).
 */
function rewriteWithTombstones(
  disk: LogDisk,
  segment: SegmentInfo,
  bytes: Buffer,
  scan: SegmentScan,
  isLast: boolean,
  nextFirstSeq: number | null,
  quarantineDir: string,
  taken: Set<string>,
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
      if (piece.seq <= previousSeq) return null;
      // Seqs missing with no bytes left: tombstones, nothing to save.
      for (let seq = previousSeq + 1; seq < piece.seq; seq += 1) {
        tombstoned.push(seq);
        out.push(Buffer.from(encodeRecord(seq, tombstoneJson(null))));
      }
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
    const savedTo = freshPath(disk, quarantineDir, `${segment.name}.${runStart}.corrupt`, taken);
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
    previousSeq = nextSeq === null ? previousSeq : nextSeq - 1;
    k = end;
  }
  // Seqs missing at the end, before the next segment's first seq.
  if (nextFirstSeq !== null) {
    if (nextFirstSeq <= previousSeq) return null;
    for (let seq = previousSeq + 1; seq < nextFirstSeq; seq += 1) {
      tombstoned.push(seq);
      out.push(Buffer.from(encodeRecord(seq, tombstoneJson(null))));
    }
  }
  if (firstRemoved === -1 && tombstoned.length === 0) return null;
  const firstTombstoneRecord = scan.records.find((r) => r.seq > tombstoned[0]!);
  const backup = freshPath(disk, quarantineDir, `${segment.name}.original`, taken);
  if (!dryRun) {
    // Backup of the whole segment first, then the removed runs, then the rewrite.
    makeDirDurable(disk, quarantineDir);
    disk.writeFileSync(backup, bytes);
    for (const run of saved) disk.writeFileSync(run.savedTo, run.data);
    disk.fsyncDir(quarantineDir);
    // The new content goes in whole or not at all: written and fsynced under a name no
    // reader takes for a segment, then renamed over it. Rewriting in place, a power loss
    // could leave the segment half written: valid records lost from the live log.
    const rewritten = path.join(path.dirname(segment.path), `${segment.name}${REWRITE_SUFFIX}`);
    disk.writeFileSync(rewritten, Buffer.concat(out));
    disk.renameSync(rewritten, segment.path);
    disk.fsyncDir(path.dirname(segment.path));
  }
  return {
    kind: firstRemoved === -1 ? 'missing_tombstoned' : 'corrupt_quarantined',
    file: segment.path,
    offset: firstRemoved !== -1 ? firstRemoved : (firstTombstoneRecord?.offset ?? bytes.length),
    bytesRemoved,
    savedTo: dryRun ? [] : saved.map((s) => s.savedTo),
    backupOf: dryRun ? null : backup,
    seqsTombstoned: tombstoned,
  };
}
