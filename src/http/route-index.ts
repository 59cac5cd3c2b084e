import type { IncomingMessage } from 'node:http';
import parseurl from 'parseurl';
import { match } from 'path-to-regexp';
import type { ApiScope } from '../config/config';

/**
 * The path of a request as express's `req.path` gives it in app-wide middleware (parseurl's
 * pathname of `req.url`), but on any IncomingMessage: the lean /publish path runs the
 * middleware on Node's own request objects, without express's prototypes (lean-route.ts).
 */
export function requestPathOf(req: IncomingMessage): string {
  return parseurl(req)?.pathname ?? '/';
}

/** What the route index needs of a route-table entry (see RouteSpec in routes.ts). */
export interface RoutePattern {
  method: string;
  path: string;
  scope: ApiScope | null;
  logging?: 'normal' | 'quiet' | 'ingest';
}

/** Trailing slashes dropped from a pattern, as express 5 does before it compiles a route (router's `loosen`). */
function loosen(path: string): string {
  return path === '/' ? path : path.replace(/\/+$/, '');
}

/** Distinct request paths whose matching entries a RouteIndex remembers. */
const PATHS_CACHED = 256;

/**
 * Looks request paths up in the route table the way express 5 routes them: case-insensitive,
 * a trailing slash ignored, `:name` and `*name` segments as path-to-regexp reads them, HEAD
 * served by GET. Access control, request logs, metric labels and 404/405 answers all ask it,
 * so none of them keeps a list of paths of its own. It never decodes a path, so a malformed
 * %-escape cannot make it throw.
 */
export class RouteIndex<Route extends RoutePattern = RoutePattern> {
  private readonly compiled: Array<{ route: Route; matches: (path: string) => boolean }>;
  /**
   * The entries of recently asked paths: a request asks four to six times (log, metrics,
   * auth, rate limit) and each ask would try every pattern. Paths come from clients, so it
   * holds at most PATHS_CACHED and starts over when full.
   */
  private readonly recent = new Map<string, readonly Route[]>();

  constructor(readonly routes: readonly Route[]) {
    const seen = new Set<string>();
    this.compiled = routes.map((route) => {
      const key = `${route.method} ${loosen(route.path).toLowerCase()}`;
      if (seen.has(key)) throw new Error(`route table: ${key} is listed twice`);
      seen.add(key);
      const matcher = match(loosen(route.path), { sensitive: false, end: true, trailing: true, decode: false });
      return { route, matches: (path: string) => matcher(path) !== false };
    });
  }

  /** The entry that serves `method` on `path` (HEAD falls back to GET, as in express), if any. */
  find(method: string, path: string): Route | undefined {
    const upper = method.toUpperCase();
    const entries = this.forPath(path);
    const direct = entries.find((route) => route.method === upper);
    if (direct !== undefined || upper !== 'HEAD') return direct;
    return entries.find((route) => route.method === 'GET');
  }

  /** Every entry whose path matches `path`, whatever its method, in table order. */
  forPath(path: string): readonly Route[] {
    let entries = this.recent.get(path);
    if (entries === undefined) {
      entries = this.compiled.filter((c) => c.matches(path)).map((c) => c.route);
      if (this.recent.size >= PATHS_CACHED) this.recent.clear();
      this.recent.set(path, entries);
    }
    return entries;
  }

  /**
   * The scope a request needs, or null when it is open. The entry for (method, path) decides;
   * a path in the table asked with another method (answered 405) needs the first scope its
   * entries name, open only when all of them are; a path not in the table needs read
   * (deny by default).
   */
  scopeFor(method: string | undefined, path: string): ApiScope | null {
    const exact = method === undefined ? undefined : this.find(method, path);
    if (exact !== undefined) return exact.scope;
    const entries = this.forPath(path);
    if (entries.length === 0) return 'read';
    return entries.find((route) => route.scope !== null)?.scope ?? null;
  }

  /** The methods the table lists for `path`, for the Allow header of a 405; empty when the path is unknown. */
  allowedMethods(path: string): string[] {
    return [...new Set(this.forPath(path).map((route) => route.method))];
  }

  /** The table's pattern for `path` (a bounded label for logs and metrics), or null when no entry matches. */
  label(path: string): string | null {
    return this.forPath(path)[0]?.path ?? null;
  }

  /** True for the probes (`logging: 'quiet'`): their successful answers log at debug and the rate limit spares them. */
  isQuiet(method: string, path: string): boolean {
    return this.find(method, path)?.logging === 'quiet';
  }

  /** True when a successful answer to (method, path) is logged at debug only: the probes and the ingest routes. */
  logsSuccessAtDebug(method: string, path: string): boolean {
    const logging = this.find(method, path)?.logging;
    return logging === 'quiet' || logging === 'ingest';
  }
}
