import { expect } from 'chai';
import pino from 'pino';
import { pinoLoki } from 'pino-loki';
import winston from 'winston';
import LokiTransport from 'winston-loki';
import { fetchAllEvents } from '../helpers/events';
import { startFlakyProxy } from '../helpers/flaky-proxy';
import { sampleValue } from '../helpers/prometheus';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

const PUBLISH_KEY = 'loki-publish-key-0123456789';

async function lokiCount(url: string, result: string): Promise<number> {
  return sampleValue(await (await fetch(`${url}/metrics`)).text(), 'logagg_protocol_events_total', { protocol: 'loki', result }) ?? 0;
}

async function storedCount(url: string, topic: string, count: number): Promise<Array<Record<string, any>>> {
  await waitFor(async () => (await fetchAllEvents(url, topic)).length >= count, { what: `${count} entries of ${topic}` });
  return fetchAllEvents(url, topic);
}

describe('Loki clients against POST /loki/api/v1/push (real server process)', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(makeTempDir(), { API_KEYS_PUBLISH: PUBLISH_KEY });
  });
  after(async () => {
    await server.kill('SIGTERM');
  });

  it('pino-loki (JSON): lines arrive with their labels, and re-sent lines are duplicates', async () => {
    const stream = pinoLoki({
      host: server.url,
      batching: false,
      labels: { job: 'pino-app' },
      headers: { Authorization: `Bearer ${PUBLISH_KEY}` },
    });
    // A fixed clock, so the second round sends the very same entries (pino-loki itself never retries).
    const logger = pino({ base: { hostname: 'web-3' }, timestamp: () => ',"time":1761213600123' }, stream);
    const logFour = (): void => {
      for (let i = 1; i <= 4; i += 1) logger.info({ order: i }, `order ${i} paid`);
    };
    const duplicatesBefore = await lokiCount(server.url, 'duplicate');
    logFour();
    const stored = await storedCount(server.url, 'pino-app', 4);
    expect(stored).to.have.length(4);
    const first = stored.find((e) => e.payload.line.includes('order 1 paid'))!;
    expect(first).to.deep.include({ topic: 'pino-app', source: 'web-3', timestamp: '2025-10-23T10:00:00.123Z' });
    expect(first.payload.labels).to.deep.equal({ job: 'pino-app', level: 'info', hostname: 'web-3' });
    expect(JSON.parse(first.payload.line)).to.deep.include({ level: 30, order: 1, msg: 'order 1 paid', time: 1761213600123 });
    expect(first.payload.timestamp_ns).to.equal('1761213600123000000');

    logFour();
    await waitFor(async () => (await lokiCount(server.url, 'duplicate')) - duplicatesBefore === 4, { what: 'four duplicates' });
    expect(await fetchAllEvents(server.url, 'pino-app')).to.have.length(4);
    stream.end();
  });

  it('winston-loki (snappy protobuf, its default): a push whose answer was lost is re-sent and stored once', async () => {
    const proxy = await startFlakyProxy(server.url, { failFirst: 1, failure: 'answer-503', pathPrefix: '/loki/' });
    const transport = new LokiTransport({
      host: proxy.url,
      labels: { job: 'winston-app', host: 'api-1' },
      headers: { Authorization: `Bearer ${PUBLISH_KEY}` },
      interval: 0.2,
      replaceTimestamp: false,
      onConnectionError: () => undefined,
    });
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- winston-loki extends its own copy of winston-transport; the instance is a TransportStream
    const logger = winston.createLogger({ transports: [transport] });
    try {
      const duplicatesBefore = await lokiCount(server.url, 'duplicate');
      for (let i = 1; i <= 3; i += 1) logger.info({ message: `shipment ${i}`, timestamp: `2025-10-23T10:00:0${i}.500Z`, carrier: 'dhl' });
      // The first push is stored but answered 503 by the proxy: winston-loki puts the batch back in its
      // queue (and backs off for a minute); closing the transport sends what is queued.
      await waitFor(() => proxy.failed() === 1, { what: 'the first push to fail' });
      await (transport as unknown as { close(): Promise<void> }).close();
      expect(proxy.forwarded()).to.equal(2);
      expect(proxy.requests()[0]!.contentType).to.equal('application/x-protobuf');
      await waitFor(async () => (await lokiCount(server.url, 'duplicate')) - duplicatesBefore >= 3, {
        what: 'the re-sent entries to be counted as duplicates',
      });
      const stored = await storedCount(server.url, 'winston-app', 3);
      expect(stored).to.have.length(3);
      expect(stored.map((e) => e.timestamp).sort()).to.deep.equal([
        '2025-10-23T10:00:01.500Z',
        '2025-10-23T10:00:02.500Z',
        '2025-10-23T10:00:03.500Z',
      ]);
      expect(stored[0]).to.deep.include({ source: 'api-1' });
      expect(stored[0]!.payload.labels).to.deep.equal({ host: 'api-1', job: 'winston-app', level: 'info' });
      expect(stored.map((e) => e.payload.line).sort()[0]).to.match(/^shipment 1 \{"carrier":"dhl"/);
    } finally {
      logger.close();
      await proxy.close();
    }
  });

  it('winston-loki with json: true: lines arrive, and the same entries logged again are duplicates', async () => {
    const transport = new LokiTransport({
      host: server.url,
      labels: { job: 'winston-json' },
      headers: { Authorization: `Bearer ${PUBLISH_KEY}` },
      json: true,
      interval: 0.2,
      replaceTimestamp: false,
    });
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- winston-loki extends its own copy of winston-transport; the instance is a TransportStream
    const logger = winston.createLogger({ transports: [transport] });
    try {
      const logTwo = (): void => {
        logger.warn({ message: 'disk 91% full', timestamp: '2025-10-23T11:00:00.000Z' });
        logger.error({ message: 'disk full', timestamp: '2025-10-23T11:00:01.000Z' });
      };
      const duplicatesBefore = await lokiCount(server.url, 'duplicate');
      logTwo();
      const stored = await storedCount(server.url, 'winston-json', 2);
      expect(stored.map((e) => e.payload.labels.level).sort()).to.deep.equal(['error', 'warn']);
      logTwo();
      await waitFor(async () => (await lokiCount(server.url, 'duplicate')) - duplicatesBefore === 2, { what: 'two duplicates' });
      expect(await fetchAllEvents(server.url, 'winston-json')).to.have.length(2);
    } finally {
      logger.close();
    }
  });
});
