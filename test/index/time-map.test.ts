import { expect } from 'chai';
import path from 'node:path';
import { IndexStore, TIME_BLOCK_SEQS, type EventQuery, type IndexRow } from '../../src/index/store';
import { countHistogram } from '../../src/query/histogram';
import { makeTempDir } from '../helpers/temp-dir';
import { openTestStore, applyLogged } from '../helpers/logged-rows';

const BASE_MS = Date.parse('2026-12-01T00:00:00Z');

/** A small deterministic generator, so a failure names a reproducible case. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Rows in seq order with gaps (seqs a duplicate took), three topics, two sources, timestamps mostly rising with some far off. */
function makeRows(count: number, random: () => number, skewRate = 0.02): IndexRow[] {
  const rows: IndexRow[] = [];
  let seq = 0;
  for (let i = 0; i < count; i += 1) {
    seq += random() < 0.1 ? 2 : 1;
    const skewed = random() < skewRate;
    const tsMs = skewed ? BASE_MS + Math.floor(random() * count * 1000) : BASE_MS + i * 1000 + Math.floor(random() * 5000);
    const topic = ['a', 'b', 'c'][Math.floor(random() * 3)]!;
    const source = random() < 0.5 ? 'web' : 'job';
    const event = { topic, event_id: `e${i}`, timestamp: new Date(tsMs).toISOString(), source };
    rows.push({ seq, topic, eventId: event.event_id, source, tsMs, receivedMs: BASE_MS + i, body: JSON.stringify(event) });
  }
  return rows;
}

/** Every page of `query` from the start, following next_cursor, as seqs. */
function pageThrough(store: IndexStore, query: EventQuery): number[] {
  const seqs: number[] = [];
  let afterSeq: number | undefined;
  for (let pages = 0; pages < 10_000; pages += 1) {
    const page = store.readPage({ ...query, afterSeq });
    expect(page.rows.length).to.be.at.most(query.limit);
    seqs.push(...page.rows.map((row) => row.seq));
    if (page.nextCursor === null) return seqs;
    afterSeq = page.nextCursor;
  }
  throw new Error('paging did not end');
}

describe('IndexStore time map (since/until)', () => {
  const random = seeded(20261201);
  const rows = makeRows(7000, random);
  let store: IndexStore;

  before(() => {
    store = openTestStore(path.join(makeTempDir(), 'index.db'));
    // Several batches, one of them crossing a block boundary, as the consumer commits them.
    for (let i = 0; i < rows.length; i += 777) applyLogged(store, rows.slice(i, i + 777));
  });

  after(() => store.close());

  it('pages asc and desc through exactly what a brute-force filter over the rows finds', () => {
    const lastMs = BASE_MS + rows.length * 1000;
    for (let trial = 0; trial < 60; trial += 1) {
      const a = BASE_MS + Math.floor(random() * (lastMs - BASE_MS));
      const b = BASE_MS + Math.floor(random() * (lastMs - BASE_MS));
      const query: EventQuery = {
        limit: 1 + Math.floor(random() * 60),
        order: random() < 0.5 ? 'desc' : 'asc',
        scanRowsMax: [500, 1500, TIME_BLOCK_SEQS, 20_000][trial % 4]!,
      };
      if (trial % 3 !== 1) query.sinceMs = Math.min(a, b);
      if (trial % 3 !== 2) query.untilMs = Math.max(a, b) + 1;
      if (trial % 5 === 0) query.topics = ['b'];
      if (trial % 7 === 0) query.topics = ['a', 'c'];
      if (trial % 4 === 3) query.source = 'job';
      const expected = rows
        .filter(
          (row) =>
            (query.sinceMs === undefined || row.tsMs >= query.sinceMs) &&
            (query.untilMs === undefined || row.tsMs < query.untilMs) &&
            (query.topics === undefined || query.topics.includes(row.topic)) &&
            (query.source === undefined || row.source === query.source),
        )
        .map((row) => row.seq);
      if (query.order === 'desc') expected.reverse();
      expect(pageThrough(store, query), JSON.stringify(query)).to.deep.equal(expected);
    }
  });

  it('skips the blocks whose times miss the window: a recent since fills its first page past a small scan bound', () => {
    const rising = makeRows(5000, seeded(7), 0);
    const own = openTestStore(path.join(makeTempDir(), 'index.db'));
    applyLogged(own, rising);
    const sinceMs = rising[rising.length - 50]!.tsMs;
    const expected = rising.filter((row) => row.tsMs >= sinceMs).map((row) => row.seq);
    // Without the map, 500 rows from the start would be scanned and the page would be empty.
    const page = own.readPage({ sinceMs, limit: 20, scanRowsMax: 500 });
    own.close();
    expect(page.rows.map((row) => row.seq)).to.deep.equal(expected.slice(0, 20));
  });

  it('counts a histogram over the chunks the time map keeps, as a brute-force count does', async () => {
    for (const [sinceMs, untilMs] of [
      [BASE_MS + 1_000_000, BASE_MS + 1_500_000],
      [BASE_MS + 6_500_000, BASE_MS + 9_000_000],
    ] as const) {
      const histogram = await countHistogram(store, { sinceMs, untilMs }, 10, { chunkRows: 700 });
      const expected = new Array<number>(10).fill(0);
      for (const row of rows) {
        if (row.tsMs >= sinceMs && row.tsMs < untilMs) expected[Math.floor((row.tsMs - sinceMs) / histogram.intervalMs)]! += 1;
      }
      expect(histogram.counts).to.deep.equal(expected);
      expect(histogram.total).to.equal(expected.reduce((a, b) => a + b, 0));
    }
  });

  it('returns each row with its acceptance time', () => {
    const page = store.readPage({ sinceMs: BASE_MS, limit: 3 });
    expect(page.rows.map((row) => row.receivedMs)).to.deep.equal([BASE_MS, BASE_MS + 1, BASE_MS + 2]);
  });
});
