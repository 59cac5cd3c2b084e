import { expect } from 'chai';
import fc from 'fast-check';
import { isRejected } from '../../src/protocols/common';
import { decodeOtlpJson, decodeOtlpProtobuf, encodeOtlpResponse, plainValue, type AnyValue, type KeyValue } from '../../src/protocols/otlp';
import { ExportLogsServiceRequest, ExportLogsServiceResponse } from '../../src/protocols/otlp-schema';
import type { LogEvent } from '../../src/wal/record';

const SETTINGS = { topicDefault: 'otlp', depthMax: 8, nowIso: '2025-10-23T10:00:00.000Z' };

/** AnyValues in the OTLP JSON encoding (no NaN or -0: JSON itself cannot keep those apart). */
const anyValue: fc.Arbitrary<AnyValue> = fc.letrec<{ value: AnyValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string().map((s) => ({ stringValue: s })),
    fc.boolean().map((b) => ({ boolValue: b })),
    fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n).map((i) => ({ intValue: i.toString() })),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .filter((d) => !Object.is(d, -0))
      .map((d) => ({ doubleValue: d })),
    fc.uint8Array({ maxLength: 8 }).map((b) => ({ bytesValue: Buffer.from(b).toString('base64') })),
    fc.array(tie('value'), { maxLength: 3 }).map((values) => ({ arrayValue: { values } })),
    fc
      .array(fc.record({ key: fc.string({ maxLength: 5 }), value: tie('value') }), { maxLength: 3 })
      .map((values) => ({ kvlistValue: { values } })),
  ),
})).value;

const attributes: fc.Arbitrary<KeyValue[]> = fc.uniqueArray(
  fc.record({ key: fc.string({ minLength: 1, maxLength: 8 }), value: anyValue }),
  { maxLength: 4, selector: (kv) => kv.key },
);
const hexId = (bytes: number) =>
  fc.oneof(
    fc.constant(''),
    fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex')),
  );

/** One log record in the OTLP JSON encoding. */
const jsonRecord = fc.record({
  timeUnixNano: fc.bigInt(1n, 2n ** 62n).map(String),
  severityNumber: fc.integer({ min: 0, max: 24 }),
  severityText: fc.constantFrom('', 'INFO', 'ERROR'),
  body: anyValue,
  attributes,
  traceId: hexId(16),
  spanId: hexId(8),
});

function jsonRequest(records: unknown[], service = 'svc'): Record<string, unknown> {
  return {
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeLogs: [{ scope: { name: 'lib', version: '1' }, logRecords: records }],
      },
    ],
  };
}

/** The same request as protobuf bytes: hex ids become bytes, everything else protobufjs reads from the JSON shape. */
function protobufOf(request: Record<string, any>): Buffer {
  const copy = JSON.parse(JSON.stringify(request));
  for (const resource of copy.resourceLogs) {
    for (const scope of resource.scopeLogs) {
      for (const record of scope.logRecords) {
        record.traceId = Buffer.from(record.traceId ?? '', 'hex');
        record.spanId = Buffer.from(record.spanId ?? '', 'hex');
      }
    }
  }
  return Buffer.from(ExportLogsServiceRequest.encode(ExportLogsServiceRequest.fromObject(copy)).finish());
}

function events(records: Array<LogEvent | { rejected: string }>): LogEvent[] {
  return records.map((slot) => {
    if (isRejected(slot)) throw new Error(`unexpected rejection: ${slot.rejected}`);
    return slot;
  });
}

