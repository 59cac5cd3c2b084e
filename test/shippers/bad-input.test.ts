import zlib from 'node:zlib';
import { expect } from 'chai';
import { encodeLokiProtobuf } from '../../src/protocols/loki';
import { ExportLogsServiceRequest } from '../../src/protocols/otlp-schema';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeEvent } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';

const BODY_BYTES_MAX = 64 * 1024;
const BATCH_EVENTS_MAX = 50;

async function post(
  url: string,
  body: Buffer | string,
  headers: Record<string, string>,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const event = (id: number): string => JSON.stringify(makeEvent('nd', `e${id}`));

/** An OTLP protobuf request of `count` records with the given body text. */
function otlpProtobuf(count: number, body = 'x'): Buffer {
  const logRecords = Array.from({ length: count }, (_, i) => ({
    timeUnixNano: String(1761213600000000000n + BigInt(i)),
    body: { stringValue: body },
  }));
  const message = ExportLogsServiceRequest.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] });
  return Buffer.from(ExportLogsServiceRequest.encode(message).finish());
}

describe("bad input on the shippers' routes (real server process): clear 4xx, nothing written, server healthy", () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(makeTempDir(), {
      BODY_BYTES_MAX: String(BODY_BYTES_MAX),
      BATCH_EVENTS_MAX: String(BATCH_EVENTS_MAX),
    });
  });
  after(async () => {
    // Nothing of any request below was written, and the server still takes a good one.
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as { accepted: number; received: number };
    expect(stats).to.deep.include({ accepted: 0, received: 0 });
    expect((await fetch(`${server.url}/health`)).status).to.equal(200);
    const ok = await post(`${server.url}/publish`, `${event(1)}\n`, { 'content-type': 'application/x-ndjson' });
    expect(ok.status).to.equal(200);
    await server.kill('SIGTERM');
  });

  const cases: Array<{
    name: string;
    path: string;
    headers: Record<string, string>;
    body: () => Buffer | string;
    status: number;
    code: string;
    message?: RegExp;
  }> = [
    // NDJSON on /publish
    {
      name: 'NDJSON with a broken line names the line',
      path: '/publish',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => `${event(1)}\n\n${event(2).slice(0, -1)}\n${event(3)}\n`,
      status: 400,
      code: 'invalid_json',
      message: /line 3 /,
    },
    {
      name: 'NDJSON with an invalid event names the line',
      path: '/publish',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => `${event(1)}\n{"topic":"nd"}\n`,
      status: 400,
      code: 'validation_failed',
    },
    {
      name: 'NDJSON of more lines than BATCH_EVENTS_MAX',
      path: '/publish',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => Array.from({ length: BATCH_EVENTS_MAX + 1 }, (_, i) => event(i)).join('\n'),
      status: 413,
      code: 'batch_too_large',
    },
    {
      name: 'NDJSON that is not UTF-8',
      path: '/publish',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]),
      status: 400,
      code: 'invalid_utf8',
    },
    {
      name: 'a top-level array with an invalid event',
      path: '/publish',
      headers: { 'content-type': 'application/json' },
      body: () => `[${event(1)}, {"topic": ""}]`,
      status: 400,
      code: 'validation_failed',
    },
    {
      name: 'NDJSON over BODY_BYTES_MAX',
      path: '/publish',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => `${event(1)}\n`.repeat(1000),
      status: 413,
      code: 'body_too_large',
    },
    // OTLP
    {
      name: 'OTLP: malformed protobuf',
      path: '/v1/logs',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
      status: 400,
      code: 'invalid_protobuf',
    },
    {
      name: 'OTLP: JSON that is not JSON',
      path: '/v1/logs',
      headers: { 'content-type': 'application/json' },
      body: () => '{"resourceLogs": [',
      status: 400,
      code: 'invalid_json',
    },
    {
      name: 'OTLP: JSON of the wrong shape',
      path: '/v1/logs',
      headers: { 'content-type': 'application/json' },
      body: () => '{"resourceLogs": {"a": 1}}',
      status: 400,
      code: 'validation_failed',
    },
    {
      name: 'OTLP: JSON with an integer attribute a double cannot hold (as JSON.parse would round it)',
      path: '/v1/logs',
      headers: { 'content-type': 'application/json' },
      body: () =>
        '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1761213600000000000","body":{"stringValue":"x"},' +
        '"attributes":[{"key":"big","value":{"intValue":12345678901234567891}}]}]}]}]}',
      status: 400,
      code: 'number_not_kept',
      message: /12345678901234567891 at byte offset \d+ of the OTLP JSON body/,
    },
    {
      name: 'OTLP: an unknown Content-Type',
      path: '/v1/logs',
      headers: { 'content-type': 'text/plain' },
      body: () => 'hello',
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'OTLP: more records than BATCH_EVENTS_MAX',
      path: '/v1/logs',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => otlpProtobuf(BATCH_EVENTS_MAX + 1),
      status: 413,
      code: 'batch_too_large',
    },
    {
      name: 'OTLP: a gzip body that inflates past BODY_BYTES_MAX',
      path: '/v1/logs',
      headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' },
      body: () => zlib.gzipSync(otlpProtobuf(1, 'z'.repeat(BODY_BYTES_MAX * 2))),
      status: 413,
      code: 'body_too_large',
    },
    {
      name: 'OTLP: broken gzip',
      path: '/v1/logs',
      headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' },
      body: () => Buffer.from('not gzip at all'),
      status: 400,
      code: 'invalid_compressed_body',
    },
    // Loki
    {
      name: 'Loki: bad snappy',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => Buffer.from([0x20, 0x01, 0x02, 0x03]),
      status: 400,
      code: 'invalid_snappy',
    },
    {
      name: 'Loki: valid snappy around bytes that are not a PushRequest',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => Buffer.concat([Buffer.from([0x06, 0x14]), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])]),
      status: 400,
      code: 'invalid_protobuf',
    },
    {
      name: 'Loki: a snappy block that says it inflates past BODY_BYTES_MAX',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => Buffer.from([0xff, 0xff, 0xff, 0x7f, 0x00]),
      status: 413,
      code: 'body_too_large',
    },
    {
      name: 'Loki: a malformed label set',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/x-protobuf' },
      body: () => encodeLokiProtobuf([{ labels: '{job=app}', entries: [{ nanos: 1n, line: 'x' }] }]),
      status: 400,
      code: 'validation_failed',
    },
    {
      name: 'Loki: JSON with a bad timestamp',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/json' },
      body: () => '{"streams":[{"stream":{"job":"a"},"values":[["1761213600000000000","ok"],["yesterday","bad"]]}]}',
      status: 400,
      code: 'validation_failed',
      message: /values\[1\]\[0\]/,
    },
    {
      name: 'Loki: JSON with a number a double cannot hold',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/json' },
      body: () => '{"streams":[{"stream":{"job":"a"},"values":[["1761213600000000000","ok"]]}],"n":0.30000000000000001}',
      status: 400,
      code: 'number_not_kept',
    },
    {
      name: 'Loki: an entry whose event would break the limits (topic label too long)',
      path: '/loki/api/v1/push',
      headers: { 'content-type': 'application/json' },
      body: () => JSON.stringify({ streams: [{ stream: { topic: 't'.repeat(300) }, values: [['1', 'x']] }] }),
      status: 400,
      code: 'validation_failed',
    },
    // Elasticsearch bulk
    {
      name: 'bulk: a broken source line names the line',
      path: '/_bulk',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => '{"create":{"_index":"a","_id":"1"}}\n{"m":1}\n{"create":{"_index":"a","_id":"2"}}\n{"m":\n',
      status: 400,
      code: 'invalid_json',
      message: /line 4 /,
    },
    {
      name: 'bulk: an action without its source line',
      path: '/_bulk',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => '{"create":{"_index":"a","_id":"1"}}\n',
      status: 400,
      code: 'validation_failed',
      message: /line 1/,
    },
    {
      name: 'bulk: more actions than BATCH_EVENTS_MAX',
      path: '/logs/_bulk',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => '{"index":{}}\n{"m":1}\n'.repeat(BATCH_EVENTS_MAX + 1),
      status: 413,
      code: 'batch_too_large',
    },
    {
      name: 'bulk: over BODY_BYTES_MAX',
      path: '/logs/_bulk',
      headers: { 'content-type': 'application/x-ndjson' },
      body: () => `{"index":{}}\n{"m":"${'y'.repeat(BODY_BYTES_MAX)}"}\n`,
      status: 413,
      code: 'body_too_large',
    },
  ];

  for (const { name, path, headers, body, status, code, message } of cases) {
    it(`${name}: ${status} ${code}`, async () => {
      const res = await post(`${server.url}${path}`, body(), headers);
      expect(res.status, JSON.stringify(res.body)).to.equal(status);
      expect(res.body.error).to.equal(code);
      if (message !== undefined) expect(JSON.stringify(res.body)).to.match(message);
    });
  }

  it('bulk errors carry X-Elastic-Product too', async () => {
    const res = await post(`${server.url}/_bulk`, '{"create":', { 'content-type': 'application/x-ndjson' });
    expect(res.status).to.equal(400);
    expect(res.headers.get('x-elastic-product')).to.equal('Elasticsearch');
  });
});

