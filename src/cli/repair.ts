import fs from 'node:fs';
import { IndexStore } from '../index/store';
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
  /**
   * What repair did to the index: a rewritten segment moves the bytes of every later record,
   * so the index forgets its rows from the first rewritten seq on (`invalidatedFromSeq`) and
   * the next start re-indexes them from the log, keeping the dedup keys. Null fields: nothing
   * to do (no rewrite, no index, dry run); `error`: the index could not be changed.
   */
  index: { invalidatedFromSeq: number | null; rowsDropped: number; error?: string };
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
  options: { quarantineCorrupt: boolean; dryRun: boolean; progress?: boolean; databasePath?: string },
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
  const index =
    options.dryRun || options.databasePath === undefined ? noIndexChange() : invalidateIndex(options.databasePath, result.changes);
  return { dryRun: options.dryRun, actions, remaining, index, ok: remaining.length === 0 && index.error === undefined };
}

function noIndexChange(): RepairReport['index'] {
  return { invalidatedFromSeq: null, rowsDropped: 0 };
}

/**
 * Makes the index forget its rows from the first seq of the first segment repair rewrote:
 * their byte positions moved, and a read by an old position would find another line (the
 * reader refuses it, but the event would be unreadable). A cut torn tail moves nothing.
 */
function invalidateIndex(databasePath: string, changes: RepairChange[]): RepairReport['index'] {
  const rewritten = changes.filter((c) => c.kind !== 'torn_tail_cut').map((c) => segmentFirstSeq(c.file));
  if (rewritten.length === 0 || !fs.existsSync(databasePath)) return noIndexChange();
  const fromSeq = Math.min(...rewritten);
  try {
    const store = new IndexStore(databasePath, { loadKeys: false });
    try {
      return { invalidatedFromSeq: fromSeq, rowsDropped: store.invalidateFrom(fromSeq) };
    } finally {
      store.close();
    }
  } catch (err) {
    return { invalidatedFromSeq: null, rowsDropped: 0, error: (err as Error).message };
  }
}

/** The seq a segment file is named for. */
function segmentFirstSeq(file: string): number {
  return Number(/(\d{20})\.ndjson$/.exec(file)?.[1] ?? Number.NaN);
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
  const { index } = report;
  if (index.error !== undefined) {
    out.push(`  NOT DONE: could not update the index (${index.error}); run \`logagg rebuild\` before starting the server`);
  } else if (index.invalidatedFromSeq !== null) {
    out.push(
      `  the index forgot its ${index.rowsDropped} row(s) from seq ${index.invalidatedFromSeq} on (their bytes moved); the next start re-indexes them from the log, keeping the dedup keys`,
    );
  } else if (report.actions.length > 0 && !report.dryRun) {
    out.push('  the index was not changed; run `logagg verify` (and `logagg rebuild` if it disagrees)');
  }
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
      const result = repairDataDir(paths.walDir, {
        quarantineCorrupt,
        dryRun,
        progress: context.progress,
        databasePath: paths.databasePath,
      });
      const report: RepairReport = { dataDir: paths.dataDir, ...result };
      if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printHuman(report);
      return report.ok ? EXIT_OK : EXIT_PROBLEM;
    } finally {
      release();
    }
  },
});
