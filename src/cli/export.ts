import fs from 'node:fs';
import {
  dataPaths,
  defineCommand,
  EXIT_OK,
  EXIT_PROBLEM,
  FILTER_OPTIONS,
  filterIsSeqOnly,
  parseFilter,
  UsageError,
  type EventFilter,
} from './args';
import { IndexStore } from '../index/store';
import { eventJsonWithSeq } from '../wal/record';
import { segmentsFrom } from '../wal/segments';
import { logSegments, matchesFilter, readRetainedLog, segmentsBytes, writeWithBackpressure } from './log-files';
import { startProgress } from './progress';

/** Bytes of NDJSON gathered before one write to the output. */
const WRITE_CHUNK_BYTES = 256 * 1024;

/** What export wrote and skipped. */
export interface ExportSummary {
  events: number;
  bytes: number;
  lastSeq: number | null;
  segments: number;
  corruptLinesSkipped: Array<{ file: string; offset: number; problem: string }>;
  out: string;
}

/**
 * Writes the logged events that match `filter`, in seq order, as NDJSON lines
 * `{"seq":N,"topic":...,"event_id":...,"timestamp":...,"source":...,"payload":...}` (the
 * shape of GET /events) to `output`. It reads the log, not the index, and skips corrupt
 * lines (listing them) without failing; the torn tail is not an event.
 */
export async function exportEvents(
  walDir: string,
  filter: EventFilter,
  output: NodeJS.WritableStream,
  options: { progress?: boolean; databasePath?: string } = {},
): Promise<Omit<ExportSummary, 'out'>> {
  const segments = logSegments(walDir);
  const startSeq = options.databasePath === undefined ? null : startSeqFromIndex(options.databasePath, walDir, filter);
  if (startSeq !== null) filter = { ...filter, fromSeq: Math.max(filter.fromSeq ?? 1, startSeq) };
  const summary: Omit<ExportSummary, 'out'> = { events: 0, bytes: 0, lastSeq: null, segments: 0, corruptLinesSkipped: [] };
  const progress = startProgress(options.progress === true, 'export', segmentsBytes(segmentsFrom(segments, filter.fromSeq ?? 1)), 'bytes');
  try {
    let chunk = '';
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      summary.bytes += Buffer.byteLength(chunk);
      await writeWithBackpressure(output, chunk);
      chunk = '';
    };
    // Policy: skip corruption (listing it), skip tombstones, stop at nothing.
    for (const item of readRetainedLog(walDir, { fromSeq: filter.fromSeq ?? 1, onBytesRead: (bytes) => progress.update(bytes) })) {
      if (item.kind === 'corruption') {
        summary.corruptLinesSkipped.push({ file: item.segment.path, offset: item.offset, problem: item.problem });
      } else if (item.kind === 'segment_end') {
        summary.segments += 1;
        await flush();
      } else if (item.kind === 'record' && matchesFilter(item.seq, item.eventJson, filter)) {
        chunk += `${eventJsonWithSeq(item.seq, item.eventJson, item.receivedAtMs)}\n`;
        summary.events += 1;
        summary.lastSeq = item.seq;
        if (chunk.length >= WRITE_CHUNK_BYTES) await flush();
      }
    }
  } finally {
    progress.stop();
  }
  return summary;
}

/**
 * Where the log read can start for a filter with a time, topic or source part: the first seq
 * the index holds that matches it (found through the index's columns, never the log), or the
 * first seq past the index's checkpoint when nothing indexed matches (the unindexed tail may
 * still). Every event before that seq is indexed and does not match, so the segments before
 * it are skipped unread. Null when the index cannot tell (missing, older schema, unreadable):
 * export then reads the whole log, as it always did.
 */
export function startSeqFromIndex(databasePath: string, walDir: string, filter: EventFilter): number | null {
  if (filterIsSeqOnly(filter) || !fs.existsSync(databasePath)) return null;
  let store: IndexStore | undefined;
  try {
    store = new IndexStore(databasePath, { readonly: true, walDir });
    const index = store;
    return index.withSnapshot(() => {
      const { topics, source, sinceMs, untilMs, fromSeq } = filter;
      const query = { topics, source, sinceMs, untilMs, limit: 1, scanRowsMax: Number.POSITIVE_INFINITY };
      const page = index.readPage(fromSeq === undefined ? query : { ...query, afterSeq: fromSeq - 1 });
      return page.rows[0]?.seq ?? index.readCounters().checkpointSeq + 1;
    });
  } catch {
    return null;
  } finally {
    store?.close();
  }
}

/** `logagg export`: NDJSON events from the log, filtered, to stdout or a file. */
export const exportCommand = defineCommand({
  name: 'export',
  usage: ['logagg export [--data-dir DIR] [filters] [--out FILE] [--json]'],
  description: `Reads the log (the source of truth, not the index) and writes each matching event as one
JSON line, in seq order, in the shape GET /events uses:
  {"seq":1,"topic":"user.login","event_id":"evt-001","timestamp":"...","source":"...","payload":{...}}
With --since, --until, --topic or --source it asks the index for the first matching seq
and skips the log before it (the whole log is read when there is no usable index).
Safe on a live data dir. Corrupt lines are skipped and listed on stderr (exit 1); a torn
tail is not an event. A summary goes to stderr (as JSON with --json), never to stdout.`,
  examples: [
    'npx logagg export --data-dir ./data > all.ndjson',
    'npx logagg export --topic user.login --since 2025-10-23T00:00:00Z --out logins.ndjson',
    "npx logagg export --from-seq 1000 | jq -c 'select(.payload.amount > 50)'",
  ],
  options: { ...FILTER_OPTIONS, out: { type: 'string', placeholder: 'FILE', description: 'write to FILE (fsynced) instead of stdout' } },
  async run(context) {
    const paths = dataPaths(context);
    const filter = parseFilter(context.options);
    if (!fs.existsSync(paths.dataDir)) throw new UsageError(`data dir ${paths.dataDir} does not exist`);
    const outFile = context.options.out;
    let output: NodeJS.WritableStream = process.stdout;
    let file: { fd: number; stream: fs.WriteStream } | null = null;
    if (outFile !== undefined) {
      const fd = fs.openSync(outFile, 'w');
      file = { fd, stream: fs.createWriteStream('', { fd, autoClose: false }) };
      output = file.stream;
    }
    const result = await exportEvents(paths.walDir, filter, output, { progress: context.progress, databasePath: paths.databasePath });
    if (file !== null) {
      const { fd, stream } = file;
      await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    const summary: ExportSummary = { ...result, out: outFile ?? '-' };
    if (context.json) {
      process.stderr.write(`${JSON.stringify(summary)}\n`);
    } else {
      for (const bad of summary.corruptLinesSkipped)
        process.stderr.write(`export: skipped a corrupt line (${bad.problem}) in ${bad.file} at byte offset ${bad.offset}\n`);
      process.stderr.write(
        `export: ${summary.events} events (${summary.bytes} bytes) from ${summary.segments} segment(s) to ${summary.out}${summary.lastSeq !== null ? `, last seq ${summary.lastSeq}` : ''}\n`,
      );
    }
    return summary.corruptLinesSkipped.length === 0 ? EXIT_OK : EXIT_PROBLEM;
  },
});
