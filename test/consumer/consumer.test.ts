import { expect } from 'chai';
import path from 'node:path';
import pino from 'pino';
import { Consumer } from '../../src/consumer/consumer';
import { createIndexApplier, InlineApplier, type IndexApplier, type IndexBatch } from '../../src/consumer/index-applier';
import { IndexStore, type IndexRow } from '../../src/index/store';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';
import { openTestStore } from '../helpers/logged-rows';

const silent = pino({ level: 'silent' });

function row(seq: number): IndexRow {
  const body = JSON.stringify({ topic: 't', event_id: `e${seq}`, timestamp: '2025-10-23T10:00:00Z', source: 's' });
  // A position no test here reads: the consumer only commits rows, it never reads bodies back.
  const position = { segment: 1, offset: seq * 100, length: 100 };
  return { seq, topic: 't', eventId: `e${seq}`, source: 's', tsMs: Date.parse('2025-10-23T10:00:00Z'), body, position };
}

/** An applier on another "thread": each batch is held until the test settles it. */
class HeldApplier implements IndexApplier {
  readonly kind = 'worker';
  concurrent = true;
  readonly batches: IndexBatch[] = [];
  private readonly pending: Array<{ resolve: (ms: number) => void; reject: (err: Error) => void }> = [];
  private readonly inline: InlineApplier;
  closed = false;

  constructor(store: IndexStore) {
    this.inline = new InlineApplier(store);
  }

  get waiting(): number {
    return this.pending.length;
  }

  apply(batch: IndexBatch): Promise<number> {
    this.batches.push(batch);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  /** Commits the oldest held batch through the store. */
  commit(): void {
    const batch = this.batches[this.batches.length - this.pending.length]!;
    this.pending.shift()!.resolve(this.inline.apply(batch));
  }

  refuse(): void {
    this.pending.shift()!.reject(new Error('SQLITE_FULL'));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('Consumer over an IndexApplier', () => {
  let store: IndexStore;
  beforeEach(() => {
    store = openTestStore(path.join(makeTempDir(), 'index.db'));
  });
  afterEach(() => store.close());

  it('keeps one batch in flight; rows arriving meanwhile form the next batch', async () => {
    const applier = new HeldApplier(store);
    const applied: number[][] = [];
    const consumer = new Consumer({
      store,
      batchMax: 100,
      logger: silent,
      applier,
      onApplied: (rows) => applied.push(rows.map((r) => r.seq)),
    });
    consumer.enqueue([row(1), row(2)]);
    await waitFor(() => applier.waiting === 1, { what: 'first batch sent' });
    consumer.enqueue([row(3)]);
    consumer.enqueue([row(4)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(applier.waiting, 'a second batch while one is in flight').to.equal(1);
    applier.commit();
    await waitFor(() => applier.waiting === 1 && applier.batches.length === 2, { what: 'second batch sent' });
    expect(applier.batches[1]!.rows.map((r) => r.seq)).to.deep.equal([3, 4]);
    applier.commit();
    await consumer.whenIdle();
    expect(applied).to.deep.equal([
      [1, 2],
      [3, 4],
    ]);
    expect(store.counters.checkpointSeq).to.equal(4);
  });

  it('counts duplicates in flight as uncommitted, and gives a refused batch back whole for a retry', async () => {
    const applier = new HeldApplier(store);
    const consumer = new Consumer({ store, batchMax: 100, logger: silent, applier, retryDelayMs: 10, onApplied: () => undefined });
    consumer.enqueue([row(1)]);
    consumer.noteDuplicates(3, 1);
    await waitFor(() => applier.waiting === 1, { what: 'batch sent' });
    expect(consumer.uncommittedDuplicates()).to.deep.equal({ duplicates: 3, conflicts: 1 });
    applier.refuse();
    await waitFor(() => consumer.error !== null, { what: 'the failure noted' });
    expect(consumer.running).to.equal(false);
    expect(consumer.size).to.equal(1);
    expect(consumer.uncommittedDuplicates()).to.deep.equal({ duplicates: 3, conflicts: 1 });
    await waitFor(() => applier.waiting === 1, { what: 'the retry' });
    expect(applier.batches[1]).to.deep.equal(applier.batches[0]);
    applier.commit();
    await consumer.whenIdle();
    expect(consumer.error).to.equal(null);
    expect(consumer.uncommittedDuplicates()).to.deep.equal({ duplicates: 0, conflicts: 0 });
    expect(store.counters).to.include({ checkpointSeq: 1, uniqueTotal: 1, duplicatesTotal: 3, conflictsTotal: 1 });
  });

  it('drains through a concurrent applier, then closes it; what is left after it died is applied on this thread', async () => {
    const applier = new HeldApplier(store);
    const consumer = new Consumer({ store, batchMax: 100, logger: silent, applier, onApplied: () => undefined });
    consumer.enqueue([row(1)]);
    await waitFor(() => applier.waiting === 1, { what: 'batch sent' });
    const drained = consumer.drain();
    applier.commit();
    await drained;
    expect(applier.closed).to.equal(true);
    expect(store.counters.checkpointSeq).to.equal(1);

    const dead = new HeldApplier(store);
    dead.concurrent = false;
    const second = new Consumer({ store, batchMax: 100, logger: silent, applier: dead, onApplied: () => undefined });
    second.stop();
    second.enqueue([row(2), row(3)]);
    await second.drain();
    expect(dead.batches).to.have.length(0);
    expect(store.counters.checkpointSeq).to.equal(3);
  });

  it('gives the inline applier without INDEX_WORKER and the worker thread with it, both behind one interface', async () => {
    const dataDir = makeTempDir();
    for (const worker of [undefined, { databasePath: path.join(dataDir, 'index.db') }]) {
      const own = openTestStore(path.join(dataDir, 'index.db'));
      const applier = createIndexApplier(own, worker);
      expect(applier.kind).to.equal(worker === undefined ? 'inline' : 'worker');
      const base = own.counters.checkpointSeq;
      const consumer = new Consumer({ store: own, batchMax: 10, logger: silent, applier, onApplied: () => undefined });
      consumer.enqueue([row(base + 1), row(base + 2)]);
      await consumer.drain();
      expect(own.counters.checkpointSeq).to.equal(base + 2);
      expect(own.lookup('t', `e${base + 2}`)?.seq).to.equal(base + 2);
      own.close();
    }
  });
});
