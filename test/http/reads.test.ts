import { expect } from 'chai';
import { makeEvent, postJson } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { openSse } from '../harness/sse';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** Publishes `count` events of `topic` (ids e<from>..), `perRequest` per request, one request at a time. */
async function publishMany(url: string, topic: string, from: number, count: number, perRequest = 10, source = 'test-suite'): Promise<void> {
  for (let i = from; i < from + count; i += perRequest) {
    const events = Array.from({ length: Math.min(perRequest, from + count - i) }, (_, k) => ({
      ...makeEvent(topic, `e${i + k}`),
      source,
    }));
    const { status } = await postJson(`${url}/publish`, { events });
    expect(status).to.equal(200);
  }
}

async function getPage(url: string, params: Record<string, string>): Promise<{ seqs: number[]; next: string | null }> {
  const res = await fetch(`${url}/events?${new URLSearchParams(params).toString()}`);
  expect(res.status).to.equal(200);
  const body = (await res.json()) as { events: Array<{ seq: number }>; next_cursor: string | null };
  return { seqs: body.events.map((e) => e.seq), next: body.next_cursor };
}

describe('Reads through the read workers (real server)', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), { READ_WORKERS: '2' });
  });

  after(async () => {
    await server?.kill('SIGTERM');
  });

  it('pages newest first with order=desc while publishes go on: every older event once, in order, no gap', async () => {
    await publishMany(server.url, 'desc', 0, 500, 25);
    const publishing = publishMany(server.url, 'desc', 500, 500, 5);
    const seen: number[] = [];
    let after: string | null = null;
    let top = 0;
    try {
      for (;;) {
        const params: Record<string, string> = { order: 'desc', limit: '37', topic: 'desc' };
        if (after !== null) params.after = after;
        const page = await getPage(server.url, params);
        if (after === null) top = page.seqs[0]!;
        seen.push(...page.seqs);
        if (page.next === null) break;
        after = page.next;
      }
    } finally {
      await publishing;
    }
    // Newer events arrived above the first page; every event at or below it is seen exactly once.
    expect(top).to.be.at.least(500);
    expect(seen).to.deep.equal(Array.from({ length: top }, (_, i) => top - i));
  });

  it('keeps a filtered live tail exact across the switch from catch-up to live, for streams opened during publishes', async () => {
    const topic = 'switch';
    // History the filter does not match, so each catch-up read scans for a while as the index commits.
    await publishMany(server.url, 'history', 0, 4000, 500);
    const base = (await getPage(server.url, { order: 'desc', limit: '1' })).seqs[0]!;
    const total = 600;
    // Several publishers at once, so the index commits while the catch-up reads are in flight.
    const publishing = Promise.all(Array.from({ length: 6 }, (_, p) => publishMany(server.url, topic, p * 100, 100, 2, 'tailed')));
    // Streams open at different moments, resuming from different points of the history.
    const streams = [];
    for (let i = 0; i < 8; i += 1) {
      const from = Math.floor((base * i) / 8);
      streams.push({ from, client: await openSse(`${server.url}/events/stream?source=tailed&q=switch`, from) });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await publishing;
    const want = Array.from({ length: total }, (_, i) => base + 1 + i);
    try {
      for (const { from, client } of streams) {
        await waitFor(() => client.events.length >= want.length, { what: `stream after ${from}` });
        // A moment more: a repeat would show up as an extra event.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(client.events.map((e) => e.id)).to.deep.equal(want);
      }
    } finally {
      for (const { client } of streams) client.close();
    }
  });
});

describe('Read queue bound (real server)', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), { READ_WORKERS: '1', READ_QUEUE_MAX: '1', RETRY_AFTER_SECONDS: '3' });
    await publishMany(server.url, 'busy', 0, 3000, 500);
  });

  after(async () => {
    await server?.kill('SIGTERM');
  });

  it('answers 503 reads_busy with Retry-After past READ_QUEUE_MAX and answers the reads it took in full', async () => {
    // A burst of 48 reads against one worker and a queue of one: some must be refused. How many
    // depends on how fast the worker is, so a burst that happened to be served whole is repeated.
    const answers: Array<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> = [];
    for (let burst = 0; burst < 5 && !answers.some((a) => a.status === 503); burst += 1) {
      const burstAnswers = await Promise.all(
        Array.from({ length: 48 }, async () => {
          const res = await fetch(`${server.url}/events/histogram?q=nothing-matches&buckets=10`);
          return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
        }),
      );
      answers.push(...burstAnswers);
    }
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length, 'some reads were refused').to.be.greaterThan(0);
    for (const answer of refused) {
      expect(answer.body.error).to.equal('reads_busy');
      expect(answer.retryAfter).to.equal('3');
    }
    for (const answer of answers.filter((a) => a.status !== 503)) {
      expect(answer.status).to.equal(200);
      expect(answer.body.total).to.equal(0);
    }
    // Once the burst is over, reads are served again.
    expect((await getPage(server.url, { topic: 'busy', limit: '5' })).seqs).to.deep.equal([1, 2, 3, 4, 5]);
  });
});
