import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import parseurl from 'parseurl';
import type { LevelWithSilent, Logger } from 'pino';
import type { ExpectedErrorLog } from './expected-log';
import type { RouteIndex } from './route-index';

/** The response header that carries the request id (taken from the client when sane). */
export const REQUEST_ID_HEADER = 'X-Request-Id';

/** A client-sent request id is reused only if it is 1..128 of these characters; otherwise one is generated. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Label for requests that matched no route, so that random paths cannot grow the label set. */
export const UNMATCHED_ROUTE = '(unmatched)';

/** The path of a request without its query string, before any router has stripped a mount prefix. */
function requestPath(req: IncomingMessage): string {
  return parseurl.original(req)?.pathname ?? '/';
}

/**
 * The route a request was for: the route table's pattern for its path (matched as express
 * does, case-insensitive, trailing slash ignored), else the express route pattern, else
 * "(unmatched)". Never the raw URL, so query strings and ids do not reach logs or labels.
 */
export function matchedRoute(req: IncomingMessage, routes: RouteIndex): string {
  const known = routes.label(requestPath(req));
  if (known !== null) return known;
  const pattern = (req as { route?: { path?: unknown } }).route?.path;
  return typeof pattern === 'string' ? pattern : UNMATCHED_ROUTE;
}

/** The client's X-Request-Id when sane, else a fresh UUID; echoed back in the response header. */
export function requestIdFor(req: IncomingMessage, res: ServerResponse): string {
  const sent = req.headers['x-request-id'];
  const id = typeof sent === 'string' && SANE_REQUEST_ID.test(sent) ? sent : randomUUID();
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/** Adds `error_code` (left in res.locals by the error handler) to a log object. */
function withErrorCode(res: ServerResponse, value: Record<string, unknown>): Record<string, unknown> {
  const code = (res as unknown as { locals?: { errorCode?: string } }).locals?.errorCode;
  return code === undefined ? value : { ...value, error_code: code };
}

/** The `req` of a request line: method and path without the query string (at most 256 characters). */
function requestFields(req: IncomingMessage): { method: string; path: string } {
  return { method: req.method ?? 'GET', path: requestPath(req).slice(0, 256) };
}

/**
 * One structured line per finished request: request id, method, route, url path, status,
 * responseTime (ms) and the error code when the answer was an error, in the line format
 * pino-http gave it (docs/operations.md). Headers are not logged at all, so Authorization
 * never reaches the log. Successful answers of routes the table marks `logging: 'quiet'`
 * (the probes) or `logging: 'ingest'` (POST /publish and the shippers' routes) log at
 * debug, errors 5xx at error, 4xx at warn; expected 503s go to `expected` (rate-limited)
 * when given. It writes the line with one call on the service's
 * logger when the answer is finished, instead of pino-http's two child loggers and
 * serializer wrappers per request: on the publish path those cost about 15 % of the CPU
 * and much of the garbage (see docs/performance.md).
 */
export function requestLogger(logger: Logger, routes: RouteIndex, expected?: ExpectedErrorLog): RequestHandler {
  const levelFor = (req: IncomingMessage, res: ServerResponse): LevelWithSilent => {
    // Expected 503s and 429s (disk full, backlog full, rate limited) get one rate-limited warn line, not one each.
    const code = (res as unknown as { locals?: { errorCode?: string } }).locals?.errorCode;
    if (expected?.handles(res.statusCode, code) === true) {
      expected.note(code!, matchedRoute(req, routes), res.statusCode);
      return 'silent';
    }
    if (res.statusCode >= 500) return 'error';
    if (res.statusCode >= 400) return 'warn';
    return routes.logsSuccessAtDebug(req.method ?? 'GET', requestPath(req)) ? 'debug' : 'info';
  };
  return (req, res, next) => {
    const startedMs = Date.now();
    const requestId = requestIdFor(req, res);
    let logged = false;
    const onDone = (): void => {
      if (logged) return;
      logged = true;
      res.removeListener('close', onDone);
      res.removeListener('finish', onDone);
      const level = levelFor(req, res);
      if (level === 'silent' || !logger.isLevelEnabled(level)) return;
      const responseTime = Date.now() - startedMs;
      const route = matchedRoute(req, routes);
      const head = { request_id: requestId, req: requestFields(req), route, res: { status: res.statusCode } };
      if (res.statusCode >= 500) {
        const err = new Error(`failed with status code ${res.statusCode}`);
        logger[level](withErrorCode(res, { ...head, err, responseTime }), `${req.method} ${route} ${res.statusCode} failed`);
        return;
      }
      logger[level](withErrorCode(res, { ...head, responseTime }), `${req.method} ${route} ${res.statusCode} ${responseTime}ms`);
    };
    res.on('close', onDone);
    res.on('finish', onDone);
    next();
  };
}
