import fs from 'node:fs';
import path from 'node:path';
import type { BadLine } from '../wal/record';
import { skippedSeqsPath, type SkippedSeqRange } from '../wal/skipped-seqs';
import { dataPaths, EXIT_OK, EXIT_PROBLEM, UsageError, type Command } from './args';
import { corruptLines, logSegments, logSkippedSeqs, readSegments, segmentsBytes, type ReadSegment } from './log-reader';
import { lockDataDir } from './lock';
import { startProgress } from './progress';

/** One change repair made (or, with --dry-run, would make). */
export interface RepairAction {
  action: 'cut_torn_tail' | 'quarantine_line' | 'rewrite_segment' | 'record_skipped_seqs';
  file: string;
  offset?: number;
  bytes?: number;
  problem?: string;
  savedTo?: string;
  backup?: string;
  from?: number;
  to?: number;
  detail: string;
}

/** A problem repair left in place, and why. */
export interface RepairRemaining {
  kind: string;
  file: string;
  offset: number | null;
  detail: string;
}

/** The outcome of `logagg repair`, as `--json` prints it. */
export interface RepairReport {
  dataDir: string;
  dryRun: boolean;
  actions: RepairAction[];
  remaining: RepairRemaining[];
  ok: boolean;
}

interface SegmentPlan {
  segment: ReadSegment;
  torn: { offset: number; bytes: number; problem: string } | null;
  corrupt: Array<BadLine & { savedTo: string }>;
}

/** A path inside the quarantine that does not exist yet (a second repair never overwrites the first's files). */
function freshPath(dir: string, name: string, taken: Set<string> = new Set()): string {
  let candidate = path.join(dir, name);
  for (let n = 1; fs.existsSync(candidate) || taken.has(candidate); n += 1) candidate = path.join(dir, `${name}.${n}`);
  taken.add(candidate);
  return candidate;
}

