import fs from 'node:fs';
import { IndexStore } from '../index/store';
import { describeBadLine, readSegments, type LogItem, type ReadRecord } from '../wal/reader';
import type { LogPosition } from '../wal/event-row';
import { segmentName } from '../wal/segments';
import { retainedSegments, type RetainedLog } from '../wal/retention';
import { isTombstoneEventJson } from '../wal/record';
import { dataPaths, defineCommand, EXIT_OK, EXIT_PROBLEM, INDEX_OPTIONS, UsageError } from './args';
import { DISK, segmentsBytes } from './log-files';
import { startProgress, type Progress } from './progress';
import { printClusterHuman, verifyClusterDataDir } from './verify-cluster';

/** One problem found, with the file and byte offset it is at (offset null when it has none). */
export interface VerifyProblem {
  kind:
    | 'torn_tail'
    | 'bad_frame'
    | 'bad_crc'
    | 'bad_json'
    | 'bad_seq'
    | 'torn'
    | 'seq_gap'
    | 'seq_order'
    | 'segment_name'
    | 'index_missing_row'
    | 'index_extra_row'
    | 'index_mismatch'
    | 'index_ahead'
    | 'index_counter'
    | 'index_unreadable';
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
  /** The index's first_seq and expired_events (retention); null when unread. */
  firstSeq: number | null;
  expiredEvents: number | null;
  /** Log records after the checkpoint: not indexed yet (a running server or recovery will). */
  notYetIndexed: number;
  problems: VerifyProblem[];
}

/** The whole verify report, as `--json` prints it. */
export interface VerifyReport {
  dataDir: string;
  walDir: string;
  segments: SegmentReport[];
  /** The seq the log must start with: 1, or the first seq the retention marker (`wal/RETAINED`) names. */
  firstSeq: number;
  /** Segments wholly below firstSeq: retention deleted them and the next start unlinks them (not a problem). */
  expiredSegments: string[];
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
  private readonly rows: Iterator<{ seq: number; position: LogPosition }>;
  current: { seq: number; position: LogPosition } | undefined;

