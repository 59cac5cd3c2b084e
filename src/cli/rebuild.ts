import fs from 'node:fs';
import path from 'node:path';
import { IndexStore, type IndexRow } from '../index/store';
import { positionOf, rowFromEventJson } from '../wal/event-row';
import { describeBadLine, describeSeqBreak } from '../wal/reader';
import { retainedSegments } from '../wal/retention';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, INDEX_OPTIONS, UsageError } from './args';
import { DISK, logSegments, readRetainedLog, segmentsBytes } from './log-files';
import { INSTANCE_ID_FILE } from '../cluster/instance-id';
import { lockDataDir } from '../data-dir-lock';
import { startProgress } from './progress';

/** Rows per index transaction while rebuilding. */
const REBUILD_BATCH_ROWS = 5000;

/** The outcome of `logagg rebuild`, as `--json` prints it. */
export interface RebuildReport {
  ok: boolean;
  databasePath: string;
  segments: number;
  records: number;
  rows: number;
  checkpointSeq: number;
  /** Lifetime counters the log does not hold, and where they came from. */
  duplicatesTotal: number;
  conflictsTotal: number;
  countersFrom: 'old_index' | 'reset';
  /** Tombstones (records `repair` quarantined) in the log: seqs with no row. */
  tombstones: number;
  tornTailBytesIgnored: number;
  /**
   * Dedup keys of events no longer in the log (deleted by retention: seq below the log's
   * first), copied from the old index; `lost` when it could not be read (re-sends of those
   * events will be accepted again), `none` when the log starts at seq 1.
   */
  oldKeys: { from: 'old_index' | 'lost' | 'none'; copied: number; belowSeq: number; error?: string };
  keptOld: string | null;
  elapsedMs: number;
  error?: string;
}

