import { expect } from 'chai';
import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';
import net from 'node:net';
import zlib from 'node:zlib';
import { loadConfig } from '../../src/config/config';
import { AppError } from '../../src/errors';
import { parseJsonBody } from '../../src/http/body';
import { parsePublishBody } from '../../src/http/publish';
import { compileValidators } from '../../src/http/schemas';
import { startService, type RunningService } from '../../src/server';
import { canonicalEventJson } from '../../src/wal/record';
import { makeTempDir } from '../helpers/temp-dir';
import { statsBody } from '../../src/http/status';

/** Cases checked in-process (parse + validate); HOSTILE_CASES raises it. */
const IN_PROCESS_CASES = Number(process.env.HOSTILE_CASES ?? 100_000);
/** Cases sent over real HTTP to a running service; HOSTILE_HTTP_CASES raises it. */
const HTTP_CASES = Number(process.env.HOSTILE_HTTP_CASES ?? 1500);

const LIMITS = { batchEventsMax: 10, payloadBytesMax: 4096, payloadDepthMax: 16, bodyBytesMax: 16 * 1024 };

const EDGE_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\uD800',
  '\uDFFF',
  '\uD83D',
  '\u2028',
  '\u2029',
  '\uFEFF',
  '\uFFFF',
  '😀',
  'e\u0301',
  '\u202E',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'a'.repeat(255),
  'a'.repeat(256),
  'x'.repeat(70_000),
];
const TIMESTAMPS = [
  '2025-10-23T10:00:00Z',
  '2025-10-23T10:00:00.123456789+05:30',
  '2025-13-45T10:00:00Z',
  '2025-02-30T00:00:00Z',
  '2025-10-23T10:00:00',
  '2025-10-23 10:00:00Z',
  '2016-12-31T23:59:60Z',
  '+275760-09-13T00:00:00.000Z',
  '2025-10-23T10:00:00+25:00',
  '2025-10-23T24:00:00Z',
  '0000-00-00T00:00:00Z',
  '2025-10-23t10:00:00z',
  '1e9',
  '',
];

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(...EDGE_STRINGS),
  fc.string({ minLength: 250, maxLength: 260 }),
);
/** Any JSON value (costly to generate: used once per body). */
const anyJson = fc.jsonValue({ maxDepth: 3 });
/** A cheap JSON value of the wrong type for a field. */
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }),
);
const field = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('topic-a', 'id-1', 'src') },
  { weight: 3, arbitrary: hostileString },
  { weight: 1, arbitrary: wrongType },
);
const timestamp = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TIMESTAMPS) },
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: wrongType },
);
const smallObject = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...EDGE_STRINGS.slice(0, 18))),
  fc.oneof(wrongType, hostileString),
  { maxKeys: 4 },
);

/** Text of `depth` nested objects or arrays. */
const deepText = fc
  .tuple(fc.integer({ min: 1, max: 5000 }), fc.boolean())
  .map(([depth, arrays]) => (arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)));
/** Payload texts with prototype-looking keys, kept as text so that JSON.parse makes them own properties. */
const protoPayloadText = fc.constantFrom(
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"__proto__":null,"constructor":"x","prototype":1,"toString":{}}',
  '{"a":{"__proto__":{"__proto__":{"polluted":true}}}}',
  '[]',
  'null',
  '"payload"',
);

const eventText = fc
  .record(
    {
      topic: field,
      event_id: field,
      timestamp,
      source: field,
      payload: fc.oneof(
        { weight: 4, arbitrary: smallObject.map((v) => JSON.stringify(v)) },
        { weight: 2, arbitrary: protoPayloadText },
        { weight: 1, arbitrary: deepText },
        { weight: 1, arbitrary: wrongType.map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: fc.constant('{"big":"' + 'y'.repeat(5000) + '"}') },
      ),
      extra: fc.constantFrom('', '"__proto__":{"topic":"x"},', '"constructor":{"prototype":{"polluted":1}},', '"unknown":1,'),
    },
    { requiredKeys: [] },
  )
  .map((e) => {
    const parts: string[] = [];
    for (const key of ['topic', 'event_id', 'timestamp', 'source'] as const)
      if (key in e) parts.push(`${JSON.stringify(key)}:${JSON.stringify(e[key])}`);
    if (e.payload !== undefined) parts.push(`"payload":${e.payload}`);
    return `{${e.extra ?? ''}${parts.join(',')}}`;
  });

