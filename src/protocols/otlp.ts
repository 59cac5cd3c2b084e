import { AppError } from '../errors';
import type { LogEvent } from '../wal/record';
import { digestJsonParts, isoFromNanos, parseNanos, setOwn, type MappedRecords } from './common';
import { ExportLogsServiceRequest, ExportLogsServiceResponse } from './otlp-schema';

/**
 * OTLP/HTTP logs (POST /v1/logs): ExportLogsServiceRequest in protobuf or in the OTLP JSON
 * encoding, mapped to events. Both encodings are first brought to one canonical form (the
 * JSON encoding's shape, int64 as decimal strings, bytes as base64, ids as lowercase hex), so
 * the same record gets the same event_id whichever encoding carried it.
 */

/** An AnyValue in canonical form: exactly one key, as in the OTLP JSON encoding; `{}` is an empty value. */
export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number | string }
  | { bytesValue: string }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } }
  | Record<string, never>;

/** One attribute in canonical form. */
export interface KeyValue {
  key: string;
  value: AnyValue;
}

/** One log record in canonical form. */
export interface OtlpLogRecord {
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: AnyValue | null;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
  traceId: string;
  spanId: string;
  eventName: string;
}

/** How records become events where the record itself does not say. */
export interface OtlpMappingSettings {
  /** Topic of records whose resource has no `service.name` (OTLP_TOPIC_DEFAULT). */
  topicDefault: string;
  /** Deepest AnyValue nesting converted; deeper records are rejected (the payload bound is checked later anyway). */
  depthMax: number;
  /** The acceptance time, for records with neither timeUnixNano nor observedTimeUnixNano. */
  nowIso: string;
}

/** Source when the resource names no instance, host or service. */
const SOURCE_DEFAULT = 'otlp';
/** The semantic-conventions attribute that carries a record's unique id. */
const RECORD_UID_ATTRIBUTE = 'log.record.uid';

/** A problem with one record (or with everything under one resource/scope): the records are rejected, not the request. */
class RecordProblem extends Error {}

// ---------------------------------------------------------------- canonical form from JSON

function jsonProblem(path: string, expected: string): RecordProblem {
  return new RecordProblem(`${path} must be ${expected}`);
}

function jsonString(value: unknown, path: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw jsonProblem(path, 'a string');
  return value;
}

function jsonUint(value: unknown, path: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff) return value;
  if (typeof value === 'string' && /^\d{1,10}$/.test(value) && Number(value) <= 0xffff_ffff) return Number(value);
  throw jsonProblem(path, 'a whole number from 0 to 4294967295');
}

function jsonNanos(value: unknown, path: string): bigint {
  if (value === undefined || value === null) return 0n;
  const nanos = parseNanos(value);
  if (nanos === null) throw jsonProblem(path, 'nanoseconds as a decimal string (a uint64)');
  return nanos;
}

function jsonHexId(value: unknown, path: string): string {
  const text = jsonString(value, path);
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw jsonProblem(path, 'hex bytes');
  return text.toLowerCase();
}

function jsonList(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw jsonProblem(path, 'an array');
  return value;
}

