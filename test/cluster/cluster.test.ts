import { expect } from 'chai';
import { waitFor } from '../../src/cli/wait';
import { clusterSummaryLine, runClusterChaos, type ClusterChaosOptions, type ClusterChaosResult } from '../harness/chaos-cluster';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { openSse } from '../harness/sse';
import { TcpProxy } from '../harness/tcp-proxy';
import { createTestDatabase, PG_HOST, PG_PORT, type TestDatabase } from '../helpers/pg-database';
import { makeTempDir } from '../helpers/temp-dir';

function event(id: string, payload: Record<string, unknown> = {}): Record<string, unknown> {
  return { topic: 'cluster', event_id: id, timestamp: '2025-10-23T10:00:00Z', source: 'test', payload };
}

async function publish(url: string, body: unknown): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** The JSON answer, with its HTTP status as `httpStatus` (/health has a `status` field of its own). */
async function getJson(url: string): Promise<any> {
  const res = await fetch(url);
  return { httpStatus: res.status, ...((await res.json()) as object) };
}

describe('Cluster mode: three instances on one PostgreSQL', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let proxy: TcpProxy;
  let servers: ServerProcess[] = [];

  before(async () => {
    db = await createTestDatabase();
    proxy = await TcpProxy.start(PG_HOST, PG_PORT);
    const env = { DATABASE_URL: db.urlAt(proxy.port), DATABASE_TIMEOUT_MS: '1000', RETRY_AFTER_SECONDS: '1' };
    // Started together: the schema is migrated once, under the advisory lock.
    servers = await Promise.all([0, 1, 2].map(() => startServerProcess(makeTempDir('logagg-cluster-'), env)));
  });

  after(async () => {
    for (const server of servers) await server.kill('SIGKILL');
    await proxy.close();
    await db.drop();
  });

  it('migrates the schema once when the instances start together', async () => {
    const rows = await db.query<{ version: number }>('SELECT version FROM logagg_schema');
    expect(rows).to.deep.equal([{ version: 2 }]);
  });

  it('accepts exactly one of 50 concurrent identical publishes spread over three instances', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => publish(servers[i % 3]!.url, event('race-1', { n: 1 }))));
    expect(answers.map((a) => a.status)).to.deep.equal(Array(50).fill(200));
    const accepted = answers.filter((a) => a.body.accepted === 1);
    expect(accepted).to.have.length(1);
    const seq = accepted[0]!.body.results[0].seq as number;
    for (const answer of answers) {
      expect(answer.body.results).to.have.length(1);
      expect(answer.body.results[0].seq).to.equal(seq);
      expect(answer.body.results[0].conflict).to.equal(undefined);
    }
    const stored = await db.query<{ n: string }>(`SELECT count(*) AS n FROM logagg_events WHERE event_id_json = '"race-1"'`);
    expect(Number(stored[0]!.n)).to.equal(1);
  });

  it('answers every instance with the same global events and /stats', async () => {
    const first = await publish(servers[0]!.url, { events: [event('g-1'), event('g-2')] });
    const second = await publish(servers[1]!.url, { events: [event('g-2'), event('g-3', { other: true })] });
    expect(first.body.accepted).to.equal(2);
    expect(second.body.accepted).to.equal(1);
    expect(second.body.results[0]).to.deep.equal({ status: 'duplicate', seq: first.body.results[1].seq });
    const pages = await Promise.all(servers.map((s) => getJson(`${s.url}/events?topic=cluster&limit=1000`)));
    for (const page of pages) expect(page).to.deep.equal(pages[0]);
    const ids = (pages[0].events as Array<{ event_id: string; seq: number }>).map((e) => e.event_id);
    expect(ids).to.include.members(['race-1', 'g-1', 'g-2', 'g-3']);
    const seqs = (pages[0].events as Array<{ seq: number }>).map((e) => e.seq);
    expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    const stats = await Promise.all(servers.map((s) => getJson(`${s.url}/stats`)));
    // Uptime and the size of the instance's own log are the instance's; the rest is the cluster's.
    const withoutUptime = ({
      uptime_seconds: _seconds,
      uptime_human: _human,
      log_bytes: _logBytes,
      ...rest
    }: Record<string, unknown>): object => rest;
    for (const s of stats) expect(withoutUptime(s)).to.deep.equal(withoutUptime(stats[0]));
    expect(stats[0].unique_processed).to.equal(ids.length);
    expect(stats[0].received).to.equal(stats[0].unique_processed + stats[0].duplicate_dropped);
  });

  it('delivers an event published to instance B to a live-tail subscriber on instance A', async () => {
    const before = await getJson(`${servers[0]!.url}/stats`);
    const sse = await openSse(`${servers[0]!.url}/events/stream?topic=cluster&after=${before.checkpoint_seq}`);
    try {
      expect(sse.status).to.equal(200);
      const answer = await publish(servers[1]!.url, event('tail-1', { via: 'B' }));
      expect(answer.body.accepted).to.equal(1);
      await waitFor(() => sse.events.some((e) => e.data.event_id === 'tail-1'), { timeoutMs: 10_000, what: 'the event on A' });
      const got = sse.events.find((e) => e.data.event_id === 'tail-1')!;
      expect(got.id).to.equal(answer.body.results[0].seq);
      expect(got.data.payload).to.deep.equal({ via: 'B' });
    } finally {
      sse.close();
    }
  });

  it('answers the histogram over the whole cluster, the same on every instance', async () => {
    const at = (time: string, id: string, word: string): Record<string, unknown> => ({
      ...event(id, { word }),
      topic: 'histo',
      timestamp: `2025-10-23T${time}Z`,
    });
    await publish(servers[0]!.url, { events: [at('10:00:00', 'h-1', 'red'), at('10:00:30', 'h-2', 'blue')] });
    await publish(servers[1]!.url, { events: [at('10:01:10', 'h-3', 'red'), at('10:01:59', 'h-4', 'red')] });
    await publish(servers[2]!.url, { events: [at('10:00:10', 'h-5', 'blue'), at('10:00:00', 'h-1', 'red')] });
    const ranged = `topic=histo&since=2025-10-23T10:00:00Z&until=2025-10-23T10:02:00Z&buckets=2`;
    const answers = await Promise.all(servers.map((s) => getJson(`${s.url}/events/histogram?${ranged}`)));
    for (const answer of answers) expect(answer).to.deep.equal(answers[0]);
    expect(answers[0]).to.deep.equal({
      httpStatus: 200,
      interval_ms: 60_000,
      since: '2025-10-23T10:00:00.000Z',
      until: '2025-10-23T10:02:00.000Z',
      total: 5,
      buckets: [
        { start: '2025-10-23T10:00:00.000Z', count: 3 },
        { start: '2025-10-23T10:01:00.000Z', count: 2 },
      ],
    });
    // Free text is matched on the bodies; a missing range comes from the matching events.
    const red = await getJson(`${servers[1]!.url}/events/histogram?topic=histo&q=red&buckets=3`);
    expect(red.since).to.equal('2025-10-23T10:00:00.000Z');
    expect(red.until).to.equal('2025-10-23T10:01:59.001Z');
    expect(red.total).to.equal(3);
    expect((red.buckets as Array<{ count: number }>).map((b) => b.count)).to.deep.equal([1, 1, 1]);
    const none = await getJson(`${servers[2]!.url}/events/histogram?topic=histo&q=green`);
    expect(none).to.include({ httpStatus: 200, total: 0 });
  });

  it('answers 503 + Retry-After while PostgreSQL is away, says so in /health, and comes back by itself', async () => {
    proxy.setMode('down');
    try {
      const url = servers[2]!.url;
      // The first publish may be logged before the cut shows; it is never acknowledged.
      const refused = await waitFor(
        async () => {
          const answer = await publish(url, event(`outage-${Date.now()}`));
          return answer.status === 503 ? answer : null;
        },
        { timeoutMs: 20_000, what: 'a 503' },
      );
      expect(refused.body.error).to.equal('database_unavailable');
      expect(refused.headers.get('retry-after')).to.equal('1');
      const health = await waitFor(
        async () => {
          const answer = await getJson(`${url}/health`);
          return answer.httpStatus === 503 ? answer : null;
        },
        { timeoutMs: 20_000, what: '/health to say 503' },
      );
      expect(health.status).to.equal('database_unavailable');
      const read = await getJson(`${url}/events?topic=cluster`);
      expect(read.httpStatus).to.equal(503);
      expect(read.error).to.equal('database_unavailable');
    } finally {
      proxy.setMode('pass');
    }
    const back = await waitFor(
      async () => {
        const answer = await publish(servers[2]!.url, event('after-outage'));
        return answer.status === 200 ? answer : null;
      },
      { timeoutMs: 30_000, what: 'publishes to be accepted again' },
    );
    expect(back.body.accepted).to.equal(1);
    expect((await getJson(`${servers[2]!.url}/health`)).status).to.equal('healthy');
  });
});

