import type { RequestHandler } from 'express';
import { ERROR_CATALOGUE } from '../errors';

type JsonObject = Record<string, any>;

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Escapes text and renders its markdown `code` spans and line breaks (OpenAPI descriptions are markdown). */
function prose(text: unknown): string {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\n/g, '<br>');
}

/** Follows a local `#/components/schemas/<name>` reference; anything else is returned as is. */
function resolve(document: JsonObject, schema: JsonObject): { name: string | null; schema: JsonObject } {
  const target = typeof schema.$ref === 'string' ? /^#\/components\/schemas\/(.+)$/.exec(schema.$ref) : null;
  if (target === null) return { name: null, schema };
  return { name: target[1]!, schema: document.components.schemas[target[1]!] ?? {} };
}

/** "1..255 chars", "≤ 64 chars", "≥ 0": a bound pair as short text; nothing when both are absent. */
function describeRange(min: number | undefined, max: number | undefined, unit: string): string[] {
  if (min !== undefined && max !== undefined) return [`${min}..${max}${unit}`];
  if (max !== undefined) return [`≤ ${max}${unit}`];
  if (min !== undefined) return [`≥ ${min}${unit}`];
  return [];
}

/** "string, 1..255 chars, date-time" and so on: the constraints of a schema on one line. */
function describeType(document: JsonObject, schema: JsonObject): string {
  const { name, schema: s } = resolve(document, schema);
  if (name !== null) return `<a href="#schema-${escapeHtml(name)}">${escapeHtml(name)}</a>`;
  if (s.enum !== undefined) return `one of ${s.enum.map((v: unknown) => `<code>${escapeHtml(JSON.stringify(v))}</code>`).join(', ')}`;
  if (s.const !== undefined) return `<code>${escapeHtml(JSON.stringify(s.const))}</code>`;
  const parts: string[] = [escapeHtml(Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? 'any'))];
  if (s.type === 'array' && s.items !== undefined) parts[0] = `array of ${describeType(document, s.items)}`;
  parts.push(...describeRange(s.minLength, s.maxLength, ' chars'), ...describeRange(s.minimum, s.maximum, ''));
  if (s.format !== undefined) parts.push(escapeHtml(s.format));
  if (s.default !== undefined) parts.push(`default ${escapeHtml(s.default)}`);
  return parts.join(', ');
}

/** A table of an object schema's properties: name, type and constraints, required, description. */
function propertiesTable(document: JsonObject, schema: JsonObject): string {
  const required = new Set<string>(schema.required ?? []);
  const rows = Object.entries<JsonObject>(schema.properties ?? {}).map(
    ([name, property]) =>
      `<tr><td><code>${escapeHtml(name)}</code></td><td>${describeType(document, property)}</td><td>${required.has(name) ? 'yes' : ''}</td><td>${prose(property.description ?? '')}</td></tr>`,
  );
  return `<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>${rows.join('')}</table>`;
}

/** The schema names a body or answer refers to (one, or the members of oneOf/allOf). */
function schemaLinks(document: JsonObject, schema: JsonObject | undefined): string {
  if (schema === undefined) return '';
  const members: JsonObject[] = schema.oneOf ?? schema.allOf ?? [schema];
  return members.map((member) => (member.$ref !== undefined ? describeType(document, member) : '')).filter((s) => s !== '').join(' or ');
}

/** One operation: method, path, scope, description, parameters, body and answers. */
function operationSection(document: JsonObject, path: string, method: string, op: JsonObject): string {
  const out: string[] = [];
  out.push(`<section class="op" id="${escapeHtml(op.operationId ?? `${method}-${path}`)}">`);
  out.push(`<h3><span class="method">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code> — ${escapeHtml(op.summary)}</h3>`);
  out.push(`<p class="scope">API key scope: <b>${escapeHtml(op['x-scope'])}</b></p>`);
  if (op.description !== undefined) out.push(`<p>${prose(op.description)}</p>`);
  if (Array.isArray(op.parameters) && op.parameters.length > 0) {
    const rows = op.parameters.map(
      (p: JsonObject) => `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td><td>${describeType(document, p.schema ?? {})}</td><td>${escapeHtml(p.description ?? '')}</td></tr>`,
    );
    out.push(`<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>${rows.join('')}</table>`);
  }
  const body = op.requestBody?.content?.['application/json']?.schema;
  if (body !== undefined) out.push(`<h4>Request body (application/json)</h4><p>${schemaLinks(document, body)}</p>`);
  const rows = Object.entries<JsonObject>(op.responses ?? {}).map(([status, answer]) => {
    const [type, media] = Object.entries<JsonObject>(answer.content ?? {})[0] ?? ['', {}];
    const links = type === 'application/json' ? schemaLinks(document, media.schema) : '';
    const shape = links !== '' ? links : escapeHtml(type);
    return `<tr><td>${escapeHtml(status)}</td><td>${shape}</td><td>${prose(answer.description ?? '')}</td></tr>`;
  });
  out.push(`<h4>Answers</h4><table><tr><th>status</th><th>body</th><th>meaning</th></tr>${rows.join('')}</table>`);
  out.push('</section>');
  return out.join('\n');
}

/**
 * Renders the OpenAPI document as one self-contained HTML page (inline CSS, no script, no
 * network): every operation, every schema as a table, and the error catalogue. It reads
 * only the document, so the page cannot say anything the document does not.
 */
export function renderDocsPage(document: JsonObject): string {
  const sections: string[] = [];
  for (const [path, operations] of Object.entries<JsonObject>(document.paths)) {
    for (const [method, op] of Object.entries<JsonObject>(operations)) sections.push(operationSection(document, path, method, op));
  }
  const schemas = Object.entries<JsonObject>(document.components.schemas).map(
    ([name, schema]) =>
      `<section id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>${schema.description !== undefined ? `<p>${escapeHtml(schema.description)}</p>` : ''}${propertiesTable(document, schema)}</section>`,
  );
  const errors = Object.entries(ERROR_CATALOGUE).map(
    ([code, { status, meaning }]) => `<tr><td><code>${escapeHtml(code)}</code></td><td>${status}</td><td>${escapeHtml(meaning)}</td></tr>`,
  );
  const info = document.info as JsonObject;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)} API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.4}
h1{margin-bottom:0}h3{margin-top:1.5rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
code{background:#f5f5f5;padding:0 .2rem}.method{background:#234;color:#fff;padding:.1rem .4rem;border-radius:3px;font-size:.9em}
.scope{color:#555;margin:.2rem 0}section.op{border-top:1px solid #ddd}
</style></head><body>
<h1>${escapeHtml(info.title)} API <small>${escapeHtml(info.version)}</small></h1>
<p>${prose(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${escapeHtml(document.openapi)}).</p>
<h2>Operations</h2>
${sections.join('\n')}
<h2>Schemas</h2>
${schemas.join('\n')}
<h2>Error codes</h2>
<p>Every error answer is <code>{"error": code, "message": text, "details"?: [...]}</code>; every 503 carries Retry-After.</p>
<table><tr><th>code</th><th>status</th><th>meaning</th></tr>${errors.join('')}</table>
</body></html>
`;
}

/** GET /docs. */
export function docsPageHandler(document: JsonObject): RequestHandler {
  const page = renderDocsPage(document);
  return (_req, res) => {
    res.status(200).type('text/html; charset=utf-8').send(page);
  };
}

/** GET /openapi.json: the document, serialised once. */
export function openApiHandler(document: JsonObject): RequestHandler {
  const body = JSON.stringify(document);
  return (_req, res) => {
    res.status(200).type('application/json').send(body);
  };
}
