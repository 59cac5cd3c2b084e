import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../../src/cli/wait';
import { listSegments } from '../../src/wal/segments';
import { NodeDisk } from '../../src/wal/disk';
import { readRetainedMarker, RETAINED_MARKER_NAME } from '../../src/wal/retention';
import { parseNdjson, runLogagg } from '../harness/logagg-process';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { openSse } from '../harness/sse';
import { fetchAllEvents, getJson, makeEvent, postJson } from '../helpers/events';
import { sampleValue } from '../helpers/prometheus';
import { makeTempDir } from '../helpers/temp-dir';

/** Tiny segments and a tiny bound, so that a few hundred events make retention delete many segments. */
const RETENTION_ENV = { SEGMENT_BYTES_MAX: '4096', RETENTION_BYTES: '16384' };
const EVENTS = 400;

interface Stats {
  first_seq: number;
  log_bytes: number;
  expired_events: number;
  unique_processed: number;
  accepted: number;
  queue_size: number;
}

async function publishMany(url: string, count: number, prefix: string): Promise<void> {
  for (let i = 0; i < count; i += 10) {
    const events = Array.from({ length: 10 }, (_, j) =>
      makeEvent(`t${(i + j) % 3}`, `${prefix}-${i + j}`, { n: i + j, pad: 'x'.repeat(80) }),
    );
    const answer = await postJson(`${url}/publish`, { events });
    expect(answer.status).to.equal(200);
  }
}

/**
 * /stats once the index caught up and retention is back within its bound, and has stopped:
 * retention deletes one segment per turn, so a read between two turns can already be within
 * the bound (the active segment's allowance) while the next deletion is on its way. The same
 * log start and bytes on two reads more than a retention check apart (the fixed limit
 * retentionCheckMs, 1 s) mean no run is left to come.
 */
async function settledStats(url: string): Promise<Stats> {
  let previous: Stats | null = null;
  return waitFor(
    async () => {
      const stats = (await getJson(`${url}/stats`)).body as Stats;
      // Within the bound plus the active segment, which is never deleted.
      const within = stats.queue_size === 0 && stats.first_seq > 1 && stats.log_bytes <= 16384 + 4096;
      const still =
        previous !== null &&
        previous.first_seq === stats.first_seq &&
        previous.log_bytes === stats.log_bytes &&
        previous.expired_events === stats.expired_events;
      previous = within ? stats : null;
      return within && still ? stats : null;
    },
    { timeoutMs: 60_000, intervalMs: 1500, what: 'retention to bring the log within RETENTION_BYTES and stop' },
  );
}