function jsonObject(value: unknown, path: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw jsonProblem(path, 'an object');
  return value as Record<string, unknown>;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function jsonAnyValue(raw: unknown, path: string, depth: number, depthMax: number): AnyValue {
  if (depth > depthMax) throw new RecordProblem(`${path} nests deeper than ${depthMax} levels`);
  const value = jsonObject(raw, path);
  if (value.stringValue !== undefined) return { stringValue: jsonString(value.stringValue, `${path}.stringValue`) };
  if (value.boolValue !== undefined) {
    if (typeof value.boolValue !== 'boolean') throw jsonProblem(`${path}.boolValue`, 'true or false');
    return { boolValue: value.boolValue };
  }
  if (value.intValue !== undefined) {
    const int = value.intValue;
    const text = typeof int === 'number' && Number.isSafeInteger(int) ? String(int) : int;
    if (typeof text !== 'string' || !/^-?\d{1,19}$/.test(text) || BigInt(text) < INT64_MIN || BigInt(text) > INT64_MAX) {
      throw jsonProblem(`${path}.intValue`, 'an int64 (a decimal string or a safe integer)');
    }
    return { intValue: BigInt(text).toString() };
  }
  if (value.doubleValue !== undefined) {
    const double = value.doubleValue;
    if (typeof double === 'number') return { doubleValue: canonicalDouble(double) };
    if (double === 'NaN' || double === 'Infinity' || double === '-Infinity') return { doubleValue: double };
    throw jsonProblem(`${path}.doubleValue`, 'a number, "NaN", "Infinity" or "-Infinity"');
  }
  if (value.bytesValue !== undefined) {
    const text = jsonString(value.bytesValue, `${path}.bytesValue`);
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw jsonProblem(`${path}.bytesValue`, 'base64');
    return { bytesValue: Buffer.from(text, 'base64').toString('base64') };
  }
  if (value.arrayValue !== undefined) {
    const list = jsonList(jsonObject(value.arrayValue, `${path}.arrayValue`).values, `${path}.arrayValue.values`);
    return { arrayValue: { values: list.map((item, i) => jsonAnyValue(item, `${path}.arrayValue.values[${i}]`, depth + 1, depthMax)) } };
  }
  if (value.kvlistValue !== undefined) {
    const list = jsonList(jsonObject(value.kvlistValue, `${path}.kvlistValue`).values, `${path}.kvlistValue.values`);
    return { kvlistValue: { values: jsonKeyValues(list, `${path}.kvlistValue.values`, depth + 1, depthMax) } };
  }
  return {};
}

function jsonKeyValues(list: unknown[], path: string, depth: number, depthMax: number): KeyValue[] {
  return list.map((raw, i) => {
    const kv = jsonObject(raw, `${path}[${i}]`);
    return { key: jsonString(kv.key, `${path}[${i}].key`), value: jsonAnyValue(kv.value, `${path}[${i}].value`, depth, depthMax) };
  });
}

function jsonRecord(raw: unknown, path: string, depthMax: number): OtlpLogRecord {
  const record = jsonObject(raw, path);
  const severity = record.severityNumber;
  if (
    severity !== undefined &&
    severity !== null &&
    !(typeof severity === 'number' && Number.isInteger(severity) && severity >= 0 && severity <= 24)
  ) {
    throw jsonProblem(`${path}.severityNumber`, 'a whole number from 0 to 24');
  }
  return {
    timeUnixNano: jsonNanos(record.timeUnixNano, `${path}.timeUnixNano`),
    observedTimeUnixNano: jsonNanos(record.observedTimeUnixNano, `${path}.observedTimeUnixNano`),
    severityNumber: severity ?? 0,
    severityText: jsonString(record.severityText, `${path}.severityText`),
    body: record.body === undefined || record.body === null ? null : jsonAnyValue(record.body, `${path}.body`, 1, depthMax),
    attributes: jsonKeyValues(jsonList(record.attributes, `${path}.attributes`), `${path}.attributes`, 1, depthMax),
    droppedAttributesCount: jsonUint(record.droppedAttributesCount, `${path}.droppedAttributesCount`),
    flags: jsonUint(record.flags, `${path}.flags`),
    traceId: jsonHexId(record.traceId, `${path}.traceId`),
    spanId: jsonHexId(record.spanId, `${path}.spanId`),
    eventName: jsonString(record.eventName, `${path}.eventName`),
  };
}

// ---------------------------------------------------------------- canonical form from protobuf

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unnecessary-condition -- protobufjs's reflection decode yields untyped messages (fields by name, Longs, optional everywhere); each field is cast where it is read */
/** A decoded protobufjs message: fields by camelCase name, 64-bit integers as Long, bytes as Uint8Array. */
type ProtoMessage = Record<string, any>;

function canonicalDouble(value: number): number | string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  // -0 and 0 are different doubles but the same JSON number: keep them apart.
  return Object.is(value, -0) ? '-0' : value;
}

