import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { ERROR_CATALOGUE } from '../errors';

/** At most one log line per error code in this window; the rest are counted and summed into the next line. */
export const EXPECTED_LOG_INTERVAL_MS = 10_000;

/**
 * The log of expected 503s (log_no_space, backlog_full, recovering...) and 429s: one warn line per code
 * per EXPECTED_LOG_INTERVAL_MS, without stack, saying how many were left out since; every
 * answer is counted in `logagg_expected_errors_total{code}`. It does not log 4xx or 500s.
 */
export class ExpectedErrorLog {
  private readonly lastLineAt = new Map<string, number>();
  private readonly leftOut = new Map<string, number>();
  private readonly counter: Counter<'code'>;

  constructor(
    private readonly logger: Logger,
    registry: Registry,
  ) {
    this.counter = new Counter({
      name: 'logagg_expected_errors_total',
      help: 'Expected 503 and 429 answers (disk full, backlog full, recovering, rate limited...) by error code; their log lines are rate-limited.',
      labelNames: ['code'] as const,
      registers: [registry],
    });
  }

  /** True for an answer this log takes over from the request log: a 503 or 429 with a catalogue code. */
  handles(status: number, code: string | undefined): boolean {
    return (status === 503 || status === 429) && code !== undefined && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code);
  }

  /** Counts one expected answer and writes its line unless one for the same code went out within the window. */
  note(code: string, route: string, status: number, now = Date.now()): void {
    this.counter.inc({ code });
    const last = this.lastLineAt.get(code);
    if (last !== undefined && now - last < EXPECTED_LOG_INTERVAL_MS) {
      this.leftOut.set(code, (this.leftOut.get(code) ?? 0) + 1);
      return;
    }
    const leftOut = this.leftOut.get(code) ?? 0;
    this.lastLineAt.set(code, now);
    this.leftOut.set(code, 0);
    this.logger.warn(
      { error_code: code, route, status, left_out: leftOut },
      `${status} ${code} on ${route} (${leftOut} more since the last line; one line per ${EXPECTED_LOG_INTERVAL_MS / 1000} s)`,
    );
  }
}
