#!/usr/bin/env node
import { CHAOS_DEFAULTS, runChaos, summaryLine, type ChaosOptions } from './chaos-harness';

const USAGE = `usage: npm run chaos -- [--cycles N] [--duration-ms MS] [--publishers N] [--data-dir DIR]
                        [--cycle-ms MS] [--segment-bytes N] [--batch-max N] [--seed N] [--keep]
Runs the real server with at-least-once publishers, SIGKILLs it at random instants,
restarts it on the same data dir, and checks every acknowledged event at the end.
Prints one summary line; exits 0 only if nothing was lost, duplicated or garbled.`;

const NUMBER_FLAGS: Record<string, keyof ChaosOptions> = {
  '--cycles': 'cycles',
  '--duration-ms': 'durationMs',
  '--publishers': 'publishers',
  '--cycle-ms': 'cycleMs',
  '--segment-bytes': 'segmentBytesMax',
  '--batch-max': 'batchEventsMax',
  '--seed': 'seed',
  '--progress-every': 'progressEvery',
};

/** Parses the flags of `npm run chaos`; throws with a one-line message on a bad one. */
export function parseChaosArgs(argv: string[]): Partial<ChaosOptions> {
  const options: Partial<ChaosOptions> = {};
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    const [name, inline] = flag.includes('=') ? [flag.slice(0, flag.indexOf('=')), flag.slice(flag.indexOf('=') + 1)] : [flag, undefined];
    if (name === '--keep') {
      options.keepDataDir = true;
      continue;
    }
    const value = inline ?? argv[(i += 1)];
    if (value === undefined) throw new Error(`${name} needs a value`);
    if (name === '--data-dir') {
      options.dataDir = value;
      continue;
    }
    const key = NUMBER_FLAGS[name];
    if (key === undefined) throw new Error(`unknown flag ${name}`);
    if (!/^\d+$/.test(value)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(value)}`);
    (options as Record<string, unknown>)[key] = Number(value);
  }
  if (options.publishers === 0) throw new Error('--publishers must be at least 1');
  if (options.segmentBytesMax !== undefined && options.segmentBytesMax < 4096) throw new Error('--segment-bytes must be at least 4096');
  return options;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let options: Partial<ChaosOptions>;
  try {
    options = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const merged = { ...CHAOS_DEFAULTS, ...options };
  process.stderr.write(
    `chaos: cycles=${merged.cycles} duration_ms=${merged.durationMs || 'unbounded'} publishers=${merged.publishers} cycle_ms=${merged.cycleMs} ` +
      `segment_bytes=${merged.segmentBytesMax} seed=${merged.seed}\n`,
  );
  const result = await runChaos({ ...options, progress: (line) => process.stderr.write(`chaos: ${line}\n`) });
  if (!result.ok) {
    if (result.aborted !== null) process.stderr.write(`chaos: aborted: ${result.aborted}\n`);
    for (const problem of [...result.violations, ...result.statsProblems, ...result.examples]) process.stderr.write(`chaos: ${problem}\n`);
    process.stderr.write(`chaos: data dir kept for inspection: ${result.dataDir}\n`);
  }
  process.stdout.write(`${summaryLine(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

if (require.main === module) {
  void main();
}
