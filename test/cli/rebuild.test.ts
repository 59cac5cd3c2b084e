import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import type { EventQuery } from '../../src/index/store';
import { runLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { openTestStore } from '../helpers/logged-rows';

/** Queries of every shape GET /events can ask, each answered by the index. */
const QUERIES: EventQuery[] = [
  { limit: 1000 },
  { limit: 7 },
  { topics: ['orders'], limit: 1000 },
  { topics: ['payments'], afterSeq: 20, limit: 5 },
  { source: 'worker', limit: 1000 },
  { topics: ['users'], source: 'api', limit: 1000 },
  { sinceMs: Date.parse('2025-10-23T10:00:30Z'), untilMs: Date.parse('2025-10-23T10:01:00Z'), limit: 1000 },
  { topics: ['no-such-topic'], limit: 10 },
];

function snapshot(databasePath: string): { answers: unknown[]; counters: unknown; topics: string[]; lookups: unknown[] } {
  const store = openTestStore(databasePath, { readonly: true });
  try {
    return {
      answers: QUERIES.map((q) => store.queryEvents(q)),
      counters: store.readCounters(),
      topics: store.topics(),
      lookups: ['evt-0', 'evt-33', 'evt-79', 'missing'].map((id) => store.lookup(id === 'evt-33' ? 'orders' : 'users', id) ?? null),
    };
  } finally {
    store.close();
  }
}

describe('logagg rebuild', () => {
  it('rebuilds an index that answers every query exactly as the original did', async () => {
    const events = variedEvents(80);
    // Several requests with duplicates, so duplicates_total is not zero.
    const dataDir = await makeDataDir([events.slice(0, 30), [...events.slice(20, 50), events[3]!], events.slice(45, 80)], {
      segmentBytesMax: 8192,
    });
    const databasePath = path.join(dataDir, 'index.db');
    const before = snapshot(databasePath);
    expect((before.counters as any).duplicatesTotal).to.equal(16);

    const { code, stdout } = await runLogagg(['rebuild', '--data-dir', dataDir, '--json']);
    expect(code).to.equal(0);
    const report = JSON.parse(stdout);
    expect(report).to.include({ ok: true, records: 80, rows: 80, checkpointSeq: 80, duplicatesTotal: 16, countersFrom: 'old_index' });
    expect(report.segments).to.be.greaterThan(1);
    expect(snapshot(databasePath)).to.deep.equal(before);
    expect((await runLogagg(['verify', '--data-dir', dataDir])).code).to.equal(0);
  });

  it('builds an index from the log alone when there is none, saying the counters were reset', async () => {
    const dataDir = await makeDataDir([variedEvents(12)]);
    const databasePath = path.join(dataDir, 'index.db');
    const before = snapshot(databasePath);
    fs.rmSync(databasePath);
    const { code, stdout } = await runLogagg(['rebuild', '--data-dir', dataDir]);
    expect(code).to.equal(0);
    expect(stdout).to.contain('reset to 0');
    expect(snapshot(databasePath).answers).to.deep.equal(before.answers);
  });

  it('refuses a corrupt log and leaves the old index untouched', async () => {
    const dataDir = dataDirFromWalFixture('bad-crc-middle');
    const { code, stdout } = await runLogagg(['rebuild', '--data-dir', dataDir]);
    expect(code).to.equal(1);
    expect(stdout).to.contain('corrupt record at byte offset 147');
    expect(fs.existsSync(path.join(dataDir, 'index.db'))).to.equal(false);
    expect(fs.readdirSync(dataDir).filter((name) => name.includes('rebuild'))).to.deep.equal([]);
  });
});
