import pino from 'pino';
import { loadConfig } from '../src/config/config';
import { Aggregator } from '../src/ingest/aggregator';

/**
 * Times the service's own recovery (Aggregator.open) on a data dir, in its own process.
 * argv[2] is {dataDir, env?} (env: extra service settings); prints {seconds, recordsReplayed, maxRssMb}.
 */
async function main(): Promise<void> {
  const { dataDir, env } = JSON.parse(process.argv[2] ?? '{}') as { dataDir: string; env?: Record<string, string> };
  const config = loadConfig({ ...env, DATA_DIR: dataDir });
  const aggregator = new Aggregator({ config, logger: pino({ level: 'silent' }) });
  const started = performance.now();
  const report = await aggregator.open();
  const seconds = (performance.now() - started) / 1000;
  await aggregator.close();
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ seconds, recordsReplayed: report.recordsReplayed, maxRssMb })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`recover: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