/** Writes a file and fsyncs it (the copy must be durable before the original changes). */
function writeDurable(file: string, data: Buffer | string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces a file atomically: temp file, fsync, rename, directory fsync. */
function replaceDurable(file: string, data: Buffer | string): void {
  const temp = `${file}.repair-tmp`;
  writeDurable(temp, data);
  fs.renameSync(temp, file);
  fsyncDir(path.dirname(file));
}

/**
 * Repairs a log so that recovery accepts it, saying exactly what it changes. A torn tail
 * of the last segment is cut (its bytes saved to `wal/quarantine/<segment>.<offset>.torn`).
 * With `quarantineCorrupt`, each corrupt line is moved to `wal/quarantine/` (the whole
 * original segment is kept there as a backup), the segment is rewritten without it, and the
 * seqs the removal leaves missing are recorded in `wal/quarantine/skipped-seqs.json`, which
 * recovery honours; seqs are ids and are never renumbered. It does not touch the index.
 */
export function repairDataDir(walDir: string, options: { quarantineCorrupt: boolean; dryRun: boolean; progress?: boolean }): Omit<RepairReport, 'dataDir'> {
  const segments = logSegments(walDir);
  const skipped = logSkippedSeqs(walDir);
  const quarantineDir = path.join(walDir, 'quarantine');
  const actions: RepairAction[] = [];
  const remaining: RepairRemaining[] = [];
  const plans: SegmentPlan[] = [];
  const newRanges: SkippedSeqRange[] = [];
  const now = new Date().toISOString();
  const progress = startProgress(options.progress === true, 'repair', segmentsBytes(segments), 'bytes');

  // Plan: what is torn, what is corrupt, and which seqs the corrupt lines leave missing.
  let expected: number | null = null;
  let removedSince: Array<BadLine & { savedTo: string }> = [];
  let removedFile = '';
  const noteGap = (from: number, to: number, file: string, offset: number | null): void => {
    if (to < from || skipped.covers(from, to)) return;
    const quarantined = removedSince.length > 0;
    newRanges.push({
      from,
      to,
      segment: path.basename(quarantined ? removedFile : file),
      reason: quarantined ? `quarantined ${removedSince.map((b) => b.problem).join(', ')} line(s)` : 'missing from the log (no bytes left to quarantine)',
      savedTo: quarantined ? removedSince.map((b) => b.savedTo).join(', ') : null,
      at: now,
    });
    if (!quarantined && !options.quarantineCorrupt) {
      remaining.push({ kind: 'seq_gap', file, offset, detail: `seqs ${from}..${to} are missing; rerun with --quarantine-corrupt to record them as skipped` });
    }
  };
  const takenPaths = new Set<string>();
  for (const segment of readSegments(segments)) {
    const { scan, info, isLast } = segment;
    const plan: SegmentPlan = { segment, torn: null, corrupt: corruptLines(segment).map((bad) => ({ ...bad, savedTo: '' })) };
    for (const bad of plan.corrupt) {
      bad.savedTo = freshPath(quarantineDir, `${info.name}.${bad.offset}.${bad.problem}`, takenPaths);
    }
    if (isLast && scan.validBytes < scan.totalBytes) {
      const firstTorn = scan.badLines.find((bad) => bad.offset >= scan.validBytes)!;
      plan.torn = { offset: scan.validBytes, bytes: scan.totalBytes - scan.validBytes, problem: firstTorn.problem };
    }
    plans.push(plan);
    // A segment is named for its first seq: anything between the previous record and it is a gap.
    if (expected !== null && info.firstSeq > expected) {
      noteGap(expected, info.firstSeq - 1, info.path, null);
      removedSince = [];
    }
    if (expected === null || info.firstSeq > expected) expected = info.firstSeq;
    let badIndex = 0;
    for (const record of scan.records) {
      while (badIndex < plan.corrupt.length && plan.corrupt[badIndex]!.offset < record.offset) {
        removedSince.push(plan.corrupt[badIndex]!);
        removedFile = info.path;
        badIndex += 1;
      }
      if (record.seq < expected) {
        remaining.push({ kind: 'seq_order', file: info.path, offset: record.offset, detail: `seq ${record.seq} where seq ${expected} or later was expected: repair cannot reorder the log; restore the segment from a backup` });
      } else if (record.seq > expected) {
        noteGap(expected, record.seq - 1, info.path, record.offset);
      }
      removedSince = [];
      expected = Math.max(expected, record.seq + 1);
    }
    for (; badIndex < plan.corrupt.length; badIndex += 1) {
      removedSince.push(plan.corrupt[badIndex]!);
      removedFile = info.path;
    }
    for (const bad of plan.corrupt) {
      if (!options.quarantineCorrupt) {
        remaining.push({ kind: bad.problem, file: info.path, offset: bad.offset, detail: `corrupt ${bad.length}-byte line (${bad.problem}); rerun with --quarantine-corrupt to move it to wal/quarantine/` });
      }
    }
    progress.increment(scan.totalBytes);
  }
  progress.stop();
  const mayChange = !options.dryRun;
  if (mayChange) fs.mkdirSync(quarantineDir, { recursive: true });

  // Record the skipped seqs first: a crash before the rewrite leaves a log repair can finish.
  if (options.quarantineCorrupt && newRanges.length > 0) {
    const file = skippedSeqsPath(walDir);
    for (const range of newRanges) {
      actions.push({ action: 'record_skipped_seqs', file, from: range.from, to: range.to, detail: `seqs ${range.from}..${range.to} recorded as skipped (${range.reason}); they are never reused` });
    }
    if (mayChange) replaceDurable(file, `${JSON.stringify({ skipped: [...skipped.ranges, ...newRanges] }, null, 2)}\n`);
  }

  for (const plan of plans) {
    const { info, bytes, scan } = plan.segment;
    const rewrite = options.quarantineCorrupt && plan.corrupt.length > 0;
    if (plan.torn !== null) {
      const savedTo = freshPath(quarantineDir, `${info.name}.${plan.torn.offset}.torn`);
      actions.push({
        action: 'cut_torn_tail',
        file: info.path,
        offset: plan.torn.offset,
        bytes: plan.torn.bytes,
        problem: plan.torn.problem,
        savedTo,
        detail: `cut ${plan.torn.bytes} torn bytes (${plan.torn.problem}) at byte offset ${plan.torn.offset}`,
      });
      if (mayChange) {
        writeDurable(savedTo, bytes.subarray(plan.torn.offset));
        fsyncDir(quarantineDir);
        if (!rewrite) {
          const fd = fs.openSync(info.path, 'r+');
          try {
            fs.ftruncateSync(fd, plan.torn.offset);
            fs.fsyncSync(fd);
          } finally {
            fs.closeSync(fd);
          }
        }
      }
    }
    if (!rewrite) continue;
    for (const bad of plan.corrupt) {
      const savedTo = bad.savedTo;
      actions.push({ action: 'quarantine_line', file: info.path, offset: bad.offset, bytes: bad.length, problem: bad.problem, savedTo, detail: `moved a ${bad.length}-byte ${bad.problem} line at byte offset ${bad.offset} out of the log` });
      if (mayChange) writeDurable(savedTo, bytes.subarray(bad.offset, bad.offset + bad.length));
    }
    const backup = freshPath(quarantineDir, `${info.name}.${now.replace(/[:.]/g, '-')}.orig`);
    const kept = Buffer.concat(scan.records.map((r) => bytes.subarray(r.offset, r.offset + r.length)));
    actions.push({ action: 'rewrite_segment', file: info.path, bytes: kept.length, backup, detail: `rewrote the segment with its ${scan.records.length} valid records (${bytes.length} -> ${kept.length} bytes); original kept as backup` });
    if (mayChange) {
      writeDurable(backup, bytes);
      fsyncDir(quarantineDir);
      replaceDurable(info.path, kept);
    }
  }
  return { dryRun: options.dryRun, actions, remaining, ok: remaining.length === 0 };
}

function printHuman(report: RepairReport): void {
  const out: string[] = [`repair ${report.dataDir}${report.dryRun ? ' (dry run: nothing changed)' : ''}`];
  if (report.actions.length === 0 && report.remaining.length === 0) out.push('  nothing to repair: the log is clean; nothing changed');
  for (const a of report.actions) {
    const where = a.offset !== undefined ? `${a.file} @${a.offset}` : a.file;
    const extra = a.savedTo !== undefined ? ` -> saved to ${a.savedTo}` : a.backup !== undefined ? ` -> backup ${a.backup}` : '';
    out.push(`  ${report.dryRun ? 'would ' : ''}${a.action}: ${where}: ${a.detail}${extra}`);
  }
  for (const r of report.remaining) out.push(`  NOT REPAIRED ${r.kind}: ${r.file}${r.offset !== null ? ` @${r.offset}` : ''}: ${r.detail}`);
  if (report.actions.length > 0 && !report.dryRun) out.push('  the index was not changed; run `logagg verify` (and `logagg rebuild` if it disagrees)');
  out.push(report.ok ? 'ok' : `${report.remaining.length} problem(s) left`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `logagg repair`: cut a torn tail; with --quarantine-corrupt, move corrupt records out. */
export const repairCommand: Command = {
  name: 'repair',
  help: `Usage: logagg repair [--data-dir DIR] [--quarantine-corrupt] [--dry-run] [--json]

Stop the server first: repair rewrites log files the server holds open.

Always: cuts a torn tail off the last segment (what a restart would do), saving the cut bytes
to DATA_DIR/wal/quarantine/<segment>.<offset>.torn.
With --quarantine-corrupt: moves each corrupt line (bad checksum or framing in the middle of
the log) to DATA_DIR/wal/quarantine/<segment>.<offset>.<problem>, keeps the whole original
segment as DATA_DIR/wal/quarantine/<segment>.<time>.orig, rewrites the segment without the
line, and records the seqs it leaves missing in DATA_DIR/wal/quarantine/skipped-seqs.json
(recovery accepts exactly those gaps; seqs are never renumbered or reused). Records that
vanished entirely (a seq gap with no bytes) are recorded the same way.
Every change is printed. Exit 0 when the log is clean afterwards, 1 when problems are left.

Options:
  --quarantine-corrupt   move corrupt records out of the log (see above)
  --dry-run              print what would change, change nothing

Examples:
  npx logagg repair --data-dir ./data --dry-run
  npx logagg repair --data-dir ./data --quarantine-corrupt`,
  options: { 'quarantine-corrupt': { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  async run(context) {
    const paths = dataPaths(context);
    if (!fs.existsSync(paths.walDir)) throw new UsageError(`no log at ${paths.walDir}`);
    const dryRun = context.values['dry-run'] === true;
    const release = dryRun ? () => undefined : lockDataDir(paths.dataDir, 'repair');
    try {
      const result = repairDataDir(paths.walDir, { quarantineCorrupt: context.values['quarantine-corrupt'] === true, dryRun, progress: context.progress });
      const report: RepairReport = { dataDir: paths.dataDir, ...result };
      if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printHuman(report);
      return report.ok ? EXIT_OK : EXIT_PROBLEM;
    } finally {
      release();
    }
  },
};