function fsyncPath(file: string, flags = 'r'): void {
  const fd = fs.openSync(file, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function removeIndexFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(`${file}${suffix}`, { force: true });
}

/**
 * Reads duplicates_total and conflicts_total from the old index, or null when it cannot be
 * read. It opens it read-write (the server is stopped) so that SQLite can apply a WAL left by a crash.
 */
/**
 * Copies the keys of events the log no longer holds (seq below its first, or every key of an
 * empty log) from the old index into the new one, so rebuild keeps the dedup horizon.
 */
function copyOldKeys(store: IndexStore, databasePath: string, firstLogSeq: number | null): RebuildReport['oldKeys'] {
  const belowSeq = firstLogSeq ?? Number.MAX_SAFE_INTEGER;
  if (!fs.existsSync(databasePath)) return { from: belowSeq > 1 ? 'lost' : 'none', copied: 0, belowSeq, error: 'no old index' };
  try {
    return { from: belowSeq > 1 ? 'old_index' : 'none', copied: store.copyKeysFrom(databasePath, belowSeq), belowSeq };
  } catch (err) {
    return { from: belowSeq > 1 ? 'lost' : 'none', copied: 0, belowSeq, error: (err as Error).message };
  }
}

function oldCounters(databasePath: string): { duplicatesTotal: number; conflictsTotal: number } | null {
  if (!fs.existsSync(databasePath)) return null;
  try {
    const old = new IndexStore(databasePath, { loadKeys: false });
    try {
      const counters = old.readCounters();
      return { duplicatesTotal: counters.duplicatesTotal, conflictsTotal: counters.conflictsTotal };
    } finally {
      old.close();
    }
  } catch {
    return null;
  }
}

/**
 * Builds a new index from the log alone next to the old one (`<index>.rebuild`), then
 * renames it into place: a crash at any point leaves either the old or the new index, both
 * consistent. It refuses a log with corruption (run verify/repair first) and ignores, without
 * cutting, a torn tail. duplicates_total and conflicts_total are not in the log: they are
 * kept from the old index when it can be read, else reset to 0. The server must be stopped.
 */
export function rebuildIndex(
  paths: { walDir: string; databasePath: string },
  options: { keepOld: boolean; progress?: boolean },
): RebuildReport {
  const started = performance.now();
  const segments = logSegments(paths.walDir);
  const counters = oldCounters(paths.databasePath);
  const temp = `${paths.databasePath}.rebuild`;
  removeIndexFiles(temp);
  const report: RebuildReport = {
    ok: false,
    databasePath: paths.databasePath,
    segments: segments.length,
    records: 0,
    rows: 0,
    checkpointSeq: 0,
    duplicatesTotal: counters?.duplicatesTotal ?? 0,
    conflictsTotal: counters?.conflictsTotal ?? 0,
    countersFrom: counters === null ? 'reset' : 'old_index',
    tombstones: 0,
    tornTailBytesIgnored: 0,
    oldKeys: { from: 'none', copied: 0, belowSeq: 1 },
    keptOld: null,
    elapsedMs: 0,
  };
  const progress = startProgress(options.progress === true, 'rebuild', segmentsBytes(segments), 'bytes');
  const store = new IndexStore(temp);
  let firstLogSeq: number | null = null;
  try {
    let rows: IndexRow[] = [];
    const corrupt = (file: string, offset: number, detail: string): Error =>
      new Error(`${file}: corrupt record at byte offset ${offset}: ${detail}; run \`logagg verify\` and \`logagg repair\` first`);
    // Policy: the rules recovery applies; refuse at the first corruption or seq break, ignore
    // (without cutting) a torn tail, index records, count tombstones.
    for (const item of readRetainedLog(paths.walDir, { onBytesRead: (bytes) => progress.update(bytes) })) {
      if (item.kind === 'corruption') throw corrupt(item.segment.path, item.offset, describeBadLine(item));
      if (item.kind === 'seq_break') throw corrupt(item.segment.path, item.offset, describeSeqBreak(item));
      if (item.kind === 'torn_tail') report.tornTailBytesIgnored = item.bytes;
      if ((item.kind === 'record' || item.kind === 'tombstone') && firstLogSeq === null) firstLogSeq = item.seq;
      if (item.kind === 'tombstone') {
        // A repair tombstone keeps the seqs continuous; it is not an event.
        report.records += 1;
        report.tombstones += 1;
      }
      if (item.kind === 'record') {
        report.records += 1;
        rows.push(rowFromEventJson(item.seq, item.eventJson, item.receivedAtMs, positionOf(item)));
      }
      if (rows.length >= REBUILD_BATCH_ROWS || (item.kind === 'segment_end' && rows.length > 0)) {
        report.rows += store.applyBatch(rows);
        rows = [];
        // Merge full key generations as the server would, so lookups stay a few seeks.
        while (store.keyMaintenanceStep() !== null);
      }
    }
    report.oldKeys = copyOldKeys(store, paths.databasePath, firstLogSeq);
    // The counters the log cannot give, committed like any batch.
    store.applyBatch([], report.duplicatesTotal, report.conflictsTotal);
    report.checkpointSeq = store.counters.checkpointSeq;
    // A log that retention cut starts after seq 1: the new index says so (first_seq, a deletion row).
    const { firstSeq } = retainedSegments(DISK, paths.walDir);
    if (firstSeq > 1 && store.counters.checkpointSeq >= firstSeq - 1) store.dropThrough(firstSeq - 1, Date.now());
  } catch (err) {
    store.close();
    removeIndexFiles(temp);
    progress.stop();
    report.error = (err as Error).message;
    report.elapsedMs = Math.round(performance.now() - started);
    return report;
  }
  // Closing the last connection checkpoints SQLite's WAL into the file: the file is complete.
  store.close();
  fsyncPath(temp);
  progress.stop();

  // Swap: the old index's -wal/-shm must go before the new file takes its name, or SQLite
  // would apply the old WAL to the new file.
  if (options.keepOld && fs.existsSync(paths.databasePath)) {
    report.keptOld = `${paths.databasePath}.old-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    fs.copyFileSync(paths.databasePath, report.keptOld);
    if (fs.existsSync(`${paths.databasePath}-wal`)) fs.copyFileSync(`${paths.databasePath}-wal`, `${report.keptOld}-wal`);
  }
  for (const suffix of ['-wal', '-shm', '-journal']) fs.rmSync(`${paths.databasePath}${suffix}`, { force: true });
  fs.renameSync(temp, paths.databasePath);
  fsyncPath(path.dirname(paths.databasePath));
  report.ok = true;
  report.elapsedMs = Math.round(performance.now() - started);
  return report;
}

/** `logagg rebuild`: a new SQLite index from the log alone. */
export const rebuildCommand = defineCommand({
  name: 'rebuild',
  usage: ['logagg rebuild [--data-dir DIR] [--index FILE] [--keep-old] [--json]'],
  description: `Stop the server first: rebuild replaces the index file the server holds open.

Reads every segment of DATA_DIR/wal, builds a new index in <index>.rebuild, then renames it
over the old one (a crash leaves either the old or the new index, never a mix). The new index
answers every query as one built by the server would: same events, same seqs, same topics,
checkpoint = last logged seq. duplicates_total and conflicts_total are not in the log: they are
kept from the old index when it can be read, else reset to 0 (the output says which).
So are the dedup keys of events retention deleted (seq below the log's first): without a
readable old index they are lost, and the output says so.
A corrupt log is refused (run \`logagg repair\` first); a torn tail is ignored, not cut.
Records quarantined by \`logagg repair\` are not in the new index.
Refused in a cluster instance's data dir: its index is the shared PostgreSQL (see verify --database-url).`,
  examples: ['npx logagg rebuild --data-dir ./data', 'npx logagg rebuild --data-dir ./data --keep-old --json'],
  options: { ...INDEX_OPTIONS, keepOld: { type: 'boolean', description: 'keep a copy of the old index as <index>.old-<time>' } },
  async run(context) {
    const paths = dataPaths(context, context.options.index);
    if (!fs.existsSync(paths.walDir)) throw new UsageError(`no log at ${paths.walDir}`);
    // A cluster instance's index is the shared database, which holds every instance's events:
    // one instance's log cannot rebuild it, and a SQLite index beside it would serve nothing.
    if (fs.existsSync(path.join(paths.dataDir, INSTANCE_ID_FILE)) || (context.env.DATABASE_URL ?? '').trim() !== '') {
      throw new Error(
        `${paths.dataDir} is a cluster instance's data dir (DATA_DIR/${INSTANCE_ID_FILE}, or DATABASE_URL set): its index is the shared PostgreSQL, ` +
          'which one log cannot rebuild; compare the log with it with `logagg verify --database-url URL`',
      );
    }
    const release = lockDataDir(paths.dataDir, 'rebuild');
    try {
      const report = rebuildIndex(paths, { keepOld: context.options.keepOld, progress: context.progress });
      if (context.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else if (!report.ok) {
        process.stdout.write(`rebuild failed, old index left as it was: ${report.error}\n`);
      } else {
        const lines = [
          `rebuilt ${report.databasePath} from ${report.segments} segment(s) in ${report.elapsedMs} ms`,
          `  ${report.records} logged records -> ${report.rows} rows, checkpoint seq ${report.checkpointSeq}`,
          report.countersFrom === 'old_index'
            ? `  duplicates_total ${report.duplicatesTotal} and conflicts_total ${report.conflictsTotal} kept from the old index (the log does not hold them)`
            : '  duplicates_total and conflicts_total reset to 0: no readable old index (the log does not hold them)',
        ];
        if (report.oldKeys.from === 'old_index')
          lines.push(
            `  ${report.oldKeys.copied} dedup key(s) of events before seq ${report.oldKeys.belowSeq} (no longer in the log) kept from the old index`,
          );
        if (report.oldKeys.from === 'lost')
          lines.push(
            `  WARNING: the dedup keys of events before seq ${report.oldKeys.belowSeq} (deleted from the log) are lost: the old index could not be read (${report.oldKeys.error ?? 'unknown'}); re-sends of those events will be accepted as new`,
          );
        if (report.tombstones > 0)
          lines.push(`  ${report.tombstones} tombstoned seq(s) (records quarantined by \`logagg repair\`) are not in the new index`);
        if (report.tornTailBytesIgnored > 0)
          lines.push(`  ${report.tornTailBytesIgnored} torn tail bytes ignored (not cut; \`logagg repair\` or the next start cuts them)`);
        if (report.keptOld !== null) lines.push(`  old index kept as ${report.keptOld}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      return report.ok ? EXIT_OK : EXIT_PROBLEM;
    } finally {
      release();
    }
  },
});
