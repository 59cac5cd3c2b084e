import { expect } from 'chai';
import fs from 'node:fs';
import { crc32 } from 'node:zlib';
import path from 'node:path';
import { describeSeqBreak, type LogItem } from '../../src/wal/reader';
import {
  canonicalEventJson,
  canonicalEventJsonWith,
  decodeLine,
  encodeRecord,
  eventJsonWithSeq,
  RECORD_LINE_BYTES_MAX,
  scanLines,
  splitEventJsonSeq,
  type LogEvent,
} from '../../src/wal/record';
import { FIXTURES_DIR } from '../helpers/fixtures';
import { readSegmentFile, segmentOf, type SegmentRead } from '../helpers/log-read';

const SEGMENT = '00000000000000000001.ndjson';
const fixtureFile = (name: string): string => path.join(FIXTURES_DIR, 'wal', name, SEGMENT);
const readFixture = (name: string, isLast = true): SegmentRead => readSegmentFile(fixtureFile(name), { isLast });

describe('wal record framing', () => {
  it('round-trips a record through encode and decode', () => {
    const json = canonicalEventJson({ topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { a: 1 } });
    const line = encodeRecord(42, json);
    expect(line.endsWith('\n')).to.equal(true);
    expect(JSON.parse(line)).to.deep.include({ seq: 42 });
    expect(decodeLine(line.slice(0, -1))).to.deep.equal({ seq: 42, eventJson: json, receivedAtMs: null });
  });

  it('keeps __proto__ and constructor keys as data', () => {
    const payload = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}') as Record<string, unknown>;
    const json = canonicalEventJson({ topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z', source: 's', payload });
    const decoded = decodeLine(encodeRecord(1, json).slice(0, -1));
    expect(decoded).to.not.be.a('string');
    expect((decoded as { eventJson: string }).eventJson).to.contain('"__proto__":{"polluted":true}');
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('detects a changed byte anywhere in a line', () => {
    const line = encodeRecord(7, '{"topic":"t","event_id":"e","timestamp":"2025-10-23T10:00:00Z","source":"s"}').slice(0, -1);
    for (let i = 0; i < line.length; i += 1) {
      const changed = line.slice(0, i) + (line[i] === 'x' ? 'y' : 'x') + line.slice(i + 1);
      expect(decodeLine(changed), `byte ${i}`).to.be.a('string');
    }
  });

  it('puts canonical keys in a fixed order whatever the input order', () => {
    const a = canonicalEventJson({ source: 's', payload: { z: 1 }, timestamp: 't', event_id: 'e', topic: 'x' });
    expect(a).to.equal('{"topic":"x","event_id":"e","timestamp":"t","source":"s","payload":{"z":1}}');
  });

  it('gives the same text from a payload serialised beforehand as canonicalEventJson', () => {
    const events: LogEvent[] = [
      { topic: 'x', event_id: 'e', timestamp: 't', source: 's' },
      {
        topic: 'q"\\\n',
        event_id: '\u00e9\u2028\ud83d\ude00',
        timestamp: '2025-10-23T10:00:00Z',
        source: '<\u0000>',
        payload: { z: [1, null, 'x'], a: {} },
      },
      {
        topic: 'x',
        event_id: 'e',
        timestamp: 't',
        source: 's',
        payload: JSON.parse('{"__proto__":1,"constructor":2}') as Record<string, unknown>,
      },
    ];
    for (const event of events) {
      const payloadJson = event.payload === undefined ? undefined : JSON.stringify(event.payload);
      expect(canonicalEventJsonWith(event, payloadJson)).to.equal(canonicalEventJson(event));
    }
  });
});

describe('record format versions', () => {
  const json = canonicalEventJson({ topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z', source: 's', payload: { a: 1 } });
  const receivedAtMs = Date.parse('2026-12-01T23:00:00.123Z');

  it('writes version 2 with the acceptance time before the event', () => {
    const line = encodeRecord(7, json, receivedAtMs);
    expect(line).to.match(/^\{"crc":"[0-9a-f]{8}","v":2,"seq":7,"received_at":"2026-12-01T23:00:00\.123Z","event":\{/);
    expect(JSON.parse(line)).to.deep.include({ v: 2, seq: 7, received_at: '2026-12-01T23:00:00.123Z' });
    expect(decodeLine(line.slice(0, -1))).to.deep.equal({ seq: 7, eventJson: json, receivedAtMs });
  });

  it('still decodes a version-1 line, without an acceptance time', () => {
    const body = `"seq":3,"event":${json}}`;
    const line = `{"crc":"${crc32(body).toString(16).padStart(8, '0')}",${body}`;
    expect(decodeLine(line)).to.deep.equal({ seq: 3, eventJson: json, receivedAtMs: null });
  });

  it('refuses an unknown version and an acceptance time that names no instant', () => {
    for (const body of [`"v":3,"seq":1,"event":${json}}`, `"v":2,"seq":1,"received_at":"2026-13-45T99:00:00.000Z","event":${json}}`]) {
      const line = `{"crc":"${crc32(body).toString(16).padStart(8, '0')}",${body}`;
      expect(decodeLine(line)).to.equal('bad_frame');
    }
  });

  it('shows readers seq first and received_at last, and splits that shape back into the event', () => {
    const shown = eventJsonWithSeq(5, json, receivedAtMs);
    expect(Object.keys(JSON.parse(shown) as object)).to.deep.equal([
      'seq',
      'topic',
      'event_id',
      'timestamp',
      'source',
      'payload',
      'received_at',
    ]);
    expect(splitEventJsonSeq(shown)).to.deep.equal({ seq: 5, eventJson: json, receivedAtMs });
    const old = eventJsonWithSeq(5, json, null);
    expect((JSON.parse(old) as { received_at: unknown }).received_at).to.equal(null);
    expect(splitEventJsonSeq(old)).to.deep.equal({ seq: 5, eventJson: json, receivedAtMs: null });
    // An export made before received_at existed splits as before.
    expect(splitEventJsonSeq(`{"seq":5,${json.slice(1)}`)).to.deep.equal({ seq: 5, eventJson: json, receivedAtMs: null });
    // A payload key named received_at is the event's, not the reader's.
    const nested = canonicalEventJson({ topic: 't', event_id: 'e', timestamp: 'x', source: 's', payload: { received_at: 'mine' } });
    expect(splitEventJsonSeq(`{"seq":5,${nested.slice(1)}`)?.eventJson).to.equal(nested);
  });
});

describe('WalReader on byte-exact fixtures', () => {
  it('reads every record of a clean segment', () => {
    const read = readFixture('ok');
    expect(read.records.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    expect(read.records.map((r) => r.offset)).to.deep.equal([0, 147, 294]);
    expect(read.problems).to.deep.equal([]);
    expect(read.validBytes).to.equal(441);
  });

  it('treats an empty segment as an empty log', () => {
    const read = readFixture('empty');
    expect(read.records).to.deep.equal([]);
    expect(read.problems).to.deep.equal([]);
  });

  it('treats a torn final line as the end of the log', () => {
    const read = readFixture('torn-tail');
    expect(read.records.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    expect(read.problems).to.deep.equal([{ kind: 'torn_tail', offset: 441, bytes: 40, problem: 'torn' }]);
  });

  it('calls a torn line in an older segment corruption', () => {
    const read = readFixture('torn-tail', false);
    expect(read.problems).to.have.length(1);
    expect(read.problems[0]).to.include({ kind: 'corruption', offset: 441 });
  });

  it('reports a bad checksum in the middle as corruption at its offset', () => {
    const read = readFixture('bad-crc-middle');
    expect(read.records.map((r) => r.seq)).to.deep.equal([1, 3]);
    // The seq gap the bad line leaves is its consequence, not a second problem.
    expect(read.problems).to.deep.equal([{ kind: 'corruption', offset: 147, bytes: 147, problem: 'bad_crc' }]);
  });

  it('reports a seq gap as corruption at the record after the gap', () => {
    const read = readFixture('seq-gap');
    expect(read.problems).to.deep.equal([
      { kind: 'seq_break', offset: 147, problem: 'seq_gap', expected: 2, seq: 3, atSegmentStart: false },
    ]);
    expect(
      describeSeqBreak({ ...(read.problems[0] as Omit<Extract<LogItem, { kind: 'seq_break' }>, 'segment'>), segment: segmentOf(SEGMENT) }),
    ).to.equal('expected seq 2, found 3');
  });
});

describe('scanLines over chunks', () => {
  /** The bytes cut into chunks of the given sizes, in turn. */
  function chunked(bytes: Buffer, sizes: number[]): Buffer[] {
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < bytes.length; i += 1) {
      const size = sizes[i % sizes.length]!;
      chunks.push(bytes.subarray(at, at + size));
      at += size;
    }
    return chunks;
  }

  it('finds the same lines however the bytes are cut into chunks, multi-byte characters included', () => {
    const records = [1, 2, 3].map((seq) =>
      encodeRecord(
        seq,
        canonicalEventJson({
          topic: 't',
          event_id: `é-${seq}`,
          timestamp: '2025-10-23T10:00:00Z',
          source: 's',
          payload: { text: '😀\u2028'.repeat(seq * 5) },
        }),
      ),
    );
    const bytes = Buffer.concat([Buffer.from(records.join('')), Buffer.from('{"crc":"00000000","seq":4')]);
    const whole = [...scanLines([bytes])];
    expect(whole.map((line) => line.problem)).to.deep.equal([null, null, null, 'torn']);
    expect(whole.map((line) => line.record?.seq ?? null)).to.deep.equal([1, 2, 3, null]);
    for (const sizes of [[1], [2, 3], [7], [64, 1], [bytes.length]]) {
      expect([...scanLines(chunked(bytes, sizes))], `chunks of ${sizes.join(',')}`).to.deep.equal(whole);
    }
  });

  it('reads the byte-exact fixtures in 5-byte chunks as it reads them whole', () => {
    for (const name of ['ok', 'empty', 'torn-tail', 'bad-crc-middle', 'seq-gap']) {
      const bytes = fs.readFileSync(path.join(FIXTURES_DIR, 'wal', name, '00000000000000000001.ndjson'));
      expect([...scanLines(chunked(bytes, [5]))], name).to.deep.equal([...scanLines([bytes])]);
    }
  });

  it('calls a line longer than any record bad without holding it, and goes on after it', () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const count = Math.ceil(RECORD_LINE_BYTES_MAX / chunk.length) + 2;
    const good = Buffer.from(encodeRecord(1, '{"a":1}'));
    const lines = [...scanLines([...Array.from({ length: count }, () => chunk), Buffer.from('\n'), good])];
    expect(lines).to.have.length(2);
    expect(lines[0]).to.deep.equal({ offset: 0, length: count * chunk.length + 1, record: null, problem: 'bad_frame' });
    expect(lines[1]).to.include({ offset: count * chunk.length + 1, length: good.length, problem: null });
  });
});
