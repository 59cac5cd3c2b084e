import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Random } from '../../src/cli/random';
import { waitFor } from '../../src/cli/wait';
import { Aggregator } from '../../src/ingest/aggregator';
import { rebuildIndex } from '../../src/cli/rebuild';
import { IndexStore } from '../../src/index/store';
import { NodeDisk } from '../../src/wal/disk';
import { readLastRecord, readSegments } from '../../src/wal/reader';
import { finishDeletions, readRetainedMarker, retainedSegments, writeRetainedMarker } from '../../src/wal/retention';
import { listSegments } from '../../src/wal/segments';
import { canonicalEventJson, decodeLine, encodeRecord } from '../../src/wal/record';
import { PowerLossDisk, SimulatedPowerLoss } from '../harness/power-loss-disk';
import { paddedEvents, smallSegmentConfig } from '../helpers/small-segments';
import { makeTempDir } from '../helpers/temp-dir';
import { openTestStore, applyLogged } from '../helpers/logged-rows';

const logger = pino({ level: 'silent' });

/** Publishes `count` events in batches of 8 and returns their keys with the seq each was acknowledged with. */
async function publish(aggregator: Aggregator, prefix: string, count: number): Promise<Map<string, { seq: number; json: string }>> {
  const acked = new Map<string, { seq: number; json: string }>();
  const events = paddedEvents(prefix, count, (i) => `t${i % 3}`);
  for (let i = 0; i < events.length; i += 8) {
    const batch = events.slice(i, i + 8);
    const report = await aggregator.publish(batch);
    report.results.forEach((r, j) => acked.set(batch[j]!.event.event_id, { seq: r.seq, json: canonicalEventJson(batch[j]!.event) }));
  }
  return acked;
}

/** A NodeDisk that records the calls that change the wal dir, in order. */
class RecordingDisk extends NodeDisk {
  readonly calls: string[] = [];

  override writeFileDurably(file: string, data: Buffer | Iterable<Buffer>): void {
    this.calls.push(`writeFileDurably ${path.basename(file)}`);
    super.writeFileDurably(file, data);
  }

  override renameSync(from: string, to: string): void {
    this.calls.push(`rename ${path.basename(from)} ${path.basename(to)}`);
    super.renameSync(from, to);
  }

  override fsyncDir(dir: string): void {
    this.calls.push(`fsyncDir ${path.basename(dir)}`);
    super.fsyncDir(dir);
  }

  override unlink(file: string): void {
    this.calls.push(`unlink ${path.basename(file)}`);
    super.unlink(file);
  }
}

describe('IndexStore.dropThrough', () => {
  it('deletes rows up to a seq, records the deletion and first_seq, and commits with synchronous=FULL', () => {
    const store = openTestStore(path.join(makeTempDir(), 'index.db'));
    applyLogged(
      store,
      [1, 2, 3, 4].map((seq) => ({ seq, topic: 't', eventId: `e${seq}`, source: 's', tsMs: 0, body: `{"n":${seq}}` })),
    );
    const db = (store as unknown as { db: { pragma: (source: string, options?: unknown) => unknown } }).db;
    const pragmas: string[] = [];
    const original = db.pragma.bind(db);
    db.pragma = (source: string, options?: unknown) => {
      pragmas.push(source);
      return original(source, options);
    };
    expect(store.dropThrough(2, 1234)).to.equal(2);
    expect(pragmas).to.deep.equal(['synchronous = FULL', 'synchronous = NORMAL']);
    pragmas.length = 0;
    expect(store.dropThrough(3, 5678, { durable: false })).to.equal(1);
    expect(pragmas).to.deep.equal([]);
    expect(store.retained).to.deep.equal({ firstSeq: 4, expiredTotal: 3, lastDeletionMs: 5678 });
    expect(store.queryEvents({ limit: 10 }).map((r) => r.seq)).to.deep.equal([4]);
    expect(store.readRetention()).to.deep.equal(store.retained);
    expect(() => store.dropThrough(5, 1)).to.throw('past the checkpoint');
    store.close();
  });
});

