import cliProgress from 'cli-progress';

/** A progress bar on stderr, or nothing at all when progress is off. */
export interface Progress {
  increment(amount: number): void;
  update(value: number): void;
  stop(): void;
}

const SILENT: Progress = { increment: () => undefined, update: () => undefined, stop: () => undefined };

/**
 * Starts a cli-progress bar on stderr over `total` units (bytes, events). It draws only when
 * `enabled` (stderr is a terminal, or --progress); on a non-terminal it prints a line a second.
 * It never writes to stdout, so piped output stays clean.
 */
export function startProgress(enabled: boolean, label: string, total: number, unit: string): Progress {
  if (!enabled) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {duration_formatted} elapsed, eta {eta_formatted}`,
      hideCursor: (process.stderr.isTTY as boolean | undefined) === true,
      clearOnComplete: false,
      noTTYOutput: (process.stderr.isTTY as boolean | undefined) !== true,
      notTTYSchedule: 1000,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(total, 1), 0);
  let value = 0;
  return {
    increment(amount: number): void {
      value += amount;
      bar.update(Math.min(value, Math.max(total, 1)));
    },
    update(next: number): void {
      value = next;
      bar.update(Math.min(value, Math.max(total, 1)));
    },
    stop(): void {
      bar.stop();
    },
  };
}
