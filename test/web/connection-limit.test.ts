/**
 * The browser's connection limit, reproduced with the dashboard's "Connection limit" section in real
 * Chromium (web/extra.js). Over HTTP/1.1 Chromium opens at most 6 connections per origin and queues
 * the rest without an error: of 10 extra EventSources only 6 minus what the panes hold open (the SSE
 * pane's stream) can be live, the others stall; 10 extra long polls all get each message, but some
 * only after waiting in the browser until an answer freed a connection. Over HTTP/2 every one is a
 * stream on one connection: all live, none stalled. Closing the extra streams frees the connections
 * and the panes carry on.
 *
 * No fixed sleeps: each test publishes a message and waits until it has reached every live stream and
 * the panes, so that what has not got it by then is told apart by cause, not by time (see web/extra.js
 * for the definitions of live and stalled). The server's own counters cross-check the page.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it, vi } from 'vitest';
import { HAVE_CHROMIUM, NO_CHROMIUM, openDashboard, requirePart, useChromium } from '../helpers/real-parts.js';
import { type RunningLab, startLab, until } from '../helpers/lab.js';

const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
const WAIT_MS = 10_000;
/** Chromium's connections per origin over HTTP/1.1. */
const H1_LIMIT = 6;

/** `window.__lab.extra` (web/extra.js ExtraSnapshot), as far as these tests read it. */
interface Extra {
  kind: 'sse' | 'poll' | null;
  opened: number;
  live: number;
  stalled: number;
  waiting: number;
  errors: number;
  protocol: string;
  limit: number | null;
  panesHold: { sse: number; poll: number; 'short-poll': number };
  maxLive: number | null;
  reference: number | null;
  streams: { id: string; state: string; received: number; lastId: number; waitMs: number | null }[];
}
interface Hook {
  ready: boolean;
  panes: Record<
    Transport,
    { ids: number[]; state: string; lastSeen: number; lost: number; duplicates: number; skipped: number }
  >;
  extra: Extra;
}
type LabWindow = Window & { __lab: Hook };

requirePart(HAVE_CHROMIUM, 'connection limit in Chromium', 'test/web/connection-limit.test.ts', NO_CHROMIUM);