describe('OTLP logs mapping', () => {
  it('maps a record to the same event from JSON and from protobuf, every time (property)', () => {
    fc.assert(
      fc.property(fc.array(jsonRecord, { minLength: 1, maxLength: 4 }), (records) => {
        const request = jsonRequest(records);
        const fromJson = events(decodeOtlpJson(JSON.parse(JSON.stringify(request)), SETTINGS, 100).records);
        const fromProto = events(decodeOtlpProtobuf(protobufOf(request), SETTINGS, 100).records);
        const again = events(decodeOtlpProtobuf(protobufOf(request), SETTINGS, 100).records);
        expect(fromProto).to.deep.equal(fromJson);
        expect(again.map((e) => e.event_id)).to.deep.equal(fromJson.map((e) => e.event_id));
      }),
      { numRuns: 200 },
    );
  });

  it('gives different records different event_ids (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(jsonRecord, { minLength: 2, maxLength: 8, selector: (r) => JSON.stringify(r) }), (records) => {
        const ids = events(decodeOtlpJson(jsonRequest(records), SETTINGS, 100).records).map((e) => e.event_id);
        expect(new Set(ids).size).to.equal(records.length);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps apart values JSON would merge: a string and bytes of the same text, an int and a double, 0 and -0', () => {
    const record = (value: AnyValue) => ({ timeUnixNano: '1', body: value });
    const bodies: AnyValue[] = [{ stringValue: 'AAE=' }, { bytesValue: 'AAE=' }, { intValue: '1' }, { doubleValue: 1 }];
    const ids = events(decodeOtlpJson(jsonRequest(bodies.map(record)), SETTINGS, 100).records).map((e) => e.event_id);
    expect(new Set(ids).size).to.equal(4);
    const zeros = events(decodeOtlpProtobuf(protobufOf(jsonRequest([record({ doubleValue: 0 })])), SETTINGS, 10).records);
    const message = ExportLogsServiceRequest.fromObject({
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
          scopeLogs: [{ scope: { name: 'lib', version: '1' }, logRecords: [{ timeUnixNano: 1, body: { doubleValue: -0 } }] }],
        },
      ],
    });
    const negative = events(decodeOtlpProtobuf(Buffer.from(ExportLogsServiceRequest.encode(message).finish()), SETTINGS, 10).records);
    expect(negative[0]!.event_id).not.to.equal(zeros[0]!.event_id);
  });

  it('maps topic, source, event_id, timestamp and payload as docs/shippers.md says', () => {
    const request = {
      resourceLogs: [
        {
          resource: {
            attributes: [
              { key: 'service.name', value: { stringValue: 'checkout' } },
              { key: 'host.name', value: { stringValue: 'node-7' } },
            ],
          },
          scopeLogs: [
            {
              scope: { name: 'lib', version: '2.0' },
              logRecords: [
                {
                  timeUnixNano: '1761213600123456789',
                  observedTimeUnixNano: '1761213601000000000',
                  severityNumber: 13,
                  severityText: 'WARN',
                  body: {
                    kvlistValue: {
                      values: [
                        { key: 'msg', value: { stringValue: 'slow' } },
                        { key: '__proto__', value: { intValue: '9007199254740993' } },
                      ],
                    },
                  },
                  attributes: [{ key: 'log.record.uid', value: { stringValue: '01J9Z' } }],
                  traceId: '5B8EFFF798038103D269B633813FC60C',
                  spanId: 'EEE19B7EC3C1B174',
                  flags: 1,
                },
                { observedTimeUnixNano: '1761213602000000000', body: { stringValue: 'no time' } },
                { body: { stringValue: 'no times at all' } },
              ],
            },
          ],
        },
      ],
    };
    const [first, second, third] = events(decodeOtlpJson(request, SETTINGS, 10).records);
    expect(first).to.deep.include({ topic: 'checkout', event_id: '01J9Z', source: 'node-7', timestamp: '2025-10-23T10:00:00.123456789Z' });
    expect(JSON.stringify(first!.payload)).to.equal(
      JSON.stringify({
        time_unix_nano: '1761213600123456789',
        observed_time_unix_nano: '1761213601000000000',
        severity_number: 13,
        severity_text: 'WARN',
        body: JSON.parse('{"msg":"slow","__proto__":"9007199254740993"}'),
        attributes: { 'log.record.uid': '01J9Z' },
        trace_id: '5b8efff798038103d269b633813fc60c',
        span_id: 'eee19b7ec3c1b174',
        flags: 1,
        resource: { attributes: { 'service.name': 'checkout', 'host.name': 'node-7' } },
        scope: { name: 'lib', version: '2.0', attributes: {} },
      }),
    );
    expect(Object.getPrototypeOf((first!.payload as any).body)).to.equal(Object.prototype);
    expect(second!.timestamp).to.equal('2025-10-23T10:00:02.000Z');
    expect(third!.timestamp).to.equal(SETTINGS.nowIso);
  });

  it('rejects a record alone (partial success) and a body that is no request whole', () => {
    const request = jsonRequest([
      { timeUnixNano: '1', body: { stringValue: 'ok' } },
      { timeUnixNano: 'soon' },
      { timeUnixNano: '99999999999999999999' },
    ]);
    const slots = decodeOtlpJson(request, SETTINGS, 10).records;
    expect(slots.map(isRejected)).to.deep.equal([false, true, true]);
    expect((slots[1] as { rejected: string }).rejected).to.match(/timeUnixNano/);
    expect(() => decodeOtlpJson([], SETTINGS, 10)).to.throw(/ExportLogsServiceRequest/);
    expect(() => decodeOtlpJson(jsonRequest(Array.from({ length: 11 }, () => ({}))), SETTINGS, 10)).to.throw(/BATCH_EVENTS_MAX=10/);
    expect(() => decodeOtlpProtobuf(Buffer.from([0x0a, 0x05, 0x01]), SETTINGS, 10)).to.throw(/not a protobuf ExportLogsServiceRequest/);
  });

  it('rejects a record nested deeper than the depth bound instead of walking it', () => {
    let deep: AnyValue = { stringValue: 'bottom' };
    for (let i = 0; i < 20; i += 1) deep = { arrayValue: { values: [deep] } };
    const slots = decodeOtlpJson(jsonRequest([{ timeUnixNano: '1', body: deep }]), SETTINGS, 10).records;
    expect((slots[0] as { rejected: string }).rejected).to.match(/deeper than 8 levels/);
  });

  it('converts AnyValues faithfully to plain JSON (int64 past 2^53 as a decimal string)', () => {
    expect(plainValue({ intValue: '42' })).to.equal(42);
    expect(plainValue({ intValue: '-9223372036854775808' })).to.equal('-9223372036854775808');
    expect(plainValue({ doubleValue: 'NaN' })).to.equal('NaN');
    expect(plainValue({ arrayValue: { values: [{ boolValue: true }, {}] } })).to.deep.equal([true, null]);
  });

  it('answers partialSuccess in protobuf and in JSON', () => {
    const decoded = ExportLogsServiceResponse.toObject(ExportLogsServiceResponse.decode(encodeOtlpResponse(2, 'record 1: bad')), {
      longs: String,
    });
    expect(decoded).to.deep.equal({ partialSuccess: { rejectedLogRecords: '2', errorMessage: 'record 1: bad' } });
    expect(encodeOtlpResponse(0, '').length).to.equal(0);
  });
});
