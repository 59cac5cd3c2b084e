import path from 'node:path';
import { makeDirDurable, NodeDisk, type LogDisk } from './disk';
import { cutTornTail, freshPath, quarantineDirOf } from './quarantine';
import { describeBadLine, readLog, type LogItem } from './reader';
import { encodeRecord, TOMBSTONE_EVENT_KEY } from './record';
import { readSegmentChunks, type SegmentInfo } from './segments';

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
  if (savedTo === null)
    return JSON.stringify({ [TOMBSTONE_EVENT_KEY]: { reason: 'record missing from the log (no bytes left), filled by repair' } });
  return JSON.stringify({
    [TOMBSTONE_EVENT_KEY]: { reason: 'corrupt record moved to quarantine by repair', saved_to: path.basename(savedTo) },
  });
}

/**
 * One change to a segment's bytes in a rewrite: bytes [start, end) removed (a run of bad
 * lines, saved to `savedTo`) and tombstones written in their place, or tombstones inserted
 * at `start` (end === start, savedTo null: seqs missing with no bytes left).
 */
interface Edit {
  start: number;
  end: number;
  savedTo: string | null;
  tombstoneSeqs: number[];
}

/**
 * Repair's plan for one segment, built record by record as the reader goes: the runs of bad
 * lines, the tombstones each needs (from the seqs of the valid records around it) and the
 * seqs missing with no bytes left. It holds the edits, never the segment's bytes.
 */
class RewritePlan {
  readonly edits: Edit[] = [];
  /** Set when the seqs go backwards: no tombstone can be told, the segment is left as it is. */
  unorderable = false;
  private previousSeq: number;
  private run: { start: number; end: number } | null = null;

  constructor(
    private readonly disk: LogDisk,
    private readonly segment: SegmentInfo,
    private readonly quarantineDir: string,
    private readonly taken: Set<string>,
  ) {
    this.previousSeq = segment.firstSeq - 1;
  }

  badBytes(offset: number, bytes: number): void {
    this.run = this.run === null ? { start: offset, end: offset + bytes } : { start: this.run.start, end: offset + bytes };
  }

  record(offset: number, seq: number): void {
    this.closeRun(seq);
    if (seq <= this.previousSeq) this.unorderable = true;
    this.fillMissing(offset, seq);
  }

  /** At the end of the segment, with the seq the next segment starts at (null for the last: its trailing run is a torn tail). */
  end(totalBytes: number, nextFirstSeq: number | null): void {
    this.closeRun(nextFirstSeq);
    if (nextFirstSeq === null) return;
    if (nextFirstSeq <= this.previousSeq) this.unorderable = true;
    this.fillMissing(totalBytes, nextFirstSeq);
  }

  /** Every tombstoned seq, in order. */
  tombstoned(): number[] {
    return this.edits.flatMap((edit) => edit.tombstoneSeqs);
  }

  /** A run of bad lines ends; the next valid seq (or null) says which seqs it held. */
  private closeRun(nextSeq: number | null): void {
    if (this.run === null) return;
    const savedTo = freshPath(this.disk, this.quarantineDir, `${this.segment.name}.${this.run.start}.corrupt`, this.taken);
    const tombstoneSeqs: number[] = [];
    if (nextSeq !== null) {
      if (nextSeq <= this.previousSeq) this.unorderable = true;
      for (let seq = this.previousSeq + 1; seq < nextSeq; seq += 1) tombstoneSeqs.push(seq);
      this.previousSeq = Math.max(this.previousSeq, nextSeq - 1);
    }
    this.edits.push({ ...this.run, savedTo, tombstoneSeqs });
    this.run = null;
  }

  /** Seqs missing before `seq` with no bytes left: tombstones at `offset`, nothing to save. */
  private fillMissing(offset: number, seq: number): void {
    if (seq > this.previousSeq + 1) {
      const tombstoneSeqs: number[] = [];
      for (let missing = this.previousSeq + 1; missing < seq; missing += 1) tombstoneSeqs.push(missing);
      this.edits.push({ start: offset, end: offset, savedTo: null, tombstoneSeqs });
    }
    this.previousSeq = Math.max(this.previousSeq, seq);
  }
}

/** Tombstone lines written at once while rewriting (a gap may span many seqs). */
const TOMBSTONES_PER_WRITE = 1024;

