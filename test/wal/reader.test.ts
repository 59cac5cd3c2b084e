import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk, type ReadHandle } from '../../src/wal/disk';
import { readLog, readSegment, type LogItem, type ReadLogOptions } from '../../src/wal/reader';
import { recoverLog } from '../../src/wal/recovery';
import { repairLog } from '../../src/wal/repair';
import { encodeRecord, TOMBSTONE_EVENT_KEY } from '../../src/wal/record';
import { READ_CHUNK_BYTES, segmentName } from '../../src/wal/segments';
import { makeTempDir } from '../helpers/temp-dir';

const disk = new NodeDisk();
const event = (seq: number): string =>
  JSON.stringify({ topic: 't', event_id: `e-${seq}`, timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { seq } });
const lines = (seqs: number[]): string => seqs.map((seq) => encodeRecord(seq, event(seq))).join('');

/** A wal dir with one file per entry: its name (a seq, or a file name) and its content. */
function makeLog(files: Record<string, string>): string {
  const walDir = path.join(makeTempDir(), 'wal');
  fs.mkdirSync(walDir);
  for (const [name, text] of Object.entries(files))
    fs.writeFileSync(path.join(walDir, /^\d+$/.test(name) ? segmentName(Number(name)) : name), text);
  return walDir;
}

/** The items of a read, each without its segment object but with the segment's first seq. */
function itemsOf(walDir: string, options: Partial<ReadLogOptions> = {}): Array<Record<string, unknown>> {
  return [...readLog({ disk, walDir, ...options })].map(({ segment, ...item }) => ({ ...item, in: segment.firstSeq }));
}

function kindsOf(walDir: string, options: Partial<ReadLogOptions> = {}): string[] {
  return itemsOf(walDir, options)
    .filter((item) => item.kind !== 'record' && item.kind !== 'segment_end')
    .map(
      (item) =>
        `${String(item.kind)}${item.problem === undefined ? '' : `:${item.problem as string}`}@${String(item.in)}:${String(item.offset)}`,
    );
}

describe('WalReader', () => {
  it('yields every record of every segment in seq order, then each segment_end with its counts', () => {
    const walDir = makeLog({ 1: lines([1, 2, 3]), 4: lines([4, 5]), 'notes.txt': 'not a segment\n' });
    const items = itemsOf(walDir);
    expect(items.filter((i) => i.kind === 'record').map((i) => i.seq)).to.deep.equal([1, 2, 3, 4, 5]);
    const ends = items.filter((i) => i.kind === 'segment_end');
    expect(ends.map((e) => [e.in, e.records, e.firstSeq, e.lastSeq, e.isLast])).to.deep.equal([
      [1, 3, 1, 3, false],
      [4, 2, 4, 5, true],
    ]);
    expect(ends[0]!.boundary).to.deep.equal({ nextFirstSeq: 4, relation: 'continues' });
    expect(ends[1]!.boundary).to.equal(null);
  });

  it('finds the same things whatever the chunk size', () => {
    const bad = lines([3]).replace('e-3', 'e-x');
    const walDir = makeLog({ 1: lines([1, 2]) + bad + lines([4]), 5: lines([5, 6]) + 'partial {"crc"' });
    const whole = itemsOf(walDir);
    expect(kindsOf(walDir)).to.deep.equal([
      `corruption:bad_crc@1:${Buffer.byteLength(lines([1, 2]))}`,
      `torn_tail:torn@5:${Buffer.byteLength(lines([5, 6]))}`,
    ]);
    for (const readChunkBytes of [1, 7, 64, 1000])
      expect(itemsOf(walDir, { readChunkBytes }), `chunks of ${readChunkBytes}`).to.deep.equal(whole);
  });

  it('checks that a segment starts with the seq it is named for', () => {
    const walDir = makeLog({ 1: lines([1, 2]), 5: lines([3, 4]) });
    const breaks = itemsOf(walDir).filter((i) => i.kind === 'seq_break');
    expect(breaks).to.deep.equal([
      { kind: 'seq_break', offset: 0, problem: 'segment_name', expected: 5, seq: 3, atSegmentStart: true, in: 5 },
    ]);
  });

  it('reports a missing segment at the first record after it, and at the end of the segment before it', () => {
    const walDir = makeLog({ 1: lines([1, 2]), 6: lines([6, 7]) });
    const items = itemsOf(walDir);
    expect(items.filter((i) => i.kind === 'seq_break')).to.deep.equal([
      { kind: 'seq_break', offset: 0, problem: 'seq_gap', expected: 3, seq: 6, atSegmentStart: true, in: 6 },
    ]);
    expect(items.find((i) => i.kind === 'segment_end')!.boundary).to.deep.equal({ nextFirstSeq: 6, relation: 'gap' });
  });

  it('reports a repeated seq as seq_order, even right after corruption', () => {
    const walDir = makeLog({ 1: lines([1, 2]) + 'junk\n' + lines([2, 3]) });
    expect(kindsOf(walDir)).to.deep.equal([
      `corruption:bad_frame@1:${Buffer.byteLength(lines([1, 2]))}`,
      `seq_break:seq_order@1:${Buffer.byteLength(lines([1, 2])) + 5}`,
    ]);
  });

  it('calls bad lines at the end of an older segment corruption, and not the gap they leave in the next one', () => {
    const walDir = makeLog({ 1: lines([1, 2]) + lines([3]).slice(0, 20), 4: lines([4, 5]) });
    const kinds = kindsOf(walDir);
    expect(kinds).to.deep.equal([`corruption:torn@1:${Buffer.byteLength(lines([1, 2]))}`]);
  });

  it('yields a tombstone as a tombstone, never as a record', () => {
    const tombstone = encodeRecord(2, JSON.stringify({ [TOMBSTONE_EVENT_KEY]: { reason: 'test' } }));
    const walDir = makeLog({ 1: lines([1]) + tombstone + lines([3]) });
    const items = itemsOf(walDir).filter((i) => i.kind === 'record' || i.kind === 'tombstone');
    expect(items.map((i) => `${String(i.kind)}:${String(i.seq)}`)).to.deep.equal(['record:1', 'tombstone:2', 'record:3']);
  });

  it('takes the first seq as it comes unless one is expected (a log may start after seq 1)', () => {
    const walDir = makeLog({ 5: lines([5, 6]) });
    expect(kindsOf(walDir)).to.deep.equal([]);
    expect(kindsOf(walDir, { expectedFirstSeq: 5 })).to.deep.equal([]);
    expect(kindsOf(walDir, { expectedFirstSeq: 1 })).to.deep.equal(['seq_break:seq_gap@5:0']);
  });

  it('skips the segments that hold only seqs below fromSeq', () => {
    const walDir = makeLog({ 1: lines([1, 2]), 3: lines([3, 4]), 5: lines([5, 6]) });
    const ends = itemsOf(walDir, { fromSeq: 4 }).filter((i) => i.kind === 'segment_end');
    expect(ends.map((e) => e.in)).to.deep.equal([3, 5]);
    expect(
      itemsOf(walDir, { fromSeq: 5 })
        .filter((i) => i.kind === 'segment_end')
        .map((e) => e.in),
    ).to.deep.equal([5]);
  });

  it('reads one segment from an offset without checking the seq it resumes at, and leaves a partial line as a torn tail', () => {
    const walDir = makeLog({ 1: lines([1, 2, 3]) + lines([4]).slice(0, 30) });
    const segment = { firstSeq: 1, name: segmentName(1), path: path.join(walDir, segmentName(1)) };
    const from = Buffer.byteLength(lines([1]));
    const items: LogItem[] = [...readSegment(disk, segment, { isLast: true, from })];
    expect(items.map((i) => i.kind)).to.deep.equal(['record', 'record', 'torn_tail', 'segment_end']);
    expect(items[0]).to.include({ seq: 2, offset: from });
    expect(items[2]).to.include({ offset: Buffer.byteLength(lines([1, 2, 3])), bytes: 30 });
  });
});

