import path from 'node:path';
import { ChildProgram } from './server-process';

/** The built CLI the tests run, as `npx logagg` does. */
export const LOGAGG_JS = path.resolve(__dirname, '../../src/cli/logagg.js');

/** The outcome of one finished CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli/logagg.js ...args` to completion (bounded by timeoutMs) and collects its output. */
export async function runLogagg(
  args: string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const program = ChildProgram.node(LOGAGG_JS, args, {
    env: { ...process.env, LOG_LEVEL: 'warn', ...options.env },
    input: options.input ?? '',
    cwd: options.cwd,
  });
  const exit = await program.runToExit(timeoutMs);
  if (exit.signal === 'SIGKILL') {
    throw new Error(
      `logagg ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${program.stdout()}\nstderr: ${program.stderr()}`,
    );
  }
  return { code: exit.code, stdout: program.stdout(), stderr: program.stderr() };
}

/** A long-running CLI process (tail -f) whose output grows while the test watches it. */
export interface CliProcess {
  program: ChildProgram;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `logagg ...args` without waiting for it to end. */
export function spawnLogagg(args: string[], env: Record<string, string> = {}): CliProcess {
  const program = ChildProgram.node(LOGAGG_JS, args, { env: { ...process.env, ...env } });
  const exited = program.exited.then((exit) => exit.code);
  return {
    program,
    stdout: () => program.stdout(),
    stderr: () => program.stderr(),
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGINT') => (await program.kill(signal)).code,
  };
}

/** Parses NDJSON text into objects. */
export function parseNdjson(text: string): any[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}
