/**
 * Why the log refused or lost a write. `no_space`: the device is full; the partial bytes
 * were cut away and later writes may succeed. `failed`: an fsync or write failed (EIO);
 * the log accepts nothing more and the process must stop for recovery. `closed`: the
 * writer was closed (shutdown).
 */
export type WalErrorCode = 'no_space' | 'failed' | 'closed';

/**
 * An expected failure of the log writer. It carries its own code and the underlying error
 * as `cause`, and nothing of HTTP: the HTTP layer maps it to a catalogue code (src/http/errors.ts).
 */
export class WalError extends Error {
  readonly code: WalErrorCode;

  constructor(code: WalErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WalError';
    this.code = code;
  }
}
