import { expect } from 'chai';
import { waitFor } from '../../src/cli/wait';
import { runLogagg } from '../harness/logagg-process';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { makeTempDir } from '../helpers/temp-dir';

function event(id: string, payload: Record<string, unknown> = { pad: 'x'.repeat(120) }): Record<string, unknown> {
  return { topic: 'retained', event_id: id, timestamp: '2025-10-23T10:00:00Z', source: 'test', payload };
}

async function publish(url: string, events: unknown[]): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  return { status: res.status, body: await res.json() };
}

async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

/** Every stored event of the cluster, by following next_cursor. */
async function allEvents(url: string): Promise<Array<{ seq: number; event_id: string }>> {
  const events: Array<{ seq: number; event_id: string }> = [];
  let after = 0;
  for (;;) {
    const page = await getJson(`${url}/events?topic=retained&limit=1000&after=${after}`);
    events.push(...(page.events as Array<{ seq: number; event_id: string }>));
    if (page.next_cursor === null) return events;
    after = page.next_cursor as number;
  }
}

/** Tiny segments and a tiny RETENTION_BYTES: deletions run all the time. */
const RETAINING = { SEGMENT_BYTES_MAX: '4096', RETENTION_BYTES: '12000', DATABASE_TIMEOUT_MS: '2000' };

