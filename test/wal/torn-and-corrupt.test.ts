import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Random } from '../../src/cli/random';
import { Aggregator } from '../../src/ingest/aggregator';
import { isTombstoneEventJson } from '../../src/wal/record';
import { readSegmentFile, type SegmentRead } from '../helpers/log-read';
import { LogCorruptionError, recoverLog, type RecoveryReport } from '../../src/wal/recovery';
import { repairLog } from '../../src/wal/repair';
import { listSegments } from '../../src/wal/segments';
import { NodeDisk, type LogDisk } from '../../src/wal/disk';
import { PowerLossDisk, SimulatedPowerLoss, type CrashModel } from '../harness/power-loss-disk';
import { makeEvent } from '../helpers/events';
import { cutTo, flipBit } from '../helpers/fixtures';
import { makeTempDir } from '../helpers/temp-dir';

const EVENTS = 40;

interface Located extends Omit<SegmentRead['records'][number], 'tombstone'> {
  file: string;
  segmentIndex: number;
}

/** Builds a log of EVENTS events over several segments with the real writer; returns its wal dir and records. */
async function buildLog(): Promise<{ walDir: string; records: Located[]; segments: string[] }> {
  const dataDir = makeTempDir();
  const aggregator = new Aggregator({
    config: {
      walDir: path.join(dataDir, 'wal'),
      databasePath: path.join(dataDir, 'index.db'),
      queueMaxSize: 1000,
      segmentBytesMax: 4096,
      indexBatchMax: 100,
      retryAfterSeconds: 1,
    },
    logger: pino({ level: 'silent' }),
  });
  await aggregator.open();
  for (let i = 0; i < EVENTS; i += 1) {
    const event = makeEvent(`topic-${i % 3}`, `id-${i}`, {
      i,
      text: 'Jx'.repeat(i >= EVENTS - 3 ? 5 : 20 + (i % 7) * 30),
      unicode: 'é😀\u2028',
    });
    await aggregator.publish([{ event, tsMs: Date.parse(event.timestamp) }]);
  }
  await aggregator.close();
  const walDir = path.join(dataDir, 'wal');
  const segments = listSegments(new NodeDisk(), walDir).map((s) => s.path);
  const records: Located[] = [];
  segments.forEach((file, segmentIndex) => {
    for (const { tombstone: _tombstone, ...record } of readSegmentFile(file).records) records.push({ ...record, file, segmentIndex });
  });
  return { walDir, records, segments };
}

/** A fresh data dir holding a copy of `walDir` and no index, so recovery reads every record. */
function copyLog(walDir: string): { dataDir: string; walDir: string; disk: LogDisk } {
  const dataDir = makeTempDir();
  fs.cpSync(walDir, path.join(dataDir, 'wal'), { recursive: true });
  return { dataDir, walDir: path.join(dataDir, 'wal'), disk: new NodeDisk() };
}

/** The same, on an in-memory disk (no fsync cost) for recovery-only runs. */
function copyLogInMemory(walDir: string): { dataDir: string; walDir: string; disk: LogDisk } {
  const dataDir = path.join(path.dirname(walDir), 'in-memory');
  const disk = new PowerLossDisk(dataDir);
  disk.mkdirp(path.join(dataDir, 'wal'));
  for (const name of fs.readdirSync(walDir)) {
    if (name.endsWith('.ndjson')) disk.writeFileDurably(path.join(dataDir, 'wal', name), fs.readFileSync(path.join(walDir, name)));
  }
  return { dataDir, walDir: path.join(dataDir, 'wal'), disk };
}

async function startOn(dataDir: string, warnings: string[] = [], overrides: { indexBatchMax?: number } = {}): Promise<Aggregator> {
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
  const aggregator = new Aggregator({
    config: {
      walDir: path.join(dataDir, 'wal'),
      databasePath: path.join(dataDir, 'index.db'),
      queueMaxSize: 1000,
      segmentBytesMax: 4096,
      indexBatchMax: overrides.indexBatchMax ?? 100,
      retryAfterSeconds: 1,
    },
    logger,
  });
  await aggregator.open();
  return aggregator;
}

