import Database from 'better-sqlite3';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { repairDataDir } from '../../src/cli/repair';
import { verifyDataDir } from '../../src/cli/verify';
import { waitFor } from '../../src/cli/wait';
import { Aggregator, type ValidEvent } from '../../src/ingest/aggregator';
import type { IndexRow } from '../../src/index/store';
import { LogPositionReader, PositionMismatchError, POSITION_READER_HANDLES_MAX, READ_AHEAD_BYTES } from '../../src/wal/position-reader';
import { canonicalEventJson, encodeRecord, type LogEvent } from '../../src/wal/record';
import { listSegments } from '../../src/wal/segments';
import { NodeDisk } from '../../src/wal/disk';
import { applyLogged, logRows, openTestStore, walDirOf } from '../helpers/logged-rows';
import { paddedEvents, smallSegmentConfig } from '../helpers/small-segments';
import { makeTempDir } from '../helpers/temp-dir';

const logger = pino({ level: 'silent' });

function row(seq: number, text = `text-${seq}`): IndexRow {
  const event: LogEvent = {
    topic: `t${seq % 2}`,
    event_id: `e${seq}`,
    timestamp: '2025-10-23T10:00:00.000Z',
    source: 's',
    payload: { text },
  };
  return {
    seq,
    topic: event.topic,
    eventId: event.event_id,
    source: 's',
    tsMs: Date.parse(event.timestamp),
    body: canonicalEventJson(event),
  };
}

/** Publishes in batches of 8; returns each event's JSON by the seq it was acknowledged with. */
async function publish(aggregator: Aggregator, events: ValidEvent[]): Promise<Map<number, string>> {
  const bySeq = new Map<number, string>();
  for (let i = 0; i < events.length; i += 8) {
    const batch = events.slice(i, i + 8);
    const report = await aggregator.publish(batch);
    report.results.forEach((r, j) => bySeq.set(r.seq, canonicalEventJson(batch[j]!.event)));
  }
  return bySeq;
}

/**
 * Makes a schema-5 index what schema 4 wrote, in place: each event row holds its topic's text
 * (events_by_topic on (topic, seq)), the topics table holds names only, user_version 4. The
 * keys, deletions, time map and meta rows stay as they are: schema 4 had the same.
 */
function rewriteAsSchema4(db: Database.Database): void {
  db.exec(`
    CREATE TABLE events_v4 (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, event_id TEXT NOT NULL, source TEXT NOT NULL,
      ts_ms INTEGER NOT NULL, received_ms INTEGER, log_segment INTEGER NOT NULL, log_offset INTEGER NOT NULL, log_length INTEGER NOT NULL);
    INSERT INTO events_v4 SELECT e.seq, t.topic, e.event_id, e.source, e.ts_ms, e.received_ms, e.log_segment, e.log_offset, e.log_length
      FROM events AS e JOIN topics AS t ON t.id = e.topic_id;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;
    CREATE INDEX events_by_topic ON events (topic, seq);
    CREATE TABLE topics_v4 (topic TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT INTO topics_v4 SELECT topic FROM topics;
    DROP TABLE topics;
    ALTER TABLE topics_v4 RENAME TO topics;`);
  db.pragma('user_version = 4');
}

/** The names of a table's columns, or of an index's. */
function columnsOf(db: Database.Database, pragma: 'table_info' | 'index_info', name: string): string[] {
  return (db.prepare(`PRAGMA ${pragma}(${name})`).all() as Array<{ name: string }>).map((c) => c.name);
}