/** The rewritten segment, in chunks: the original bytes between edits, tombstones in place of each. */
function* rewrittenChunks(disk: LogDisk, file: string, edits: Edit[], totalBytes: number): Generator<Buffer> {
  let position = 0;
  for (const edit of edits) {
    yield* readSegmentChunks(disk, file, undefined, position, edit.start);
    for (let i = 0; i < edit.tombstoneSeqs.length; i += TOMBSTONES_PER_WRITE) {
      const seqs = edit.tombstoneSeqs.slice(i, i + TOMBSTONES_PER_WRITE);
      yield Buffer.from(seqs.map((seq) => encodeRecord(seq, tombstoneJson(edit.savedTo), null)).join(''));
    }
    position = edit.end;
  }
  yield* readSegmentChunks(disk, file, undefined, position, totalBytes);
}

/** What repair saw in one segment while the reader went through it. */
interface SegmentFindings {
  /** The first corrupt line, which repair reports before any seq problem (a gap it leaves is its consequence). */
  corruption: RepairProblem | null;
  /** The first seq out of turn inside the segment, counted from the seq the segment is named for. */
  seqProblem: RepairProblem | null;
  tornTail: { offset: number; bytes: number } | null;
  lastRecordOffset: number | null;
  plan: RewritePlan | null;
}

/**
 * Checks every segment of the log and repairs what it may: a torn tail of the last segment
 * is cut (its bytes saved to `wal/quarantine/`); with `quarantineCorrupt`, corrupt lines
 * anywhere are moved to quarantine and tombstones keep the seqs continuous (the whole
 * segment is copied to quarantine first). It never deletes a byte without saving it,
 * and it does not touch the index: start the service (or rebuild the index) afterwards.
 * Segments are read through the log reader in chunks, and copied in chunks: memory follows
 * the chunk size and the number of problems, not the segment's size.
 */
