import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { runLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { dataDirFromWalFixture, flipBit } from '../helpers/fixtures';
import { readSegmentFile } from '../helpers/log-read';
import { startServerProcess } from '../harness/server-process';

const SEGMENT = '00000000000000000001.ndjson';

async function verifyJson(dataDir: string): Promise<{ code: number | null; report: any }> {
  const { code, stdout } = await runLogagg(['verify', '--data-dir', dataDir, '--json']);
  return { code, report: JSON.parse(stdout) };
}

describe('logagg verify', () => {
  it('passes a clean fixture log with exit 0', async () => {
    const { code, report } = await verifyJson(dataDirFromWalFixture('ok'));
    expect(code).to.equal(0);
    expect(report.ok).to.equal(true);
    expect(report.segments).to.have.length(1);
    expect(report.segments[0]).to.include({ firstSeq: 1, lastSeq: 3, records: 3, bytes: 441 });
  });

  it('reports a torn tail with its file and byte offset and exits 1', async () => {
    const dataDir = dataDirFromWalFixture('torn-tail');
    const { code, report } = await verifyJson(dataDir);
    expect(code).to.equal(1);
    expect(report.segments[0].problems).to.deep.equal([
      {
        kind: 'torn_tail',
        file: path.join(dataDir, 'wal', SEGMENT),
        offset: 441,
        bytes: 40,
        detail: '40 bytes after the last valid record (torn); `logagg repair` or the next start cuts them',
      },
    ]);
  });

  it('reports a bad checksum in the middle at the offset of its line', async () => {
    const { code, report } = await verifyJson(dataDirFromWalFixture('bad-crc-middle'));
    expect(code).to.equal(1);
    expect(report.segments[0].problems).to.have.length(1);
    expect(report.segments[0].problems[0]).to.include({ kind: 'bad_crc', offset: 147, bytes: 147 });
  });

  it('reports a seq gap at the record after the gap', async () => {
    const { code, report } = await verifyJson(dataDirFromWalFixture('seq-gap'));
    expect(code).to.equal(1);
    expect(report.segments[0].problems[0]).to.include({ kind: 'seq_gap', offset: 147, seq: 3, detail: 'expected seq 2, found 3' });
  });

  it('catches one flipped byte in the middle of a segment and names the file and offset', async () => {
    const events = variedEvents(60);
    const requests = Array.from({ length: 12 }, (_, i) => events.slice(i * 5, i * 5 + 5));
    const dataDir = await makeDataDir(requests, { segmentBytesMax: 4096 });
    const segments = fs
      .readdirSync(path.join(dataDir, 'wal'))
      .filter((name) => name.endsWith('.ndjson'))
      .sort();
    expect(segments.length).to.be.greaterThan(2);
    const before = await verifyJson(dataDir);
    expect(before.code).to.equal(0);
    expect(before.report.index).to.include({ checkpointSeq: 60, rows: 60 });

    // Flip a bit inside the middle record of the middle segment.
    const file = path.join(dataDir, 'wal', segments[Math.floor(segments.length / 2)]!);
    const records = readSegmentFile(file).records;
    const victim = records[Math.floor(records.length / 2)]!;
    flipBit(file, victim.offset + Math.floor(victim.length / 2));

    const { code, report } = await verifyJson(dataDir);
    expect(code).to.equal(1);
    const problems = report.segments.flatMap((s: any) => s.problems);
    expect(problems).to.have.length(1);
    expect(problems[0]).to.include({ file, offset: victim.offset, bytes: victim.length });
    expect(problems[0].kind).to.be.oneOf(['bad_crc', 'bad_frame', 'bad_json']);
    const human = await runLogagg(['verify', '--data-dir', dataDir]);
    expect(human.code).to.equal(1);
    expect(human.stdout).to.contain(`at byte offset ${victim.offset}`);
  });

  it('checks that the index agrees with the log: a missing row, a changed row, wrong counters', async () => {
    const dataDir = await makeDataDir([variedEvents(10)]);
    // Tamper with the index behind the store's back, as a damaged file would.
    const db = new Database(path.join(dataDir, 'index.db'));
    db.prepare('DELETE FROM events WHERE seq = 4').run();
    // The index keeps where each record lies: a changed row points at another place in the log.
    db.prepare('UPDATE events SET log_offset = log_offset + 1 WHERE seq = 7').run();
    db.close();
    const { code, report } = await verifyJson(dataDir);
    expect(code).to.equal(1);
    const kinds = report.index.problems.map((p: any) => `${p.kind}:${p.seq ?? ''}`);
    expect(kinds).to.have.members(['index_missing_row:4', 'index_mismatch:7', 'index_counter:']);
    const missing = report.index.problems.find((p: any) => p.kind === 'index_missing_row');
    expect(missing.file).to.equal(path.join(dataDir, 'wal', SEGMENT));
    expect(missing.offset).to.be.a('number');
  });

  it("reads a live server's data dir without disturbing it", async () => {
    const dataDir = await makeDataDir([variedEvents(20)]);
    const server = await startServerProcess(dataDir);
    try {
      const { code, report } = await verifyJson(dataDir);
      expect(code).to.equal(0);
      expect(report.index.rows).to.equal(20);
      const health = await fetch(`${server.url}/health`);
      expect(health.status).to.equal(200);
    } finally {
      await server.kill('SIGTERM');
    }
  });

  it('exits 2 when the data dir does not exist', async () => {
    const { code, stderr } = await runLogagg(['verify', '--data-dir', '/nonexistent/logagg-data']);
    expect(code).to.equal(2);
    expect(stderr).to.contain('does not exist');
  });
});
