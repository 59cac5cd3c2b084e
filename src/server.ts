import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import type { Config } from './config/config';
import { lockDataDir } from './data-dir-lock';
import { createApp } from './http/app';
import { answerClientError } from './http/client-errors';
import { openScopes } from './http/auth';
import { ServiceMetrics } from './http/metrics';
import { StreamHub } from './http/stream';
import { ClusterPipeline } from './cluster/cluster-pipeline';
import { Aggregator } from './ingest/aggregator';
import type { Pipeline } from './ingest/pipeline';
import { makeDirDurable, NodeDisk, type LogDisk } from './wal/disk';

/** A running service: HTTP server plus the ingest pipeline behind it. */
export interface RunningService {
  server: http.Server;
  /** The embedded Aggregator, or the ClusterPipeline when DATABASE_URL is set. */
  aggregator: Pipeline;
  logger: Logger;
  /** The port actually bound (PORT=0 picks a free one). */
  port: number;
  /** Resolves when recovery is done and writes are accepted; rejects if recovery fails. */
  ready: Promise<void>;
  /** Graceful stop: no new connections, in-flight requests finish, queue drained, files closed. */
  stop(): Promise<{ clean: boolean }>;
}

/**
 * The service's logger: JSON lines, or pino-pretty's coloured lines when LOG_FORMAT=pretty
 * or (auto) stdout is a terminal. Authorization headers are redacted should anything ever
 * log headers. A given `destination` always gets JSON (tests read it).
 */
