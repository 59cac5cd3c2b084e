import { expect } from 'chai';
import { TokenBuckets } from '../../src/http/rate-limit';
import { makeEvent } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

const KEY_A = 'rate-key-a-0123456789abcdef';
const KEY_B = 'rate-key-b-0123456789abcdef';

describe('TokenBuckets', () => {
  it('grants a burst, then one token per 1/rate seconds, per client', () => {
    const buckets = new TokenBuckets(2, 3, 100);
    expect([0, 1, 2, 3].map(() => buckets.take('a', 1000))).to.deep.equal([0, 0, 0, 500]);
    expect(buckets.take('b', 1000)).to.equal(0);
    expect(buckets.take('a', 1500)).to.equal(0);
    expect(buckets.take('a', 1500)).to.equal(500);
  });

  it('forgets the least recently seen client past clientsMax', () => {
    const buckets = new TokenBuckets(1, 1, 2);
    buckets.take('a', 0);
    buckets.take('b', 0);
    buckets.take('c', 0);
    expect(buckets.size).to.equal(2);
    expect(buckets.take('a', 0)).to.equal(0);
  });
});

describe('rate limiting (real server process)', function () {
  this.timeout(30_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), {
      RATE_LIMIT_PER_SECOND: '1',
      RATE_LIMIT_BURST: '3',
      API_KEYS_PUBLISH: `${KEY_A},${KEY_B}`,
    });
  });

  after(async () => {
    await server.kill('SIGTERM');
  });

  /** Sends `count` publishes at once with `key` and returns their statuses and the first 429. */
  async function burst(key: string, count: number): Promise<{ statuses: number[]; limited: Response | undefined }> {
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        fetch(`${server.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify(makeEvent('rate.a', `${key.slice(9, 10)}-${i}-${Math.random()}`)),
        }),
      ),
    );
    return { statuses: answers.map((res) => res.status), limited: answers.find((res) => res.status === 429) };
  }

  it('answers 429 rate_limited with Retry-After past the burst, per API key, and counts it in /metrics', async () => {
    const a = await burst(KEY_A, 10);
    expect(a.statuses.filter((s) => s === 200).length, a.statuses.join()).to.be.within(3, 5);
    expect(a.limited, 'a 429').to.not.equal(undefined);
    expect(a.limited!.headers.get('retry-after')).to.equal('1');
    expect(await a.limited!.json()).to.deep.include({ error: 'rate_limited' });
    // Another key has its own bucket.
    const b = await burst(KEY_B, 2);
    expect(b.statuses).to.deep.equal([200, 200]);
    // Probes are never limited.
    for (let i = 0; i < 10; i += 1) expect((await fetch(`${server.url}/health`)).status).to.equal(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/logagg_requests_rejected_total\{route="\/publish",reason="rate_limited"\} (\d+)/.exec(metrics)?.[1])).to.be.at.least(5);
  });

  it('limits by client address where no key is checked', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`${server.url}/events`)));
    expect(answers.filter((res) => res.status === 429).length).to.be.at.least(5);
  });
});