describe('retention', function () {
  this.timeout(120_000);

  it('unlinks a segment only after the index drop covering it is durable, then the marker, then the dir fsync', async () => {
    const dataDir = makeTempDir();
    const disk = new RecordingDisk();
    const first = new Aggregator({ config: smallSegmentConfig(dataDir), logger, disk });
    await first.open();
    await publish(first, 'e', 200);
    await first.close();
    const segments = listSegments(disk, path.join(dataDir, 'wal'));
    expect(segments.length).to.be.greaterThan(4);

    // Every step in one ordered list: the index drops (spied) and the disk calls.
    const calls = disk.calls;
    calls.length = 0;
    const steps: string[] = [];
    // Called back with the store as `this` below, never unbound.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const original = IndexStore.prototype.dropThrough;
    IndexStore.prototype.dropThrough = function (this: IndexStore, lastSeq, deletedAtMs, options) {
      const deleted = original.call(this, lastSeq, deletedAtMs, options);
      calls.push(`drop ${lastSeq} ${options?.durable === false ? 'normal' : 'durable'}`);
      return deleted;
    };
    let aggregator: Aggregator | null = null;
    try {
      aggregator = new Aggregator({
        config: smallSegmentConfig(dataDir, { retentionBytes: 12_000 }),
        logger,
        disk,
        observer: { onRetentionStep: (s) => steps.push(s.step) },
      });
      await aggregator.open();
      await aggregator.runRetention();
      await aggregator.close();
      aggregator = null;
    } finally {
      IndexStore.prototype.dropThrough = original;
      await aggregator?.close();
    }
    const unlinked = calls.filter((c) => c.startsWith('unlink'));
    expect(unlinked.length).to.be.greaterThan(1);
    for (const [n, segment] of segments.entries()) {
      const at = calls.indexOf(`unlink ${segment.name}`);
      if (at === -1) continue;
      const lastSeq = segments[n + 1]!.firstSeq - 1;
      const next = segments[n + 1]!.firstSeq;
      // a. durable drop, b. marker written, renamed and the dir fsynced, c. unlink, d. dir fsync.
      expect(calls.slice(at - 4, at + 2), segment.name).to.deep.equal([
        `drop ${lastSeq} durable`,
        'writeFileDurably RETAINED.tmp',
        'rename RETAINED.tmp RETAINED',
        'fsyncDir wal',
        `unlink ${segment.name}`,
        'fsyncDir wal',
      ]);
      expect(readRetainedMarker(disk, path.join(dataDir, 'wal'))).to.be.at.least(next);
    }
    expect(steps.slice(0, 4)).to.deep.equal(['index_durable', 'marker_durable', 'unlinked', 'dir_synced']);
  });

  it('RETENTION_MS deletes the oldest closed segments whose newest event is older, using the mtime of format-1 records', async () => {
    const dataDir = makeTempDir();
    const first = new Aggregator({ config: smallSegmentConfig(dataDir), logger });
    await first.open();
    const acked = await publish(first, 'e', 120);
    await first.close();
    const walDir = path.join(dataDir, 'wal');
    const segments = listSegments(new NodeDisk(), walDir);
    expect(segments.length).to.be.greaterThan(3);
    // The last record of a closed segment is read by a bounded tail read.
    const last = readLastRecord(new NodeDisk(), segments[0]!)!;
    expect(last.seq).to.equal(segments[1]!.firstSeq - 1);
    // Format-1 records carry no received_at: rewrite the segments in that format (same seqs and
    // events), so their age is the file's mtime.
    for (const segment of segments) {
      const lines = fs
        .readFileSync(segment.path, 'utf8')
        .split('\n')
        .filter((line) => line !== '');
      const v1 = lines.map((line) => {
        const record = decodeLine(line);
        if (typeof record === 'string') throw new Error(`bad line in ${segment.name}: ${record}`);
        return encodeRecord(record.seq, record.eventJson);
      });
      fs.writeFileSync(segment.path, v1.join(''));
    }
    // The rewrite moved every record's bytes: the index is rebuilt over the new positions, as an operator would.
    expect(rebuildIndex({ walDir, databasePath: path.join(dataDir, 'index.db') }, { keepOld: false }).ok).to.equal(true);
    expect(readLastRecord(new NodeDisk(), segments[0]!)!.receivedAtMs).to.equal(null);
    // Segments 0 and 1 are an hour old, 2 is new, 3 is old again: only the oldest run goes.
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const n of [0, 1, 3]) fs.utimesSync(segments[n]!.path, hourAgo, hourAgo);
    const aggregator = new Aggregator({ config: smallSegmentConfig(dataDir, { retentionMs: 60_000 }), logger });
    await aggregator.open();
    const deleted = await aggregator.runRetention();
    expect(deleted.map((d) => [d.segment, d.reason])).to.deep.equal([
      [segments[0]!.name, 'age'],
      [segments[1]!.name, 'age'],
    ]);
    expect(aggregator.firstSeq).to.equal(segments[2]!.firstSeq);
    expect(listSegments(new NodeDisk(), walDir).map((s) => s.name)).to.deep.equal(segments.slice(2).map((s) => s.name));
    // The rows of the deleted segments are gone with them; the rest stay.
    for (const { seq } of acked.values()) {
      const row = aggregator.index.queryEvents({ limit: 1, afterSeq: seq - 1 })[0];
      if (seq < segments[2]!.firstSeq) expect(row?.seq ?? Infinity).to.be.greaterThan(seq);
      else expect(row?.seq).to.equal(seq);
    }
    await aggregator.close();
  });

  it('never deletes the active segment, nor one the index checkpoint does not cover', async () => {
    const dataDir = makeTempDir();
    const aggregator = new Aggregator({ config: smallSegmentConfig(dataDir, { retentionBytes: 1 }), logger });
    await aggregator.open();
    await publish(aggregator, 'e', 100);
    await waitFor(() => aggregator.queueSize() === 0, { timeoutMs: 10_000, what: 'the index to catch up' });
    await aggregator.runRetention();
    const segments = listSegments(new NodeDisk(), path.join(dataDir, 'wal'));
    // RETENTION_BYTES=1 deletes everything it may: the active segment stays, and the log starts there.
    expect(segments.map((s) => s.name)).to.deep.equal([aggregator.snapshot().segment!.name]);
    expect(aggregator.firstSeq).to.equal(segments[0]!.firstSeq);
    await aggregator.close();
  });

  it('finishes a deletion interrupted after the index drop: the marker is written and the segment unlinked, never replayed', () => {
    const dataDir = makeTempDir();
    const walDir = path.join(dataDir, 'wal');
    fs.mkdirSync(walDir);
    const disk = new NodeDisk();
    for (const first of [1, 11, 21]) fs.writeFileSync(path.join(walDir, `${String(first).padStart(20, '0')}.ndjson`), '');
    writeRetainedMarker(disk, walDir, 11);
    // The index dropped through seq 20 (first_seq 21) but the process died before step b.
    const retained = finishDeletions(disk, walDir, 21);
    expect(retained.firstSeq).to.equal(21);
    expect(readRetainedMarker(disk, walDir)).to.equal(21);
    expect(listSegments(disk, walDir).map((s) => s.firstSeq)).to.deep.equal([21]);
    // A first_seq inside a segment (a drop cut into chunks) keeps that segment.
    expect(retainedSegments(disk, walDir, 25).segments.map((s) => s.firstSeq)).to.deep.equal([21]);
  });

  it('recovers cleanly from a power loss at every step of a deletion, including an unlink the power loss undoes', async function () {
    // About 170 crash points, each a whole setup, publish and restart: 1 min quiet, 2 min at load 6.
    this.timeout(360_000);
    let unlinksUndone = 0;
    let crashesInDeletion = 0;
    const random = new Random(11);
    for (let crashAt = 1; ; crashAt += 1) {
      const dataDir = makeTempDir();
      const disk = new PowerLossDisk(dataDir);
      const setup = new Aggregator({ config: smallSegmentConfig(dataDir), logger, disk });
      await setup.open();
      const acked = await publish(setup, 'e', 100);
      await setup.close();

      // The power goes out at the crashAt-th disk operation after the start-up of a service
      // with retention on (every deletion runs in between).
      let crashed = false;
      const running = new Aggregator({ config: smallSegmentConfig(dataDir, { retentionBytes: 9000 }), logger, disk });
      await running.open();
      disk.armCrash(crashAt, () => {
        crashed = true;
        running.index.close();
      });
      try {
        await running.runRetention();
      } catch (err) {
        if (!(err instanceof SimulatedPowerLoss) && !crashed) throw err;
      }
      disk.disarmCrash();
      // The crashed process's timers stop with it.
      if (crashed) await running.close().catch(() => undefined);
      if (!crashed) {
        await running.close();
        expect(crashesInDeletion).to.be.greaterThan(10);
        break;
      }
      crashesInDeletion += 1;
      unlinksUndone += disk.reboot(random, 'drop').unlinksUndone;

      // Restart without retention: what the interrupted deletion left must read clean.
      const again = new Aggregator({ config: smallSegmentConfig(dataDir), logger, disk });
      await again.open();
      const firstSeq = again.firstSeq;
      const walDir = path.join(dataDir, 'wal');
      const retained = retainedSegments(disk, walDir, firstSeq);
      expect(retained.expired, `crash at ${crashAt}`).to.deep.equal([]);
      const problems = [...readSegments(disk, retained.segments, { expectedFirstSeq: retained.firstSeq })].filter(
        (item) => item.kind === 'corruption' || item.kind === 'seq_break' || item.kind === 'torn_tail',
      );
      expect(problems, `crash at ${crashAt}`).to.deep.equal([]);
      // No event of a deleted segment in queries; every acknowledged event kept or expired, once.
      const rows = again.index.queryEvents({ limit: 1000 });
      expect(rows[0]?.seq, `crash at ${crashAt}`).to.equal(firstSeq);
      expect(retained.segments[0]!.firstSeq, `crash at ${crashAt}`).to.be.at.most(firstSeq);
      for (const { seq, json } of acked.values()) {
        const row = rows.find((r) => r.seq === seq);
        if (seq < firstSeq) expect(row, `crash at ${crashAt}: seq ${seq} below first_seq ${firstSeq}`).to.equal(undefined);
        else expect(row?.body, `crash at ${crashAt}: seq ${seq}`).to.equal(json);
      }
      expect(again.index.counters.uniqueTotal - again.retentionSnapshot().expiredTotal).to.equal(rows.length);
      await again.close();
    }
    // The power loss undid some unlinks (not yet made durable by the dir fsync); recovery finished them.
    expect(unlinksUndone).to.be.greaterThan(0);
  });
});
