/**
 * The screenshots in docs/, taken in real Chromium at 1280 × 800 from what ships: the dashboard on the
 * lab's own publisher (200 msg/s), every pane live; the dashboard on 3G, picked in the header of a plain
 * lab (its relay started on demand) and set to where the transports differ; and the first screen of every committed report
 * (results/**.html, docs/screens/). Each run writes them to test-output/; with UPDATE_SCREENSHOTS=1 (on
 * purpose, then committed) into docs/ as well. Every page must fit 1280 px: no horizontal scroll, not
 * even inside a table's box; every chart of a report drawn with data; its answer on its first screen.
 */
import { readdirSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../helpers/lab.js';
import { HAVE_CHROMIUM, NO_CHROMIUM, pageErrors, requirePart, useChromium } from '../helpers/real-parts.js';

const OUTPUT_DIR = new URL('../../test-output/', import.meta.url);
const DOCS = new URL('../../docs/', import.meta.url);
const RESULTS = new URL('../../results/', import.meta.url);
const VIEWPORT = { width: 1280, height: 800 };
const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
/** Enough messages in every pane that the latency chart and the wire strip have something to show. */
const MESSAGES_PER_PANE = 150;

/** Every committed report page (results/latest.html, results/networks/latest.html, results/guide.html…). */
const REPORT_PAGES = readdirSync(RESULTS, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.html'))
  .sort();
/** results/networks/latest.html → networks-latest.png */
const shotName = (page: string): string => `${page.replace(/\.html$/, '').replaceAll('/', '-')}.png`;

requirePart(HAVE_CHROMIUM, 'screenshots in Chromium', 'test/web/screenshots.test.ts', NO_CHROMIUM);

/** Writes the page's screenshot to test-output/`name`, and to docs/`name` when UPDATE_SCREENSHOTS is set. */
async function shoot(page: import('playwright-core').Page, name: string): Promise<void> {
  const file = new URL(name, OUTPUT_DIR);
  await page.screenshot({ path: file.pathname });
  if (process.env.UPDATE_SCREENSHOTS) {
    const into = new URL(name, DOCS);
    await mkdir(new URL('.', into), { recursive: true });
    await copyFile(file, into);
  }
}

/** How far the page, and the widest box inside it that scrolls sideways, overflow at this width (px). */
const overflow = (page: import('playwright-core').Page) =>
  page.evaluate(() => {
    const boxes = Array.from(document.querySelectorAll<HTMLElement>('.scroll, .table-wrap'));
    const worst = boxes
      .map((b) => ({ what: b.previousElementSibling?.textContent ?? b.className, by: b.scrollWidth - b.clientWidth }))
      .sort((a, b) => b.by - a.by)[0];
    return {
      page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      box: worst ?? { what: '', by: 0 },
    };
  });

describe.skipIf(!HAVE_CHROMIUM)('screenshots in Chromium', () => {
  const browser = useChromium();
  beforeAll(() => mkdir(new URL('screens/', OUTPUT_DIR), { recursive: true }));

  it('the dashboard at 200 msg/s, every pane live, fits 1280 px', async () => {
    // startLab closes it when the test ends.
    const lab = await startLab({ demo: true, demoRatePerSec: 200 });
    const context = await browser().newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    const errors = pageErrors(page);
    await page.goto(`${lab.url}/`);
    await page.waitForFunction(
      ({ ts, n }) => {
        const lab = (window as unknown as { __lab?: { panes: Record<string, { ids: unknown[] }> } }).__lab;
        return ts.every((t) => (lab?.panes[t]?.ids.length ?? 0) >= n);
      },
      { ts: TRANSPORTS, n: MESSAGES_PER_PANE },
      { timeout: 30_000 },
    );
    expect((await overflow(page)).page, 'horizontal scroll at 1280 px').toBeLessThanOrEqual(0);
    await shoot(page, 'dashboard.png');
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('the dashboard on 3G, picked in the header of a plain lab: long polling falls behind within seconds', async () => {
    // A lab as `npm start` runs it: demo publisher at its default rate, relays started on demand.
    const lab = await startLab({ demo: true }, { networksOnDemand: true });
    const context = await browser().newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    const errors = pageErrors(page);
    await page.goto(`${lab.url}/`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 30_000 });
    // The header offers every profile; 3G starts its relay and opens the dashboard through it.
    await page.click('#network-links button[data-network="3g"]');
    await page.waitForURL((u) => u.port !== new URL(lab.url).port, { timeout: 30_000 });
    await page.waitForFunction(
      () =>
        document.body.dataset.ready === 'true' &&
        document.querySelector('#network-info')?.getAttribute('data-network') === '3g',
      undefined,
      { timeout: 30_000 },
    );
    // Arriving from the link set the rate where the transports differ on 3G: three messages per 300 ms RTT.
    expect(lab.app.lab.generator.state.ratePerSec).toBe(10);
    // A few seconds of live deliveries in every pane, and their p50 (catch-up on connect is not in it).
    await page.waitForFunction(
      ({ ts, n }) =>
        ts.every((t) => {
          const lab = (window as unknown as { __lab?: { panes: Record<string, { latency: { size: number } }> } }).__lab;
          const el = document.querySelector<HTMLElement>(`[data-transport="${t}"]`);
          return (lab?.panes[t]?.latency.size ?? 0) >= n && el?.dataset.p50Ms && el.dataset.bytesPerMsg;
        }),
      { ts: ['poll', 'sse', 'ws'], n: 40 },
      { timeout: 40_000 },
    );
    const p50 = await page.evaluate(() =>
      Object.fromEntries(
        ['poll', 'sse', 'ws'].map((t) => [
          t,
          Number(document.querySelector<HTMLElement>(`[data-transport="${t}"]`)?.dataset.p50Ms),
        ]),
      ),
    );
    // Long polling pays a round trip for the messages that wait while its next request goes up the link.
    expect(p50.poll, JSON.stringify(p50)).toBeGreaterThan(p50.ws! + 50);
    expect(p50.poll, JSON.stringify(p50)).toBeGreaterThan(p50.sse! + 50);
    // Bytes and requests per message on the first screen, beside each pane's latency.
    const below = await page.evaluate(
      (h) =>
        Array.from(document.querySelectorAll('[data-field="bytesPerMsg"], [data-field="requestsPerMsg"]'))
          .filter((e) => e.getBoundingClientRect().bottom > h)
          .map((e) => e.closest<HTMLElement>('[data-transport]')?.dataset.transport),
      VIEWPORT.height,
    );
    expect(below, 'wire figures below the first screen').toEqual([]);
    // No label or figure cut short (ellipsis) or run into the next at 1280 px.
    const labels = await page.evaluate(() => {
      const shown = Array.from(
        document.querySelectorAll<HTMLElement>('.counts dt, .counts dd, .pane-title, legend, .strip th'),
      ).filter((e) => e.offsetParent !== null);
      const cut = shown
        .filter((e) => e.scrollWidth > e.clientWidth + 1)
        .map((e) => `${e.closest<HTMLElement>('[data-transport]')?.dataset.transport ?? ''} ${e.textContent}`);
      return { checked: shown.length, cut };
    });
    expect(labels.checked).toBeGreaterThan(40);
    expect(labels.cut, 'labels cut at 1280 px').toEqual([]);
    expect((await overflow(page)).page, 'horizontal scroll at 1280 px').toBeLessThanOrEqual(0);
    await shoot(page, 'dashboard-3g.png');
    expect(errors).toEqual([]);
    await context.close();
  }, 90_000);

  it.each(REPORT_PAGES)(
    'results/%s: its answer on the first screen, every chart drawn, nothing scrolls sideways at 1280 px',
    async (name) => {
      const context = await browser().newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      const errors = pageErrors(page);
      await page.goto(pathToFileURL(new URL(name, RESULTS).pathname).href);
      // Every canvas has its Chart.js chart (the page's own module script draws them on load).
      await page.waitForFunction(
        () => {
          const lib = (window as unknown as { Chart?: { getChart(c: HTMLCanvasElement): unknown } }).Chart;
          const canvases = Array.from(document.querySelectorAll('canvas'));
          return canvases.length === 0 || (lib !== undefined && canvases.every((c) => lib.getChart(c) !== undefined));
        },
        undefined,
        { timeout: 20_000 },
      );
      const charts = await page.evaluate(() => {
        type Drawn = { data: { datasets: { data: (number | null)[] }[] } };
        const lib = (window as unknown as { Chart?: { getChart(c: HTMLCanvasElement): Drawn | undefined } }).Chart;
        return Array.from(document.querySelectorAll('canvas')).map((c) => ({
          id: c.id,
          width: c.width,
          points: lib?.getChart(c)?.data.datasets.flatMap((d) => d.data.filter((v) => v !== null)).length ?? 0,
        }));
      });
      for (const c of charts) {
        expect(c.width, `${c.id} has no size`).toBeGreaterThan(0);
        expect(c.points, `${c.id} draws nothing`).toBeGreaterThan(0);
      }
      const { page: byPage, box } = await overflow(page);
      expect(byPage, 'the page scrolls sideways').toBeLessThanOrEqual(0);
      expect(box.by, `a table scrolls sideways: ${box.what}`).toBeLessThanOrEqual(0);
      // The answer (the guide's table, a report's "The answer" or its first section) starts on the first screen.
      const answerTop = await page.evaluate(() => {
        const first = document.querySelector('h1 ~ section, h1 ~ table, h1 ~ div.scroll');
        return first ? first.getBoundingClientRect().top : Number.POSITIVE_INFINITY;
      });
      expect(answerTop, 'the answer starts below the first screen').toBeLessThan(VIEWPORT.height / 2);
      await shoot(page, `screens/${shotName(name)}`);
      expect(errors).toEqual([]);
      await context.close();
    },
    30_000,
  );
});
