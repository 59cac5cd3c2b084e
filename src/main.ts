#!/usr/bin/env node
import { ConfigError, loadConfig } from './config/config';
import { createLogger, startService, type RunningService } from './server';
import type { LogDisk } from './wal/disk';
import { LogCorruptionError } from './wal/recovery';

/**
 * Entry point (`npm start`, `logagg serve`): validated config from the environment, the
 * service, and signal handling. SIGTERM/SIGINT drain and exit 0; a failed log exits 1
 * so that recovery runs on restart. `options.disk` lets test programs run the same
 * entry point over a fault-injecting disk.
 */
export async function main(env: NodeJS.ProcessEnv = process.env, options: { disk?: LogDisk } = {}): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`log-aggregator: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config);
  let service: RunningService | null = null;
  let exiting = false;

  const exitAfterFailure = (err: Error): void => {
    if (exiting) return;
    exiting = true;
    const message = err instanceof LogCorruptionError ? err.message : `fatal: ${err.message}`;
    logger.fatal({ err }, message);
    process.stderr.write(`log-aggregator: ${message}\n`);
    // Let the 503s already written reach their clients, then stop for recovery.
    process.exitCode = 1;
    service?.server.close();
    setTimeout(() => process.exit(1), 200);
  };

  const shutdown = (signal: string): void => {
    if (exiting) return;
    exiting = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests and the queue');
    const stopping = service?.stop() ?? Promise.resolve({ clean: true });
    const force = setTimeout(() => {
      logger.error('shutdown bound passed; exiting 1 (recovery will finish on restart)');
      process.exit(1);
    }, config.shutdownTimeoutMs + 1000);
    force.unref();
    stopping.then(
      ({ clean }) => {
        logger.info({ clean }, 'stopped');
        process.exit(clean ? 0 : 1);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    service = await startService(config, { logger, disk: options.disk, onFatal: exitAfterFailure });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message = e.code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is already in use (set PORT)` : e.message;
    process.stderr.write(`log-aggregator: cannot start: ${message}\n`);
    process.exit(1);
  }
}

if (require.main === module) {
  void main();
}
