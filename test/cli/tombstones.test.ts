import { expect } from 'chai';
import path from 'node:path';
import { repairLog } from '../../src/wal/repair';
import { runLogagg } from '../harness/logagg-process';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { openTestStore } from '../helpers/logged-rows';

/** After `repairLog` quarantines a corrupt record, its tombstone is no event for any tool. */
describe('logagg on a log repaired with tombstones', () => {
  it('export, rebuild and verify skip the tombstone and keep every real event', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const repair = repairLog({ walDir: path.join(dataDir, 'wal'), quarantineCorrupt: true });
    expect(repair.changes.map((c) => c.kind)).to.deep.equal(['corrupt_quarantined']);

    const exported = await runLogagg(['export', '--data-dir', dataDir]);
    expect(exported.code, exported.stderr).to.equal(0);
    const lines = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; event_id: string });
    expect(lines.map((l) => [l.seq, l.event_id])).to.deep.equal([
      [1, 'evt-1'],
      [3, 'evt-3'],
    ]);

    const rebuilt = await runLogagg(['rebuild', '--data-dir', dataDir]);
    expect(rebuilt.code, rebuilt.stderr + rebuilt.stdout).to.equal(0);
    const store = openTestStore(path.join(dataDir, 'index.db'), { readonly: true });
    try {
      expect(store.queryEvents({ limit: 10 }).map((r) => r.seq)).to.deep.equal([1, 3]);
    } finally {
      store.close();
    }

    const verified = await runLogagg(['verify', '--data-dir', dataDir]);
    expect(verified.code, verified.stdout + verified.stderr).to.equal(0);
  });
});