export function repairLog(options: RepairOptions): RepairResult {
  const disk = options.disk ?? new NodeDisk();
  const { walDir } = options;
  const quarantineDir = quarantineDirOf(walDir);
  const result: RepairResult = { segmentsChecked: 0, recordsValid: 0, changes: [], remaining: [], clean: false };
  const taken = new Set<string>();
  const dryRun = options.dryRun === true;
  let findings: SegmentFindings | null = null;

  // Policy: note every problem of a segment, then at its end cut, quarantine or report.
  for (const item of readLog({ disk, walDir })) {
    const { segment } = item;
    findings ??= {
      corruption: null,
      seqProblem: null,
      tornTail: null,
      lastRecordOffset: null,
      plan: options.quarantineCorrupt === true ? new RewritePlan(disk, segment, quarantineDir, taken) : null,
    };
    switch (item.kind) {
      case 'corruption':
        findings.corruption ??= { problem: item.problem, file: segment.path, offset: item.offset, detail: describeBadLine(item) };
        findings.plan?.badBytes(item.offset, item.bytes);
        break;
      case 'torn_tail':
        findings.tornTail = { offset: item.offset, bytes: item.bytes };
        findings.plan?.badBytes(item.offset, item.bytes);
        break;
      case 'seq_break':
        // A segment must start at the seq it is named for; a break at its start relative to
        // the previous segment is that segment's boundary, handled at its end.
        if (item.problem === 'segment_name' || !item.atSegmentStart) {
          findings.seqProblem ??= {
            problem: 'seq_gap',
            file: segment.path,
            offset: item.offset,
            detail: `expected seq ${item.expected}, found ${item.seq}`,
          };
        }
        break;
      case 'record':
      case 'tombstone':
        result.recordsValid += 1;
        findings.lastRecordOffset = item.offset;
        findings.plan?.record(item.offset, item.seq);
        break;
      case 'segment_end':
        result.segmentsChecked += 1;
        findings.plan?.end(item.totalBytes, item.boundary?.nextFirstSeq ?? null);
        repairSegment(item, findings);
        options.onSegmentChecked?.(item.totalBytes);
        findings = null;
        break;
    }
  }
  result.clean = result.remaining.length === 0;
  return result;

  function repairSegment(end: Extract<LogItem, { kind: 'segment_end' }>, found: SegmentFindings): void {
    const { segment, boundary } = end;
    const lastSeq = end.lastSeq ?? segment.firstSeq - 1;
    if (boundary?.relation === 'order') {
      const detail = `seq ${lastSeq} here but the next segment starts at seq ${boundary.nextFirstSeq}: repair cannot reorder the log; restore it from a backup`;
      result.remaining.push({ problem: 'seq_order', file: segment.path, offset: found.lastRecordOffset ?? 0, detail });
      return;
    }
    const problem =
      found.corruption ??
      found.seqProblem ??
      (boundary?.relation === 'gap'
        ? {
            problem: 'seq_gap',
            file: segment.path,
            offset: end.totalBytes,
            detail: `seqs ${lastSeq + 1}..${boundary.nextFirstSeq - 1} are missing before the next segment`,
          }
        : null);
    if (problem === null) {
      if (found.tornTail !== null) cutTail(segment, found.tornTail);
      return;
    }
    if (found.plan === null) {
      result.remaining.push(problem);
      return;
    }
    const change = rewriteWithTombstones(segment, found.plan, end.totalBytes);
    if (change === null) {
      const kind = problem.problem === 'seq_gap' ? 'seq_order' : problem.problem;
      result.remaining.push({ ...problem, problem: kind, detail: `${problem.detail} (seqs around it are not in order; left in place)` });
    } else {
      result.changes.push(change);
    }
  }

  function cutTail(segment: SegmentInfo, torn: { offset: number; bytes: number }): void {
    // Save first, then cut: a crash between the two leaves both copies.
    const savedTo = dryRun ? [] : [cutTornTail(disk, walDir, segment, torn.offset, taken).savedTo];
    result.changes.push({
      kind: 'torn_tail_cut',
      file: segment.path,
      offset: torn.offset,
      bytesRemoved: torn.bytes,
      savedTo,
      backupOf: null,
      seqsTombstoned: [],
    });
  }

  /**
   * Rewrites one segment by its plan: each run of bad lines goes to its own quarantine file
   * and is replaced by tombstones for the seqs it must have held; a seq missing with no bad
   * bytes in its place (a gap, also before the next segment) gets a tombstone too. Returns
   * null when the seqs cannot be told (they go backwards) or there is nothing to change.
   */
  function rewriteWithTombstones(segment: SegmentInfo, plan: RewritePlan, totalBytes: number): RepairChange | null {
    const tombstoned = plan.tombstoned();
    const removed = plan.edits.filter((edit) => edit.savedTo !== null);
    if (plan.unorderable || (removed.length === 0 && tombstoned.length === 0)) return null;
    const backup = freshPath(disk, quarantineDir, `${segment.name}.original`, taken);
    if (!dryRun) {
      // Backup of the whole segment first, then the removed runs, then the rewrite.
      makeDirDurable(disk, quarantineDir);
      disk.writeFileDurably(backup, readSegmentChunks(disk, segment.path, undefined, 0, totalBytes));
      for (const edit of removed)
        disk.writeFileDurably(edit.savedTo!, readSegmentChunks(disk, segment.path, undefined, edit.start, edit.end));
      disk.fsyncDir(quarantineDir);
      // The new content goes in whole or not at all: written and fsynced under a name no
      // reader takes for a segment, then renamed over it. Rewriting in place, a power loss
      // could leave the segment half written: valid records lost from the live log.
      const rewritten = path.join(path.dirname(segment.path), `${segment.name}${REWRITE_SUFFIX}`);
      disk.writeFileDurably(rewritten, rewrittenChunks(disk, segment.path, plan.edits, totalBytes));
      disk.renameSync(rewritten, segment.path);
      disk.fsyncDir(path.dirname(segment.path));
    }
    const firstRemoved = removed[0];
    return {
      kind: firstRemoved === undefined ? 'missing_tombstoned' : 'corrupt_quarantined',
      file: segment.path,
      offset: firstRemoved?.start ?? plan.edits[0]!.start,
      bytesRemoved: removed.reduce((n, edit) => n + edit.end - edit.start, 0),
      savedTo: dryRun ? [] : removed.map((edit) => edit.savedTo!),
      backupOf: dryRun ? null : backup,
      seqsTombstoned: tombstoned,
    };
  }
}
