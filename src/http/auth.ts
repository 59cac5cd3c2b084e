import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { API_SCOPES, digestApiKey, type ApiScope, type Config } from '../config/config';
import { AppError } from '../errors';
import { requestPathOf, type RouteIndex } from './route-index';
import { ROUTE_INDEX } from './routes';

/**
 * `Authorization: <scheme> <token>`, the token one run of visible characters. The schemes:
 * `Bearer <key>`; `Basic base64(user:key)` (the key is the password, the user is ignored), as
 * Fluent Bit's and Logstash's Elasticsearch outputs send it; `ApiKey <key>` or `ApiKey
 * base64(id:key)`, as the Elasticsearch clients send it.
 */
const CREDENTIALS = /^(Bearer|Basic|ApiKey)[ \t]+([\x21-\x7e]+)[ \t]*$/i;

/** The schemes CREDENTIALS takes, as error messages name them. */
const SCHEMES_TEXT = '"Bearer <key>", "Basic base64(user:key)" or "ApiKey <key>"';

/**
 * The keys an Authorization header may carry, to be checked in order; null for a header of
 * another shape. A base64 token that does not decode to `user:key` (or `id:key`) yields
 * itself only for ApiKey, whose clients may send the key as it is.
 */
export function credentialsOf(header: string): string[] | null {
  const match = CREDENTIALS.exec(header);
  if (match === null) return null;
  const scheme = match[1]!.toLowerCase();
  const token = match[2]!;
  if (scheme === 'bearer') return [token];
  const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(token) ? Buffer.from(token, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  const secret = colon >= 0 && /^[\x21-\x7e]+$/.test(decoded.slice(colon + 1)) ? decoded.slice(colon + 1) : null;
  if (scheme === 'basic') return secret === null ? null : [secret];
  return secret === null ? [token] : [token, secret];
}

/**
 * The scope a request path needs, or null for an open path, as the route table says
 * (ROUTE_INDEX.scopeFor): with `method`, the entry for that method decides; without it,
 * the path's entries do. A path not in the table needs read (deny by default).
 */
export function scopeForPath(path: string, method?: string): ApiScope | null {
  return ROUTE_INDEX.scopeFor(method, path);
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
 * API-key access control (see CREDENTIALS for the schemes), by the scope the route table gives (method, path). A scope with
 * no configured keys is open. Otherwise: no or
 * malformed Authorization, or an unknown key -> 401 unauthorized (with WWW-Authenticate);
 * a known key of another scope -> 403 forbidden. Keys are compared as SHA-256 digests with
 * timingSafeEqual, and neither the key nor its digest is ever logged or echoed.
 */
export function authMiddleware(apiKeyDigests: Config['apiKeyDigests'], routes: RouteIndex = ROUTE_INDEX): RequestHandler {
  const digests: Record<ApiScope, Buffer[]> = { publish: [], read: [] };
  for (const scope of API_SCOPES) digests[scope] = apiKeyDigests[scope].map((hex) => Buffer.from(hex, 'hex'));
  // Node's own request/response API only: the lean /publish path runs this without express's prototypes.
  return (req, res, next) => {
    const path = requestPathOf(req);
    const scope = routes.scopeFor(req.method, path);
    if (scope === null || digests[scope].length === 0) {
      next();
      return;
    }
    const challenge = (error: string): void => {
      res.setHeader('WWW-Authenticate', `Bearer realm="log-aggregator", scope="${scope}", error="${error}"`);
    };
    const header = req.headers.authorization;
    if (header === undefined) {
      challenge('invalid_request');
      next(new AppError('unauthorized', `${req.method} ${path} needs an API key of scope ${scope}: send Authorization: Bearer <key>`));
      return;
    }
    const candidates = credentialsOf(header);
    if (candidates === null) {
      challenge('invalid_request');
      next(new AppError('unauthorized', `the Authorization header must be ${SCHEMES_TEXT}`));
      return;
    }
    const keyDigests = candidates.map((key) => Buffer.from(digestApiKey(key), 'hex'));
    const digest = keyDigests.find((candidate) => matchesAny(candidate, digests[scope]));
    if (digest !== undefined) {
      // The rate limiter counts per key: only a key that was checked here can name a bucket.
      res.locals.apiKeyDigest = digest.toString('hex');
      next();
      return;
    }
    const otherScopes = API_SCOPES.filter(
      (other) => other !== scope && keyDigests.some((candidate) => matchesAny(candidate, digests[other])),
    );
    if (otherScopes.length > 0) {
      next(new AppError('forbidden', `this API key has scope ${otherScopes.join(', ')}; ${req.method} ${path} needs scope ${scope}`));
      return;
    }
    challenge('invalid_token');
    next(new AppError('unauthorized', 'unknown API key'));
  };
}