function protoAnyValue(value: ProtoMessage | null | undefined, path: string, depth: number, depthMax: number): AnyValue {
  if (depth > depthMax) throw new RecordProblem(`${path} nests deeper than ${depthMax} levels`);
  if (value === null || value === undefined) return {};
  switch (value.value as string | undefined) {
    case 'stringValue':
      return { stringValue: value.stringValue as string };
    case 'boolValue':
      return { boolValue: value.boolValue as boolean };
    case 'intValue':
      return { intValue: protoInt64(value.intValue, true).toString() };
    case 'doubleValue':
      return { doubleValue: canonicalDouble(value.doubleValue as number) };
    case 'bytesValue':
      return { bytesValue: Buffer.from(value.bytesValue as Uint8Array).toString('base64') };
    case 'arrayValue':
      return {
        arrayValue: {
          values: ((value.arrayValue.values ?? []) as ProtoMessage[]).map((item, i) =>
            protoAnyValue(item, `${path}.arrayValue.values[${i}]`, depth + 1, depthMax),
          ),
        },
      };
    case 'kvlistValue':
      return { kvlistValue: { values: protoKeyValues(value.kvlistValue.values ?? [], `${path}.kvlistValue.values`, depth + 1, depthMax) } };
    default:
      return {};
  }
}

function protoKeyValues(list: ProtoMessage[], path: string, depth: number, depthMax: number): KeyValue[] {
  return list.map((kv, i) => ({ key: (kv.key as string) ?? '', value: protoAnyValue(kv.value, `${path}[${i}].value`, depth, depthMax) }));
}

/** A 64-bit integer as protobufjs decodes it (a Long of two 32-bit halves, or a number), as a BigInt; no decimal round trip. */
function protoInt64(value: unknown, signed: boolean): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'number') return BigInt(value);
  const { low, high } = value as { low: number; high: number };
  const bits = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  return signed ? BigInt.asIntN(64, bits) : bits;
}

function protoNanos(value: unknown): bigint {
  return protoInt64(value, false);
}

function protoRecord(record: ProtoMessage, path: string, depthMax: number): OtlpLogRecord {
  return {
    timeUnixNano: protoNanos(record.timeUnixNano),
    observedTimeUnixNano: protoNanos(record.observedTimeUnixNano),
    severityNumber: (record.severityNumber as number | undefined) ?? 0,
    severityText: (record.severityText as string | undefined) ?? '',
    body: record.body === undefined || record.body === null ? null : protoAnyValue(record.body, `${path}.body`, 1, depthMax),
    attributes: protoKeyValues(record.attributes ?? [], `${path}.attributes`, 1, depthMax),
    droppedAttributesCount: (record.droppedAttributesCount as number | undefined) ?? 0,
    flags: (record.flags as number | undefined) ?? 0,
    traceId: record.traceId === undefined ? '' : Buffer.from(record.traceId as Uint8Array).toString('hex'),
    spanId: record.spanId === undefined ? '' : Buffer.from(record.spanId as Uint8Array).toString('hex'),
    eventName: (record.eventName as string | undefined) ?? '',
  };
}

// ---------------------------------------------------------------- canonical form -> events

/** An AnyValue as plain JSON: int64 as a number when exact, else its decimal string; bytes as base64; empty as null. */
export function plainValue(value: AnyValue): unknown {
  if ('stringValue' in value) return value.stringValue;
  if ('boolValue' in value) return value.boolValue;
  if ('intValue' in value) {
    const number = Number(value.intValue);
    return Number.isSafeInteger(number) ? number : value.intValue;
  }
  if ('doubleValue' in value) return value.doubleValue === '-0' ? -0 : value.doubleValue;
  if ('bytesValue' in value) return value.bytesValue;
  if ('arrayValue' in value) return value.arrayValue.values.map(plainValue);
  if ('kvlistValue' in value) return plainAttributes(value.kvlistValue.values);
  return null;
}

/** Attributes as one JSON object, in their order; a repeated key keeps its last value. */
export function plainAttributes(list: KeyValue[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const { key, value } of list) setOwn(object, key, plainValue(value));
  return object;
}

