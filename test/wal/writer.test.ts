import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk } from '../../src/wal/disk';
import { listSegments } from '../../src/wal/segments';
import { WalWriter } from '../../src/wal/writer';
import { readSegmentFile } from '../helpers/log-read';
import { makeTempDir } from '../helpers/temp-dir';

/** A real disk that counts the durability calls made through it. */
class CountingDisk extends NodeDisk {
  fdatasyncs = 0;
  dirSyncs = 0;
  override fdatasync(handle: number): Promise<void> {
    this.fdatasyncs += 1;
    return super.fdatasync(handle);
  }
  override fsyncDir(dir: string): void {
    this.dirSyncs += 1;
    super.fsyncDir(dir);
  }
}

function makeWriter(disk: CountingDisk, walDir: string, segmentBytesMax = 1 << 20) {
  const durable: number[] = [];
  const writer = new WalWriter({
    disk,
    walDir,
    segmentBytesMax,
    start: { nextSeq: 1, lastSegment: null },
    onDurable: (records) => durable.push(...records.map((r) => r.seq)),
    onFatal: (err) => {
      throw err;
    },
  });
  return { writer, durable };
}

const json = (i: number) => `{"topic":"t","event_id":"e${i}","timestamp":"2025-10-23T10:00:00Z","source":"s"}`;

describe('WalWriter', () => {
  it('shares one write and one fdatasync among appends made while a flush is pending', async () => {
    const disk = new CountingDisk();
    const walDir = path.join(makeTempDir(), 'wal');
    const { writer, durable } = makeWriter(disk, walDir);
    const appends = Array.from(
      { length: 50 },
      (_, i) => writer.append([{ seq: i + 1, eventJson: json(i + 1), receivedAtMs: null }]).durable,
    );
    await Promise.all(appends);
    expect(disk.fdatasyncs).to.equal(1);
    expect(durable).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(writer.durableSeq).to.equal(50);
    await writer.close();
  });

  it('resolves an append only after the fdatasync that covers it', async () => {
    const disk = new CountingDisk();
    const walDir = path.join(makeTempDir(), 'wal');
    const { writer } = makeWriter(disk, walDir);
    const { durable } = writer.append([{ seq: 1, eventJson: json(1), receivedAtMs: null }]);
    expect(disk.fdatasyncs).to.equal(0);
    await durable;
    expect(disk.fdatasyncs).to.equal(1);
    await writer.close();
  });

  it('rotates to a new segment named by its first seq, fsyncing the directory for each', async () => {
    const disk = new CountingDisk();
    const walDir = path.join(makeTempDir(), 'wal');
    const { writer } = makeWriter(disk, walDir, 4096);
    for (let i = 1; i <= 100; i += 1) await writer.append([{ seq: i, eventJson: json(i), receivedAtMs: null }]).durable;
    await writer.close();
    const segments = listSegments(disk, walDir);
    expect(segments.length).to.be.greaterThan(1);
    // One fsync of wal/ per new segment, plus one of its parent when wal/ itself was created.
    expect(disk.dirSyncs).to.equal(segments.length + 1);
    let expected = 1;
    for (const segment of segments) {
      const bytes = fs.readFileSync(segment.path);
      expect(bytes.length).to.be.at.most(4096);
      const scan = readSegmentFile(segment.path);
      expect(scan.problems).to.deep.equal([]);
      expect(scan.records[0]!.seq).to.equal(segment.firstSeq);
      for (const record of scan.records) expect(record.seq).to.equal(expected++);
    }
    expect(expected).to.equal(101);
  });

  it('refuses records whose seq is not the next one', () => {
    const { writer } = makeWriter(new CountingDisk(), path.join(makeTempDir(), 'wal'));
    expect(() => writer.append([{ seq: 2, eventJson: json(2), receivedAtMs: null }])).to.throw(/out of order/);
  });
});
