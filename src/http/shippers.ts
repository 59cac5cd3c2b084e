import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import type { Aggregator, PublishOutcome, ValidEvent } from '../ingest/aggregator';
import { decodeUtf8, isRejected, type MappedRecords, type ProtocolName } from '../protocols/common';
import { bulkResponse, decodeBulk, type BulkOutcome } from '../protocols/elastic-bulk';
import { decodeLokiJson, decodeLokiProtobuf } from '../protocols/loki';
import { decodeOtlpJson, decodeOtlpProtobuf, encodeOtlpResponse, otlpResponse } from '../protocols/otlp';
import type { LogEvent } from '../wal/record';
import { checkEachEvent, parsePublishBody } from './publish';
import type { Validators } from './schemas';

/** The limits and mapping settings the shippers' routes take from the configuration. */
export type ShipperLimits = Pick<Config, 'bodyBytesMax' | 'batchEventsMax' | 'payloadBytesMax' | 'payloadDepthMax' | 'otlpTopicDefault' | 'lokiTopicLabels' | 'lokiTopicDefault'>;

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

/** Most per-record reasons quoted in one OTLP errorMessage; the rest are counted. */
const REASONS_QUOTED_MAX = 5;

/** The outcome of one record: published (accepted or duplicate), or rejected alone with its reason. */
export type RecordOutcome = PublishOutcome | { rejected: string };

/**
 * Validates each mapped record like a /publish event and publishes the valid ones in one
 * Aggregator.publish call (answered after fsync, exact dedup, 503 when writes cannot be
 * accepted); returns one outcome per record in order. Records rejected here are not written.
 */
export async function publishEachRecord(aggregator: Aggregator, mapped: MappedRecords, validators: Validators, limits: ShipperLimits): Promise<RecordOutcome[]> {
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

function parseJsonBody(body: Buffer, what: string): unknown {
  const text = decodeUtf8(body, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError('invalid_json', `${what} is not valid JSON: ${(err as Error).message}`);
  }
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
export function otlpLogsHandler(aggregator: Aggregator, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const type = mediaType(req);
    const protobuf = PROTOBUF_TYPES.has(type);
    if (!protobuf && type !== 'application/json') {
      throw new AppError('unsupported_media_type', `Content-Type must be application/x-protobuf or application/json, got ${JSON.stringify(req.get('content-type') ?? '(none)')}`);
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
export function lokiPushHandler(aggregator: Aggregator, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const type = mediaType(req);
    const settings = { topicLabels: limits.lokiTopicLabels, topicDefault: limits.lokiTopicDefault };
    let mapped: MappedRecords;
    if (type === 'application/json') {
      mapped = decodeLokiJson(parseJsonBody(bodyOf(req, 'a Loki push'), 'the Loki JSON body'), settings, limits.batchEventsMax);
    } else if (PROTOBUF_TYPES.has(type) || type === '') {
      mapped = decodeLokiProtobuf(bodyOf(req, 'a Loki push'), settings, limits.batchEventsMax, limits.bodyBytesMax);
    } else {
      throw new AppError('unsupported_media_type', `Content-Type must be application/x-protobuf (snappy) or application/json, got ${JSON.stringify(req.get('content-type'))}`);
    }
    const rejected = mapped.records.map((slot, index) => (isRejected(slot) ? { index, path: `entry ${index}`, message: slot.rejected } : null)).filter((d) => d !== null);
    if (rejected.length > 0) throw new AppError('validation_failed', `${rejected.length} entries cannot be stored; nothing was written`, { details: rejected.slice(0, 100) });
    const events = parsePublishBody({ events: mapped.records }, validators, limits);
    const result = await aggregator.publish(events);
    res.locals.protocolCounts = { protocol: 'loki', accepted: result.accepted, duplicates: result.duplicates, rejected: 0 } satisfies ProtocolCounts;
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
export function elasticBulkHandler(aggregator: Aggregator, validators: Validators, limits: ShipperLimits): RequestHandler {
  return async (req, res) => {
    const started = performance.now();
    res.set(...ELASTIC_PRODUCT_HEADER);
    if (!BULK_TYPES.test(mediaType(req))) {
      throw new AppError('unsupported_media_type', `Content-Type must be application/x-ndjson or application/json, got ${JSON.stringify(req.get('content-type') ?? '(none)')}`);
    }
    const urlIndex = typeof req.params.index === 'string' ? req.params.index : null;
    const actions = decodeBulk(decodeUtf8(bodyOf(req, 'bulk action/source lines'), 'the bulk body'), urlIndex, limits.batchEventsMax, new Date().toISOString());
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

/** The paths of the shippers' routes, as ROUTES lists them (the bulk route with an index is matched by pattern). */
export const SHIPPER_ROUTES: Record<string, string[]> = {
  '/v1/logs': ['POST'],
  '/loki/api/v1/push': ['POST'],
  '/_bulk': ['POST'],
  '/:index/_bulk': ['POST'],
};

/**
 * The shippers' routes with their body parsers: raw bytes, inflated from gzip/deflate/br
 * and bounded by BODY_BYTES_MAX after inflation (413 body_too_large), as /publish's body.
 */
export function shippersRouter(aggregator: Aggregator, validators: Validators, limits: ShipperLimits): Router {
  const router = Router();
  const raw = express.raw({ limit: limits.bodyBytesMax, type: () => true });
  router.post('/v1/logs', raw, otlpLogsHandler(aggregator, validators, limits));
  router.post('/loki/api/v1/push', raw, lokiPushHandler(aggregator, validators, limits));
  router.post('/_bulk', elasticProductHeader(), raw, elasticBulkHandler(aggregator, validators, limits));
  router.post('/:index/_bulk', elasticProductHeader(), raw, elasticBulkHandler(aggregator, validators, limits));
  return router;
}
