import { expect } from 'chai';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Express } from 'express';
import pino from 'pino';
import { loadConfig } from '../../src/config/config';
import { createApp } from '../../src/http/app';
import { buildOpenApiDocument, openApiPath, VALIDATED_SCHEMAS } from '../../src/http/openapi';
import { ROUTE_TABLE } from '../../src/http/routes';
import { compileValidators } from '../../src/http/schemas';
import { Aggregator } from '../../src/ingest/aggregator';
import { makeEvent } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { makeTempDir } from '../helpers/temp-dir';

type Json = Record<string, any>;

/** Every (method, path) the express app routes, found by walking its router stack. */
function routedOperations(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: any[]): void => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        for (const method of Object.keys(layer.route.methods)) found.push(`${method.toUpperCase()} ${layer.route.path}`);
      } else if (Array.isArray(layer.handle?.stack)) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as any).router.stack);
  return found.sort();
}

/** Maps a component schema back to what ajv compiles: refs as `$id`s, `$id` restored. */
function toAjvSchema(schema: unknown, id?: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => toAjvSchema(s));
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Json = id === undefined ? {} : { $id: id };
  for (const [key, value] of Object.entries(schema)) {
    out[key] = key === '$ref' ? String(value).replace('#/components/schemas/', '') : toAjvSchema(value);
  }
  return out;
}

/** Every `$ref` anywhere in a JSON value. */
function allRefs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => allRefs(v, out));
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref') out.push(String(v));
      else allRefs(v, out);
    }
  }
  return out;
}

const LIMITS = { bodyBytesMax: 1024 * 1024, batchEventsMax: 1000, payloadBytesMax: 65536, payloadDepthMax: 32 };