export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'log-aggregator' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'authorization'], censor: '[redacted]' },
  };
  if (destination !== undefined) return pino(options, destination);
  const format = config.logFormat ?? 'auto';
  if (format === 'pretty' || (format === 'auto' && (process.stdout.isTTY as boolean | undefined) === true)) {
    // Synchronous pretty-printing on the main thread (no transport worker): a person is
    // reading, and a fatal line must be out before the process exits.
    const pretty = pinoPretty({
      sync: true,
      messageFormat: '{msg}{if page} on {page} (API docs: {docs}){end}',
      ignore: 'pid,hostname,service',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino(options, pretty);
  }
  return pino(options);
}

/** The address a browser on this machine can use for `host` (a wildcard becomes localhost). */
export function browsableUrl(host: string, port: number, tls = false): string {
  const name = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host;
  return `${tls ? 'https' : 'http'}://${name.includes(':') ? `[${name}]` : name}:${port}`;
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::ffff:127.0.0.1';
}

/**
 * The one startup warning when a scope has no keys and the port is reachable from other
 * machines (a non-loopback HOST); null when every scope has keys or only loopback listens.
 */
export function accessControlWarning(config: Pick<Config, 'host' | 'apiKeyDigests'>, port: number): string | null {
  const open = openScopes(config.apiKeyDigests);
  if (open.length === 0 || isLoopbackHost(config.host)) return null;
  return `access control: no API keys for scope ${open.join(' and ')}; anyone who reaches ${config.host}:${port} can ${open.join(' and ')} (set API_KEYS_PUBLISH / API_KEYS_READ or API_KEYS_FILE)`;
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
  const disk = options.disk ?? new NodeDisk();
  // A new data dir gets a durable name before the lock file goes in it; then one process per
  // data dir: a second server (or a repair) would interleave seqs in the log.
  makeDirDurable(disk, config.dataDir);
  const releaseLock = lockDataDir(config.dataDir, 'serve');
  const metrics = new ServiceMetrics();
  const pipelineOptions = { config, logger, disk, onFatal: options.onFatal, observer: metrics.observer };
  const { databaseUrl } = config;
  const aggregator: Pipeline =
    databaseUrl == null
      ? new Aggregator(pipelineOptions)
      : new ClusterPipeline({
          ...pipelineOptions,
          config: {
            ...config,
            databaseUrl,
            databasePoolMax: config.databasePoolMax ?? 4,
            databaseTimeoutMs: config.databaseTimeoutMs ?? 5000,
          },
        });
  metrics.watch({ aggregator, walDir: config.walDir });
  const streams = new StreamHub(aggregator, config);
  const app = createApp(aggregator, config, logger, { metrics, apiKeyDigests: config.apiKeyDigests, streams });
  // Node checks request/headers timeouts on this interval (default 30 s): keep it finer
  // than the bounds so a slow client is cut off close to its limit.
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(config.headersTimeoutMs / 4)));
  const server = createServer(config, { connectionsCheckingInterval }, app);
  // Slow clients are cut off: whole request, headers, idle keep-alive.
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = config.headersTimeoutMs;
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  server.maxRequestsPerSocket = 0;
  // What Node's own parser refuses (431, malformed framing, timeouts) is answered as JSON too.
  server.on('clientError', answerClientError);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    releaseLock();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const url = browsableUrl(config.host, port, config.tlsCertFile != null);
  logger.info(
    {
      host: config.host,
      port,
      tls: config.tlsCertFile != null,
      page: `${url}/`,
      docs: `${url}/docs`,
      dataDir: config.dataDir,
      databasePath: databaseUrl == null ? config.databasePath : undefined,
      cluster: databaseUrl != null,
    },
    'listening',
  );
  const warning = accessControlWarning(config, port);
  if (warning !== null) logger.warn({ host: config.host, openScopes: openScopes(config.apiKeyDigests) }, warning);

  const ready = aggregator.open().then(() => undefined);
  ready.catch((err: unknown) => options.onFatal?.(err instanceof Error ? err : new Error(String(err))));

  let stopping: Promise<{ clean: boolean }> | null = null;
  // server.close() drops only the connections idle at that instant. A keep-alive client whose
  // request was in flight (a live-tail stream, a publish still sending its body) would send
  // its next request on the same socket, get a 503, and do so again: a client that keeps
  // doing that holds the shutdown until its deadline. So once stopping, every answer,
  // in flight or new, closes its connection.
  const inFlight = new Set<http.ServerResponse>();
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (stopping !== null) {
      res.setHeader('Connection', 'close');
      return;
    }
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });
  const stop = (): Promise<{ clean: boolean }> => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      for (const res of inFlight) closeConnectionAfter(res);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Live-tail streams never end by themselves; their clients resume with Last-Event-ID.
      streams.closeAll();
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
      await closed;
      clearTimeout(timer);
      aggregator.cancelOpen();
      await ready.catch(() => undefined);
      try {
        await aggregator.close();
      } finally {
        releaseLock();
      }
      return { clean: Date.now() <= deadline && aggregator.state === 'stopped' };
    })();
    return stopping;
  };
  return { server, aggregator, logger, port, ready, stop };
}

/**
 * Plain HTTP, or HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set; a certificate or key that
 * cannot be used stops startup with one line that names the settings, never their content.
 */
function createServer(config: Readonly<Config>, options: http.ServerOptions, app: http.RequestListener): http.Server {
  if (config.tlsCertFile == null || config.tlsKeyFile == null) return http.createServer(options, app);
  let tls: { cert: Buffer; key: Buffer };
  try {
    tls = { cert: fs.readFileSync(config.tlsCertFile), key: fs.readFileSync(config.tlsKeyFile) };
    return https.createServer({ ...options, ...tls }, app);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new Error(
      `TLS_CERT_FILE=${config.tlsCertFile} / TLS_KEY_FILE=${config.tlsKeyFile}: not a usable PEM certificate and key (${reason})`,
      { cause: err },
    );
  }
}

/** Closes a response's connection once it is answered, instead of keeping it alive. */
function closeConnectionAfter(res: http.ServerResponse): void {
  if (!res.headersSent) {
    res.setHeader('Connection', 'close');
    return;
  }
  // Headers already out (a stream): the socket is detached from the response by 'finish'.
  const socket = res.socket;
  res.once('finish', () => socket?.destroy());
}
