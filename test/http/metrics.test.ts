import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import pino from 'pino';
import request from 'supertest';
import { loadConfig } from '../../src/config/config';
import { createApp } from '../../src/http/app';
import { ServiceMetrics } from '../../src/http/metrics';
import { Aggregator } from '../../src/ingest/aggregator';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { makeEvent, postJson } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { parsePrometheus, sampleValue } from '../helpers/prometheus';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** Every metric docs/operations.md lists, with its Prometheus type: the test fails when one is missing. */
const DOCUMENTED_METRICS: Array<[string, string]> = [
  ['logagg_events_received_total', 'counter'],
  ['logagg_events_accepted_total', 'counter'],
  ['logagg_events_duplicate_total', 'counter'],
  ['logagg_events_conflicting_duplicate_total', 'counter'],
  ['logagg_requests_rejected_total', 'counter'],
  ['logagg_http_request_duration_seconds', 'histogram'],
  ['logagg_publish_duration_seconds', 'histogram'],
  ['logagg_wal_fsync_duration_seconds', 'histogram'],
  ['logagg_wal_group_commit_events', 'histogram'],
  ['logagg_wal_written_bytes_total', 'counter'],
  ['logagg_index_batch_duration_seconds', 'histogram'],
  ['logagg_index_applied_events_total', 'counter'],
  ['logagg_backlog_events', 'gauge'],
  ['logagg_accepting_writes', 'gauge'],
  ['logagg_log_bytes', 'gauge'],
  ['logagg_log_segments', 'gauge'],
  ['logagg_last_recovery_records_replayed', 'gauge'],
  ['logagg_last_recovery_truncated_bytes', 'gauge'],
  ['logagg_last_recovery_duration_seconds', 'gauge'],
  // prom-client's default process metrics (a few of them)
  ['process_cpu_user_seconds_total', 'counter'],
  ['process_resident_memory_bytes', 'gauge'],
  ['nodejs_eventloop_lag_seconds', 'gauge'],
  ['nodejs_heap_size_used_bytes', 'gauge'],
];

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

async function sendRaw(url: string, body: string, contentType = 'application/json'): Promise<number> {
  const res = await fetch(`${url}/publish`, { method: 'POST', headers: { 'content-type': contentType }, body });
  await res.arrayBuffer();
  return res.status;
}

