import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../../src/cli/wait';
import { canonicalEventJson, decodeLine, encodeRecord, type WalRecord } from '../../src/wal/record';
import { segmentName } from '../../src/wal/segments';
import { parseNdjson, runLogagg } from '../harness/logagg-process';
import { startServerProcess } from '../harness/server-process';
import { openSse } from '../harness/sse';
import { fetchAllEvents, makeEvent, postJson, withoutReceivedAt, type TestEvent } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';

/** Old events, with timestamps an hour apart, as a version-1 log holds them. */
const OLD_EVENTS: TestEvent[] = Array.from({ length: 5 }, (_, i) => ({
  ...makeEvent('old', `o-${i}`),
  timestamp: new Date(Date.parse('2025-10-23T10:00:00Z') + i * 3_600_000).toISOString(),
}));
const NEW_EVENTS: TestEvent[] = Array.from({ length: 3 }, (_, i) => ({
  ...makeEvent('new', `n-${i}`),
  timestamp: '2026-01-01T00:00:00.000Z',
}));

/** A data dir whose log was written by the format-1 writer (no received_at). */
function writeVersion1Log(): string {
  const dataDir = makeTempDir();
  const walDir = path.join(dataDir, 'wal');
  fs.mkdirSync(walDir, { recursive: true });
  const lines = OLD_EVENTS.map((event, i) => encodeRecord(i + 1, canonicalEventJson(event), null));
  expect(lines[0]).to.not.contain('received_at');
  fs.writeFileSync(path.join(walDir, segmentName(1)), lines.join(''));
  return dataDir;
}

/** Every record of a data dir's log, decoded. */
function logRecords(dataDir: string): WalRecord[] {
  const walDir = path.join(dataDir, 'wal');
  const records: WalRecord[] = [];
  for (const name of fs
    .readdirSync(walDir)
    .filter((n) => n.endsWith('.ndjson'))
    .sort()) {
    for (const line of fs.readFileSync(path.join(walDir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      const decoded = decodeLine(line);
      if (typeof decoded === 'string') throw new Error(`${name}: ${decoded}: ${line}`);
      records.push(decoded);
    }
  }
  return records;
}

describe('a log written in record format 1, continued in format 2 (real server process)', function () {
  this.timeout(90_000);

  it('recovers, appends version-2 records, and shows received_at null for the old part in queries, stream and export, across kill -9', async () => {
    const dataDir = writeVersion1Log();
    let server = await startServerProcess(dataDir);
    try {
      const before = Date.now();
      expect((await postJson(`${server.url}/publish`, { events: NEW_EVENTS })).body.accepted).to.equal(3);
      // A re-send of an old event is a duplicate of its version-1 original, not a conflict.
      const again = await postJson(`${server.url}/publish`, OLD_EVENTS[2]);
      expect(again.body).to.include({ duplicates: 1, conflicts: 0 });

      // The log: five version-1 records, then version-2 ones with the acceptance time.
      const records = logRecords(dataDir);
      expect(records.map((r) => r.receivedAtMs === null)).to.deep.equal([true, true, true, true, true, false, false, false]);
      for (const record of records.slice(5)) expect(record.receivedAtMs).to.be.within(before - 1, Date.now());

      const check = (events: object[]): void => {
        expect(events).to.have.length(8);
        expect(events.slice(0, 5).map((e) => withoutReceivedAt(e, { allowNull: true }))).to.deep.equal(
          OLD_EVENTS.map((e, i) => ({ seq: i + 1, ...e })),
        );
        for (const e of events.slice(0, 5)) expect((e as { received_at: unknown }).received_at).to.equal(null);
        expect(events.slice(5).map((e) => withoutReceivedAt(e))).to.deep.equal(NEW_EVENTS.map((e, i) => ({ seq: i + 6, ...e })));
      };
      check(await fetchAllEvents(server.url));

      // A time query over the old part, served by the time map, newest first.
      const since = encodeURIComponent(OLD_EVENTS[1]!.timestamp);
      const until = encodeURIComponent(OLD_EVENTS[4]!.timestamp);
      const window = (await (await fetch(`${server.url}/events?since=${since}&until=${until}&order=desc`)).json()) as {
        events: Array<{ seq: number }>;
      };
      expect(window.events.map((e) => e.seq)).to.deep.equal([4, 3, 2]);

      // The live tail's backfill shows the same.
      const sse = await openSse(`${server.url}/events/stream`, 0);
      try {
        await waitFor(() => sse.events.length >= 8, { what: 'eight streamed events' });
        check(sse.events.map((e) => e.data as object));
      } finally {
        sse.close();
      }

      // kill -9 and restart: recovery reads both versions again.
      await server.kill('SIGKILL');
      server = await startServerProcess(dataDir);
      check(await fetchAllEvents(server.url));

      // export reads the log itself.
      const exported = await runLogagg(['export', '--data-dir', dataDir]);
      expect(exported.code, exported.stderr).to.equal(0);
      check(parseNdjson(exported.stdout));
    } finally {
      await server.kill('SIGTERM');
    }
  });
});
