import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../../src/cli/wait';
import { parseNdjson, spawnLogagg } from '../harness/logagg-process';

/** An aggregator stand-in: an empty GET /events, and a GET /events/stream that sends `stream` with CRLF line ends and stays open. */
async function crlfServer(stream: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/events/stream') === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // One byte at a time, so that a CR and its LF arrive in different chunks.
      const bytes = Buffer.from(stream);
      for (let i = 0; i < bytes.length; i += 1) res.write(bytes.subarray(i, i + 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ topic: null, count: 0, events: [], next_cursor: null }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('logagg tail -f --url: Server-Sent Events framing', () => {
  it('reads a stream whose lines end in CRLF (comments, retry and multi-line data included)', async () => {
    // The first event as a server shows it since format 2, the second as an older server did (no received_at).
    const event = (seq: number, id: string): string =>
      JSON.stringify({
        seq,
        topic: 'crlf',
        event_id: id,
        timestamp: '2025-10-23T10:00:00.000Z',
        source: 's',
        payload: { n: seq },
        ...(seq === 1 ? { received_at: '2026-12-01T23:00:00.123Z' } : {}),
      });
    const lines = ['retry: 1000', ': stream after seq 0', '', 'id: 1', `data: ${event(1, 'a')}`, '', ': heartbeat', '', 'id: 2'];
    // The second event's JSON split over two data lines between two members (joined with a newline: still JSON).
    const second = event(2, 'b');
    const cut = second.indexOf(',') + 1;
    lines.push(`data: ${second.slice(0, cut)}`, `data: ${second.slice(cut)}`, '', '');
    const server = await crlfServer(lines.join('\r\n'));
    const tail = spawnLogagg(['tail', '-f', '--url', server.url, '--from-seq', '1', '--json']);
    try {
      await waitFor(() => parseNdjson(tail.stdout()).length === 2, { what: 'both events' }).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\nstdout: ${tail.stdout()}\nstderr: ${tail.stderr()}`);
      });
      expect(parseNdjson(tail.stdout())).to.deep.equal([JSON.parse(event(1, 'a')), { ...JSON.parse(second), received_at: null }]);
      expect(await tail.stop('SIGINT')).to.equal(0);
    } finally {
      await tail.stop('SIGKILL');
      await server.close();
    }
  });
});
