/** Bound on a wait that names none. */
const WAIT_TIMEOUT_MS_DEFAULT = 10_000;
/** Pause between two checks. */
const WAIT_INTERVAL_MS_DEFAULT = 25;

/** How waitFor polls. */
export interface WaitOptions {
  /** Bound on the whole wait; past it waitFor rejects, naming `what` and the last error. Default 10 s. */
  timeoutMs?: number;
  /** Pause between two checks; default 25 ms. */
  intervalMs?: number;
  /** What is awaited, for the timeout message. */
  what?: string;
  /** `retry` (default): an error thrown by `check` counts as "not yet"; `throw`: it ends the wait at once. */
  errors?: 'retry' | 'throw';
}

/**
 * Polls `check` until it returns a truthy value and resolves with that value, or rejects once
 * `timeoutMs` has passed: the one polling helper of the CLI and the tests (never a bare sleep).
 */
export async function waitFor<T>(check: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? WAIT_TIMEOUT_MS_DEFAULT;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (options.errors === 'throw') throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}${lastError !== undefined ? `: ${lastError instanceof Error ? String(lastError) : JSON.stringify(lastError)}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? WAIT_INTERVAL_MS_DEFAULT));
  }
}
