import { createHash } from 'node:crypto';
import { invalidUtf8Offset } from './json-text';
import { AppError } from '../errors';
import type { LogEvent } from '../wal/record';

/** The shippers' protocols, as they label metrics and request logs. */
export type ProtocolName = 'publish' | 'ndjson' | 'otlp' | 'loki' | 'elastic';

/**
 * What a protocol decoder makes of a request body: one slot per record in request order,
 * either the mapped event (still to be validated like any /publish event) or the reason the
 * record could not be mapped. Decoding never writes anything.
 */
export interface MappedRecords {
  records: Array<LogEvent | { rejected: string }>;
}

/** True for a slot that holds a mapping failure rather than an event. */
export function isRejected(slot: LogEvent | { rejected: string }): slot is { rejected: string } {
  return (slot as { rejected?: unknown }).rejected !== undefined;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a body as UTF-8, refusing invalid sequences (400 invalid_utf8, naming the byte offset) instead of replacing them. */
export function decodeUtf8(body: Buffer, what: string): string {
  try {
    return UTF8.decode(body);
  } catch {
    const offset = invalidUtf8Offset(body) ?? 0;
    throw new AppError(
      'invalid_utf8',
      `${what} is not valid UTF-8: byte 0x${(body[offset] ?? 0).toString(16).padStart(2, '0')} at byte offset ${offset}`,
      {
        details: [{ index: -1, path: '(body)', message: `invalid UTF-8 at byte offset ${offset}` }],
      },
    );
  }
}

/**
 * The hex SHA-256 of a sequence of complete JSON texts. A JSON text ends unambiguously, so
 * the concatenation decodes one way only: different inputs cannot produce the same stream.
 */
export function digestJsonParts(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

const NANOS_PER_MS = 1_000_000n;
/** The last instant RFC 3339 can write with a four-digit year. */
const LAST_INSTANT_NS = BigInt(Date.parse('9999-12-31T23:59:59.999Z')) * NANOS_PER_MS + 999_999n;

/**
 * An RFC 3339 UTC timestamp for nanoseconds since the epoch, keeping every non-zero digit
 * of the fraction (milliseconds when the rest is zero); null past year 9999.
 */
export function isoFromNanos(nanos: bigint): string | null {
  if (nanos < 0n || nanos > LAST_INSTANT_NS) return null;
  const ms = nanos / NANOS_PER_MS;
  const rest = nanos % NANOS_PER_MS;
  const iso = new Date(Number(ms)).toISOString();
  if (rest === 0n) return iso;
  const fraction = (iso.slice(20, 23) + rest.toString().padStart(6, '0')).replace(/0+$/, '');
  return `${iso.slice(0, 20)}${fraction}Z`;
}

/** Sets an own enumerable property, so keys like `__proto__` stay data and never reach the prototype. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** Nanoseconds as a decimal string: digits only, at most 20 (a uint64). */
export function parseNanos(value: unknown): bigint | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) {
    const nanos = BigInt(value);
    return nanos <= 0xffff_ffff_ffff_ffffn ? nanos : null;
  }
  return null;
}
