import fs from 'node:fs';
import { IndexStore } from '../index/store';
import { isTombstoneEventJson, type BadLine, type LocatedRecord } from '../wal/record';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, INDEX_OPTIONS, UsageError } from './args';
import { logSegments, readLog, segmentsBytes } from './log-reader';
import { startProgress } from './progress';

/** One problem found, with the file and byte offset it is at (offset null when it has none). */
export interface VerifyProblem {
  kind: 'torn_tail' | 'bad_frame' | 'bad_crc' | 'bad_json' | 'bad_seq' | 'torn' | 'seq_gap' | 'seq_order' | 'segment_name' | 'index_missing_row' | 'index_extra_row' | 'index_mismatch' | 'index_ahead' | 'index_counter' | 'index_unreadable';
  file: string;
  offset: number | null;
  seq?: number;
  bytes?: number;
  detail: string;
}

/** What verify found in one segment. */
export interface SegmentReport {
  file: string;
  firstSeq: number | null;
  lastSeq: number | null;
  records: number;
  bytes: number;
  problems: VerifyProblem[];
}

/** What verify found in the index, compared with the log. */
export interface IndexReport {
  file: string;
  present: boolean;
  checkpointSeq: number | null;
  rows: number | null;
  uniqueTotal: number | null;
  duplicatesTotal: number | null;
  conflictsTotal: number | null;
  /** Log records after the checkpoint: not indexed yet (a running server or recovery will). */
  notYetIndexed: number;
  problems: VerifyProblem[];
}

/** The whole verify report, as `--json` prints it. */
export interface VerifyReport {
  dataDir: string;
  walDir: string;
  segments: SegmentReport[];
  records: number;
  lastSeq: number;
  /** Tombstones in the log: seqs whose record `repair` quarantined (not a problem). */
  tombstones: number;
  index: IndexReport;
  problems: number;
  ok: boolean;
}

/** Walks index rows in seq order alongside the log, one row at a time. */
class IndexCursor {
  private readonly rows: Iterator<{ seq: number; body: string }>;
  current: { seq: number; body: string } | undefined;

  constructor(store: IndexStore) {
    this.rows = store.db.prepare('SELECT seq, body FROM events ORDER BY seq').iterate() as Iterator<{ seq: number; body: string }>;
    this.advance();
  }

  advance(): void {
    const next = this.rows.next();
    this.current = next.done === true ? undefined : next.value;
  }

  close(): void {
    this.rows.return?.();
  }
}

/**
 * Reads every segment and checks checksums and framing, seq order and continuity (a record
 * `repair` quarantined is a tombstone, so no gap is accepted), the torn tail, and that the index agrees with
 * the log: every record up to the checkpoint indexed with the same body, no row the log
 * lacks, counters equal to the rows. The index is opened read-only inside one read
 * transaction, so a live server is not disturbed (its newest records show as not yet indexed).
 */
