import Database from 'better-sqlite3';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { KeyFilter } from '../../src/index/key-filter';
import { dedupKeyOf, eventDigestOf, keyNumberOf } from '../../src/index/key-hash';
import type { IndexRow, IndexStore } from '../../src/index/store';
import { waitFor } from '../../src/cli/wait';
import { makeTempDir } from '../helpers/temp-dir';
import { appendLogged, applyLogged, logRows, openTestStore, walDirOf } from '../helpers/logged-rows';

function row(seq: number, topic: string, eventId: string, text = eventId): IndexRow {
  const body = JSON.stringify({ topic, event_id: eventId, timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { text } });
  return { seq, topic, eventId, source: 's', tsMs: 0, body };
}

describe('dedupKeyOf', () => {
  it('is a deterministic 128-bit key that keeps ("ab", "c") and ("a", "bc") apart', () => {
    expect(dedupKeyOf('orders', 'evt-1')).to.have.length(16);
    expect(dedupKeyOf('orders', 'evt-1').equals(dedupKeyOf('orders', 'evt-1'))).to.equal(true);
    expect(dedupKeyOf('ab', 'c').equals(dedupKeyOf('a', 'bc'))).to.equal(false);
    expect(dedupKeyOf('', 'abc').equals(dedupKeyOf('abc', ''))).to.equal(false);
    expect(dedupKeyOf('t', 'é✓').equals(dedupKeyOf('t', 'e✓'))).to.equal(false);
  });

  it('gives 100k distinct keys 100k distinct hashes, and well-spread 53-bit numbers', () => {
    const keys = new Set<string>();
    const numbers = new Set<number>();
    for (let i = 0; i < 100_000; i += 1) {
      const key = dedupKeyOf(`topic-${i % 7}`, `event-${i}`);
      keys.add(key.toString('hex'));
      numbers.add(keyNumberOf(key));
    }
    expect(keys.size).to.equal(100_000);
    expect(numbers.size).to.equal(100_000);
  });

  it('digests event JSON so that any change of content changes the digest', () => {
    const a = row(1, 't', 'k', 'one').body;
    expect(eventDigestOf(a).equals(eventDigestOf(a))).to.equal(true);
    expect(eventDigestOf(a).equals(eventDigestOf(row(1, 't', 'k', 'onf').body))).to.equal(false);
  });
});

describe('KeyFilter', () => {
  it('never misses an added key and has about 1 % false positives at 10 bits a key', () => {
    const bytes = 256 * 1024;
    const filter = new KeyFilter(bytes);
    const added = (bytes * 8) / 10;
    for (let i = 0; i < added; i += 1) filter.add(dedupKeyOf('t', `in-${i}`));
    for (let i = 0; i < added; i += 997) expect(filter.mayContain(dedupKeyOf('t', `in-${i}`))).to.equal(true);
    let positives = 0;
    const probes = 200_000;
    for (let i = 0; i < probes; i += 1) if (filter.mayContain(dedupKeyOf('t', `out-${i}`))) positives += 1;
    // Theory for 7 hashes at 10 bits a key: 0.82 %.
    expect(positives / probes).to.be.within(0.004, 0.015);
  });

  it('round-trips through its file, and refuses a corrupt, resized or foreign one', () => {
    const file = path.join(makeTempDir(), 'index.db.keys-filter');
    const filter = new KeyFilter(4096);
    for (let i = 0; i < 300; i += 1) filter.add(dedupKeyOf('t', String(i)));
    KeyFilter.writeDurably(file, KeyFilter.encode(filter.bits, 300, 42));
    const loaded = KeyFilter.load(file, 4096, 42);
    expect('filter' in loaded && loaded.coveredSeq).to.equal(300);
    if ('filter' in loaded) expect(loaded.filter.bits.equals(filter.bits)).to.equal(true);
    expect(KeyFilter.load(file, 8192, 42))
      .to.have.property('problem')
      .that.matches(/size/);
    expect(KeyFilter.load(file, 4096, 43))
      .to.have.property('problem')
      .that.matches(/another index/);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 10]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    expect(KeyFilter.load(file, 4096, 42))
      .to.have.property('problem')
      .that.matches(/crc/);
    expect(KeyFilter.load(`${file}.none`, 4096, 42)).to.deep.equal({ problem: 'missing' });
  });

  it('writes the zero runs of a filter as holes: a filter of few keys takes little disk, and reads back whole', async () => {
    const dir = makeTempDir();
    const filter = new KeyFilter(32 * 1024 * 1024);
    for (let i = 0; i < 20; i += 1) filter.add(dedupKeyOf('t', String(i)));
    const image = KeyFilter.encode(filter.bits, 20, 7);
    const sync = path.join(dir, 'sync.keys-filter');
    const background = path.join(dir, 'background.keys-filter');
    KeyFilter.writeDurably(sync, image);
    await KeyFilter.saveLiveInBackground(background, filter.bits, 20, 7, () => true);
    for (const file of [sync, background]) {
      const stat = fs.statSync(file);
      expect(stat.size).to.equal(image.reduce((sum, part) => sum + part.length, 0));
      // 20 keys set at most 140 bits: at most 140 chunks of 64 KiB, against 512 for the whole file.
      expect(stat.blocks * 512, file).to.be.below(stat.size / 2);
      const loaded = KeyFilter.load(file, 32 * 1024 * 1024, 7);
      if (!('filter' in loaded)) throw new Error(`${file}: ${loaded.problem}`);
      expect(loaded.filter.bits.equals(filter.bits)).to.equal(true);
    }
  });
});

