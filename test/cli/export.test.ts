import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { parseNdjson, runLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { withoutReceivedAt } from '../helpers/events';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { makeTempDir } from '../helpers/temp-dir';

describe('logagg export', () => {
  let dataDir: string;
  const events = variedEvents(30);

  before(async () => {
    dataDir = await makeDataDir([events.slice(0, 10), events.slice(10, 30)], { segmentBytesMax: 4096 });
  });

  it('writes every logged event as NDJSON in seq order, in the shape of GET /events', async () => {
    const { code, stdout, stderr } = await runLogagg(['export', '--data-dir', dataDir]);
    expect(code).to.equal(0);
    const lines = parseNdjson(stdout);
    expect(lines.map((line: object) => withoutReceivedAt(line))).to.deep.equal(events.map((e, i) => ({ seq: i + 1, ...e })));
    expect(Object.keys(lines[0])).to.deep.equal(['seq', 'topic', 'event_id', 'timestamp', 'source', 'payload', 'received_at']);
    expect(stderr).to.contain('export: 30 events');
  });

  it('filters by topic, source, since, until and from-seq (combined with AND)', async () => {
    const run = async (...flags: string[]): Promise<number[]> => {
      const { code, stdout } = await runLogagg(['export', '--data-dir', dataDir, ...flags]);
      expect(code).to.equal(0);
      return parseNdjson(stdout).map((e) => e.seq);
    };
    const [byTopic, byTwoTopics, bySource, byTime, byFromSeq, combined] = await Promise.all([
      run('--topic', 'orders'),
      run('--topic', 'orders', '--topic', 'users'),
      run('--source', 'worker'),
      run('--since', '2025-10-23T10:00:10Z', '--until', '2025-10-23T10:00:15Z'),
      run('--from-seq', '25'),
      run('--topic', 'payments', '--source', 'api', '--from-seq', '10'),
    ]);
    expect(byTopic).to.deep.equal([1, 4, 7, 10, 13, 16, 19, 22, 25, 28]);
    expect(byTwoTopics).to.have.length(20);
    expect(bySource).to.deep.equal(Array.from({ length: 15 }, (_, i) => 2 * i + 2));
    expect(byTime).to.deep.equal([11, 12, 13, 14, 15]);
    expect(byFromSeq).to.deep.equal([25, 26, 27, 28, 29, 30]);
    // payments = seq 2,5,8,...; api = odd seqs; from 10: 11, 17, 23, 29
    expect(combined).to.deep.equal([11, 17, 23, 29]);
  });

  it('writes the same lines to --out FILE, with a JSON summary on stderr under --json', async () => {
    const out = path.join(makeTempDir(), 'events.ndjson');
    const toFile = await runLogagg(['export', '--data-dir', dataDir, '--out', out, '--json']);
    expect(toFile.code).to.equal(0);
    expect(toFile.stdout).to.equal('');
    expect(JSON.parse(toFile.stderr)).to.include({ events: 30, lastSeq: 30, out });
    const toStdout = await runLogagg(['export', '--data-dir', dataDir]);
    expect(fs.readFileSync(out, 'utf8')).to.equal(toStdout.stdout);
  });

  it('skips a corrupt line, names it on stderr and exits 1', async () => {
    const { code, stdout, stderr } = await runLogagg(['export', '--data-dir', dataDirFromWalFixture('bad-crc-middle')]);
    expect(code).to.equal(1);
    expect(parseNdjson(stdout).map((e) => e.seq)).to.deep.equal([1, 3]);
    expect(stderr).to.match(/skipped a corrupt line \(bad_crc\) in .*00000000000000000001\.ndjson at byte offset 147/);
  });
});