function stringAttribute(list: KeyValue[], key: string): string | undefined {
  for (const kv of list) {
    if (kv.key === key && 'stringValue' in kv.value && kv.value.stringValue !== '') return kv.value.stringValue;
  }
  return undefined;
}

/** The part of a ResourceLogs or ScopeLogs that every record under it shares, mapped once. */
interface SharedContext {
  /** Canonical JSON of the resource or scope, part of each record's digest. */
  key: string;
  plain: Record<string, unknown>;
}

function resourceContext(attributes: KeyValue[], droppedAttributesCount: number): SharedContext & { attributes: KeyValue[] } {
  const plain: Record<string, unknown> = { attributes: plainAttributes(attributes) };
  if (droppedAttributesCount > 0) plain.dropped_attributes_count = droppedAttributesCount;
  return { key: JSON.stringify(attributes), plain, attributes };
}

function scopeContext(name: string, version: string, attributes: KeyValue[], droppedAttributesCount: number): SharedContext {
  const plain: Record<string, unknown> = {};
  if (name !== '') plain.name = name;
  if (version !== '') plain.version = version;
  plain.attributes = plainAttributes(attributes);
  if (droppedAttributesCount > 0) plain.dropped_attributes_count = droppedAttributesCount;
  return { key: JSON.stringify([name, version, attributes]), plain };
}

/**
 * The event_id of a record without `log.record.uid`: SHA-256 over its canonical resource,
 * scope, time (timeUnixNano, else observedTimeUnixNano), severity, body, attributes, trace
 * and span ids and event name. The observed time alone (set again by each collector) is left out.
 */
export function recordDigest(resourceKey: string, scopeKey: string, record: OtlpLogRecord): string {
  const nanos = record.timeUnixNano !== 0n ? record.timeUnixNano : record.observedTimeUnixNano;
  const own = [
    nanos.toString(),
    record.severityNumber,
    record.severityText,
    record.body,
    record.attributes,
    record.traceId,
    record.spanId,
    record.eventName,
  ];
  return digestJsonParts([resourceKey, scopeKey, JSON.stringify(own)]);
}

/** Maps one canonical record to an event (validated later with every other event). */
export function recordToEvent(
  resource: SharedContext & { attributes: KeyValue[] },
  scope: SharedContext,
  record: OtlpLogRecord,
  settings: OtlpMappingSettings,
): LogEvent | { rejected: string } {
  const serviceName = stringAttribute(resource.attributes, 'service.name');
  const source =
    stringAttribute(resource.attributes, 'service.instance.id') ??
    stringAttribute(resource.attributes, 'host.name') ??
    serviceName ??
    SOURCE_DEFAULT;
  const eventId = stringAttribute(record.attributes, RECORD_UID_ATTRIBUTE) ?? recordDigest(resource.key, scope.key, record);
  const nanos = record.timeUnixNano !== 0n ? record.timeUnixNano : record.observedTimeUnixNano;
  const timestamp = nanos === 0n ? settings.nowIso : isoFromNanos(nanos);
  if (timestamp === null) return { rejected: `timeUnixNano ${nanos} is past year 9999` };
  const payload: Record<string, unknown> = {};
  if (record.timeUnixNano !== 0n) payload.time_unix_nano = record.timeUnixNano.toString();
  if (record.observedTimeUnixNano !== 0n) payload.observed_time_unix_nano = record.observedTimeUnixNano.toString();
  if (record.severityNumber !== 0) payload.severity_number = record.severityNumber;
  if (record.severityText !== '') payload.severity_text = record.severityText;
  if (record.body !== null) payload.body = plainValue(record.body);
  payload.attributes = plainAttributes(record.attributes);
  if (record.droppedAttributesCount > 0) payload.dropped_attributes_count = record.droppedAttributesCount;
  if (record.eventName !== '') payload.event_name = record.eventName;
  if (record.traceId !== '') payload.trace_id = record.traceId;
  if (record.spanId !== '') payload.span_id = record.spanId;
  if (record.flags !== 0) payload.flags = record.flags;
  payload.resource = resource.plain;
  payload.scope = scope.plain;
  return { topic: serviceName ?? settings.topicDefault, event_id: eventId, timestamp, source, payload };
}

