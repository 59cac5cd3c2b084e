import protobuf from 'protobufjs';
import * as snappy from 'snappyjs';
import { AppError } from '../errors';
import type { LogEvent } from '../wal/record';
import { digestJsonParts, isoFromNanos, parseNanos, setOwn, type MappedRecords } from './common';

/**
 * Loki push (POST /loki/api/v1/push): the JSON body and the snappy-compressed protobuf
 * PushRequest, mapped to events. One entry of one stream is one event.
 */

/**
 * PushRequest as a protobufjs descriptor: field names and numbers from Loki's
 * pkg/push/push.proto (Apache-2.0, github.com/grafana/loki); google.protobuf.Timestamp
 * written out (seconds, nanos). The `hash` and `parsed` fields are unknown here and skipped.
 */
const PUSH_DESCRIPTOR = {
  nested: {
    Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
    LabelPair: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
    Entry: {
      fields: {
        timestamp: { type: 'Timestamp', id: 1 },
        line: { type: 'string', id: 2 },
        structuredMetadata: { rule: 'repeated', type: 'LabelPair', id: 3 },
      },
    },
    Stream: { fields: { labels: { type: 'string', id: 1 }, entries: { rule: 'repeated', type: 'Entry', id: 2 } } },
    PushRequest: { fields: { streams: { rule: 'repeated', type: 'Stream', id: 1 } } },
  },
};

const PushRequest = protobuf.Root.fromJSON(PUSH_DESCRIPTOR).lookupType('PushRequest');

/** How streams become events. */
export interface LokiMappingSettings {
  /** Stream labels tried in order for the topic (LOKI_TOPIC_LABELS). */
  topicLabels: readonly string[];
  /** Topic when none of those labels is set (LOKI_TOPIC_DEFAULT). */
  topicDefault: string;
}

/** Labels tried in order for the source (pino-loki sends `hostname`); without them the source is "loki". */
const SOURCE_LABELS = ['host', 'instance', 'hostname'] as const;
const SOURCE_DEFAULT = 'loki';

/** One entry before mapping: its stream's labels (sorted by name), time, line, structured metadata. */
export interface LokiEntry {
  labels: Array<[string, string]>;
  nanos: bigint;
  line: string;
  metadata: Array<[string, string]>;
}

function problem(path: string, message: string): AppError {
  return new AppError('validation_failed', `${path} ${message}; nothing was written`, { details: [{ index: -1, path, message }] });
}

/**
 * Parses a Prometheus-style label set as promtail and Alloy send it: `{name="value", ...}`,
 * values in Go-quoted form. Returns the pairs sorted by name, or null when malformed.
 */
export function parseLabelSet(text: string): Array<[string, string]> | null {
  const pairs: Array<[string, string]> = [];
  const pattern = /\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*=\s*("(?:[^"\\]|\\.)*")\s*(,|\})/gy;
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return null;
  if (/^\{\s*\}$/.test(trimmed)) return pairs;
  pattern.lastIndex = 1;
  for (;;) {
    const match = pattern.exec(trimmed);
    if (match === null) return null;
    let value: string;
    try {
      value = JSON.parse(match[2]!) as string;
    } catch {
      return null;
    }
    pairs.push([match[1]!, value]);
    if (match[3] === '}') return pattern.lastIndex === trimmed.length ? sortPairs(pairs) : null;
  }
}

