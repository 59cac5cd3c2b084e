import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import type { Config } from './config/config';
import { createApp } from './http/app';
import { Aggregator } from './ingest/aggregator';
import type { LogDisk } from './wal/disk';

/** A running service: HTTP server plus the ingest pipeline behind it. */
export interface RunningService {
  server: http.Server;
  aggregator: Aggregator;
  logger: Logger;
  /** The port actually bound (PORT=0 picks a free one). */
  port: number;
  /** Resolves when recovery is done and writes are accepted; rejects if recovery fails. */
  ready: Promise<void>;
  /** Graceful stop: no new connections, in-flight requests finish, queue drained, files closed. */
  stop(): Promise<{ clean: boolean }>;
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({ level: config.logLevel, base: { service: 'log-aggregator' } });
}

/**
 * Starts listening first (so /health can say "recovering"), then recovers the log, then
 * accepts writes. `onFatal` is called when the log fails or recovery cannot proceed.
 */
export async function startService(
  config: Readonly<Config>,
  options: { logger?: Logger; disk?: LogDisk; onFatal?: (err: Error) => void } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger(config);
  const aggregator = new Aggregator({ config, logger, disk: options.disk, onFatal: options.onFatal });
  const app = createApp(aggregator, config, logger);
  // Node checks request and header timeouts only every connectionsCheckingInterval (30 s by
  // default), so a slow client could outlive its bound by that much: check at a quarter of the bound.
  const server = http.createServer({ connectionsCheckingInterval: Math.max(100, Math.floor(Math.min(config.headersTimeoutMs, config.requestTimeoutMs) / 4)) }, app);
  // Slow clients are cut off: whole request, headers, idle keep-alive.
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = config.headersTimeoutMs;
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  server.maxRequestsPerSocket = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ host: config.host, port, dataDir: config.dataDir, databasePath: config.databasePath }, 'listening');

  const ready = aggregator.open().then(() => undefined);
  ready.catch((err: Error) => options.onFatal?.(err));

  let stopping: Promise<{ clean: boolean }> | null = null;
  const stop = (): Promise<{ clean: boolean }> => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
      await closed;
      clearTimeout(timer);
      await ready.catch(() => undefined);
      await aggregator.close();
      return { clean: Date.now() <= deadline && aggregator.state === 'stopped' };
    })();
    return stopping;
  };
  return { server, aggregator, logger, port, ready, stop };
}
