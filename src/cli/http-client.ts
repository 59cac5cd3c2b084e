/** An answer from the aggregator: status, parsed JSON body (or text) and Retry-After seconds. */
export interface HttpAnswer {
  status: number;
  body: unknown;
  retryAfterSeconds: number | null;
}

/** Statuses that mean "nothing was written, try again later". */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

/** How a request with retries ended. */
export interface RetriedAnswer {
  answer: HttpAnswer | null;
  /** The last network error when no answer came at all. */
  error: Error | null;
  retries: number;
  /** Retries after a network error: the earlier attempt may have been applied (dedup makes that safe). */
  ambiguousRetries: number;
}

/**
 * Headers every request to an aggregator carries: `Authorization: Bearer $LOGAGG_API_KEY`
 * when that variable is set (a server with API keys needs it; see docs/operations.md, API keys).
 */
export function authHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const key = env.LOGAGG_API_KEY;
  return key === undefined || key === '' ? {} : { authorization: `Bearer ${key}` };
}

/** Sends one JSON request and reads the answer; throws on network errors and timeouts. */
export async function requestJson(method: string, url: string, body: string | undefined, timeoutMs: number): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? authHeaders() : { 'content-type': 'application/json', ...authHeaders() },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  const retryAfter = Number(res.headers.get('retry-after'));
  return { status: res.status, body: parsed, retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null };
}

/** Waits ms milliseconds (a backoff or a rate limit, never a test's synchronisation). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * POSTs `body`, retrying up to `retries` times on network errors and on 429/502/503/504,
 * waiting Retry-After when the server gives it, else an exponential backoff from 100 ms up
 * to 5 s with jitter. It returns the first other answer (200, 400, 413...) as it is.
 */
export async function postWithRetries(
  url: string,
  body: string,
  options: { retries: number; timeoutMs: number; onRetry?: (reason: string, waitMs: number) => void },
): Promise<RetriedAnswer> {
  let retries = 0;
  let ambiguousRetries = 0;
  for (let attempt = 0; ; attempt += 1) {
    let reason: string;
    let waitMs = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
    try {
      const answer = await requestJson('POST', url, body, options.timeoutMs);
      if (!RETRYABLE_STATUSES.has(answer.status) || attempt >= options.retries) return { answer, error: null, retries, ambiguousRetries };
      reason =
        `${answer.status} ${typeof answer.body === 'object' && answer.body !== null ? ((answer.body as { error?: string }).error ?? '') : ''}`.trim();
      if (answer.retryAfterSeconds !== null) waitMs = answer.retryAfterSeconds * 1000;
    } catch (err) {
      const networkError = err as Error;
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      reason = `${(err as Error).message}${cause !== undefined ? ` (${cause})` : ''}`;
      if (attempt >= options.retries) return { answer: null, error: networkError, retries, ambiguousRetries };
      ambiguousRetries += 1;
    }
    options.onRetry?.(reason, waitMs);
    retries += 1;
    await delay(waitMs);
  }
}
