import { ERROR_CATALOGUE, type ErrorCode } from '../errors';
import { ANSWER_SCHEMAS, schemaRef, type JsonObject } from './api-schemas';
import { ROUTE_TABLE, type DocumentedLimits, type RouteExample, type RouteSpec } from './routes';
import { BATCH_SCHEMA, EVENT_SCHEMA } from './schemas';

export type { DocumentedLimits } from './routes';

/** The schemas ajv validates with, by the `$id` they carry; they enter the document unchanged but for refs. */
export const VALIDATED_SCHEMAS: Record<string, JsonObject> = {
  [EVENT_SCHEMA.$id]: EVENT_SCHEMA,
  [BATCH_SCHEMA.$id]: BATCH_SCHEMA,
};

/**
 * Turns a schema ajv compiles into an OpenAPI component: `$id` dropped and every
 * `$ref: "<id>"` rewritten to `#/components/schemas/<id>`, so references resolve inside the
 * document. Nothing else changes (a test checks the reverse mapping gives the ajv schema back).
 */
export function toComponentSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toComponentSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === '$id') continue;
    if (key === '$ref' && typeof value === 'string' && VALIDATED_SCHEMAS[value] !== undefined) out.$ref = `#/components/schemas/${value}`;
    else out[key] = toComponentSchema(value);
  }
  return out;
}

/** A JSON error answer that carries one of `codes`. */
function errorAnswer(codes: readonly ErrorCode[]): JsonObject {
  const retry = codes.some((code) => ERROR_CATALOGUE[code].status === 503);
  const answer: JsonObject = {
    description: codes.map((code) => `\`${code}\`: ${ERROR_CATALOGUE[code].meaning}`).join('\n'),
    content: { 'application/json': { schema: { allOf: [schemaRef('Error'), { properties: { error: { enum: codes } } }] } } },
  };
  if (retry) answer.headers = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
  return answer;
}

/** Error answers grouped by status, for the codes a route can give. */
function errorAnswers(codes: readonly ErrorCode[]): Record<string, JsonObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CATALOGUE[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, JsonObject> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) out[String(status)] = errorAnswer(list);
  return out;
}

/** The errors every route with a scope can give before its handler runs (auth.ts). */
const ACCESS_ERRORS: readonly ErrorCode[] = ['unauthorized', 'forbidden'];

/** The errors of the rate limiter (rate-limit.ts), which guards every route but the quiet probes. */
const RATE_LIMIT_ERRORS: readonly ErrorCode[] = ['rate_limited'];

/** An express 5 path as an OpenAPI path template: `/:index/_bulk` -> `/{index}/_bulk`. */
export function openApiPath(path: string): string {
  if (/[*{}]/.test(path)) throw new Error(`route table: ${path} has a wildcard or an optional part; set openapi: false`);
  return path.replace(/:(\w+)/g, '{$1}');
}

/** The path parameters of an express 5 path, documented as required strings unless the entry lists them. */
function pathParameters(spec: RouteSpec): JsonObject[] {
  const listed = new Set((spec.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name));
  return [...spec.path.matchAll(/:(\w+)/g)]
    .map((m) => m[1]!)
    .filter((name) => !listed.has(name))
    .map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
}

/** Copies `media` (an OpenAPI Media Type Object map) with the named examples added to its first type. */
function withExamples(content: unknown, examples: Array<[string, { summary: string; value: unknown }]>): unknown {
  if (examples.length === 0 || content === null || typeof content !== 'object') return content;
  const entries = Object.entries(content as Record<string, JsonObject>);
  if (entries.length === 0) return content;
  const [type, media] = entries[0]!;
  return { ...(content as JsonObject), [type]: { ...media, examples: Object.fromEntries(examples) } };
}

/** The OpenAPI operation of one table entry: its answers and errors, examples, scope and security. */
function operationOf(spec: RouteSpec, limits: DocumentedLimits): JsonObject {
  const examples: readonly RouteExample[] = spec.examples ?? [];
  const responses: Record<string, JsonObject> = {};
  // Answers and error answers alike show the examples given for their status.
  const guards = [...(spec.scope === null ? [] : ACCESS_ERRORS), ...(spec.logging === 'quiet' ? [] : RATE_LIMIT_ERRORS)];
  const answers = { ...spec.answers, ...errorAnswers([...guards, ...spec.errors]) };
  for (const [status, answer] of Object.entries(answers)) {
    const shown = examples.filter((e) => String(e.status) === status && e.answer !== undefined);
    const named = shown.map((e): [string, { summary: string; value: unknown }] => [e.name, { summary: e.summary, value: e.answer }]);
    responses[status] = answer.content === undefined ? answer : { ...answer, content: withExamples(answer.content, named) };
  }
  const operation: JsonObject = { operationId: spec.operationId, summary: spec.summary };
  if (spec.description !== undefined) {
    operation.description = typeof spec.description === 'function' ? spec.description(limits) : spec.description;
  }
  const parameters = [...pathParameters(spec), ...(spec.parameters ?? [])];
  if (parameters.length > 0) operation.parameters = parameters;
  if (spec.requestBody !== undefined) {
    const bodies = examples.filter((e) => e.body !== undefined);
    const named = bodies.map((e): [string, { summary: string; value: unknown }] => [e.name, { summary: e.summary, value: e.body }]);
    operation.requestBody = { ...spec.requestBody, content: withExamples(spec.requestBody.content, named) };
  }
  operation.responses = responses;
  operation['x-scope'] = spec.scope ?? 'open';
  operation.security = spec.scope === null ? [] : [{ bearerAuth: [] }];
  return operation;
}

/**
 * The OpenAPI 3.1 document of the service, derived from the route table (ROUTE_TABLE):
 * one operation per entry not marked `openapi: false`. Request schemas are the ajv schemas
 * (EVENT_SCHEMA, BATCH_SCHEMA) via toComponentSchema; each operation's security and
 * `x-scope` are the entry's scope, the one the auth middleware enforces.
 */
export function buildOpenApiDocument(
  limits: DocumentedLimits,
  options: { version?: string; routes?: readonly RouteSpec[] } = {},
): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const spec of options.routes ?? ROUTE_TABLE) {
    if (spec.openapi === false) continue;
    const path = openApiPath(spec.path);
    paths[path] = { ...paths[path], [spec.method.toLowerCase()]: operationOf(spec, limits) };
  }
  const schemas: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(VALIDATED_SCHEMAS)) schemas[id] = toComponentSchema(schema);
  Object.assign(schemas, ANSWER_SCHEMAS);
  return {
    openapi: '3.1.0',
    info: {
      title: 'log-aggregator',
      version: options.version ?? '0.1.0',
      license: { name: 'MIT', identifier: 'MIT' },
      description:
        'Durable, deduplicating HTTP event ingest: exactly-once effect per (topic, event_id), each acknowledged event ' +
        'fsynced to the log before the 200. API keys (when configured): `Authorization: Bearer <key>`, scope publish for ' +
        'POST /publish, scope read for reads and /metrics; a scope without keys is open.',
    },
    // Relative: the document describes the instance that serves it, wherever it listens.
    servers: [{ url: '/', description: 'The service that served this document' }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key of the scope the operation names in x-scope.' },
      },
    },
  };
}
