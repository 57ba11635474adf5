/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real lab on
 * port 0. The page's state is read from its test hook (`window.__lab`) and the panes' data-*
 * attributes, never from rendered text. Waits are for conditions (page.waitForFunction), never sleeps.
 *
 * Chromium missing: the suite fails under CI (.ci/run installs it) and is skipped elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readHtmlScripts, renderHtml } from '../../report/html.js';
import { renderMarkdown } from '../../report/markdown.js';
import { reportModel, type ChartSpec } from '../../report/model.js';
import type { Report } from '../../report/types.js';
import { publishMany, range, startLab, type RunningLab } from '../helpers/lab.js';
import { pageErrors } from '../helpers/real-parts.js';

/** The transports' colours, from the one place that states them (the page's own module). */
const THEME = '../../web/theme.js';
const { TRANSPORT_COLORS } = (await import(THEME)) as { TRANSPORT_COLORS: Record<string, string> };
import { htmlTables, markdownTables, modelTables, type TableView } from '../helpers/report-views.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
/** A real bench report (npm run fixture), with INVALID scenarios; served under a name of its own. */
const FIXTURE = new URL('../fixtures/bench-report.json', import.meta.url);
const FIXTURE_NAME = '2026-11-20T14-05-12Z-5c1e0d9.json';
const OUTPUT_DIR = new URL('../../test-output/', import.meta.url);
/** Short polling answers within its 1 s interval; everything else within a few ms. Generous for CI. */
const WAIT_MS = 10_000;

