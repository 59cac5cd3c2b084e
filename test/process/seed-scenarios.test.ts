import { expect } from 'chai';
import { getJson, makeEvent, postJson } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** The seed's test_publisher.py scenarios, against a real server, with exact final stats. */
describe('seed publisher scenarios', function () {
  this.timeout(60_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir());
  });
  after(async () => {
    await server.kill('SIGKILL');
  });

  const stats = async () => {
    await waitFor(async () => (await getJson(`${server.url}/health`)).body.queue_size === 0, { what: 'queue to drain' });
    return (await getJson(`${server.url}/stats`)).body;
  };

  it('the same event 3 times: 1 unique, 2 duplicates', async () => {
    const event = makeEvent('retry.test', 'evt-retry-1');
    const answers = [];
    for (let i = 0; i < 3; i += 1) answers.push((await postJson(`${server.url}/publish`, event)).body);
    expect(answers.map((a) => a.accepted)).to.deep.equal([1, 0, 0]);
    expect(answers.map((a) => a.duplicates)).to.deep.equal([0, 1, 1]);
    expect(await stats()).to.include({ received: 3, unique_processed: 1, duplicate_dropped: 2 });
  });

  it('a batch with internal duplicates', async () => {
    const a = makeEvent('batch.test', 'b-1');
    const b = makeEvent('batch.test', 'b-2');
    const res = await postJson(`${server.url}/publish`, { events: [a, b, a, b, a] });
    expect(res.body).to.include({ received: 5, accepted: 2, duplicates: 3 });
    expect(await stats()).to.include({ received: 8, unique_processed: 3, duplicate_dropped: 5 });
  });

  it('a mixed batch of new and seen events', async () => {
    const res = await postJson(`${server.url}/publish`, {
      events: [
        makeEvent('batch.test', 'b-1'),
        makeEvent('batch.test', 'b-3'),
        makeEvent('retry.test', 'evt-retry-1'),
        makeEvent('batch.test', 'b-4'),
      ],
    });
    expect(res.body).to.include({ received: 4, accepted: 2, duplicates: 2 });
    expect(await stats()).to.include({ received: 12, unique_processed: 5, duplicate_dropped: 7 });
  });

  it('several topics sharing event ids are distinct events', async () => {
    const topics = ['user.login', 'order.created', 'payment.processed'];
    const res = await postJson(`${server.url}/publish`, { events: topics.map((t) => makeEvent(t, 'shared-id')) });
    expect(res.body).to.include({ accepted: 3, duplicates: 0 });
    const s = await stats();
    expect(s).to.include({ received: 15, unique_processed: 8, duplicate_dropped: 7 });
    expect(s.topics).to.include.members(topics);
  });

  it('high-frequency publishing with random duplicates counts exactly', async () => {
    // A fixed pseudo-random sequence: 2000 sends over 600 distinct ids, 16 at a time.
    let state = 42;
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const sends = Array.from({ length: 2000 }, () => makeEvent('hf.test', `hf-${Math.floor(random() * 600)}`));
    const distinct = new Set(sends.map((e) => e.event_id)).size;
    let accepted = 0;
    let duplicates = 0;
    for (let i = 0; i < sends.length; i += 16) {
      const answers = await Promise.all(sends.slice(i, i + 16).map((e) => postJson(`${server.url}/publish`, e)));
      for (const a of answers) {
        expect(a.status).to.equal(200);
        accepted += a.body.accepted as number;
        duplicates += a.body.duplicates as number;
      }
    }
    expect(accepted).to.equal(distinct);
    expect(duplicates).to.equal(2000 - distinct);
    expect(await stats()).to.include({ received: 2015, unique_processed: 8 + distinct, duplicate_dropped: 7 + 2000 - distinct });
  });
});
