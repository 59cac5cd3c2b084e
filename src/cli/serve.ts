import { main } from '../main';
import { defineCommand } from './args';

/** `logagg serve`: the service itself, exactly what `npm start` runs, with flags for the usual settings. */
export const serveCommand = defineCommand({
  name: 'serve',
  usage: ['logagg serve [--data-dir DIR] [--port N] [--host H]'],
  description: `Starts the HTTP service on DATA_DIR (log in DATA_DIR/wal, index in DATA_DIR/index.db).
Every other setting comes from the environment as for \`npm start\` (PORT, HOST, LOG_LEVEL,
QUEUE_MAX_SIZE, ...); a flag given here wins over its variable. SIGTERM/SIGINT drain and
exit 0; a failed log exits 1; an invalid setting exits 2.`,
  examples: ['npx logagg serve --data-dir ./data --port 8080'],
  options: {
    // Strings: the server's config checks them as it checks $PORT and $HOST.
    port: { type: 'string', placeholder: 'N', description: 'listen port', defaultText: '$PORT, else 8080' },
    host: { type: 'string', placeholder: 'H', description: 'listen address', defaultText: '$HOST, else 0.0.0.0' },
  },
  async run(context) {
    const env: NodeJS.ProcessEnv = { ...context.env, DATA_DIR: context.dataDir };
    const { port, host } = context.options;
    if (port !== undefined) env.PORT = port;
    if (host !== undefined) env.HOST = host;
    await main(env);
    // main() keeps running on its server and signal handlers; the process exits from there.
    return new Promise<number>(() => undefined);
  },
});
