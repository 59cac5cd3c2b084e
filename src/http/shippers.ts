import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import { numberNotKeptError } from '../protocols/json-text';
import type { PublishOutcome, ValidEvent } from '../ingest/aggregator';
import type { Pipeline } from '../ingest/pipeline';
import { decodeUtf8, isRejected, type MappedRecords, type ProtocolName } from '../protocols/common';
import { bulkResponse, decodeBulk, type BulkOutcome } from '../protocols/elastic-bulk';
import { decodeLokiJson, decodeLokiProtobuf } from '../protocols/loki';
import { decodeOtlpJson, decodeOtlpProtobuf, encodeOtlpResponse, otlpResponse } from '../protocols/otlp';
import type { LogEvent } from '../wal/record';
import { checkEachEvent, INGEST_ERRORS, parsePublishBody } from './publish';
import type { RouteSpec } from './routes';
import type { Validators } from './schemas';
import { jsonAnswer, type JsonObject } from './api-schemas';

/** The limits and mapping settings the shippers' routes take from the configuration. */
export type ShipperLimits = Pick<
  Config,
  'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax' | 'otlpTopicDefault' | 'lokiTopicLabels' | 'lokiTopicDefault'
>;

/** The shipper settings when the caller gives none (tests building an app from a few limits), as loadConfig defaults them. */
export const SHIPPER_DEFAULTS: Pick<ShipperLimits, 'otlpTopicDefault' | 'lokiTopicLabels' | 'lokiTopicDefault'> = {
  otlpTopicDefault: 'otlp',
  lokiTopicLabels: ['topic', 'service_name', 'job'],
  lokiTopicDefault: 'loki',
};

/** Events per protocol and outcome, left in `res.locals` for the metrics middleware. */
export interface ProtocolCounts {
  protocol: ProtocolName;
  accepted: number;
  duplicates: number;
  rejected: number;
}

/** Most rejected Loki entries listed in one 400 answer's details (as /publish lists problems). */
const DETAILS_MAX = 100;

/** Most per-record reasons quoted in one OTLP errorMessage; the rest are counted. */
const REASONS_QUOTED_MAX = 5;

/** The outcome of one record: published (accepted or duplicate), or rejected alone with its reason. */
export type RecordOutcome = PublishOutcome | { rejected: string };

/**
 * Validates each mapped record like a /publish event and publishes the valid ones in one
 * Aggregator.publish call (answered after fsync, exact dedup, 503 when writes cannot be
 * accepted); returns one outcome per record in order. Records rejected here are not written.
 */
export async function publishEachRecord(
  aggregator: Pipeline,
  mapped: MappedRecords,
  validators: Validators,
  limits: ShipperLimits,
): Promise<RecordOutcome[]> {
  const outcomes: Array<RecordOutcome | null> = [];
  const slots: Array<LogEvent | null> = mapped.records.map((slot) => {
    if (isRejected(slot)) {
      outcomes.push({ rejected: slot.rejected });
      return null;
    }
    outcomes.push(null);
    return slot;
  });
  const candidates = slots.filter((slot): slot is LogEvent => slot !== null);
  const checked = checkEachEvent(candidates, validators, limits);
  const valid: ValidEvent[] = [];
  const positions: number[] = [];
  let next = 0;
  slots.forEach((slot, position) => {
    if (slot === null) return;
    const result = checked[next]!;
    next += 1;
    if ('problems' in result) {
      outcomes[position] = { rejected: result.problems.map((p) => `${p.path} ${p.message}`).join('; ') };
    } else {
      valid.push(result);
      positions.push(position);
    }
  });
  if (valid.length > 0) {
    const published = await aggregator.publish(valid);
    published.results.forEach((outcome, i) => (outcomes[positions[i]!] = outcome));
  }
  return outcomes as RecordOutcome[];
}

function countOutcomes(protocol: ProtocolName, outcomes: RecordOutcome[]): ProtocolCounts {
  const counts: ProtocolCounts = { protocol, accepted: 0, duplicates: 0, rejected: 0 };
  for (const outcome of outcomes) {
    if ('rejected' in outcome) counts.rejected += 1;
    else if (outcome.status === 'accepted') counts.accepted += 1;
    else counts.duplicates += 1;
  }
  return counts;
}

