import { expect } from 'chai';
import path from 'node:path';
import { IndexStore } from '../../src/index/store';
import { getJson, makeEvent, postJson, type TestEvent } from '../helpers/events';
import { startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

/** Generations of 16 keys: eight fill in 128 keys, so merges run all the time while events are published. */
const TINY_GENERATIONS = { DEDUP_GENERATION_KEYS: '16' };

async function publish(url: string, events: TestEvent[]): Promise<Array<{ status: string; seq: number }>> {
  const res = await postJson(`${url}/publish`, { events });
  expect(res.status, JSON.stringify(res.body)).to.equal(200);
  return res.body.results as Array<{ status: string; seq: number }>;
}

/** The key store's generations, read from the index file of a stopped server. */
function generations(dataDir: string): Array<{ level: number; state: string; keys: number }> {
  const store = new IndexStore(path.join(dataDir, 'index.db'), { loadKeys: false });
  try {
    return store.keyGenerations();
  } finally {
    store.close();
  }
}

describe('real server process: dedup keys in generations', function () {
  this.timeout(180_000);

  it('starts a new data dir without a warning about the key filter', async () => {
    const server = await startServerProcess(makeTempDir());
    await publish(server.url, [makeEvent('t', 'one')]);
    const exit = await server.kill('SIGTERM');
    expect(exit.code).to.equal(0);
    expect(server.output()).to.not.match(/key filter rebuilt/);
    expect(server.output()).to.match(/new key filter \(no keys stored yet\)/);
  });

  for (const mode of [{ name: 'inline', env: TINY_GENERATIONS }]) {
    it(`keeps dedup exact across kill -9 while generations are merged, and finishes the merges after restart (${mode.name})`, async () => {
      const dataDir = makeTempDir();
      const acknowledged = new Map<string, { event: TestEvent; seq: number }>();
      let batch = 0;
      for (let cycle = 0; cycle < 3; cycle += 1) {
        const server = await startServerProcess(dataDir, mode.env);
        // Everything acknowledged before is a duplicate with its original seq (a cut merge lost no key).
        const known = [...acknowledged.values()];
        for (let i = 0; i < known.length; i += 200) {
          const slice = known.slice(i, i + 200);
          const answers = await publish(
            server.url,
            slice.map((k) => k.event),
          );
          expect(answers.map((a) => a.status)).to.deep.equal(slice.map(() => 'duplicate'));
          expect(answers.map((a) => a.seq)).to.deep.equal(slice.map((k) => k.seq));
        }
        expect((await getJson(`${server.url}/stats`)).body.dedup_keys).to.equal(acknowledged.size);
        // Publish for a while (merges start within a second of a level filling), then kill -9 mid-stream.
        const until = Date.now() + 2500 + cycle * 700;
        while (Date.now() < until) {
          const events = Array.from({ length: 20 }, (_, i) => makeEvent('orders', `c${cycle}-b${batch}-${i}`));
          batch += 1;
          const answers = await publish(server.url, events);
          answers.forEach((a, i) => {
            expect(a.status).to.equal('accepted');
            acknowledged.set(events[i]!.event_id, { event: events[i]!, seq: a.seq });
          });
        }
        await server.kill('SIGKILL');
      }
      const server = await startServerProcess(dataDir, mode.env);
      const all = [...acknowledged.values()];
      for (let i = 0; i < all.length; i += 200) {
        const slice = all.slice(i, i + 200);
        const answers = await publish(
          server.url,
          slice.map((k) => k.event),
        );
        expect(answers.map((a) => a.status)).to.deep.equal(slice.map(() => 'duplicate'));
      }
      // Let the upkeep finish what it has (steps every 20 ms; a check every second).
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const exit = await server.kill('SIGTERM');
      expect(exit.code, server.output()).to.equal(0);
      const gens = generations(dataDir);
      expect(
        gens.some((g) => g.level >= 1),
        JSON.stringify(gens),
      ).to.equal(true);
      expect(gens.reduce((sum, g) => sum + (g.state === 'retired' ? 0 : g.keys), 0)).to.be.at.least(acknowledged.size);
    });
  }
});
