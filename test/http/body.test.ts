import { expect } from 'chai';
import { fetchAllEvents } from '../helpers/events';
import { rawConnect } from '../helpers/raw-http';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** Posts raw bytes as application/json and returns status and parsed answer. */
async function postBytes(url: string, body: Buffer | string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, body: await res.json() };
}

/** The text of one event whose payload is `payloadText` (kept as text so numbers reach the server as written). */
function eventText(eventId: string, payloadText: string, topic = 'body.numbers'): string {
  return `{"topic":"${topic}","event_id":"${eventId}","timestamp":"2025-10-23T10:00:00Z","source":"t","payload":${payloadText}}`;
}

describe('request bodies (real server process)', function () {
  this.timeout(60_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), { BODY_BYTES_MAX: String(64 * 1024), REQUEST_TIMEOUT_MS: '30000' });
  });

  after(async () => {
    await server.kill('SIGTERM');
  });

  describe('strict UTF-8', () => {
    it('answers 400 invalid_utf8 naming the byte offset, so two ids that differ in invalid bytes never collide', async () => {
      const head = Buffer.from('{"topic":"body.utf8","event_id":"id-');
      const tail = Buffer.from('","timestamp":"2025-10-23T10:00:00Z","source":"t"}');
      for (const byte of [0xff, 0xfe]) {
        const res = await postBytes(server.url, Buffer.concat([head, Buffer.from([byte]), tail]));
        expect(res.status, JSON.stringify(res.body)).to.equal(400);
        expect(res.body.error).to.equal('invalid_utf8');
        expect(res.body.message).to.contain(`at byte offset ${head.length}`);
      }
      // An overlong encoding and a lone surrogate encoded in UTF-8 are not UTF-8 either.
      for (const bad of [
        [0xc0, 0xaf],
        [0xed, 0xa0, 0x80],
      ]) {
        const res = await postBytes(server.url, Buffer.concat([head, Buffer.from(bad), tail]));
        expect(res.body.error).to.equal('invalid_utf8');
      }
      expect(await fetchAllEvents(server.url, 'body.utf8')).to.deep.equal([]);
      const ok = await postBytes(server.url, Buffer.concat([head, Buffer.from('ÿ'), tail]));
      expect(ok.status).to.equal(200);
      expect((await fetchAllEvents(server.url, 'body.utf8')).map((e) => e.event_id)).to.deep.equal(['id-ÿ']);
    });

    it('refuses lone-surrogate escapes in topic, event_id and source, which the index would store as U+FFFD', async () => {
      for (const id of ['\\ud800', '\\udfff', 'a\\ud83d']) {
        const res = await postBytes(server.url, `{"topic":"body.sur","event_id":"${id}","timestamp":"2025-10-23T10:00:00Z","source":"t"}`);
        expect(res.status, id).to.equal(400);
        expect(res.body.details.map((d: { path: string }) => d.path)).to.deep.equal(['event_id']);
      }
      // A pair is one character, and a payload keeps a lone one as its escape.
      expect((await postBytes(server.url, eventText('\\ud83d\\ude00', '{"s":"\\ud800"}', 'body.sur'))).status).to.equal(200);
      const [stored] = await fetchAllEvents(server.url, 'body.sur');
      expect(stored!.event_id).to.equal('\u{1F600}');
      expect(stored!.payload).to.deep.equal({ s: '\ud800' });
    });

    it('checks UTF-8 after inflating a gzip body too', async () => {
      const zlib = await import('node:zlib');
      const body = zlib.gzipSync(Buffer.concat([Buffer.from(eventText('gz-', '{"s":"')), Buffer.from([0xff]), Buffer.from('"}}')]));
      const res = await fetch(`${server.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body,
      });
      expect(res.status).to.equal(400);
      expect(((await res.json()) as { error: string }).error).to.equal('invalid_utf8');
    });
  });

  describe('numbers', () => {
    it('answers 400 number_not_kept for a number JSON.parse would change, and stores nothing of the batch', async () => {
      for (const literal of [
        '1e400',
        '-1e400',
        '-0',
        '-0.0',
        '12345678901234567890',
        '0.30000000000000001',
        '1e-400',
        '1152921504606846976',
      ]) {
        const res = await postBytes(
          server.url,
          `{"events":[${eventText('ok-1', '{"n":1}')},${eventText(`n-${literal}`, `{"a":{"n":${literal}}}`)}]}`,
        );
        expect(res.status, literal).to.equal(400);
        expect(res.body.error, literal).to.equal('number_not_kept');
        expect(res.body.message).to.contain(literal);
      }
      expect(await fetchAllEvents(server.url, 'body.numbers')).to.deep.equal([]);
    });

    it('stores numbers whose value a double keeps, and returns them with that value', async () => {
      const payload = '{"max":9007199254740992,"p70":1.1805916207174113e21,"f":0.1,"e":1.5E3,"neg":-12.50,"tiny":5e-324,"zero":0}';
      expect((await postBytes(server.url, eventText('kept', payload))).status).to.equal(200);
      const raw = await (await fetch(`${server.url}/events?topic=body.numbers`)).text();
      expect(raw).to.contain(
        '"payload":{"max":9007199254740992,"p70":1.1805916207174113e+21,"f":0.1,"e":1500,"neg":-12.5,"tiny":5e-324,"zero":0}',
      );
    });

    it('compares what is stored: 1.0 re-sent as 1 is a duplicate without conflict', async () => {
      expect((await postBytes(server.url, eventText('one', '{"n":1.0}'))).body.accepted).to.equal(1);
      const again = await postBytes(server.url, eventText('one', '{"n":1}'));
      expect(again.body.duplicates).to.equal(1);
      expect(again.body.results[0].conflict).to.equal(undefined);
    });
  });

  describe('oversized bodies', () => {
    it('answers 413 as soon as Content-Length says the body is over BODY_BYTES_MAX, and closes', async () => {
      const conn = await rawConnect(
        server.port,
        'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"topic":',
      );
      const answer = await conn.answer(5000);
      expect(answer.status).to.equal(413);
      expect(JSON.parse(answer.body).error).to.equal('body_too_large');
      expect(answer.headers).to.match(/\r\nconnection: close/i);
      await waitFor(() => conn.closed(), { timeoutMs: 5000, what: 'the server to close the connection' });
    });

    it('answers 413 as soon as a chunked body passes BODY_BYTES_MAX, though its chunk declares 2 GB', async () => {
      const conn = await rawConnect(
        server.port,
        'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n',
      );
      conn.socket.write('{"topic":"' + 'a'.repeat(70 * 1024));
      const answer = await conn.answer(5000);
      expect(answer.status).to.equal(413);
      expect(JSON.parse(answer.body).error).to.equal('body_too_large');
      await waitFor(() => conn.closed(), { timeoutMs: 5000, what: 'the server to close the connection' });
      expect((await fetch(`${server.url}/health`)).status).to.equal(200);
    });
  });
});
