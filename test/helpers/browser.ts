import fs from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';
import { makeTempDir } from './temp-dir';

/** Debian's chromium (`apt-get install chromium`); the browser tests skip when it is missing. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  return fs.existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} is missing: apt-get install chromium (browser tests skipped)`;
}

/** Headless chromium on a fresh profile (its own temp dir), with no background traffic of its own. */
export async function launchBrowser(): Promise<BrowserContext> {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-dev-shm-usage',
  ];
  return chromium.launchPersistentContext(makeTempDir('logagg-chromium-'), {
    executablePath: CHROMIUM_PATH,
    args,
    headless: true,
    timeout: 60_000,
    viewport: { width: 1280, height: 800 },
  });
}