function bodyOf(req: Request, what: string): Buffer {
  if (!Buffer.isBuffer(req.body) || req.body.length === 0) throw new AppError('invalid_json', `the body is empty; send ${what}`);
  return req.body;
}

/** Parses a protocol's JSON body: strict UTF-8, and every number kept as sent (400 number_not_kept), as /publish does. */
function parseJsonBody(body: Buffer, what: string): unknown {
  const text = decodeUtf8(body, what);
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError('invalid_json', `${what} is not valid JSON: ${(err as Error).message}`);
  }
  const notKept = numberNotKeptError(text, what);
  if (notKept !== null) throw notKept;
  return value;
}

/** The media type of a request, lowercased, without parameters. */
function mediaType(req: Request): string {
  return (req.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

const PROTOBUF_TYPES = new Set(['application/x-protobuf', 'application/protobuf']);

/**
 * POST /v1/logs (OTLP/HTTP): protobuf or JSON ExportLogsServiceRequest, answered in the
 * request's encoding with ExportLogsServiceResponse; records the service cannot store are
 * reported in partialSuccess (and written nowhere), the others are stored.
 */
export function otlpLogsHandler(aggregator: Pipeline, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const type = mediaType(req);
    const protobuf = PROTOBUF_TYPES.has(type);
    if (!protobuf && type !== 'application/json') {
      throw new AppError(
        'unsupported_media_type',
        `Content-Type must be application/x-protobuf or application/json, got ${JSON.stringify(req.get('content-type') ?? '(none)')}`,
      );
    }
    const body = bodyOf(req, 'an ExportLogsServiceRequest');
    const settings = { topicDefault: limits.otlpTopicDefault, depthMax: limits.payloadDepthMax, nowIso: new Date().toISOString() };
    const mapped = protobuf
      ? decodeOtlpProtobuf(body, settings, limits.batchEventsMax)
      : decodeOtlpJson(parseJsonBody(body, 'the OTLP JSON body'), settings, limits.batchEventsMax);
    const outcomes = await publishEachRecord(aggregator, mapped, validators, limits);
    const counts = countOutcomes('otlp', outcomes);
    res.locals.protocolCounts = counts;
    const reasons: string[] = [];
    outcomes.forEach((outcome, i) => {
      if ('rejected' in outcome && reasons.length < REASONS_QUOTED_MAX) reasons.push(`record ${i}: ${outcome.rejected}`);
    });
    if (counts.rejected > reasons.length) reasons.push(`and ${counts.rejected - reasons.length} more`);
    const message = reasons.join('; ');
    if (protobuf) res.status(200).type('application/x-protobuf').send(encodeOtlpResponse(counts.rejected, message));
    else res.status(200).json(otlpResponse(counts.rejected, message));
  };
}

/**
 * POST /loki/api/v1/push: snappy-compressed protobuf (promtail, Alloy) or JSON; 204 as
 * Loki answers once every entry is durable. A bad entry rejects the whole push (400).
 */
export function lokiPushHandler(aggregator: Pipeline, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const type = mediaType(req);
    const settings = { topicLabels: limits.lokiTopicLabels, topicDefault: limits.lokiTopicDefault };
    let mapped: MappedRecords;
    if (type === 'application/json') {
      mapped = decodeLokiJson(parseJsonBody(bodyOf(req, 'a Loki push'), 'the Loki JSON body'), settings, limits.batchEventsMax);
    } else if (PROTOBUF_TYPES.has(type) || type === '') {
      mapped = decodeLokiProtobuf(bodyOf(req, 'a Loki push'), settings, limits.batchEventsMax, limits.bodyBytesMax);
    } else {
      throw new AppError(
        'unsupported_media_type',
        `Content-Type must be application/x-protobuf (snappy) or application/json, got ${JSON.stringify(req.get('content-type'))}`,
      );
    }
    const rejected = mapped.records
      .map((slot, index) => (isRejected(slot) ? { index, path: `entry ${index}`, message: slot.rejected } : null))
      .filter((d) => d !== null);
    if (rejected.length > 0)
      throw new AppError('validation_failed', `${rejected.length} entries cannot be stored; nothing was written`, {
        details: rejected.slice(0, DETAILS_MAX),
      });
    const events = parsePublishBody({ events: mapped.records }, validators, limits);
    const result = await aggregator.publish(events);
    res.locals.protocolCounts = {
      protocol: 'loki',
      accepted: result.accepted,
      duplicates: result.duplicates,
      rejected: 0,
    } satisfies ProtocolCounts;
    res.status(204).end();
  };
}