describe('retention (RETENTION_BYTES) as readers see it', function () {
  this.timeout(120_000);
  let dataDir: string;
  let server: ServerProcess | null = null;
  let stats: Stats;

  before(async () => {
    dataDir = makeTempDir();
    server = await startServerProcess(dataDir, RETENTION_ENV);
    await publishMany(server.url, EVENTS, 'e');
    stats = await settledStats(server.url);
  });

  after(async () => {
    if (server !== null) await server.kill('SIGKILL');
  });

  it('deletes the oldest segments, and /stats says where the log starts, its bytes and the events deleted', () => {
    const segments = listSegments(new NodeDisk(), path.join(dataDir, 'wal'));
    expect(segments[0]!.firstSeq).to.equal(stats.first_seq);
    expect(readRetainedMarker(new NodeDisk(), path.join(dataDir, 'wal'))).to.equal(stats.first_seq);
    const bytes = segments.reduce((n, s) => n + fs.statSync(s.path).size, 0);
    expect(stats.log_bytes).to.equal(bytes);
    expect(stats.expired_events).to.equal(stats.first_seq - 1);
    expect(stats.unique_processed).to.equal(EVENTS);
  });

  it('GET /events holds no event of a deleted segment, and every kept one once', async () => {
    const events = await fetchAllEvents(server!.url);
    expect(events.length).to.equal(EVENTS - stats.expired_events);
    expect(events[0]!.seq).to.equal(stats.first_seq);
    expect(events.every((e, i) => e.seq === stats.first_seq + i)).to.equal(true);
  });

  it('/metrics has the first seq, the expired events and the time of the last deletion', async () => {
    const text = await (await fetch(`${server!.url}/metrics`)).text();
    expect(sampleValue(text, 'logagg_log_first_seq')).to.equal(stats.first_seq);
    expect(sampleValue(text, 'logagg_expired_events')).to.equal(stats.expired_events);
    expect(sampleValue(text, 'logagg_retention_last_deletion_timestamp_seconds')).to.be.greaterThan(Date.now() / 1000 - 600);
    expect(sampleValue(text, 'logagg_retention_deleted_segments_total')).to.be.greaterThan(0);
  });

  it('a stream resumed from an expired Last-Event-ID says so and starts at the first kept event', async () => {
    const stream = await openSse(`${server!.url}/events/stream`, 1);
    try {
      await waitFor(() => stream.events.length >= 3, { timeoutMs: 10_000, what: 'the stream to catch up' });
      expect(stream.comments.some((c) => c.includes(`after seq 1 up to seq ${stats.first_seq - 1} were deleted by retention`))).to.equal(
        true,
      );
      expect(stream.events[0]!.id).to.equal(stats.first_seq);
    } finally {
      stream.close();
    }
    // A resume inside the kept log gets no such notice.
    const inside = await openSse(`${server!.url}/events/stream`, stats.first_seq + 1);
    try {
      await waitFor(() => inside.events.length >= 1, { timeoutMs: 10_000, what: 'the stream to catch up' });
      expect(inside.comments.some((c) => c.includes('deleted by retention'))).to.equal(false);
      expect(inside.events[0]!.id).to.equal(stats.first_seq + 2);
    } finally {
      inside.close();
    }
  });

  it('keeps first_seq and expired_events across a restart, and the offline tools read the retained log', async () => {
    await server!.kill('SIGTERM');
    server = null;
    // verify: a log that starts after seq 1 is fine when the marker explains it.
    const verify = await runLogagg(['verify', '--data-dir', dataDir]);
    expect(verify.stdout).to.include(`the log starts at seq ${stats.first_seq}`);
    expect(verify.code, verify.stdout + verify.stderr).to.equal(0);
    // export: the kept events, from the first kept seq.
    const exported = parseNdjson((await runLogagg(['export', '--data-dir', dataDir])).stdout);
    expect(exported.length).to.equal(EVENTS - stats.expired_events);
    expect(exported[0].seq).to.equal(stats.first_seq);
    // replay to a fresh server: the kept events, once each.
    const target = await startServerProcess(makeTempDir());
    try {
      const replay = await runLogagg(['replay', '--data-dir', dataDir, '--to', target.url]);
      expect(replay.code, replay.stderr).to.equal(0);
      const replayed = await fetchAllEvents(target.url);
      expect(replayed.map((e) => e.event_id)).to.deep.equal(exported.map((e) => e.event_id));
    } finally {
      await target.kill('SIGKILL');
    }
    // The counters survive the restart (retention off now: nothing more is deleted).
    server = await startServerProcess(dataDir, { SEGMENT_BYTES_MAX: '4096' });
    const again = (await getJson(`${server.url}/stats`)).body as Stats;
    expect({ first_seq: again.first_seq, expired_events: again.expired_events }).to.deep.equal({
      first_seq: stats.first_seq,
      expired_events: stats.expired_events,
    });
  });

  it('verify still reports a log whose first segment is missing without a marker', async () => {
    const copy = makeTempDir();
    fs.cpSync(path.join(dataDir, 'wal'), path.join(copy, 'wal'), { recursive: true });
    fs.rmSync(path.join(copy, 'wal', RETAINED_MARKER_NAME));
    const verify = await runLogagg(['verify', '--data-dir', copy, '--json']);
    expect(verify.code).to.equal(1);
    const report = JSON.parse(verify.stdout) as { segments: Array<{ problems: Array<{ kind: string; seq: number }> }> };
    expect(report.segments[0]!.problems).to.deep.include({
      kind: 'seq_gap',
      file: listSegments(new NodeDisk(), path.join(copy, 'wal'))[0]!.path,
      offset: 0,
      seq: stats.first_seq,
      detail: `expected seq 1, found ${stats.first_seq} (records or a segment missing before this one)`,
    });
  });
});
