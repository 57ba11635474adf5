/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real lab on
 * port 0. The page's state is read from its test hook (`window.__lab`) and the panes' data-*
 * attributes, never from rendered text. Waits are for conditions (page.waitForFunction), never sleeps.
 *
 * Chromium missing: the suite fails under CI (.ci/run installs it) and is skipped elsewhere.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { publishMany, range, startLab, type RunningLab } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
const FIXTURE = new URL('./fixtures/bench-report.json', import.meta.url);
const FIXTURE_NAME = '2026-11-20T14-05-12Z-5c1e0d9.json';
/** The fixture's one INVALID scenario. */
const INVALID_SCENARIO = 'lab/poll 1000c 50/s 256B';
const OUTPUT_DIR = new URL('../test-output/', import.meta.url);
/** Short polling answers within its 1 s interval; everything else within a few ms. Generous for CI. */
const WAIT_MS = 10_000;

/** What the page exposes as `window.__lab` (web/app.js), as far as the tests read it. */
interface LabHook {
  ready: boolean;
  panes: Record<Transport, { ids: number[]; state: string; reconnects: number; lost: number; duplicates: number }>;
}
declare global {
  interface Window {
    __lab: LabHook;
    __cspViolations: string[];
  }
}

if (!HAVE_CHROMIUM) {
  const why = `${CHROMIUM} is missing: the dashboard tests need Debian's chromium (apt-get install chromium)`;
  if (process.env.CI) {
    describe('dashboard in Chromium', () => {
      it('has a browser to run in', () => expect.fail(why));
    });
  } else {
    console.warn(`test/dashboard.test.ts skipped: ${why}`);
  }
}