/** The header every answer of the bulk routes carries: the official clients refuse a 2xx without it. */
export const ELASTIC_PRODUCT_HEADER = ['X-Elastic-Product', 'Elasticsearch'] as const;

const BULK_TYPES = /^application\/(?:x-ndjson|json|vnd\.elasticsearch\+x-ndjson|vnd\.elasticsearch\+json)$/;

/**
 * POST /_bulk and /<index>/_bulk: create and index actions stored as events in their
 * index's topic; the answer is Elasticsearch's bulk response, a per-item error for what
 * cannot be stored, 409 for a `create` whose _id exists (a duplicate).
 */
export function elasticBulkHandler(aggregator: Pipeline, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const started = performance.now();
    res.set(...ELASTIC_PRODUCT_HEADER);
    if (!BULK_TYPES.test(mediaType(req))) {
      throw new AppError(
        'unsupported_media_type',
        `Content-Type must be application/x-ndjson or application/json, got ${JSON.stringify(req.get('content-type') ?? '(none)')}`,
      );
    }
    const urlIndex = typeof req.params.index === 'string' ? req.params.index : null;
    const actions = decodeBulk(
      decodeUtf8(bodyOf(req, 'bulk action/source lines'), 'the bulk body'),
      urlIndex,
      limits.batchEventsMax,
      new Date().toISOString(),
    );
    const mapped: MappedRecords = { records: actions.map((action) => ('error' in action.slot ? { rejected: '' } : action.slot)) };
    const outcomes = await publishEachRecord(aggregator, mapped, validators, limits);
    const bulkOutcomes: BulkOutcome[] = outcomes.map((outcome, i) => {
      const slot = actions[i]!.slot;
      if ('error' in slot) return { error: slot.error };
      if ('rejected' in outcome) return { error: { status: 400, type: 'document_parsing_exception', reason: outcome.rejected } };
      return outcome;
    });
    res.locals.protocolCounts = countOutcomes('elastic', outcomes);
    res.status(200).json(bulkResponse(actions, bulkOutcomes, performance.now() - started));
  };
}

/** Marks the elastic routes' error answers too, so a client reports our error rather than "not Elasticsearch". */
export function elasticProductHeader(): RequestHandler {
  return (_req, res: Response, next) => {
    res.set(...ELASTIC_PRODUCT_HEADER);
    next();
  };
}

/**
 * The answer to GET / for an Elasticsearch client's probe: the banner Logstash, Vector and
 * Beats read the version from (8.x: bulk without _type). Nothing else of the cluster API is
 * emulated. `next()` for any other request, so the page at / can follow in the same entry.
 */
export function elasticBannerHandler(): RequestHandler {
  return (req, res, next) => {
    if (!wantsElasticBanner(req)) {
      next();
      return;
    }
    res
      .set(...ELASTIC_PRODUCT_HEADER)
      .status(200)
      .json(ELASTIC_BANNER);
  };
}

/** True unless the request asks for HTML by name (a browser): clients probing an Elasticsearch node send JSON Accepts or none. */
export function wantsElasticBanner(req: Request): boolean {
  const accept = req.get('accept') ?? '';
  return !/\btext\/html\b/i.test(accept);
}

