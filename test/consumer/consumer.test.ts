import { expect } from 'chai';
import path from 'node:path';
import pino from 'pino';
import { Consumer } from '../../src/consumer/consumer';
import { InlineApplier, type IndexApplier, type IndexBatch } from '../../src/consumer/index-applier';
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

/** The store's applier, which refuses the next `refusals` batches as a full disk would. */
class RefusingApplier implements IndexApplier {
  readonly batches: IndexBatch[] = [];
  refusals = 0;
  private readonly inline: InlineApplier;

  constructor(store: IndexStore) {
    this.inline = new InlineApplier(store);
  }

  apply(batch: IndexBatch): number {
    this.batches.push(batch);
    if (this.refusals > 0) {
      this.refusals -= 1;
      throw new Error('SQLITE_FULL');
    }
    return this.inline.apply(batch);
  }
}

describe('Consumer over an IndexApplier', () => {
  let store: IndexStore;
  beforeEach(() => {
    store = openTestStore(path.join(makeTempDir(), 'index.db'));
  });
  afterEach(() => store.close());

  it('commits at most batchMax rows a turn; rows queued meanwhile join the next batch', async () => {
    const applier = new RefusingApplier(store);
    const applied: number[][] = [];
    const consumer = new Consumer({
      store,
      batchMax: 3,
      logger: silent,
      applier,
      onApplied: (rows) => applied.push(rows.map((r) => r.seq)),
    });
    consumer.enqueue([row(1), row(2)]);
    consumer.enqueue([row(3), row(4)]);
    expect(applier.batches, 'nothing is indexed in the turn that enqueues').to.have.length(0);
    await consumer.whenIdle();
    expect(applied).to.deep.equal([[1, 2, 3], [4]]);
    expect(store.counters.checkpointSeq).to.equal(4);
    expect(store.lookup('t', 'e4')?.seq).to.equal(4);
  });

  it('lets a turn pass while yieldWhile holds (a group commit about to start), then indexes', async () => {
    const applier = new RefusingApplier(store);
    let yields = 3;
    const consumer = new Consumer({
      store,
      batchMax: 100,
      logger: silent,
      applier,
      yieldWhile: () => yields-- > 0,
      onApplied: () => undefined,
    });
    consumer.enqueue([row(1)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(applier.batches, 'nothing indexed while it yields').to.have.length(0);
    await consumer.whenIdle();
    expect(yields).to.equal(-1);
    expect(applier.batches).to.have.length(1);
    expect(store.counters.checkpointSeq).to.equal(1);
  });

  it('keeps the duplicates of a refused batch uncommitted, and retries the batch whole', async () => {
    const applier = new RefusingApplier(store);
    applier.refusals = Number.POSITIVE_INFINITY;
    const consumer = new Consumer({ store, batchMax: 100, logger: silent, applier, retryDelayMs: 10, onApplied: () => undefined });
    consumer.enqueue([row(1)]);
    consumer.noteDuplicates(3, 1);
    await waitFor(() => consumer.error !== null, { what: 'the failure noted' });
    expect(consumer.running).to.equal(false);
    expect(consumer.size).to.equal(1);
    expect(consumer.uncommittedDuplicates()).to.deep.equal({ duplicates: 3, conflicts: 1 });
    applier.refusals = 0;
    await consumer.whenIdle();
    expect(applier.batches.length).to.be.at.least(2);
    for (const batch of applier.batches) expect(batch).to.deep.equal(applier.batches[0]);
    expect(consumer.error).to.equal(null);
    expect(consumer.uncommittedDuplicates()).to.deep.equal({ duplicates: 0, conflicts: 0 });
    expect(store.counters).to.include({ checkpointSeq: 1, uniqueTotal: 1, duplicatesTotal: 3, conflictsTotal: 1 });
  });

  describe('coalescing (coalesceMs, coalesceRows)', () => {
    const turns = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i += 1) await new Promise((resolve) => setImmediate(resolve));
    };

    it('lets rows of several turns wait for one transaction, committed once the oldest waited coalesceMs', async () => {
      const applier = new RefusingApplier(store);
      const applied: number[][] = [];
      const consumer = new Consumer({
        store,
        batchMax: 100,
        coalesceMs: 150,
        coalesceRows: 50,
        logger: silent,
        applier,
        onApplied: (rows) => applied.push(rows.map((r) => r.seq)),
      });
      const startedMs = Date.now();
      consumer.enqueue([row(1)]);
      await turns(3);
      consumer.enqueue([row(2)]);
      consumer.noteDuplicates(1, 0);
      await turns(3);
      consumer.enqueue([row(3)]);
      expect(applier.batches, 'nothing committed while the rows wait').to.have.length(0);
      await waitFor(() => applied.length > 0, { what: 'the coalesced batch' });
      expect(Date.now() - startedMs).to.be.at.least(140);
      expect(applied).to.deep.equal([[1, 2, 3]]);
      expect(applier.batches[0]!.duplicates).to.equal(1);
      expect(store.counters.checkpointSeq).to.equal(3);
    });

    it('starts the batch in the next turn once coalesceRows are queued', async () => {
      const applier = new RefusingApplier(store);
      const consumer = new Consumer({
        store,
        batchMax: 100,
        coalesceMs: 60_000,
        coalesceRows: 3,
        logger: silent,
        applier,
        onApplied: () => undefined,
      });
      consumer.enqueue([row(1), row(2)]);
      await turns(3);
      expect(applier.batches).to.have.length(0);
      consumer.enqueue([row(3)]);
      await turns(2);
      expect(applier.batches.map((batch) => batch.rows.length)).to.deep.equal([3]);
    });

    it('commits what waits at once for applyQueued (a read) and for whenIdle', async () => {
      const applier = new RefusingApplier(store);
      const consumer = new Consumer({
        store,
        batchMax: 100,
        coalesceMs: 60_000,
        coalesceRows: 100,
        logger: silent,
        applier,
        onApplied: () => undefined,
      });
      consumer.enqueue([row(1)]);
      await turns(2);
      expect(store.lookup('t', 'e1')).to.equal(undefined);
      consumer.applyQueued();
      expect(store.lookup('t', 'e1')?.seq, 'committed in the same turn').to.equal(1);
      consumer.enqueue([row(2)]);
      await turns(2);
      expect(consumer.size).to.equal(1);
      await consumer.whenIdle();
      expect(store.counters.checkpointSeq).to.equal(2);
    });
  });

  it('drains what is queued on stop, and a refused drain leaves the rows queued', () => {
    const applier = new RefusingApplier(store);
    const consumer = new Consumer({ store, batchMax: 100, logger: silent, applier, onApplied: () => undefined });
    consumer.enqueue([row(1)]);
    applier.refusals = 1;
    expect(() => consumer.drain()).to.throw('SQLITE_FULL');
    expect(consumer.size).to.equal(1);
    consumer.drain();
    expect(consumer.size).to.equal(0);
    expect(store.counters.checkpointSeq).to.equal(1);
  });
});
