import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../helpers/wait';

/** The compiled entry point the tests run, as `npm start` does. */
export const MAIN_JS = path.resolve(__dirname, '../../src/main.js');

/** A real server process on its own port and data dir. */
export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `node dist/src/main.js` with PORT=0 semantics replaced by a parsed "listening"
 * log line, and waits until /health answers 200 (recovery done) unless `waitReady` is false.
 */
export async function startServerProcess(dataDir: string, env: Record<string, string> = {}, options: { waitReady?: boolean; script?: string } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [options.script ?? MAIN_JS], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  const port = await waitFor(
    () => {
      if (exitedEarly) throw new Error(`server exited before listening:\n${output}`);
      const match = /"port":(\d+)[^\n]*"msg":"listening"/.exec(output);
      return match ? Number(match[1]) : 0;
    },
    { timeoutMs: 15_000, what: 'server to listen' },
  );
  const url = `http://127.0.0.1:${port}`;
  if (options.waitReady !== false) {
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`server exited during recovery:\n${output}`);
        const res = await fetch(`${url}/health`);
        return res.status === 200;
      },
      { timeoutMs: 60_000, what: 'server to be ready' },
    );
  }
  return {
    child,
    url,
    port,
    output: () => output,
    exited,
    kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
