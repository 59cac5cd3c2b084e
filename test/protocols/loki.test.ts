import { expect } from 'chai';
import fc from 'fast-check';
import { isRejected } from '../../src/protocols/common';
import { decodeLokiJson, decodeLokiProtobuf, encodeLokiProtobuf, parseLabelSet } from '../../src/protocols/loki';
import type { LogEvent } from '../../src/wal/record';

const SETTINGS = { topicLabels: ['topic', 'service_name', 'job'], topicDefault: 'loki' };

const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,6}$/);
const labels = fc.dictionary(labelName, fc.string({ maxLength: 8 }), { minKeys: 1, maxKeys: 4 });
const entry = fc.record({ labels, nanos: fc.bigInt(0n, 2n ** 62n), line: fc.string({ maxLength: 20 }) });

/** A label set as promtail writes it: `{name="value", ...}`, values quoted. */
function labelSet(pairs: Record<string, string>): string {
  return `{${Object.entries(pairs)
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(', ')}}`;
}

function events(slots: Array<LogEvent | { rejected: string }>): LogEvent[] {
  return slots.map((slot) => {
    if (isRejected(slot)) throw new Error(slot.rejected);
    return slot;
  });
}

describe('Loki push mapping', () => {
  it('maps an entry to the same event from JSON and from snappy protobuf, every time (property)', () => {
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 5 }), (entries) => {
        const json = { streams: entries.map((e) => ({ stream: e.labels, values: [[e.nanos.toString(), e.line]] })) };
        const proto = encodeLokiProtobuf(entries.map((e) => ({ labels: labelSet(e.labels), entries: [{ nanos: e.nanos, line: e.line }] })));
        const fromJson = events(decodeLokiJson(json, SETTINGS, 100).records);
        const fromProto = events(decodeLokiProtobuf(proto, SETTINGS, 100, 1 << 20).records);
        expect(fromProto).to.deep.equal(fromJson);
        expect(events(decodeLokiJson(json, SETTINGS, 100).records).map((e) => e.event_id)).to.deep.equal(fromJson.map((e) => e.event_id));
      }),
      { numRuns: 200 },
    );
  });

  it('gives entries that differ in labels, time or line different event_ids (property)', () => {
    const key = (e: { labels: Record<string, string>; nanos: bigint; line: string }) =>
      JSON.stringify([Object.entries(e.labels).sort(), e.nanos.toString(), e.line]);
    fc.assert(
      fc.property(fc.uniqueArray(entry, { minLength: 2, maxLength: 8, selector: key }), (entries) => {
        const json = { streams: entries.map((e) => ({ stream: e.labels, values: [[e.nanos.toString(), e.line]] })) };
        const ids = events(decodeLokiJson(json, SETTINGS, 100).records).map((e) => e.event_id);
        expect(new Set(ids).size).to.equal(entries.length);
      }),
      { numRuns: 200 },
    );
  });

  it('parses label sets as promtail and Alloy write them, and refuses malformed ones', () => {
    fc.assert(
      fc.property(labels, (pairs) => {
        expect(parseLabelSet(labelSet(pairs))).to.deep.equal(Object.entries(pairs).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
      }),
    );
    expect(parseLabelSet('{}')).to.deep.equal([]);
    expect(parseLabelSet('{job="a\\"b", host="x"}')).to.deep.equal([
      ['host', 'x'],
      ['job', 'a"b'],
    ]);
    for (const bad of ['', 'job="a"', '{job=a}', '{job="a"', '{job="a"} x', '{1job="a"}']) expect(parseLabelSet(bad), bad).to.equal(null);
  });

  it('maps topic from the first label of LOKI_TOPIC_LABELS, source from host/instance/hostname, payload with metadata', () => {
    const json = {
      streams: [
        {
          stream: { job: 'api', service_name: 'checkout', instance: 'pod-2' },
          values: [['1761213600123456789', 'GET /', { trace_id: 'abc' }]],
        },
        { stream: { app: 'x' }, values: [['1761213600000000000', 'no topic label']] },
      ],
    };
    const [first, second] = events(decodeLokiJson(json, SETTINGS, 10).records);
    expect(first).to.deep.include({ topic: 'checkout', source: 'pod-2', timestamp: '2025-10-23T10:00:00.123456789Z' });
    expect(first!.payload).to.deep.equal({
      line: 'GET /',
      labels: { instance: 'pod-2', job: 'api', service_name: 'checkout' },
      timestamp_ns: '1761213600123456789',
      structured_metadata: { trace_id: 'abc' },
    });
    expect(second).to.deep.include({ topic: 'loki', source: 'loki' });
  });

  it('refuses bad snappy, a declared size over the bound, and a bad push, before writing anything', () => {
    expect(() => decodeLokiProtobuf(Buffer.from([0x80]), SETTINGS, 10, 1024)).to.throw(/not a snappy block/);
    expect(() => decodeLokiProtobuf(Buffer.from([0x10, 0xff, 0x00]), SETTINGS, 10, 1024)).to.throw(/not valid snappy/);
    expect(() => decodeLokiProtobuf(Buffer.from([0x81, 0x10]), SETTINGS, 10, 1024)).to.throw(/BODY_BYTES_MAX=1024/);
    expect(() => decodeLokiJson({ streams: [{ stream: { a: 1 }, values: [] }] }, SETTINGS, 10)).to.throw(/must be a string/);
    expect(() =>
      decodeLokiJson(
        {
          streams: [
            {
              stream: {},
              values: [
                ['1', 'a'],
                ['2', 'b'],
              ],
            },
          ],
        },
        SETTINGS,
        1,
      ),
    ).to.throw(/BATCH_EVENTS_MAX=1/);
  });
});
