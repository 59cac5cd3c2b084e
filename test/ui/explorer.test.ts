import { expect } from 'chai';
import type { BrowserContext, Page } from 'playwright-core';
import { browserMissing, launchBrowser } from '../helpers/browser';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';
import { seedEvents } from '../tools/seed-events';

const SEEDED = 250;
const READ_KEY = 'read-key-0123456789abcdef';
const PUBLISH_KEY = 'publish-key-0123456789abcdef';

interface StoredEvent {
  seq: number;
  topic: string;
  event_id: string;
  source: string;
  payload?: Record<string, unknown>;
}

async function publish(server: ServerProcess, events: unknown[], key?: string): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${server.url}/publish`, { method: 'POST', headers, body: JSON.stringify({ events }) });
  expect(res.status).to.equal(200);
}

/** Every event the API matches for `query`, newest first (what the page should show). */
async function apiEvents(server: ServerProcess, query: string, key?: string): Promise<StoredEvent[]> {
  const headers: Record<string, string> = key === undefined ? {} : { authorization: `Bearer ${key}` };
  const res = await fetch(`${server.url}/events?${query}&order=desc&limit=1000`, { headers });
  const body = (await res.json()) as { events: StoredEvent[]; next_cursor: string | null };
  expect(body.next_cursor).to.equal(null);
  return body.events;
}

/** Waits until the page's loads are done (the page marks its body). */
async function ready(page: Page): Promise<void> {
  await page.waitForSelector('body[data-state=ready]', { timeout: 20_000 });
}

/** Polls until the text of `selector` passes `check` (a generous deadline: the machine is shared). */
async function waitText(page: Page, selector: string, check: (text: string) => boolean, what: string): Promise<void> {
  await waitFor(
    async () =>
      check(
        (await page
          .locator(selector)
          .first()
          .textContent({ timeout: 1000 })
          .catch(() => '')) ?? '',
      ),
    {
      timeoutMs: 10_000,
      intervalMs: 10,
      what,
    },
  );
}

async function shownSeqs(page: Page): Promise<number[]> {
  return page.$$eval('#rows tr', (rows) => rows.map((row) => Number(row.getAttribute('data-seq'))));
}

/** Clicks "Older" until it disappears; returns every seq shown. */
async function pageThroughAll(page: Page): Promise<number[]> {
  while (await page.isVisible('#older')) {
    const before = (await shownSeqs(page)).length;
    await page.click('#older');
    await waitFor(async () => (await shownSeqs(page)).length > before || !(await page.isVisible('#older')), {
      timeoutMs: 20_000,
      what: 'older rows',
    });
  }
  return shownSeqs(page);
}

describe('Explorer page (headless chromium)', function () {
  this.timeout(120_000);
  let browser: BrowserContext;
  let server: ServerProcess;

  before(async function () {
    const missing = browserMissing();
    if (missing !== null) {
      console.log(`      ${missing}`);
      this.skip();
    }
    server = await startServerProcess(makeTempDir());
    await publish(server, seedEvents(SEEDED, Date.now(), 3_600_000));
    await waitFor(async () => (await apiEvents(server, '')).length === SEEDED, { what: 'seeded events indexed' });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.kill('SIGTERM');
  });

  it('shows exactly the events a link with filters names, newest first, and fills the form from it', async () => {
    const page = await browser.newPage();
    const query = 'topic=orders&topic=auth&payload.level=error&since=2h';
    const started = Date.now();
    await page.goto(`${server.url}/?${query}`);
    await ready(page);
    console.log(`      first render (navigation to table filled): ${Date.now() - started} ms`);
    const expected = (await apiEvents(server, query)).map((e) => e.seq);
    expect(expected.length).to.be.greaterThan(5);
    expect(await shownSeqs(page)).to.deep.equal(expected);
    expect(await page.inputValue('#topic')).to.equal('orders, auth');
    expect(await page.textContent('#fields')).to.contain('payload.level = error');
    await page.close();
  });

  it('narrows the table with a text search, then a field filter, keeping both in the URL', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await ready(page);
    expect(await shownSeqs(page)).to.have.length(100);
    await page.fill('#q', 'TIMEOUT');
    await page.press('#q', 'Enter');
    await waitFor(async () => new URL(page.url()).searchParams.get('q') === 'TIMEOUT', { what: 'q in the URL' });
    await ready(page);
    const byText = (await apiEvents(server, 'q=timeout')).map((e) => e.seq);
    expect(byText.length).to.be.within(1, 99);
    expect(await shownSeqs(page)).to.deep.equal(byText);
    await page.fill('#field', 'level=error');
    await page.press('#field', 'Enter');
    await waitFor(async () => new URL(page.url()).searchParams.get('payload.level') === 'error', { what: 'the field filter in the URL' });
    await ready(page);
    const both = (await apiEvents(server, 'q=timeout&payload.level=error')).map((e) => e.seq);
    expect(both.length).to.be.within(1, byText.length - 1);
    expect(await shownSeqs(page)).to.deep.equal(both);
    await page.close();
  });

  it('pages to older events with "Older" until every event was shown once, in order', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await ready(page);
    const seqs = await pageThroughAll(page);
    const all = (await apiEvents(server, '')).map((e) => e.seq);
    expect(all).to.have.length(SEEDED);
    expect(seqs).to.deep.equal(all);
    await page.close();
  });

  it('opens an event as formatted JSON and filters by one of its payload values', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?topic=payments`);
    await ready(page);
    const newest = (await apiEvents(server, 'topic=payments'))[0]!;
    await page.focus('#rows tr');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#detail[open]');
    const json = await page.textContent('#detail-json');
    expect(JSON.parse(json!)).to.deep.equal(newest);
    expect(json).to.contain('\n  "topic": "payments"');
    const userId = String((newest.payload!.user as { id: number }).id);
    await page.click(`button[aria-label="Filter by payload.user.id = ${userId}"]`);
    await waitFor(async () => new URL(page.url()).searchParams.get('payload.user.id') === userId, { what: 'the value filter in the URL' });
    await ready(page);
    const expected = (await apiEvents(server, `topic=payments&payload.user.id=${userId}`)).map((e) => e.seq);
    expect(await shownSeqs(page)).to.deep.equal(expected);
    await page.close();
  });

  it("has a histogram whose total equals the table's total", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?topic=payments&q=declined`);
    await ready(page);
    const total = Number(await page.getAttribute('#total', 'data-total'));
    expect(total).to.be.greaterThan(0);
    expect(await page.locator('#histogram canvas').count()).to.be.greaterThan(0);
    expect((await pageThroughAll(page)).length).to.equal(total);
    await page.close();
  });

  it('shows a new matching event at the top of the live tail, and not one that does not match', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?topic=auth`);
    await ready(page);
    await page.click('#live');
    await waitText(page, '#live-status', (t) => t.includes('live'), 'the live tail to open');
    await publish(server, [
      { topic: 'orders', event_id: 'live-other', timestamp: new Date().toISOString(), source: 'test', payload: { n: 1 } },
    ]);
    const published = Date.now();
    await publish(server, [{ topic: 'auth', event_id: 'live-1', timestamp: new Date().toISOString(), source: 'test', payload: { n: 2 } }]);
    await waitText(page, '#rows tr td:nth-child(4)', (t) => t === 'live-1', 'live-1 at the top');
    console.log(`      live tail: event on the page ${Date.now() - published} ms after its publish was acknowledged`);
    expect(await page.textContent('#rows')).not.to.contain('live-other');
    // Paused: new events wait (counted) and appear on resume.
    await page.click('#pause');
    await publish(server, [{ topic: 'auth', event_id: 'live-2', timestamp: new Date().toISOString(), source: 'test', payload: { n: 3 } }]);
    await waitText(page, '#live-status', (t) => t.includes('1 waiting'), 'one event waiting');
    expect(await page.textContent('#rows tr:first-child td:nth-child(4)')).to.equal('live-1');
    await page.click('#pause');
    await waitText(page, '#rows tr td:nth-child(4)', (t) => t === 'live-2', 'live-2 at the top');
    await page.close();
  });

  it('asks for a read key when API keys are on, and then searches and tails with it', async () => {
    const keyed = await startServerProcess(makeTempDir(), { API_KEYS_READ: READ_KEY, API_KEYS_PUBLISH: PUBLISH_KEY });
    try {
      await publish(keyed, seedEvents(20, Date.now(), 60_000), PUBLISH_KEY);
      await waitFor(async () => (await apiEvents(keyed, '', READ_KEY)).length === 20, { what: 'keyed events indexed' });
      const page = await browser.newPage();
      await page.goto(`${keyed.url}/`);
      await page.waitForSelector('#key-dialog[open]');
      await page.fill('#key', PUBLISH_KEY);
      await page.press('#key', 'Enter');
      // A key of the wrong scope is refused, and the dialog says so.
      await waitText(page, '#key-error', (t) => t.includes('scope'), 'the refusal of a publish key');
      await page.fill('#key', READ_KEY);
      await page.press('#key', 'Enter');
      await ready(page);
      expect(await shownSeqs(page)).to.have.length(20);
      expect(await page.evaluate('sessionStorage.getItem("logagg.readKey")')).to.equal(READ_KEY);
      await page.click('#live');
      await waitText(page, '#live-status', (t) => t.includes('live'), 'the live tail to open');
      await publish(keyed, [{ topic: 'auth', event_id: 'keyed-live', timestamp: new Date().toISOString(), source: 'test' }], PUBLISH_KEY);
      await waitText(page, '#rows tr td:nth-child(4)', (t) => t === 'keyed-live', 'the keyed live event');
      await page.close();
    } finally {
      await keyed.kill('SIGTERM');
    }
  });

  it('serves Swagger UI at /docs, whose try-it-out publishes an event', async () => {
    const page = await browser.newPage();
    const external: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(server.url) && !request.url().startsWith('data:')) external.push(request.url());
    });
    await page.goto(`${server.url}/docs`);
    await page.click('#operations-default-publish .opblock-summary');
    await page.click('#operations-default-publish button.execute');
    await page.waitForSelector('#operations-default-publish .live-responses-table tbody .response-col_status', { timeout: 20_000 });
    expect((await page.textContent('#operations-default-publish .live-responses-table tbody .response-col_status'))!.trim()).to.equal(
      '200',
    );
    // Swagger UI sends the operation's first example: the seed's user.login event (src/http/routes.ts).
    const stored = await waitFor(async () => (await apiEvents(server, 'topic=user.login')).find((e) => e.event_id === 'evt-001'), {
      what: 'the event try-it-out sent',
    });
    expect(stored.source).to.equal('auth-service');
    expect(external).to.deep.equal([]);
    await page.close();
  });
});
