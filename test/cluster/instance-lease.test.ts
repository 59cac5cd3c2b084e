import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { INSTANCE_ID_FILE } from '../../src/cluster/instance-id';
import { ServerRun, startServerProcess, type ServerProcess } from '../harness/server-process';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { makeTempDir } from '../helpers/temp-dir';

async function publish(url: string, id: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'lease', event_id: id, timestamp: '2025-10-23T10:00:00Z', source: 'test', payload: {} }),
  });
  return { status: res.status, body: await res.json() };
}

/** A copy of a data dir as a file-level backup would make it (without the lock file of a live server). */
function copyDataDir(from: string): string {
  const to = makeTempDir('logagg-lease-copy-');
  fs.cpSync(from, to, { recursive: true, filter: (source) => path.basename(source) !== 'logagg.lock' });
  return to;
}

describe('Cluster mode: one live process per instance id (copied data dirs)', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let env: Record<string, string>;
  const started: Array<ServerProcess | ServerRun> = [];

  before(async () => {
    db = await createTestDatabase();
    env = { DATABASE_URL: db.url, DATABASE_TIMEOUT_MS: '2000' };
  });

  after(async () => {
    for (const server of started) {
      if (server instanceof ServerRun) server.killNow();
      else await server.kill('SIGKILL');
    }
    await db.drop();
  });

  it('refuses to start on a copy of a live instance’s data dir, naming the other process', async () => {
    const original = makeTempDir('logagg-lease-');
    const a = await startServerProcess(original, env);
    started.push(a);
    expect((await publish(a.url, 'before-copy')).body.accepted).to.equal(1);
    const copy = copyDataDir(original);
    expect(fs.readFileSync(path.join(copy, INSTANCE_ID_FILE), 'utf8')).to.equal(
      fs.readFileSync(path.join(original, INSTANCE_ID_FILE), 'utf8'),
    );

    const b = new ServerRun(copy, env);
    started.push(b);
    const exit = await b.program.runToExit(60_000);
    expect(exit.code).to.equal(1);
    expect(b.output()).to.match(/instance id [0-9a-f-]{36} is in use by pid \d+ on .* \(data dir .*\).*a copied data dir\?/);
    // The original goes on undisturbed.
    expect((await publish(a.url, 'after-copy')).body.accepted).to.equal(1);
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM logagg_leases');
    expect(Number(rows[0]!.n)).to.equal(1);
  });

  it('restarts at once after kill -9 on the same data dir, and a clean stop gives the lease up', async () => {
    const dir = makeTempDir('logagg-lease-');
    const first = await startServerProcess(dir, env);
    await first.kill('SIGKILL');
    const second = await startServerProcess(dir, env);
    started.push(second);
    expect((await publish(second.url, 'after-kill')).body.accepted).to.equal(1);
    const id = fs.readFileSync(path.join(dir, INSTANCE_ID_FILE), 'utf8').trim();
    expect(await db.query('SELECT pid FROM logagg_leases WHERE instance_id = $1', [id])).to.deep.equal([{ pid: second.child.pid }]);
    expect((await second.kill('SIGTERM')).code).to.equal(0);
    expect(await db.query('SELECT pid FROM logagg_leases WHERE instance_id = $1', [id])).to.deep.equal([]);
  });

  it('lets a copy take over from a holder that stopped renewing, and that holder then stops itself', async () => {
    const original = makeTempDir('logagg-lease-');
    const a = await startServerProcess(original, env);
    started.push(a);
    const copy = copyDataDir(original);
    // A frozen process renews nothing: past the lease's TTL the copy takes the instance id over.
    a.child.kill('SIGSTOP');
    try {
      const b = await startServerProcess(copy, env);
      started.push(b);
      expect((await publish(b.url, 'on-the-copy')).body.accepted).to.equal(1);
    } finally {
      a.child.kill('SIGCONT');
    }
    const exit = await a.exited;
    expect(exit.code).to.equal(1);
    expect(a.output()).to.match(/was taken over by another process|decision refused: logagg lease lost/);
  });
});
