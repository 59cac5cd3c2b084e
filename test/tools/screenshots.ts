/**
 * `npm run screenshots`: starts a server on a fresh data dir, seeds it with events that
 * look like a small service's logs, and writes the explorer's screenshots to docs/img/
 * (light, dark, a narrow window, the event detail, Swagger UI). Needs /usr/bin/chromium.
 */
import fs from 'node:fs';
import path from 'node:path';
import { browserMissing, launchBrowser } from '../helpers/browser';
import { startServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { seedEvents } from './seed-events';

const OUT_DIR = path.resolve(__dirname, '../../../docs/img');

async function main(): Promise<void> {
  const missing = browserMissing();
  if (missing !== null) throw new Error(missing);
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const server = await startServerProcess(makeTempDir());
  const browser = await launchBrowser();
  try {
    // Six hours of background, then a busier last half hour, so the histogram has a shape.
    const now = Date.now();
    const events = [
      ...seedEvents(600, now - 1_800_000, 6 * 3_600_000),
      ...seedEvents(400, now, 1_800_000).map((e) => ({ ...e, event_id: `${e.event_id}-b` })),
    ];
    const res = await fetch(`${server.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    if (res.status !== 200) throw new Error(`seeding answered ${res.status}`);
    const page = await browser.newPage();
    const shoot = async (name: string, url: string, options: { width: number; height: number; dark?: boolean }) => {
      await page.setViewportSize({ width: options.width, height: options.height });
      await page.emulateMedia({ colorScheme: options.dark === true ? 'dark' : 'light' });
      const started = Date.now();
      await page.goto(`${server.url}${url}`);
      await page.waitForSelector('body[data-state=ready]', { timeout: 20_000 });
      process.stdout.write(`${name}: navigation to table filled in ${Date.now() - started} ms\n`);
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(OUT_DIR, `${name}.png`) });
    };
    await shoot('explorer-light', '/?since=7h', { width: 1280, height: 760 });
    await shoot('explorer-dark', '/?since=7h&q=timeout', { width: 1280, height: 760, dark: true });
    await shoot('explorer-narrow', '/?topic=payments&payload.level=error', { width: 400, height: 820 });
    await page.setViewportSize({ width: 1280, height: 760 });
    await page.click('#rows tr');
    await page.waitForSelector('#detail[open]');
    await page.screenshot({ path: path.join(OUT_DIR, 'explorer-detail.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(`${server.url}/docs`);
    await page.click('#operations-default-queryEvents .opblock-summary');
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(OUT_DIR, 'docs-swagger.png') });
    for (const name of fs.readdirSync(OUT_DIR))
      process.stdout.write(`${path.join('docs/img', name)}: ${fs.statSync(path.join(OUT_DIR, name)).size} bytes\n`);
  } finally {
    await browser.close();
    await server.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`screenshots: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