  constructor(store: IndexStore) {
    this.rows = store.rowsInSeqOrder();
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
export function verifyDataDir(
  paths: { dataDir: string; walDir: string; databasePath: string },
  options: { progress?: boolean } = {},
): VerifyReport {
  // A log that starts after seq 1 is fine where the retention marker says so; a gap without one is reported.
  const retained = retainedSegments(DISK, paths.walDir);
  const progress = startProgress(options.progress === true, 'verify', segmentsBytes(retained.segments), 'bytes');
  const index = openIndex(paths.databasePath);
  let log: LogCheck;
  try {
    // One read transaction: counters, rows and their comparison with the log come from the same snapshot.
    log =
      index.opened === null
        ? checkLog(retained, index, progress)
        : index.opened.withSnapshot(() => {
            readIndexHeader(index);
            try {
              return checkLog(retained, index, progress);
            } finally {
              index.cursor?.close();
            }
          });
  } finally {
    index.opened?.close();
    progress.stop();
  }
  const problems = log.segments.reduce((n, s) => n + s.problems.length, 0) + index.report.problems.length;
  return {
    dataDir: paths.dataDir,
    walDir: paths.walDir,
    segments: log.segments,
    firstSeq: retained.firstSeq,
    expiredSegments: retained.expired.map((segment) => segment.path),
    records: log.records,
    lastSeq: log.lastSeq,
    tombstones: log.tombstones,
    index: index.report,
    problems,
    ok: problems === 0,
  };
}

/**
 * Verify's log checks alone (no index): every segment's problems, records and last seq. The
 * cluster verify (verify-cluster.ts) compares the log with PostgreSQL after it.
 */
export function checkLogOnly(retained: RetainedLog, progress: Progress): LogCheck {
  return checkLog(retained, openIndex(''), progress);
}

/** What verify found in the log itself. */
export interface LogCheck {
  segments: SegmentReport[];
  records: number;
  lastSeq: number;
  tombstones: number;
}

/**
 * Verify's policy over the one log reader: report every corruption, seq break and torn tail
 * and go on; compare each record with the index as it comes.
 */
function checkLog(retained: RetainedLog, index: IndexCheck, progress: Progress): LogCheck {
  const check: LogCheck = { segments: [], records: 0, lastSeq: 0, tombstones: 0 };
  // The report of the segment being read.
  let report: SegmentReport | null = null;
  const reading = readSegments(DISK, retained.segments, {
    expectedFirstSeq: retained.firstSeq,
    onBytesRead: (bytes) => progress.update(bytes),
  });
  for (const item of reading) {
    const file = item.segment.path;
    report ??= { file, firstSeq: null, lastSeq: null, records: 0, bytes: 0, problems: [] };
    const { problems } = report;
    switch (item.kind) {
      case 'corruption':
        problems.push({ kind: item.problem, file, offset: item.offset, bytes: item.bytes, detail: describeBadLine(item) });
        break;
      case 'seq_break':
        problems.push({ kind: item.problem, file, offset: item.offset, seq: item.seq, detail: seqBreakDetail(item) });
        break;
      case 'torn_tail':
        problems.push({
          kind: 'torn_tail',
          file,
          offset: item.offset,
          bytes: item.bytes,
          detail: `${item.bytes} bytes after the last valid record (${item.problem}); \`logagg repair\` or the next start cuts them`,
        });
        break;
      case 'record':
      case 'tombstone':
        report.firstSeq ??= item.seq;
        report.lastSeq = item.seq;
        report.records += 1;
        check.lastSeq = Math.max(check.lastSeq, item.seq);
        if (item.kind === 'tombstone') check.tombstones += 1;
        if (index.store !== null) compareWithIndex(index, item);
        break;
      case 'segment_end':
        report.bytes = item.totalBytes;
        check.records += report.records;
        check.segments.push(report);
        report = null;
        break;
    }
  }
  finishIndex(index, check.lastSeq);
  return check;
}

/** How verify words a seq break in its report. */
function seqBreakDetail(item: Extract<LogItem, { kind: 'seq_break' }>): string {
  if (item.problem === 'segment_name') return `segment named for seq ${item.expected} starts with seq ${item.seq}`;
  if (item.problem === 'seq_order') return `seq ${item.seq} after seq ${item.expected - 1} (repeated or out of order)`;
  if (item.atSegmentStart) return `expected seq ${item.expected}, found ${item.seq} (records or a segment missing before this one)`;
  return `expected seq ${item.expected}, found ${item.seq}`;
}

interface IndexCheck {
  /** The index as opened (closed at the end), null when absent or unopenable. */
  opened: IndexStore | null;
  /** The index to compare with, null when absent or unreadable. */
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
    firstSeq: null,
    expiredEvents: null,
    notYetIndexed: 0,
    problems: [],
  };
  const index: IndexCheck = { opened: null, store: null, cursor: null, report };
  if (!report.present) return index;
  try {
    index.opened = new IndexStore(databasePath, { readonly: true });
  } catch (err) {
    noteUnreadable(index, err);
  }
  return index;
}

/** Reads the counters and row count (inside the snapshot) and opens the row cursor. */
function readIndexHeader(index: IndexCheck): void {
  const { report } = index;
  const store = index.opened!;
  try {
    const counters = store.readCounters();
    report.checkpointSeq = counters.checkpointSeq;
    report.uniqueTotal = counters.uniqueTotal;
    report.duplicatesTotal = counters.duplicatesTotal;
    report.conflictsTotal = counters.conflictsTotal;
    const retained = store.readRetention();
    report.firstSeq = retained.firstSeq;
    report.expiredEvents = retained.expiredTotal;
    report.rows = store.countRows();
  } catch (err) {
    noteUnreadable(index, err);
    return;
  }
  index.store = store;
  index.cursor = new IndexCursor(store);
}

function noteUnreadable(index: IndexCheck, err: unknown): void {
  index.report.problems.push({
    kind: 'index_unreadable',
    file: index.report.file,
    offset: null,
    detail: `cannot read the index: ${(err as Error).message}; \`logagg rebuild\` makes a new one from the log`,
  });
}

function compareWithIndex(index: IndexCheck, record: ReadRecord): void {
  const file = record.segment.path;
  const cursor = index.cursor!;
  const report = index.report;
  const checkpoint = report.checkpointSeq ?? 0;
  while (cursor.current !== undefined && cursor.current.seq < record.seq) {
    noteExtraRow(index, cursor.current.seq, file);
    cursor.advance();
  }
  const row = cursor.current;
  // Retention dropped the rows below the index's first_seq before unlinking their segment.
  if (record.seq < (report.firstSeq ?? 1)) return;
  if (isTombstoneEventJson(record.eventJson)) {
    // A seq that repair replaced with a tombstone must not be indexed.
    if (row?.seq === record.seq) {
      report.problems.push({
        kind: 'index_mismatch',
        file,
        offset: record.offset,
        seq: record.seq,
        detail: `index holds seq ${record.seq}, which repair replaced with a tombstone; \`logagg rebuild\` drops it`,
      });
      cursor.advance();
    }
    return;
  }
  if (row?.seq === record.seq) {
    // The index keeps where the record lies, not its JSON: the two must name the same line.
    const { position } = row;
    if (position.segment !== record.segment.firstSeq || position.offset !== record.offset || position.length !== record.length) {
      report.problems.push({
        kind: 'index_mismatch',
        file,
        offset: record.offset,
        seq: record.seq,
        detail: `index row for seq ${record.seq} points at ${segmentName(position.segment)} offset ${position.offset} (${position.length} bytes), not at the logged record`,
      });
    }
    cursor.advance();
    return;
  }
  if (record.seq <= checkpoint) {
    report.problems.push({
      kind: 'index_missing_row',
      file,
      offset: record.offset,
      seq: record.seq,
      detail: `seq ${record.seq} is at or below the checkpoint ${checkpoint} but not in the index`,
    });
  } else {
    report.notYetIndexed += 1;
  }
}

function noteExtraRow(index: IndexCheck, seq: number, file: string): void {
  index.report.problems.push({
    kind: 'index_extra_row',
    file,
    offset: null,
    seq,
    detail: `the index has seq ${seq}, which is not in the log`,
  });
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
    report.problems.push({
      kind: 'index_ahead',
      file: report.file,
      offset: null,
      seq: checkpoint,
      detail: `checkpoint ${checkpoint} is past the last logged seq ${lastSeq} (segments missing?)`,
    });
  }
  // Rows retention deleted still count in the lifetime unique_total.
  const expired = report.expiredEvents ?? 0;
  if (report.rows !== null && report.rows + expired !== report.uniqueTotal) {
    report.problems.push({
      kind: 'index_counter',
      file: report.file,
      offset: null,
      detail:
        expired === 0
          ? `unique_total is ${report.uniqueTotal} but the index holds ${report.rows} rows`
          : `unique_total is ${report.uniqueTotal} but the index holds ${report.rows} rows and retention deleted ${expired}`,
    });
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
  if (report.firstSeq > 1) out.push(`  the log starts at seq ${report.firstSeq}: retention deleted the seqs before it (wal/RETAINED)`);
  for (const file of report.expiredSegments) out.push(`  ${file}: deleted by retention, removed at the next start`);
  if (report.tombstones > 0) out.push(`  ${report.tombstones} tombstoned seq(s): records quarantined by \`logagg repair\``);
  const index = report.index;
  if (!index.present) {
    out.push(`index ${index.file}: absent (the server builds it from the log on start)`);
  } else if (index.rows !== null) {
    const notes = [
      `checkpoint ${index.checkpointSeq}`,
      `${index.rows} rows`,
      `unique_total ${index.uniqueTotal}`,
      `duplicates_total ${index.duplicatesTotal}`,
    ];
    if (index.notYetIndexed > 0) notes.push(`${index.notYetIndexed} logged records not yet indexed`);
    out.push(
      `index ${index.file}: ${notes.join(', ')}: ${index.problems.length === 0 ? 'agrees with the log' : `${index.problems.length} problem(s)`}`,
    );
  }
  for (const p of index.problems)
    out.push(`    ${p.kind}${p.offset !== null ? ` (log ${p.file} at byte offset ${p.offset})` : ''}: ${p.detail}`);
  out.push(report.ok ? `ok: ${report.records} records, last seq ${report.lastSeq}, no problems` : `${report.problems} problem(s) found`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `logagg verify`: read-only check of the log and the index; exit 1 on any problem. */
export const verifyCommand = defineCommand({
  name: 'verify',
  usage: ['logagg verify [--data-dir DIR] [--index FILE | --database-url URL] [--json]'],
  description: `Reads every segment of DATA_DIR/wal and reports, per segment, each problem with its file and
byte offset: bad checksum or framing, a torn tail, seq gaps or repeats, a segment named for
another seq. A log that starts after seq 1 is fine where retention's marker (wal/RETAINED)
names its first seq; without one, a missing first segment is a seq gap. Then compares the index with the log: every record up to the checkpoint indexed
with the same content, no row the log lacks, unique_total equal to the rows. Changes nothing;
safe on a live data dir (the index is opened read-only). Exit 1 when any problem is found.
With --database-url (or DATABASE_URL), for an instance of a cluster: the same log checks, then
the instance's rows in PostgreSQL against its log, in one read-only snapshot.`,
  examples: [
    'npx logagg verify --data-dir ./data',
    "npx logagg verify --json | jq '.segments[].problems[]'",
    'npx logagg verify --data-dir ./data --database-url postgres://logagg@db:5432/logagg',
  ],
  options: {
    ...INDEX_OPTIONS,
    databaseUrl: {
      type: 'string',
      placeholder: 'URL',
      description:
        "cluster mode: compare this instance's log with its rows in PostgreSQL instead of a SQLite index (each record up to the confirmed local seq stored once, or a duplicate of a stored key; no row the log lacks)",
      defaultText: '$DATABASE_URL',
    },
  },
  async run(context) {
    const paths = dataPaths(context, context.options.index);
    if (!fs.existsSync(paths.dataDir)) throw new UsageError(`data dir ${paths.dataDir} does not exist`);
    const databaseUrl = context.options.databaseUrl ?? (context.env.DATABASE_URL?.trim() === '' ? undefined : context.env.DATABASE_URL);
    if (databaseUrl !== undefined) {
      if (context.options.index !== undefined) throw new UsageError('--index and --database-url exclude each other');
      const report = await verifyClusterDataDir(paths, databaseUrl, { progress: context.progress });
      if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printClusterHuman(report);
      return report.ok ? EXIT_OK : EXIT_PROBLEM;
    }
    const report = verifyDataDir(paths, { progress: context.progress });
    if (context.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else printHuman(report);
    return report.ok ? EXIT_OK : EXIT_PROBLEM;
  },
});