describe('GET /metrics', () => {
  let svc: InProcessService;
  before(async () => {
    svc = await startInProcessService();
  });
  after(async () => svc.stop());

  it('answers Prometheus text format with every documented metric and its type', async () => {
    const { status, type, text } = await scrape(svc.url);
    expect(status).to.equal(200);
    expect(type).to.match(/^text\/plain; version=0\.0\.4/);
    const { types } = parsePrometheus(text);
    for (const [name, kind] of DOCUMENTED_METRICS) expect(types.get(name), name).to.equal(kind);
  });

  it('names follow Prometheus conventions: _total only on counters, base units as suffixes', async () => {
    const { types } = parsePrometheus((await scrape(svc.url)).text);
    for (const [name, kind] of types) {
      if (!name.startsWith('logagg_')) continue;
      expect(name).to.match(/^[a-z_][a-z0-9_]*$/);
      if (kind === 'counter') expect(name, name).to.match(/_total$/);
      else expect(name, name).not.to.match(/_total$/);
      expect(name, name).not.to.match(/_(ms|milliseconds|kb|mb)(_|$)/);
    }
  });

  it('counts received, accepted, duplicate and conflicting events exactly', async () => {
    const before = (await scrape(svc.url)).text;
    const base = (name: string) => sampleValue(before, name) ?? 0;
    const a = makeEvent('metrics.count', 'a');
    const b = makeEvent('metrics.count', 'b');
    expect((await postJson(`${svc.url}/publish`, { events: [a, b, a] })).status).to.equal(200);
    expect((await postJson(`${svc.url}/publish`, { events: [b, { ...a, payload: { other: true } }] })).status).to.equal(200);
    const after = (await scrape(svc.url)).text;
    const delta = (name: string) => (sampleValue(after, name) ?? 0) - base(name);
    expect(delta('logagg_events_received_total')).to.equal(5);
    expect(delta('logagg_events_accepted_total')).to.equal(2);
    expect(delta('logagg_events_duplicate_total')).to.equal(3);
    expect(delta('logagg_events_conflicting_duplicate_total')).to.equal(1);
    expect(delta('logagg_publish_duration_seconds_count')).to.equal(2);
  });

  it('counts rejected requests by route and reason (the error code)', async () => {
    expect(await sendRaw(svc.url, '{"topic":')).to.equal(400);
    expect(await sendRaw(svc.url, JSON.stringify({ topic: 'x' }))).to.equal(400);
    expect(await sendRaw(svc.url, JSON.stringify({ topic: 'x' }))).to.equal(400);
    expect(await sendRaw(svc.url, 'topic=x', 'text/plain')).to.equal(415);
    expect((await fetch(`${svc.url}/no/such/route?secret=1`)).status).to.equal(404);
    const text = (await scrape(svc.url)).text;
    expect(sampleValue(text, 'logagg_requests_rejected_total', { route: '/publish', reason: 'invalid_json' })).to.equal(1);
    expect(sampleValue(text, 'logagg_requests_rejected_total', { route: '/publish', reason: 'validation_failed' })).to.equal(2);
    expect(sampleValue(text, 'logagg_requests_rejected_total', { route: '/publish', reason: 'unsupported_media_type' })).to.equal(1);
    expect(sampleValue(text, 'logagg_requests_rejected_total', { route: '(unmatched)', reason: 'not_found' })).to.equal(1);
    expect(text).not.to.contain('/no/such/route');
  });

  it('feeds the group-commit, fsync and index histograms from the pipeline', async () => {
    const events = Array.from({ length: 20 }, (_, i) => makeEvent('metrics.flush', `f${i}`));
    expect((await postJson(`${svc.url}/publish`, { events })).status).to.equal(200);
    await waitFor(async () => sampleValue((await scrape(svc.url)).text, 'logagg_backlog_events') === 0, { what: 'backlog to drain' });
    const text = (await scrape(svc.url)).text;
    const accepted = sampleValue(text, 'logagg_events_accepted_total')!;
    // Every accepted event was made durable by exactly one group commit and indexed once.
    expect(sampleValue(text, 'logagg_wal_group_commit_events_sum')).to.equal(accepted);
    expect(sampleValue(text, 'logagg_wal_fsync_duration_seconds_count')).to.equal(
      sampleValue(text, 'logagg_wal_group_commit_events_count'),
    );
    expect(sampleValue(text, 'logagg_wal_fsync_duration_seconds_count')).to.be.at.least(1);
    expect(sampleValue(text, 'logagg_index_applied_events_total')).to.equal(accepted);
    expect(sampleValue(text, 'logagg_index_batch_duration_seconds_count')).to.be.at.least(1);
  });

  it('reports the log on disk: bytes and segments as the directory has them', async () => {
    const text = (await scrape(svc.url)).text;
    const walDir = path.join(svc.dataDir, 'wal');
    const segments = fs.readdirSync(walDir).filter((name) => name.endsWith('.ndjson'));
    const bytes = segments.reduce((sum, name) => sum + fs.statSync(path.join(walDir, name)).size, 0);
    expect(segments.length).to.be.at.least(1);
    expect(sampleValue(text, 'logagg_log_segments')).to.equal(segments.length);
    expect(sampleValue(text, 'logagg_log_bytes')).to.equal(bytes);
    expect(sampleValue(text, 'logagg_wal_written_bytes_total')).to.equal(bytes);
    expect(sampleValue(text, 'logagg_accepting_writes')).to.equal(1);
  });
});

describe('recovery metrics', () => {
  it('report the records replayed and the torn bytes cut by the last recovery', async () => {
    const svc = await startInProcessService({}, { dataDir: dataDirFromWalFixture('torn-tail') });
    try {
      const text = (await scrape(svc.url)).text;
      expect(sampleValue(text, 'logagg_last_recovery_records_replayed')).to.equal(3);
      expect(sampleValue(text, 'logagg_last_recovery_truncated_bytes')).to.equal(40);
      expect(sampleValue(text, 'logagg_last_recovery_duration_seconds')).to.be.above(0);
      expect(sampleValue(text, 'logagg_log_bytes')).to.equal(441);
    } finally {
      await svc.stop();
    }
  });
});

describe('ServiceMetrics', () => {
  it('keeps a registry per app, so one process can build many apps', async () => {
    const logger = pino({ level: 'silent' });
    const apps = [];
    for (let i = 0; i < 3; i += 1) {
      const config = loadConfig({ DATA_DIR: makeTempDir() });
      const metrics = new ServiceMetrics();
      const aggregator = new Aggregator({ config, logger, observer: metrics.observer });
      metrics.watch({ aggregator, walDir: config.walDir });
      await aggregator.open();
      apps.push({ app: createApp(aggregator, config, logger, { metrics }), aggregator });
    }
    try {
      await request(apps[0]!.app).post('/publish').send(makeEvent('metrics.apps', 'x')).expect(200);
      const first = (await request(apps[0]!.app).get('/metrics').expect(200)).text;
      const second = (await request(apps[1]!.app).get('/metrics').expect(200)).text;
      expect(sampleValue(first, 'logagg_events_accepted_total')).to.equal(1);
      expect(sampleValue(second, 'logagg_events_accepted_total')).to.equal(0);
    } finally {
      for (const { aggregator } of apps) await aggregator.close();
    }
  });
});
