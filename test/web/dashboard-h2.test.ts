/**
 * The dashboard over HTTP/2 (TLS, the lab's self-signed certificate) in real Chromium: every pane
 * receives every message, and each pane shows the protocol the browser itself reports for its
 * connection (Resource Timing `nextHopProtocol`): h2 for long polling, short polling and SSE, HTTP/1.1
 * for WebSocket (ws has no RFC 8441). The same check over cleartext HTTP/1.1 and HTTPS/1.1 shows
 * http/1.1, with and without TLS.
 *
 * State is read from the page's test hook (`window.__lab`) and the panes' data-* attributes; waits
 * are for conditions (page.waitForFunction), never sleeps. Chromium missing: fails under CI, skipped
 * elsewhere, as in dashboard.test.ts.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../server/config.js';
import { HAVE_CHROMIUM, NO_CHROMIUM, openPage, requirePart, useChromium } from '../helpers/real-parts.js';
import { range, type RunningLab, startLab } from '../helpers/lab.js';

const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
/** Short polling answers within its 1 s interval; everything else within a few ms. Generous for CI. */
const WAIT_MS = 10_000;

/** What the page exposes as `window.__lab` (web/app.js), as far as this file reads it. */
interface Hook {
  ready: boolean;
  protocol: { page: string; tls: boolean };
  panes: Record<
    Transport,
    {
      ids: number[];
      state: string;
      requests: number;
      lost: number;
      duplicates: number;
      skipped: number;
      protocol: string;
      protocolSource: string;
    }
  >;
}
/** Typed apart from dashboard.test.ts's global `Window` augmentation (both files share one program). */
type LabWindow = Window & { __lab: Hook };

requirePart(HAVE_CHROMIUM, 'dashboard over HTTP/2 in Chromium', 'test/web/dashboard-h2.test.ts', NO_CHROMIUM);

