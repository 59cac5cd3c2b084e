import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { API_SCOPES, digestApiKey, type ApiScope, type Config } from '../config/config';
import { AppError } from '../errors';

/** Paths anyone may call whatever keys are configured: probes and the API description. */
export const OPEN_PATHS: readonly string[] = ['/health', '/openapi.json', '/docs'];

/** Path prefixes that need the publish scope; every other path that is not open needs read. */
export const PUBLISH_PREFIXES: readonly string[] = ['/publish', '/v1/logs', '/loki/api/v1/push', '/_bulk'];

/** The bulk route of one index (`/<index>/_bulk`) publishes too. */
const INDEX_BULK_PATH = /^\/[^/]+\/_bulk$/;

/** `Authorization: Bearer <key>`; the key is one token of visible characters. */
const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

/** Lowercased path without a trailing slash, as express matches routes (case-insensitive, non-strict). */
function normalisePath(path: string): string {
  const lower = path.toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
}

/**
 * The scope a request path needs, or null for an open path. Decided by prefix, so routes
 * added later under /events (such as /events/stream) need read without further change;
 * anything not listed needs read (deny by default).
 */
export function scopeForPath(path: string): ApiScope | null {
  const p = normalisePath(path);
  if (OPEN_PATHS.includes(p)) return null;
  for (const prefix of PUBLISH_PREFIXES) {
    if (p === prefix || p.startsWith(`${prefix}/`)) return 'publish';
  }
  if (INDEX_BULK_PATH.test(p)) return 'publish';
  return 'read';
}

/** True when `digest` equals one of `digests`; every entry is compared, in constant time each. */
function matchesAny(digest: Buffer, digests: readonly Buffer[]): boolean {
  let found = false;
  for (const candidate of digests) {
    if (timingSafeEqual(digest, candidate)) found = true;
  }
  return found;
}

/** The scopes that have no keys and are therefore open to anyone who reaches the port. */
export function openScopes(digests: Config['apiKeyDigests']): ApiScope[] {
  return API_SCOPES.filter((scope) => digests[scope].length === 0);
}

/**
 * Bearer-key access control. A scope with no configured keys is open. Otherwise: no or
 * malformed Authorization, or an unknown key -> 401 unauthorized (with WWW-Authenticate);
 * a known key of another scope -> 403 forbidden. Keys are compared as SHA-256 digests with
 * timingSafeEqual, and neither the key nor its digest is ever logged or echoed.
 */
export function authMiddleware(apiKeyDigests: Config['apiKeyDigests']): RequestHandler {
  const digests: Record<ApiScope, Buffer[]> = { publish: [], read: [] };
  for (const scope of API_SCOPES) digests[scope] = apiKeyDigests[scope].map((hex) => Buffer.from(hex, 'hex'));
  return (req, res, next) => {
    const scope = scopeForPath(req.path);
    if (scope === null || digests[scope].length === 0) {
      next();
      return;
    }
    const challenge = (error: string): void => {
      res.set('WWW-Authenticate', `Bearer realm="log-aggregator", scope="${scope}", error="${error}"`);
    };
    const header = req.get('authorization');
    if (header === undefined) {
      challenge('invalid_request');
      next(new AppError('unauthorized', `${req.method} ${req.path} needs an API key of scope ${scope}: send Authorization: Bearer <key>`));
      return;
    }
    const match = BEARER.exec(header);
    if (match === null) {
      challenge('invalid_request');
      next(new AppError('unauthorized', 'the Authorization header must be "Bearer <key>"'));
      return;
    }
    const digest = Buffer.from(digestApiKey(match[1]!), 'hex');
    if (matchesAny(digest, digests[scope])) {
      next();
      return;
    }
    const otherScopes = API_SCOPES.filter((other) => other !== scope && matchesAny(digest, digests[other]));
    if (otherScopes.length > 0) {
      next(new AppError('forbidden', `this API key has scope ${otherScopes.join(', ')}; ${req.method} ${req.path} needs scope ${scope}`));
      return;
    }
    challenge('invalid_token');
    next(new AppError('unauthorized', 'unknown API key'));
  };
}