function sortPairs(pairs: Array<[string, string]>): Array<[string, string]> {
  return pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * The event of one entry. Its event_id is SHA-256 over (sorted labels, timestamp in ns,
 * line), the identity Loki itself deduplicates on: a re-sent push is a duplicate, and two
 * entries that differ in any of the three are two events.
 */
export function entryToEvent(entry: LokiEntry, settings: LokiMappingSettings): LogEvent | { rejected: string } {
  const timestamp = isoFromNanos(entry.nanos);
  if (timestamp === null) return { rejected: `timestamp ${entry.nanos} ns is past year 9999` };
  const labels: Record<string, string> = {};
  for (const [name, value] of entry.labels) setOwn(labels, name, value);
  const label = (name: string): string | undefined => {
    const value = Object.prototype.hasOwnProperty.call(labels, name) ? labels[name] : undefined;
    return value === '' ? undefined : value;
  };
  let topic: string | undefined;
  for (const name of settings.topicLabels) topic ??= label(name);
  let source: string | undefined;
  for (const name of SOURCE_LABELS) source ??= label(name);
  const payload: Record<string, unknown> = { line: entry.line, labels, timestamp_ns: entry.nanos.toString() };
  if (entry.metadata.length > 0) {
    const metadata: Record<string, string> = {};
    for (const [name, value] of entry.metadata) setOwn(metadata, name, value);
    payload.structured_metadata = metadata;
  }
  const eventId = digestJsonParts([JSON.stringify(entry.labels), JSON.stringify(entry.nanos.toString()), JSON.stringify(entry.line)]);
  return { topic: topic ?? settings.topicDefault, event_id: eventId, timestamp, source: source ?? SOURCE_DEFAULT, payload };
}

function checkCount(count: number, entriesMax: number): void {
  if (count > entriesMax) throw new AppError('batch_too_large', `push of ${count} entries is over BATCH_EVENTS_MAX=${entriesMax}`);
}

/**
 * Maps a parsed Loki JSON push `{"streams":[{"stream":{...},"values":[["<ns>","<line>",{...}?]]}]}`.
 * Any malformed stream or entry rejects the whole push (400 validation_failed), as Loki does.
 */
export function decodeLokiJson(body: unknown, settings: LokiMappingSettings, entriesMax: number): MappedRecords {
  const streams = (body as { streams?: unknown } | null)?.streams;
  if (body === null || typeof body !== 'object' || !Array.isArray(streams)) throw problem('streams', 'must be an array');
  let count = 0;
  for (const stream of streams)
    count += Array.isArray((stream as { values?: unknown } | null)?.values) ? (stream as { values: unknown[] }).values.length : 0;
  checkCount(count, entriesMax);
  const records: MappedRecords['records'] = [];
  streams.forEach((stream: unknown, s) => {
    const path = `streams[${s}]`;
    const labelObject = (stream as { stream?: unknown } | null)?.stream;
    if (labelObject === null || typeof labelObject !== 'object' || Array.isArray(labelObject))
      throw problem(`${path}.stream`, 'must be an object of labels');
    const labels = stringPairs(labelObject as Record<string, unknown>, `${path}.stream`);
    const values = (stream as { values?: unknown }).values;
    if (!Array.isArray(values)) throw problem(`${path}.values`, 'must be an array');
    values.forEach((value: unknown, v) => {
      const at = `${path}.values[${v}]`;
      if (!Array.isArray(value) || value.length < 2 || value.length > 3)
        throw problem(at, 'must be ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]');
      const nanos = typeof value[0] === 'string' ? parseNanos(value[0]) : null;
      if (nanos === null) throw problem(`${at}[0]`, 'must be the time in nanoseconds as a decimal string');
      if (typeof value[1] !== 'string') throw problem(`${at}[1]`, 'must be the log line, a string');
      const rawMetadata: unknown = value[2];
      if (rawMetadata !== undefined && (rawMetadata === null || typeof rawMetadata !== 'object' || Array.isArray(rawMetadata)))
        throw problem(`${at}[2]`, 'must be an object of structured metadata');
      const metadata = rawMetadata === undefined ? [] : stringPairs(rawMetadata as Record<string, unknown>, `${at}[2]`);
      records.push(entryToEvent({ labels, nanos, line: value[1], metadata }, settings));
    });
  });
  return { records };
}

function stringPairs(object: Record<string, unknown>, path: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(object)) {
    if (typeof value !== 'string') throw problem(`${path}.${name}`, 'must be a string');
    pairs.push([name, value]);
  }
  return sortPairs(pairs);
}

