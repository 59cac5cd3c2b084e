import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { runLogagg } from '../helpers/cli';
import { makeEvent, postJson } from '../helpers/events';
import { dataDirFromWalFixture, FIXTURES_DIR } from '../helpers/fixtures';
import { startServerProcess } from '../helpers/server-process';

const SEGMENT = '00000000000000000001.ndjson';
const fixtureBytes = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES_DIR, 'wal', name, SEGMENT));

async function repairJson(dataDir: string, ...flags: string[]): Promise<{ code: number | null; report: any }> {
  const { code, stdout } = await runLogagg(['repair', '--data-dir', dataDir, '--json', ...flags]);
  return { code, report: JSON.parse(stdout) };
}

describe('logagg repair', () => {
  it('cuts a torn tail and keeps the cut bytes in wal/quarantine/', async () => {
    const dataDir = dataDirFromWalFixture('torn-tail');
    const segment = path.join(dataDir, 'wal', SEGMENT);
    const { code, report } = await repairJson(dataDir);
    expect(code).to.equal(0);
    const savedTo = path.join(dataDir, 'wal', 'quarantine', `${SEGMENT}.441.torn`);
    expect(report.actions).to.deep.equal([
      { action: 'cut_torn_tail', file: segment, offset: 441, bytes: 40, problem: 'torn', savedTo, detail: 'cut 40 torn bytes (torn) at byte offset 441' },
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
    expect(report.actions.map((a: any) => a.action)).to.deep.equal(['record_skipped_seqs', 'quarantine_line', 'rewrite_segment']);
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(fixtureBytes('bad-crc-middle'));
    expect(fs.existsSync(path.join(dataDir, 'wal', 'quarantine'))).to.equal(false);
  });

  it('quarantines a corrupt record, records its seq as skipped, and the server then starts without reusing it', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const original = fixtureBytes('bad-crc-middle');
    const { code, report } = await repairJson(dataDir, '--quarantine-corrupt');
    expect(code).to.equal(0);
    const line = report.actions.find((a: any) => a.action === 'quarantine_line');
    expect(line).to.include({ offset: 147, bytes: 147, problem: 'bad_crc' });
    expect(fs.readFileSync(line.savedTo)).to.deep.equal(original.subarray(147, 294));
    const rewrite = report.actions.find((a: any) => a.action === 'rewrite_segment');
    expect(fs.readFileSync(rewrite.backup)).to.deep.equal(original);
    expect(fs.readFileSync(path.join(dataDir, 'wal', SEGMENT))).to.deep.equal(Buffer.concat([original.subarray(0, 147), original.subarray(294)]));
    const skipped = JSON.parse(fs.readFileSync(path.join(dataDir, 'wal', 'quarantine', 'skipped-seqs.json'), 'utf8'));
    expect(skipped.skipped).to.have.length(1);
    expect(skipped.skipped[0]).to.include({ from: 2, to: 2, savedTo: line.savedTo });

    const verify = await runLogagg(['verify', '--data-dir', dataDir]);
    expect(verify.code).to.equal(0);
    expect(verify.stdout).to.contain('1 seq(s) recorded as quarantined');

    // Recovery honours the recorded gap and never hands out seq 2 (or 3) again.
    const server = await startServerProcess(dataDir);
    try {
      const { body } = await postJson(`${server.url}/publish`, makeEvent('after-repair', 'e1'));
      expect(body.results).to.deep.equal([{ status: 'accepted', seq: 4 }]);
    } finally {
      await server.kill('SIGTERM');
    }
  });

  it('records a seq gap with no bytes left only with --quarantine-corrupt', async () => {
    const dataDir = dataDirFromWalFixture('seq-gap');
    const without = await repairJson(dataDir);
    expect(without.code).to.equal(1);
    expect(without.report.remaining[0]).to.include({ kind: 'seq_gap', offset: 147 });
    const withFlag = await repairJson(dataDir, '--quarantine-corrupt');
    expect(withFlag.code).to.equal(0);
    expect(withFlag.report.actions).to.have.length(1);
    expect(withFlag.report.actions[0]).to.include({ action: 'record_skipped_seqs', from: 2, to: 2 });
    expect((await runLogagg(['verify', '--data-dir', dataDir])).code).to.equal(0);
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
