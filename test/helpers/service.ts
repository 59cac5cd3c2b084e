import pino from 'pino';
import { loadConfig, type Config } from '../../src/config/config';
import { createApp } from '../../src/http/app';
import { Aggregator } from '../../src/ingest/aggregator';
import type { LogDisk } from '../../src/wal/disk';
import { makeTempDir } from './temp-dir';

/** A silent logger for in-process tests. */
export const silentLogger = pino({ level: 'silent' });

/** A Config for an in-process test, on a fresh data dir unless one is given. */
export function testConfig(env: Record<string, string> = {}, dataDir = makeTempDir()): Readonly<Config> {
  return loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...env });
}

/** An opened Aggregator and the express app over it, in this process. */
export async function openTestService(env: Record<string, string> = {}, options: { dataDir?: string; disk?: LogDisk } = {}) {
  const config = testConfig(env, options.dataDir);
  const aggregator = new Aggregator({ config, logger: silentLogger, disk: options.disk });
  await aggregator.open();
  const app = createApp(aggregator, config, silentLogger);
  return { config, aggregator, app };
}
