import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as OtlpJsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as OtlpProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter } from '@opentelemetry/sdk-logs';
import { expect } from 'chai';
import { fetchAllEvents } from '../helpers/events';
import { startFlakyProxy, type ProxyFailure } from '../helpers/flaky-proxy';
import { sampleValue } from '../helpers/prometheus';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

const PUBLISH_KEY = 'otlp-publish-key-0123456789';

async function metric(url: string, name: string, labels?: Record<string, string>): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  return sampleValue(await res.text(), name, labels) ?? 0;
}

/** A logger provider of one service, exporting in batches that are sent only on forceFlush. */
function providerFor(exporter: LogRecordExporter, service: string): LoggerProvider {
  return new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'service.instance.id': `${service}-pod-1`, 'host.name': 'node-7' }),
    processors: [
      new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 100, scheduledDelayMillis: 60_000, exportTimeoutMillis: 20_000 }),
    ],
  });
}

/** Five records with every kind of attribute value, one of them with a log.record.uid. */
function emitFive(provider: LoggerProvider): void {
  const logger = provider.getLogger('checkout-lib', '1.2.3');
  for (let i = 1; i <= 5; i += 1) {
    logger.emit({
      timestamp: new Date(Date.UTC(2025, 9, 23, 10, 0, i, 250)),
      severityNumber: i === 3 ? SeverityNumber.ERROR : SeverityNumber.INFO,
      severityText: i === 3 ? 'ERROR' : 'INFO',
      body: `order ${i} shipped`,
      attributes: {
        'order.id': i,
        'order.total': i * 10.5,
        'order.gift': i % 2 === 0,
        'order.items': ['a', 'b'],
        'http.route': '/orders/:id',
        ...(i === 5 ? { 'log.record.uid': 'uid-order-5' } : {}),
      },
    });
  }
}

describe('OpenTelemetry SDK exporters against POST /v1/logs (real server process)', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(makeTempDir(), { API_KEYS_PUBLISH: PUBLISH_KEY });
  });
  after(async () => {
    await server.kill('SIGTERM');
  });

  const cases: Array<{ name: string; make: (url: string) => LogRecordExporter; failure: ProxyFailure; service: string }> = [
    {
      name: '@opentelemetry/exporter-logs-otlp-http (JSON)',
      make: (url) => new OtlpJsonExporter({ url, headers: { Authorization: `Bearer ${PUBLISH_KEY}` } }),
      failure: 'answer-503',
      service: 'checkout-json',
    },
    {
      name: '@opentelemetry/exporter-logs-otlp-proto (protobuf)',
      make: (url) => new OtlpProtoExporter({ url, headers: { Authorization: `Bearer ${PUBLISH_KEY}` } }),
      failure: 'drop-connection',
      service: 'checkout-proto',
    },
  ];

  for (const { name, make, failure, service } of cases) {
    it(`${name}: records arrive with their attributes intact`, async () => {
      const provider = providerFor(make(`${server.url}/v1/logs`), `${service}-direct`);
      emitFive(provider);
      await provider.forceFlush();
      await provider.shutdown();
      const stored = await waitFor(
        async () => {
          const events = await fetchAllEvents(server.url, `${service}-direct`);
          return events.length === 5 ? events : null;
        },
        { what: 'five records in the index' },
      );
      const third = stored.find((e) => (e.payload as any).body === 'order 3 shipped')!;
      expect(third).to.deep.include({
        topic: `${service}-direct`,
        source: `${service}-direct-pod-1`,
        timestamp: '2025-10-23T10:00:03.250Z',
      });
      expect(third.payload).to.deep.include({
        time_unix_nano: '1761213603250000000',
        severity_number: 17,
        severity_text: 'ERROR',
        body: 'order 3 shipped',
        attributes: { 'order.id': 3, 'order.total': 31.5, 'order.gift': false, 'order.items': ['a', 'b'], 'http.route': '/orders/:id' },
        scope: { name: 'checkout-lib', version: '1.2.3', attributes: {} },
      });
      expect((third.payload as any).resource.attributes).to.deep.include({
        'service.name': `${service}-direct`,
        'service.instance.id': `${service}-direct-pod-1`,
        'host.name': 'node-7',
      });
      expect(stored.map((e) => e.event_id)).to.include('uid-order-5');
      expect(stored.filter((e) => /^[0-9a-f]{64}$/.test(e.event_id))).to.have.length(4);
    });

    it(`${name}: a batch re-exported after a forced failure (${failure}) is stored once`, async () => {
      const proxy = await startFlakyProxy(server.url, { failFirst: 1, failure, pathPrefix: '/v1/logs' });
      try {
        const duplicatesBefore = await metric(server.url, 'logagg_protocol_events_total', { protocol: 'otlp', result: 'duplicate' });
        const provider = providerFor(make(`${proxy.url}/v1/logs`), service);
        emitFive(provider);
        await provider.forceFlush();
        await provider.shutdown();
        // The first export was stored but its answer lost; the exporter sent it again.
        expect(proxy.failed()).to.equal(1);
        expect(proxy.forwarded()).to.equal(2);
        await waitFor(async () => (await fetchAllEvents(server.url, service)).length >= 5, { what: 'five records in the index' });
        const stored = await fetchAllEvents(server.url, service);
        expect(stored).to.have.length(5);
        expect(new Set(stored.map((e) => e.event_id)).size).to.equal(5);
        expect(
          (await metric(server.url, 'logagg_protocol_events_total', { protocol: 'otlp', result: 'duplicate' })) - duplicatesBefore,
        ).to.equal(5);
      } finally {
        await proxy.close();
      }
    });
  }

  it('refuses an export without the publish key (401), storing nothing', async () => {
    const provider = providerFor(new OtlpJsonExporter({ url: `${server.url}/v1/logs` }), 'no-key');
    emitFive(provider);
    await provider.forceFlush().catch(() => undefined);
    await provider.shutdown().catch(() => undefined);
    expect(await fetchAllEvents(server.url, 'no-key')).to.deep.equal([]);
    expect(await metric(server.url, 'logagg_requests_rejected_total', { route: '/v1/logs', reason: 'unauthorized' })).to.be.greaterThan(0);
  });
});
