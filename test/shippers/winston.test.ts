import path from 'node:path';
import { expect } from 'chai';
import winston from 'winston';
import { fetchAllEvents } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { sampleValue } from '../helpers/prometheus';
import { waitFor } from '../../src/cli/wait';

/** The shipped example configuration (docker/winston), loaded as a user would require it. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain .js file, loaded as its users load it
const { logAggregatorTransport } = require(path.resolve(__dirname, '../../../docker/winston/log-aggregator-transport.js')) as {
  logAggregatorTransport: (options: Record<string, unknown>) => winston.transport;
};

const PUBLISH_KEY = 'winston-key-0123456789abcdef';

async function metric(url: string, name: string): Promise<number> {
  return sampleValue(await (await fetch(`${url}/metrics`)).text(), name) ?? 0;
}

describe("winston's built-in Http transport (docker/winston/log-aggregator-transport.js)", () => {
  let svc: InProcessService;
  before(async () => {
    svc = await startInProcessService({ API_KEYS_PUBLISH: PUBLISH_KEY });
  });
  after(async () => svc.stop());

  /** Five entries with fixed ids and timestamps, as an application logs (and re-logs) them. */
  function logFive(logger: winston.Logger): void {
    for (let i = 1; i <= 5; i += 1) {
      logger.log(i % 2 === 0 ? 'warn' : 'info', `order ${i} shipped`, {
        topic: 'shop.orders',
        event_id: `order-${i}`,
        timestamp: `2025-10-23T10:00:0${i}.250+00:00`,
        order: { id: i, items: [i, i + 1] },
      });
    }
  }

  it('sends {"events": [...]} batches that arrive as events, and a re-sent batch is deduplicated', async () => {
    const transport = logAggregatorTransport({
      url: `${svc.url}/publish`,
      apiKey: PUBLISH_KEY,
      source: 'shop-api',
      batchCount: 5,
      batchInterval: 60_000,
    });
    const failures: Error[] = [];
    transport.on('warn', (err: Error) => failures.push(err));
    const logger = winston.createLogger({ level: 'info', transports: [transport] });
    try {
      const requestsBefore = await metric(svc.url, 'logagg_publish_duration_seconds_count');
      logFive(logger);
      await waitFor(async () => (await fetchAllEvents(svc.url, 'shop.orders')).length === 5, { what: 'the winston batch to arrive' });
      const stored = await fetchAllEvents(svc.url, 'shop.orders');
      expect(stored.map((e) => e.event_id)).to.deep.equal(['order-1', 'order-2', 'order-3', 'order-4', 'order-5']);
      expect(stored[1]).to.deep.include({
        topic: 'shop.orders',
        timestamp: '2025-10-23T10:00:02.250+00:00',
        source: 'shop-api',
        payload: { level: 'warn', message: 'order 2 shipped', order: { id: 2, items: [2, 3] } },
      });

      // The application logs the same five entries again (its own retry): stored once.
      logFive(logger);
      await waitFor(async () => (await metric(svc.url, 'logagg_events_duplicate_total')) === 5, {
        what: 'the re-sent batch to be counted',
      });
      expect(await fetchAllEvents(svc.url, 'shop.orders')).to.have.length(5);
      expect(await metric(svc.url, 'logagg_events_conflicting_duplicate_total')).to.equal(0);
      // Two POSTs of five events each: batching worked and nothing was rejected.
      expect((await metric(svc.url, 'logagg_publish_duration_seconds_count')) - requestsBefore).to.equal(2);
      expect(failures).to.deep.equal([]);
    } finally {
      logger.close();
    }
  });

  it('without batch, sends one event per POST, which the service accepts as a single event', async () => {
    const transport = logAggregatorTransport({ url: `${svc.url}/publish`, apiKey: PUBLISH_KEY, batch: false, topic: 'shop.single' });
    const logger = winston.createLogger({ transports: [transport] });
    try {
      logger.info('one', { event_id: 's-1' });
      logger.error('two', { event_id: 's-2' });
      await waitFor(async () => (await fetchAllEvents(svc.url, 'shop.single')).length === 2, { what: 'two single events' });
      const stored = await fetchAllEvents(svc.url, 'shop.single');
      expect(stored.map((e) => [e.event_id, e.source, (e.payload as any).level])).to.have.deep.members([
        ['s-1', 'winston', 'info'],
        ['s-2', 'winston', 'error'],
      ]);
      expect(Date.parse(stored[0]!.timestamp)).to.be.within(Date.now() - 60_000, Date.now() + 1000);
    } finally {
      logger.close();
    }
  });

  it('reports the 401 of a wrong key through the transport (nothing is stored)', async () => {
    const transport = logAggregatorTransport({
      url: `${svc.url}/publish`,
      apiKey: 'wrong-key-0123456789abcdef',
      batch: false,
      topic: 'shop.denied',
    });
    const failures: Error[] = [];
    transport.on('warn', (err: Error) => failures.push(err));
    const logger = winston.createLogger({ transports: [transport] });
    try {
      logger.info('denied', { event_id: 'd-1' });
      await waitFor(() => failures.length > 0, { what: 'the transport to report the failure' });
      expect(failures[0]!.message).to.equal('Invalid HTTP Status Code: 401');
      expect(await fetchAllEvents(svc.url, 'shop.denied')).to.deep.equal([]);
    } finally {
      logger.close();
    }
  });
});
