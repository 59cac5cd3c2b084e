import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openSse } from './sse';

/** A server whose GET /stream sends `body` as an event stream, cut into `pieceBytes` writes, then ends. */
async function streamServer(body: string, pieceBytes: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < body.length; i += pieceBytes) res.write(body.slice(i, i + pieceBytes));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stream`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("openSse (the tests' event-stream reader)", () => {
  for (const [name, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ] as const) {
    it(`reads events and comments framed with ${name} line ends, however the bytes are cut`, async () => {
      const body = [
        `retry: 1000`,
        `: stream after seq 0`,
        ``,
        `id: 1`,
        `data: {"seq":1,"topic":"a"}`,
        ``,
        `: heartbeat`,
        ``,
        `id: 2`,
        `data: {"seq":2,`,
        `data: "topic":"b"}`,
        ``,
        ``,
      ].join(eol);
      for (const pieceBytes of [1, 3, body.length]) {
        const server = await streamServer(body, pieceBytes);
        try {
          const client = await openSse(server.url);
          await client.ended;
          expect(client.events, `${name}, ${pieceBytes}-byte pieces`).to.deep.equal([
            { id: 1, data: { seq: 1, topic: 'a' } },
            { id: 2, data: { seq: 2, topic: 'b' } },
          ]);
          expect(client.comments).to.deep.equal(['stream after seq 0', 'heartbeat']);
        } finally {
          await server.close();
        }
      }
    });
  }
});
