import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { FIXED_LIMITS } from '../config/config';

const fieldString = (description: string) =>
  ({ type: 'string', minLength: 1, maxLength: FIXED_LIMITS.fieldLengthMax, description }) as const;

/** JSON Schema of one event: the seed's schema. Unknown top-level fields are ignored, not stored. */
export const EVENT_SCHEMA = {
  $id: 'Event',
  type: 'object',
  required: ['topic', 'event_id', 'timestamp', 'source'],
  properties: {
    topic: fieldString('Topic; with event_id, the dedup key.'),
    event_id: fieldString('Publisher-chosen id, unique within its topic.'),
    timestamp: {
      type: 'string',
      format: 'date-time',
      maxLength: FIXED_LIMITS.timestampLengthMax,
      description: 'RFC 3339 date-time with Z or an offset, naming a real instant.',
    },
    source: fieldString('Who sent the event.'),
    payload: { type: 'object', additionalProperties: true, description: 'Any JSON object; stored and returned as sent.' },
  },
} as const;

/** JSON Schema of a batch body `{"events": [...]}`; its size bound is checked before (413). */
export const BATCH_SCHEMA = {
  $id: 'Batch',
  type: 'object',
  required: ['events'],
  properties: { events: { type: 'array', items: { $ref: 'Event' } } },
} as const;

/** The compiled validators, built once at startup. */
export interface Validators {
  event: ValidateFunction;
  batch: ValidateFunction;
}

export function compileValidators(): Validators {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  addFormats(ajv, ['date-time']);
  ajv.addSchema(EVENT_SCHEMA);
  return { event: ajv.getSchema('Event')!, batch: ajv.compile(BATCH_SCHEMA) };
}

/** Turns an ajv error into {index, path, message}; `batch` means paths start with /events/<i>. */
export function describeAjvError(error: ErrorObject, batch: boolean): { index: number; path: string; message: string } {
  let parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let index = 0;
  if (batch) {
    if (parts[0] === 'events' && parts.length >= 2) {
      index = Number(parts[1]);
      parts = parts.slice(2);
    } else if (parts[0] === 'events') {
      parts = ['events'];
      index = -1;
    } else {
      index = -1;
    }
  }
  const missing = error.keyword === 'required' ? (error.params as { missingProperty: string }).missingProperty : null;
  if (missing !== null) parts.push(missing);
  const path = parts.join('.');
  let message = error.message ?? 'is invalid';
  if (missing !== null) message = 'is required';
  else if (error.keyword === 'format') message = 'must be an RFC 3339 date-time with Z or an offset (e.g. 2025-10-23T10:00:00Z)';
  return { index, path: path === '' ? '(root)' : path, message };
}
