import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { LOCK_FILE } from '../../src/data-dir-lock';
import { runLogagg } from '../harness/logagg-process';
import { makeEvent, postJson } from '../helpers/events';
import { ChildProgram, MAIN_JS, startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

/** Runs the server entry point to its exit (it is expected to refuse), with its output. */
async function runServerToExit(dataDir: string): Promise<{ code: number | null; output: string }> {
  const program = ChildProgram.node(MAIN_JS, [], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
  });
  const exit = await program.runToExit(15_000);
  return { code: exit.code, output: program.output() };
}

/** This process's start time from /proc (what the lock records), or null off Linux. */
function ownProcStart(): string | null {
  try {
    const text = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

describe('one process per data dir', function () {
  this.timeout(60_000);

  it('refuses a second server on a data dir in use, and repair/rebuild too; the running server is untouched', async () => {
    const dataDir = makeTempDir();
    const server = await startServerProcess(dataDir);
    try {
      expect((await postJson(`${server.url}/publish`, makeEvent('lock', 'before'))).status).to.equal(200);
      const holder = JSON.parse(fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8'));
      expect(holder).to.include({ pid: server.child.pid, command: 'serve' });

      const second = await runServerToExit(dataDir);
      expect(second.code).to.equal(1);
      expect(second.output).to.contain(`log-aggregator: cannot start: ${dataDir} is in use`);
      expect(second.output).to.contain(`held by pid ${server.child.pid} (a running server)`);
      // The refused server wrote nothing: no listening line, no recovery.
      expect(second.output).not.to.contain('"msg":"listening"');

      for (const command of ['repair', 'rebuild']) {
        const refused = await runLogagg([command, '--data-dir', dataDir]);
        expect(refused.code, `${command}: ${refused.stderr}`).to.equal(1);
        expect(refused.stderr).to.contain(`held by pid ${server.child.pid} (a running server)`);
      }

      expect((await postJson(`${server.url}/publish`, makeEvent('lock', 'after'))).status).to.equal(200);
      const stats = (await (await fetch(`${server.url}/stats`)).json()) as { unique_processed: number };
      expect(stats.unique_processed).to.equal(2);
    } finally {
      await server.kill('SIGTERM');
    }
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE)), 'a clean stop removes the lock').to.equal(false);
  });

  it('takes over the lock of a server killed with SIGKILL', async () => {
    const dataDir = makeTempDir();
    const first = await startServerProcess(dataDir);
    expect((await postJson(`${first.url}/publish`, makeEvent('lock', 'one'))).status).to.equal(200);
    await first.kill('SIGKILL');
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE)), 'kill -9 leaves the lock behind').to.equal(true);
    const second = await startServerProcess(dataDir);
    try {
      const holder = JSON.parse(fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8'));
      expect(holder.pid).to.equal(second.child.pid);
      const events = (await (await fetch(`${second.url}/events?topic=lock`)).json()) as { events: Array<{ event_id: string }> };
      expect(events.events.map((e) => e.event_id)).to.deep.equal(['one']);
    } finally {
      await second.kill('SIGTERM');
    }
  });

  it('takes over a lock whose pid now belongs to another process (pid reused), and refuses one whose pid and start time match', async function () {
    const start = ownProcStart();
    if (start === null) this.skip();
    const dataDir = makeTempDir();
    const lockPath = path.join(dataDir, LOCK_FILE);
    // This test runner is alive: with its own start time it holds the dir...
    fs.writeFileSync(lockPath, JSON.stringify({ pid: process.pid, command: 'serve', proc_start: start }));
    const refused = await runServerToExit(dataDir);
    expect(refused.code).to.equal(1);
    expect(refused.output).to.contain(`held by pid ${process.pid}`);
    // ...with another start time, its pid was reused after the holder died: stale.
    fs.writeFileSync(lockPath, JSON.stringify({ pid: process.pid, command: 'serve', proc_start: String(Number(start) + 1) }));
    const server = await startServerProcess(dataDir);
    try {
      expect(JSON.parse(fs.readFileSync(lockPath, 'utf8')).pid).to.equal(server.child.pid);
    } finally {
      await server.kill('SIGTERM');
    }
  });
});