function storedIds(aggregator: Aggregator): string[] {
  return [...aggregator.index.eventsInSeqOrder()].map((row) => (JSON.parse(row.body) as { event_id: string }).event_id);
}

describe('torn and corrupt logs', function () {
  this.timeout(120_000);
  let log: Awaited<ReturnType<typeof buildLog>>;
  const allIds = Array.from({ length: EVENTS }, (_, i) => `id-${i}`);

  before(async () => {
    log = await buildLog();
    expect(log.segments.length).to.be.greaterThan(2);
    expect(log.records.filter((r) => r.segmentIndex === log.segments.length - 1).length).to.be.at.least(3);
  });

  it('recovers every complete record by itself when the last segment is cut at any byte of its last 3 records', async () => {
    const lastFile = log.segments[log.segments.length - 1]!;
    const tail = log.records.slice(-3);
    const fileLength = fs.statSync(lastFile).size;
    let cuts = 0;
    for (let cut = tail[0]!.offset; cut < fileLength; cut += 1) {
      const wholeStartup = cut % 10 === 0;
      const copy = wholeStartup ? copyLog(log.walDir) : copyLogInMemory(log.walDir);
      const file = path.join(copy.walDir, path.basename(lastFile));
      if (wholeStartup) cutTo(file, cut);
      else copy.disk.truncateFileDurably(file, cut);
      const complete = log.records.filter((r) => r.file !== lastFile || r.offset + r.length <= cut);
      const warnings: string[] = [];
      const validEnd = complete[complete.length - 1]!.offset + complete[complete.length - 1]!.length;
      let torn: RecoveryReport['tornTail'];
      let aggregator: Aggregator | null = null;
      if (wholeStartup) {
        // The whole startup (index included) for every 10th cut, recovery alone for the others.
        aggregator = await startOn(copy.dataDir, warnings, { indexBatchMax: 1 + (cut % 7) });
        expect(storedIds(aggregator), `cut at ${cut}`).to.deep.equal(allIds.slice(0, complete.length));
        torn = aggregator.recovery!.tornTail;
      } else {
        const replayed: string[] = [];
        const { report } = await recoverLog({
          disk: copy.disk,
          walDir: copy.walDir,
          checkpointSeq: 0,
          chunkRecords: 1 + (cut % 7),
          // Reads of 16..715 bytes: lines cross chunk boundaries everywhere.
          readChunkBytes: 16 + ((cut * 37) % 700),
          onRecords: async (records) => {
            for (const r of records) replayed.push((JSON.parse(r.eventJson) as { event_id: string }).event_id);
          },
        });
        expect(replayed, `cut at ${cut}`).to.deep.equal(allIds.slice(0, complete.length));
        torn = report.tornTail;
        if (torn !== null) warnings.push(`cut torn tail of ${torn.bytesDropped} bytes at offset ${torn.offset}`);
      }
      if (cut === tail[0]!.offset || complete.length === log.records.length || validEnd === cut) {
        expect(torn, `cut at ${cut} is a record boundary`).to.equal(null);
      } else {
        // Nothing is dropped silently: the bytes are logged with their count and kept in quarantine.
        expect(torn!.bytesDropped).to.equal(cut - validEnd);
        expect(copy.disk.readFile(torn!.savedTo)).to.deep.equal(fs.readFileSync(lastFile).subarray(validEnd, cut));
        expect(warnings.join('')).to.contain(`cut torn tail of ${cut - validEnd} bytes at offset ${validEnd}`);
      }
      expect(copy.disk.fileSize(file)).to.equal(validEnd);
      await aggregator?.close();
      cuts += 1;
    }
    expect(cuts).to.be.greaterThan(300);
  });

  it('detects every single-bit flip in a record recovery reads: startup refuses naming file and offset, or (last record) cuts it into quarantine', async () => {
    const random = new Random(42);
    const last = log.records[log.records.length - 1]!;
    let refused = 0;
    let cut = 0;
    for (let trial = 0; trial < 80; trial += 1) {
      const record = trial % 10 === 0 ? last : log.records[random.int(log.records.length)]!;
      const position = record.offset + random.int(record.length);
      const bit = random.int(8);
      const copy = copyLog(log.walDir);
      const file = path.join(copy.walDir, path.basename(record.file));
      flipBit(file, position, bit);
      const what = `bit ${bit} of byte ${position} in ${path.basename(record.file)} (record seq ${record.seq})`;
      if (record === last) {
        // Indistinguishable from a torn write: cut into quarantine, logged, never silent.
        const aggregator = await startOn(copy.dataDir);
        expect(aggregator.recovery!.tornTail, what).to.include({ offset: last.offset, bytesDropped: last.length });
        expect(fs.readFileSync(aggregator.recovery!.tornTail!.savedTo).length).to.equal(last.length);
        expect(storedIds(aggregator)).to.deep.equal(allIds.slice(0, -1));
        await aggregator.close();
        cut += 1;
        continue;
      }
      // Recovery reading the segment in small chunks finds the same record...
      const readChunkBytes = 1 + random.int(300);
      let chunked: unknown = null;
      try {
        await recoverLog({
          disk: new NodeDisk(),
          walDir: copy.walDir,
          checkpointSeq: 0,
          chunkRecords: 100,
          readChunkBytes,
          onRecords: async () => undefined,
        });
      } catch (err) {
        chunked = err;
      }
      expect(chunked, `${what}, read ${readChunkBytes} bytes at a time`).to.be.instanceOf(LogCorruptionError);
      expect((chunked as LogCorruptionError).offset, `${what}, read ${readChunkBytes} bytes at a time`).to.equal(record.offset);
      // ...and so does the whole startup.
      let error: unknown = null;
      try {
        const aggregator = await startOn(copy.dataDir);
        await aggregator.close();
      } catch (err) {
        error = err;
      }
      expect(error, what).to.be.instanceOf(LogCorruptionError);
      expect((error as LogCorruptionError).file, what).to.equal(file);
      expect((error as LogCorruptionError).offset, what).to.equal(record.offset);
      expect((error as Error).message).to.contain(`${file} at byte offset ${record.offset}`);
      refused += 1;
    }
    expect(refused).to.be.greaterThan(55);
    expect(cut).to.be.at.least(8);
  });

  it('repairLog moves a corrupt record to quarantine with a tombstone for its seq, after which startup proceeds', async () => {
    const record = log.records[Math.floor(log.records.length / 2)]!;
    const copy = copyLog(log.walDir);
    const file = path.join(copy.walDir, path.basename(record.file));
    const original = fs.readFileSync(file);
    flipBit(file, record.offset + 30, 3);
    const flipped = fs.readFileSync(file);

    // Without the explicit option nothing changes: the corruption is reported, left in place.
    const report = repairLog({ walDir: copy.walDir });
    expect(report.changes).to.deep.equal([]);
    expect(report.remaining).to.have.length(1);
    expect(report.remaining[0]).to.include({ file, offset: record.offset });
    expect(fs.readFileSync(file).length).to.equal(original.length);

    const repaired = repairLog({ walDir: copy.walDir, quarantineCorrupt: true });
    expect(repaired.clean).to.equal(true);
    expect(repaired.changes).to.have.length(1);
    const change = repaired.changes[0]!;
    expect(change).to.include({ kind: 'corrupt_quarantined', file, offset: record.offset, bytesRemoved: record.length });
    expect(change.seqsTombstoned).to.deep.equal([record.seq]);
    expect(fs.readFileSync(change.backupOf!)).to.deep.equal(flipped);
    expect(fs.readFileSync(change.savedTo[0]!).length).to.equal(record.length);

    const aggregator = await startOn(copy.dataDir);
    expect(storedIds(aggregator)).to.deep.equal(allIds.filter((_, i) => i !== record.seq - 1));
    // The service goes on numbering after the tombstone.
    const event = makeEvent('topic-0', 'after-repair');
    const answer = await aggregator.publish([{ event, tsMs: Date.parse(event.timestamp) }]);
    expect(answer.results[0]!.seq).to.equal(EVENTS + 1);
    await aggregator.close();
    expect(repairLog({ walDir: copy.walDir }).changes).to.deep.equal([]);
  });

  it('repairLog loses no valid record whatever instant the power goes out during a repair', async () => {
    // A corrupt record in the middle of the last segment: the repair rewrites that segment.
    const last = log.records[log.records.length - 1]!.segmentIndex;
    const inLast = log.records.filter((r) => r.segmentIndex === last);
    const record = inLast[Math.floor(inLast.length / 2)]!;
    const expected = allIds.filter((_, i) => i !== record.seq - 1);
    const random = new Random(11);
    const models: CrashModel[] = ['drop', 'keep', 'torn', 'garble'];
    let crashes = 0;
    for (let crashAt = 1, finished = false; !finished; crashAt += 1) {
      for (const model of models) {
        const dataDir = path.join(makeTempDir(), 'in-memory');
        const walDir = path.join(dataDir, 'wal');
        const disk = new PowerLossDisk(dataDir);
        disk.mkdirp(walDir);
        for (const file of log.segments) {
          const bytes = fs.readFileSync(file);
          if (file === record.file) bytes[record.offset + 30]! ^= 0x08;
          disk.writeFileDurably(path.join(walDir, path.basename(file)), bytes);
        }
        disk.fsyncDir(dataDir);
        disk.fsyncDir(walDir);
        disk.armCrash(crashAt, () => undefined);
        let completed = false;
        try {
          repairLog({ disk, walDir, quarantineCorrupt: true });
          // The power lasted: this crash point is past the repair's last operation.
          completed = true;
          finished = true;
          disk.crashNow();
        } catch (err) {
          if (!(err instanceof SimulatedPowerLoss)) throw err;
          crashes += 1;
        }
        disk.reboot(random, model);
        // Whatever the power loss left, a repair run to its end gives back every valid record.
        const again = repairLog({ disk, walDir, quarantineCorrupt: true });
        const why = `power lost at operation ${crashAt} of the repair, unsynced changes ${model}`;
        expect(again.clean, why).to.equal(true);
        // A repair that returned is durable: the power loss after it undid none of it.
        if (completed) expect(again.changes, why).to.deep.equal([]);
        const ids: string[] = [];
        await recoverLog({
          disk,
          walDir,
          checkpointSeq: 0,
          chunkRecords: 100,
          onRecords: async (records) => {
            for (const r of records)
              if (!isTombstoneEventJson(r.eventJson)) ids.push((JSON.parse(r.eventJson) as { event_id: string }).event_id);
          },
        });
        expect(ids, why).to.deep.equal(expected);
      }
    }
    expect(crashes).to.be.at.least(4 * 8);
  });

  it('repairLog also repairs the first record of a segment, the last record of an older one, and a merged pair of lines', async () => {
    const firstOfSecond = log.records.find((r) => r.segmentIndex === 1)!;
    const lastOfFirst = log.records.filter((r) => r.segmentIndex === 0).pop()!;
    const cases = [
      { record: firstOfSecond, position: firstOfSecond.offset + 20, lost: [firstOfSecond.seq] },
      { record: lastOfFirst, position: lastOfFirst.offset + 20, lost: [lastOfFirst.seq] },
      // The newline of a record turned into 0x0b: two records become one bad line.
      { record: log.records[5]!, position: log.records[5]!.offset + log.records[5]!.length - 1, lost: [6, 7] },
    ];
    for (const { record, position, lost } of cases) {
      const copy = copyLog(log.walDir);
      flipBit(path.join(copy.walDir, path.basename(record.file)), position, 0);
      const repaired = repairLog({ walDir: copy.walDir, quarantineCorrupt: true });
      expect(repaired.clean, `seq ${record.seq}`).to.equal(true);
      expect(repaired.changes.map((c) => c.seqsTombstoned)).to.deep.equal([lost]);
      const aggregator = await startOn(copy.dataDir);
      expect(storedIds(aggregator)).to.deep.equal(allIds.filter((_, i) => !lost.includes(i + 1)));
      await aggregator.close();
    }
  });

  it('repairLog fills seqs missing with no bytes left (inside a segment and before the next one) with tombstones only when asked', async () => {
    const inside = log.records[3]!;
    const lastOfFirst = log.records.filter((r) => r.segmentIndex === 0).pop()!;
    const copy = copyLog(log.walDir);
    // Remove whole records, newline included: nothing is left to quarantine.
    for (const record of [lastOfFirst, inside]) {
      const file = path.join(copy.walDir, path.basename(record.file));
      const bytes = fs.readFileSync(file);
      fs.writeFileSync(file, Buffer.concat([bytes.subarray(0, record.offset), bytes.subarray(record.offset + record.length)]));
    }
    const report = repairLog({ walDir: copy.walDir });
    expect(report.changes).to.deep.equal([]);
    expect(report.remaining.map((p) => p.problem)).to.deep.equal(['seq_gap']);
    expect(report.clean).to.equal(false);

    const repaired = repairLog({ walDir: copy.walDir, quarantineCorrupt: true });
    expect(repaired.clean).to.equal(true);
    expect(repaired.changes.map((c) => [c.kind, c.seqsTombstoned, c.bytesRemoved])).to.deep.equal([
      ['missing_tombstoned', [inside.seq, lastOfFirst.seq], 0],
    ]);
    expect(repairLog({ walDir: copy.walDir }).changes).to.deep.equal([]);
    const aggregator = await startOn(copy.dataDir);
    expect(storedIds(aggregator)).to.deep.equal(allIds.filter((_, i) => i + 1 !== inside.seq && i + 1 !== lastOfFirst.seq));
    const event = makeEvent('topic-0', 'after-gap-repair');
    const answer = await aggregator.publish([{ event, tsMs: Date.parse(event.timestamp) }]);
    expect(answer.results[0]!.seq).to.equal(EVENTS + 1);
    await aggregator.close();
  });

  it('repairLog cuts a torn tail with its bytes saved, and reports exactly that change', async () => {
    const copy = copyLog(log.walDir);
    const lastFile = path.join(copy.walDir, path.basename(log.segments[log.segments.length - 1]!));
    const size = fs.statSync(lastFile).size;
    fs.appendFileSync(lastFile, '{"crc":"0000');
    const dry = repairLog({ walDir: copy.walDir, dryRun: true });
    expect(dry.changes).to.deep.equal([
      { kind: 'torn_tail_cut', file: lastFile, offset: size, bytesRemoved: 12, savedTo: [], backupOf: null, seqsTombstoned: [] },
    ]);
    expect(fs.statSync(lastFile).size).to.equal(size + 12);
    const result = repairLog({ walDir: copy.walDir });
    expect(result.changes[0]).to.include({ kind: 'torn_tail_cut', offset: size, bytesRemoved: 12 });
    expect(fs.readFileSync(result.changes[0]!.savedTo[0]!, 'utf8')).to.equal('{"crc":"0000');
    expect(fs.statSync(lastFile).size).to.equal(size);
    expect(result.clean).to.equal(true);
  });
});
