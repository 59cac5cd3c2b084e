import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { INSTANCE_ID_FILE } from '../cluster/instance-id';
import { rowFromEventJson } from '../wal/event-row';
import { readSegments } from '../wal/reader';
import { isTombstoneEventJson } from '../wal/record';
import { retainedSegments } from '../wal/retention';
import { DISK, segmentsBytes } from './log-files';
import { startProgress, type Progress } from './progress';
import { checkLogOnly, type SegmentReport, type VerifyProblem } from './verify';

/** Log records compared with the database per round trip. */
const CHUNK_RECORDS = 2000;

/** Bound on connecting and on each statement of the comparison. */
const STATEMENT_TIMEOUT_MS = 60_000;

/** What verify found in PostgreSQL for this instance, compared with its log. */
export interface ClusterIndexReport {
  /** The database, without its password. */
  database: string;
  instanceId: string;
  /** The last local seq the database confirmed decided; null when the instance never decided anything. */
  confirmedLocalSeq: number | null;
  /** Retention: the instance's rows below this local seq were deleted (their keys kept); 1 when nothing was. */
  firstLocalSeq: number;
  /** Rows of this instance retention deleted, lifetime. */
  expiredEvents: number;
  /** Rows the database holds for this instance (events it stored first). */
  rows: number;
  /** Logged records decided as duplicates: the database holds their key from another record (of any instance), or keeps the key of its deleted event. */
  duplicates: number;
  /** Logged records after the confirmed local seq: not decided yet (a running instance or its next start will). */
  notYetDecided: number;
  problems: VerifyProblem[];
}

/** The cluster verify report, as `--json` prints it: the log's checks and the database's. */
export interface ClusterVerifyReport {
  dataDir: string;
  walDir: string;
  segments: SegmentReport[];
  records: number;
  lastSeq: number;
  tombstones: number;
  cluster: ClusterIndexReport;
  problems: number;
  ok: boolean;
}

interface LoggedRecord {
  seq: number;
  eventJson: string;
  file: string;
  offset: number;
}

/**
 * Checks an instance's log (as `verify` does) and compares it with the instance's rows in
 * PostgreSQL, inside one read-only REPEATABLE READ snapshot: each record up to the confirmed
 * local seq is stored once with the same body under (instance, local seq), or its key is
 * stored by another record (it was decided a duplicate); no row of this instance names a
 * local seq the log lacks or a tombstoned one; the confirmed seq is not past the log. Reads
 * the log twice (the checks, then the comparison in chunks); changes nothing.
 */
export async function verifyClusterDataDir(
  paths: { dataDir: string; walDir: string },
  databaseUrl: string,
  options: { progress?: boolean } = {},
): Promise<ClusterVerifyReport> {
  const instanceFile = path.join(paths.dataDir, INSTANCE_ID_FILE);
  if (!fs.existsSync(instanceFile)) {
    throw new Error(`${instanceFile} is absent: this data dir never ran in cluster mode (verify it without --database-url)`);
  }
  const instanceId = fs.readFileSync(instanceFile, 'utf8').trim();
  const cluster: ClusterIndexReport = {
    database: redactedUrl(databaseUrl),
    instanceId,
    confirmedLocalSeq: null,
    firstLocalSeq: 1,
    expiredEvents: 0,
    rows: 0,
    duplicates: 0,
    notYetDecided: 0,
    problems: [],
  };
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: STATEMENT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    application_name: 'logagg verify',
  });
  let progress: Progress | null = null;
  try {
    await client.connect().catch((err: unknown) => {
      throw new Error(`connect to ${cluster.database}: ${(err as Error).message}`, { cause: err });
    });
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const instance = await client.query<{ confirmed_local_seq: string; first_local_seq: string; expired_events: string }>(
      'SELECT confirmed_local_seq, first_local_seq, expired_events FROM logagg_instances WHERE instance_id = $1',
      [instanceId],
    );
    const row = instance.rows[0];
    cluster.confirmedLocalSeq = row === undefined ? null : Number(row.confirmed_local_seq);
    cluster.firstLocalSeq = row === undefined ? 1 : Number(row.first_local_seq);
    cluster.expiredEvents = row === undefined ? 0 : Number(row.expired_events);
    // Retention deleted the rows below first_local_seq (step a) before their segments: the log may start later.
    const retained = retainedSegments(DISK, paths.walDir, cluster.firstLocalSeq);
    progress = startProgress(options.progress === true, 'verify', segmentsBytes(retained.segments), 'bytes');
    const log = checkLogOnly(retained, progress);
    const comparison = new Comparison(client, cluster, paths.walDir);
    let chunk: LoggedRecord[] = [];
    for (const item of readSegments(DISK, retained.segments, { expectedFirstSeq: retained.firstSeq })) {
      if (item.kind !== 'record' && item.kind !== 'tombstone') continue;
      if (item.seq < cluster.firstLocalSeq) continue;
      chunk.push({ seq: item.seq, eventJson: item.eventJson, file: item.segment.path, offset: item.offset });
      if (chunk.length >= CHUNK_RECORDS) {
        await comparison.compare(chunk);
        chunk = [];
      }
    }
    await comparison.compare(chunk);
    await comparison.finish(log.lastSeq);
    await client.query('COMMIT');
    // In local seq order, whichever check found them.
    cluster.problems.sort((x, y) => (x.seq ?? 0) - (y.seq ?? 0));
    const problems = log.segments.reduce((n, s) => n + s.problems.length, 0) + cluster.problems.length;
    return {
      dataDir: paths.dataDir,
      walDir: paths.walDir,
      segments: log.segments,
      records: log.records,
      lastSeq: log.lastSeq,
      tombstones: log.tombstones,
      cluster,
      problems,
      ok: problems === 0,
    };
  } finally {
    progress?.stop();
    await client.end().catch(() => undefined);
  }
}