describe('KeyFilter.saveLiveInBackground', () => {
  it('saves the live bits while keys are added: the file loads (its crc is of what it wrote) and holds every key added before', async () => {
    const file = path.join(makeTempDir(), 'live.keys-filter');
    const filter = new KeyFilter(4 * 1024 * 1024);
    const before = Array.from({ length: 2000 }, (_, i) => dedupKeyOf('t', `before-${i}`));
    for (const key of before) filter.add(key);
    let adding = true;
    let added = 0;
    // Keys go on being added between the save's chunk writes.
    const adder = (async () => {
      while (adding) {
        for (let i = 0; i < 50; i += 1) filter.add(dedupKeyOf('t', `during-${(added += 1)}`));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await KeyFilter.saveLiveInBackground(file, filter.bits, 2000, 9, () => true);
    adding = false;
    await adder;
    expect(added).to.be.above(0);
    const loaded = KeyFilter.load(file, 4 * 1024 * 1024, 9);
    if (!('filter' in loaded)) throw new Error(loaded.problem);
    expect(loaded.coveredSeq).to.equal(2000);
    for (const key of before) expect(loaded.filter.mayContain(key)).to.equal(true);
    expect(fs.existsSync(`${file}.bg.tmp`)).to.equal(false);
  });

  it('leaves no file when commit refuses the rename (the store closed meanwhile)', async () => {
    const file = path.join(makeTempDir(), 'refused.keys-filter');
    const filter = new KeyFilter(64 * 1024);
    filter.add(dedupKeyOf('t', 'a'));
    await KeyFilter.saveLiveInBackground(file, filter.bits, 1, 9, () => false);
    expect(fs.existsSync(file)).to.equal(false);
    expect(fs.existsSync(`${file}.bg.tmp`)).to.equal(false);
  });
});

describe('IndexStore dedup keys', () => {
  const keyOptions = (file: string, extra: object = {}) => ({
    keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, ...extra },
  });

  it('saves the filter at close and loads it at open without reading the keys table', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const rebuilt: string[] = [];
    const first = openTestStore(file, keyOptions(file, { onFilterRebuilt: (info: { reason: string }) => rebuilt.push(info.reason) }));
    applyLogged(first, [row(1, 't', 'a'), row(2, 't', 'b')]);
    first.close();
    expect(rebuilt).to.deep.equal(['missing']);
    const second = openTestStore(file, {
      ...keyOptions(file, { onFilterRebuilt: (info: { reason: string }) => rebuilt.push(info.reason) }),
      loadKeys: false,
    });
    expect(second.openKeyFilter()).to.equal(2);
    second.keyFilterComplete();
    expect(rebuilt).to.have.length(1);
    expect(second.lookup('t', 'b')?.seq).to.equal(2);
    expect(second.lookup('t', 'c')).to.equal(undefined);
    expect(second.dedupKeyCount()).to.equal(2);
    second.close();
  });

  it('saves the filter in the background on the ingest path (appendNewRows), so a start after kill -9 reads only the keys after that save', async () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'index.db');
    const store = openTestStore(file, keyOptions(file, { saveEveryKeys: 100 }));
    appendLogged(
      store,
      Array.from({ length: 150 }, (_, i) => row(i + 1, 't', `k${i}`)),
    );
    await waitFor(() => fs.existsSync(`${file}.keys-filter`), { what: 'the background save of the filter' });
    // A kill -9 now: the files as they are, copied while the store is open (no close, no save at close).
    const crashed = path.join(makeTempDir(), 'index.db');
    for (const suffix of ['', '-wal', '.keys-filter']) {
      if (fs.existsSync(`${file}${suffix}`)) fs.copyFileSync(`${file}${suffix}`, `${crashed}${suffix}`);
    }
    fs.cpSync(walDirOf(file), walDirOf(crashed), { recursive: true });
    store.close();
    const rebuilt: string[] = [];
    const reopened = openTestStore(crashed, {
      ...keyOptions(crashed, { onFilterRebuilt: (info: { reason: string }) => rebuilt.push(info.reason) }),
      loadKeys: false,
    });
    expect(reopened.openKeyFilter()).to.equal(150);
    expect(rebuilt).to.deep.equal([]);
    reopened.keyFilterComplete();
    for (let i = 0; i < 150; i += 1) expect(reopened.lookup('t', `k${i}`)?.seq).to.equal(i + 1);
    reopened.close();
  });

  it('rebuilds a corrupt filter from the keys table and still finds every key', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const first = openTestStore(file, keyOptions(file));
    applyLogged(
      first,
      Array.from({ length: 500 }, (_, i) => row(i + 1, 't', `k${i}`)),
    );
    first.close();
    const filterFile = `${file}.keys-filter`;
    const bytes = fs.readFileSync(filterFile);
    bytes.fill(0, 100, 2000);
    fs.writeFileSync(filterFile, bytes);
    const rebuilt: Array<{ reason: string; keys: number }> = [];
    const second = openTestStore(
      file,
      keyOptions(file, { onFilterRebuilt: (info: { reason: string; keys: number }) => rebuilt.push(info) }),
    );
    expect(rebuilt).to.have.length(1);
    expect(rebuilt[0]).to.include({ keys: 500 });
    expect(rebuilt[0]!.reason).to.match(/crc/);
    for (let i = 0; i < 500; i += 1) expect(second.lookup('t', `k${i}`)?.seq).to.equal(i + 1);
    second.close();
  });

  it('keeps the keys of dropped rows inside the horizon and forgets them past it', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const inside = openTestStore(file, keyOptions(file, { horizonMs: 3_600_000 }));
    applyLogged(inside, [row(1, 't', 'old'), row(2, 't', 'kept')]);
    inside.dropThrough(1, Date.now() - 60_000);
    expect(inside.countRows()).to.equal(1);
    expect(inside.lookup('t', 'old')).to.deep.equal({ seq: 1, digest: eventDigestOf(row(1, 't', 'old').body) });
    // The first row of a key still wins while the key is known.
    expect(applyLogged(inside, [row(3, 't', 'old')])).to.equal(0);
    expect(inside.sweepExpiredKeys()).to.equal(null);
    inside.close();

    const past = openTestStore(file, keyOptions(file, { horizonMs: 1000 }));
    expect(past.lookup('t', 'old')).to.equal(undefined);
    expect(past.lookup('t', 'kept')?.seq).to.equal(2);
    expect(past.dedupKeyCount()).to.equal(2);
    expect(past.sweepExpiredKeys()).to.equal(1);
    expect(past.dedupKeyCount()).to.equal(1);
    expect(past.sweepExpiredKeys()).to.equal(null);
    // A re-send past the horizon is a new original, and is known again.
    expect(applyLogged(past, [row(4, 't', 'old', 'new content')])).to.equal(1);
    expect(past.lookup('t', 'old')?.seq).to.equal(4);
    expect(past.dedupKeyCount()).to.equal(2);
    past.close();
  });

  it('replaces an expired key that was not swept yet when its event is sent again', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, keyOptions(file, { horizonMs: 1000 }));
    applyLogged(store, [row(1, 't', 'x')]);
    store.dropThrough(1, Date.now() - 5000);
    expect(store.lookup('t', 'x')).to.equal(undefined);
    expect(applyLogged(store, [row(2, 't', 'x', 'again')])).to.equal(1);
    expect(store.lookup('t', 'x')).to.deep.equal({ seq: 2, digest: eventDigestOf(row(2, 't', 'x', 'again').body) });
    expect(store.dedupKeyCount()).to.equal(1);
    expect(store.sweepExpiredKeys()).to.equal(0);
    store.close();
  });
});