/** The banner GET / answers an Elasticsearch client with. */
export const ELASTIC_BANNER = {
  name: 'log-aggregator',
  cluster_name: 'log-aggregator',
  cluster_uuid: 'log-aggregator',
  version: {
    number: '8.17.0',
    build_flavor: 'default',
    build_type: 'log-aggregator',
    lucene_version: '9.12.0',
    minimum_wire_compatibility_version: '7.17.0',
    minimum_index_compatibility_version: '7.0.0',
  },
  tagline: 'You Know, for Search',
} as const;

/** The raw body of a shipper's route: inflated from gzip/deflate/br, bounded by BODY_BYTES_MAX after inflation (413). */
function rawBody(limits: Pick<ShipperLimits, 'bodyBytesMax'>): RequestHandler {
  return express.raw({ limit: limits.bodyBytesMax, type: () => true });
}

function withDefaults(limits: Omit<ShipperLimits, keyof typeof SHIPPER_DEFAULTS> & Partial<ShipperLimits>): ShipperLimits {
  return { ...SHIPPER_DEFAULTS, ...limits };
}

const OTLP_RESPONSE_SCHEMA: JsonObject = {
  type: 'object',
  description: 'ExportLogsServiceResponse (OTLP JSON encoding); empty when every record was stored.',
  properties: {
    partialSuccess: {
      type: 'object',
      required: ['rejectedLogRecords', 'errorMessage'],
      properties: {
        rejectedLogRecords: { type: 'string', description: 'Records not stored (int64 as a decimal string).' },
        errorMessage: { type: 'string', description: 'The first reasons, by record position.' },
      },
    },
  },
};

const BULK_RESPONSE_SCHEMA: JsonObject = {
  type: 'object',
  required: ['took', 'errors', 'items'],
  properties: {
    took: { type: 'integer', minimum: 0 },
    errors: { type: 'boolean', description: 'True when an item has status 400 or more.' },
    items: {
      type: 'array',
      description: 'One per action, in order: {"create"|"index"|...: {_index, _id, status, result | error}}.',
      items: { type: 'object', minProperties: 1, maxProperties: 1 },
    },
  },
};

const EXAMPLE_OTLP = {
  resourceLogs: [
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
      scopeLogs: [
        {
          scope: { name: 'checkout-lib' },
          logRecords: [
            {
              timeUnixNano: '1761213600123456789',
              severityNumber: 9,
              severityText: 'INFO',
              body: { stringValue: 'order 42 shipped' },
              attributes: [{ key: 'order.id', value: { intValue: '42' } }],
            },
          ],
        },
      ],
    },
  ],
};

