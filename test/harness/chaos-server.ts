import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/** The compiled service entry point the harness runs, as `npm start` does. */
export const SERVER_MAIN_JS = path.resolve(__dirname, '../../src/main.js');

/** How a server process ended. */
export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Lines of the server's output kept for a failure report. */
const OUTPUT_LINES_KEPT = 60;

/**
 * One run of the real server on a data dir. It reads the server's JSON log lines for the
 * port, recovery events and torn-tail cuts; it keeps only the last lines of output.
 */
export class ChaosServer {
  readonly child: ChildProcess;
  readonly exited: Promise<ServerExit>;
  port: number | null = null;
  tornTails = 0;
  recoveryDone = false;
  private readonly lines: string[] = [];
  private partial = '';
  private readonly listeners: Array<() => void> = [];

  constructor(dataDir: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [SERVER_MAIN_JS], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => this.notify());
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the server printed. */
  output(): string {
    return this.lines.join('\n');
  }

  /** SIGKILL now, synchronously: no handler in the server runs. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  /** Resolves when `check` holds after some output or the exit; rejects at the deadline. */
  waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = (): boolean => {
        if (!check()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`)), timeoutMs);
      if (test()) return;
      const listener = (): void => {
        if (!test()) this.listeners.push(listener);
      };
      this.listeners.push(listener);
    });
  }

  private notify(): void {
    const listeners = this.listeners.splice(0);
    for (const listener of listeners) listener();
  }

  private onOutput(chunk: Buffer): void {
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (this.port === null && line.includes('"msg":"listening"')) {
        const match = /"port":(\d+)/.exec(line);
        if (match !== null) this.port = Number(match[1]);
      }
      if (line.includes('recovery: cut torn tail')) this.tornTails += 1;
      if (line.includes('recovery: done')) this.recoveryDone = true;
      this.lines.push(line.length > 2000 ? `${line.slice(0, 2000)}...` : line);
      if (this.lines.length > OUTPUT_LINES_KEPT) this.lines.shift();
    }
    this.notify();
  }
}