describe('event bodies read from the log by position', function () {
  this.timeout(60_000);

  it('serves pages and body filters (q, payload fields) from the log, the index holding no copy', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file);
    const rows = Array.from({ length: 50 }, (_, i) => row(i + 1, i % 10 === 3 ? 'needle here' : `hay ${i}`));
    applyLogged(store, rows.slice(0, 25));
    applyLogged(store, rows.slice(25));
    const columns = (new Database(file, { readonly: true }).prepare('PRAGMA table_info(events)').all() as Array<{ name: string }>).map(
      (c) => c.name,
    );
    expect(columns).to.not.include('body');
    const all = store.queryEvents({ limit: 100 });
    expect(all.map((r) => r.body)).to.deep.equal(rows.map((r) => r.body));
    const found = store.queryEvents({ words: ['needle'], limit: 100 });
    expect(found.map((r) => r.seq)).to.deep.equal([4, 14, 24, 34, 44]);
    const byField = store.readPage({ fields: [{ path: ['text'], value: 'hay 7' }], limit: 10 });
    expect(byField.rows.map((r) => r.seq)).to.deep.equal([8]);
    // The scan bound still holds when bodies come from the log: a page reads at most scanRowsMax rows.
    const bounded = store.readPage({ words: ['nope'], limit: 10, scanRowsMax: 20 });
    expect(bounded.rows).to.deep.equal([]);
    expect(bounded.nextCursor).to.equal(20);
    store.close();
  });

  it('never serves a line from a wrong offset as an event: the reader checks the checksum and the seq', () => {
    const walDir = path.join(makeTempDir(), 'wal');
    const [first, second] = logRows(walDir, [row(1), row(2)]);
    const reader = new LogPositionReader(walDir);
    expect(reader.read(2, second!.position!)!.eventJson).to.equal(second!.body);
    // Seq 2's line, asked for as seq 1: another record.
    expect(() => reader.read(1, second!.position!)).to.throw(PositionMismatchError, /holds seq 2/);
    // A position a byte off: not a record.
    expect(() => reader.read(1, { ...first!.position!, offset: 1 })).to.throw(PositionMismatchError);
    // Past the end of the file: not a whole line.
    expect(() => reader.read(2, { ...second!.position!, offset: second!.position!.offset + 10 })).to.throw(PositionMismatchError);
    reader.close();
  });

  it('reads neighbouring lines with one pread per READ_AHEAD_BYTES under withReadAhead, forward and backward, and keeps no bytes after it', () => {
    const walDir = path.join(makeTempDir(), 'wal');
    // Two segments of 600 rows of about 250 bytes: several windows each.
    const logged = [
      ...logRows(
        walDir,
        Array.from({ length: 600 }, (_, i) => row(i + 1, `${'x'.repeat(i % 90)} ${i}`)),
      ),
      ...logRows(
        walDir,
        Array.from({ length: 600 }, (_, i) => row(i + 601, `y ${i}`)),
      ),
    ];
    const reader = new LogPositionReader(walDir);
    let preads = 0;
    const readSync = fs.readSync;
    const counting = ((...args: Parameters<typeof fs.readSync>) => {
      preads += 1;
      return readSync(...args);
    }) as typeof fs.readSync;
    const bodies = (order: typeof logged): string[] => order.map((r) => reader.read(r.seq, r.position!)!.eventJson);
    const preadsFor = (order: typeof logged): { bodies: string[]; preads: number } => {
      preads = 0;
      fs.readSync = counting;
      try {
        return { bodies: reader.withReadAhead(() => bodies(order)), preads };
      } finally {
        fs.readSync = readSync;
      }
    };
    const logBytes = logged.reduce((sum, r) => sum + r.position!.length, 0);
    const windows = Math.ceil(logBytes / READ_AHEAD_BYTES) + 2;
    const forward = preadsFor(logged);
    expect(forward.bodies).to.deep.equal(logged.map((r) => r.body));
    expect(forward.preads).to.be.within(2, windows);
    const reversed = [...logged].reverse();
    const backward = preadsFor(reversed);
    expect(backward.bodies).to.deep.equal(reversed.map((r) => r.body));
    // One forward window at the start of each segment is wasted, then every window goes down the log.
    expect(backward.preads).to.be.within(2, windows + 2);
    // Out of order (every 7th row, then the rest): the same bodies as plain reads, one pread per row at most.
    const scattered = [...logged.filter((_, i) => i % 7 === 0), ...logged.filter((_, i) => i % 7 !== 0)];
    const shuffled = preadsFor(scattered);
    expect(shuffled.bodies).to.deep.equal(bodies(scattered));
    expect(shuffled.preads).to.be.at.most(scattered.length);
    // A page of 100 rows in seq order costs one or two reads instead of 100.
    expect(preadsFor(logged.slice(300, 400)).preads).to.be.at.most(2);
    // A line is still checked in the window: seq 2's bytes asked for as seq 1.
    expect(() => reader.withReadAhead(() => reader.read(1, logged[1]!.position!))).to.throw(PositionMismatchError, /holds seq 2/);
    // No bytes outlive withReadAhead: seq 2's line rewritten in place (same length, new body) reads new.
    const file = path.join(walDir, '00000000000000000001.ndjson');
    const second = logged[1]!;
    expect(reader.withReadAhead(() => bodies(logged.slice(0, 2)))[1]).to.include('"x 1"');
    const replaced = row(2, 'z 1');
    const line = encodeRecord(2, replaced.body, null);
    expect(Buffer.byteLength(line)).to.equal(second.position!.length);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, line, second.position!.offset);
    fs.closeSync(fd);
    expect(reader.withReadAhead(() => reader.read(2, second.position!))!.eventJson).to.equal(replaced.body);
    reader.close();
  });

  it('keeps at most POSITION_READER_HANDLES_MAX segment files open and lets go of those retention unlinked', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file);
    const segments = POSITION_READER_HANDLES_MAX * 2 + 3;
    // One segment per batch of three rows.
    for (let s = 0; s < segments; s += 1) applyLogged(store, [row(s * 3 + 1), row(s * 3 + 2), row(s * 3 + 3)]);
    expect(listSegments(new NodeDisk(), walDirOf(file))).to.have.length(segments);
    expect(store.queryEvents({ limit: 1000 })).to.have.length(segments * 3);
    expect(store.openLogHandles).to.equal(POSITION_READER_HANDLES_MAX);
    // Unlink the newest segment, whose handle is open: the next page closes it.
    const newest = listSegments(new NodeDisk(), walDirOf(file)).at(-1)!;
    fs.unlinkSync(newest.path);
    // A page in the segment before it, whose handle is open too.
    expect(store.readPage({ limit: 1, afterSeq: (segments - 2) * 3 }).rows.map((r) => r.seq)).to.deep.equal([(segments - 2) * 3 + 1]);
    expect(store.openLogHandles).to.equal(POSITION_READER_HANDLES_MAX - 1);
    store.close();
    expect(store.openLogHandles).to.equal(0);
  });

  it('answers a page whose rows lie in a segment unlinked under it by skipping them, with a cursor to go on', () => {
    const file = path.join(makeTempDir(), 'index.db');
    const store = openTestStore(file);
    applyLogged(store, [row(1), row(2), row(3)]);
    applyLogged(store, [row(4), row(5), row(6)]);
    // Read once, so the first segment's handle is open; then unlink it (rows still indexed, as in a
    // read racing retention between its index step and the unlink).
    expect(store.queryEvents({ limit: 10 })).to.have.length(6);
    fs.unlinkSync(path.join(walDirOf(file), '00000000000000000001.ndjson'));
    const page = store.readPage({ limit: 2 });
    expect(page.rows).to.deep.equal([]);
    expect(page.nextCursor).to.equal(2);
    const next = store.readPage({ limit: 2, afterSeq: 3 });
    expect(next.rows.map((r) => r.seq)).to.deep.equal([4, 5]);
    expect(store.queryEvents({ limit: 10 }).map((r) => r.seq)).to.deep.equal([4, 5, 6]);
    expect(store.queryEvents({ order: 'desc', limit: 10 }).map((r) => r.seq)).to.deep.equal([6, 5, 4]);
    expect(store.queryEvents({ words: ['text'], limit: 10 }).map((r) => r.seq)).to.deep.equal([4, 5, 6]);
    store.close();
  });

  it('upgrades a schema-3 index in place: events re-indexed from the log, the key of an expired event still a duplicate', async () => {
    const dataDir = makeTempDir();
    const config = smallSegmentConfig(dataDir, { retentionBytes: 3 * 4096 });
    const first = new Aggregator({ config, logger });
    await first.open();
    const events = paddedEvents(
      'old',
      150,
      () => 't',
      (i) => ({ n: i }),
    );
    const published = await publish(first, events);
    await waitFor(() => first.queueSize() === 0, { timeoutMs: 10_000, what: 'the index to catch up' });
    await first.runRetention();
    const firstSeq = first.firstSeq;
    expect(firstSeq).to.be.greaterThan(1);
    await first.close();

    // Make the index what schema 3 wrote: the tables of schema 4, with each event's JSON in
    // events.body, and its keys in the one keys table of key layout 1 (before generations).
    const db = new Database(config.databasePath);
    rewriteAsSchema4(db);
    const kept = db.prepare('SELECT seq, topic, event_id, source, ts_ms, received_ms FROM events ORDER BY seq').all() as Array<
      Record<string, unknown> & { seq: number }
    >;
    db.exec(`DROP TABLE events;
      CREATE TABLE events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, event_id TEXT NOT NULL, source TEXT NOT NULL,
        ts_ms INTEGER NOT NULL, received_ms INTEGER, body TEXT NOT NULL);
      CREATE INDEX events_by_topic ON events (topic, seq);
      CREATE TABLE keys (key BLOB PRIMARY KEY, seq INTEGER NOT NULL, digest BLOB NOT NULL) WITHOUT ROWID;
      INSERT INTO keys SELECT key, seq, digest FROM key_rows
        UNION ALL SELECT key, seq, digest FROM key_log WHERE seq >= coalesce((SELECT value FROM meta WHERE key = 'key_l0_from'), 0);
      DROP TABLE key_rows; DROP TABLE key_gens; DROP TABLE key_log;
      DELETE FROM meta WHERE key IN ('keys_layout', 'key_gen_next', 'key_gen_keys', 'key_l0_from');`);
    const insert = db.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)');
    for (const r of kept) insert.run(r.seq, r.topic, r.event_id, r.source, r.ts_ms, r.received_ms, published.get(r.seq));
    db.pragma('user_version = 3');
    const keysBefore = db.prepare('SELECT count(*) FROM keys').pluck().get() as number;
    db.close();
    expect(keysBefore).to.equal(150);

    const second = new Aggregator({ config: { ...config, retentionBytes: 0 }, logger });
    await second.open();
    expect(second.index.schemaUpgraded).to.equal(true);
    expect(second.index.keysMigrated).to.equal(150);
    expect(second.firstSeq).to.equal(firstSeq);
    // Every retained event reads back from the log, each once.
    const rows = second.queryEvents({ limit: 1000 });
    expect(rows.map((r) => r.seq)).to.deep.equal([...published.keys()].filter((seq) => seq >= firstSeq));
    for (const r of rows) expect(r.body).to.equal(published.get(r.seq));
    expect(second.index.dedupKeyCount()).to.equal(150);
    // A re-send of an event retention deleted before the upgrade, and of a retained one: duplicates of their originals.
    const again = await second.publish([events[0]!, events[149]!]);
    expect(again.results.map((r) => [r.status, r.seq])).to.deep.equal([
      ['duplicate', 1],
      ['duplicate', 150],
    ]);
    expect(second.snapshot().uniqueTotal).to.equal(150);
    await second.close();
    // The re-indexed rows gave their topic back to the topics table (schema 4 left it empty after this upgrade).
    const third = new Aggregator({ config: { ...config, retentionBytes: 0 }, logger });
    await third.open();
    expect(third.topics()).to.deep.equal(['t']);
    expect(third.queryEvents({ topics: ['t'], limit: 1000 })).to.have.length(rows.length);
    await third.close();
  });

  it('upgrades a schema-4 index in place: topic ids in the rows, nothing re-indexed, keys, time map and checkpoint kept', async () => {
    const dataDir = makeTempDir();
    const config = smallSegmentConfig(dataDir, { retentionBytes: 3 * 4096 });
    const first = new Aggregator({ config, logger });
    await first.open();
    const topicOf = (i: number): string => ['orders', 'payments', 'users.login'][i % 3]!;
    const events = paddedEvents('v4', 150, topicOf, (i) => ({ n: i }));
    const published = await publish(first, events);
    await waitFor(() => first.queueSize() === 0, { timeoutMs: 10_000, what: 'the index to catch up' });
    await first.runRetention();
    const firstSeq = first.firstSeq;
    expect(firstSeq).to.be.greaterThan(1);
    const before = { ...first.index.counters, retention: first.index.retained };
    await first.close();

    const db = new Database(config.databasePath);
    rewriteAsSchema4(db);
    // An index that went through the schema-3 upgrade lacks the topics of its re-indexed rows: one is missing here.
    db.prepare("DELETE FROM topics WHERE topic = 'payments'").run();
    const blocksBefore = db.prepare('SELECT * FROM time_blocks ORDER BY block').all();
    const deletionsBefore = db.prepare('SELECT * FROM deletions ORDER BY last_seq').all();
    db.close();

    const second = new Aggregator({ config: { ...config, retentionBytes: 0 }, logger });
    await second.open();
    const retained = [...published.keys()].filter((seq) => seq >= firstSeq);
    expect(second.index.topicIdsUpgrade?.rows).to.equal(retained.length);
    expect(second.index.schemaUpgraded).to.equal(false);
    expect(second.index.schemaReset).to.equal(false);
    // The checkpoint, counters and retention state are those of before: nothing was replayed.
    expect(second.index.counters).to.deep.equal({
      checkpointSeq: before.checkpointSeq,
      uniqueTotal: before.uniqueTotal,
      duplicatesTotal: 0,
      conflictsTotal: 0,
    });
    expect(second.index.retained).to.deep.equal(before.retention);
    expect(second.recovery?.recordsReplayed ?? 0).to.equal(0);
    expect(second.topics()).to.deep.equal(['orders', 'payments', 'users.login']);
    // Every retained event, in both orders, through the read worker; and each topic's own pages.
    const all = await second.readPage({ limit: 1000 });
    expect(all.threadId).to.not.equal(0);
    expect(all.rows.map((r) => r.seq)).to.deep.equal(retained);
    for (const r of all.rows) expect(r.body).to.equal(published.get(r.seq));
    const newest = await second.readPage({ order: 'desc', limit: 1000 });
    expect(newest.rows.map((r) => r.seq)).to.deep.equal([...retained].reverse());
    const topicOfSeq = (seq: number): string => (JSON.parse(published.get(seq)!) as { topic: string }).topic;
    for (const topic of ['orders', 'payments', 'users.login']) {
      const mine = retained.filter((seq) => topicOfSeq(seq) === topic);
      expect(mine.length).to.be.greaterThan(10);
      const page = await second.readPage({ topics: [topic], order: 'desc', limit: 5 });
      expect(page.rows.map((r) => r.seq)).to.deep.equal(mine.slice(-5).reverse());
      const next = await second.readPage({ topics: [topic], order: 'desc', limit: 1000, afterSeq: page.nextCursor! });
      expect(next.rows.map((r) => r.seq)).to.deep.equal(mine.slice(0, -5).reverse());
    }
    const two = second.queryEvents({ topics: ['payments', 'orders'], limit: 1000 }).map((r) => r.seq);
    expect(two).to.deep.equal(retained.filter((seq) => topicOfSeq(seq) !== 'users.login'));
    expect(second.queryEvents({ topics: ['nope'], limit: 10 })).to.deep.equal([]);
    const histogram = await second.histogram({ topics: ['users.login'] }, 10, 1000);
    expect(histogram.total).to.equal(retained.filter((seq) => topicOfSeq(seq) === 'users.login').length);
    // The layout is schema 5's; the time map and deletions are the same rows.
    const after = new Database(config.databasePath, { readonly: true });
    expect(after.pragma('user_version', { simple: true })).to.equal(5);
    expect(columnsOf(after, 'table_info', 'events'))
      .to.include('topic_id')
      .and.not.include('topic');
    expect(columnsOf(after, 'index_info', 'events_by_topic')).to.deep.equal(['topic_id', 'seq']);
    expect(after.prepare('SELECT * FROM time_blocks ORDER BY block').all()).to.deep.equal(blocksBefore);
    expect(after.prepare('SELECT * FROM deletions ORDER BY last_seq').all()).to.deep.equal(deletionsBefore);
    after.close();
    // Keys of events retention deleted before the upgrade are still there: re-sends are duplicates.
    expect(second.index.dedupKeyCount()).to.equal(150);
    const again = await second.publish([events[0]!, events[149]!]);
    expect(again.results.map((r) => [r.status, r.seq])).to.deep.equal([
      ['duplicate', 1],
      ['duplicate', 150],
    ]);
    // A new topic after the upgrade gets the next id.
    const fresh = await second.publish(paddedEvents('new', 2, () => 'audit'));
    expect(fresh.results.map((r) => r.status)).to.deep.equal(['accepted', 'accepted']);
    await waitFor(() => second.queueSize() === 0, { timeoutMs: 10_000, what: 'the index to catch up' });
    await second.close();

    const third = new Aggregator({ config: { ...config, retentionBytes: 0 }, logger });
    await third.open();
    expect(third.index.topicIdsUpgrade).to.equal(null);
    expect(third.topics()).to.deep.equal(['audit', 'orders', 'payments', 'users.login']);
    expect(third.queryEvents({ topics: ['audit'], limit: 10 }).map((r) => r.seq)).to.deep.equal(fresh.results.map((r) => r.seq));
    expect(third.snapshot().uniqueTotal).to.equal(152);
    await third.close();
  });

  it('after `logagg repair` rewrote a segment, the next start re-indexes it and every event reads correctly', async () => {
    const dataDir = makeTempDir();
    const config = smallSegmentConfig(dataDir);
    const first = new Aggregator({ config, logger });
    await first.open();
    const published = await publish(
      first,
      paddedEvents(
        'r',
        100,
        () => 't',
        (i) => ({ n: i }),
      ),
    );
    await first.close();
    const segments = listSegments(new NodeDisk(), config.walDir);
    expect(segments.length).to.be.greaterThan(3);
    // Corrupt the second line of the second segment: repair moves it out, every later line of that segment moves up.
    const target = segments[1]!;
    const lines = fs.readFileSync(target.path, 'utf8').split('\n');
    const badSeq = target.firstSeq + 1;
    lines[1] = lines[1]!.replace('"pad":"x', '"pad":"y');
    fs.writeFileSync(target.path, lines.join('\n'));

    const repaired = repairDataDir(config.walDir, { quarantineCorrupt: true, dryRun: false, databasePath: config.databasePath });
    expect(repaired.ok).to.equal(true);
    expect(repaired.index.invalidatedFromSeq).to.equal(target.firstSeq);
    expect(repaired.index.rowsDropped).to.be.greaterThan(1);

    const second = new Aggregator({ config, logger });
    await second.open();
    const rows = second.queryEvents({ limit: 1000 });
    expect(rows.map((r) => r.seq)).to.deep.equal([...published.keys()].filter((seq) => seq !== badSeq));
    for (const r of rows) expect(r.body).to.equal(published.get(r.seq));
    // The event repair moved out is no longer counted as stored.
    expect(second.snapshot().uniqueTotal).to.equal(99);
    await second.close();
    const verified = verifyDataDir({ dataDir, walDir: config.walDir, databasePath: config.databasePath });
    expect(verified.index.problems).to.deep.equal([]);
    expect(verified.problems).to.equal(0);
  });
});
