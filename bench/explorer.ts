/**
 * Rough timings of the explorer's queries on an index of N synthetic events (default
 * 200k; EXPLORER_BENCH_EVENTS=1000000 for more): a rare q= search on the newest rows, a
 * payload field filter, newest-first pages, and 60-bucket histograms over everything and
 * over the last hour. `npm run build && node dist/bench/explorer.js`. Writes into a temp dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IndexStore, type IndexRow } from '../src/index/store';
import { encodeRecord } from '../src/wal/record';
import { segmentName } from '../src/wal/segments';
import { countHistogram } from '../src/query/histogram';
import { FIXED_LIMITS } from '../src/config/config';

const COUNT = Number(process.env.EXPLORER_BENCH_EVENTS ?? 200_000);
const SPAN_MS = 7 * 86_400_000;

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function time(name: string, runs: number, run: () => unknown): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const started = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  process.stdout.write(
    `${name}: p50 ${percentile(samples, 50).toFixed(1)} ms, p99 ${percentile(samples, 99).toFixed(1)} ms (${runs} runs)\n`,
  );
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-explorer-bench-'));
  try {
    // The index points into a log: each batch of rows is written as one segment first.
    const walDir = path.join(dir, 'wal');
    fs.mkdirSync(walDir);
    const store = new IndexStore(path.join(dir, 'index.db'), { walDir });
    const endMs = Date.now();
    const started = Date.now();
    for (let from = 1; from <= COUNT; from += 10_000) {
      const rows: IndexRow[] = [];
      const lines: string[] = [];
      let offset = 0;
      for (let seq = from; seq < Math.min(COUNT + 1, from + 10_000); seq += 1) {
        const topic = `topic-${seq % 20}`;
        const tsMs = endMs - SPAN_MS + Math.floor((SPAN_MS * seq) / COUNT);
        // One event in 50k mentions "needle"; every 7th is an error.
        const message = seq % 50_000 === 7 ? `rare needle ${seq}` : `request ${seq} served in ${seq % 900} ms`;
        const payload = { level: seq % 7 === 0 ? 'error' : 'info', message, user: { id: seq % 1000 } };
        const body = JSON.stringify({
          topic,
          event_id: `e-${seq}`,
          timestamp: new Date(tsMs).toISOString(),
          source: `host-${seq % 5}`,
          payload,
        });
        const line = encodeRecord(seq, body, null);
        const length = Buffer.byteLength(line);
        lines.push(line);
        rows.push({ seq, topic, eventId: `e-${seq}`, source: `host-${seq % 5}`, tsMs, body, position: { segment: from, offset, length } });
        offset += length;
      }
      fs.writeFileSync(path.join(walDir, segmentName(from)), lines.join(''));
      store.appendNewRows(rows);
    }
    process.stdout.write(`seeded ${COUNT} events in ${Date.now() - started} ms; scan bound ${FIXED_LIMITS.queryScanRowsMax} rows\n`);
    await time('newest-first page, no filter (limit 100)', 50, () => store.readPage({ order: 'desc', limit: 100 }));
    await time('newest-first page, one topic (limit 100)', 50, () => store.readPage({ order: 'desc', limit: 100, topics: ['topic-3'] }));
    await time('q=needle, first page newest first (one bounded scan)', 10, () =>
      store.readPage({ order: 'desc', limit: 100, words: ['needle'] }),
    );
    await time('payload.level=error, first page newest first', 20, () =>
      store.readPage({ order: 'desc', limit: 100, fields: [{ path: ['level'], value: 'error' }] }),
    );
    await time('q=needle, every page through the whole store', 1, () => {
      let cursor: number | undefined;
      for (;;) {
        const page = store.readPage({
          order: 'desc',
          limit: 100,
          words: ['needle'],
          ...(cursor === undefined ? {} : { afterSeq: cursor }),
        });
        if (page.nextCursor === null) return;
        cursor = page.nextCursor;
      }
    });
    const chunkRows = FIXED_LIMITS.histogramChunkRows;
    await time('histogram 60 buckets, whole store, no filter', 3, () => countHistogram(store, {}, 60, { chunkRows }));
    await time('histogram 60 buckets, last hour, no filter', 3, () =>
      countHistogram(store, { sinceMs: endMs - 3_600_000, untilMs: endMs }, 60, { chunkRows }),
    );
    await time('histogram 60 buckets, whole store, q=needle', 1, () => countHistogram(store, { words: ['needle'] }, 60, { chunkRows }));
    store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