describe("the shippers' routes when writes cannot be accepted (real server process)", () => {
  let server: ServerProcess;
  before(async () => {
    // A backlog bound of one event: a request of two records is over it before anything is written.
    server = await startServerProcess(makeTempDir(), { QUEUE_MAX_SIZE: '1', RETRY_AFTER_SECONDS: '7' });
  });
  after(async () => {
    await server.kill('SIGTERM');
  });

  const requests: Array<{ name: string; path: string; contentType: string; body: () => Buffer | string }> = [
    { name: 'OTLP protobuf', path: '/v1/logs', contentType: 'application/x-protobuf', body: () => otlpProtobuf(2) },
    {
      name: 'Loki snappy protobuf',
      path: '/loki/api/v1/push',
      contentType: 'application/x-protobuf',
      body: () =>
        encodeLokiProtobuf([
          {
            labels: '{job="a"}',
            entries: [
              { nanos: 1n, line: 'x' },
              { nanos: 2n, line: 'y' },
            ],
          },
        ]),
    },
    {
      name: 'bulk',
      path: '/_bulk',
      contentType: 'application/x-ndjson',
      body: () => '{"index":{"_index":"a"}}\n{"m":1}\n{"index":{"_index":"a"}}\n{"m":2}\n',
    },
    { name: 'NDJSON', path: '/publish', contentType: 'application/x-ndjson', body: () => `${event(1)}\n${event(2)}\n` },
  ];
  for (const { name, path, contentType, body } of requests) {
    it(`${name}: 503 backlog_full with Retry-After, the answer every shipper retries; nothing written`, async () => {
      const res = await post(`${server.url}${path}`, body(), { 'content-type': contentType });
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.equal('7');
      expect(res.body.error).to.equal('backlog_full');
    });
  }

  it('stored nothing', async () => {
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as { accepted: number };
    expect(stats.accepted).to.equal(0);
  });
});