/** The comparison of the log's records with the instance's rows, one chunk of local seqs at a time. */
class Comparison {
  /** The last local seq compared: each chunk covers (compared, its last seq], so rows between records are seen too. */
  private compared = 0;

  constructor(
    private readonly client: pg.Client,
    private readonly report: ClusterIndexReport,
    private readonly walDir: string,
  ) {}

  async compare(records: LoggedRecord[]): Promise<void> {
    if (records.length === 0) return;
    const last = records[records.length - 1]!.seq;
    const rows = await this.rowsOfInstance(this.compared, last);
    const confirmed = this.report.confirmedLocalSeq ?? 0;
    const unmatched: LoggedRecord[] = [];
    for (const record of records) {
      const stored = rows.get(record.seq);
      rows.delete(record.seq);
      if (stored !== undefined && stored.length > 1) {
        this.problem('index_extra_row', record, `local seq ${record.seq} is stored ${stored.length} times in the database`);
      }
      if (isTombstoneEventJson(record.eventJson)) {
        if (stored !== undefined)
          this.problem('index_mismatch', record, `the database holds local seq ${record.seq}, which repair tombstoned`);
        continue;
      }
      if (stored !== undefined) {
        if (stored[0] !== record.eventJson)
          this.problem('index_mismatch', record, `the database's row for local seq ${record.seq} differs from the logged event`);
        continue;
      }
      if (record.seq > confirmed) this.report.notYetDecided += 1;
      else unmatched.push(record);
    }
    // Rows of this instance between the records: local seqs the log does not hold.
    for (const seq of rows.keys()) this.extraRow(seq);
    await this.checkDuplicates(unmatched);
    this.compared = last;
  }

  /** After the last chunk: rows past the log, and a confirmed seq past it. */
  async finish(lastSeq: number): Promise<void> {
    const after = Math.max(this.compared, lastSeq);
    const past = await this.client.query<{ local_seq: string }>(
      'SELECT local_seq FROM logagg_events WHERE instance_id = $1 AND local_seq > $2 ORDER BY local_seq LIMIT 1000',
      [this.report.instanceId, after],
    );
    for (const row of past.rows) this.extraRow(Number(row.local_seq));
    const count = await this.client.query<{ n: string }>('SELECT count(*) AS n FROM logagg_events WHERE instance_id = $1', [
      this.report.instanceId,
    ]);
    this.report.rows = Number(count.rows[0]?.n ?? 0);
    const confirmed = this.report.confirmedLocalSeq ?? 0;
    if (confirmed > lastSeq) {
      this.report.problems.push({
        kind: 'index_ahead',
        file: this.walDir,
        offset: null,
        seq: confirmed,
        detail: `the database confirmed local seq ${confirmed}, past the last logged seq ${lastSeq} (segments missing?)`,
      });
    }
  }