describe('IndexStore dedup keys in generations', () => {
  const small = (file: string, extra: object = {}) => ({
    keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, genKeys: 50, mergeFanout: 4, ...extra },
  });
  const batchOf = (from: number, count: number, prefix = 'k'): IndexRow[] =>
    Array.from({ length: count }, (_, i) => row(from + i, 't', `${prefix}${from + i}`));
  /** Runs the upkeep until it has nothing left to do; returns the steps taken. */
  const settle = (store: IndexStore, nowMs = Date.now()): number => {
    let steps = 0;
    while (store.keyMaintenanceStep(nowMs) !== null) steps += 1;
    return steps;
  };
  const expectAllKnown = (store: IndexStore, through: number, prefix = 'k'): void => {
    for (let seq = 1; seq <= through; seq += 1) expect(store.lookup('t', `${prefix}${seq}`)?.seq, `key of seq ${seq}`).to.equal(seq);
  };

  it('opens a new generation every genKeys keys and merges mergeFanout full ones into one of the next level, finding every key throughout', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file));
    // Batches of 30 cross generation boundaries inside a batch and between batches.
    for (let seq = 1; seq <= 600; seq += 30) applyLogged(store, batchOf(seq, 30));
    const before = store.keyGenerations();
    expect(before.filter((g) => g.level === 0).length).to.be.greaterThan(4);
    expect(before.every((g) => g.keys <= 50 + 30)).to.equal(true);
    // Step by step: after every step (a merge's copy, the switch, the deletion of its sources) each key is found.
    let steps = 0;
    // Steps of 7 rows: merges copy, switch and delete their sources over many steps.
    while (store.keyMaintenanceStep(Date.now(), 7) !== null) {
      steps += 1;
      if (steps % 3 === 0) expectAllKnown(store, 600);
    }
    expect(steps).to.be.greaterThan(100);
    const after = store.keyGenerations();
    expect(after.some((g) => g.level === 1)).to.equal(true);
    expect(after.every((g) => g.state === (g.gen === 0 ? 'level0' : 'live'))).to.equal(true);
    expect(after.reduce((sum, g) => sum + g.keys, 0)).to.equal(600);
    expectAllKnown(store, 600);
    expect(store.dedupKeyCount()).to.equal(600);
    // Duplicates inside and across generations are still refused; new keys still go in.
    expect(applyLogged(store, [row(601, 't', 'k5'), row(602, 't', 'k599'), row(603, 't', 'new')])).to.equal(1);
    expect(store.lookup('t', 'new')?.seq).to.equal(603);
    store.close();
  });

  it('resumes a merge cut between two steps (the process died) and loses no key', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const first = openTestStore(file, small(file));
    for (let seq = 1; seq <= 400; seq += 40) applyLogged(first, batchOf(seq, 40));
    // The sealed level 0 is copied, a merge starts, and copies part of its sources.
    let steps = 0;
    while (!first.keyGenerations().some((g) => g.state === 'building') && steps < 100) {
      first.keyMaintenanceStep();
      steps += 1;
    }
    first.keyMaintenanceStep(Date.now(), 60);
    first.keyMaintenanceStep(Date.now(), 60);
    const building = first.keyGenerations().find((g) => g.state === 'building');
    expect(building).to.not.equal(undefined);
    // No close(): the next open finds the merge half done, as after kill -9.
    const second = openTestStore(file, small(file));
    expectAllKnown(second, 400);
    expect(applyLogged(second, batchOf(401, 40))).to.equal(40);
    settle(second);
    expectAllKnown(second, 440);
    expect(second.dedupKeyCount()).to.equal(440);
    expect(second.keyGenerations().reduce((sum, g) => sum + g.keys, 0)).to.equal(440);
    second.close();
    first.close();
  });

  it('drops a generation whose every seq passed the horizon whole, and sweeps the one that straddles it', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file, { horizonMs: 1000, mergeFanout: 100 }));
    for (let seq = 1; seq <= 200; seq += 25) applyLogged(store, batchOf(seq, 25));
    const gens = store.keyGenerations().length;
    store.dropThrough(120, Date.now() - 5000);
    expect(store.lookup('t', 'k120')).to.equal(undefined);
    expect(store.lookup('t', 'k121')?.seq).to.equal(121);
    settle(store);
    expect(store.dedupKeyCount()).to.equal(80);
    // Generations of seqs 1-50 and 51-100 went whole; the one of 101-150 keeps 121-150.
    expect(store.keyGenerations()).to.have.length(gens - 2);
    expect(store.keyGenerations().reduce((sum, g) => sum + g.keys, 0)).to.equal(80);
    for (let seq = 121; seq <= 200; seq += 1) expect(store.lookup('t', `k${seq}`)?.seq).to.equal(seq);
    // A re-send of a swept key is a new original.
    expect(applyLogged(store, [row(201, 't', 'k3', 'again')])).to.equal(1);
    expect(store.lookup('t', 'k3')?.seq).to.equal(201);
    store.close();
  });

  it('migrates a layout-1 keys table in place, keys of events no longer in the index included', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const made = openTestStore(file, small(file, { horizonMs: 3_600_000 }));
    applyLogged(made, batchOf(1, 300));
    made.dropThrough(100, Date.now() - 60_000);
    made.close();
    // Turn it into the layout before generations: one keys table, no layout row.
    const raw = new Database(file);
    raw.exec(`
      CREATE TABLE keys (key BLOB PRIMARY KEY, seq INTEGER NOT NULL, digest BLOB NOT NULL) WITHOUT ROWID;
      INSERT INTO keys SELECT key, seq, digest FROM key_rows UNION ALL SELECT key, seq, digest FROM key_log WHERE seq >= coalesce((SELECT value FROM meta WHERE key = 'key_l0_from'), 0);
      DROP TABLE key_rows; DROP TABLE key_gens; DROP TABLE key_log;
      DELETE FROM meta WHERE key IN ('keys_layout', 'key_gen_next', 'key_l0_from');
    `);
    raw.close();
    fs.rmSync(`${file}.keys-filter`);

    const migrated = openTestStore(file, small(file, { horizonMs: 3_600_000 }));
    expect(migrated.keysMigrated).to.equal(300);
    expect(migrated.countRows()).to.equal(200);
    expectAllKnown(migrated, 300);
    expect(migrated.lookup('t', 'k1')).to.deep.equal({ seq: 1, digest: eventDigestOf(row(1, 't', 'k1').body) });
    expect(migrated.dedupKeyCount()).to.equal(300);
    expect(applyLogged(migrated, [row(301, 't', 'k7'), row(302, 't', 'fresh')])).to.equal(1);
    migrated.close();
    const again = openTestStore(file, small(file, { horizonMs: 3_600_000 }));
    expect(again.keysMigrated).to.equal(0);
    expectAllKnown(again, 300);
    expect(again.lookup('t', 'fresh')?.seq).to.equal(302);
    again.close();
  });

  it('rebuilds a missing filter in the background: lookups stay exact before it is done, and keys stored meanwhile are in it', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const first = openTestStore(file, small(file));
    for (let seq = 1; seq <= 300; seq += 30) applyLogged(first, batchOf(seq, 30));
    first.close();
    fs.rmSync(`${file}.keys-filter`);
    const rebuilt: Array<{ reason: string; keys: number }> = [];
    const second = openTestStore(
      file,
      small(file, { rebuildInBackground: true, onFilterRebuilt: (info: { reason: string; keys: number }) => rebuilt.push(info) }),
    );
    expect(second.keyFilterRebuilding).to.equal(true);
    expect(rebuilt).to.have.length(0);
    expectAllKnown(second, 300);
    expect(applyLogged(second, [row(301, 't', 'k301'), row(302, 't', 'k5')])).to.equal(1);
    settle(second);
    expect(second.keyFilterRebuilding).to.equal(false);
    expect(rebuilt).to.have.length(1);
    expect(rebuilt[0]!.reason).to.equal('missing');
    expectAllKnown(second, 301);
    expect(second.lookup('t', 'never')).to.equal(undefined);
    second.close();
  });

  it('replaces an expired key sent again while the filter is rebuilt in the background (the live path, in its generation)', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const first = openTestStore(file, small(file, { horizonMs: 1000 }));
    applyLogged(first, batchOf(1, 10));
    first.dropThrough(10, Date.now() - 5000);
    first.close();
    fs.rmSync(`${file}.keys-filter`);
    const second = openTestStore(file, small(file, { horizonMs: 1000, rebuildInBackground: true }));
    expect(second.keyFilterRebuilding).to.equal(true);
    expect(second.lookup('t', 'k3')).to.equal(undefined);
    // Publish proved it new (expired): the consumer appends it without a lookup, into the
    // generation that still holds the expired row.
    const again = row(11, 't', 'k3', 'again');
    appendLogged(second, [again]);
    expect(second.lookup('t', 'k3')).to.deep.equal({ seq: 11, digest: eventDigestOf(again.body) });
    expect(second.dedupKeyCount()).to.equal(10);
    settle(second);
    expect(second.lookup('t', 'k3')?.seq).to.equal(11);
    second.close();
  });
});