describe.skipIf(!HAVE_CHROMIUM)('dashboard over HTTP/2 in Chromium', () => {
  const browser = useChromium();

  const open = (running: RunningLab) => openPage(browser(), `${running.url}/`);

  /** Waits until every pane is connected and knows its protocol (the polls' after their first answer). */
  async function connected(page: Page) {
    await page.waitForFunction(
      (ts) => {
        const lab = (window as unknown as LabWindow).__lab;
        return lab?.ready && ts.every((t) => lab.panes[t].state === 'open' && lab.panes[t].protocol !== '');
      },
      TRANSPORTS,
      { timeout: WAIT_MS },
    );
  }

  interface Shown {
    protocol: string;
    source: string;
    dom: string | undefined;
    badge: string | null | undefined;
    why: string | undefined;
  }

  /** The protocol each pane shows: the hook, and what the pane renders (data-* and its badge's tooltip). */
  async function shown(page: Page): Promise<{
    page: Hook['protocol'];
    header: { protocol: string | undefined; tls: string | undefined };
    panes: Record<Transport, Shown>;
  }> {
    // The panes re-render four times a second: wait until the DOM caught up with the hook.
    await page.waitForFunction(
      (ts) =>
        ts.every(
          (t) =>
            document.querySelector<HTMLElement>(`[data-transport="${t}"]`)?.dataset.protocol ===
            (window as unknown as LabWindow).__lab.panes[t].protocol,
        ),
      TRANSPORTS,
      { timeout: WAIT_MS },
    );
    const answer = await page.evaluate((ts) => {
      const lab = (window as unknown as LabWindow).__lab;
      const header = document.querySelector<HTMLElement>('#protocol-info');
      return {
        page: lab.protocol,
        header: { protocol: header?.dataset.protocol, tls: header?.dataset.tls },
        panes: Object.fromEntries(
          ts.map((t) => {
            const el = document.querySelector<HTMLElement>(`[data-transport="${t}"]`);
            const badge = el?.querySelector<HTMLElement>('[data-field="protocol"]');
            return [
              t,
              {
                protocol: lab.panes[t].protocol,
                source: lab.panes[t].protocolSource,
                dom: el?.dataset.protocol,
                badge: badge?.textContent,
                why: badge?.title,
              },
            ];
          }),
        ),
      };
    }, TRANSPORTS);
    return { ...answer, panes: answer.panes as Record<Transport, Shown> };
  }

  /** Waits until every pane received `count` ids, then returns them per pane. */
  async function idsWhenAll(page: Page, count: number): Promise<Record<Transport, number[]>> {
    await page.waitForFunction(
      ({ ts, n }) => ts.every((t) => (window as unknown as LabWindow).__lab.panes[t].ids.length >= n),
      { ts: TRANSPORTS, n: count },
      { timeout: WAIT_MS },
    );
    return page.evaluate(
      (ts) => Object.fromEntries(ts.map((t) => [t, [...(window as unknown as LabWindow).__lab.panes[t].ids]])),
      TRANSPORTS,
    ) as Promise<Record<Transport, number[]>>;
  }

  /** Global fetch refuses the self-signed certificate: publish into the lab's feed directly. */
  const publishMany = async (running: RunningLab, n: number) => {
    for (let i = 0; i < n; i++) await running.app.lab.feed.append({ n: i });
  };

  it('over HTTP/2 every pane receives 20 messages, none lost or duplicated; poll, short poll and SSE show h2, WebSocket HTTP/1.1', async () => {
    const running = await startLab({ http2: true });
    expect(running.app.lab.protocol).toBe('h2');
    expect(running.url).toMatch(/^https:\/\//);
    const { page, errors, cspViolations } = await open(running);
    await connected(page);

    await publishMany(running, 20);
    const ids = await idsWhenAll(page, 20);
    for (const t of TRANSPORTS) expect(ids[t], t).toEqual(range(1, 20));
    const counts = await page.evaluate(
      (ts) =>
        Object.fromEntries(
          ts.map((t) => [
            t,
            (({ lost, duplicates, skipped }) => ({ lost, duplicates, skipped }))(
              (window as unknown as LabWindow).__lab.panes[t],
            ),
          ]),
        ),
      TRANSPORTS,
    );
    for (const t of TRANSPORTS) expect(counts[t], t).toEqual({ lost: 0, duplicates: 0, skipped: 0 });

    const s = await shown(page);
    expect(s.page).toEqual({ page: 'h2', tls: true });
    expect(s.header).toEqual({ protocol: 'h2', tls: 'true' });
    // The polls' own Resource Timing entries; SSE has none while its stream is open (web/protocol.js),
    // so it shows the page's navigation entry; WebSocket is an HTTP/1.1 upgrade whatever the page is on.
    expect(s.panes.poll).toMatchObject({ protocol: 'h2', source: 'resource', dom: 'h2', badge: 'HTTP/2 · TLS' });
    expect(s.panes['short-poll']).toMatchObject({
      protocol: 'h2',
      source: 'resource',
      dom: 'h2',
      badge: 'HTTP/2 · TLS',
    });
    expect(
      s.panes.sse,
      'Chromium made a Resource Timing entry for an open EventSource: web/protocol.js says it does not',
    ).toMatchObject({
      protocol: 'h2',
      source: 'navigation',
      dom: 'h2',
    });
    expect(s.panes.ws).toMatchObject({
      protocol: 'http/1.1',
      source: 'websocket',
      dom: 'http/1.1',
      badge: 'HTTP/1.1 · TLS',
    });
    expect(s.panes.ws.why).toContain('HTTP/1.1 (WebSocket over HTTP/2, RFC 8441, is not supported by ws)');

    // The browser's own entries agree: every poll of the page went over h2.
    const pollProtocols = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => new URL(e.name).pathname === '/poll')
        .map((e) => (e as PerformanceResourceTiming).nextHopProtocol),
    );
    expect(pollProtocols.length).toBeGreaterThan(0);
    expect(new Set(pollProtocols)).toEqual(new Set(['h2']));

    // Server side, asked by the page over the same origin (and so over h2 too): /stats counted the
    // polls. A pane counts a request before sending it, the server when it arrives: at most one apart.
    const { stats, pageRequests, statsProtocol } = await page.evaluate(async () => {
      const lab = (window as unknown as LabWindow).__lab;
      const before = { poll: lab.panes.poll.requests, short: lab.panes['short-poll'].requests };
      const res = await fetch('/stats', { cache: 'no-store' });
      const body = (await res.json()) as {
        transports: Record<string, { requests: number; messagesOut: number; connections: number }>;
      };
      const entries = performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname === '/stats');
      const last = entries[entries.length - 1] as PerformanceResourceTiming | undefined;
      return { stats: body.transports, pageRequests: before, statsProtocol: last?.nextHopProtocol };
    });
    expect(statsProtocol).toBe('h2');
    expect(stats.poll?.requests).toBeGreaterThanOrEqual(pageRequests.poll - 1);
    expect(stats.poll?.requests).toBeGreaterThan(0);
    expect(stats.poll?.messagesOut).toBeGreaterThanOrEqual(20);
    expect(stats['short-poll']?.requests).toBeGreaterThanOrEqual(pageRequests.short - 1);
    expect(stats.sse?.connections).toBe(1);
    expect(stats.ws?.connections).toBe(1);

    // Once an EventSource's stream has ended, Chromium has its entry: after a drop the SSE pane's
    // protocol comes from Resource Timing too, and it is h2.
    await page.click('[data-transport="sse"] [data-action="drop"]');
    await page.waitForFunction(
      () => {
        const p = (window as unknown as LabWindow).__lab.panes.sse;
        return p.state === 'open' && p.protocolSource === 'resource';
      },
      undefined,
      { timeout: WAIT_MS },
    );
    expect((await shown(page)).panes.sse).toMatchObject({ protocol: 'h2', source: 'resource', dom: 'h2' });

    expect(errors).toEqual([]);
    expect(await cspViolations()).toEqual([]);
  });

  const overHttp1: { name: string; config: ConfigInput; tls: boolean; badge: string }[] = [
    { name: 'cleartext HTTP/1.1', config: {}, tls: false, badge: 'HTTP/1.1 · no TLS' },
    { name: 'HTTPS/1.1', config: { tls: true }, tls: true, badge: 'HTTP/1.1 · TLS' },
  ];
  for (const c of overHttp1) {
    it(`over ${c.name} every pane shows http/1.1, ${c.tls ? 'with' : 'without'} TLS`, async () => {
      const running = await startLab(c.config);
      expect(running.app.lab.protocol).toBe(c.tls ? 'https/1.1' : 'http/1.1');
      const { page, errors, cspViolations } = await open(running);
      await connected(page);
      await publishMany(running, 3);
      const ids = await idsWhenAll(page, 3);
      for (const t of TRANSPORTS) expect(ids[t], t).toEqual(range(1, 3));

      const s = await shown(page);
      expect(s.page).toEqual({ page: 'http/1.1', tls: c.tls });
      expect(s.header).toEqual({ protocol: 'http/1.1', tls: String(c.tls) });
      for (const t of TRANSPORTS)
        expect(s.panes[t], t).toMatchObject({ protocol: 'http/1.1', dom: 'http/1.1', badge: c.badge });
      expect(s.panes.poll.source).toBe('resource');
      expect(s.panes['short-poll'].source).toBe('resource');
      expect(s.panes.sse.source).toBe('navigation');
      expect(errors).toEqual([]);
      expect(await cspViolations()).toEqual([]);
    });
  }
});
