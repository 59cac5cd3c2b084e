/**
 * The catalogue of expected (operating) errors. Each has a stable code, an HTTP status
 * and a one-line meaning; anything thrown that is not an AppError is a programmer error.
 */
export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, meaning: 'the body is not valid JSON' },
  validation_failed: { status: 400, meaning: 'an event breaks the schema; the whole request was rejected' },
  invalid_utf8: { status: 400, meaning: 'the body holds bytes that are not UTF-8; the answer names the first byte offset' },
  number_not_kept: { status: 400, meaning: 'a JSON number cannot be stored as sent (beyond the double range, -0, or too precise)' },
  bad_request: { status: 400, meaning: 'the HTTP request itself is malformed (framing, header syntax); the connection is closed' },
  invalid_query: { status: 400, meaning: 'a query parameter of GET /events is malformed or out of range' },
  invalid_compressed_body: { status: 400, meaning: 'the gzip/deflate/br body could not be inflated' },
  invalid_protobuf: { status: 400, meaning: 'an OTLP or Loki protobuf body is not the message the route takes' },
  invalid_snappy: { status: 400, meaning: 'a Loki protobuf body is not valid snappy (block format), or inflates past BODY_BYTES_MAX' },
  unauthorized: { status: 401, meaning: 'no API key, a malformed Authorization header, or an unknown key' },
  forbidden: { status: 403, meaning: 'the API key is valid but lacks the scope this route needs (publish or read)' },
  not_found: { status: 404, meaning: 'no such route' },
  method_not_allowed: { status: 405, meaning: 'the route exists but not for this method' },
  body_too_large: { status: 413, meaning: 'the (inflated) body is over BODY_BYTES_MAX' },
  batch_too_large: { status: 413, meaning: 'more events in one request than BATCH_EVENTS_MAX' },
  request_timeout: { status: 408, meaning: 'the request (or its headers) took longer than REQUEST_TIMEOUT_MS (HEADERS_TIMEOUT_MS)' },
  headers_too_large: { status: 431, meaning: 'the request line and headers are over the 16 KiB bound; the connection is closed' },
  rate_limited: {
    status: 429,
    meaning: 'this API key (or client address) is over RATE_LIMIT_PER_SECOND and its burst; retry after Retry-After',
  },
  unsupported_media_type: { status: 415, meaning: 'Content-Type is not JSON, or the charset/encoding is unsupported' },
  recovering: { status: 503, meaning: 'startup recovery is still replaying the log; retry after Retry-After' },
  backlog_full: { status: 503, meaning: 'the queue backlog is over QUEUE_MAX_SIZE; nothing was written' },
  log_no_space: { status: 503, meaning: 'the log device is full; nothing was written; writes resume when space returns' },
  log_failed: { status: 503, meaning: 'the log could not be made durable (fsync/EIO); the process stops for recovery' },
  shutting_down: { status: 503, meaning: 'the service is stopping; retry against the restarted instance' },
  subscribers_full: { status: 503, meaning: 'too many live-tail subscribers' },
  database_unavailable: {
    status: 503,
    meaning: 'cluster mode: the shared PostgreSQL did not answer within DATABASE_TIMEOUT_MS; nothing was acknowledged',
  },
  reads_busy: { status: 503, meaning: 'READ_QUEUE_MAX reads are already waiting for a read worker; retry after Retry-After' },
  read_failed: {
    status: 503,
    meaning: 'the read worker crashed or the read ran past READ_TIMEOUT_MS; the worker was replaced, retry after Retry-After',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** One problem inside a rejected request: which event, which field, what is wrong. */
export interface ErrorDetail {
  index: number;
  path: string;
  message: string;
}

/** An expected error with a stable code; the HTTP layer renders it, nothing else interprets it. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[] | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** Prefixes an error's message with a short verb phrase, keeping the original as `cause`. */
export function wrapError(context: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  const wrapped = new Error(`${context}: ${message}`, { cause: err });
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined) (wrapped as NodeJS.ErrnoException).code = code;
  return wrapped;
}