describe('IndexStore dedup keys: level 0 (key layout 3)', () => {
  const small = (file: string, extra: object = {}) => ({
    keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, genKeys: 40, mergeFanout: 100, ...extra },
  });
  const batchOf = (from: number, count: number, prefix = 'k'): IndexRow[] =>
    Array.from({ length: count }, (_, i) => row(from + i, 't', `${prefix}${from + i}`));
  const expectAllKnown = (store: IndexStore, through: number, prefix = 'k'): void => {
    for (let seq = 1; seq <= through; seq += 1) expect(store.lookup('t', `${prefix}${seq}`)?.seq, `key of seq ${seq}`).to.equal(seq);
  };
  const stateOf = (store: IndexStore): string[] => store.keyGenerations().map((g) => `${g.state}:${g.keys}`);

  it('appends keys to key_log, seals a full level into a generation in key order by steps, and finds every key after every step', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file));
    appendLogged(store, batchOf(1, 30));
    expect(stateOf(store)).to.deep.equal(['level0:30']);
    // The 40th key seals the level: a 'sealing' generation, a new active level.
    appendLogged(store, batchOf(31, 15));
    expect(stateOf(store)).to.deep.equal(['level0:45', 'sealing:0']);
    expect(store.keyLevelZero()).to.include({ keys: 5, sealedKeys: 40 });
    let steps = 0;
    while (store.keyMaintenanceStep(Date.now(), 7) !== null) {
      steps += 1;
      expectAllKnown(store, 45);
    }
    // Reads of 7 rows, one sort, writes of 7 rows, the switch, the deletion of the copied rows.
    expect(steps).to.be.greaterThan(12);
    expect(stateOf(store)).to.deep.equal(['level0:5', 'live:40']);
    expect(store.keyLevelZero()).to.include({ keys: 5, sealedKeys: 0 });
    const raw = new Database(file, { readonly: true });
    // The generation holds the sealed keys in key order with their seqs and digests; key_log only the active level.
    const copied = raw.prepare('SELECT key, seq, digest FROM key_rows ORDER BY key').all() as Array<{
      key: Buffer;
      seq: number;
      digest: Buffer;
    }>;
    expect(copied.map((r) => r.seq).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const r of copied) expect(r.key.equals(dedupKeyOf('t', `k${r.seq}`))).to.equal(true);
    expect(raw.prepare('SELECT seq FROM key_log ORDER BY seq').pluck().all()).to.deep.equal([41, 42, 43, 44, 45]);
    raw.close();
    expect(store.dedupKeyCount()).to.equal(45);
    expect(applyLogged(store, [row(46, 't', 'k3'), row(47, 't', 'k44'), row(48, 't', 'new')])).to.equal(1);
    store.close();
  });

  it('copies a sealed level of many buckets in key order across its chunks, and records its count and seq range without a scan', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file, { genKeys: 3000 }));
    // Records the seqs of each chunk the copy writes (the statement is the store's own, wrapped).
    const statements = (store as unknown as { keys: { statements: Record<string, Database.Statement> } }).keys.statements;
    const copy = statements.logCopy!;
    const chunks: number[][] = [];
    statements.logCopy = { all: (gen: number, seqs: string) => (chunks.push(JSON.parse(seqs) as number[]), copy.all(gen, seqs)) } as never;
    appendLogged(store, batchOf(1, 3000));
    appendLogged(store, batchOf(3001, 10));
    while (store.keyMaintenanceStep(Date.now(), 250) !== null);
    expect(stateOf(store)).to.deep.equal(['level0:10', 'live:3000']);
    const written = chunks.flat();
    expect([...written].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 3000 }, (_, i) => i + 1));
    const keys = written.map((seq) => dedupKeyOf('t', `k${seq}`));
    for (let i = 1; i < keys.length; i += 1) expect(Buffer.compare(keys[i - 1]!, keys[i]!), `chunk order at ${i}`).to.equal(-1);
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare("SELECT keys, min_seq AS minSeq, max_seq AS maxSeq FROM key_gens WHERE state = 'live'").get()).to.deep.equal({
      keys: 3000,
      minSeq: 1,
      maxSeq: 3000,
    });
    raw.close();
    expectAllKnown(store, 3010);
    store.close();
  });

  it('keeps at most two levels in memory when the upkeep falls behind: the older seal is finished by the put that fills the next', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file));
    for (let seq = 1; seq <= 400; seq += 25) {
      appendLogged(store, batchOf(seq, 25));
      const l0 = store.keyLevelZero();
      expect(l0.keys).to.be.at.most(40);
      expect(l0.sealedKeys).to.be.at.most(40);
    }
    expectAllKnown(store, 400);
    const gens = store.keyGenerations();
    expect(gens.filter((g) => g.state === 'sealing')).to.have.length(1);
    expect(gens.filter((g) => g.state === 'live').every((g) => g.keys === 40)).to.equal(true);
    expect(gens.reduce((sum, g) => sum + g.keys, 0)).to.equal(400);
    store.close();
  });

  it('resumes a seal cut at any step (the process died): each reopen finds every key, and the seal completes with no key lost or doubled', () => {
    const file = path.join(makeTempDir(), 'index.db');
    let store = openTestStore(file, small(file));
    appendLogged(store, batchOf(1, 55));
    // Cut after 1, 2, ... steps: reads, the sort, the writes, the switch, the deletion.
    for (let cut = 1; store.keyGenerations().some((g) => g.state === 'sealing') || cut === 1; cut += 1) {
      for (let i = 0; i < cut && store.keyMaintenanceStep(Date.now(), 9) !== null; i += 1);
      // No close(): the next open sees only what the last commit left, as after kill -9.
      store = openTestStore(file, small(file));
      expectAllKnown(store, 55);
      expect(store.dedupKeyCount()).to.equal(55);
      expect(store.keyGenerations().reduce((sum, g) => sum + g.keys, 0)).to.equal(55);
    }
    while (store.keyMaintenanceStep(Date.now(), 9) !== null);
    expect(stateOf(store)).to.deep.equal(['level0:15', 'live:40']);
    expect(appendLogged(store, batchOf(56, 10)).uniqueTotal).to.equal(65);
    expectAllKnown(store, 65);
    store.close();
  });

  it('forgets the level-0 keys of a batch rolled back with its transaction, the seal it started included', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file));
    appendLogged(store, batchOf(1, 35));
    // Row 46 has no log position: the batch fails after its first rows (and the seal at the 40th) were put.
    const bad = [...logRows(walDirOf(file), batchOf(36, 10)), row(46, 't', 'k46')];
    expect(() => store.appendNewRows(bad)).to.throw(/no log position/);
    expect(stateOf(store)).to.deep.equal(['level0:35']);
    for (let seq = 36; seq <= 46; seq += 1) expect(store.lookup('t', `k${seq}`)).to.equal(undefined);
    expectAllKnown(store, 35);
    expect(appendLogged(store, batchOf(36, 11)).uniqueTotal).to.equal(46);
    expectAllKnown(store, 46);
    expect(stateOf(store)).to.deep.equal(['level0:46', 'sealing:0']);
    store.close();
  });

  it('replaces an expired key of the sealed level sent again, and sweeps expired level-0 rows', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, small(file, { horizonMs: 1000 }));
    appendLogged(store, batchOf(1, 45));
    store.dropThrough(42, Date.now() - 5000);
    expect(store.lookup('t', 'k3')).to.equal(undefined);
    // k3 is in the sealed level (not copied yet): its row goes, the new one is in the active level.
    const again = row(46, 't', 'k3', 'again');
    appendLogged(store, [again]);
    expect(store.lookup('t', 'k3')).to.deep.equal({ seq: 46, digest: eventDigestOf(again.body) });
    expect(store.dedupKeyCount()).to.equal(45);
    while (store.keyMaintenanceStep() !== null);
    // Seqs 1-42 expired (k3's first row among them): 43-46 remain, 44 and 45 in level 0.
    expect(store.dedupKeyCount()).to.equal(4);
    expect(store.keyGenerations().reduce((sum, g) => sum + g.keys, 0)).to.equal(4);
    expect(store.lookup('t', 'k3')?.seq).to.equal(46);
    expect(store.lookup('t', 'k43')?.seq).to.equal(43);
    expect(store.lookup('t', 'k45')?.seq).to.equal(45);
    store.close();
  });

  it('upgrades key layout 2 in place: its generations stay and are read and merged, new keys go to key_log', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const made = openTestStore(file, small(file, { genKeys: 50 }));
    applyLogged(made, batchOf(1, 130));
    while (made.keyMaintenanceStep() !== null);
    made.close();
    // Layout 2: every key in a generation (the newest one the one inserts filled), no key_log.
    const raw = new Database(file);
    raw.exec(`
      INSERT INTO key_gens (gen, level, state, merged_into, min_seq, max_seq, keys)
        SELECT 1000, 0, 'live', NULL, min(seq), max(seq), count(*) FROM key_log WHERE seq >= (SELECT value FROM meta WHERE key = 'key_l0_from');
      INSERT INTO key_rows SELECT 1000, key, seq, digest FROM key_log WHERE seq >= (SELECT value FROM meta WHERE key = 'key_l0_from') ORDER BY key;
      DROP TABLE key_log;
      UPDATE meta SET value = 2 WHERE key = 'keys_layout';
      UPDATE meta SET value = 1001 WHERE key = 'key_gen_next';
      DELETE FROM meta WHERE key = 'key_l0_from';
    `);
    raw.close();
    expect(() => openTestStore(file, { readonly: true })).to.throw(/older key layout/);
    const upgraded = openTestStore(file, small(file, { genKeys: 50, mergeFanout: 3 }));
    expect(upgraded.keysMigrated).to.equal(0);
    expect(stateOf(upgraded)).to.deep.equal(['level0:0', 'live:50', 'live:50', 'live:30']);
    expectAllKnown(upgraded, 130);
    expect(applyLogged(upgraded, [...batchOf(131, 20), row(151, 't', 'k7')])).to.equal(20);
    while (upgraded.keyMaintenanceStep() !== null);
    // The three old generations were merged into one of level 1.
    expect(upgraded.keyGenerations().map((g) => `${g.level}:${g.state}:${g.keys}`)).to.deep.equal(['0:level0:20', '1:live:130']);
    expectAllKnown(upgraded, 150);
    expect(upgraded.dedupKeyCount()).to.equal(150);
    upgraded.close();
    const raw2 = new Database(file, { readonly: true });
    expect(raw2.prepare("SELECT value FROM meta WHERE key = 'keys_layout'").pluck().get()).to.equal(3);
    raw2.close();
    const reader = openTestStore(file, { readonly: true });
    expect(reader.lookup('t', 'k140')?.seq).to.equal(140);
    expect(reader.lookup('t', 'k20')?.seq).to.equal(20);
    reader.close();
  });
});

