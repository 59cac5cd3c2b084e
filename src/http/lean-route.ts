import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { RouteIndex } from './route-index';
import type { RouteSpec } from './routes';

/** What the app runs around a route, in express's order; `compress` is the app's compression middleware. */
export interface LeanRouteSteps {
  /** The app's compression middleware, run only for a request that names an Accept-Encoding. */
  compress: RequestHandler;
  /** The compression's answer filter (`compression({ filter })`), to tell when it would add `Vary`. */
  compressible: (req: Request, res: Response) => boolean;
  /** The app-wide middleware after compression: request log, metrics, auth, rate limit. */
  middleware: readonly RequestHandler[];
  /** The route's own handlers (its entry's `handlers`). */
  handlers: readonly RequestHandler[];
  /** What answers an error passed to `next` (the app's error handler). */
  onError: ErrorRequestHandler;
  /** What answers when every handler passed the request on (the app's 404/405 handler). */
  onUnhandled: RequestHandler;
}

/**
 * Serves one route of the table (the hot POST /publish) without express's router, and on
 * Node's own request/response objects: the same middleware and the route's own handlers run
 * in the order the router would run them, with the same error handler. Every other request,
 * and a request for this route asked through a mount (`app.handle` with a callback), goes
 * through the router as before.
 *
 * What it leaves out, and why it may:
 * - Express's request/response prototypes. `app.handle` switches every request's and
 *   answer's prototype (`Object.setPrototypeOf`), which sends V8's property access on those
 *   objects, all through Node's http code, to its slow path: a bare node:http echo served
 *   12.6k to 13.7k requests/s with the switch and 31.7k to 32.5k without (wrk, 64
 *   connections, docs/performance.md). The steps this path runs use Node's API only (auth,
 *   rate limit, request log, metrics, the body parsers, the handler); an error or an
 *   unhandled request gets the prototypes first, since the error and 404/405 handlers
 *   answer with express's `res.status().json()`.
 * - The router's layer matching and `next` machinery.
 * - For a request without Accept-Encoding (which the compression middleware would never
 *   compress), compression's wrappers around `res.write`/`res.end`; it then adds the `Vary:
 *   Accept-Encoding` header compression would have added, at the same point (writeHead).
 *
 * It does not change what any handler does: answers are the same, header for header
 * (test/http/lean-route.test.ts compares both ways).
 */
export function serveRouteWithoutRouter(
  app: Express,
  index: RouteIndex<RouteSpec>,
  spec: RouteSpec,
  steps: LeanRouteSteps,
  logger: Logger,
): void {
  const routed = app as unknown as ExpressInternals;
  const routerHandle = routed.handle.bind(app);
  const plain = [...steps.middleware, ...steps.handlers];
  const compressed = [steps.compress, ...plain];
  const varyOnHead = varyingWriteHead(steps.compressible);
  routed.handle = (req, res, callback) => {
    if (callback !== undefined || req.method !== spec.method || index.find(spec.method, pathOf(req.url)) !== spec) {
      routerHandle(req, res, callback);
      return;
    }
    // What app.handle and the router set up, but the prototypes (see above; `toExpress`).
    const request = req as unknown as { res: ServerResponse; originalUrl?: string; baseUrl: string; params: object };
    const response = res as unknown as { req: IncomingMessage; locals?: Record<string, unknown> };
    request.res = res;
    response.req = req;
    response.locals ??= Object.create(null) as Record<string, unknown>;
    request.originalUrl ??= req.url;
    request.baseUrl = '';
    request.params = {};
    const toExpress = (): void => {
      if (Object.getPrototypeOf(req) === routed.request) return;
      Object.setPrototypeOf(req, routed.request);
      Object.setPrototypeOf(res, routed.response);
    };
    const acceptsEncoding = req.headers['accept-encoding'] !== undefined;
    if (!acceptsEncoding) res.writeHead = varyOnHead;
    runSteps(acceptsEncoding ? compressed : plain, steps, toExpress, req as Request, res as Response, logger);
  };
}

/**
 * Runs `chain` as the router runs a route's layers: each gets `next`; a thrown error or a
 * rejected promise goes to the error handler. `toExpress` gives the request and answer
 * express's prototypes before the error or the 404/405 handler runs.
 */
function runSteps(
  chain: readonly RequestHandler[],
  steps: LeanRouteSteps,
  toExpress: () => void,
  req: Request,
  res: Response,
  logger: Logger,
): void {
  let position = 0;
  let failed = false;
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    try {
      toExpress();
      steps.onError(err, req, res, () => undefined);
    } catch (handlerError) {
      // The router would hand this to finalhandler; the error handler itself failing is a bug.
      logger.error({ err: handlerError }, 'error handler failed');
      res.destroy();
    }
  };
  const next: NextFunction = (err?: unknown) => {
    if (err !== undefined && err !== null) {
      fail(err);
      return;
    }
    const step = position < chain.length ? chain[position++]! : position++ === chain.length ? steps.onUnhandled : undefined;
    if (step === undefined) return;
    if (step === steps.onUnhandled) toExpress();
    try {
      const result = step(req, res, next);
      if (result instanceof Promise) result.catch((rejected: unknown) => next(rejected ?? new Error('Rejected promise')));
    } catch (thrown) {
      next(thrown);
    }
  };
  next();
}

/**
 * A `writeHead` that first adds Accept-Encoding to Vary when the compression middleware
 * would have (the answer passes its filter and has no Cache-Control: no-transform), as
 * compression does from its own writeHead hook; then Node's writeHead.
 */
function varyingWriteHead(compressible: (req: Request, res: Response) => boolean): ServerResponse['writeHead'] {
  return function writeHead(this: Response, ...args: unknown[]) {
    const cacheControl = this.getHeader('Cache-Control');
    if (compressible(this.req, this) && !(typeof cacheControl === 'string' && NO_TRANSFORM.test(cacheControl))) {
      addVary(this, 'Accept-Encoding');
    }
    return (Object.getPrototypeOf(this) as ServerResponse).writeHead.apply(this, args as Parameters<ServerResponse['writeHead']>);
  };
}

/** compression's test for Cache-Control: no-transform. */
const NO_TRANSFORM = /(?:^|,)\s*?no-transform\s*?(?:,|$)/;

/** Appends `field` to the Vary header unless it is there (or Vary is `*`), as the `vary` module does. */
function addVary(res: ServerResponse, field: string): void {
  const current = res.getHeader('Vary');
  const text = Array.isArray(current) ? current.join(', ') : current === undefined ? '' : String(current);
  if (text === '') {
    res.setHeader('Vary', field);
    return;
  }
  const fields = text.split(',').map((part) => part.trim().toLowerCase());
  if (fields.includes('*') || fields.includes(field.toLowerCase())) return;
  res.setHeader('Vary', `${text}, ${field}`);
}

/** The path of a request URL without its query string. */
function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const queryAt = raw.indexOf('?');
  return queryAt === -1 ? raw : raw.slice(0, queryAt);
}

/** The parts of an express app its types leave out. */
interface ExpressInternals {
  handle(req: IncomingMessage, res: ServerResponse, callback?: (err?: unknown) => void): void;
  request: object;
  response: object;
}
