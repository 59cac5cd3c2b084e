import fs from 'node:fs';
import { repairLog, type RepairChange } from '../wal/repair';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, UsageError } from './args';
import { logSegments, segmentsBytes } from './log-files';
import { lockDataDir } from '../data-dir-lock';
import { startProgress } from './progress';

/** One change repair made (or, with --dry-run, would make): repairLog's change, with a sentence. */
export interface RepairAction extends RepairChange {
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

/** Lists seqs compactly: `2`, `2..4`, `2..4, 9`. */
function seqList(seqs: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seqs.length;) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j += 1;
    parts.push(i === j ? `${seqs[i]}` : `${seqs[i]}..${seqs[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** The sentence the human output prints for a change. */
function describe(change: RepairChange): string {
  const tombstones = `tombstone(s) written for seq(s) ${seqList(change.seqsTombstoned)}`;
  if (change.kind === 'torn_tail_cut') return `cut ${change.bytesRemoved} torn bytes at byte offset ${change.offset}`;
  if (change.kind === 'missing_tombstoned')
    return `seqs missing from the log (no bytes left to quarantine): ${tombstones}; segment rewritten`;
  return `moved ${change.bytesRemoved} corrupt bytes from byte offset ${change.offset} out of the log; ${tombstones}; segment rewritten, original kept as backup`;
}

/**
 * Repairs a log so that recovery accepts it, through `repairLog`: a torn tail of the last
 * segment is cut (bytes saved to `wal/quarantine/`); with `quarantineCorrupt`, corrupt
 * lines are moved to `wal/quarantine/` and every seq they held, or that is missing from
 * the log, gets a tombstone record, so seqs stay continuous and are never reused.
 */
export function repairDataDir(
  walDir: string,
  options: { quarantineCorrupt: boolean; dryRun: boolean; progress?: boolean },
): Omit<RepairReport, 'dataDir'> {
  const progress = startProgress(options.progress === true, 'repair', segmentsBytes(logSegments(walDir)), 'bytes');
  const result = repairLog({
    walDir,
    quarantineCorrupt: options.quarantineCorrupt,
    dryRun: options.dryRun,
    onSegmentChecked: (bytes) => progress.increment(bytes),
  });
  progress.stop();
  const actions = result.changes.map((change) => ({ ...change, detail: describe(change) }));
  const remaining = result.remaining.map((problem) => {
    const hint =
      problem.problem === 'seq_order'
        ? ''
        : options.quarantineCorrupt
          ? ''
          : problem.problem === 'seq_gap'
            ? '; rerun with --quarantine-corrupt to fill the missing seqs with tombstones'
            : '; rerun with --quarantine-corrupt to move it to wal/quarantine/';
    return { kind: problem.problem, file: problem.file, offset: problem.offset, detail: `${problem.detail}${hint}` };
  });
  return { dryRun: options.dryRun, actions, remaining, ok: remaining.length === 0 };
}

function printHuman(report: RepairReport): void {
  const out: string[] = [`repair ${report.dataDir}${report.dryRun ? ' (dry run: nothing changed)' : ''}`];
  if (report.actions.length === 0 && report.remaining.length === 0) out.push('  nothing to repair: the log is clean; nothing changed');
  for (const a of report.actions) {
    const saved = a.savedTo.length > 0 ? ` -> saved to ${a.savedTo.join(', ')}` : '';
    const backup = a.backupOf !== null ? ` -> backup ${a.backupOf}` : '';
    out.push(`  ${report.dryRun ? 'would ' : ''}${a.kind}: ${a.file} @${a.offset}: ${a.detail}${saved}${backup}`);
  }
  for (const r of report.remaining) out.push(`  NOT REPAIRED ${r.kind}: ${r.file}${r.offset !== null ? ` @${r.offset}` : ''}: ${r.detail}`);
  if (report.actions.length > 0 && !report.dryRun)
    out.push('  the index was not changed; run `logagg verify` (and `logagg rebuild` if it disagrees)');
  out.push(report.ok ? 'ok' : `${report.remaining.length} problem(s) left`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `logagg repair`: cut a torn tail; with --quarantine-corrupt, move corrupt records out. */
export const repairCommand = defineCommand({
  name: 'repair',
  usage: ['logagg repair [--data-dir DIR] [--quarantine-corrupt] [--dry-run] [--json]'],
  description: `Stop the server first: repair rewrites log files the server holds open.

Always: cuts a torn tail off the last segment (what a restart would do), saving the cut bytes
to DATA_DIR/wal/quarantine/<segment>.<offset>.torn.
With --quarantine-corrupt: keeps the whole original segment as
DATA_DIR/wal/quarantine/<segment>.original, moves each run of corrupt lines (bad checksum or
framing in the middle of the log) to DATA_DIR/wal/quarantine/<segment>.<offset>.corrupt, and
writes a tombstone record in place of every seq those lines held, so seqs stay continuous
and are never renumbered or reused. Records that vanished entirely (a seq gap with no bytes)
get tombstones the same way. A tombstone is no event: recovery, export, replay, tail and
rebuild skip it.
Every change is printed. Exit 0 when the log is clean afterwards, 1 when problems are left.`,
  examples: ['npx logagg repair --data-dir ./data --dry-run', 'npx logagg repair --data-dir ./data --quarantine-corrupt'],
  options: {
    quarantineCorrupt: { type: 'boolean', description: 'move corrupt records out of the log (see above)' },
    dryRun: { type: 'boolean', description: 'print what would change, change nothing' },
  },
  async run(context) {
    const paths = dataPaths(context);
    if (!fs.existsSync(paths.walDir)) throw new UsageError(`no log at ${paths.walDir}`);
    const { dryRun, quarantineCorrupt } = context.options;
    const release = dryRun ? () => undefined : lockDataDir(paths.dataDir, 'repair');
    try {
      const result = repairDataDir(paths.walDir, { quarantineCorrupt, dryRun, progress: context.progress });
      const report: RepairReport = { dataDir: paths.dataDir, ...result };
      if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printHuman(report);
      return report.ok ? EXIT_OK : EXIT_PROBLEM;
    } finally {
      release();
    }
  },
});