/** Snappy block format starts with the inflated length as a varint: read it before inflating anything. */
function snappyInflatedLength(body: Buffer): number | null {
  let length = 0;
  for (let i = 0, shift = 0; i < Math.min(body.length, 5); i += 1, shift += 7) {
    length += (body[i]! & 0x7f) * 2 ** shift;
    if ((body[i]! & 0x80) === 0) return length;
  }
  return null;
}

/**
 * Inflates a snappy block (Loki's Content-Encoding-less "snappy protobuf") whose declared
 * size is at most `bytesMax`, and decodes the PushRequest. Throws AppError 400
 * invalid_snappy / invalid_protobuf / validation_failed, 413 body_too_large or batch_too_large.
 */
export function decodeLokiProtobuf(body: Buffer, settings: LokiMappingSettings, entriesMax: number, bytesMax: number): MappedRecords {
  const declared = snappyInflatedLength(body);
  if (declared === null) throw new AppError('invalid_snappy', 'the body is not a snappy block (no length header)');
  if (declared > bytesMax)
    throw new AppError('body_too_large', `the body inflates to ${declared} bytes, over BODY_BYTES_MAX=${bytesMax} (after decompression)`);
  let raw: Buffer;
  try {
    raw = Buffer.from(snappy.uncompress(body, bytesMax));
  } catch (err) {
    throw new AppError('invalid_snappy', `the body is not valid snappy (block format): ${(err as Error).message}`);
  }
  /* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/restrict-plus-operands -- protobufjs's reflection decode yields untyped messages (fields by name, Longs, optional everywhere); each field is cast where it is read */
  let request: Record<string, any>;
  try {
    request = PushRequest.decode(raw) as Record<string, any>;
  } catch (err) {
    throw new AppError('invalid_protobuf', `the body is not a protobuf PushRequest: ${(err as Error).message}`);
  }
  const streams = (request.streams ?? []) as Array<Record<string, any>>;
  checkCount(
    streams.reduce((sum, stream) => sum + (stream.entries?.length ?? 0), 0),
    entriesMax,
  );
  const records: MappedRecords['records'] = [];
  streams.forEach((stream, s) => {
    const labels = parseLabelSet((stream.labels as string | undefined) ?? '');
    if (labels === null)
      throw problem(
        `streams[${s}].labels`,
        `must be a label set like {job="app"} (got ${JSON.stringify(String(stream.labels).slice(0, 100))})`,
      );
    ((stream.entries ?? []) as Array<Record<string, any>>).forEach((entry, e) => {
      const seconds = BigInt(String(entry.timestamp?.seconds ?? 0));
      const nanosPart = BigInt((entry.timestamp?.nanos as number | undefined) ?? 0);
      if (seconds < 0n || nanosPart < 0n || nanosPart > 999_999_999n)
        throw problem(`streams[${s}].entries[${e}].timestamp`, 'must be a time after 1970');
      const metadata = sortPairs(
        ((entry.structuredMetadata ?? []) as Array<{ name?: string; value?: string }>).map((pair) => [pair.name ?? '', pair.value ?? '']),
      );
      records.push(
        entryToEvent(
          { labels, nanos: seconds * 1_000_000_000n + nanosPart, line: (entry.line as string | undefined) ?? '', metadata },
          settings,
        ),
      );
    });
  });
  return { records };
}
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/restrict-plus-operands */

/** A PushRequest as snappy-compressed protobuf, as promtail sends it (for tests and the benchmark). */
export function encodeLokiProtobuf(
  streams: Array<{ labels: string; entries: Array<{ nanos: bigint; line: string; metadata?: Array<[string, string]> }> }>,
): Buffer {
  const message = PushRequest.fromObject({
    streams: streams.map((stream) => ({
      labels: stream.labels,
      entries: stream.entries.map((entry) => ({
        timestamp: { seconds: (entry.nanos / 1_000_000_000n).toString(), nanos: Number(entry.nanos % 1_000_000_000n) },
        line: entry.line,
        structuredMetadata: (entry.metadata ?? []).map(([name, value]) => ({ name, value })),
      })),
    })),
  });
  return Buffer.from(snappy.compress(Buffer.from(PushRequest.encode(message).finish())));
}
