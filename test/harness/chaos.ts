#!/usr/bin/env node
import { defineOptions, formatHelp, parseOptions, UsageError } from '../../src/cli/options';
import { CHAOS_DEFAULTS, runChaos, summaryLine, type ChaosOptions } from './chaos-harness';
import { clusterSummaryLine, runClusterChaos } from './chaos-cluster';

/** The flags of `npm run chaos`; absent ones take CHAOS_DEFAULTS. */
export const CHAOS_OPTIONS = defineOptions({
  cycles: {
    type: 'int',
    placeholder: 'N',
    min: 0,
    max: 1_000_000,
    defaultText: String(CHAOS_DEFAULTS.cycles),
    description: 'kill/restart cycles to run',
  },
  durationMs: {
    type: 'int',
    placeholder: 'MS',
    min: 0,
    max: 7 * 24 * 3_600_000,
    defaultText: 'unbounded',
    description: 'no new cycle starts after this long',
  },
  publishers: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 1000,
    defaultText: String(CHAOS_DEFAULTS.publishers),
    description: 'concurrent at-least-once publishers',
  },
  dataDir: { type: 'string', placeholder: 'DIR', defaultText: 'a fresh temp dir', description: 'data dir the server runs on' },
  cycleMs: {
    type: 'int',
    placeholder: 'MS',
    min: 1,
    max: 3_600_000,
    defaultText: String(CHAOS_DEFAULTS.cycleMs),
    description: 'longest a server runs in a cycle before the kill',
  },
  segmentBytes: {
    type: 'int',
    placeholder: 'N',
    min: 4096,
    max: 1 << 30,
    defaultText: String(CHAOS_DEFAULTS.segmentBytesMax),
    description: "the server's SEGMENT_BYTES_MAX",
  },
  batchMax: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 10_000,
    defaultText: String(CHAOS_DEFAULTS.batchEventsMax),
    description: 'most events in one batch request',
  },
  seed: {
    type: 'int',
    placeholder: 'N',
    min: 0,
    max: 2 ** 31,
    defaultText: String(CHAOS_DEFAULTS.seed),
    description: "seed of the campaign's random choices (timing is not reproducible)",
  },
  progressEvery: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: 1_000_000,
    defaultText: String(CHAOS_DEFAULTS.progressEvery),
    description: 'a progress line every N cycles',
  },
  instances: {
    type: 'int',
    placeholder: 'N',
    min: 0,
    max: 16,
    defaultText: '0 (one embedded server)',
    description:
      'cluster mode: N instances on a fresh database of the PostgreSQL at PGHOST:PGPORT (127.0.0.1:5432), with outages and latency through a TCP proxy',
  },
  retentionBytes: {
    type: 'int',
    placeholder: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    defaultText: '0 (off)',
    description: "retention mode: the server's RETENTION_BYTES (with a small --segment-bytes, deletions run all the time)",
  },
  checkExpired: { type: 'boolean', description: 'retention mode: re-send every expired event at the end; each must be a duplicate' },
  keep: { type: 'boolean', description: 'keep the data dir after a successful campaign' },
  help: { type: 'boolean', short: 'h', description: 'this help' },
});

const HELP = formatHelp(
  {
    usage: ['npm run chaos -- [options]'],
    description: `Runs the real server with at-least-once publishers, SIGKILLs it at random instants,
restarts it on the same data dir, and checks every acknowledged event at the end.
Prints one summary line; exits 0 only if nothing was lost, duplicated or garbled, 2 on a bad flag.`,
    examples: [
      'npm run chaos -- --cycles 1000 --publishers 8',
      'npm run chaos -- --duration-ms 600000 --keep --data-dir /tmp/chaos',
      'npm run chaos -- --instances 3 --cycles 300',
      'npm run chaos -- --segment-bytes 4096 --retention-bytes 24576 --check-expired',
      'npm run chaos -- --instances 3 --retention-bytes 12288 --cycles 100',
    ],
  },
  CHAOS_OPTIONS,
);

/** Parses the flags of `npm run chaos` into the options they set (only those); a bad one throws a UsageError. */
export function parseChaosArgs(argv: readonly string[]): Partial<ChaosOptions> {
  const { values } = parseOptions(CHAOS_OPTIONS, argv);
  const set: Partial<ChaosOptions> = {
    cycles: values.cycles,
    durationMs: values.durationMs,
    publishers: values.publishers,
    dataDir: values.dataDir,
    cycleMs: values.cycleMs,
    segmentBytesMax: values.segmentBytes,
    batchEventsMax: values.batchMax,
    seed: values.seed,
    progressEvery: values.progressEvery,
    retentionBytes: values.retentionBytes,
    checkExpiredResends: values.checkExpired ? true : undefined,
    keepDataDir: values.keep ? true : undefined,
  };
  return Object.fromEntries(Object.entries(set).filter(([, value]) => value !== undefined));
}

async function main(): Promise<void> {
  let options: Partial<ChaosOptions>;
  try {
    if (parseOptions(CHAOS_OPTIONS, process.argv.slice(2), { helpFlag: 'help' }).help) {
      process.stdout.write(`${HELP}\n`);
      return;
    }
    options = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`chaos: ${err.message}; see \`npm run chaos -- --help\`\n`);
    process.exit(2);
  }
  const instances = parseOptions(CHAOS_OPTIONS, process.argv.slice(2)).values.instances ?? 0;
  if (instances > 0) {
    await runCluster(instances, options);
    return;
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

/** `--instances N`: the cluster campaign (chaos-cluster.ts) with the flags it shares. */
async function runCluster(instances: number, options: Partial<ChaosOptions>): Promise<void> {
  const progress = (line: string): boolean => process.stderr.write(`chaos: ${line}\n`);
  const shared = {
    cycles: options.cycles,
    publishers: options.publishers,
    batchEventsMax: options.batchEventsMax,
    seed: options.seed,
    progressEvery: options.progressEvery,
    retentionBytes: options.retentionBytes,
  };
  const result = await runClusterChaos({
    ...Object.fromEntries(Object.entries(shared).filter(([, value]) => value !== undefined)),
    instances,
    progress: (line) => void progress(line),
  });
  if (!result.ok) {
    if (result.aborted !== null) process.stderr.write(`chaos: aborted: ${result.aborted}\n`);
    for (const problem of [...result.violations, ...result.statsProblems, ...result.examples]) process.stderr.write(`chaos: ${problem}\n`);
  }
  process.stdout.write(`${clusterSummaryLine(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

if (require.main === module) {
  void main();
}