/** Runs `map` and turns a RecordProblem into a rejection of `count` records. */
function guarded<T>(map: () => T): T | { rejected: string } {
  try {
    return map();
  } catch (err) {
    if (err instanceof RecordProblem) return { rejected: err.message };
    throw err;
  }
}

/** Counts the records of a request before mapping any, so an oversized request costs no mapping. */
function countRecords(resourceLogs: Array<{ scopeLogs?: Array<{ logRecords?: unknown[] }> }>): number {
  let count = 0;
  for (const resource of resourceLogs) for (const scope of resource.scopeLogs ?? []) count += scope.logRecords?.length ?? 0;
  return count;
}

/**
 * Decodes an ExportLogsServiceRequest in protobuf and maps its records. Throws AppError 400
 * invalid_protobuf when the bytes are not that message, 413 batch_too_large over `recordsMax`.
 */
export function decodeOtlpProtobuf(body: Buffer, settings: OtlpMappingSettings, recordsMax: number): MappedRecords {
  let request: ProtoMessage;
  try {
    request = ExportLogsServiceRequest.decode(body);
  } catch (err) {
    throw new AppError('invalid_protobuf', `the body is not a protobuf ExportLogsServiceRequest: ${(err as Error).message}`);
  }
  const resourceLogs = (request.resourceLogs ?? []) as ProtoMessage[];
  checkCount(countRecords(resourceLogs), recordsMax);
  const records: MappedRecords['records'] = [];
  resourceLogs.forEach((resourceLog, r) => {
    const resourceMsg = (resourceLog.resource ?? {}) as ProtoMessage;
    const resource = guarded(() =>
      resourceContext(
        protoKeyValues(resourceMsg.attributes ?? [], `resourceLogs[${r}].resource.attributes`, 1, settings.depthMax),
        resourceMsg.droppedAttributesCount ?? 0,
      ),
    );
    ((resourceLog.scopeLogs ?? []) as ProtoMessage[]).forEach((scopeLog, s) => {
      const scopeMsg = (scopeLog.scope ?? {}) as ProtoMessage;
      const path = `resourceLogs[${r}].scopeLogs[${s}]`;
      const scope = guarded(() =>
        scopeContext(
          scopeMsg.name ?? '',
          scopeMsg.version ?? '',
          protoKeyValues(scopeMsg.attributes ?? [], `${path}.scope.attributes`, 1, settings.depthMax),
          scopeMsg.droppedAttributesCount ?? 0,
        ),
      );
      ((scopeLog.logRecords ?? []) as ProtoMessage[]).forEach((recordMsg, i) => {
        if ('rejected' in resource) return records.push(resource);
        if ('rejected' in scope) return records.push(scope);
        const record = guarded(() => protoRecord(recordMsg, `${path}.logRecords[${i}]`, settings.depthMax));
        return records.push('rejected' in record ? record : recordToEvent(resource, scope, record, settings));
      });
    });
  });
  return { records };
}
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unnecessary-condition */

/**
 * Maps a parsed OTLP JSON ExportLogsServiceRequest. A record (or resource/scope) with a
 * field of the wrong type is rejected alone; a body that is not such a request at all is
 * 400 validation_failed; over `recordsMax` records 413 batch_too_large.
 */
