import path from 'node:path';
import { IndexStore, type EventQuery } from '../src/index/store';

/**
 * Times IndexStore.readPage on an existing index (argv[2], opened read-only, a stopped
 * server's `index.db`; its log is argv[3], default the `wal` directory next to it, where the
 * pages' bodies are read): pages of 100 with since/until and order=desc, 200 of each shape,
 * in this process without HTTP. Prints p50/p99 per shape; figures depend on the machine's
 * load, so quote them with it (docs/performance.md, "Time queries").
 */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function main(file: string, walDir: string): void {
  const store = new IndexStore(file, { readonly: true, walDir });
  try {
    const seqs = store.seqBounds();
    const times = seqs === null ? null : store.timeBounds({}, seqs.first, seqs.last);
    if (times === null) throw new Error(`${file}: no events`);
    const span = times.maxMs - times.minMs;
    const windowAt = (i: number): { sinceMs: number; untilMs: number } => {
      const sinceMs = times.minMs + span * ((i % 90) / 100);
      return { sinceMs, untilMs: sinceMs + span * 0.01 };
    };
    const shapes: Array<[string, (i: number) => EventQuery]> = [
      ['since the last 1 %', () => ({ sinceMs: times.maxMs - span * 0.01, limit: 100 })],
      ['since/until, a 1 % window', (i) => ({ ...windowAt(i), limit: 100 })],
      ['topic + since the last 1 %', () => ({ topics: store.topics().slice(0, 1), sinceMs: times.maxMs - span * 0.01, limit: 100 })],
      ['order=desc, first page', () => ({ order: 'desc', limit: 100 })],
      ['order=desc + a 1 % window', (i) => ({ order: 'desc', ...windowAt(i), limit: 100 })],
      ['q=nope (worst body filter: a whole scan bound of bodies)', () => ({ words: ['nope'], limit: 100 })],
    ];
    for (const [name, make] of shapes) {
      const elapsed: number[] = [];
      let rows = 0;
      for (let i = 0; i < 200; i += 1) {
        const start = performance.now();
        rows += store.readPage(make(i)).rows.length;
        elapsed.push(performance.now() - start);
      }
      process.stdout.write(
        `${name}: p50 ${quantile(elapsed, 0.5).toFixed(2)} ms, p99 ${quantile(elapsed, 0.99).toFixed(2)} ms, ${(rows / 200).toFixed(0)} rows/page\n`,
      );
    }
  } finally {
    store.close();
  }
}

const file = process.argv[2] ?? 'data/index.db';
main(file, process.argv[3] ?? path.join(path.dirname(file), 'wal'));
