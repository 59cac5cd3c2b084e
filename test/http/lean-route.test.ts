import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import type { Express } from 'express';
import pino from 'pino';
import { loadConfig } from '../../src/config/config';
import { createApp } from '../../src/http/app';
import { ServiceMetrics } from '../../src/http/metrics';
import { Aggregator } from '../../src/ingest/aggregator';
import { makeEvent } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';

const PUBLISH_KEY = 'lean-publish-key-0123456789';
const READ_KEY = 'lean-read-key-0123456789abc';

/** One service in this process: an Aggregator, an app over it, its HTTP server, and what it logged. */
interface Side {
  app: Express;
  aggregator: Aggregator;
  server: http.Server;
  port: number;
  logLines: string[];
  metrics: ServiceMetrics;
}

async function startSide(env: Record<string, string>, leanPublish: boolean): Promise<Side> {
  const config = loadConfig({ DATA_DIR: makeTempDir(), LOG_LEVEL: 'info', ...env });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(line);
      done();
    },
  });
  // debug: a successful publish logs its request line at debug (an ingest route); both ways must write it alike.
  const logger = pino({ level: 'debug' }, sink);
  const metrics = new ServiceMetrics();
  const aggregator = new Aggregator({ config, logger, observer: metrics.observer });
  metrics.watch({ aggregator, walDir: config.walDir });
  await aggregator.open();
  const app = createApp(aggregator, config, logger, { metrics, apiKeyDigests: config.apiKeyDigests, leanPublish });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { app, aggregator, server, port: (server.address() as AddressInfo).port, logLines, metrics };
}

async function stopSide(side: Side): Promise<void> {
  side.server.closeAllConnections();
  await new Promise<void>((resolve) => side.server.close(() => resolve()));
  await side.aggregator.close();
}

/** Sends one raw request on its own connection and returns every byte answered until the server closes it. */
async function exchange(port: number, request: Buffer): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return Buffer.concat(chunks);
}