/** Runs a campaign of CLUSTER_CHAOS_CYCLES (6) cycles and asserts that it found no harm; returns its result. */
async function campaignWithoutHarm(options: Partial<ClusterChaosOptions>): Promise<ClusterChaosResult> {
  const result = await runClusterChaos({ instances: 3, cycles: Number(process.env.CLUSTER_CHAOS_CYCLES ?? 6), ...options });
  const summary = clusterSummaryLine(result);
  console.log(`      ${summary}`);
  expect(result.aborted, summary).to.equal(null);
  expect(result.examples, summary).to.deep.equal([]);
  expect(result.violations, summary).to.deep.equal([]);
  expect(result.statsProblems, summary).to.deep.equal([]);
  expect(result.acked, summary).to.be.greaterThan(0);
  expect(result.ok, summary).to.equal(true);
  return result;
}

describe('Cluster chaos: retries to random instances, kill -9, restarts, outages and latency', function () {
  this.timeout(300_000);

  it('stores every acknowledged key once with its first payload, and the counts agree', async () => {
    await campaignWithoutHarm({ seed: 7 });
  });

  it('in retention mode (4 KiB segments, RETENTION_BYTES=12288) every acknowledged key is stored or known as deleted with its seq', async () => {
    const result = await campaignWithoutHarm({ seed: 11, retentionBytes: 12_288 });
    expect(result.expired, clusterSummaryLine(result)).to.be.greaterThan(0);
  });
});
