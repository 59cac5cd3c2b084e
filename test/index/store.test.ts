import Database from 'better-sqlite3';
import { expect } from 'chai';
import path from 'node:path';
import type { IndexRow } from '../../src/index/store';
import { makeTempDir } from '../helpers/temp-dir';
import { eventDigestOf } from '../../src/index/key-hash';
import { openTestStore, applyLogged, appendLogged, logRows, walDirOf } from '../helpers/logged-rows';

function row(seq: number, topic: string, eventId: string, payload = 'p'): IndexRow {
  const body = JSON.stringify({ topic, event_id: eventId, timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { payload } });
  return { seq, topic, eventId, source: 's', tsMs: Date.parse('2025-10-23T10:00:00Z'), body };
}

describe('IndexStore', () => {
  it('finds a stored key with its seq and exact body, and nothing for a new key', () => {
    const store = openTestStore(path.join(makeTempDir(), 'index.db'));
    const stored = row(1, 'orders', 'a');
    applyLogged(store, [stored, row(2, 'orders', 'b')]);
    expect(store.lookup('orders', 'a')).to.deep.equal({ seq: 1, digest: eventDigestOf(stored.body) });
    expect(store.lookup('orders', 'c')).to.equal(undefined);
    expect(store.lookup('other', 'a')).to.equal(undefined);
    store.close();
  });

  it('keeps the first row of a key, within one batch and across batches', () => {
    const store = openTestStore(path.join(makeTempDir(), 'index.db'));
    expect(applyLogged(store, [row(1, 't', 'k', 'first'), row(2, 't', 'k', 'second')])).to.equal(1);
    expect(applyLogged(store, [row(3, 't', 'k', 'third')])).to.equal(0);
    expect(store.lookup('t', 'k')!.seq).to.equal(1);
    expect(store.countRows()).to.equal(1);
    expect(store.counters).to.include({ checkpointSeq: 3, uniqueTotal: 1 });
    store.close();
  });

  it('rebuilds its key table on reopen, so dedup holds across restarts', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const first = openTestStore(file);
    applyLogged(first, [row(1, 't', 'k1'), row(2, 't', 'k2')]);
    first.close();
    const second = openTestStore(file);
    expect(second.lookup('t', 'k2')!.seq).to.equal(2);
    expect(applyLogged(second, [row(3, 't', 'k1'), row(4, 't', 'k3')])).to.equal(1);
    expect(second.counters).to.include({ checkpointSeq: 4, uniqueTotal: 3 });
    second.close();
    const reader = openTestStore(file, { readonly: true });
    expect(reader.lookup('t', 'k3')!.seq).to.equal(4);
    reader.close();
  });

  it('drops an index of the older schema so that recovery rebuilds it from the log', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, event_id TEXT NOT NULL, source TEXT NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('checkpoint_seq', 5);`);
    old.close();
    expect(() => openTestStore(file, { readonly: true })).to.throw(
      /schema version 0, expected 5: start the service once to rebuild it from the log/,
    );
    const store = openTestStore(file);
    expect(store.schemaReset).to.equal(true);
    expect(store.counters.checkpointSeq).to.equal(0);
    applyLogged(store, [row(1, 't', 'k')]);
    store.close();
    const reopened = openTestStore(file);
    expect(reopened.schemaReset).to.equal(false);
    expect(reopened.counters.checkpointSeq).to.equal(1);
    reopened.close();
  });

  it('keeps a topic id only once the rows that added it commit (a rolled-back batch leaves none behind)', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file);
    appendLogged(store, [row(1, 'a', '1')]);
    // A batch whose second row cannot be indexed (no log position) rolls back, its new topic with it.
    const [logged] = logRows(walDirOf(file), [row(2, 'new', '2')]);
    expect(() => store.appendNewRows([logged!, row(3, 'b', '3')])).to.throw(/no log position/);
    expect(store.topics()).to.deep.equal(['a']);
    appendLogged(store, [row(4, 'b', '4'), row(5, 'new', '5')]);
    expect(store.queryEvents({ topics: ['new'], limit: 10 }).map((r) => r.seq)).to.deep.equal([5]);
    store.close();
    const reader = openTestStore(file, { readonly: true });
    expect(reader.topics()).to.deep.equal(['a', 'b', 'new']);
    expect(reader.queryEvents({ topics: ['new'], limit: 10 }).map((r) => r.seq)).to.deep.equal([5]);
    expect(reader.queryEvents({ topics: ['b', 'new'], order: 'desc', limit: 10 }).map((r) => r.seq)).to.deep.equal([5, 4]);
    reader.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT topic, id FROM topics ORDER BY id').raw().all()).to.have.length(3);
    db.close();
  });

  it('returns queries in seq order with the stored bodies', () => {
    const store = openTestStore(path.join(makeTempDir(), 'index.db'));
    applyLogged(store, [row(1, 'a', '1'), row(2, 'b', '2'), row(3, 'a', '3')]);
    expect(store.queryEvents({ topics: ['a'], limit: 10 }).map((r) => r.seq)).to.deep.equal([1, 3]);
    expect(store.queryEvents({ afterSeq: 1, limit: 1 }).map((r) => r.seq)).to.deep.equal([2]);
    expect(store.topics()).to.deep.equal(['a', 'b']);
    store.close();
  });
});
