import Database from 'better-sqlite3';
import { expect } from 'chai';
import path from 'node:path';
import { IndexStore, SEQ_BOUNDS_SQL, type EventQuery, type IndexRow } from '../../src/index/store';
import { countHistogram } from '../../src/query/histogram';
import { makeTempDir } from '../helpers/temp-dir';
import { openTestStore, applyLogged } from '../helpers/logged-rows';

const BASE_MS = Date.parse('2025-10-23T10:00:00Z');

/** Row seq n: topic t<n%3>, source s<n%2>, one second apart, payload {n, level}. */
function row(seq: number): IndexRow {
  const topic = `t${seq % 3}`;
  const source = `s${seq % 2}`;
  const timestamp = new Date(BASE_MS + seq * 1000).toISOString();
  const payload = { n: seq, level: seq % 10 === 0 ? 'error' : 'info' };
  return {
    seq,
    topic,
    eventId: String(seq),
    source,
    tsMs: BASE_MS + seq * 1000,
    body: JSON.stringify({ topic, event_id: String(seq), timestamp, source, payload }),
  };
}

/** Every page of `query`, following next_cursor; returns the seqs and the number of requests. */
function readAll(store: IndexStore, query: EventQuery): { seqs: number[]; pages: number } {
  const seqs: number[] = [];
  let pages = 0;
  let cursor: number | undefined;
  for (;;) {
    const page = store.readPage({ ...query, ...(cursor === undefined ? {} : { afterSeq: cursor }) });
    pages += 1;
    seqs.push(...page.rows.map((r) => r.seq));
    if (page.nextCursor === null) return { seqs, pages };
    cursor = page.nextCursor;
  }
}

describe('IndexStore search', () => {
  let store: IndexStore;
  let file: string;
  const all = Array.from({ length: 300 }, (_, i) => i + 1);
  before(() => {
    file = path.join(makeTempDir(), 'index.db');
    store = openTestStore(file);
    applyLogged(store, all.map(row));
  });
  after(() => store.close());

  it('finds the first and last seq down the rowid B-tree, scanning no table or index', () => {
    expect(store.seqBounds()).to.deep.equal({ first: 1, last: 300 });
    const db = new Database(file, { readonly: true });
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${SEQ_BOUNDS_SQL}`).all() as Array<{ detail: string }>).map((r) => r.detail);
    db.close();
    // What `SELECT min(seq), max(seq) FROM events` does: `SCAN events USING COVERING INDEX events_by_topic`.
    expect(plan.filter((detail) => detail.startsWith('SCAN events'))).to.deep.equal([]);
    expect(plan.filter((detail) => detail.startsWith('SEARCH events'))).to.have.length(2);
  });

  it('reads newest first with order=desc, next_cursor giving older pages', () => {
    const first = store.readPage({ order: 'desc', limit: 3 });
    expect(first.rows.map((r) => r.seq)).to.deep.equal([300, 299, 298]);
    expect(first.nextCursor).to.equal(298);
    expect(store.readPage({ order: 'desc', limit: 3, afterSeq: 298 }).rows.map((r) => r.seq)).to.deep.equal([297, 296, 295]);
    expect(readAll(store, { order: 'desc', limit: 7 }).seqs).to.deep.equal([...all].reverse());
  });

  it('merges several topics in order, each page exactly the first rows of the union', () => {
    const expected = all.filter((n) => n % 3 !== 2);
    expect(readAll(store, { topics: ['t0', 't1'], limit: 11 }).seqs).to.deep.equal(expected);
    expect(readAll(store, { topics: ['t0', 't1'], limit: 11, order: 'desc' }).seqs).to.deep.equal([...expected].reverse());
  });

  it('filters by q words and payload fields with the same results in both orders', () => {
    const expected = all.filter((n) => n % 10 === 0 && n % 2 === 0 && String(n).includes('5'));
    const query = { words: ['5'], fields: [{ path: ['level'], value: 'error' }], source: 's0', limit: 4 };
    expect(readAll(store, query).seqs).to.deep.equal(expected);
    expect(readAll(store, { ...query, order: 'desc' }).seqs).to.deep.equal([...expected].reverse());
  });

  it('bounds the rows one filtered page examines, and goes on from next_cursor', () => {
    const query = { fields: [{ path: ['level'], value: 'error' }], limit: 100, scanRowsMax: 50 };
    const first = store.readPage(query);
    expect(first.rows.map((r) => r.seq)).to.deep.equal([10, 20, 30, 40, 50]);
    expect(first.nextCursor).to.equal(50);
    const everything = readAll(store, query);
    expect(everything.seqs).to.deep.equal(all.filter((n) => n % 10 === 0));
    expect(everything.pages).to.equal(6);
    const newest = store.readPage({ ...query, order: 'desc' });
    expect(newest.rows.map((r) => r.seq)).to.deep.equal([300, 290, 280, 270, 260]);
    expect(newest.nextCursor).to.equal(251);
    expect(readAll(store, { ...query, order: 'desc' }).seqs).to.deep.equal(all.filter((n) => n % 10 === 0).reverse());
  });

  it('counts a histogram whose buckets add up to what the filter matches, in chunks', async () => {
    const filter = { topics: ['t1'], words: ['info'] };
    const matching = readAll(store, { ...filter, limit: 1000 }).seqs;
    const histogram = await countHistogram(store, filter, 7, { chunkRows: 40 });
    expect(histogram.total).to.equal(matching.length);
    expect(histogram.counts.reduce((a, b) => a + b, 0)).to.equal(matching.length);
    expect(histogram.sinceMs).to.equal(BASE_MS + matching[0]! * 1000);
    expect(histogram.untilMs).to.equal(BASE_MS + matching[matching.length - 1]! * 1000 + 1);
    expect(histogram.counts).to.have.length(7);
    // Over a given range: equal buckets, events outside it not counted.
    const ranged = await countHistogram(store, { sinceMs: BASE_MS + 1000, untilMs: BASE_MS + 101_000 }, 10, { chunkRows: 1000 });
    expect(ranged.intervalMs).to.equal(10_000);
    expect(ranged.counts).to.deep.equal(new Array(10).fill(10));
  });

  it('stops a histogram when its signal is aborted', async () => {
    const abandoned = new AbortController();
    abandoned.abort(new Error('gone'));
    let failure: unknown;
    await countHistogram(store, {}, 10, { chunkRows: 10, signal: abandoned.signal }).catch((err: unknown) => (failure = err));
    expect(String(failure)).to.contain('gone');
  });
});