/** A request as bytes: Connection: close, so the answer ends with the connection. */
function rawRequest(path: string, headers: Record<string, string>, body?: Buffer | string, method = 'POST'): Buffer {
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (bytes !== undefined && headers['Content-Length'] === undefined) lines.push(`Content-Length: ${bytes.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bytes ?? Buffer.alloc(0)]);
}

/** The answer with its Date header blanked (the only part that depends on when it was sent). */
function comparable(answer: Buffer): string {
  return answer.toString('latin1').replace(/\r\nDate: [^\r]*/, '\r\nDate: (now)');
}

/** A log line without what depends on timing or the process. */
function comparableLogLine(line: string): Record<string, unknown> {
  const { time: _time, pid: _pid, hostname: _hostname, responseTime: _responseTime, ...rest } = JSON.parse(line) as Record<string, unknown>;
  if (typeof rest.msg === 'string') rest.msg = rest.msg.replace(/ \d+ms$/, ' (n)ms');
  if (typeof rest.request_id === 'string') rest.request_id = rest.request_id.replace(/^[0-9a-f-]{36}$/, '(uuid)');
  if (typeof rest.err === 'object' && rest.err !== null) delete (rest.err as { stack?: unknown }).stack;
  return rest;
}

/** The request counters and counts of the metrics (not the durations, which depend on timing). */
async function requestMetrics(side: Side): Promise<string[]> {
  const text = await side.metrics.registry.metrics();
  return text
    .split('\n')
    .filter((line) =>
      /^logagg_(requests_rejected_total|protocol_events_total|http_request_duration_seconds_count|publish_duration_seconds_count)/.test(
        line,
      ),
    );
}

const event = (id: string, payload: Record<string, unknown> = { n: id }): string => JSON.stringify(makeEvent('lean', id, payload));
const json = { 'Content-Type': 'application/json' };

/** The requests both ways must answer alike: every kind of success and every error of the route, in order. */
function publishRequests(): Array<{ name: string; request: Buffer }> {
  const batch = (ids: string[]): string => `{"events":[${ids.map((id) => event(id)).join(',')}]}`;
  const many = Array.from({ length: 40 }, (_, i) => `many-${i}`);
  return [
    { name: 'one event', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-1' }, event('a')) },
    { name: 'its re-send', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-2' }, event('a')) },
    { name: 'a conflict', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-3' }, event('a', { other: true })) },
    { name: 'a batch', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-4' }, batch(['b', 'c', 'a'])) },
    { name: 'an array', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-5' }, `[${event('d')},${event('e')}]`) },
    {
      name: 'NDJSON',
      request: rawRequest('/publish', { 'Content-Type': 'application/x-ndjson', 'X-Request-Id': 'r-6' }, `${event('f')}\n${event('g')}\n`),
    },
    {
      name: 'a gzip body',
      request: rawRequest('/publish', { ...json, 'Content-Encoding': 'gzip', 'X-Request-Id': 'r-7' }, zlib.gzipSync(event('h'))),
    },
    {
      name: 'a br NDJSON body',
      request: rawRequest(
        '/publish',
        { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'br', 'X-Request-Id': 'r-8' },
        zlib.brotliCompressSync(`${event('i')}\n`),
      ),
    },
    {
      name: 'a large answer to a client that takes gzip',
      request: rawRequest('/publish', { ...json, 'Accept-Encoding': 'gzip', 'X-Request-Id': 'r-9' }, batch(many)),
    },
    {
      name: 'a small answer to a client that takes gzip',
      request: rawRequest('/publish', { ...json, 'Accept-Encoding': 'gzip, br', 'X-Request-Id': 'r-10' }, event('j')),
    },
    { name: 'another spelling of the path', request: rawRequest('/Publish/?x=1', { ...json, 'X-Request-Id': 'r-11' }, event('k')) },
    { name: 'invalid JSON', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-12' }, '{"topic": ') },
    {
      name: 'invalid UTF-8',
      request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-13' }, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])),
    },
    {
      name: 'a lossy number',
      request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-14' }, event('l', { n: 1 }).replace('1}', '1e400}')),
    },
    { name: 'a failed validation', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-15' }, '{"topic":"t"}') },
    { name: 'another media type', request: rawRequest('/publish', { 'Content-Type': 'text/plain', 'X-Request-Id': 'r-16' }, event('m')) },
    {
      name: 'another charset',
      request: rawRequest('/publish', { 'Content-Type': 'application/json; charset=latin1', 'X-Request-Id': 'r-17' }, event('m')),
    },
    {
      name: 'an unknown content encoding',
      request: rawRequest('/publish', { ...json, 'Content-Encoding': 'zstd', 'X-Request-Id': 'r-18' }, event('m')),
    },
    {
      name: 'a broken gzip body',
      request: rawRequest('/publish', { ...json, 'Content-Encoding': 'gzip', 'X-Request-Id': 'r-19' }, 'not gzip'),
    },
    { name: 'an announced empty body', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-20' }, '') },
    { name: 'no body', request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-21' }) },
    {
      name: 'too many events',
      request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-22' }, batch(Array.from({ length: 51 }, (_, i) => `x-${i}`))),
    },
    {
      name: 'a body over BODY_BYTES_MAX by its Content-Length',
      request: rawRequest('/publish', { ...json, 'X-Request-Id': 'r-23', 'Content-Length': '70000' }, event('n')),
    },
    {
      name: 'a body over BODY_BYTES_MAX after inflation',
      request: rawRequest(
        '/publish',
        { ...json, 'Content-Encoding': 'gzip', 'X-Request-Id': 'r-24' },
        zlib.gzipSync(' '.repeat(70_000) + event('o')),
      ),
    },
    { name: 'another method', request: rawRequest('/publish', { 'X-Request-Id': 'r-25' }, undefined, 'GET') },
  ];
}

describe('POST /publish without the router (lean-route.ts)', function () {
  this.timeout(60_000);

  it('answers every request byte for byte as the router does, with the same log lines and metrics', async () => {
    const env = { BODY_BYTES_MAX: '65536', BATCH_EVENTS_MAX: '50' };
    const lean = await startSide(env, true);
    const routed = await startSide(env, false);
    try {
      for (const { name, request } of publishRequests()) {
        const [viaLean, viaRouter] = [await exchange(lean.port, request), await exchange(routed.port, request)];
        expect(comparable(viaLean), name).to.equal(comparable(viaRouter));
        expect(viaLean.length, `${name}: an answer`).to.be.above(0);
      }
      // A client that sends no request id gets a fresh one either way.
      const anonymous = rawRequest('/publish', json, event('p'));
      const [idLean, idRouter] = [await exchange(lean.port, anonymous), await exchange(routed.port, anonymous)];
      const uuid = /X-Request-Id: [0-9a-f-]{36}\r\n/;
      expect(comparable(idLean).replace(uuid, 'X-Request-Id: (uuid)\r\n')).to.equal(
        comparable(idRouter).replace(uuid, 'X-Request-Id: (uuid)\r\n'),
      );
      // The request lines (the service's own start-up lines name its data dir and durations).
      const requestLines = (side: Side) => side.logLines.filter((line) => line.includes('"request_id"')).map(comparableLogLine);
      expect(requestLines(lean).length).to.equal(publishRequests().length + 1);
      expect(requestLines(lean)).to.deep.equal(requestLines(routed));
      expect(await requestMetrics(lean)).to.deep.equal(await requestMetrics(routed));
      expect((await requestMetrics(lean)).join('\n')).to.include('route="/publish"');
    } finally {
      await stopSide(lean);
      await stopSide(routed);
    }
  });

  it('answers access control and the rate limit as the router does (401, 403, 429 with their headers)', async () => {
    const env = { API_KEYS_PUBLISH: PUBLISH_KEY, API_KEYS_READ: READ_KEY, RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '2' };
    const lean = await startSide(env, true);
    const routed = await startSide(env, false);
    try {
      const requests = [
        rawRequest('/publish', { ...json, 'X-Request-Id': 'a-1' }, event('q')),
        rawRequest('/publish', { ...json, Authorization: 'Token x', 'X-Request-Id': 'a-2' }, event('q')),
        rawRequest('/publish', { ...json, Authorization: 'Bearer unknown-key-000000000', 'X-Request-Id': 'a-3' }, event('q')),
        rawRequest('/publish', { ...json, Authorization: `Bearer ${READ_KEY}`, 'X-Request-Id': 'a-4' }, event('q')),
        rawRequest('/publish', { ...json, Authorization: `Bearer ${PUBLISH_KEY}`, 'X-Request-Id': 'a-5' }, event('q')),
        rawRequest('/publish', { ...json, Authorization: `Bearer ${PUBLISH_KEY}`, 'X-Request-Id': 'a-6' }, event('r')),
        rawRequest('/publish', { ...json, Authorization: `Bearer ${PUBLISH_KEY}`, 'X-Request-Id': 'a-7' }, event('s')),
      ];
      const answers: string[][] = [];
      // Each side gets the whole sequence at once, so both buckets see it within the same second.
      for (const side of [lean, routed]) {
        const sent: string[] = [];
        for (const request of requests) sent.push(comparable(await exchange(side.port, request)));
        answers.push(sent);
      }
      expect(answers[0]).to.deep.equal(answers[1]);
      const statuses = answers[0]!.map((answer) => Number(answer.slice(9, 12)));
      expect(statuses).to.deep.equal([401, 401, 401, 403, 200, 200, 429]);
      expect(answers[0]![6]).to.match(/\r\nRetry-After: 1\r\n/);
      expect(answers[0]![0]).to.match(/\r\nWWW-Authenticate: Bearer realm="log-aggregator", scope="publish"/);
    } finally {
      await stopSide(lean);
      await stopSide(routed);
    }
  });

  it("keeps Node's own request and response objects for a publish, and gives an error express's", async () => {
    // Each answer's prototypes as they are when it finishes (the app's listener runs first).
    const lean = await startSide({}, true);
    try {
      const seen: Array<{ status: number; nodeRequest: boolean; nodeResponse: boolean }> = [];
      lean.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
        res.once('finish', () => {
          seen.push({
            status: res.statusCode,
            nodeRequest: Object.getPrototypeOf(req) === http.IncomingMessage.prototype,
            nodeResponse: Object.getPrototypeOf(res) === http.ServerResponse.prototype,
          });
        });
      });
      await exchange(lean.port, rawRequest('/publish', json, event('t')));
      await exchange(lean.port, rawRequest('/publish', json, '{"topic": 1}'));
      await exchange(lean.port, rawRequest('/publish', { 'Content-Type': 'text/plain' }, 'x'));
      expect(seen).to.deep.equal([
        { status: 200, nodeRequest: true, nodeResponse: true },
        { status: 400, nodeRequest: false, nodeResponse: false },
        { status: 415, nodeRequest: false, nodeResponse: false },
      ]);
    } finally {
      await stopSide(lean);
    }
  });

  it('serves POST /publish without entering the router, and every other request through it', async () => {
    const lean = await startSide({}, true);
    const routed = await startSide({}, false);
    try {
      const counts = new Map<Side, number>();
      for (const side of [lean, routed]) {
        const router = (side.app as unknown as { router: { handle: (...args: unknown[]) => void } }).router;
        const handle = router.handle.bind(router);
        counts.set(side, 0);
        router.handle = (...args: unknown[]) => {
          counts.set(side, counts.get(side)! + 1);
          handle(...args);
        };
      }
      for (const side of [lean, routed]) await exchange(side.port, rawRequest('/publish', json, event('t')));
      expect(counts.get(lean), 'lean: POST /publish').to.equal(0);
      expect(counts.get(routed), 'router: POST /publish').to.equal(1);
      await exchange(lean.port, rawRequest('/health', {}, undefined, 'GET'));
      await exchange(lean.port, rawRequest('/publish', {}, undefined, 'PUT'));
      expect(counts.get(lean), 'lean: GET /health and PUT /publish').to.equal(2);
    } finally {
      await stopSide(lean);
      await stopSide(routed);
    }
  });
});
