#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { COMMON_FOOTER, COMMON_OPTIONS, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, type Command } from './args';
import { closestName, formatOptions, UsageError } from './options';

/** A subcommand as the dispatcher knows it; its module is loaded only when it runs (fast start). */
interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

/** Every subcommand, in the order the help lists them. */
export const COMMANDS: CommandEntry[] = [
  { name: 'serve', summary: 'run the aggregator (what `npm start` runs)', load: async () => (await import('./serve')).serveCommand },
  {
    name: 'verify',
    summary: 'check every segment (checksums, seq order, torn tail) and the index against the log',
    load: async () => (await import('./verify')).verifyCommand,
  },
  {
    name: 'repair',
    summary: 'cut a torn tail (bytes kept); --quarantine-corrupt moves corrupt records out',
    load: async () => (await import('./repair')).repairCommand,
  },
  {
    name: 'rebuild',
    summary: 'rebuild the SQLite index from the log alone (server stopped)',
    load: async () => (await import('./rebuild')).rebuildCommand,
  },
  {
    name: 'export',
    summary: 'write logged events as NDJSON (filters: topic, since, until, source, from-seq)',
    load: async () => (await import('./export')).exportCommand,
  },
  {
    name: 'replay',
    summary: 're-publish logged events to another aggregator (batches, retries, rate limit)',
    load: async () => (await import('./replay')).replayCommand,
  },
  {
    name: 'tail',
    summary: 'print the newest events; -f follows new ones (data dir, or a server URL via SSE)',
    load: async () => (await import('./tail')).tailCommand,
  },
  {
    name: 'publish',
    summary: 'publisher simulator: seed scenarios or a load, expected vs observed stats',
    load: async () => (await import('./publish')).publishCommand,
  },
];

/** The version of the package this CLI belongs to, from the nearest package.json above this file. */
export function packageVersion(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'log-aggregator' && typeof pkg.version === 'string') return pkg.version;
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: logagg <command> [options]
       logagg --version

Log tooling for log-aggregator: inspect, repair, export, replay and follow a data dir.

Commands:
${lines.join('\n')}

Run \`logagg <command> --help\` for a command's options and examples.

${formatOptions(COMMON_OPTIONS)}

${COMMON_FOOTER}`;
}

/**
 * Runs `logagg <command> ...` and resolves with the exit code. Usage errors print one line
 * with a pointer to --help (exit 2); unexpected errors print their message (exit 1).
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`logagg ${packageVersion()}\n`);
    return EXIT_OK;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? await COMMANDS.find((c) => c.name === rest[0])?.load() : undefined;
    process.stdout.write(`${topic !== undefined ? topic.helpText() : overview()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry === undefined) {
    const suggestion = closestName(
      name.replace(/^-+/, ''),
      COMMANDS.map((c) => c.name),
    );
    process.stderr.write(
      `logagg: unknown command ${JSON.stringify(name)}${suggestion === null ? '' : ` (did you mean ${suggestion}?)`}; run \`logagg --help\`\n`,
    );
    return EXIT_USAGE;
  }
  const command = await entry.load();
  try {
    return await command.invoke(rest, env, (process.stderr.isTTY as boolean | undefined) === true);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`logagg ${command.name}: ${err.message}; see \`logagg ${command.name} --help\`\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`logagg ${command.name}: ${(err as Error).message}\n`);
    return EXIT_PROBLEM;
  }
}

if (require.main === module) {
  // A closed stdout (e.g. `logagg export | head`) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  void runCli(process.argv.slice(2)).then((code) => {
    // Exit once stdout is flushed, without waiting on idle keep-alive sockets.
    process.exitCode = code;
    process.stdout.write('', () => process.exit(code));
  });
}
