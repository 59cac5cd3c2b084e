import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/config';
import { createLogger, startService, type RunningService } from '../../src/server';
import { makeTempDir } from './temp-dir';

/** A service started in this process on a free loopback port, with its log lines captured. */
export interface InProcessService {
  service: RunningService;
  url: string;
  dataDir: string;
  /** Every JSON line the service logged so far, parsed. */
  logLines(): Array<Record<string, any>>;
  /** The raw log text, to check what never appears in it. */
  logText(): string;
  stop(): Promise<void>;
}

/**
 * Starts the real service (config from `env` as main does, PORT=0, HOST=127.0.0.1, a fresh
 * data dir unless one is given) and waits until it accepts writes.
 */
export async function startInProcessService(
  env: Record<string, string> = {},
  options: { dataDir?: string } = {},
): Promise<InProcessService> {
  const dataDir = options.dataDir ?? makeTempDir();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'debug', ...env });
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  // The service's own logger (same redaction as production), written into `sink`.
  const logger = createLogger(config, sink);
  const service = await startService(config, { logger });
  await service.ready;
  return {
    service,
    url: `http://127.0.0.1:${service.port}`,
    dataDir,
    logLines: () =>
      text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, any>),
    logText: () => text,
    stop: async () => {
      await service.stop();
    },
  };
}