describe('Cluster mode: retention of each instance’s log', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  const servers: ServerProcess[] = [];

  before(async () => {
    db = await createTestDatabase();
  });

  after(async () => {
    for (const server of servers) await server.kill('SIGKILL');
    await db.drop();
  });

  it('deletes confirmed segments and their rows, keeps their keys, and /stats agrees on every instance', async () => {
    const env = { ...RETAINING, DATABASE_URL: db.url };
    const dirA = makeTempDir('logagg-cret-a-');
    const a = await startServerProcess(dirA, env);
    const b = await startServerProcess(makeTempDir('logagg-cret-b-'), env);
    servers.push(a, b);
    const seqOf = new Map<string, number>();
    for (let batch = 0; batch < 30; batch += 1) {
      const ids = Array.from({ length: 10 }, (_, i) => `a-${batch * 10 + i}`);
      const answer = await publish(
        a.url,
        ids.map((id) => event(id)),
      );
      expect(answer.status).to.equal(200);
      ids.forEach((id, i) => seqOf.set(id, answer.body.results[i].seq as number));
    }
    expect((await publish(b.url, [event('b-0'), event('b-1')])).body.accepted).to.equal(2);

    // A deletes until its log is within the bound (plus the active segment).
    const statsA = await waitFor(
      async () => {
        const stats = await getJson(`${a.url}/stats`);
        return stats.expired_events > 0 && stats.log_bytes <= 12000 + 4096 ? stats : null;
      },
      { timeoutMs: 30_000, what: 'retention on instance A' },
    );
    const statsB = await getJson(`${b.url}/stats`);
    for (const field of ['first_seq', 'expired_events', 'dedup_keys', 'unique_processed', 'checkpoint_seq'])
      expect(statsB[field], field).to.equal(statsA[field]);
    // Horizon forever (0): every key is still known, the deleted events' included.
    expect(statsA.unique_processed).to.equal(302);
    expect(statsA.dedup_keys).to.equal(302);
    const stored = await allEvents(b.url);
    expect(stored).to.have.length(302 - statsA.expired_events);
    expect(stored[0]!.seq).to.equal(statsA.first_seq);
    expect(stored.map((e) => e.event_id)).to.not.include('a-0');

    // A re-send of a deleted event, on the other instance: duplicate with its original seq, or conflict by content.
    const again = await publish(b.url, [event('a-0'), event('a-1', { pad: 'changed' })]);
    expect(again.body.accepted).to.equal(0);
    expect(again.body.results).to.deep.equal([
      { status: 'duplicate', seq: seqOf.get('a-0') },
      { status: 'duplicate', seq: seqOf.get('a-1'), conflict: true },
    ]);

    // The log and the database agree once A is stopped (its deleted rows are not missing rows).
    expect((await a.kill('SIGTERM')).code).to.equal(0);
    const verified = await runLogagg(['verify', '--data-dir', dirA, '--database-url', db.url, '--json']);
    const report = JSON.parse(verified.stdout);
    expect(report.cluster.problems).to.deep.equal([]);
    expect(verified.code).to.equal(0);
    expect(report.cluster.expiredEvents).to.equal(statsA.expired_events);
  });

  it('survives kill -9 at any point of its deletions: no acknowledged key lost, none stored twice', async () => {
    const env = { ...RETAINING, DATABASE_URL: db.url };
    const dir = makeTempDir('logagg-cret-kill-');
    const acked = new Map<string, number>();
    let server = await startServerProcess(dir, env);
    for (let round = 0; round < 8; round += 1) {
      // Publish while retention deletes, then kill -9 at a moment that varies from round to round.
      const deadline = Date.now() + 150 + 60 * round;
      let n = 0;
      while (Date.now() < deadline) {
        const ids = Array.from({ length: 20 }, (_, i) => `k-${round}-${n}-${i}`);
        n += 1;
        const answer = await publish(
          server.url,
          ids.map((id) => event(id)),
        );
        if (answer.status !== 200) break;
        ids.forEach((id, i) => acked.set(id, answer.body.results[i].seq as number));
      }
      await server.kill('SIGKILL');
      server = await startServerProcess(dir, env);
    }
    servers.push(server);
    // Every acknowledged key is known with its seq: stored, or deleted with its key kept.
    const ids = [...acked.keys()];
    for (let i = 0; i < ids.length; i += 500) {
      const slice = ids.slice(i, i + 500);
      const answer = await publish(
        server.url,
        slice.map((id) => event(id)),
      );
      expect(answer.status).to.equal(200);
      expect(answer.body.accepted).to.equal(0);
      slice.forEach((id, j) => expect(answer.body.results[j]).to.deep.equal({ status: 'duplicate', seq: acked.get(id) }));
    }
    const stats = await getJson(`${server.url}/stats`);
    const rows = await db.query<{ n: string }>(`SELECT count(*) AS n FROM logagg_events WHERE topic_json = '"retained"'`);
    const keys = await db.query<{ n: string }>(`SELECT count(*) AS n FROM logagg_expired_keys`);
    // Stored rows + kept keys = the keys of the cluster, once each (both tables are keyed by (topic, event_id)).
    expect(Number(rows[0]!.n) + Number(keys[0]!.n)).to.equal(stats.unique_processed);
    expect(stats.dedup_keys).to.equal(stats.unique_processed);
    expect(stats.expired_events).to.be.greaterThan(0);
    expect((await server.kill('SIGTERM')).code).to.equal(0);
    const verified = await runLogagg(['verify', '--data-dir', dir, '--database-url', db.url, '--json']);
    expect(JSON.parse(verified.stdout).cluster.problems).to.deep.equal([]);
    expect(verified.code).to.equal(0);
  });

  it('forgets the keys of deleted events past DEDUP_HORIZON_MS: a re-send is then accepted as new', async () => {
    const env = { ...RETAINING, DATABASE_URL: db.url, DEDUP_HORIZON_MS: '1000' };
    const server = await startServerProcess(makeTempDir('logagg-cret-horizon-'), env);
    servers.push(server);
    for (let batch = 0; batch < 15; batch += 1) {
      const answer = await publish(
        server.url,
        Array.from({ length: 10 }, (_, i) => event(`h-${batch * 10 + i}`)),
      );
      expect(answer.body.accepted).to.equal(10);
    }
    await waitFor(async () => (await db.query(`SELECT 1 FROM logagg_expired_keys WHERE event_id_json = '"h-0"'`)).length === 1, {
      timeoutMs: 30_000,
      what: 'h-0 deleted by retention',
    });
    await waitFor(async () => (await db.query(`SELECT 1 FROM logagg_expired_keys WHERE event_id_json = '"h-0"'`)).length === 0, {
      timeoutMs: 30_000,
      what: 'the horizon sweep to forget h-0',
    });
    const again = await publish(server.url, [event('h-0')]);
    expect(again.body.accepted).to.equal(1);
  });
});
