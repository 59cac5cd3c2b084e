import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { Aggregator } from '../../src/ingest/aggregator';
import { LogCorruptionError } from '../../src/wal/recovery';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { silentLogger, testConfig } from '../helpers/service';
import { statsBody } from '../../src/http/status';

async function openOn(dataDir: string): Promise<Aggregator> {
  const aggregator = new Aggregator({ config: testConfig({}, dataDir), logger: silentLogger });
  await aggregator.open();
  return aggregator;
}

describe('recovery into the index', () => {
  it('replays every record of a clean log into an empty index', async () => {
    const aggregator = await openOn(dataDirFromWalFixture('ok'));
    expect(aggregator.index.countRows()).to.equal(3);
    expect(aggregator.index.counters.checkpointSeq).to.equal(3);
    expect(statsBody(aggregator)).to.include({ received: 3, unique_processed: 3 });
    await aggregator.close();
  });

  it('replays only what lies after the checkpoint on the next start', async () => {
    const dataDir = dataDirFromWalFixture('ok');
    await (await openOn(dataDir)).close();
    const again = await openOn(dataDir);
    expect(again.recovery!.recordsReplayed).to.equal(0);
    expect(again.index.countRows()).to.equal(3);
    await again.close();
  });

  it('starts an empty segment at seq 1', async () => {
    const aggregator = await openOn(dataDirFromWalFixture('empty'));
    const result = await aggregator.publish([
      { event: { topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z', source: 's' }, tsMs: 0 },
    ]);
    expect(result.results).to.deep.equal([{ status: 'accepted', seq: 1 }]);
    await aggregator.close();
  });

  it('cuts a torn tail, saves its bytes in quarantine and reports the count', async () => {
    const dataDir = dataDirFromWalFixture('torn-tail');
    const aggregator = await openOn(dataDir);
    const torn = aggregator.recovery!.tornTail!;
    expect(torn).to.include({ offset: 441, bytesDropped: 40 });
    expect(fs.statSync(path.join(dataDir, 'wal', '00000000000000000001.ndjson')).size).to.equal(441);
    expect(fs.readFileSync(torn.savedTo).length).to.equal(40);
    await aggregator.close();
  });

  for (const [fixture, offset] of [
    ['bad-crc-middle', 147],
    ['seq-gap', 147],
  ] as const) {
    it(`refuses to start on ${fixture}, naming file and offset ${offset}`, async () => {
      const aggregator = new Aggregator({ config: testConfig({}, dataDirFromWalFixture(fixture)), logger: silentLogger });
      const error = await aggregator.open().then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).to.be.instanceOf(LogCorruptionError);
      expect((error as LogCorruptionError).offset).to.equal(offset);
      expect((error as LogCorruptionError).file).to.match(/00000000000000000001\.ndjson$/);
      expect(aggregator.state).to.equal('failed');
    });
  }
});
