import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { runLogagg } from '../harness/logagg-process';

const SUBCOMMANDS = ['serve', 'verify', 'repair', 'rebuild', 'export', 'replay', 'tail', 'publish'];

describe('logagg command', () => {
  it('lists every subcommand in --help and exits 0', async () => {
    const { code, stdout } = await runLogagg(['--help']);
    expect(code).to.equal(0);
    for (const name of SUBCOMMANDS) expect(stdout).to.match(new RegExp(`^  ${name} `, 'm'));
  });

  it("prints each subcommand's own --help with usage, --data-dir and exit codes", async () => {
    const results = await Promise.all(SUBCOMMANDS.map((name) => runLogagg([name, '--help'])));
    results.forEach(({ code, stdout }, i) => {
      expect(code, SUBCOMMANDS[i]).to.equal(0);
      expect(stdout).to.contain(`Usage: logagg ${SUBCOMMANDS[i]}`);
      expect(stdout).to.contain('--data-dir');
      expect(stdout).to.contain('Exit codes: 0 fine, 1 a problem was found');
    });
  });

  it('exits 2 on an unknown command, an unknown flag or a malformed value', async () => {
    const unknown = await runLogagg(['frobnicate']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.contain('unknown command');
    const flag = await runLogagg(['verify', '--no-such-flag']);
    expect(flag.code).to.equal(2);
    expect(flag.stderr).to.contain('logagg verify --help');
    const value = await runLogagg(['export', '--since', 'yesterday']);
    expect(value.code).to.equal(2);
    expect(value.stderr).to.contain('--since must be an RFC 3339 date-time');
    const url = await runLogagg(['replay']);
    expect(url.code).to.equal(2);
    expect(url.stderr).to.contain('--to URL is required');
  });

  it("runs as `npx logagg` inside the project (the package's own bin)", async () => {
    const root = path.resolve(__dirname, '../../..');
    const { stdout } = await promisify(execFile)('npx', ['--no-install', 'logagg', '--help'], { cwd: root, timeout: 20_000 });
    expect(stdout).to.contain('Usage: logagg <command>');
  });
});