describe.skipIf(!HAVE_CHROMIUM)('dashboard in Chromium', () => {
  let browser: Browser;
  let resultsDir: string;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    resultsDir = await mkdtemp(join(tmpdir(), 'lab-results-'));
    await copyFile(FIXTURE, join(resultsDir, FIXTURE_NAME));
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** A lab with the demo publisher off and the fixture report in its results folder. */
  const lab = () => startLab({ demo: false, resultsDir });

  /** Opens the dashboard; collects console errors, page errors and CSP violations from the start. */
  async function open(running: RunningLab, hash = '') {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    // Chromium also logs CSP refusals to the console; the event says which directive, for the report.
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const response = await page.goto(`${running.url}/${hash}`);
    return { page, errors, response };
  }

  /** Waits until the page started and every pane is connected. */
  async function connected(page: Page) {
    await page.waitForFunction(
      (ts) => window.__lab?.ready && ts.every((t) => document.querySelector(`[data-transport="${t}"]`)?.getAttribute('data-state') === 'open'),
      TRANSPORTS,
      { timeout: WAIT_MS },
    );
  }

  /** Waits until every pane received `count` ids, then returns them per pane. */
  async function idsWhenAll(page: Page, count: number): Promise<Record<Transport, number[]>> {
    await page.waitForFunction(
      ({ ts, n }) => ts.every((t) => window.__lab.panes[t].ids.length >= n),
      { ts: TRANSPORTS, n: count },
      { timeout: WAIT_MS },
    );
    return page.evaluate((ts) => Object.fromEntries(ts.map((t) => [t, [...window.__lab.panes[t].ids]])), TRANSPORTS) as Promise<Record<Transport, number[]>>;
  }

  /** The pane's rendered counters (data-* attributes, refreshed a few times a second). */
  async function paneCounts(page: Page, expected: Record<string, string>) {
    await page.waitForFunction(
      ({ ts, want }) =>
        ts.every((t) => {
          const el = document.querySelector(`[data-transport="${t}"]`) as HTMLElement | null;
          return el !== null && Object.entries(want).every(([k, v]) => el.dataset[k] === v);
        }),
      { ts: TRANSPORTS, want: expected },
      { timeout: WAIT_MS },
    );
  }

  it('loads under the strict CSP with no console errors, page errors or CSP violations', async () => {
    const running = await lab();
    const { page, errors, response } = await open(running);
    const csp = (await response?.allHeaders())?.['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    await connected(page);
    // The charts and the strip are up, too (they are what could trip the CSP: chart.js, CSSOM).
    await page.waitForFunction(() => document.querySelector('#strip td')?.textContent !== '', undefined, { timeout: WAIT_MS });
    expect(await page.evaluate(() => typeof (window as unknown as { Chart?: unknown }).Chart)).toBe('function');
    expect(await page.locator('#latency-chart').count()).toBe(1);
    expect(errors).toEqual([]);
    expect(await page.evaluate(() => window.__cspViolations)).toEqual([]);
  });

  it('shows 20 published messages in every pane, in order, none lost or duplicated', async () => {
    const running = await lab();
    const { page, errors } = await open(running);
    await connected(page);
    await publishMany(running.url, 20);
    const ids = await idsWhenAll(page, 20);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual(range(1, 20));
    await paneCounts(page, { received: '20', lost: '0', duplicates: '0', skipped: '0', lastId: '20' });
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', OUTPUT_DIR).pathname, fullPage: true });
    expect(errors).toEqual([]);
  });

  it('"drop connection" on each pane resumes from its cursor: zero lost, zero duplicates', async () => {
    const running = await lab();
    const { page, errors } = await open(running);
    await connected(page);
    await publishMany(running.url, 5);
    await idsWhenAll(page, 5);

    for (const t of TRANSPORTS) await page.click(`[data-transport="${t}"] [data-action="drop"]`);
    await page.waitForFunction((ts) => ts.every((t) => window.__lab.panes[t].state === 'dropped'), TRANSPORTS, { timeout: WAIT_MS });
    // Published while the panes are disconnected (they stay so for about a second): these can only
    // arrive through the resume cursor.
    await publishMany(running.url, 5, (i) => ({ whileDropped: i }));

    const ids = await idsWhenAll(page, 10);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual(range(1, 10));
    await paneCounts(page, { state: 'open', reconnects: '1', received: '10', lost: '0', duplicates: '0', skipped: '0' });
    // And nothing trickles in afterwards: one more message is the only new id.
    await publishMany(running.url, 1);
    const after = await idsWhenAll(page, 11);
    for (const t of TRANSPORTS) expect(after[t], t).toEqual(range(1, 11));
    expect(errors).toEqual([]);
  });

  it('a pane that resumes from a cursor older than retention counts the announced gap as lost', async () => {
    const running = await startLab({ demo: false, resultsDir, retentionMessages: 5 });
    const { page, errors } = await open(running);
    await connected(page);
    await publishMany(running.url, 5);
    await idsWhenAll(page, 5);

    for (const t of TRANSPORTS) await page.click(`[data-transport="${t}"] [data-action="drop"]`);
    await page.waitForFunction((ts) => ts.every((t) => window.__lab.panes[t].state === 'dropped'), TRANSPORTS, { timeout: WAIT_MS });
    // One request publishes all 20 while every pane is down: 6..20 fall out of the 5 retained.
    const burst = await fetch(`${running.url}/control/burst`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: 20 }),
    });
    expect(await burst.json()).toEqual({ firstId: 6, lastId: 25 });

    const ids = await idsWhenAll(page, 10);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual([...range(1, 5), ...range(21, 25)]);
    await paneCounts(page, { received: '10', lost: '15', duplicates: '0', skipped: '0', lastId: '25' });
    expect(errors).toEqual([]);
  });

  it("the rate control changes the server's publish rate, and back to 0", async () => {
    const running = await lab();
    const control = async () => (await (await fetch(`${running.url}/control`)).json()) as { ratePerSec: number; payloadBytes: number };
    const { page, errors } = await open(running);
    await connected(page);
    expect((await control()).ratePerSec).toBe(0);

    await page.fill('#rate', '50');
    await page.fill('#payload', '200');
    await page.click('#control-btn');
    await page.waitForFunction(() => document.querySelector('#control-status')?.getAttribute('data-kind') === 'ok', undefined, { timeout: WAIT_MS });
    expect(await control()).toMatchObject({ ratePerSec: 50, payloadBytes: 200 });
    // The publisher really runs: every pane receives its messages.
    await idsWhenAll(page, 10);

    await page.fill('#rate', '0');
    await page.click('#control-btn');
    await page.waitForFunction(() => document.querySelector('#control-status')?.textContent?.includes(' 0 msg/s'), undefined, { timeout: WAIT_MS });
    expect((await control()).ratePerSec).toBe(0);
    expect(errors).toEqual([]);
  });

  it('the Reports view renders the fixture report as charts and marks the INVALID scenario', async () => {
    const running = await lab();
    const { page, errors } = await open(running, '#reports');
    await page.waitForFunction((name) => document.querySelector('#report')?.getAttribute('data-rendered') === name, FIXTURE_NAME, { timeout: WAIT_MS });

    // Charts: latency, bytes/msg and CPU/msg per scenario shape (2 in the fixture), memory heap + RSS.
    const charts = await page.evaluate(() => {
      const chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): { data: { labels: unknown[] } } | undefined } }).Chart;
      return Array.from(document.querySelectorAll<HTMLCanvasElement>('#report canvas')).map((c) => ({
        title: c.closest('figure')?.querySelector('figcaption')?.textContent ?? '',
        group: c.closest('section')?.querySelector('h2')?.textContent ?? '',
        width: c.width,
        labels: JSON.stringify(chart.getChart(c)?.data.labels ?? null),
      }));
    });
    expect(charts).toHaveLength(2 * 3 + 2);
    for (const c of charts) expect(c.width, c.title).toBeGreaterThan(0);
    expect(charts.filter((c) => c.title.startsWith('Latency percentiles'))).toHaveLength(2);
    expect(charts.some((c) => c.title.startsWith('Heap per connection'))).toBe(true);

    // The INVALID scenario is marked in its table and left out of its group's latency chart.
    const row = page.locator(`tr[data-scenario="${INVALID_SCENARIO}"]`);
    await expect(row.getAttribute('data-status')).resolves.toBe('invalid');
    expect(await row.textContent()).toContain('INVALID');
    const latency1000 = charts.find((c) => c.group.startsWith('1,000 clients') && c.title.startsWith('Latency'));
    expect(latency1000?.labels).toBeDefined();
    expect(JSON.parse(latency1000!.labels)).not.toContainEqual(['poll', 'lab']);
    expect(JSON.parse(latency1000!.labels)).toContainEqual(['poll', 'bare']);
    expect(errors).toEqual([]);
  });
});
