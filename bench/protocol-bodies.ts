import { encodeLokiProtobuf } from '../src/protocols/loki';
import { ExportLogsServiceRequest } from '../src/protocols/otlp-schema';
import type { LogEvent } from '../src/wal/record';
import { benchEvent } from './events';

/** The ingest protocols the benchmark compares, each carrying the same records. */
export const BENCH_PROTOCOLS = ['publish', 'ndjson', 'otlp-json', 'otlp-protobuf', 'loki-json', 'loki-protobuf', 'elastic-bulk'] as const;
export type BenchProtocol = (typeof BENCH_PROTOCOLS)[number];

/** One request of a protocol: where it goes and its encoded body. */
export interface ProtocolRequest {
  path: string;
  contentType: string;
  body: string | Buffer;
}

const NANOS_PER_MS = 1_000_000n;

function nanosOf(event: LogEvent): bigint {
  return BigInt(Date.parse(event.timestamp)) * NANOS_PER_MS + 123n;
}

/** The records grouped by topic, as shippers group them by service or stream. */
function byTopic(events: LogEvent[]): Map<string, LogEvent[]> {
  const groups = new Map<string, LogEvent[]>();
  for (const event of events) groups.set(event.topic, [...(groups.get(event.topic) ?? []), event]);
  return groups;
}

/** The OTLP ExportLogsServiceRequest of bench events (JSON shape; no log.record.uid, so the digest path is measured). */
function otlpRequest(events: LogEvent[]): Record<string, unknown> {
  return {
    resourceLogs: [...byTopic(events)].map(([topic, group]) => ({
      resource: {
        attributes: [
          { key: 'service.name', value: { stringValue: topic } },
          { key: 'host.name', value: { stringValue: group[0]!.source } },
        ],
      },
      scopeLogs: [
        {
          scope: { name: 'bench' },
          logRecords: group.map((event) => ({
            timeUnixNano: nanosOf(event).toString(),
            severityNumber: 9,
            severityText: 'INFO',
            body: { stringValue: String(event.payload!.message) },
            attributes: [
              { key: 'event.id', value: { stringValue: event.event_id } },
              { key: 'request_ms', value: { intValue: String(event.payload!.request_ms) } },
              { key: 'path', value: { stringValue: String(event.payload!.path) } },
              { key: 'status', value: { intValue: String(event.payload!.status) } },
            ],
          })),
        },
      ],
    })),
  };
}

/**
 * The request that carries bench events `first .. first+count-1` of `prefix` in `protocol`.
 * The same (prefix, range) is the same records in every protocol; the mapping makes their
 * event_ids differ (a digest, a label set), which does not matter for a throughput figure.
 */
export function protocolRequest(protocol: BenchProtocol, prefix: string, first: number, count: number): ProtocolRequest {
  const events = Array.from({ length: count }, (_, i) => benchEvent(prefix, first + i));
  switch (protocol) {
    case 'publish':
      return { path: '/publish', contentType: 'application/json', body: JSON.stringify({ events }) };
    case 'ndjson':
      return { path: '/publish', contentType: 'application/x-ndjson', body: `${events.map((e) => JSON.stringify(e)).join('\n')}\n` };
    case 'otlp-json':
      return { path: '/v1/logs', contentType: 'application/json', body: JSON.stringify(otlpRequest(events)) };
    case 'otlp-protobuf': {
      const message = ExportLogsServiceRequest.fromObject(otlpRequest(events));
      return {
        path: '/v1/logs',
        contentType: 'application/x-protobuf',
        body: Buffer.from(ExportLogsServiceRequest.encode(message).finish()),
      };
    }
    case 'loki-json': {
      const streams = [...byTopic(events)].map(([topic, group]) => ({
        stream: { job: topic, host: group[0]!.source },
        values: group.map((event) => [nanosOf(event).toString(), JSON.stringify({ id: event.event_id, ...event.payload })]),
      }));
      return { path: '/loki/api/v1/push', contentType: 'application/json', body: JSON.stringify({ streams }) };
    }
    case 'loki-protobuf': {
      const streams = [...byTopic(events)].map(([topic, group]) => ({
        labels: `{job="${topic}", host="${group[0]!.source}"}`,
        entries: group.map((event) => ({ nanos: nanosOf(event), line: JSON.stringify({ id: event.event_id, ...event.payload }) })),
      }));
      return { path: '/loki/api/v1/push', contentType: 'application/x-protobuf', body: encodeLokiProtobuf(streams) };
    }
    case 'elastic-bulk': {
      const lines = events.map(
        (event) =>
          `${JSON.stringify({ create: { _index: event.topic, _id: event.event_id } })}\n${JSON.stringify({ '@timestamp': event.timestamp, host: { name: event.source }, ...event.payload })}\n`,
      );
      return { path: '/_bulk', contentType: 'application/x-ndjson', body: lines.join('') };
    }
  }
}
