import { AppError } from '../errors';
import type { LogEvent } from '../wal/record';
import { digestJsonParts } from './common';
import { parseNdjson } from './ndjson';

/**
 * Elasticsearch bulk (POST /_bulk, POST /<index>/_bulk): the NDJSON action/source pairs
 * that log shippers send, `create` and `index` only. Each pair is one event in the index's
 * topic; the answer has the bulk response shape clients parse.
 */

/** An error item as Elasticsearch reports it. */
export interface BulkItemError {
  status: number;
  type: string;
  reason: string;
}

/** One action of a bulk request after mapping: its event, or the error its item answers. */
export interface BulkAction {
  op: string;
  index: string | null;
  id: string;
  slot: LogEvent | { error: BulkItemError };
}

/** Where the source document does not say who sent it. */
const SOURCE_DEFAULT = 'elasticsearch';
/** The actions that carry a source line. */
const ACTIONS_WITH_SOURCE = new Set(['create', 'index', 'update']);
/** The actions stored as events. */
const ACTIONS_STORED = new Set(['create', 'index']);

function malformed(line: number, message: string): AppError {
  const text = `line ${line}: ${message}`;
  return new AppError('validation_failed', `malformed bulk request: ${text}; nothing was written`, {
    details: [{ index: -1, path: `line ${line}`, message }],
  });
}

/** The event's timestamp from `@timestamp` (RFC 3339 string or epoch milliseconds), else the acceptance time. */
function timestampOf(document: Record<string, unknown>, nowIso: string): string | null {
  const value = document['@timestamp'];
  if (value === undefined) return nowIso;
  if (typeof value === 'number' && Number.isFinite(value)) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }
  return typeof value === 'string' ? value : null;
}

function sourceOf(document: Record<string, unknown>): string {
  const host = document.host;
  if (typeof host === 'string' && host !== '') return host;
  const name = (host as { name?: unknown } | null | undefined)?.name;
  if (host !== null && typeof host === 'object' && typeof name === 'string' && name !== '') return name;
  return SOURCE_DEFAULT;
}

/**
 * Parses a bulk body into its actions. A line that is not JSON, an action line that is not
 * `{"<action>": {...}}`, or a missing source line rejects the whole request (400, with the
 * line number), as Elasticsearch does; an unsupported action or a document without an
 * index fails its item only. `_id` is the event_id; without one, SHA-256 of the source line.
 */
export function decodeBulk(text: string, urlIndex: string | null, actionsMax: number, nowIso: string): BulkAction[] {
  // Each action is at most two lines: bound the lines before parsing any.
  const lines = parseNdjson(text, actionsMax * 2, 'bulk');
  const actions: BulkAction[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const { line, value } = lines[i]!;
    if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length !== 1) {
      throw malformed(line, 'an action line must be an object with one key (create, index, update or delete)');
    }
    const op = Object.keys(value)[0]!;
    const meta = (value as Record<string, unknown>)[op];
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw malformed(line, `the [${op}] action must be an object`);
    const { _index: metaIndex, _id: metaId } = meta as { _index?: unknown; _id?: unknown };
    const index = typeof metaIndex === 'string' && metaIndex !== '' ? metaIndex : urlIndex;
    let sourceLine: { text: string; value: unknown } | null = null;
    if (ACTIONS_WITH_SOURCE.has(op)) {
      const next = lines[i + 1];
      if (next === undefined) throw malformed(line, `the [${op}] action has no source line after it`);
      sourceLine = next;
      i += 1;
    }
    if (actions.length === actionsMax)
      throw new AppError('batch_too_large', `bulk request of more than ${actionsMax} actions is over BATCH_EVENTS_MAX=${actionsMax}`);
    const id =
      typeof metaId === 'string' && metaId !== '' ? metaId : sourceLine === null ? '' : digestJsonParts([JSON.stringify(sourceLine.text)]);
    const fail = (status: number, type: string, reason: string): void => {
      actions.push({ op, index, id, slot: { error: { status, type, reason } } });
    };
    if (!ACTIONS_STORED.has(op)) {
      fail(
        400,
        'illegal_argument_exception',
        `action [${op}] is not supported: this service stores each document once and never changes it (use create or index)`,
      );
      continue;
    }
    if (index === null) {
      fail(400, 'action_request_validation_exception', 'Validation Failed: 1: index is missing;');
      continue;
    }
    if (metaId !== undefined && typeof metaId !== 'string') {
      fail(400, 'illegal_argument_exception', '_id must be a string');
      continue;
    }
    const document = sourceLine!.value;
    if (document === null || typeof document !== 'object' || Array.isArray(document)) {
      throw malformed(lines[i]!.line, 'the source line must be a JSON object');
    }
    const timestamp = timestampOf(document as Record<string, unknown>, nowIso);
    if (timestamp === null) {
      fail(400, 'document_parsing_exception', 'failed to parse field [@timestamp]: must be an RFC 3339 date-time or epoch milliseconds');
      continue;
    }
    actions.push({
      op,
      index,
      id,
      slot: {
        topic: index,
        event_id: id,
        timestamp,
        source: sourceOf(document as Record<string, unknown>),
        payload: document as Record<string, unknown>,
      },
    });
  }
  return actions;
}

/** The outcome of one stored action, to answer it. */
export type BulkOutcome = { status: 'accepted' | 'duplicate'; seq: number } | { error: BulkItemError };

/**
 * The bulk response: `took`, `errors` and one item per action in order. A new document is
 * 201 `created`; a `create` whose _id exists is 409 version_conflict_engine_exception, as
 * Elasticsearch answers; an `index` whose _id exists is 200 `noop` (the stored document is
 * kept, never overwritten).
 */
export function bulkResponse(actions: BulkAction[], outcomes: BulkOutcome[], tookMs: number): Record<string, unknown> {
  let errors = false;
  const items = actions.map((action, i) => {
    const outcome = outcomes[i]!;
    const head = { _index: action.index, _id: action.id };
    if ('error' in outcome) {
      errors = true;
      const { status, type, reason } = outcome.error;
      return { [action.op]: { ...head, status, error: { type, reason, index: action.index } } };
    }
    if (outcome.status === 'duplicate' && action.op === 'create') {
      errors = true;
      const reason = `[${action.id}]: version conflict, document already exists (current version [1])`;
      return {
        [action.op]: {
          ...head,
          status: 409,
          error: { type: 'version_conflict_engine_exception', reason, index: action.index, shard: '0' },
        },
      };
    }
    const created = outcome.status === 'accepted';
    return {
      [action.op]: {
        ...head,
        _version: 1,
        result: created ? 'created' : 'noop',
        _shards: { total: 1, successful: 1, failed: 0 },
        _seq_no: outcome.seq,
        _primary_term: 1,
        status: created ? 201 : 200,
      },
    };
  });
  return { took: Math.max(0, Math.round(tookMs)), errors, items };
}
