import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runLogagg } from '../harness/logagg-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { fetchAllEvents, makeEvent, postJson, withoutReceivedAt } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';
import { startServerProcess } from '../harness/server-process';
import { openTestStore } from '../helpers/logged-rows';

function allRows(databasePath: string): Array<{ seq: number; body: string }> {
  const store = openTestStore(databasePath, { readonly: true });
  try {
    return store.queryEvents({ limit: 1_000_000 }).map(({ seq, body }) => ({ seq, body }));
  } finally {
    store.close();
  }
}

describe('logagg replay', () => {
  it('round trip: publish to A, export, replay into an empty B: both indexes equal event by event; a second run is all duplicates', async () => {
    const dirA = makeTempDir();
    const dirB = makeTempDir();
    const [a, b] = await Promise.all([startServerProcess(dirA), startServerProcess(dirB)]);
    try {
      // A gets events over several topics, with retries (duplicates) and a payload with odd keys.
      const events = variedEvents(250);
      events.push({
        ...makeEvent('odd', 'proto'),
        payload: JSON.parse('{"__proto__":{"x":1},"constructor":"c","nested":{"a":[1,2,{"b":null}]}}'),
      });
      for (let i = 0; i < events.length; i += 50) {
        const { status } = await postJson(`${a.url}/publish`, { events: events.slice(i, i + 50) });
        expect(status).to.equal(200);
      }
      expect((await postJson(`${a.url}/publish`, { events: events.slice(0, 20) })).body.duplicates).to.equal(20);

      const exportFile = path.join(makeTempDir(), 'a.ndjson');
      expect((await runLogagg(['export', '--data-dir', dirA, '--out', exportFile])).code).to.equal(0);
      const first = await runLogagg(['replay', '--input', exportFile, '--to', b.url, '--batch', '100', '--json']);
      expect(first.code, first.stderr).to.equal(0);
      expect(JSON.parse(first.stdout)).to.include({ sent: 251, accepted: 251, duplicates: 0, batches: 3, firstSeq: 1, lastSeq: 251 });

      // Same events, same seqs, same bodies, through the API; B took its own acceptance times
      // (replay strips received_at), none before A's.
      const [eventsA, eventsB] = [await fetchAllEvents(a.url), await fetchAllEvents(b.url)];
      expect(eventsB.map((e) => withoutReceivedAt(e))).to.deep.equal(eventsA.map((e) => withoutReceivedAt(e)));
      eventsB.forEach((e, i) => {
        const receivedAt = (x: object): number => Date.parse((x as { received_at: string }).received_at);
        expect(receivedAt(e)).to.be.at.least(receivedAt(eventsA[i]!));
      });

      // ...and safe to run twice (this time straight from A's log): everything is a duplicate.
      const second = await runLogagg(['replay', '--data-dir', dirA, '--to', b.url, '--json']);
      expect(second.code).to.equal(0);
      expect(JSON.parse(second.stdout)).to.include({ sent: 251, accepted: 0, duplicates: 251 });
    } finally {
      await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
    }
    // Both indexes, row by row, once the servers are stopped.
    const rowsA = allRows(path.join(dirA, 'index.db'));
    expect(rowsA).to.have.length(251);
    expect(allRows(path.join(dirB, 'index.db'))).to.deep.equal(rowsA);
  });

  it('retries a 503 after its Retry-After, splits a batch answered 413, and stops with exit 1 on a 400', async () => {
    const dataDir = await makeDataDir([variedEvents(8)]);
    const bodies: number[] = [];
    let calls = 0;
    const stub = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        calls += 1;
        const count = (JSON.parse(text) as { events: unknown[] }).events.length;
        if (calls === 1) {
          res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":"backlog_full"}');
        } else if (count > 4) {
          res.writeHead(413, { 'content-type': 'application/json' }).end('{"error":"batch_too_large"}');
        } else if (bodies.length === 3) {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"validation_failed"}');
        } else {
          bodies.push(count);
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ received: count, accepted: count, duplicates: 0 }));
        }
      });
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
    try {
      const started = Date.now();
      const ok = await runLogagg(['replay', '--data-dir', dataDir, '--to', url, '--json']);
      expect(Date.now() - started).to.be.greaterThan(900);
      const summary = JSON.parse(ok.stdout);
      expect(ok.code).to.equal(0);
      expect(summary).to.include({ sent: 8, accepted: 8, retries: 1, batches: 2, failed: null });
      expect(bodies).to.deep.equal([4, 4]);

      const failing = await runLogagg(['replay', '--data-dir', dataDir, '--to', url, '--batch', '2']);
      expect(failing.code).to.equal(1);
      expect(failing.stdout).to.contain('FAILED: POST /publish answered 400');
      expect(failing.stdout).to.contain('resume with --from-seq 3');
    } finally {
      stub.close();
    }
  });

  it('honours --rate (events per second)', async () => {
    const dataDir = await makeDataDir([variedEvents(12)]);
    const target = await startServerProcess(makeTempDir());
    try {
      const started = Date.now();
      const { code, stdout } = await runLogagg(['replay', '--data-dir', dataDir, '--to', target.url, '--rate', '20', '--json']);
      expect(code).to.equal(0);
      expect(JSON.parse(stdout)).to.include({ sent: 12, accepted: 12 });
      // 12 events at 20/s: the last batch may start no earlier than ~0.5 s in.
      expect(Date.now() - started).to.be.greaterThan(500);
    } finally {
      await target.kill('SIGTERM');
    }
  });
});
