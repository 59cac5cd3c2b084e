import { expect } from 'chai';
import { runLogagg } from '../harness/logagg-process';
import { startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

describe('logagg publish (publisher simulator)', () => {
  it('runs the seed scenarios and a load against a live server: expected equals observed', async () => {
    const server = await startServerProcess(makeTempDir());
    try {
      const scenarios = await runLogagg(['publish', '--url', server.url, '--json', '--seed', '7']);
      expect(scenarios.code, scenarios.stderr).to.equal(0);
      const report = JSON.parse(scenarios.stdout);
      expect(report.ok).to.equal(true);
      expect(report.scenarios.map((s: any) => s.name)).to.deep.equal([
        'same-event-3x',
        'batch-internal-duplicates',
        'mixed-batch',
        'several-topics',
        'high-frequency',
      ]);
      expect(report.scenarios[0].expected).to.deep.equal({ received: 3, accepted: 1, duplicates: 2 });
      expect(report.scenarios[1].expected).to.deep.equal({ received: 5, accepted: 3, duplicates: 2 });
      for (const s of report.scenarios) {
        expect(s.responses, s.name).to.deep.equal(s.expected);
        expect(s.stats, s.name).to.deep.equal(s.expected);
      }

      const load = await runLogagg([
        'publish',
        '--url',
        server.url,
        '--count',
        '2000',
        '--batch',
        '100',
        '--dup-rate',
        '0.25',
        '--topics',
        '4',
        '--concurrency',
        '4',
        '--seed',
        '1',
      ]);
      expect(load.code, load.stdout).to.equal(0);
      expect(load.stdout).to.match(/ok {3}load: 2000 events in batches of 100, 25% duplicates, 4 topics, 4 concurrent requests/);
      expect(load.stdout).to.contain('all 1 scenario(s) match');
    } finally {
      await server.kill('SIGTERM');
    }
  });

  it('sends LOGAGG_API_KEY as a bearer token to a server with API keys', async () => {
    const key = 'cli-test-key-0123456789';
    const server = await startServerProcess(makeTempDir(), { API_KEYS_PUBLISH: key, API_KEYS_READ: key });
    try {
      const refused = await runLogagg(['publish', '--url', server.url, '--scenario', 'same-event-3x', '--retries', '0']);
      expect(refused.code).to.equal(1);
      const allowed = await runLogagg(['publish', '--url', server.url, '--scenario', 'same-event-3x', '--json'], {
        env: { LOGAGG_API_KEY: key },
      });
      expect(allowed.code, allowed.stderr).to.equal(0);
      expect(JSON.parse(allowed.stdout).ok).to.equal(true);
    } finally {
      await server.kill('SIGTERM');
    }
  });

  it('exits 1 when it cannot reach the server', async () => {
    const { code, stderr } = await runLogagg(['publish', '--url', 'http://127.0.0.1:9', '--retries', '0']);
    expect(code).to.equal(1);
    expect(stderr).to.contain('publish: same-event-3x');
  });
});
