import { Client } from '@elastic/elasticsearch';
import { expect } from 'chai';
import { fetchAllEvents } from '../helpers/events';
import { startFlakyProxy } from '../helpers/flaky-proxy';
import { sampleValue } from '../helpers/prometheus';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

const PUBLISH_KEY = 'bulk-publish-key-0123456789';

interface Doc {
  id: string;
  '@timestamp': string;
  message: string;
  host: { name: string };
  http: { status: number };
}

function docs(prefix: string, count: number): Doc[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    '@timestamp': new Date(Date.UTC(2025, 9, 23, 10, 0, 0, i)).toISOString(),
    message: `GET /item/${i}`,
    host: { name: 'web-1' },
    http: { status: 200 + (i % 3) },
  }));
}

async function elasticCount(url: string, result: string): Promise<number> {
  return sampleValue(await (await fetch(`${url}/metrics`)).text(), 'logagg_protocol_events_total', { protocol: 'elastic', result }) ?? 0;
}

describe('@elastic/elasticsearch helpers.bulk against POST /_bulk (real server process)', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(makeTempDir(), { API_KEYS_PUBLISH: PUBLISH_KEY });
  });
  after(async () => {
    await server.kill('SIGTERM');
  });

  it("stores create + _id documents once; the second run reports every item 409 in the client's own counts", async () => {
    const client = new Client({ node: server.url, auth: { bearer: PUBLISH_KEY } });
    const sent = docs('access', 120);
    const bulk = async (): Promise<{
      stats: Awaited<ReturnType<typeof client.helpers.bulk>>;
      drops: Array<{ status: number; error: any }>;
    }> => {
      const drops: Array<{ status: number; error: any }> = [];
      const stats = await client.helpers.bulk<Doc>({
        datasource: sent,
        onDocument: (doc) => ({ create: { _index: 'access-logs', _id: doc.id } }),
        onDrop: (dropped) => drops.push({ status: dropped.status, error: dropped.error }),
        flushBytes: 4096,
        concurrency: 2,
      });
      return { stats, drops };
    };
    try {
      const first = await bulk();
      expect(first.stats).to.deep.include({ total: 120, successful: 120, failed: 0, aborted: false });
      expect(first.drops).to.deep.equal([]);
      const stored = await waitFor(
        async () => {
          const events = await fetchAllEvents(server.url, 'access-logs');
          return events.length === 120 ? events : null;
        },
        { what: '120 documents in the index' },
      );
      const seventh = stored.find((e) => e.event_id === 'access-7')!;
      expect(seventh).to.deep.include({ topic: 'access-logs', source: 'web-1', timestamp: '2025-10-23T10:00:00.007Z' });
      expect(seventh.payload).to.deep.equal({
        id: 'access-7',
        '@timestamp': '2025-10-23T10:00:00.007Z',
        message: 'GET /item/7',
        host: { name: 'web-1' },
        http: { status: 201 },
      });

      const second = await bulk();
      expect(second.stats).to.deep.include({ total: 120, successful: 0, failed: 120 });
      expect(second.drops).to.have.length(120);
      expect(new Set(second.drops.map((d) => `${d.status} ${d.error.type}`))).to.deep.equal(
        new Set(['409 version_conflict_engine_exception']),
      );
      expect(await fetchAllEvents(server.url, 'access-logs')).to.have.length(120);
    } finally {
      await client.close();
    }
  });

  it('a bulk request whose answer was lost (503 after it was stored) is retried by the client and stored once', async () => {
    const proxy = await startFlakyProxy(server.url, { failFirst: 1, failure: 'answer-503', pathPrefix: '/_bulk' });
    const client = new Client({ node: proxy.url, auth: { bearer: PUBLISH_KEY }, maxRetries: 3 });
    try {
      const duplicatesBefore = await elasticCount(server.url, 'duplicate');
      const drops: unknown[] = [];
      const stats = await client.helpers.bulk<Doc>({
        datasource: docs('retry', 40),
        // `index` with an _id: a re-sent item is answered 200 (kept, not overwritten), so the client counts it a success.
        onDocument: (doc) => ({ index: { _index: 'retry-logs', _id: doc.id } }),
        onDrop: (dropped) => drops.push(dropped),
      });
      expect(proxy.failed()).to.equal(1);
      expect(proxy.forwarded()).to.equal(2);
      expect(stats).to.deep.include({ total: 40, successful: 40, failed: 0 });
      expect(drops).to.deep.equal([]);
      expect((await elasticCount(server.url, 'duplicate')) - duplicatesBefore).to.equal(40);
      await waitFor(async () => (await fetchAllEvents(server.url, 'retry-logs')).length >= 40, { what: '40 documents' });
      expect(await fetchAllEvents(server.url, 'retry-logs')).to.have.length(40);
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("reports the 401 of a wrong key as the client's ResponseError (not a product-check failure), storing nothing", async () => {
    const client = new Client({ node: server.url, auth: { bearer: 'wrong-key-0123456789abcdef' } });
    try {
      const err = await client.bulk({ operations: [{ create: { _index: 'denied', _id: '1' } }, { message: 'x' }] }).then(
        () => null,
        (e: unknown) => e as { name: string; meta?: { statusCode?: number } },
      );
      expect(err?.name).to.equal('ResponseError');
      expect(err?.meta?.statusCode).to.equal(401);
      expect(await fetchAllEvents(server.url, 'denied')).to.deep.equal([]);
    } finally {
      await client.close();
    }
  });
  it('authenticates with the key as an ApiKey (id:key) or as the Basic password, as the client sends them', async () => {
    const clients = [
      new Client({ node: server.url, auth: { apiKey: { id: 'shipper-1', api_key: PUBLISH_KEY } } }),
      new Client({ node: server.url, auth: { apiKey: PUBLISH_KEY } }),
      new Client({ node: server.url, auth: { username: 'fluent-bit', password: PUBLISH_KEY } }),
    ];
    try {
      for (const [i, client] of clients.entries()) {
        const answer = await client.bulk({ operations: [{ create: { _index: 'auth-schemes', _id: `doc-${i}` } }, { message: `m${i}` }] });
        expect(answer.errors, `client ${i}`).to.equal(false);
      }
      const stored = await waitFor(
        async () => {
          const events = await fetchAllEvents(server.url, 'auth-schemes');
          return events.length === clients.length ? events : null;
        },
        { what: 'one document per client' },
      );
      expect(stored.map((e) => e.event_id).sort()).to.deep.equal(['doc-0', 'doc-1', 'doc-2']);
    } finally {
      for (const client of clients) await client.close();
    }
  });
});
