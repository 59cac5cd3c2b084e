import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../../src/cli/wait';
import { SERVER_NODE_FLAGS } from '../../src/node-flags';

/** The compiled entry point the tests and the chaos harness run, as `npm start` does. */
export const MAIN_JS = path.resolve(__dirname, '../../src/main.js');

/** How a child process ended. */
export interface ProgramExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Bytes of each output stream a ChildProgram keeps by default; older output is dropped. */
const OUTPUT_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;

/** How to start a ChildProgram. */
export interface ChildProgramOptions {
  /** The whole environment of the child (nothing is inherited unless passed). */
  env: NodeJS.ProcessEnv;
  /** Working directory (default: this process's). */
  cwd?: string;
  /** Text written to its stdin, which is then closed; without it stdin is /dev/null. */
  input?: string;
  /** Bytes kept of stdout, of stderr and of the combined output: the newest ones. */
  outputBytesMax?: number;
  /** Called with every complete line of output (stdout and stderr) as it arrives. */
  onLine?: (line: string) => void;
}

/**
 * One child process of the test tooling (a server, the CLI, a bench driver, an external
 * program): its output gathered (bounded, newest kept), its exit, and waits that wake on
 * output or exit instead of polling. The one spawner of test/ and bench/.
 */
export class ChildProgram {
  /** Programs still running; the process's exit handler SIGKILLs them (see killLeftovers). */
  private static readonly live = new Set<ChildProgram>();
  private static exitHandlerSet = false;
  readonly child: ChildProcess;
  readonly exited: Promise<ProgramExit>;
  private stdoutText = '';
  private stderrText = '';
  private combined = '';
  private partialLine = '';
  private readonly outputBytesMax: number;
  private readonly listeners = new Set<() => void>();

  constructor(
    command: string,
    args: readonly string[],
    private readonly options: ChildProgramOptions,
  ) {
    this.outputBytesMax = options.outputBytesMax ?? OUTPUT_BYTES_MAX_DEFAULT;
    this.child = spawn(command, [...args], {
      env: options.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk.toString('utf8'), 'stdout'));
    this.child.stderr!.on('data', (chunk: Buffer) => this.onOutput(chunk.toString('utf8'), 'stderr'));
    this.child.stdin?.end(options.input);
    ChildProgram.live.add(this);
    if (!ChildProgram.exitHandlerSet) {
      ChildProgram.exitHandlerSet = true;
      process.once('exit', killLeftovers);
    }
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      // 'close' comes after the last output, so nothing is missing once this resolves.
      this.child.once('close', (code, signal) => resolve({ code, signal }));
    });
    const ended = (): void => {
      ChildProgram.live.delete(this);
      this.notify();
    };
    void this.exited.then(ended, ended);
  }

  /** SIGKILLs every program still running (a test that failed before stopping its server). */
  static killAll(): void {
    for (const program of [...ChildProgram.live]) program.killNow();
  }

  /** A compiled Node script of this repo run with the same node as the tests. */
  static node(script: string, args: readonly string[], options: ChildProgramOptions): ChildProgram {
    return new ChildProgram(process.execPath, [script, ...args], options);
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything kept of stdout. */
  stdout(): string {
    return this.stdoutText;
  }

  /** Everything kept of stderr. */
  stderr(): string {
    return this.stderrText;
  }

  /** Everything kept of stdout and stderr together, in arrival order. */
  output(): string {
    return this.combined;
  }

  /** Sends `signal` (once it runs) and resolves with the exit. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ProgramExit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  /** SIGKILL now, synchronously: no handler in the child runs. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  /** Resolves with the exit, or SIGKILLs the process once `timeoutMs` has passed and then resolves. */
  async runToExit(timeoutMs: number): Promise<ProgramExit> {
    const timer = setTimeout(() => this.killNow(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves with the first match of `pattern` in the output kept, waiting for more output
   * until `timeoutMs`; rejects with the output at the deadline or when the program exits first.
   */
  async waitForOutput(pattern: RegExp | string, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    const regexp = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    let match: RegExpExecArray | null = null;
    await this.waitUntil(() => (match = regexp.exec(this.combined)) !== null || !this.running, timeoutMs, what);
    if (match === null) throw new Error(`exited before ${what}\n${this.combined}`);
    return match;
  }

  /** Resolves when `check` holds, tested now and after each output and the exit; rejects at the deadline with the output. */
  waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        if (!check()) return;
        this.listeners.delete(listener);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.combined}`));
      }, timeoutMs);
      this.listeners.add(listener);
      listener();
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private keep(text: string, more: string): string {
    const joined = text + more;
    return joined.length > this.outputBytesMax ? joined.slice(joined.length - this.outputBytesMax) : joined;
  }

  private onOutput(text: string, stream: 'stdout' | 'stderr'): void {
    if (stream === 'stdout') this.stdoutText = this.keep(this.stdoutText, text);
    else this.stderrText = this.keep(this.stderrText, text);
    this.combined = this.keep(this.combined, text);
    if (this.options.onLine !== undefined) {
      const parts = (this.partialLine + text).split('\n');
      this.partialLine = parts.pop() ?? '';
      for (const line of parts) this.options.onLine(line);
    }
    this.notify();
  }
}

/**
 * The process's exit handler: SIGKILLs the programs left running, so a test run that failed
 * half-way (mocha exits at the end with `exit: true`) leaves no server behind on its port and data dir.
 */
function killLeftovers(): void {
  ChildProgram.killAll();
}

/** How to start a ServerRun. */
export interface ServerRunOptions {
  /** The compiled entry point (default MAIN_JS, the real server). */
  script?: string;
  /** Bytes of output kept; see ChildProgramOptions. */
  outputBytesMax?: number;
}

/**
 * One run of the real server on a data dir (PORT=0, HOST=127.0.0.1, LOG_LEVEL=info): it
 * reads the server's JSON log lines for the port, the end of recovery and torn-tail cuts.
 */
export class ServerRun {
  readonly program: ChildProgram;
  port: number | null = null;
  recoveryDone = false;
  tornTails = 0;

  constructor(dataDir: string, env: Record<string, string> = {}, options: ServerRunOptions = {}) {
    // The real server runs with the service's Node flags, as `npm start` runs it.
    const script = options.script ?? MAIN_JS;
    this.program = new ChildProgram(process.execPath, [...(script === MAIN_JS ? SERVER_NODE_FLAGS : []), script], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
      outputBytesMax: options.outputBytesMax,
      onLine: (line) => this.onLine(line),
    });
  }

  /** The server's process. */
  get child(): ChildProcess {
    return this.program.child;
  }

  /** Resolves when the server has exited and its output is read. */
  get exited(): Promise<ProgramExit> {
    return this.program.exited;
  }

  /** True until the server has exited. */
  get running(): boolean {
    return this.program.running;
  }

  /** The base URL once the server listens. */
  get url(): string | null {
    return this.port === null ? null : `http://127.0.0.1:${this.port}`;
  }

  /** The newest output of the server (stdout and stderr). */
  output(): string {
    return this.program.output();
  }

  /** SIGKILL now, synchronously. */
  killNow(): void {
    this.program.killNow();
  }

  /** See ChildProgram.waitForOutput. */
  waitForOutput(pattern: RegExp | string, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    return this.program.waitForOutput(pattern, timeoutMs, what);
  }

  /** See ChildProgram.waitUntil: woken by each line of output and by the exit. */
  waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return this.program.waitUntil(check, timeoutMs, what);
  }

  private onLine(line: string): void {
    if (this.port === null && line.includes('"msg":"listening"')) {
      const match = /"port":(\d+)/.exec(line);
      if (match !== null) this.port = Number(match[1]);
    }
    if (line.includes('recovery: cut torn tail')) this.tornTails += 1;
    if (line.includes('recovery: done')) this.recoveryDone = true;
  }
}

