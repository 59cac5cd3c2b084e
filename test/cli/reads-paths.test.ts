import { expect } from 'chai';
import path from 'node:path';
import { parseNdjson, runLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { startServerProcess } from '../harness/server-process';

describe('logagg tail -n --url reads newest first (order=desc)', () => {
  it('prints the last N matching events, oldest first, for filters the server serves', async () => {
    const dataDir = await makeDataDir([variedEvents(30)]);
    const server = await startServerProcess(dataDir);
    try {
      const last = await runLogagg(['tail', '--url', server.url, '-n', '3', '--json']);
      expect(last.code, last.stderr).to.equal(0);
      expect(parseNdjson(last.stdout).map((e) => e.seq)).to.deep.equal([28, 29, 30]);
      const byTopic = await runLogagg(['tail', '--url', server.url, '-n', '2', '--topic', 'orders', '--json']);
      expect(parseNdjson(byTopic.stdout).map((e) => e.seq)).to.deep.equal([25, 28]);
      // Source api is every even i (odd seq); since 10:00:20 is i >= 20.
      const filtered = await runLogagg([
        'tail',
        '--url',
        server.url,
        '-n',
        '2',
        '--source',
        'api',
        '--since',
        '2025-10-23T10:00:20Z',
        '--json',
      ]);
      expect(parseNdjson(filtered.stdout).map((e) => e.seq)).to.deep.equal([27, 29]);
      // More than there are: all of them.
      const all = await runLogagg(['tail', '--url', server.url, '-n', '1000', '--topic', 'users', '--json']);
      expect(parseNdjson(all.stdout).map((e) => e.seq)).to.deep.equal(Array.from({ length: 10 }, (_, i) => 3 + 3 * i));
    } finally {
      await server.kill('SIGTERM');
    }
  });
});

describe('logagg export --since starts at the first match the index knows', () => {
  it('skips the segments before it and exports what reading the whole log exports', async () => {
    const dataDir = await makeDataDir(
      variedEvents(60).map((e) => [e]),
      { segmentBytesMax: 4096 },
    );
    const everything = await runLogagg(['export', '--data-dir', dataDir, '--json']);
    const total = JSON.parse(everything.stderr.trim()) as { segments: number; events: number };
    expect(total.events).to.equal(60);
    expect(total.segments).to.be.at.least(3);

    const since = ['export', '--data-dir', dataDir, '--since', '2025-10-23T10:00:50Z', '--topic', 'orders', '--json'];
    const fromIndex = await runLogagg(since);
    expect(fromIndex.code, fromIndex.stderr).to.equal(0);
    // orders is every third i from 0; i >= 50: 51, 54, 57 -> seqs 52, 55, 58.
    expect(parseNdjson(fromIndex.stdout).map((e) => e.seq)).to.deep.equal([52, 55, 58]);
    const summary = JSON.parse(fromIndex.stderr.trim()) as { segments: number };
    expect(summary.segments).to.be.lessThan(total.segments);

    // Without an index it reads every segment and finds the same events.
    const withoutIndex = await runLogagg(since, { env: { DATABASE_PATH: path.join(dataDir, 'no-such-index.db') } });
    expect(withoutIndex.stdout).to.equal(fromIndex.stdout);
    expect((JSON.parse(withoutIndex.stderr.trim()) as { segments: number }).segments).to.equal(total.segments);
  });
});
