import { delay } from './http-client';

/** Polls `check` every 50 ms until it returns a value (not null) or `timeoutMs` passes (then rejects). */
export async function waitUntil<T>(check: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await delay(50);
  }
}