/** A valid event whose content is hostile but legal (unicode edges, prototype-looking keys). */
const validEventText = fc
  .tuple(
    fc.string({ minLength: 1, maxLength: 20 }),
    fc.uuid(),
    fc.constantFrom(...TIMESTAMPS.slice(0, 2)),
    fc.constantFrom(...EDGE_STRINGS.slice(1, 19)),
    protoPayloadText,
  )
  .map(
    ([topic, id, ts, source, payload]) =>
      `{"topic":${JSON.stringify(topic)},"event_id":"${id}","timestamp":"${ts}","source":${JSON.stringify(source)}${payload.startsWith('{') ? `,"payload":${payload}` : ''}}`,
  );

/** Any body text: events, batches, broken JSON, wrong shapes, deep nesting, plain junk. */
const bodyText = fc.oneof(
  { weight: 4, arbitrary: eventText },
  { weight: 3, arbitrary: fc.array(eventText, { maxLength: 12, size: 'xsmall' }).map((events) => `{"events":[${events.join(',')}]}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(eventText, fc.nat(), fc.string({ maxLength: 3 })).map(([t, at, junk]) => t.slice(0, at % (t.length + 1)) + junk),
  },
  { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.oneof(anyJson, fc.constantFrom('x', 1, null)).map((v) => `{"events":${JSON.stringify(v)}}`) },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: fc.string() },
);

/** What every accepted event must satisfy. */
function expectStorable(events: ReturnType<typeof parsePublishBody>): void {
  for (const { event, tsMs } of events) {
    for (const key of ['topic', 'event_id', 'source'] as const) {
      expect(event[key]).to.be.a('string');
      expect(event[key].length).to.be.within(1, 255);
    }
    expect(Number.isFinite(tsMs)).to.equal(true);
    if (event.payload !== undefined) {
      expect(event.payload !== null && typeof event.payload === 'object' && !Array.isArray(event.payload)).to.equal(true);
      // Stored and returned equal as JSON, prototype-looking keys included.
      expect(JSON.stringify((JSON.parse(canonicalEventJson(event)) as { payload: unknown }).payload)).to.equal(
        JSON.stringify(event.payload),
      );
    }
  }
}

describe('hostile input', function () {
  this.timeout(180_000);

  it(`parses ${IN_PROCESS_CASES} hostile bodies into a 4xx or storable events, never anything else`, () => {
    const validators = compileValidators();
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(bodyText, (text) => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          rejected += 1; // body-parser answers 400 invalid_json (checked over HTTP below)
          return;
        }
        try {
          expectStorable(parsePublishBody(body, validators, LIMITS));
          accepted += 1;
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          expect(err.status).to.be.within(400, 499);
          rejected += 1;
        }
      }),
      { numRuns: IN_PROCESS_CASES, seed: Number(process.env.HOSTILE_SEED ?? 20251125) },
    );
    expect(({} as Record<string, unknown>).polluted, 'Object.prototype untouched').to.equal(undefined);
    expect(accepted).to.be.greaterThan(IN_PROCESS_CASES / 100);
    expect(rejected).to.be.greaterThan(IN_PROCESS_CASES / 2);
  });

  it('rejects any body with invalid UTF-8 as invalid_utf8 at the first bad byte, and never rejects valid UTF-8 so', () => {
    const bytesAt = fc.tuple(validEventText, fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.nat());
    fc.assert(
      fc.property(bytesAt, ([text, inserted, at]) => {
        const raw = Buffer.from(text);
        const cut = at % (raw.length + 1);
        const body = Buffer.concat([raw.subarray(0, cut), Buffer.from(inserted), raw.subarray(cut)]);
        let code: string | null = null;
        let message = '';
        try {
          parseJsonBody(body);
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          code = err.code;
          message = err.message;
        }
        if (isUtf8(body)) {
          expect(code).not.to.equal('invalid_utf8');
          return;
        }
        expect(code).to.equal('invalid_utf8');
        const offset = Number(/at byte offset (\d+)/.exec(message)![1]);
        expect(isUtf8(body.subarray(0, offset)), 'valid before the offset').to.equal(true);
        // A cut inside a multi-byte character makes its lead byte (up to 3 before the cut) the bad one.
        expect(offset).to.be.within(cut - 3, cut + inserted.length + 3);
      }),
      { numRuns: Math.min(IN_PROCESS_CASES, 20_000), seed: 20251201 },
    );
  });

  it('stores a number only when its stored text has exactly the value sent, else answers number_not_kept', () => {
    /** Exact decimal value of a JSON number literal as [sign, digits, exponent] compared with BigInt. */
    const exact = (literal: string): [boolean, bigint, number] => {
      const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal)!;
      return [m[1] === '-', BigInt(m[2]! + (m[3] ?? '')), Number(m[4] ?? '0') - (m[3] ?? '').length];
    };
    const sameValue = (a: string, b: string): boolean => {
      const [sa, ma, ea] = exact(a);
      const [sb, mb, eb] = exact(b);
      if (sa !== sb) return false;
      if (Math.abs(ea - eb) > 400) return ma === 0n && mb === 0n;
      return ea >= eb ? ma * 10n ** BigInt(ea - eb) === mb : mb * 10n ** BigInt(eb - ea) === ma;
    };
    const literal = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
      fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String),
      fc
        .tuple(fc.boolean(), fc.stringMatching(/^[1-9]\d{0,24}$/), fc.stringMatching(/^\d{0,20}$/), fc.integer({ min: -400, max: 400 }))
        .map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac === '' ? '' : `.${frac}`}e${exp}`),
      fc.constantFrom('-0', '-0.0', '0e5', '-0e-5', '1e400', '4.9e-325', '9007199254740993', '0.1', '1.0', '100e-2'),
    );
    fc.assert(
      fc.property(literal, (number) => {
        const body = Buffer.from(`{"topic":"t","event_id":"i","timestamp":"2025-10-23T10:00:00Z","source":"s","payload":{"n":${number}}}`);
        try {
          const parsed = parseJsonBody(body) as { payload: { n: number } };
          const stored = JSON.stringify(parsed.payload.n);
          expect(stored, number).not.to.equal('null');
          expect(sameValue(stored, number), `${number} stored as ${stored}`).to.equal(true);
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          expect(err.code).to.equal('number_not_kept');
          const stored = JSON.stringify(Number(number));
          expect(stored === 'null' || !sameValue(stored, number), `${number} was refused though kept as ${stored}`).to.equal(true);
        }
      }),
      { numRuns: Math.min(IN_PROCESS_CASES, 20_000), seed: 20251202 },
    );
  });

  describe('over real HTTP', () => {
    let service: RunningService;
    let url: string;

    before(async () => {
      const config = loadConfig({
        DATA_DIR: makeTempDir(),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'silent',
        BODY_BYTES_MAX: String(LIMITS.bodyBytesMax),
        BATCH_EVENTS_MAX: String(LIMITS.batchEventsMax),
        PAYLOAD_BYTES_MAX: String(LIMITS.payloadBytesMax),
        PAYLOAD_DEPTH_MAX: String(LIMITS.payloadDepthMax),
        REQUEST_TIMEOUT_MS: '1500',
        HEADERS_TIMEOUT_MS: '700',
      });
      service = await startService(config);
      await service.ready;
      url = `http://127.0.0.1:${service.port}`;
    });

    after(async () => {
      await service.stop();
    });

    const CONTENT_TYPES = [
      'application/json',
      'application/json; charset=utf-8',
      'application/cloudevents+json',
      'APPLICATION/JSON',
      null,
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'multipart/form-data; boundary=x',
      'application/jsonx',
    ];
    const request = fc.record({
      text: fc.oneof(
        { weight: 6, arbitrary: bodyText },
        { weight: 2, arbitrary: validEventText },
        { weight: 1, arbitrary: fc.constant('x'.repeat(LIMITS.bodyBytesMax + 10)) },
        { weight: 1, arbitrary: fc.constant('') },
      ),
      contentType: fc.constantFrom(...CONTENT_TYPES),
      encoding: fc.constantFrom(null, null, null, 'gzip', 'gzip-garbage', 'br-garbage', 'identity', 'compress'),
      method: fc.constantFrom('POST', 'POST', 'POST', 'POST', 'PUT', 'GET', 'DELETE'),
      path: fc.constantFrom(
        '/publish',
        '/publish',
        '/publish',
        '/publish/',
        '/PUBLISH',
        '/publish?x=1',
        '/events?limit=-1&after=zz&since=2025-13-01T00:00:00Z',
        '/events?topic=&topic=a',
        '/nope',
      ),
    });

    it(`answers ${HTTP_CASES} hostile requests with 2xx or 4xx only, writing nothing for a rejected one`, async () => {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const headers: Record<string, string> = {};
          if (r.contentType !== null) headers['content-type'] = r.contentType;
          let body: Buffer | undefined = r.method === 'GET' ? undefined : Buffer.from(r.text);
          if (body !== undefined && r.encoding !== null) {
            headers['content-encoding'] = r.encoding.replace('-garbage', '');
            if (r.encoding === 'gzip') body = zlib.gzipSync(body);
            else if (r.encoding.endsWith('-garbage')) body = Buffer.from(`not ${r.encoding} data`);
          }
          const before = statsBody(service.aggregator).accepted;
          const res = await fetch(`${url}${r.path}`, { method: r.method, headers, body });
          const answer = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          expect(res.status, answer.slice(0, 300)).to.be.oneOf([200, 400, 404, 405, 413, 415]);
          expect(() => JSON.parse(answer), 'every answer is JSON').not.to.throw();
          if (res.status !== 200 || r.path.startsWith('/events'))
            expect(statsBody(service.aggregator).accepted, 'nothing written').to.equal(before);
        }),
        { numRuns: HTTP_CASES, seed: 4242 },
      );
      console.log(`      statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
      expect(statuses.get(200) ?? 0).to.be.greaterThan(0);
      expect(statuses.get(400) ?? 0).to.be.greaterThan(0);
      expect((await fetch(`${url}/health`)).status, 'still healthy').to.equal(200);
    });

    /** Opens a raw connection, sends `first`, then one byte of `rest` every `everyMs`; resolves when the server closes it. */
    function trickle(first: string, rest: string, everyMs: number): Promise<{ closedAfterMs: number; received: string }> {
      return new Promise((resolve, reject) => {
        const started = Date.now();
        const socket = net.connect(service.port, '127.0.0.1');
        let received = '';
        let index = 0;
        const timer = setInterval(() => {
          if (index < rest.length && !socket.destroyed) socket.write(rest[index++]!);
        }, everyMs);
        const deadline = setTimeout(() => {
          clearInterval(timer);
          socket.destroy();
          reject(new Error('the server kept a slow client for 10 s'));
        }, 10_000);
        socket.on('data', (chunk) => (received += chunk.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(timer);
          clearTimeout(deadline);
          resolve({ closedAfterMs: Date.now() - started, received });
        });
        socket.write(first);
      });
    }

    it('cuts off a client that trickles its headers (HEADERS_TIMEOUT_MS)', async () => {
      const { closedAfterMs, received } = await trickle('POST /publish HTTP/1.1\r\nHost: x\r\n', 'X-Slow: ' + 'a'.repeat(500), 100);
      expect(closedAfterMs).to.be.below(5000);
      if (received !== '') expect(received).to.match(/^HTTP\/1\.1 408/);
    });

    it('cuts off a client that trickles its body (REQUEST_TIMEOUT_MS)', async () => {
      const before = statsBody(service.aggregator).accepted;
      const { closedAfterMs, received } = await trickle(
        'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
        '{"topic":"' + 'a'.repeat(900),
        100,
      );
      expect(closedAfterMs).to.be.below(6000);
      if (received !== '') expect(received).to.match(/^HTTP\/1\.1 408/);
      expect(statsBody(service.aggregator).accepted).to.equal(before);
    });
  });
});
