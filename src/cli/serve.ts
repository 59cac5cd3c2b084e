import { main } from '../main';
import type { Command } from './args';
import { stringFlag } from './args';

/** `logagg serve`: the service itself, exactly what `npm start` runs, with flags for the usual settings. */
export const serveCommand: Command = {
  name: 'serve',
  help: `Usage: logagg serve [--data-dir DIR] [--port N] [--host H]

Starts the HTTP service on DATA_DIR (log in DATA_DIR/wal, index in DATA_DIR/index.db).
Every other setting comes from the environment as for \`npm start\` (PORT, HOST, LOG_LEVEL,
QUEUE_MAX_SIZE, ...); a flag given here wins over its variable. SIGTERM/SIGINT drain and
exit 0; a failed log exits 1; an invalid setting exits 2.

Options:
  --port N         listen port (default: $PORT, else 8080)
  --host H         listen address (default: $HOST, else 0.0.0.0)

Example:
  npx logagg serve --data-dir ./data --port 8080`,
  options: { port: { type: 'string' }, host: { type: 'string' } },
  async run(context) {
    const env: NodeJS.ProcessEnv = { ...context.env, DATA_DIR: context.dataDir };
    const port = stringFlag(context.values, 'port');
    const host = stringFlag(context.values, 'host');
    if (port !== undefined) env.PORT = port;
    if (host !== undefined) env.HOST = host;
    await main(env);
    // main() keeps running on its server and signal handlers; the process exits from there.
    return new Promise<number>(() => undefined);
  },
};