/** A real server process on its own port and data dir, listening. */
export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  output: () => string;
  exited: Promise<ProgramExit>;
  kill(signal?: NodeJS.Signals): Promise<ProgramExit>;
  /**
   * The first match of `pattern` in the server's output, once it is there: a log line may reach
   * the pipe after /health says ready. Rejects after `timeoutMs` (default 10 s) or at exit.
   */
  waitForOutput(pattern: RegExp | string, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
}

/**
 * Spawns `node dist/src/main.js` (or `options.script`) on `dataDir`, waits for its
 * "listening" log line, then until /health answers 200 (recovery done) unless `waitReady` is false.
 */
export async function startServerProcess(
  dataDir: string,
  env: Record<string, string> = {},
  options: { waitReady?: boolean; script?: string; listenTimeoutMs?: number } = {},
): Promise<ServerProcess> {
  const run = new ServerRun(dataDir, env, { script: options.script });
  await run.waitUntil(() => run.port !== null || !run.running, options.listenTimeoutMs ?? 15_000, 'the server to listen');
  if (run.port === null) throw new Error(`server exited before listening:\n${run.output()}`);
  const port = run.port;
  const url = `http://127.0.0.1:${port}`;
  if (options.waitReady !== false) {
    await waitFor(
      async () => {
        if (!run.running) throw new Error(`server exited during recovery:\n${run.output()}`);
        const res = await fetch(`${url}/health`);
        return res.status === 200;
      },
      { timeoutMs: 60_000, what: 'server to be ready' },
    );
  }
  return {
    child: run.child,
    url,
    port,
    output: () => run.output(),
    exited: run.exited,
    kill: (signal) => run.program.kill(signal),
    waitForOutput: (pattern, what, timeoutMs = 10_000) => run.waitForOutput(pattern, timeoutMs, what),
  };
}