export function verifyDataDir(paths: { dataDir: string; walDir: string; databasePath: string }, options: { progress?: boolean } = {}): VerifyReport {
  const segments = logSegments(paths.walDir);
  let tombstones = 0;
  const progress = startProgress(options.progress === true, 'verify', segmentsBytes(segments), 'bytes');
  const index = openIndex(paths.databasePath);
  const segmentReports: SegmentReport[] = [];
  let expected: number | null = null;
  let records = 0;
  let lastSeq = 0;
  // Bad lines after the last record seen (possibly at the end of the previous segment).
  let badPending = false;
  try {
    // The segment being read: its report so far, and the bad lines since its last record.
    let current: { report: SegmentReport; badSinceRecord: BadLine[] } | null = null;
    for (const item of readLog(segments, 1, progress)) {
      const info = item.segment;
      if (current === null) current = { report: { file: info.path, firstSeq: null, lastSeq: null, records: 0, bytes: 0, problems: [] }, badSinceRecord: [] };
      const { report, badSinceRecord } = current;
      const { problems } = report;
      if (item.kind === 'bad_line') {
        badSinceRecord.push(item.line);
        continue;
      }
      if (item.kind === 'record') {
        const { record } = item;
        // Bad lines followed by a record cannot be a torn tail: each is reported.
        for (const bad of badSinceRecord) problems.push(badLineProblem(info.path, bad));
        // A gap right after a bad line is that line's consequence, already reported.
        const badBetween = badPending || badSinceRecord.length > 0;
        badPending = false;
        current.badSinceRecord = [];
        const first = report.firstSeq === null;
        // Seq order and continuity, within the segment and from the previous one.
        if (first) {
          report.firstSeq = record.seq;
          if (record.seq !== info.firstSeq) {
            problems.push({ kind: 'segment_name', file: info.path, offset: record.offset, seq: record.seq, detail: `segment named for seq ${info.firstSeq} starts with seq ${record.seq}` });
          }
        }
        if (expected !== null && record.seq !== expected) {
          if (record.seq < expected) {
            problems.push({ kind: 'seq_order', file: info.path, offset: record.offset, seq: record.seq, detail: `seq ${record.seq} after seq ${expected - 1} (repeated or out of order)` });
          } else if (!badBetween) {
            const detail = first ? `expected seq ${expected}, found ${record.seq} (records or a segment missing before this one)` : `expected seq ${expected}, found ${record.seq}`;
            problems.push({ kind: 'seq_gap', file: info.path, offset: record.offset, seq: record.seq, detail });
          }
        }
        expected = record.seq + 1;
        lastSeq = Math.max(lastSeq, record.seq);
        report.lastSeq = record.seq;
        report.records += 1;
        if (isTombstoneEventJson(record.eventJson)) tombstones += 1;
        if (index.store !== null) compareWithIndex(index, record, info.path);
        continue;
      }
      // The end of the segment: bad lines after its last record are the torn tail of the
      // last segment, corruption in any other.
      const firstTrailing = badSinceRecord[0];
      if (firstTrailing !== undefined && item.isLast) {
        const bytes = item.totalBytes - item.validBytes;
        problems.push({ kind: 'torn_tail', file: info.path, offset: item.validBytes, bytes, detail: `${bytes} bytes after the last valid record (${firstTrailing.problem}); \`logagg repair\` or the next start cuts them` });
      } else if (firstTrailing !== undefined) {
        for (const bad of badSinceRecord) problems.push(badLineProblem(info.path, bad));
        badPending = true;
      }
      report.bytes = item.totalBytes;
      records += report.records;
      segmentReports.push(report);
      current = null;
    }
    finishIndex(index, lastSeq);
  } finally {
    index.cursor?.close();
    if (index.store !== null) {
      if (index.store.db.inTransaction) index.store.db.exec('COMMIT');
      index.store.close();
    }
    progress.stop();
  }
  const problems = segmentReports.reduce((n, s) => n + s.problems.length, 0) + index.report.problems.length;
  return {
    dataDir: paths.dataDir,
    walDir: paths.walDir,
    segments: segmentReports,
    records,
    lastSeq,
    tombstones,
    index: index.report,
    problems,
    ok: problems === 0,
  };
}

/** A bad line that is no torn tail, as verify reports it. */
function badLineProblem(file: string, bad: BadLine): VerifyProblem {
  return { kind: bad.problem, file, offset: bad.offset, bytes: bad.length, detail: `${bad.problem} in a ${bad.length}-byte line` };
}

interface IndexCheck {
  store: IndexStore | null;
  cursor: IndexCursor | null;
  report: IndexReport;
}

function openIndex(databasePath: string): IndexCheck {
  const report: IndexReport = {
    file: databasePath,
    present: fs.existsSync(databasePath),
    checkpointSeq: null,
    rows: null,
    uniqueTotal: null,
    duplicatesTotal: null,
    conflictsTotal: null,
    notYetIndexed: 0,
    problems: [],
  };
  if (!report.present) return { store: null, cursor: null, report };
  let store: IndexStore;
  try {
    store = new IndexStore(databasePath, { readonly: true });
    // One read transaction: counters and rows come from the same snapshot.
    store.db.exec('BEGIN');
    const counters = store.readCounters();
    report.checkpointSeq = counters.checkpointSeq;
    report.uniqueTotal = counters.uniqueTotal;
    report.duplicatesTotal = counters.duplicatesTotal;
    report.conflictsTotal = counters.conflictsTotal;
    report.rows = store.countRows();
  } catch (err) {
    report.problems.push({ kind: 'index_unreadable', file: databasePath, offset: null, detail: `cannot read the index: ${(err as Error).message}; \`logagg rebuild\` makes a new one from the log` });
    return { store: null, cursor: null, report };
  }
  return { store, cursor: new IndexCursor(store), report };
}

function compareWithIndex(index: IndexCheck, record: LocatedRecord, file: string): void {
  const cursor = index.cursor!;
  const report = index.report;
  const checkpoint = report.checkpointSeq ?? 0;
  while (cursor.current !== undefined && cursor.current.seq < record.seq) {
    noteExtraRow(index, cursor.current.seq, file);
    cursor.advance();
  }
  const row = cursor.current;
  if (isTombstoneEventJson(record.eventJson)) {
    // A seq that repair replaced with a tombstone must not be indexed.
    if (row !== undefined && row.seq === record.seq) {
      report.problems.push({ kind: 'index_mismatch', file, offset: record.offset, seq: record.seq, detail: `index holds seq ${record.seq}, which repair replaced with a tombstone; \`logagg rebuild\` drops it` });
      cursor.advance();
    }
    return;
  }
  if (row !== undefined && row.seq === record.seq) {
    if (row.body !== record.eventJson) {
      report.problems.push({ kind: 'index_mismatch', file, offset: record.offset, seq: record.seq, detail: `index row for seq ${record.seq} differs from the logged event` });
    }
    cursor.advance();
    return;
  }
  if (record.seq <= checkpoint) {
    report.problems.push({ kind: 'index_missing_row', file, offset: record.offset, seq: record.seq, detail: `seq ${record.seq} is at or below the checkpoint ${checkpoint} but not in the index` });
  } else {
    report.notYetIndexed += 1;
  }
}

