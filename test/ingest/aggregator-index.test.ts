import { expect } from 'chai';
import path from 'node:path';
import pino from 'pino';
import { Aggregator, type ValidEvent } from '../../src/ingest/aggregator';
import fs from 'node:fs';
import { canonicalEventJson, encodeRecord } from '../../src/wal/record';
import { segmentName } from '../../src/wal/segments';
import { makeEvent } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';
import { statsBody } from '../../src/http/status';
import { eventDigestOf } from '../../src/index/key-hash';

function openAggregator(dataDir: string): Aggregator {
  const config = {
    walDir: path.join(dataDir, 'wal'),
    databasePath: path.join(dataDir, 'index.db'),
    queueMaxSize: 100_000,
    segmentBytesMax: 64 * 1024 * 1024,
    indexBatchMax: 200,
    retryAfterSeconds: 1,
  };
  return new Aggregator({ config, logger: pino({ level: 'silent' }) });
}

function events(topic: string, count: number, payload: (i: number) => Record<string, unknown> = (i) => ({ i })): ValidEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const event = makeEvent(topic, `id-${i}`, payload(i));
    return { event, tsMs: Date.parse(event.timestamp) };
  });
}

async function indexed(aggregator: Aggregator): Promise<void> {
  await waitFor(() => statsBody(aggregator).queue_size === 0 && statsBody(aggregator).checkpoint_seq === statsBody(aggregator).accepted, {
    timeoutMs: 10_000,
    what: 'index to catch up',
  });
}

describe('Aggregator with the index written on the main thread', () => {
  it('counts re-sent events as duplicates of their originals once indexed, and flags changed content', async () => {
    const aggregator = openAggregator(makeTempDir());
    await aggregator.open();
    const first = await aggregator.publish(events('orders', 300));
    expect(first.accepted).to.equal(300);
    await indexed(aggregator);
    const again = await aggregator.publish(events('orders', 300, (i) => (i === 7 ? { changed: true } : { i })));
    expect(again).to.include({ accepted: 0, duplicates: 300, conflicts: 1 });
    expect(again.results.map((r) => r.seq)).to.deep.equal(first.results.map((r) => r.seq));
    expect(again.results[7]).to.deep.equal({ status: 'duplicate', seq: first.results[7]!.seq, conflict: true });
    await indexed(aggregator);
    expect(statsBody(aggregator)).to.include({ received: 600, unique_processed: 300, duplicate_dropped: 300, conflicts: 1 });
    await aggregator.close();
  });

  it('keeps dedup and lifetime counters across a restart', async () => {
    const dataDir = makeTempDir();
    const before = openAggregator(dataDir);
    await before.open();
    await before.publish(events('a', 50));
    await before.publish(events('a', 10));
    await before.close();
    const after = openAggregator(dataDir);
    await after.open();
    expect(statsBody(after)).to.include({ received: 60, unique_processed: 50, duplicate_dropped: 10 });
    const retried = await after.publish(events('a', 60));
    expect(retried).to.include({ accepted: 10, duplicates: 50 });
    await indexed(after);
    expect(after.index.countRows()).to.equal(60);
    expect(after.queryEvents({ topics: ['a'], limit: 1000 }).map((r) => r.seq)).to.deep.equal(Array.from({ length: 60 }, (_, i) => i + 1));
    await after.close();
  });

  it('rebuilds an identical index from the log alone', async () => {
    const dataDir = makeTempDir();
    const first = openAggregator(dataDir);
    await first.open();
    await first.publish(events('x', 700));
    await first.publish(events('y', 300));
    await indexed(first);
    const before = first.queryEvents({ limit: 1000 });
    await first.close();
    for (const name of fs.readdirSync(dataDir)) if (name.startsWith('index.db')) fs.rmSync(path.join(dataDir, name));
    const rebuilt = openAggregator(dataDir);
    const report = await rebuilt.open();
    expect(report.recordsReplayed).to.equal(1000);
    expect(rebuilt.queryEvents({ limit: 1000 })).to.deep.equal(before);
    expect(statsBody(rebuilt)).to.include({ unique_processed: 1000, checkpoint_seq: 1000 });
    expect((await rebuilt.publish(events('y', 301))).accepted).to.equal(1);
    await rebuilt.close();
  });

  it('keeps the first record of a key when a log holds it twice', async () => {
    const dataDir = makeTempDir();
    const [a, b] = [makeEvent('t', 'same', { v: 1 }), makeEvent('t', 'same', { v: 2 })];
    fs.mkdirSync(path.join(dataDir, 'wal'));
    fs.writeFileSync(
      path.join(dataDir, 'wal', segmentName(1)),
      encodeRecord(1, canonicalEventJson(a)) + encodeRecord(2, canonicalEventJson(b)),
    );
    const aggregator = openAggregator(dataDir);
    await aggregator.open();
    expect(aggregator.index.countRows()).to.equal(1);
    expect(aggregator.index.lookup('t', 'same')).to.deep.equal({ seq: 1, digest: eventDigestOf(canonicalEventJson(a)) });
    await aggregator.close();
  });
});
