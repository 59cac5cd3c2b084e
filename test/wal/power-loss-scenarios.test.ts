import { expect } from 'chai';
import path from 'node:path';
import pino from 'pino';
import { Aggregator } from '../../src/ingest/aggregator';
import { encodeRecord, canonicalEventJson, decodeLine } from '../../src/wal/record';
import { makeEvent } from '../helpers/events';
import { NodeDisk } from '../../src/wal/disk';
import { PowerLossDisk } from '../harness/power-loss-disk';
import { makeTempDir } from '../helpers/temp-dir';

/** A random source that loses every directory entry that was never fsynced. */
const LOSE_EVERY_UNSYNCED_ENTRY = { next: () => 0.99 };

function setup(segmentBytesMax = 1 << 20): { disk: PowerLossDisk; open: () => Promise<Aggregator>; walDir: string } {
  const dataDir = makeTempDir();
  const config = {
    walDir: path.join(dataDir, 'wal'),
    databasePath: path.join(dataDir, 'index.db'),
    queueMaxSize: 1000,
    segmentBytesMax,
    indexBatchMax: 100,
    retryAfterSeconds: 1,
  };
  const disk = new PowerLossDisk(dataDir);
  const logger = pino({ level: 'silent' });
  return {
    disk,
    walDir: config.walDir,
    open: async () => {
      const aggregator = new Aggregator({ config, logger, disk });
      await aggregator.open();
      return aggregator;
    },
  };
}

function valid(topic: string, id: string): { event: ReturnType<typeof makeEvent>; tsMs: number } {
  const event = makeEvent(topic, id);
  return { event, tsMs: Date.parse(event.timestamp) };
}

describe('power loss at chosen instants', () => {
  it('keeps an event acknowledged on the first start, when no directory entry had been fsynced before', async () => {
    const { disk, open } = setup();
    const first = await open();
    await first.publish([valid('t', 'first')]);
    disk.crashNow();
    first.index.close();
    disk.reboot(LOSE_EVERY_UNSYNCED_ENTRY, 'drop');
    const second = await open();
    expect(second.index.lookup('t', 'first')?.seq).to.equal(1);
    await second.close();
  });

  it('keeps an event acknowledged into a freshly rotated segment', async () => {
    const { disk, open } = setup(4096);
    const first = await open();
    await first.publish([valid('t', 'a')]);
    disk.crashNow();
    first.index.close();
    disk.reboot(LOSE_EVERY_UNSYNCED_ENTRY, 'drop');
    const second = await open();
    const big = (id: string) => ({ ...valid('t', id), event: { ...makeEvent('t', id), payload: { pad: 'x'.repeat(3000) } } });
    await second.publish([big('b')]);
    await second.publish([big('c')]);
    disk.crashNow();
    second.index.close();
    disk.reboot(LOSE_EVERY_UNSYNCED_ENTRY, 'drop');
    const third = await open();
    expect(['a', 'b', 'c'].map((id) => third.index.lookup('t', id)?.seq)).to.deep.equal([1, 2, 3]);
    await third.close();
  });

  it('keeps the quarantined copy of a torn tail when the power goes out right after the cut', async () => {
    const { disk, open, walDir } = setup();
    const first = await open();
    await first.publish([valid('t', 'a')]);
    await first.close();
    // A torn record after the valid one, as a crash mid-write leaves it.
    const segment = path.join(walDir, '00000000000000000001.ndjson');
    const torn = encodeRecord(2, canonicalEventJson(makeEvent('t', 'b'))).slice(0, 40);
    const handle = disk.openForWrite(segment);
    await disk.write(handle, Buffer.from(torn), disk.peek(segment)!.length);
    await disk.fdatasync(handle);
    disk.close(handle);
    const second = await open();
    expect(second.recovery?.tornTail?.bytesDropped).to.equal(40);
    const savedTo = second.recovery!.tornTail!.savedTo;
    disk.crashNow();
    second.index.close();
    disk.reboot(LOSE_EVERY_UNSYNCED_ENTRY, 'drop');
    expect(disk.peek(savedTo)?.toString()).to.equal(torn);
    // The segment is back to its one valid line: the torn bytes are cut (they would break its crc).
    expect(decodeLine(disk.peek(segment)!.toString().slice(0, -1))).to.deep.include({ seq: 1 });
  });
});

describe('makeDirDurable on the real disk', () => {
  it('fsyncs the parent of every directory it creates, so a new data dir survives power loss', async () => {
    const parent = makeTempDir();
    const dataDir = path.join(parent, 'new', 'data');
    const fsynced: string[] = [];
    const disk = new (class extends NodeDisk {
      override fsyncDir(dir: string): void {
        fsynced.push(dir);
        super.fsyncDir(dir);
      }
    })();
    const aggregator = new Aggregator({
      config: {
        walDir: path.join(dataDir, 'wal'),
        databasePath: path.join(dataDir, 'index.db'),
        queueMaxSize: 10,
        segmentBytesMax: 4096,
        indexBatchMax: 10,
        retryAfterSeconds: 1,
      },
      logger: pino({ level: 'silent' }),
      disk,
    });
    await aggregator.open();
    await aggregator.close();
    expect(fsynced.slice(0, 3)).to.deep.equal([dataDir, path.join(parent, 'new'), parent]);
  });
});
