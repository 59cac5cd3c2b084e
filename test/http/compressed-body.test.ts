import fs from 'node:fs';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { fetchAllEvents, makeEvent } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

async function postEncoded(url: string, body: Buffer, encoding: string): Promise<{ status: number; body: any; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': encoding },
    body,
  });
  return { status: res.status, body: (await res.json()) as any, ms: Date.now() - started };
}

/** Peak resident memory of a process so far (VmHWM), in bytes. */
function peakRssBytes(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error('no VmHWM in /proc status');
  return Number(match[1]) * 1024;
}

describe('compressed request bodies (Content-Encoding)', () => {
  let svc: InProcessService;
  before(async () => {
    svc = await startInProcessService();
  });
  after(async () => svc.stop());

  it('accepts gzip, deflate and br bodies and stores the events as sent', async () => {
    const cases: Array<[string, (b: Buffer) => Buffer]> = [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
      ['br', zlib.brotliCompressSync],
    ];
    for (const [encoding, compress] of cases) {
      const events = [makeEvent('gzip.ok', `${encoding}-1`), makeEvent('gzip.ok', `${encoding}-2`, { text: 'ü'.repeat(100) })];
      const res = await postEncoded(svc.url, compress(Buffer.from(JSON.stringify({ events }))), encoding);
      expect(res.status, encoding).to.equal(200);
      expect(res.body.accepted).to.equal(2);
    }
    const stored = await fetchAllEvents(svc.url, 'gzip.ok');
    expect(stored.map((e) => e.event_id)).to.deep.equal(['gzip-1', 'gzip-2', 'deflate-1', 'deflate-2', 'br-1', 'br-2']);
    expect(stored[1]!.payload).to.deep.equal({ text: 'ü'.repeat(100) });
  });

  it('applies BODY_BYTES_MAX to the inflated body: a small gzip bomb gets 413 body_too_large, fast', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20), { level: 9 });
    expect(bomb.length).to.be.below(16 * 1024);
    const res = await postEncoded(svc.url, bomb, 'gzip');
    expect(res.status).to.equal(413);
    expect(res.body.error).to.equal('body_too_large');
    expect(res.body.message).to.contain('after decompression');
    expect(res.ms).to.be.below(2000);
  });

  it('answers 400 invalid_compressed_body for bytes that are not what Content-Encoding says', async () => {
    const good = zlib.gzipSync(Buffer.from(JSON.stringify(makeEvent('gzip.bad', 'x'))));
    for (const body of [
      Buffer.from('{"this is": "not gzip"}'),
      good.subarray(0, good.length - 12),
      Buffer.concat([good.subarray(0, 20), Buffer.alloc(20, 0xff)]),
    ]) {
      const res = await postEncoded(svc.url, body, 'gzip');
      expect(res.status).to.equal(400);
      expect(res.body.error).to.equal('invalid_compressed_body');
    }
    expect((await postEncoded(svc.url, Buffer.from('not brotli at all'), 'br')).body.error).to.equal('invalid_compressed_body');
    expect(await fetchAllEvents(svc.url, 'gzip.bad')).to.deep.equal([]);
  });

  it('answers 415 unsupported_media_type for an unknown Content-Encoding', async () => {
    for (const encoding of ['compress', 'zstd', 'gzip, gzip']) {
      const res = await postEncoded(svc.url, Buffer.from(JSON.stringify(makeEvent('gzip.415', 'x'))), encoding);
      expect(res.status, encoding).to.equal(415);
      expect(res.body.error).to.equal('unsupported_media_type');
    }
  });
});

describe('gzip bombs against a real server process', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(makeTempDir());
  });
  after(async () => {
    await server?.kill('SIGTERM');
  });

  it('cost no memory: five 64 MiB bombs leave the peak RSS within a few MiB', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20), { level: 9 });
    expect(bomb.length).to.be.below(100 * 1024);
    // Warm up the path once so lazily loaded code does not count as bomb cost.
    expect(
      (await postEncoded(server.url, zlib.gzipSync(Buffer.from(JSON.stringify(makeEvent('bomb.warm', 'w')))), 'gzip')).status,
    ).to.equal(200);
    const peakBefore = peakRssBytes(server.child.pid!);
    for (let i = 0; i < 5; i += 1) {
      const res = await postEncoded(server.url, bomb, 'gzip');
      expect(res.status).to.equal(413);
      expect(res.ms).to.be.below(2000);
    }
    const growth = peakRssBytes(server.child.pid!) - peakBefore;
    expect(growth, `peak RSS grew by ${(growth / 1048576).toFixed(1)} MiB`).to.be.below(16 * 1024 * 1024);
    expect((await fetch(`${server.url}/health`)).status).to.equal(200);
  });
});