  /** This instance's rows with local seq in (afterSeq, toSeq]: bodies by local seq (more than one is a problem). */
  private async rowsOfInstance(afterSeq: number, toSeq: number): Promise<Map<number, string[]>> {
    const result = await this.client.query<{ local_seq: string; body: string }>(
      'SELECT local_seq, body FROM logagg_events WHERE instance_id = $1 AND local_seq > $2 AND local_seq <= $3',
      [this.report.instanceId, afterSeq, toSeq],
    );
    const rows = new Map<number, string[]>();
    for (const row of result.rows) {
      const seq = Number(row.local_seq);
      rows.set(seq, [...(rows.get(seq) ?? []), row.body]);
    }
    return rows;
  }

  /** Decided records without a row of their own: their key must be stored or kept by retention (they were duplicates), else they are missing. */
  private async checkDuplicates(records: LoggedRecord[]): Promise<void> {
    if (records.length === 0) return;
    const keys = records.map((record) => {
      const row = rowFromEventJson(record.seq, record.eventJson);
      return { topic: JSON.stringify(row.topic), eventId: JSON.stringify(row.eventId) };
    });
    const result = await this.client.query<{ topic_json: string; event_id_json: string }>(
      `SELECT e.topic_json, e.event_id_json FROM logagg_events e
       JOIN unnest($1::text[], $2::text[]) AS k(topic_json, event_id_json)
         ON e.topic_json = k.topic_json AND e.event_id_json = k.event_id_json
       UNION ALL
       SELECT x.topic_json, x.event_id_json FROM logagg_expired_keys x
       JOIN unnest($1::text[], $2::text[]) AS k(topic_json, event_id_json)
         ON x.topic_json = k.topic_json AND x.event_id_json = k.event_id_json`,
      [keys.map((k) => k.topic), keys.map((k) => k.eventId)],
    );
    const stored = new Set(result.rows.map((row) => `${row.topic_json}\n${row.event_id_json}`));
    records.forEach((record, i) => {
      const key = keys[i]!;
      if (stored.has(`${key.topic}\n${key.eventId}`)) {
        this.report.duplicates += 1;
        return;
      }
      this.problem(
        'index_missing_row',
        record,
        `local seq ${record.seq} is at or below the confirmed seq ${this.report.confirmedLocalSeq} but its key is not in the database`,
      );
    });
  }

  private extraRow(seq: number): void {
    this.report.problems.push({
      kind: 'index_extra_row',
      file: this.walDir,
      offset: null,
      seq,
      detail: `the database has a row of this instance for local seq ${seq}, which is not in the log`,
    });
  }

  private problem(kind: VerifyProblem['kind'], record: LoggedRecord, detail: string): void {
    this.report.problems.push({ kind, file: record.file, offset: record.offset, seq: record.seq, detail });
  }
}

/** The URL without its password (reports are pasted into tickets). */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** The human form of a cluster verify report. */
export function printClusterHuman(report: ClusterVerifyReport): void {
  const out: string[] = [`verify ${report.dataDir} (cluster instance ${report.cluster.instanceId})`];
  for (const segment of report.segments) {
    const seqs = segment.firstSeq === null ? 'no records' : `local seq ${segment.firstSeq}..${segment.lastSeq}`;
    const verdict = segment.problems.length === 0 ? 'ok' : `${segment.problems.length} problem(s)`;
    out.push(`  ${segment.file}: ${seqs}, ${segment.records} records, ${segment.bytes} bytes: ${verdict}`);
    for (const p of segment.problems) out.push(`    ${p.kind} at byte offset ${p.offset}: ${p.detail}`);
  }
  if (report.segments.length === 0) out.push(`  no segments in ${report.walDir}`);
  const c = report.cluster;
  const notes = [
    `confirmed local seq ${c.confirmedLocalSeq ?? 'none'}`,
    `${c.rows} rows of this instance`,
    `${c.duplicates} logged duplicates of stored keys`,
  ];
  if (c.notYetDecided > 0) notes.push(`${c.notYetDecided} logged records not yet decided`);
  out.push(
    `database ${c.database}: ${notes.join(', ')}: ${c.problems.length === 0 ? 'agrees with the log' : `${c.problems.length} problem(s)`}`,
  );
  for (const p of c.problems)
    out.push(`    ${p.kind}${p.offset !== null ? ` (log ${p.file} at byte offset ${p.offset})` : ''}: ${p.detail}`);
  out.push(
    report.ok ? `ok: ${report.records} records, last local seq ${report.lastSeq}, no problems` : `${report.problems} problem(s) found`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}