/** The shippers' routes, as entries of the route table (src/http/routes.ts spreads them in). */
export const SHIPPER_ROUTES: readonly RouteSpec[] = [
  {
    method: 'POST',
    path: '/v1/logs',
    scope: 'publish',
    logging: 'ingest',
    operationId: 'otlpExportLogs',
    summary: 'OTLP/HTTP logs: ExportLogsServiceRequest in protobuf or JSON',
    description: (limits) =>
      `OpenTelemetry logs as the OTLP/HTTP exporters send them (application/x-protobuf or application/json, gzip ` +
      `accepted). Each log record becomes one event: topic from the resource's service.name, event_id from the ` +
      `log.record.uid attribute or a digest of the record, so a re-exported batch is a duplicate (see docs/shippers.md). ` +
      `Answered in the request's encoding after every stored record is fsynced; records that cannot be stored are ` +
      `counted in partialSuccess. At most ${limits.batchEventsMax} records and ${limits.bodyBytesMax} bytes after inflation.`,
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { type: 'object', description: 'ExportLogsServiceRequest, OTLP JSON encoding.' } },
        'application/x-protobuf': { schema: { type: 'string', format: 'binary', description: 'ExportLogsServiceRequest, protobuf.' } },
      },
    },
    answers: {
      '200': {
        description: 'Every stored record is durable; rejected ones are counted in partialSuccess.',
        content: {
          'application/json': { schema: OTLP_RESPONSE_SCHEMA },
          'application/x-protobuf': { schema: { type: 'string', format: 'binary', description: 'ExportLogsServiceResponse, protobuf.' } },
        },
      },
    },
    errors: [...INGEST_ERRORS, 'invalid_protobuf'],
    examples: [{ name: 'oneRecord', summary: 'One record of the checkout service', body: EXAMPLE_OTLP, status: 200, answer: {} }],
    handlers: ({ aggregator, validators, limits }) => [rawBody(limits), otlpLogsHandler(aggregator, validators, withDefaults(limits))],
  },
  {
    method: 'POST',
    path: '/loki/api/v1/push',
    scope: 'publish',
    logging: 'ingest',
    operationId: 'lokiPush',
    summary: 'Loki push: snappy-compressed protobuf PushRequest or JSON',
    description: (limits) =>
      `Loki's push API as promtail, Grafana Alloy and the Loki clients send it. Each entry of each stream becomes one ` +
      `event: topic from a stream label (LOKI_TOPIC_LABELS), event_id a digest of (labels, timestamp, line), so a ` +
      `re-sent push is a duplicate. 204 once every entry is fsynced; one bad entry rejects the push. At most ` +
      `${limits.batchEventsMax} entries and ${limits.bodyBytesMax} bytes after decompression.`,
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { type: 'object', required: ['streams'], properties: { streams: { type: 'array' } } } },
        'application/x-protobuf': {
          schema: { type: 'string', format: 'binary', description: 'PushRequest, protobuf, snappy block format.' },
        },
      },
    },
    answers: { '204': { description: 'Every entry is durable.' } },
    errors: [...INGEST_ERRORS, 'invalid_protobuf', 'invalid_snappy'],
    examples: [
      {
        name: 'oneEntry',
        summary: 'One line of the job "checkout"',
        body: { streams: [{ stream: { job: 'checkout', host: 'web-1' }, values: [['1761213600123456789', 'order 42 shipped']] }] },
        status: 204,
      },
    ],
    handlers: ({ aggregator, validators, limits }) => [rawBody(limits), lokiPushHandler(aggregator, validators, withDefaults(limits))],
  },
  ...(['/_bulk', '/:index/_bulk'] as const).map((path): RouteSpec => ({
    method: 'POST',
    path,
    scope: 'publish',
    logging: 'ingest',
    operationId: path === '/_bulk' ? 'elasticBulk' : 'elasticIndexBulk',
    summary: path === '/_bulk' ? 'Elasticsearch bulk: create/index actions' : 'Elasticsearch bulk into one index: create/index actions',
    description: (limits) =>
      `The subset of the Elasticsearch bulk API that log shippers use: NDJSON action/source pairs, create and index. ` +
      `Each document becomes one event in the topic named by its index, event_id from _id (else a digest of the ` +
      `source). The answer is the bulk response; a create whose _id exists is item status 409 ` +
      `version_conflict_engine_exception (a duplicate), an index whose _id exists 200 noop. Every answer carries ` +
      `X-Elastic-Product: Elasticsearch. At most ${limits.batchEventsMax} actions and ${limits.bodyBytesMax} bytes after inflation.`,
    requestBody: {
      required: true,
      content: { 'application/x-ndjson': { schema: { type: 'string', description: 'Action and source lines.' } } },
    },
    answers: { '200': jsonAnswer(BULK_RESPONSE_SCHEMA, 'One item per action; stored documents are durable.') },
    errors: INGEST_ERRORS,
    examples: [
      {
        name: 'create',
        summary: 'One document created with its _id',
        body: '{"create":{"_index":"access-logs","_id":"req-1"}}\n{"@timestamp":"2025-10-23T10:00:00Z","message":"GET /"}\n',
        status: 200,
        answer: {
          took: 2,
          errors: false,
          items: [
            {
              create: {
                _index: 'access-logs',
                _id: 'req-1',
                _version: 1,
                result: 'created',
                _shards: { total: 1, successful: 1, failed: 0 },
                _seq_no: 1,
                _primary_term: 1,
                status: 201,
              },
            },
          ],
        },
      },
    ],
    handlers: ({ aggregator, validators, limits }) => [
      elasticProductHeader(),
      rawBody(limits),
      elasticBulkHandler(aggregator, validators, withDefaults(limits)),
    ],
  })),
];