function noteExtraRow(index: IndexCheck, seq: number, file: string): void {
  index.report.problems.push({ kind: 'index_extra_row', file, offset: null, seq, detail: `the index has seq ${seq}, which is not in the log` });
}

function finishIndex(index: IndexCheck, lastSeq: number): void {
  const { report, cursor } = index;
  if (index.store === null || cursor === null) return;
  while (cursor.current !== undefined) {
    noteExtraRow(index, cursor.current.seq, report.file);
    cursor.advance();
  }
  const checkpoint = report.checkpointSeq ?? 0;
  if (checkpoint > lastSeq) {
    report.problems.push({ kind: 'index_ahead', file: report.file, offset: null, seq: checkpoint, detail: `checkpoint ${checkpoint} is past the last logged seq ${lastSeq} (segments missing?)` });
  }
  if (report.rows !== report.uniqueTotal) {
    report.problems.push({ kind: 'index_counter', file: report.file, offset: null, detail: `unique_total is ${report.uniqueTotal} but the index holds ${report.rows} rows` });
  }
}

function printHuman(report: VerifyReport): void {
  const out: string[] = [`verify ${report.dataDir}`];
  for (const segment of report.segments) {
    const seqs = segment.firstSeq === null ? 'no records' : `seq ${segment.firstSeq}..${segment.lastSeq}`;
    const verdict = segment.problems.length === 0 ? 'ok' : `${segment.problems.length} problem(s)`;
    out.push(`  ${segment.file}: ${seqs}, ${segment.records} records, ${segment.bytes} bytes: ${verdict}`);
    for (const p of segment.problems) out.push(`    ${p.kind} at byte offset ${p.offset}: ${p.detail}`);
  }
  if (report.segments.length === 0) out.push(`  no segments in ${report.walDir}`);
  if (report.tombstones > 0) out.push(`  ${report.tombstones} tombstoned seq(s): records quarantined by \`logagg repair\``);
  const index = report.index;
  if (!index.present) {
    out.push(`index ${index.file}: absent (the server builds it from the log on start)`);
  } else if (index.rows !== null) {
    const notes = [`checkpoint ${index.checkpointSeq}`, `${index.rows} rows`, `unique_total ${index.uniqueTotal}`, `duplicates_total ${index.duplicatesTotal}`];
    if (index.notYetIndexed > 0) notes.push(`${index.notYetIndexed} logged records not yet indexed`);
    out.push(`index ${index.file}: ${notes.join(', ')}: ${index.problems.length === 0 ? 'agrees with the log' : `${index.problems.length} problem(s)`}`);
  }
  for (const p of index.problems) out.push(`    ${p.kind}${p.offset !== null ? ` (log ${p.file} at byte offset ${p.offset})` : ''}: ${p.detail}`);
  out.push(report.ok ? `ok: ${report.records} records, last seq ${report.lastSeq}, no problems` : `${report.problems} problem(s) found`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `logagg verify`: read-only check of the log and the index; exit 1 on any problem. */
export const verifyCommand = defineCommand({
  name: 'verify',
  usage: ['logagg verify [--data-dir DIR] [--index FILE] [--json]'],
  description: `Reads every segment of DATA_DIR/wal and reports, per segment, each problem with its file and
byte offset: bad checksum or framing, a torn tail, seq gaps or repeats, a segment named for
another seq. Then compares the index with the log: every record up to the checkpoint indexed
with the same content, no row the log lacks, unique_total equal to the rows. Changes nothing;
safe on a live data dir (the index is opened read-only). Exit 1 when any problem is found.`,
  examples: ['npx logagg verify --data-dir ./data', "npx logagg verify --json | jq '.segments[].problems[]'"],
  options: { ...INDEX_OPTIONS },
  async run(context) {
    const paths = dataPaths(context, context.options.index);
    if (!fs.existsSync(paths.dataDir)) throw new UsageError(`data dir ${paths.dataDir} does not exist`);
    const report = verifyDataDir(paths, { progress: context.progress });
    if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else printHuman(report);
    return report.ok ? EXIT_OK : EXIT_PROBLEM;
  },
});
