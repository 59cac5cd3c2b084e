import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { runLogagg } from '../harness/logagg-process';
import { fetchAllEvents, makeEvent, postJson } from '../helpers/events';
import { isTombstoneEventJson } from '../../src/wal/record';
import { dataDirFromWalFixture, FIXTURES_DIR } from '../helpers/fixtures';
import { readSegmentFile } from '../helpers/log-read';
import { startServerProcess } from '../harness/server-process';

const SEGMENT = '00000000000000000001.ndjson';
const fixtureBytes = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES_DIR, 'wal', name, SEGMENT));

async function repairJson(dataDir: string, ...flags: string[]): Promise<{ code: number | null; report: any }> {
  const { code, stdout } = await runLogagg(['repair', '--data-dir', dataDir, '--json', ...flags]);
  return { code, report: JSON.parse(stdout) };
}

/**
 * Starts a server on a repaired fixture log: recovery skips the tombstone for seq 2, never
 * hands it out again (the next event gets seq 4), and evt-1 and evt-3 are still served.
 */
async function expectServedAfterRepair(dataDir: string): Promise<void> {
  const server = await startServerProcess(dataDir);
  try {
    const { body } = await postJson(`${server.url}/publish`, makeEvent('after-repair', 'e1'));
    expect(body.results).to.deep.equal([{ status: 'accepted', seq: 4 }]);
    expect((await fetchAllEvents(server.url, 'fixture')).map((e) => [e.seq, e.event_id])).to.deep.equal([
      [1, 'evt-1'],
      [3, 'evt-3'],
    ]);
  } finally {
    await server.kill('SIGTERM');
  }
}

