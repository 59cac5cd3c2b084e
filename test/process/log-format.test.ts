import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { MAIN_JS } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** Runs the server with `env` until its output passes `done` (or it exits); returns the output and exit code. */
async function runServer(env: Record<string, string>, done: (output: string) => boolean): Promise<{ output: string; code: number | null }> {
  const child = spawn(process.execPath, [MAIN_JS], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: makeTempDir(), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let code: number | null | undefined;
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.once('exit', (exitCode) => (code = exitCode));
  try {
    await waitFor(() => done(output) || code !== undefined, { timeoutMs: 15_000, what: 'server output' });
  } finally {
    if (code === undefined) child.kill('SIGTERM');
    await waitFor(() => code !== undefined, { what: 'server exit' });
  }
  return { output, code: code ?? null };
}

describe('LOG_FORMAT', () => {
  it('prints readable lines with pretty, the start-up line naming the page and /docs', async () => {
    const { output } = await runServer({ LOG_FORMAT: 'pretty' }, (text) => text.includes('listening on'));
    expect(output).to.match(/INFO: listening on http:\/\/127\.0\.0\.1:\d+\/ \(API docs: http:\/\/127\.0\.0\.1:\d+\/docs\)/);
    expect(output).not.to.contain('"msg":"listening"');
  });

  it('keeps one JSON object a line when stdout is not a terminal, with the page and /docs URLs', async () => {
    const { output } = await runServer({}, (text) => text.includes('"msg":"listening"'));
    const line = output.split('\n').find((l) => l.includes('"msg":"listening"'))!;
    const parsed = JSON.parse(line) as { port: number; page: string; docs: string };
    expect(parsed.page).to.equal(`http://127.0.0.1:${parsed.port}/`);
    expect(parsed.docs).to.equal(`http://127.0.0.1:${parsed.port}/docs`);
  });

  it('stops startup with one line naming a bad value', async () => {
    const { output, code } = await runServer({ LOG_FORMAT: 'fancy' }, () => false);
    expect(code).to.equal(2);
    expect(output.trim()).to.equal('log-aggregator: invalid setting LOG_FORMAT="fancy": expected one of auto, json, pretty');
  });
});
