import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk } from '../../src/wal/disk';
import { classifyScan, scanSegmentBytes } from '../../src/wal/record';
import { recoverLog } from '../../src/wal/recovery';
import { skippedSeqsFrom, skippedSeqsPath, type SkippedSeqRange } from '../../src/wal/skipped-seqs';
import { dataDirFromWalFixture, FIXTURES_DIR } from '../helpers/fixtures';

const range = (from: number, to: number): SkippedSeqRange => ({ from, to, segment: 's', reason: 'test', savedTo: null, at: '2025-10-23T10:00:00Z' });

describe('skipped seqs (gaps quarantined on purpose)', () => {
  it('answers whether a whole range is skipped, merging adjacent ranges', () => {
    const skipped = skippedSeqsFrom([range(5, 6), range(2, 3), range(4, 4), range(10, 10)]);
    expect(skipped.covers(2, 6)).to.equal(true);
    expect(skipped.covers(3, 7)).to.equal(false);
    expect(skipped.covers(10, 10)).to.equal(true);
    expect(skipped.covers(9, 10)).to.equal(false);
    expect(skipped.covers(8, 7)).to.equal(true);
    expect(skipped.maxSeq).to.equal(10);
  });

  it('lets classifyScan accept exactly the recorded gap and nothing more', () => {
    const scan = scanSegmentBytes(fs.readFileSync(path.join(FIXTURES_DIR, 'wal', 'seq-gap', '00000000000000000001.ndjson')));
    expect(classifyScan(scan, true, 1, skippedSeqsFrom([range(2, 2)]))).to.deep.equal({ kind: 'clean' });
    expect(classifyScan(scan, true, 1, skippedSeqsFrom([range(7, 7)]))).to.include({ kind: 'corrupt', problem: 'seq_gap' });
  });

  it('lets recovery replay across a recorded gap and continue after the highest skipped seq', async () => {
    const dataDir = dataDirFromWalFixture('seq-gap');
    const walDir = path.join(dataDir, 'wal');
    fs.mkdirSync(path.join(walDir, 'quarantine'));
    fs.writeFileSync(skippedSeqsPath(walDir), JSON.stringify({ skipped: [range(2, 2), range(4, 5)] }));
    const replayed: number[] = [];
    const { start, report } = await recoverLog({
      disk: new NodeDisk(),
      walDir,
      checkpointSeq: 0,
      chunkRecords: 10,
      onRecords: async (records) => {
        replayed.push(...records.map((r) => r.seq));
      },
    });
    expect(replayed).to.deep.equal([1, 3]);
    expect(report.lastSeq).to.equal(3);
    expect(start.nextSeq).to.equal(6);
  });
});