describe('logagg repair', () => {
  it('cuts a torn tail and keeps the cut bytes in wal/quarantine/', async () => {
    const dataDir = dataDirFromWalFixture('torn-tail');
    const segment = path.join(dataDir, 'wal', SEGMENT);
    const { code, report } = await repairJson(dataDir);
    expect(code).to.equal(0);
    const savedTo = path.join(dataDir, 'wal', 'quarantine', `${SEGMENT}.441.torn`);
    expect(report.actions).to.deep.equal([
      {
        kind: 'torn_tail_cut',
        file: segment,
        offset: 441,
        bytesRemoved: 40,
        savedTo: [savedTo],
        backupOf: null,
        seqsTombstoned: [],
        detail: 'cut 40 torn bytes at byte offset 441',
      },
    ]);
    expect(fs.readFileSync(segment)).to.deep.equal(fixtureBytes('torn-tail').subarray(0, 441));
    expect(fs.readFileSync(savedTo)).to.deep.equal(fixtureBytes('torn-tail').subarray(441));
    expect((await runLogagg(['verify', '--data-dir', dataDir])).code).to.equal(0);
  });

  it('says there is nothing to repair on a clean log and changes nothing', async () => {
    const dataDir = dataDirFromWalFixture('ok');
    const { code, stdout } = await runLogagg(['repair', '--data-dir', dataDir]);
    expect(code).to.equal(0);
    expect(stdout).to.contain('nothing to repair');
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(fixtureBytes('ok'));
  });

  it('leaves a corrupt record in place without --quarantine-corrupt and exits 1', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const { code, report } = await repairJson(dataDir);
    expect(code).to.equal(1);
    expect(report.actions).to.deep.equal([]);
    expect(report.remaining[0]).to.include({ kind: 'bad_crc', offset: 147 });
    expect(report.remaining[0].detail).to.contain('--quarantine-corrupt');
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(fixtureBytes('bad-crc-middle'));
  });

  it('changes nothing with --dry-run but lists what it would do', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const { code, report } = await repairJson(dataDir, '--quarantine-corrupt', '--dry-run');
    expect(code).to.equal(0);
    expect(report.actions).to.have.length(1);
    expect(report.actions[0]).to.include({ kind: 'corrupt_quarantined', offset: 147, bytesRemoved: 147 });
    expect(report.actions[0].seqsTombstoned).to.deep.equal([2]);
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(fixtureBytes('bad-crc-middle'));
    expect(fs.existsSync(path.join(dataDir, 'wal', 'quarantine'))).to.equal(false);
  });

  it('quarantines a corrupt record, writes a tombstone for its seq, reports every change, and the server then starts without reusing the seq', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const original = fixtureBytes('bad-crc-middle');
    const { code, stdout } = await runLogagg(['repair', '--data-dir', dataDir, '--quarantine-corrupt']);
    expect(code).to.equal(0);
    const quarantine = path.join(dataDir, 'wal', 'quarantine');
    const savedTo = path.join(quarantine, `${SEGMENT}.147.corrupt`);
    const backup = path.join(quarantine, `${SEGMENT}.original`);
    // Every change is printed: what was moved where, the tombstone, the backup.
    expect(stdout).to.contain('corrupt_quarantined');
    expect(stdout).to.contain(`saved to ${savedTo}`);
    expect(stdout).to.contain(`backup ${backup}`);
    expect(stdout).to.contain('tombstone(s) written for seq(s) 2');
    expect(fs.readdirSync(quarantine).sort()).to.deep.equal([`${SEGMENT}.147.corrupt`, `${SEGMENT}.original`]);
    expect(fs.readFileSync(savedTo)).to.deep.equal(original.subarray(147, 294));
    expect(fs.readFileSync(backup)).to.deep.equal(original);

    // The segment keeps records 1 and 3 byte for byte, with a tombstone for seq 2 between them.
    const repaired = fs.readFileSync(path.join(dataDir, 'wal', SEGMENT));
    const scan = readSegmentFile(path.join(dataDir, 'wal', SEGMENT));
    expect(scan.problems).to.deep.equal([]);
    expect(scan.records.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    expect(isTombstoneEventJson(scan.records[1]!.eventJson)).to.equal(true);
    expect(repaired.subarray(0, 147)).to.deep.equal(original.subarray(0, 147));
    expect(repaired.subarray(scan.records[2]!.offset)).to.deep.equal(original.subarray(294));
    expect(fs.existsSync(path.join(quarantine, 'skipped-seqs.json'))).to.equal(false);
    const verify = await runLogagg(['verify', '--data-dir', dataDir]);
    expect(verify.code).to.equal(0);
    expect(verify.stdout).to.contain('1 tombstoned seq(s)');
    expect((await repairJson(dataDir, '--quarantine-corrupt')).report.actions).to.deep.equal([]);

    // Recovery skips the tombstone and never hands out seq 2 (or 3) again; evt-1 and evt-3 survive.
    await expectServedAfterRepair(dataDir);
  });

  it('fills a seq gap with no bytes left with a tombstone only with --quarantine-corrupt', async () => {
    const dataDir = dataDirFromWalFixture('seq-gap');
    const original = fixtureBytes('seq-gap');
    const without = await repairJson(dataDir);
    expect(without.code).to.equal(1);
    expect(without.report.remaining[0]).to.include({ kind: 'seq_gap', offset: 147 });
    expect(without.report.remaining[0].detail).to.contain('--quarantine-corrupt');
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(original);
    const withFlag = await repairJson(dataDir, '--quarantine-corrupt');
    expect(withFlag.code).to.equal(0);
    expect(withFlag.report.actions).to.have.length(1);
    expect(withFlag.report.actions[0]).to.include({ kind: 'missing_tombstoned', offset: 147, bytesRemoved: 0 });
    expect(withFlag.report.actions[0].seqsTombstoned).to.deep.equal([2]);
    expect(fs.readFileSync(withFlag.report.actions[0].backupOf)).to.deep.equal(original);
    expect(fs.existsSync(path.join(dataDir, 'wal', 'quarantine', 'skipped-seqs.json'))).to.equal(false);
    expect((await runLogagg(['verify', '--data-dir', dataDir])).code).to.equal(0);

    await expectServedAfterRepair(dataDir);
  });

  it('refuses to run while another maintenance command holds the data dir', async () => {
    const dataDir = dataDirFromWalFixture('torn-tail');
    fs.writeFileSync(path.join(dataDir, 'logagg.lock'), JSON.stringify({ pid: process.pid, command: 'rebuild' }));
    const { code, stderr } = await runLogagg(['repair', '--data-dir', dataDir]);
    expect(code).to.equal(1);
    expect(stderr).to.contain(`held by pid ${process.pid}`);
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(fixtureBytes('torn-tail'));
  });
});