describe('OpenAPI document', () => {
  const document: Json = buildOpenApiDocument(LIMITS);
  let app: Express;
  let aggregator: Aggregator;
  before(async () => {
    const config = loadConfig({ DATA_DIR: makeTempDir() });
    aggregator = new Aggregator({ config, logger: pino({ level: 'silent' }) });
    app = createApp(aggregator, config, pino({ level: 'silent' }));
  });

  it('is OpenAPI 3.1 with paths, schemas and the bearer scheme', () => {
    expect(document.openapi).to.equal('3.1.0');
    expect(document.components.securitySchemes.bearerAuth).to.deep.include({ type: 'http', scheme: 'bearer' });
  });

  it('names its server (relative: the serving instance) and its license', () => {
    expect(document.servers).to.deep.equal([{ url: '/', description: 'The service that served this document' }]);
    expect(document.info.license).to.deep.equal({ name: 'MIT', identifier: 'MIT' });
  });

  it('lets payload hold any properties, in requests and in stored events', () => {
    expect(document.components.schemas.Event.properties.payload).to.include({ type: 'object', additionalProperties: true });
    expect(document.components.schemas.StoredEvent.properties.payload).to.include({ type: 'object', additionalProperties: true });
  });

  it('routes exactly the entries of the route table (src/http/routes.ts ROUTE_TABLE)', () => {
    const fromTable = ROUTE_TABLE.map((spec) => `${spec.method} ${spec.path}`).sort();
    expect(routedOperations(app)).to.deep.equal(fromTable);
  });

  // One case per documented entry of the route table: an entry missing from the document fails here.
  for (const spec of ROUTE_TABLE.filter((entry) => entry.openapi !== false)) {
    const { method } = spec;
    const path = openApiPath(spec.path);
    it(`documents ${method} ${path}, with its answers and its key scope`, () => {
      const operation = document.paths[path]?.[method.toLowerCase()];
      expect(operation, `${method} ${path} is not in the OpenAPI document (src/http/openapi.ts)`).to.be.an('object');
      expect(operation.summary).to.be.a('string').and.not.equal('');
      // Its success answer: 200, or 204 where the protocol answers no body (Loki push).
      expect(Object.keys(operation.responses).filter((status) => /^2\d\d$/.test(status))).to.have.length.greaterThan(0);
      expect(operation['x-scope']).to.be.oneOf(['publish', 'read', 'open']);
      expect(operation['x-scope']).to.equal(spec.scope ?? 'open');
      expect(operation.security).to.deep.equal(operation['x-scope'] === 'open' ? [] : [{ bearerAuth: [] }]);
    });
  }

  it('documents no path the app does not route', () => {
    const routed = ROUTE_TABLE.filter((spec) => spec.openapi !== false).map((spec) => openApiPath(spec.path));
    for (const path of Object.keys(document.paths)) expect(routed, path).to.include(path);
  });

  it('carries the very schemas ajv validates with (only $id dropped and refs made local)', () => {
    for (const [id, schema] of Object.entries(VALIDATED_SCHEMAS)) {
      expect(toAjvSchema(document.components.schemas[id], id), id).to.deep.equal(JSON.parse(JSON.stringify(schema)));
    }
    const body = document.paths['/publish'].post.requestBody.content['application/json'].schema;
    expect(body.oneOf).to.deep.equal([{ $ref: '#/components/schemas/Event' }, { $ref: '#/components/schemas/Batch' }]);
  });

  it('resolves every $ref inside its own components', () => {
    const refs = allRefs(document);
    expect(refs).to.include('#/components/schemas/Event');
    for (const ref of refs) {
      const match = /^#\/components\/schemas\/([^/]+)$/.exec(ref);
      expect(match, ref).not.to.equal(null);
      expect(document.components.schemas, ref).to.have.property(match![1]!);
    }
  });

  it('validates request bodies exactly as the service does, using only the served document', () => {
    const served = JSON.parse(JSON.stringify(document)) as Json;
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats(ajv, ['date-time']);
    const check = ajv.compile({
      $id: 'openapi.json',
      ...served.paths['/publish'].post.requestBody.content['application/json'].schema,
      components: served.components,
    });
    const service = compileValidators();
    const good = makeEvent('doc.t', 'e1');
    const samples: unknown[] = [
      good,
      { events: [good, good] },
      { events: [] },
      { ...good, topic: '' },
      { ...good, timestamp: 'yesterday' },
      { ...good, payload: [1, 2] },
      { events: [good, { ...good, source: 'x'.repeat(256) }] },
      { events: 'none' },
      { topic: 't' },
    ];
    for (const sample of samples) {
      const isBatch = Object.prototype.hasOwnProperty.call(sample, 'events');
      const serviceVerdict = (isBatch ? service.batch : service.event)(sample);
      expect(check(sample), JSON.stringify(sample).slice(0, 80)).to.equal(serviceVerdict);
    }
  });

  describe('against a running service', () => {
    let svc: InProcessService;
    let ajv: Ajv2020;
    let served: Json;
    let checks = 0;
    before(async () => {
      svc = await startInProcessService();
      served = (await (await fetch(`${svc.url}/openapi.json`)).json()) as Json;
      ajv = new Ajv2020({ strict: false, allErrors: true });
      addFormats(ajv, ['date-time']);
    });
    after(async () => svc.stop());

    /** Validates a real answer against the schema the document gives for (path, method, status). */
    function expectDocumented(path: string, method: string, status: number, body: unknown): void {
      const answer = served.paths[path][method].responses[String(status)];
      expect(answer, `${method} ${path} ${status} is not documented`).to.be.an('object');
      const schema = answer.content['application/json'].schema;
      // The answer's schema with the document's components beside it, so its local refs resolve.
      const validate = ajv.compile({ $id: `answer-${(checks += 1)}`, ...schema, components: served.components });
      expect(validate(body), `${JSON.stringify(validate.errors)} for ${JSON.stringify(body).slice(0, 200)}`).to.equal(true);
    }

    it('serves the document at /openapi.json with the limits in force', async () => {
      expect(served.paths['/publish'].post.description).to.contain('1048576 bytes');
    });

    it('answers exactly what the document says, for successes and errors', async () => {
      const event = makeEvent('doc.live', 'e1');
      const post = async (body: unknown) => {
        const res = await fetch(`${svc.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as any };
      };
      const first = await post({ events: [event, event] });
      expectDocumented('/publish', 'post', first.status, first.body);
      const conflict = await post({ ...event, payload: { changed: true } });
      expect(conflict.body.results[0].conflict).to.equal(true);
      expectDocumented('/publish', 'post', 200, conflict.body);
      const invalid = await post({ topic: 'doc.live' });
      expectDocumented('/publish', 'post', invalid.status, invalid.body);
      for (const path of ['/events?topic=doc.live', '/events?limit=nope', '/stats', '/health']) {
        const res = await fetch(`${svc.url}${path}`);
        expectDocumented(path.split('?')[0]!, 'get', res.status, await res.json());
      }
    });

    it('serves Swagger UI at /docs over /openapi.json, every file from this service', async () => {
      const res = await fetch(`${svc.url}/docs`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      const html = await res.text();
      expect(html).to.contain("url: '/openapi.json'");
      expect(html).to.contain('tryItOutEnabled: true');
      expect(Object.keys(served.paths)).to.include.members([
        '/publish',
        '/events',
        '/events/histogram',
        '/events/stream',
        '/stats',
        '/health',
      ]);
      // Nothing fetched from elsewhere, and every file it names is served.
      expect(html).not.to.match(/(src|href)="(https?:)?\/\//i);
      const files = [...html.matchAll(/(?:src|href)="(\/docs\/[^"]+)"/g)].map((m) => m[1]!);
      expect(files).to.include.members(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js']);
      for (const file of files) expect((await fetch(`${svc.url}${file}`)).status, file).to.equal(200);
      expect((await fetch(`${svc.url}/docs/package.json`)).status).to.equal(404);
    });
  });

  describe('examples', () => {
    let svc: InProcessService;
    let served: Json;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv, ['date-time']);
    before(async () => {
      svc = await startInProcessService();
      served = (await (await fetch(`${svc.url}/openapi.json`)).json()) as Json;
    });
    after(async () => svc.stop());

    /** A validator of one schema of the served document, with its components beside it so refs resolve. */
    const compile = (schema: Json) => ajv.compile({ ...schema, components: served.components });

    it('gives every documented operation at least one example, each answer matching its documented schema', () => {
      for (const spec of ROUTE_TABLE.filter((entry) => entry.openapi !== false)) {
        expect(spec.examples ?? [], `${spec.method} ${spec.path} has no example`).not.to.have.length(0);
        const operation = served.paths[openApiPath(spec.path)][spec.method.toLowerCase()];
        for (const example of spec.examples ?? []) {
          const content = operation.responses[String(example.status)].content as Json | undefined;
          // An answer without a body (Loki's 204) has no media type to hold an example.
          if (content === undefined) {
            expect(example.answer, `${spec.operationId} ${example.name}`).to.equal(undefined);
            continue;
          }
          const [type, media] = Object.entries<Json>(content)[0]!;
          expect(media.examples?.[example.name]?.value, `${spec.operationId} ${example.name}`).to.deep.equal(example.answer);
          if (type !== 'application/json') continue;
          const validate = compile(media.schema);
          expect(validate(example.answer), `${spec.operationId} ${example.name}: ${JSON.stringify(validate.errors)}`).to.equal(true);
        }
        if (operation.requestBody !== undefined) {
          const media = Object.values<Json>(operation.requestBody.content)[0]!;
          const validate = compile(media.schema);
          for (const [name, example] of Object.entries<Json>(media.examples ?? {})) {
            expect(validate(example.value), `${spec.operationId} ${name} body: ${JSON.stringify(validate.errors)}`).to.equal(true);
          }
        }
      }
    });

    it('are answered by a fresh service, in table order, with the documented status and schema (publish answers verbatim)', async () => {
      for (const spec of ROUTE_TABLE.filter((entry) => entry.openapi !== false)) {
        const operation = served.paths[openApiPath(spec.path)][spec.method.toLowerCase()];
        for (const example of spec.examples ?? []) {
          const what = `${spec.operationId} ${example.name}`;
          const query = example.query === undefined ? '' : `?${new URLSearchParams(example.query).toString()}`;
          const bodyType = operation.requestBody === undefined ? undefined : Object.keys(operation.requestBody.content)[0];
          const abort = new AbortController();
          const res = await fetch(`${svc.url}${spec.path}${query}`, {
            method: spec.method,
            signal: abort.signal,
            ...(example.body === undefined
              ? {}
              : {
                  headers: { 'content-type': bodyType! },
                  body: typeof example.body === 'string' ? example.body : JSON.stringify(example.body),
                }),
          });
          expect(res.status, what).to.equal(example.status);
          const content = operation.responses[String(example.status)].content as Json | undefined;
          if (content === undefined) {
            expect(await res.text(), what).to.equal('');
            continue;
          }
          const [type, media] = Object.entries<Json>(content)[0]!;
          expect(res.headers.get('content-type'), what).to.contain(type);
          if (type === 'text/event-stream') {
            abort.abort();
            continue;
          }
          const text = await res.text();
          if (type !== 'application/json') continue;
          const validate = compile(media.schema);
          expect(validate(JSON.parse(text)), `${what}: ${JSON.stringify(validate.errors)}`).to.equal(true);
          if (spec.operationId === 'publish') expect(JSON.parse(text), what).to.deep.equal(example.answer);
        }
      }
    });
  });
});
