#!/usr/bin/env node
import { COMMON_HELP, EXIT_PROBLEM, EXIT_USAGE, parseCommandArgs, UsageError, type Command } from './args';
import { exportCommand } from './export';
import { publishCommand } from './publish';
import { rebuildCommand } from './rebuild';
import { repairCommand } from './repair';
import { replayCommand } from './replay';
import { serveCommand } from './serve';
import { tailCommand } from './tail';
import { verifyCommand } from './verify';

/** Every subcommand, in the order the help lists them. */
export const COMMANDS: Command[] = [serveCommand, verifyCommand, repairCommand, rebuildCommand, exportCommand, replayCommand, tailCommand, publishCommand];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: logagg <command> [options]

Log tooling for log-aggregator: inspect, repair, export, replay and follow a data dir.

Commands:
${lines.join('\n')}

Run \`logagg <command> --help\` for a command's options and examples.
${COMMON_HELP}`;
}

/**
 * Runs `logagg <command> ...` and resolves with the exit code. Usage errors print one line
 * and a pointer to --help (exit 2); unexpected errors print their message (exit 1).
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(`${topic !== undefined ? `${topic.help}\n\n${COMMON_HELP}` : overview()}\n`);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`logagg: unknown command ${JSON.stringify(name)}; run \`logagg --help\`\n`);
    return EXIT_USAGE;
  }
  try {
    const context = parseCommandArgs(command, rest, env, process.stderr.isTTY === true);
    if (context.help) {
      process.stdout.write(`${command.help}\n\n${COMMON_HELP}\n`);
      return 0;
    }
    return await command.run(context);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`logagg ${command.name}: ${err.message}\nRun \`logagg ${command.name} --help\` for usage.\n`);
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
