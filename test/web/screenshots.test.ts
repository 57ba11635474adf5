/**
 * The screenshots in docs/, taken in real Chromium at 1280 × 800 from what ships: the dashboard on the
 * lab's own publisher (200 msg/s), every pane live. Each run writes them to test-output/; with
 * UPDATE_SCREENSHOTS=1 (on purpose, then committed) into docs/ as well. The page must fit 1280 px: no
 * horizontal scroll.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../helpers/lab.js';
import { CHROMIUM, HAVE_CHROMIUM, pageErrors, requirePart } from '../helpers/real-parts.js';

const OUTPUT_DIR = new URL('../../test-output/', import.meta.url);
const DOCS = new URL('../../docs/', import.meta.url);
const VIEWPORT = { width: 1280, height: 800 };
const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
/** Enough messages in every pane that the latency chart and the wire strip have something to show. */
const MESSAGES_PER_PANE = 150;

requirePart(
  HAVE_CHROMIUM,
  'screenshots in Chromium',
  'test/web/screenshots.test.ts',
  `${CHROMIUM} is missing: the screenshots need Debian's chromium (apt-get install chromium)`,
);

describe.skipIf(!HAVE_CHROMIUM)('screenshots in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    await mkdir(OUTPUT_DIR, { recursive: true });
  });
  afterAll(() => browser?.close());

  it('the dashboard at 200 msg/s, every pane live, fits 1280 px', async () => {
    // startLab closes it when the test ends.
    const lab = await startLab({ demo: true, demoRatePerSec: 200 });
    {
      const context = await browser.newContext({ viewport: VIEWPORT });
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
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow, 'horizontal scroll at 1280 px').toBeLessThanOrEqual(0);
      const file = new URL('dashboard.png', OUTPUT_DIR);
      await page.screenshot({ path: file.pathname });
      if (process.env.UPDATE_SCREENSHOTS) await copyFile(file, new URL('dashboard.png', DOCS));
      expect(errors).toEqual([]);
      await context.close();
    }
  }, 60_000);
});
