import { expect } from 'chai';
import pg from 'pg';
import { migrateSchema } from '../../src/cluster/pg-schema';
import { canonicalEventJson, type LogEvent } from '../../src/wal/record';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { getJson, postJson } from '../helpers/events';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { makeTempDir } from '../helpers/temp-dir';

const TIMESTAMP = '2025-10-23T10:00:00Z';

function event(eventId: string, n: number): LogEvent {
  return { topic: 'upgrade', event_id: eventId, timestamp: TIMESTAMP, source: 'v1', payload: { n } };
}

/**
 * A cluster database as the first cluster release (schema version 1) left it, with events it
 * decided, opened by this build: the migration to the current version keeps every stored
 * key, and the seqs it hands out go on after the old ones (version 2 keeps the last seq in
 * logagg_counters, set from the rows that version 1 stored).
 */
describe('Cluster mode: a schema-1 database with events, upgraded at start', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: ServerProcess | null = null;

  before(async () => {
    db = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      expect(await migrateSchema(pool, 1)).to.equal(0);
      const events = [event('old-1', 1), event('old-2', 2)];
      // The version-1 decision function, as an instance of that release called it.
      const decided = await pool.query<{ seq: string; outcome: string }>(
        'SELECT seq, outcome FROM logagg_decide($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
        [
          'instance-of-release-1',
          2,
          Date.now(),
          [1, 2],
          events.map((e) => JSON.stringify(e.topic)),
          events.map((e) => JSON.stringify(e.event_id)),
          events.map((e) => JSON.stringify(e.source)),
          events.map(() => Date.parse(TIMESTAMP)),
          events.map(() => Date.now()),
          events.map((e) => canonicalEventJson(e)),
          0,
          0,
        ],
      );
      expect(decided.rows.map((r) => [Number(r.seq), r.outcome])).to.deep.equal([
        [1, 'accepted'],
        [2, 'accepted'],
      ]);
    } finally {
      await pool.end();
    }
  });

  after(async () => {
    if (server !== null) await server.kill('SIGKILL');
    await db.drop();
  });

  it('migrates to the current version at start, keeps the old keys and goes on after the old seqs', async () => {
    server = await startServerProcess(makeTempDir('logagg-upgrade-'), { DATABASE_URL: db.url, DATABASE_TIMEOUT_MS: '5000' });
    const version = await db.query<{ version: number }>('SELECT version FROM logagg_schema');
    expect(version.map((r) => r.version)).to.deep.equal([2]);
    const counters = await db.query<{ last_seq: string }>('SELECT last_seq FROM logagg_counters');
    expect(Number(counters[0]!.last_seq)).to.equal(2);

    // A re-send of an event stored by release 1: a duplicate of its seq; a changed one: a conflict.
    const again = await postJson(`${server.url}/publish`, { events: [event('old-2', 2), event('old-1', 99)] });
    expect(again.status).to.equal(200);
    expect(again.body).to.include({ accepted: 0, duplicates: 2, conflicts: 1 });
    expect(again.body.results).to.deep.equal([
      { status: 'duplicate', seq: 2 },
      { status: 'duplicate', seq: 1, conflict: true },
    ]);

    const fresh = await postJson(`${server.url}/publish`, { events: [event('new-1', 3)] });
    expect(fresh.body.results).to.deep.equal([{ status: 'accepted', seq: 3 }]);

    const stats = (await getJson(`${server.url}/stats`)).body as { unique_processed: number; duplicate_dropped: number };
    expect(stats.unique_processed).to.equal(3);
    const page = (await getJson(`${server.url}/events?topic=upgrade`)).body as { events: Array<{ event_id: string; seq: number }> };
    expect(page.events.map((e) => [e.seq, e.event_id])).to.deep.equal([
      [1, 'old-1'],
      [2, 'old-2'],
      [3, 'new-1'],
    ]);
  });
});