describe.skipIf(!HAVE_CHROMIUM)('connection limit in Chromium', () => {
  const browser = useChromium();

  /** Opens the dashboard (accepting the self-signed certificate under TLS) and waits until every pane is open. */
  async function open(running: RunningLab) {
    return openDashboard(browser(), `${running.url}/`, TRANSPORTS, WAIT_MS);
  }

  /** Opens `n` extra streams of `kind` with the section's own controls. */
  async function openExtra(page: Page, kind: 'sse' | 'poll', n: number) {
    await page.fill('#extra-count', String(n));
    await page.click(kind === 'sse' ? '#extra-open-sse' : '#extra-open-poll');
    await page.waitForFunction(
      ({ k, n }) =>
        (window as unknown as LabWindow).__lab.extra?.kind === k &&
        (window as unknown as LabWindow).__lab.extra.opened === n,
      { k: kind, n },
      { timeout: WAIT_MS },
    );
  }

  const extra = (page: Page): Promise<Extra> => page.evaluate(() => (window as unknown as LabWindow).__lab.extra);

  /** Global fetch refuses the self-signed certificate: publish into the lab's feed directly. */
  const append = async (running: RunningLab, data: unknown) => (await running.app.lab.feed.append(data)).id;

  /** Waits until each of `panes` received message `id`. */
  async function panesGot(page: Page, id: number, panes: readonly Transport[] = TRANSPORTS) {
    await page.waitForFunction(
      ({ ts, id }) => ts.every((t) => (window as unknown as LabWindow).__lab.panes[t].ids.includes(id)),
      { ts: panes, id },
      { timeout: WAIT_MS },
    );
  }

  /**
   * Closes the extra streams with the section's button, then checks that every pane, the long-poll and
   * short-poll panes included (they queue behind extra EventSources over HTTP/1.1), receives a new
   * message, with nothing lost or duplicated, and that the server saw the extra streams go.
   */
  async function closeAndResume(running: RunningLab, page: Page) {
    await page.click('#extra-close');
    await page.waitForFunction(() => (window as unknown as LabWindow).__lab.extra.opened === 0, undefined, {
      timeout: WAIT_MS,
    });
    await until(
      () =>
        running.app.lab.stats.transports.sse.connections === 1 &&
        running.app.lab.stats.transports.poll.connections <= 1,
      WAIT_MS,
    );
    const id = await append(running, { afterClose: true });
    await panesGot(page, id);
    const panes = await page.evaluate(
      (ts) =>
        Object.fromEntries(
          ts.map((t) => {
            const p = (window as unknown as LabWindow).__lab.panes[t];
            return [t, { lastSeen: p.lastSeen, lost: p.lost, duplicates: p.duplicates, skipped: p.skipped }];
          }),
        ),
      TRANSPORTS,
    );
    for (const t of TRANSPORTS) expect(panes[t], t).toEqual({ lastSeen: id, lost: 0, duplicates: 0, skipped: 0 });
  }

  it('HTTP/1.1: of 10 extra EventSources at most 6 minus the SSE pane are live, the rest stall with no error; closing them frees the panes', async () => {
    const running = await startLab();
    const { page, errors, cspViolations } = await open(running);
    await openExtra(page, 'sse', 10);
    // The connections the panes leave free: 6, minus the SSE pane's stream, minus the long-poll pane's
    // held request (the short fetches give theirs back within a moment, to the queued streams).
    await page.waitForFunction(
      () => {
        const x = (window as unknown as LabWindow).__lab.extra;
        return x.maxLive !== null && x.live >= x.maxLive - 1;
      },
      undefined,
      { timeout: WAIT_MS },
    );

    // A message published now reaches every live stream (each opened at the page's newest id, so a
    // late opener catches up) and the panes over other connections (the WebSocket pane at least: its
    // pool is not the 6). A stream that has not even opened by then is stalled, not slow.
    const id = await append(running, { probe: 1 });
    await page.waitForFunction(
      (id) => {
        const lab = (window as unknown as LabWindow).__lab;
        const x = lab.extra;
        return (
          x.waiting === 0 &&
          lab.panes.ws.ids.includes(id) &&
          x.streams.every((s) => s.state !== 'live' || s.lastId >= id)
        );
      },
      id,
      { timeout: WAIT_MS },
    );
    const x = await extra(page);
    expect(x.protocol).toBe('http/1.1');
    expect(x.limit).toBe(H1_LIMIT);
    // The SSE pane's stream holds one connection for good: that leaves 5 for the extra streams.
    expect(x.panesHold.sse).toBe(1);
    expect(x.maxLive).toBe(H1_LIMIT - x.panesHold.sse);
    const maxLive = x.maxLive!;
    expect(x.live, JSON.stringify(x)).toBeGreaterThanOrEqual(1);
    expect(x.live, JSON.stringify(x)).toBeLessThanOrEqual(maxLive);
    expect(x.stalled, JSON.stringify(x)).toBeGreaterThanOrEqual(10 - maxLive);
    expect(x.live + x.stalled).toBe(10);
    // Silently: no EventSource reported an error, and the stalled ones got nothing at all.
    expect(x.errors).toBe(0);
    for (const s of x.streams.filter((s) => s.state === 'stalled')) expect(s.received, s.id).toBe(0);
    for (const s of x.streams.filter((s) => s.state === 'live')) expect(s.lastId, s.id).toBeGreaterThanOrEqual(id);
    // The server sees the SSE pane's stream and the live ones, and nothing of the stalled ones: their
    // requests never left the browser.
    await vi.waitFor(
      async () => {
        const live = (await extra(page)).live;
        expect(running.app.lab.stats.transports.sse.connections).toBe(1 + live);
      },
      { timeout: WAIT_MS, interval: 20 },
    );

    await closeAndResume(running, page);
    expect(errors).toEqual([]);
    expect(await cspViolations()).toEqual([]);
  });

  it('HTTP/2: 20 extra EventSources are all live, none stalled', async () => {
    const running = await startLab({ http2: true });
    const { page, errors } = await open(running);
    await openExtra(page, 'sse', 20);
    // Every one of them opens: only possible without a per-origin connection limit.
    await page.waitForFunction(() => (window as unknown as LabWindow).__lab.extra.live === 20, undefined, {
      timeout: WAIT_MS,
    });
    const id = await append(running, { probe: 1 });
    // And gets the message; none is left waiting or stalled.
    await page.waitForFunction(
      (id) => {
        const lab = (window as unknown as LabWindow).__lab;
        const x = lab.extra;
        return (
          lab.panes.ws.ids.includes(id) &&
          x.waiting === 0 &&
          x.streams.every((s) => s.state !== 'live' || s.lastId >= id)
        );
      },
      id,
      { timeout: WAIT_MS },
    );
    const x = await extra(page);
    expect(x.protocol).toBe('h2');
    expect(x.limit).toBeNull();
    expect(x, JSON.stringify(x)).toMatchObject({ opened: 20, live: 20, stalled: 0, errors: 0 });
    for (const s of x.streams) expect(s.lastId, s.id).toBeGreaterThanOrEqual(id);
    expect(running.app.lab.stats.transports.sse.connections).toBe(21);

    await closeAndResume(running, page);
    expect(errors).toEqual([]);
  });

  it('HTTP/1.1: of 10 extra long polls some wait in the browser until an answer frees a connection; they get the message late, not never', async () => {
    const running = await startLab();
    const { page, errors } = await open(running);
    await openExtra(page, 'poll', 10);
    const x0 = await extra(page);
    const maxHeld = x0.maxLive!;
    expect(maxHeld).toBe(H1_LIMIT - 1);
    // The server holds as many polls as there are connections left (the long-poll pane's and the extra
    // ones'), once the pane's short fetches have given theirs back; never more.
    const polls = running.app.lab.stats.transports.poll;
    await until(() => polls.connections >= maxHeld, WAIT_MS);
    const heldAtPublish = polls.connections; // read in the same tick as the append: exact
    const id = await append(running, { probe: 1 });
    expect(heldAtPublish).toBe(maxHeld);

    // Every loop gets the message, and its answer's Resource Timing tells whether its request had been
    // held at the server (live) or was only sent once another answer had freed a connection (stalled).
    await page.waitForFunction(
      (id) => {
        const x = (window as unknown as LabWindow).__lab.extra;
        return x.reference !== null && x.reference >= id && x.waiting === 0;
      },
      id,
      { timeout: WAIT_MS },
    );
    // The long-poll pane was held or queued when the message came, so it got it in the same cascade of
    // answers; the short-poll pane may have sent its next poll only after the cascade, and then waits
    // behind the held polls until the next answer frees a connection: not awaited here.
    await panesGot(page, id, ['poll', 'sse', 'ws']);
    const x = await extra(page);
    expect(x.errors).toBe(0);
    expect(x.live + x.stalled).toBe(10);
    expect(x.stalled, JSON.stringify(x)).toBeGreaterThan(0);
    expect(x.live, JSON.stringify(x)).toBeLessThanOrEqual(maxHeld);
    // Every extra poll the server held when the message was published was sent before any answer came
    // back: live. The long-poll pane's request may have been one of those held.
    expect(x.live, JSON.stringify(x)).toBeGreaterThanOrEqual(heldAtPublish - 1);
    // Late, not lost: every loop has the message.
    for (const s of x.streams) expect(s.lastId, s.id).toBeGreaterThanOrEqual(id);
    for (const s of x.streams.filter((s) => s.state === 'stalled')) expect(s.waitMs, s.id).toBeGreaterThan(0);

    await closeAndResume(running, page);
    expect(errors).toEqual([]);
  });

  it('HTTP/2: 10 extra long polls are all held at the server, none queued', async () => {
    const running = await startLab({ http2: true });
    const { page, errors } = await open(running);
    await openExtra(page, 'poll', 10);
    // All ten and the long-poll pane's: only possible without a per-origin connection limit.
    const polls = running.app.lab.stats.transports.poll;
    await until(() => polls.connections === 11, WAIT_MS);
    const id = await append(running, { probe: 1 });
    await page.waitForFunction(
      (id) => {
        const x = (window as unknown as LabWindow).__lab.extra;
        return x.reference !== null && x.reference >= id && x.waiting === 0;
      },
      id,
      { timeout: WAIT_MS },
    );
    const x = await extra(page);
    expect(x, JSON.stringify(x)).toMatchObject({ protocol: 'h2', opened: 10, live: 10, stalled: 0, errors: 0 });
    for (const s of x.streams) expect(s.lastId, s.id).toBeGreaterThanOrEqual(id);

    await closeAndResume(running, page);
    expect(errors).toEqual([]);
  });
});