describe('IndexStore dedup keys: a key put behind level 0', () => {
  it('stores a re-indexed row whose seq lies below level 0 (after a repair) in a generation, and keeps counts and other keys', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, {
      keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, genKeys: 40, horizonMs: 3_600_000 },
    });
    const rows = Array.from({ length: 100 }, (_, i) => row(i + 1, 't', `k${i + 1}`));
    applyLogged(store, rows);
    while (store.keyMaintenanceStep() !== null);
    // Seq 5's key is gone (as a sweep would leave it) and its row is re-indexed from the log.
    const raw = new Database(file);
    raw.prepare('DELETE FROM key_rows WHERE seq = 5').run();
    raw.prepare('UPDATE key_gens SET keys = keys - 1 WHERE gen = (SELECT min(gen) FROM key_gens)').run();
    raw.prepare("INSERT INTO meta (key, value) VALUES ('keys_swept', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1").run();
    raw.close();
    expect(store.lookup('t', 'k5')).to.equal(undefined);
    store.invalidateFrom(5);
    expect(applyLogged(store, rows.slice(4))).to.equal(96);
    expect(store.lookup('t', 'k5')?.seq).to.equal(5);
    for (let seq = 1; seq <= 100; seq += 1) expect(store.lookup('t', `k${seq}`)?.seq, `k${seq}`).to.equal(seq);
    expect(store.dedupKeyCount()).to.equal(100);
    expect(store.keyGenerations().reduce((sum, g) => sum + g.keys, 0)).to.equal(100);
    // Upkeep (key_log rows below key_l0_from go) and a reopen: it is still there.
    while (store.keyMaintenanceStep() !== null);
    store.close();
    const again = openTestStore(file, {
      keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, genKeys: 40, horizonMs: 3_600_000 },
    });
    expect(again.lookup('t', 'k5')?.seq).to.equal(5);
    expect(again.dedupKeyCount()).to.equal(100);
    again.close();
  });
});

describe('IndexStore dedup keys: many generations', () => {
  it('finds known keys with more live generations than SQLite allows arms in one compound SELECT (merges far behind)', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file, {
      keys: { filterBytes: 64 * 1024, filterPath: `${file}.keys-filter`, genKeys: 16, mergeFanout: 10_000 },
    });
    const rows = Array.from({ length: 16 * 520 }, (_, i) => row(i + 1, 't', `k${i + 1}`));
    for (let i = 0; i < rows.length; i += 800) appendLogged(store, rows.slice(i, i + 800));
    while (store.keyMaintenanceStep() !== null);
    expect(store.keyGenerations().filter((g) => g.state === 'live').length).to.be.greaterThan(500);
    for (const seq of [1, 17, 4000, 8300]) expect(store.lookup('t', `k${seq}`)?.seq).to.equal(seq);
    expect(applyLogged(store, [row(8400, 't', 'k9'), row(8401, 't', 'fresh')])).to.equal(1);
    store.close();
  });
});