export function decodeOtlpJson(body: unknown, settings: OtlpMappingSettings, recordsMax: number): MappedRecords {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('validation_failed', 'the body must be an ExportLogsServiceRequest object', {
      details: [{ index: -1, path: '(root)', message: 'must be an object with resourceLogs' }],
    });
  }
  const list = (body as { resourceLogs?: unknown }).resourceLogs;
  if (list !== undefined && !Array.isArray(list)) {
    throw new AppError('validation_failed', 'resourceLogs must be an array', {
      details: [{ index: -1, path: 'resourceLogs', message: 'must be an array' }],
    });
  }
  const resourceLogs = (list ?? []) as unknown[];
  const shape = resourceLogs.map((resourceLog, r) => {
    const scopeLogs = guarded(() => jsonList(jsonObject(resourceLog, `resourceLogs[${r}]`).scopeLogs, `resourceLogs[${r}].scopeLogs`));
    if ('rejected' in scopeLogs) {
      throw new AppError('validation_failed', scopeLogs.rejected, {
        details: [{ index: -1, path: `resourceLogs[${r}]`, message: scopeLogs.rejected }],
      });
    }
    return scopeLogs.map((scopeLog, s) => {
      const logRecords = guarded(() =>
        jsonList(jsonObject(scopeLog, `resourceLogs[${r}].scopeLogs[${s}]`).logRecords, `resourceLogs[${r}].scopeLogs[${s}].logRecords`),
      );
      if ('rejected' in logRecords) {
        throw new AppError('validation_failed', logRecords.rejected, {
          details: [{ index: -1, path: `resourceLogs[${r}].scopeLogs[${s}]`, message: logRecords.rejected }],
        });
      }
      return { scope: (scopeLog as Record<string, unknown>).scope, logRecords };
    });
  });
  checkCount(
    shape.reduce((sum, scopes) => sum + scopes.reduce((n, scope) => n + scope.logRecords.length, 0), 0),
    recordsMax,
  );

  const records: MappedRecords['records'] = [];
  shape.forEach((scopes, r) => {
    const resource = guarded(() => {
      const raw = jsonObject((resourceLogs[r] as Record<string, unknown>).resource, `resourceLogs[${r}].resource`);
      const path = `resourceLogs[${r}].resource`;
      return resourceContext(
        jsonKeyValues(jsonList(raw.attributes, `${path}.attributes`), `${path}.attributes`, 1, settings.depthMax),
        jsonUint(raw.droppedAttributesCount, `${path}.droppedAttributesCount`),
      );
    });
    scopes.forEach(({ scope: rawScope, logRecords }, s) => {
      const path = `resourceLogs[${r}].scopeLogs[${s}]`;
      const scope = guarded(() => {
        const raw = jsonObject(rawScope, `${path}.scope`);
        const attributes = jsonKeyValues(
          jsonList(raw.attributes, `${path}.scope.attributes`),
          `${path}.scope.attributes`,
          1,
          settings.depthMax,
        );
        return scopeContext(
          jsonString(raw.name, `${path}.scope.name`),
          jsonString(raw.version, `${path}.scope.version`),
          attributes,
          jsonUint(raw.droppedAttributesCount, `${path}.scope.droppedAttributesCount`),
        );
      });
      logRecords.forEach((raw, i) => {
        if ('rejected' in resource) return records.push(resource);
        if ('rejected' in scope) return records.push(scope);
        const record = guarded(() => jsonRecord(raw, `${path}.logRecords[${i}]`, settings.depthMax));
        return records.push('rejected' in record ? record : recordToEvent(resource, scope, record, settings));
      });
    });
  });
  return { records };
}

function checkCount(count: number, recordsMax: number): void {
  if (count > recordsMax) throw new AppError('batch_too_large', `request of ${count} log records is over BATCH_EVENTS_MAX=${recordsMax}`);
}

/** The ExportLogsServiceResponse: empty when everything was taken, else partialSuccess with the count and the first reasons. */
export function otlpResponse(rejected: number, message: string): { partialSuccess?: { rejectedLogRecords: string; errorMessage: string } } {
  return rejected === 0 ? {} : { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage: message } };
}

/** The same answer as protobuf bytes. */
export function encodeOtlpResponse(rejected: number, message: string): Buffer {
  const body = rejected === 0 ? {} : { partialSuccess: { rejectedLogRecords: rejected, errorMessage: message } };
  return Buffer.from(ExportLogsServiceResponse.encode(ExportLogsServiceResponse.fromObject(body)).finish());
}