/** A real disk that refuses whole-file reads and remembers the longest ranged read. */
class ChunkOnlyDisk extends NodeDisk {
  longestRead = 0;

  override readFile(file: string): Buffer {
    throw new Error(`whole-file read of ${file}`);
  }

  override readRange(file: string, position: number, length: number): Buffer {
    this.longestRead = Math.max(this.longestRead, length);
    return super.readRange(file, position, length);
  }

  override openForRead(file: string): ReadHandle {
    const handle = super.openForRead(file);
    return {
      ...handle,
      read: (position, length) => {
        this.longestRead = Math.max(this.longestRead, length);
        return handle.read(position, length);
      },
    };
  }
}

describe('the one log reader', () => {
  it('is how recovery and repair read: in chunks, never a whole segment', async function () {
    // Copies several MiB through a disk that fsyncs: slow on a loaded machine, bounded here.
    this.timeout(120_000);
    const big = 'x'.repeat(READ_CHUNK_BYTES / 4);
    const record = (seq: number): string =>
      encodeRecord(
        seq,
        JSON.stringify({ topic: 't', event_id: `e-${seq}`, timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { big } }),
      );
    const segment = Array.from({ length: 6 }, (_, i) => record(i + 1)).join('');
    const walDir = makeLog({ 1: segment.replace('e-3', 'e-x'), 7: record(7) + 'torn' });
    const repairDisk = new ChunkOnlyDisk();
    const repaired = repairLog({ disk: repairDisk, walDir, quarantineCorrupt: true });
    expect(repaired.changes.map((c) => [c.kind, c.seqsTombstoned])).to.deep.equal([
      ['corrupt_quarantined', [3]],
      ['torn_tail_cut', []],
    ]);
    expect(repairDisk.longestRead).to.equal(READ_CHUNK_BYTES);
    const recoveryDisk = new ChunkOnlyDisk();
    const seqs: number[] = [];
    await recoverLog({
      disk: recoveryDisk,
      walDir,
      checkpointSeq: 0,
      chunkRecords: 100,
      onRecords: async (records) => void seqs.push(...records.map((r) => r.seq)),
    });
    expect(seqs).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    expect(recoveryDisk.longestRead).to.equal(READ_CHUNK_BYTES);
  });

  it('reads a segment to its end when its file is unlinked while the reader is in it (retention under a reader)', () => {
    const seqs = Array.from({ length: 40 }, (_, i) => i + 1);
    const walDir = makeLog({ 1: lines(seqs.slice(0, 20)), 21: lines(seqs.slice(20)) });
    const read: number[] = [];
    // Chunks of 64 bytes: the first segment takes many reads, the unlink comes between two.
    for (const item of readLog({ disk, walDir, readChunkBytes: 64 })) {
      if (item.kind !== 'record') continue;
      read.push(item.seq);
      if (item.seq === 2) fs.unlinkSync(path.join(walDir, segmentName(1)));
    }
    expect(read).to.deep.equal(seqs);
    expect(fs.existsSync(path.join(walDir, segmentName(1)))).to.equal(false);
  });

  it('is the only code in src/ that splits or decodes log lines', () => {
    const srcDir = path.resolve(__dirname, '../../../src');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith('.ts') && /\b(scanLines|decodeLine)\(/.test(fs.readFileSync(file, 'utf8')))
          offenders.push(path.relative(srcDir, file));
      }
    };
    walk(srcDir);
    expect(offenders.sort()).to.deep.equal(['wal/reader.ts', 'wal/record.ts']);
  });
});