/** What the page exposes as `window.__lab` (web/app.js), as far as the tests read it. */
interface LabHook {
  ready: boolean;
  panes: Record<
    Transport,
    {
      ids: number[];
      state: string;
      reconnects: number;
      lost: number;
      duplicates: number;
      latency: { size: number };
      catchUpLatency: { size: number };
    }
  >;
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
    console.warn(`test/web/dashboard.test.ts skipped: ${why}`);
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
    const errors = pageErrors(page);
    // Chromium also logs CSP refusals to the console; the event says which directive, for the report.
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    const response = await page.goto(`${running.url}/${hash}`);
    return { page, errors, response };
  }

  /** Waits until the page started and every pane is connected. */
  async function connected(page: Page) {
    await page.waitForFunction(
      (ts) =>
        window.__lab?.ready &&
        ts.every((t) => document.querySelector(`[data-transport="${t}"]`)?.getAttribute('data-state') === 'open'),
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
    return page.evaluate(
      (ts) => Object.fromEntries(ts.map((t) => [t, [...window.__lab.panes[t].ids]])),
      TRANSPORTS,
    ) as Promise<Record<Transport, number[]>>;
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

  /**
   * Clicks "drop connection" on every pane in one task of the page, then sends `posts` (JSON, one
   * after another) from the page at once. Each pane stays down about a second from its own click
   * (web/panes.js DROP_PAUSE_MS): four clicks through Playwright and a publish from here, a round
   * trip each, took longer than that on a loaded machine, and the first pane was back before the last
   * was down. Returns each pane's state right after the clicks, and each answer's status and body.
   */
  async function dropAllAndPost(page: Page, posts: { path: string; body: unknown }[]) {
    return page.evaluate(
      async ({ ts, posts }) => {
        for (const t of ts)
          document.querySelector<HTMLElement>(`[data-transport="${t}"] [data-action="drop"]`)?.click();
        const states = ts.map((t) => window.__lab.panes[t].state);
        const answers: { status: number; body: unknown }[] = [];
        for (const { path, body } of posts) {
          const res = await fetch(path, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          answers.push({ status: res.status, body: await res.json() });
        }
        return { states, answers };
      },
      { ts: TRANSPORTS, posts },
    );
  }
  const ALL_DROPPED = TRANSPORTS.map(() => 'dropped');

  it('loads under the strict CSP with no console errors, page errors or CSP violations', async () => {
    const running = await lab();
    const { page, errors, response } = await open(running);
    const csp = (await response?.allHeaders())?.['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    await connected(page);
    // The charts and the strip are up, too (they are what could trip the CSP: chart.js, CSSOM).
    await page.waitForFunction(() => document.querySelector('#strip td')?.textContent !== '', undefined, {
      timeout: WAIT_MS,
    });
    expect(await page.evaluate(() => typeof (window as unknown as { Chart?: unknown }).Chart)).toBe('function');
    expect(await page.locator('#latency-chart').count()).toBe(1);
    // No relays (--network): nothing to say about the network, no other one to link to.
    expect(await page.locator('#network-info').isHidden()).toBe(true);
    expect(await page.locator('#network-links').isHidden()).toBe(true);
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

    // Published while the panes are disconnected (they stay so for about a second): these can only
    // arrive through the resume cursor.
    const dropped = await dropAllAndPost(
      page,
      range(0, 4).map((i) => ({ path: '/publish', body: { data: { whileDropped: i } } })),
    );
    expect(dropped.states).toEqual(ALL_DROPPED);
    expect(dropped.answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201]);

    const ids = await idsWhenAll(page, 10);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual(range(1, 10));
    // The five published while down arrive as catch-up on reconnect: counted apart, not in p50/p99.
    await paneCounts(page, {
      state: 'open',
      reconnects: '1',
      received: '10',
      lost: '0',
      duplicates: '0',
      skipped: '0',
      catchUps: '5',
    });
    // And nothing trickles in afterwards: one more message is the only new id, and a live one.
    await publishMany(running.url, 1);
    const after = await idsWhenAll(page, 11);
    for (const t of TRANSPORTS) expect(after[t], t).toEqual(range(1, 11));
    await paneCounts(page, { received: '11', catchUps: '5' });
    const live = await page.evaluate(() =>
      Object.fromEntries(
        Object.entries(window.__lab.panes).map(([t, p]) => [t, [p.latency.size, p.catchUpLatency.size]]),
      ),
    );
    for (const t of TRANSPORTS) expect(live[t], t).toEqual([6, 5]);
    expect(errors).toEqual([]);
  });

  it('a pane that resumes from a cursor older than retention counts the announced gap as lost', async () => {
    const running = await startLab({ demo: false, resultsDir, retentionMessages: 5 });
    const { page, errors } = await open(running);
    await connected(page);
    await publishMany(running.url, 5);
    await idsWhenAll(page, 5);

    // One request publishes all 20 while every pane is down: 6..20 fall out of the 5 retained.
    const dropped = await dropAllAndPost(page, [{ path: '/control/burst', body: { count: 20 } }]);
    expect(dropped.states).toEqual(ALL_DROPPED);
    expect(dropped.answers).toEqual([{ status: 201, body: { firstId: 6, lastId: 25 } }]);

    const ids = await idsWhenAll(page, 10);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual([...range(1, 5), ...range(21, 25)]);
    await paneCounts(page, { received: '10', lost: '15', duplicates: '0', skipped: '0', lastId: '25' });
    expect(errors).toEqual([]);
  });

  it("the rate control changes the server's publish rate, and back to 0", async () => {
    const running = await lab();
    const control = async () =>
      (await (await fetch(`${running.url}/control`)).json()) as { ratePerSec: number; payloadBytes: number };
    const { page, errors } = await open(running);
    await connected(page);
    expect((await control()).ratePerSec).toBe(0);

    await page.fill('#rate', '50');
    await page.fill('#payload', '200');
    await page.click('#control-btn');
    await page.waitForFunction(
      () => document.querySelector('#control-status')?.getAttribute('data-kind') === 'ok',
      undefined,
      { timeout: WAIT_MS },
    );
    expect(await control()).toMatchObject({ ratePerSec: 50, payloadBytes: 200 });
    // The publisher really runs: every pane receives its messages.
    await idsWhenAll(page, 10);

    await page.fill('#rate', '0');
    await page.click('#control-btn');
    await page.waitForFunction(
      () => document.querySelector('#control-status')?.textContent?.includes(' 0 msg/s'),
      undefined,
      { timeout: WAIT_MS },
    );
    expect((await control()).ratePerSec).toBe(0);
    expect(errors).toEqual([]);
  });

  it('the Reports view and the HTML report show the model of the Markdown report: same groups, tables, INVALID rows and chart figures', async () => {
    const report = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Report;
    const model = reportModel(report);
    // The Markdown and the HTML show the model's tables (test/report/report.test.ts checks it for every fixture).
    const tables = modelTables(model);
    expect(markdownTables(renderMarkdown(report))).toEqual(tables);
    const html = renderHtml(report, await readHtmlScripts());
    expect(htmlTables(html)).toEqual(tables);
    const groups = model.sections.flatMap((s) => s.groups);
    const charts = groups.flatMap((g) => g.charts?.charts ?? []);
    expect(tables.some((t) => t.rows.some((r) => r.invalid))).toBe(true);
    expect(charts.length).toBeGreaterThan(3);

    // What Chart.js draws: per canvas, the labels and every series' name, colour and numbers.
    const drawn = (page: Page, canvases: string) =>
      page.evaluate((selector) => {
        type Drawn = {
          data: { labels: unknown[]; datasets: { label: string; data: unknown[]; backgroundColor: string }[] };
        };
        const lib = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): Drawn | undefined } }).Chart;
        return Array.from(document.querySelectorAll<HTMLCanvasElement>(selector)).map((c) => {
          const data = lib.getChart(c)?.data;
          return {
            id: c.id,
            width: c.width,
            labels: data?.labels,
            datasets: data?.datasets.map((d) => ({ label: d.label, color: d.backgroundColor, data: d.data })),
          };
        });
      }, canvases);
    const expected = charts.map((c: ChartSpec) => ({
      id: c.id,
      labels: c.labels,
      // A transport's line is drawn in that transport's colour (web/theme.js), the model leaving it ''.
      datasets: c.datasets.map(({ label, color, transport, data }) => ({
        label,
        color: color || (transport ? TRANSPORT_COLORS[transport] : color),
        data,
      })),
    }));
    /** Every chart has a size (it was laid out); the rest is compared with the model. */
    const sized = (xs: Awaited<ReturnType<typeof drawn>>) =>
      xs.map(({ width, ...x }) => {
        expect(width, x.id).toBeGreaterThan(0);
        return x;
      });

    const running = await lab();
    const { page, errors } = await open(running, '#reports');
    await page.waitForFunction(
      (name) => document.querySelector('#report')?.getAttribute('data-rendered') === name,
      FIXTURE_NAME,
      { timeout: WAIT_MS },
    );
    const dom = await page.evaluate(() =>
      Array.from(document.querySelectorAll('#report .report-group')).flatMap((g) =>
        // A group's first table under its h3; a wide table's further concerns each in a .report-more under an h4.
        Array.from(g.querySelectorAll('table')).map((table) => ({
          section: g.closest('.report-section')?.querySelector('h2')?.textContent ?? '',
          title:
            (table.closest('.report-more')?.querySelector('h4') ?? g.querySelector('h3'))?.textContent ?? undefined,
          headers: Array.from(table.querySelectorAll('thead th')).map((th) => th.textContent ?? ''),
          rows: Array.from(table.querySelectorAll<HTMLElement>('tbody tr')).map((tr) => ({
            cells: Array.from(tr.children).map((td) => td.textContent ?? ''),
            invalid: tr.dataset.status === 'invalid' && tr.classList.contains('invalid'),
          })),
        })),
      ),
    );
    // The dashboard heads a group with its charts' title when its table has none (memory).
    const titles = groups.flatMap((g) => [g.table.title ?? g.charts?.title, ...(g.more ?? []).map((t) => t.title)]);
    expect(dom).toEqual(tables.map((t, i): TableView => ({ ...t, title: titles[i] })));
    expect(await page.locator('.invalid-box').getAttribute('data-invalid-count')).toBe(String(model.invalid.length));
    expect(sized(await drawn(page, '#report canvas'))).toEqual(expected);
    expect(errors).toEqual([]);

    // The self-contained HTML draws the same charts with the same code (web/theme.js, inlined).
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    onTestFinished(() => context.close());
    const standalone = await context.newPage();
    const pageErrors: string[] = [];
    standalone.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    standalone.on('pageerror', (e) => pageErrors.push(e.message));
    await standalone.setContent(html);
    await standalone.waitForFunction(
      (n) =>
        document.querySelectorAll('canvas').length === n &&
        Array.from(document.querySelectorAll('canvas')).every((c) => c.width > 0),
      charts.length,
      { timeout: WAIT_MS },
    );
    await standalone.waitForFunction(
      () => {
        const lib = (window as unknown as { Chart?: { getChart(c: HTMLCanvasElement): unknown } }).Chart;
        return (
          lib !== undefined &&
          Array.from(document.querySelectorAll('canvas')).every((c) => lib.getChart(c) !== undefined)
        );
      },
      undefined,
      { timeout: WAIT_MS },
    );
    expect(sized(await drawn(standalone, 'canvas'))).toEqual(expected);
    expect(pageErrors).toEqual([]);
  });
});
