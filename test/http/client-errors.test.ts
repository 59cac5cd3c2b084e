import { expect } from 'chai';
import { rawConnect } from '../helpers/raw-http';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

describe("answers to Node's own HTTP parser errors (real server process)", function () {
  this.timeout(30_000);
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess(makeTempDir(), { HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000' });
  });

  after(async () => {
    await server.kill('SIGTERM');
  });

  const cases: Array<[string, string, number, string]> = [
    ['headers over 16 KiB', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, 431, 'headers_too_large'],
    ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
    [
      'both Content-Length and chunked (smuggling shape)',
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
      'bad_request',
    ],
    [
      'a bad chunk size',
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      400,
      'bad_request',
    ],
  ];
  for (const [what, text, status, code] of cases) {
    it(`answers ${what} with ${status} ${code} as JSON, and closes`, async () => {
      const conn = await rawConnect(server.port, text);
      const answer = await conn.answer();
      expect(answer.status).to.equal(status);
      expect(answer.headers).to.match(/\r\ncontent-type: application\/json/i);
      expect(JSON.parse(answer.body)).to.deep.include({ error: code });
      expect(JSON.parse(answer.body).message).to.be.a('string');
      await waitFor(() => conn.closed(), { what: 'the server to close the connection' });
    });
  }

  it('answers a client that sends its headers too slowly with 408 request_timeout as JSON', async () => {
    const conn = await rawConnect(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\n');
    const answer = await conn.answer(8000);
    expect(answer.status).to.equal(408);
    expect(JSON.parse(answer.body).error).to.equal('request_timeout');
  });
});
