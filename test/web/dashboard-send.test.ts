/**
 * The panes' send boxes in real Chromium: each pane sends over its own transport (the WebSocket pane a
 * publish frame on its socket, the others POST /send), every pane receives every send exactly once, and
 * each pane shows its sends acknowledged and received back (the send's own round trip); auto-send keeps
 * sending until it is set off; a send past the connection's budget shows as refused with its code.
 *
 * State is read from the panes' data-* attributes and the page's test hook; waits are for conditions,
 * never sleeps. Chromium missing: fails under CI, skipped elsewhere.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, NO_CHROMIUM, openDashboard, requirePart, useChromium } from '../helpers/real-parts.js';
import { startLab } from '../helpers/lab.js';

const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
/** Short polling answers within its 1 s interval; everything else within a few ms. Generous for CI. */
const WAIT_MS = 15_000;

interface Hook {
  ready: boolean;
  panes: Record<Transport, { ids: number[]; state: string; lost: number; duplicates: number; skipped: number }>;
}
type LabWindow = Window & { __lab: Hook };

requirePart(HAVE_CHROMIUM, 'dashboard send boxes in Chromium', 'test/web/dashboard-send.test.ts', NO_CHROMIUM);

/** A pane's data-* attribute as a number. */
const attr = (page: Page, t: Transport, name: string) =>
  page.$eval(`.pane[data-transport="${t}"]`, (el, n) => Number((el as HTMLElement).dataset[n] ?? 'NaN'), name);

describe.skipIf(!HAVE_CHROMIUM)('dashboard send boxes in Chromium', () => {
  const browser = useChromium();

  it('each pane sends over its transport; every pane gets every send once; each shows its ack and its own receipt', async () => {
    const lab = await startLab();
    const { page, errors } = await openDashboard(browser(), `${lab.url}/`, TRANSPORTS, WAIT_MS);
    for (const t of TRANSPORTS) {
      const pane = `.pane[data-transport="${t}"]`;
      await page.fill(`${pane} form.send input[name="text"]`, `hi from ${t}`);
      await page.click(`${pane} form.send button[type="submit"]`);
    }
    await page.waitForFunction(
      (ts) =>
        ts.every((t) => {
          const el = document.querySelector(`.pane[data-transport="${t}"]`) as HTMLElement;
          return el.dataset.acked === '1' && el.dataset.seen === '1';
        }),
      TRANSPORTS,
      { timeout: WAIT_MS },
    );
    for (const t of TRANSPORTS) {
      expect(await attr(page, t, 'sent'), t).toBe(1);
      expect(await attr(page, t, 'sendRefused'), t).toBe(0);
      expect(await attr(page, t, 'sendAckP50Ms'), t).toBeGreaterThan(0);
      expect(await attr(page, t, 'sendBackP50Ms'), t).toBeGreaterThan(0);
    }
    // Four sends, four messages in the feed, each once in every pane.
    expect(lab.app.lab.feed.info().lastId).toBe(4);
    await page.waitForFunction(
      (ts) => ts.every((t) => (window as unknown as LabWindow).__lab.panes[t].ids.length === 4),
      TRANSPORTS,
      { timeout: WAIT_MS },
    );
    const panes = await page.evaluate(() => (window as unknown as LabWindow).__lab.panes);
    for (const t of TRANSPORTS) {
      expect(panes[t].ids, t).toEqual([1, 2, 3, 4]);
      expect([panes[t].lost, panes[t].duplicates, panes[t].skipped], t).toEqual([0, 0, 0]);
    }
    const sent = await lab.app.lab.feed.read(0, 10);
    expect(sent.kind === 'messages' && sent.messages.map((m) => (m.data as { from: string }).from).sort()).toEqual(
      [...TRANSPORTS].sort(),
    );
    expect(errors).toEqual([]);
  });

  it('auto-send sends until set off; past the send budget a send shows refused with LAB_ERR_SEND_RATE', async () => {
    const lab = await startLab({ sendMessagesPerSec: 1 });
    const { page } = await openDashboard(browser(), `${lab.url}/`, TRANSPORTS, WAIT_MS);
    const pane = '.pane[data-transport="sse"]';
    await page.selectOption(`${pane} form.send select[name="auto"]`, '5');
    // At 5 a second against a budget of 1: some are acknowledged, the rest refused with the code.
    await page.waitForFunction(
      (sel) => {
        const el = document.querySelector(sel) as HTMLElement;
        return Number(el.dataset.acked) >= 2 && Number(el.dataset.sendRefused) >= 2;
      },
      pane,
      { timeout: WAIT_MS },
    );
    await page.selectOption(`${pane} form.send select[name="auto"]`, '0');
    const text = await page.textContent(`${pane} [data-field="sendFigures"]`);
    expect(text).toContain('LAB_ERR_SEND_RATE');
    // Off: nothing more is sent. What was acknowledged is exactly what the feed holds.
    const sentAtOff = await attr(page, 'sse', 'sent');
    await page.waitForFunction(
      ([sel, n]) => {
        const el = document.querySelector(sel as string) as HTMLElement;
        return Number(el.dataset.acked) + Number(el.dataset.sendRefused) === n;
      },
      [pane, sentAtOff] as const,
      { timeout: WAIT_MS },
    );
    expect(await attr(page, 'sse', 'sent')).toBe(sentAtOff);
    expect(lab.app.lab.feed.info().lastId).toBe(await attr(page, 'sse', 'acked'));
  });
});
