import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { INSTANCE_ID_FILE } from '../../src/cluster/instance-id';
import { runLogagg } from '../harness/logagg-process';
import { startServerProcess } from '../harness/server-process';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { makeTempDir } from '../helpers/temp-dir';

function event(id: string, payload: Record<string, unknown> = {}): Record<string, unknown> {
  return { topic: 'verify', event_id: id, timestamp: '2025-10-23T10:00:00Z', source: 'test', payload };
}

async function publish(url: string, events: unknown[]): Promise<any> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  expect(res.status).to.equal(200);
  return res.json();
}

describe('logagg verify --database-url (cluster mode)', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let dirA: string;
  let dirB: string;
  let instanceA: string;

  before(async () => {
    db = await createTestDatabase();
    dirA = makeTempDir('logagg-verify-a-');
    dirB = makeTempDir('logagg-verify-b-');
    const env = { DATABASE_URL: db.url };
    const [a, b] = await Promise.all([startServerProcess(dirA, env), startServerProcess(dirB, env)]);
    await publish(a.url, [event('a-1'), event('a-2'), event('a-3', { n: 3 })]);
    // Logged by B, stored by A first: B's record is a duplicate, with no row of B's own.
    const answer = await publish(b.url, [event('a-2'), event('b-1'), event('a-3', { n: 'other' })]);
    expect(answer.accepted).to.equal(1);
    await publish(a.url, [event('b-1'), event('a-4')]);
    expect((await a.kill('SIGTERM')).code).to.equal(0);
    expect((await b.kill('SIGTERM')).code).to.equal(0);
    instanceA = fs.readFileSync(path.join(dirA, INSTANCE_ID_FILE), 'utf8').trim();
  });

  after(async () => {
    await db.drop();
  });

  async function verify(
    dir: string,
    args: string[] = ['--database-url', db.url],
    env: Record<string, string> = {},
  ): Promise<{ code: number | null; report: any }> {
    const { code, stdout, stderr } = await runLogagg(['verify', '--data-dir', dir, '--json', ...args], { env });
    if (stdout === '') throw new Error(`verify printed nothing (exit ${code}): ${stderr}`);
    return { code, report: JSON.parse(stdout) };
  }

  it('finds each instance’s log and its rows in PostgreSQL in agreement, duplicates counted', async () => {
    const a = await verify(dirA);
    expect(a.code).to.equal(0);
    expect(a.report.ok).to.equal(true);
    expect(a.report.cluster).to.deep.include({
      instanceId: instanceA,
      confirmedLocalSeq: 5,
      rows: 4,
      duplicates: 1,
      notYetDecided: 0,
      problems: [],
    });
    expect(a.report.records).to.equal(5);
    const b = await verify(dirB);
    expect(b.code).to.equal(0);
    expect(b.report.cluster).to.deep.include({ confirmedLocalSeq: 3, rows: 1, duplicates: 2, problems: [] });
  });

  it('reads DATABASE_URL from the environment as the server does, and prints a human report', async () => {
    const { code, stdout } = await runLogagg(['verify', '--data-dir', dirA], { env: { DATABASE_URL: db.url } });
    expect(code).to.equal(0);
    expect(stdout).to.include(`cluster instance ${instanceA}`);
    expect(stdout).to.match(/confirmed local seq 5, 4 rows of this instance, 1 logged duplicates of stored keys: agrees with the log/);
  });

  it('reports a row missing, a row the log lacks and a row that differs, and exits 1', async () => {
    await db.query(`DELETE FROM logagg_events WHERE instance_id = $1 AND local_seq = 1`, [instanceA]);
    await db.query(`UPDATE logagg_events SET body = replace(body, '"n":3', '"n":4') WHERE instance_id = $1 AND local_seq = 3`, [instanceA]);
    await db.query(
      `INSERT INTO logagg_events SELECT 1000, topic_json, '"ghost"', source_json, ts_ms, received_ms, body, instance_id, 99 FROM logagg_events WHERE instance_id = $1 AND local_seq = 2`,
      [instanceA],
    );
    const { code, report } = await verify(dirA);
    expect(code).to.equal(1);
    expect(report.ok).to.equal(false);
    const kinds = (report.cluster.problems as Array<{ kind: string; seq: number }>).map((p) => [p.kind, p.seq]);
    expect(kinds).to.deep.equal([
      ['index_missing_row', 1],
      ['index_mismatch', 3],
      ['index_extra_row', 99],
    ]);
  });

  it('refuses a data dir that never ran in cluster mode, and rebuild refuses a cluster data dir', async () => {
    const plain = makeTempDir('logagg-verify-plain-');
    fs.mkdirSync(path.join(plain, 'wal'));
    const verifyPlain = await runLogagg(['verify', '--data-dir', plain, '--database-url', db.url]);
    expect(verifyPlain.code).to.equal(1);
    expect(verifyPlain.stderr).to.match(/instance-id is absent: this data dir never ran in cluster mode/);
    const rebuild = await runLogagg(['rebuild', '--data-dir', dirA]);
    expect(rebuild.code).to.equal(1);
    expect(rebuild.stderr).to.match(/is a cluster instance's data dir .* its index is the shared PostgreSQL/);
  });
});
