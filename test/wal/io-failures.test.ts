import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/config';
import { startService, type RunningService } from '../../src/server';
import { readSegmentFile } from '../helpers/log-read';
import { errnoError } from '../harness/power-loss-disk';
import { failFrom, FaultyDisk } from '../helpers/faulty-disk';
import { fetchAllEvents, makeEvent, postJson } from '../helpers/events';
import { startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

const FAULTY_SERVER_JS = path.resolve(__dirname, '../fixtures-programs/faulty-server.js');

function configFor(dataDir: string) {
  return loadConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', RETRY_AFTER_SECONDS: '2' });
}

async function start(dataDir: string, disk?: FaultyDisk, fatals: Error[] = []): Promise<{ service: RunningService; url: string }> {
  const service = await startService(configFor(dataDir), { disk, onFatal: (err) => fatals.push(err) });
  await service.ready;
  return { service, url: `http://127.0.0.1:${service.port}` };
}

function segmentFile(dataDir: string): string {
  const wal = path.join(dataDir, 'wal');
  const names = fs
    .readdirSync(wal)
    .filter((n) => n.endsWith('.ndjson'))
    .sort();
  return path.join(wal, names[names.length - 1]!);
}

describe('I/O failures', function () {
  this.timeout(60_000);

  it('a failed fdatasync acknowledges nothing after it: pending requests get 503, no fsync is retried, acknowledged events survive', async () => {
    const dataDir = makeTempDir();
    const disk = new FaultyDisk();
    const fatals: Error[] = [];
    const { service, url } = await start(dataDir, disk, fatals);
    for (let i = 0; i < 5; i += 1) expect((await postJson(`${url}/publish`, makeEvent('t', `ok-${i}`))).status).to.equal(200);

    disk.fault = failFrom('fdatasync', 1, 'EIO');
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => postJson(`${url}/publish`, makeEvent('t', `pending-${i}`))));
    expect(answers.map((a) => a.status)).to.deep.equal(Array(10).fill(503));
    expect(answers.every((a) => a.body.error === 'log_failed' && a.headers.get('retry-after') === '2')).to.equal(true);
    expect(fatals).to.have.length(1);
    expect(fatals[0]!.message).to.contain('fdatasync');

    // Fail-stop: later requests are refused without touching the disk again.
    const fsyncsAfterFailure = disk.calls.fdatasync;
    const later = await postJson(`${url}/publish`, makeEvent('t', 'later'));
    expect(later.status).to.equal(503);
    expect(later.body.error).to.equal('log_failed');
    expect(disk.calls.fdatasync).to.equal(fsyncsAfterFailure);
    expect((await fetch(`${url}/health`)).status).to.equal(503);
    await service.stop();

    const restarted = await start(dataDir);
    const ids = (await fetchAllEvents(restarted.url)).map((e) => e.event_id);
    expect(ids.slice(0, 5)).to.deep.equal(['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4']);
    await restarted.service.stop();
  });

  it('a real server whose fdatasync fails answers 503 and exits non-zero; the restart has every acknowledged event', async () => {
    const dataDir = makeTempDir();
    const server = await startServerProcess(dataDir, { FAULT_FSYNC_FROM: '4' }, { script: FAULTY_SERVER_JS });
    for (let i = 0; i < 3; i += 1) expect((await postJson(`${server.url}/publish`, makeEvent('t', `acked-${i}`))).status).to.equal(200);
    const failed = await postJson(`${server.url}/publish`, makeEvent('t', 'not-acked'));
    expect(failed.status).to.equal(503);
    expect(failed.body.error).to.equal('log_failed');
    expect(failed.headers.get('retry-after')).to.equal('1');
    const exit = await server.exited;
    expect(exit.code).to.equal(1);
    expect(server.output()).to.contain('fdatasync');

    const restarted = await startServerProcess(dataDir);
    try {
      const ids = (await fetchAllEvents(restarted.url)).map((e) => e.event_id);
      expect(ids.slice(0, 3)).to.deep.equal(['acked-0', 'acked-1', 'acked-2']);
    } finally {
      await restarted.kill('SIGTERM');
    }
  });

  it('ENOSPC on append: 503 with Retry-After, the partial bytes are cut away, reads go on, writes resume by themselves', async () => {
    const dataDir = makeTempDir();
    const disk = new FaultyDisk();
    let full = false;
    disk.fault = (op) => (op === 'write' && full ? errnoError('ENOSPC', 'no space left on device') : null);
    const { service, url } = await start(dataDir, disk);
    for (let i = 0; i < 3; i += 1) expect((await postJson(`${url}/publish`, makeEvent('t', `before-${i}`))).status).to.equal(200);
    const sizeBefore = fs.statSync(segmentFile(dataDir)).size;

    full = true;
    const batch = { events: Array.from({ length: 5 }, (_, i) => makeEvent('t', `batch-${i}`)) };
    const refused = await postJson(`${url}/publish`, batch);
    expect(refused.status).to.equal(503);
    expect(refused.body.error).to.equal('log_no_space');
    expect(refused.headers.get('retry-after')).to.equal('2');
    expect(fs.statSync(segmentFile(dataDir)).size, 'partial bytes cut away').to.equal(sizeBefore);
    const health = await fetch(`${url}/health`);
    expect(health.status).to.equal(503);
    expect(((await health.json()) as { status: string }).status).to.equal('no_space');
    expect((await fetch(`${url}/events?topic=t`)).status).to.equal(200);

    full = false;
    const resumed = await postJson(`${url}/publish`, batch);
    expect(resumed.status).to.equal(200);
    expect(resumed.body.results.map((r: { seq: number }) => r.seq)).to.deep.equal([4, 5, 6, 7, 8]);
    expect((await fetch(`${url}/health`)).status).to.equal(200);
    await service.stop();

    expect(readSegmentFile(segmentFile(dataDir)).problems).to.deep.equal([]);
    const restarted = await start(dataDir);
    const ids = (await fetchAllEvents(restarted.url)).map((e) => e.event_id);
    expect(ids).to.deep.equal(['before-0', 'before-1', 'before-2', 'batch-0', 'batch-1', 'batch-2', 'batch-3', 'batch-4']);
    await restarted.service.stop();
  });
});
