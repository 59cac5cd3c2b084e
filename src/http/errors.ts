import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { AppError, type ErrorCode } from '../errors';
import { WalError, type WalErrorCode } from '../wal/errors';
import type { RouteIndex } from './route-index';

/** body-parser's error types and the catalogue codes they become. */
const BODY_PARSER_ERRORS: Record<string, (err: { message: string; limit?: number; length?: number }) => AppError> = {
  'entity.parse.failed': (err) => new AppError('invalid_json', `the body is not valid JSON: ${err.message}`),
  'entity.too.large': (err) => new AppError('body_too_large', `the body is over BODY_BYTES_MAX=${err.limit} bytes (after decompression)`),
  'encoding.unsupported': (err) => new AppError('unsupported_media_type', err.message),
  'charset.unsupported': (err) => new AppError('unsupported_media_type', err.message),
  'request.aborted': () => new AppError('invalid_json', 'the request was aborted before the body was complete'),
  'request.size.invalid': () => new AppError('invalid_json', 'the body is shorter or longer than its Content-Length'),
};

/** The catalogue code of each log-writer failure (src/wal/errors.ts). */
const WAL_ERRORS: Record<WalErrorCode, ErrorCode> = { no_space: 'log_no_space', failed: 'log_failed', closed: 'shutting_down' };

/**
 * Maps anything thrown by a route to an AppError, or null for a programmer error. Log
 * failures (WalError) become 503s that tell the client to retry after `retryAfterSeconds`.
 */
export function toAppError(err: unknown, retryAfterSeconds = 1): AppError | null {
  if (err instanceof AppError) return err;
  if (err instanceof WalError) return new AppError(WAL_ERRORS[err.code], err.message, { retryAfterSeconds, cause: err });
  const type = (err as { type?: string } | null)?.type;
  if (type !== undefined && BODY_PARSER_ERRORS[type] !== undefined) return BODY_PARSER_ERRORS[type](err as { message: string });
  // zlib errors from a broken gzip/deflate/br body arrive from body-parser with status 400.
  const zlibCode = (err as { code?: unknown } | null)?.code;
  if (typeof zlibCode === 'string' && /^(Z_|ERR__|ERR_BROTLI|ERR_ZLIB)/.test(zlibCode)) {
    return new AppError('invalid_compressed_body', `the compressed body could not be inflated: ${(err as Error).message}`);
  }
  const status = (err as { status?: number } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError('invalid_json', `the body could not be read: ${(err as Error).message}`);
  }
  return null;
}

/**
 * The JSON error answer; Retry-After on every 503. Programmer errors are 500 and logged.
 * The code is left in `res.locals.errorCode` for the request log and the rejected-requests metric.
 */
export function errorHandler(logger: Logger, retryAfterSeconds?: number): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const appError = toAppError(err, retryAfterSeconds);
    if (appError === null) {
      res.locals.errorCode = 'internal';
      logger.error({ err }, 'unexpected error in request');
      if (!res.headersSent) res.status(500).json({ error: 'internal', message: 'internal error; see the service log' });
      return;
    }
    if (res.headersSent) return;
    res.locals.errorCode = appError.code;
    if (appError.retryAfterSeconds !== undefined) res.set('Retry-After', String(appError.retryAfterSeconds));
    const body: Record<string, unknown> = { error: appError.code, message: appError.message };
    if (appError.details !== undefined) body.details = appError.details;
    res.status(appError.status).json(body);
  };
}

/** 405 for a path the route table has with another method, 404 for anything else. */
export function notFoundHandler(routes: RouteIndex): RequestHandler {
  return (req, res) => {
    const methods = routes.allowedMethods(req.path);
    if (methods.length > 0) {
      res.set('Allow', methods.join(', '));
      res.locals.errorCode = 'method_not_allowed';
      res
        .status(405)
        .json({ error: 'method_not_allowed', message: `${req.method} ${req.path} is not supported; use ${methods.join(' or ')}` });
      return;
    }
    res.locals.errorCode = 'not_found';
    res.status(404).json({ error: 'not_found', message: `no route ${req.method} ${req.path}` });
  };
}
