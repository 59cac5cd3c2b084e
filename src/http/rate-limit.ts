import type { RequestHandler } from 'express';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import { requestPathOf, type RouteIndex } from './route-index';

/** The rate-limit settings; a rate of 0 turns rate limiting off. */
export type RateLimits = Pick<Config, 'rateLimitPerSecond' | 'rateLimitBurst' | 'rateLimitClientsMax'>;

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * Token buckets by client: each holds up to `burst` tokens and refills at `perSecond`; one
 * request takes one token. At most `clientsMax` buckets are kept; past it the least recently
 * used is dropped (that client starts again with a full bucket). It does not share state
 * between instances: each instance limits what it receives.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly clientsMax: number,
  ) {}

  /** Takes a token for `client`: 0 when granted, else the milliseconds until one is there. */
  take(client: string, nowMs = Date.now()): number {
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, atMs: nowMs };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((nowMs - bucket.atMs) * this.perSecond) / 1000);
    bucket.atMs = nowMs;
    // Re-inserting keeps the map in least-recently-used order for eviction.
    this.buckets.delete(client);
    this.buckets.set(client, bucket);
    if (this.buckets.size > this.clientsMax) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / this.perSecond);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The rate limiter of every route but the probes (routes the table marks `logging: 'quiet'`):
 * per API key when the request was authenticated with one (auth leaves its digest in
 * `res.locals.apiKeyDigest`), else per client address. Past the rate it answers 429
 * rate_limited with Retry-After. Null when RATE_LIMIT_PER_SECOND is 0 (the default).
 */
export function rateLimiter(limits: Partial<RateLimits>, routes: RouteIndex): RequestHandler | null {
  const perSecond = limits.rateLimitPerSecond ?? 0;
  if (perSecond <= 0) return null;
  const buckets = new TokenBuckets(perSecond, limits.rateLimitBurst ?? perSecond, limits.rateLimitClientsMax ?? 100_000);
  // Node's own request API only: the lean /publish path runs this without express's prototypes.
  return (req, res, next) => {
    if (routes.isQuiet(req.method, requestPathOf(req))) {
      next();
      return;
    }
    const digest = (res.locals as { apiKeyDigest?: string }).apiKeyDigest;
    const client = digest !== undefined ? `key:${digest}` : `address:${req.socket.remoteAddress ?? 'unknown'}`;
    const waitMs = buckets.take(client);
    if (waitMs === 0) {
      next();
      return;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    next(
      new AppError(
        'rate_limited',
        `over RATE_LIMIT_PER_SECOND=${perSecond} (burst ${limits.rateLimitBurst ?? perSecond}) for this ${digest !== undefined ? 'API key' : 'client address'}`,
        {
          retryAfterSeconds,
        },
      ),
    );
  };
}
