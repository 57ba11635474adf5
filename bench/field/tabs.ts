/**
 * Field failure, many tabs: one web app open in several tabs of one browser. A browser profile has one
 * connection pool, and over HTTP/1.1 Chromium opens at most 6 connections per origin and queues every
 * further request without an error; each tab's subscription holds a connection for good (SSE) or for
 * the length of a poll (long polling), so past 6 tabs the rest wait. WebSocket connections are pooled
 * apart from the 6. Over HTTP/2 every request is a stream on one connection.
 *
 * How: real Chromium (Debian's /usr/bin/chromium through playwright-core), one browser context (one
 * profile, one pool) per protocol with TABS tabs, loaded for each row at a lab page that opens no
 * transport itself (`/time`; the previous row's tab contents, and subscriptions, are gone then), then
 * in each tab, one after the other, one subscription the way the dashboard opens it (web/panes.js):
 * `new EventSource('/events?since=<cursor>')`, a `fetch('/poll?…', {cache: 'no-store'})` loop (first
 * poll held 1 ms, then held until a message), `new WebSocket('/ws?since=<cursor>')`. Once the
 * subscriptions had their chance to open (all open, or the count unchanged for SETTLE_MS), the bench's
 * open-loop publisher (bench/measure/publisher.ts, in its worker thread) sends a steady feed; each tab
 * records every message's id and arrival time, and latency = arrival (the page's clock) − the message's
 * scheduled send time (`data.t`, the publisher's clock; one machine). The lab is HTTP/1.1 cleartext
 * (`naive`, the default) or HTTP/2 over TLS with its self-signed certificate (`lab`, `http2: true`;
 * WebSocket upgrades stay HTTP/1.1 there).
 *
 * A tab is `live` when it received every message, none later than LATE_MS; `stalled` when it received
 * none; `late` otherwise (it received some, late or not all). `lost` counts the messages a tab that
 * received anything never got by the end. Sampled every SAMPLE_MS during the feed: the lab's open
 * subscriptions (SSE streams, WebSockets, polls held now; /stats) and Chromium's established TCP
 * connections to the lab (`ss`, idle keep-alive ones included). For polls, Resource Timing gives how long
 * each request started during the feed waited in the browser before it was sent (requestStart −
 * startTime). The row fails when a tab stalled or lost a message. INVALID
 * only when the harness could not measure: Chromium or the lab did not start, the page was not served
 * over the protocol asked for, the publisher failed or fell behind, or no tab received anything.
 *
 * Scaling: none in the limit itself (Chromium's 6 per origin is measured as it is); 8 tabs, past the
 * limit with room for 2 to stall; a feed of 2 msg/s for 5 s stands in for a chat's or a dashboard's
 * updates. About 45 s in all (six rows of 5–10 s: the tabs, SETTLE_MS, the feed; two labs; Chromium).
 */
import { execFile } from 'node:child_process';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { FieldResult, TransportName } from '../../report/types.js';
import { type PublishOutcome, preparePublisher, publishInWorker } from '../measure/publisher.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../clients/chromium.js';
import { type FieldEnv, inLanes, type LabProcess, sleep } from './env.js';

/** The bench's Chromium flags, and the labs' self-signed certificates accepted. */
const TAB_ARGS = [...CHROMIUM_ARGS, '--ignore-certificate-errors'];

/** Chromium's connections per origin over HTTP/1.1 (net/socket/client_socket_pool_manager.cc). */
export const H1_LIMIT = 6;
/** A delivery later than this after its scheduled send is late: a user sees the tab behind. */
export const LATE_MS = 500;
/** The subscriptions had their chance to open when their count has not changed for this long. */
const SETTLE_MS = 1_500;
/** Past this the subscriptions that have not opened are left as they are (stalled, if they stay so). */
const OPEN_DEADLINE_MS = 15_000;
/** After the last publish, how long tabs that receive get to catch up to the last message. */
const DRAIN_MS = 5_000;
/** How often the server's subscriptions and the browser's connections are sampled during the feed. */
const SAMPLE_MS = 200;
/** The page each tab opens: same origin, opens no transport (the dashboard `/` opens every one). */
const PAGE_PATH = '/time';
const PAYLOAD_BYTES = 100;

export interface TabsLoad {
  /** Tabs of the app in one browser profile. */
  tabs: number;
  ratePerSec: number;
  durationSec: number;
}
const LOAD: TabsLoad = { tabs: 8, ratePerSec: 2, durationSec: 5 };

export interface TabsOptions {
  load?: TabsLoad;
  /** The transports to measure (default sse, poll, ws). */
  transports?: readonly ('sse' | 'poll' | 'ws')[];
  /**
   * The tests: the HTTP/1.1 rows one after the other beside the HTTP/2 rows (inLanes; each protocol has
   * a browser profile of its own, so the two lanes never share a pool). Default: one row after the other.
   */
  paired?: boolean;
  /**
   * Past this publisher lag p99 a row is INVALID (default the env's limits.publisherLagMs). The tests,
   * beside other suites on a busy machine, allow more: their assertions are about tabs stalled and
   * messages lost, which a late send does not change.
   */
  maxPublisherLagMs?: number;
}

type Transport = 'sse' | 'poll' | 'ws';
interface Case {
  transport: Transport;
  setting: 'naive' | 'lab';
}

const PROTOCOL = {
  naive: {
    config: {},
    expect: 'http/1.1',
    words: `HTTP/1.1 cleartext (Chromium: ${H1_LIMIT} connections per origin)`,
  },
  lab: {
    config: { http2: true },
    expect: 'h2',
    words: 'HTTP/2 over TLS (one connection, a stream per request)',
  },
} as const;

const SUBSCRIPTION: Record<Transport, string> = {
  sse: 'one EventSource each',
  poll: 'one long-poll loop each (fetch, held until a message)',
  ws: 'one WebSocket each',
};

/** The row's setting in words: the tabs, their subscription, the protocol. */
const what = (c: Case, load: TabsLoad): string =>
  c.transport === 'ws' && c.setting === 'lab'
    ? `${load.tabs} tabs, ${SUBSCRIPTION.ws}, page on HTTP/2 over TLS (the lab’s WebSocket upgrades over HTTP/1.1: no RFC 8441)`
    : `${load.tabs} tabs, ${SUBSCRIPTION[c.transport]}, ${PROTOCOL[c.setting].words}`;

/**
 * What each tab runs (a string: the bench is compiled without the DOM types): one subscription of
 * `transport` from `since`, every message's id, arrival time and `data.t` kept in `window.__tab`.
 */
const SUBSCRIBE = `({ transport, since }) => {
  const tab = { opened: false, errors: 0, got: [] };
  window.__tab = tab;
  const now = () => performance.timeOrigin + performance.now();
  const accept = (m) => tab.got.push([m.id, now(), m.data && typeof m.data.t === 'number' ? m.data.t : null]);
  if (transport === 'sse') {
    const es = new EventSource('/events?since=' + since);
    es.onopen = () => { tab.opened = true; };
    es.onerror = () => { tab.errors++; };
    es.onmessage = (e) => accept(JSON.parse(e.data));
  } else if (transport === 'ws') {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + '/ws?since=' + since);
    ws.onopen = () => { tab.opened = true; };
    ws.onerror = () => { tab.errors++; };
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === undefined) accept(m); };
  } else {
    performance.setResourceTimingBufferSize(100000);
    (async () => {
      let cursor = since;
      let first = true;
      for (;;) {
        try {
          const res = await fetch('/poll?since=' + cursor + '&timeout=' + (first ? 1 : 25000), { cache: 'no-store' });
          if (!res.ok) throw new Error('HTTP ' + res.status);
          const body = await res.json();
          tab.opened = true;
          first = false;
          for (const m of body.messages) accept(m);
          cursor = body.lastId;
        } catch {
          tab.errors++;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
  }
}`;

/** Per poll request started at or after `fromMs` (epoch ms): how long it waited in the browser before it was sent. */
const QUEUE_WAITS = `(fromMs) => performance.getEntriesByType('resource')
  .filter((e) => e.name.includes('/poll?') && performance.timeOrigin + e.startTime >= fromMs && e.requestStart > 0)
  .map((e) => e.requestStart - e.startTime)`;

interface TabState {
  opened: boolean;
  errors: number;
  got: [id: number, arrivalMs: number, scheduledMs: number | null][];
}

const tabState = (p: Page): Promise<TabState> => p.evaluate('window.__tab') as Promise<TabState>;

/** Nearest-rank percentile of `xs` (sorted ascending); null when empty. */
function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))]!;
}

/**
 * Established TCP connections from Chromium's processes to `port` (`ss -tnp`, the sockets' owners); null
 * when `ss` cannot tell. The publisher's own connections to the lab are not Chromium's, so not counted.
 */
function browserConnections(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], (err, out) => {
      if (err) return resolve(null);
      resolve(out.split('\n').filter((l) => /"chrom/.test(l)).length);
    });
  });
}

/** The lab's open subscriptions of `transport`: SSE streams, WebSockets, or polls held now. */
async function serverSubscriptions(lab: LabProcess, transport: Transport): Promise<number | null> {
  try {
    return (await lab.handle.stats()).transports[transport].connections;
  } catch {
    return null;
  }
}

/** Waits until `predicate` holds, checking every 100 ms; false when `deadlineMs` passed first. */
async function waitFor(predicate: () => Promise<boolean>, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() >= end) return false;
    await sleep(100);
  }
}

/**
 * Waits until every tab's subscription opened, or their count stood still for SETTLE_MS (the rest are
 * queued behind the limit, or slow); OPEN_DEADLINE_MS at most. Returns how many opened.
 */
async function waitOpen(pages: readonly Page[]): Promise<number> {
  const end = Date.now() + OPEN_DEADLINE_MS;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const n = (await Promise.all(pages.map(tabState))).filter((t) => t.opened).length;
    if (n === pages.length) return n;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (n > 0 && Date.now() - since >= SETTLE_MS) return n;
    if (Date.now() >= end) return n;
    await sleep(100);
  }
}

const title = (load: TabsLoad) =>
  `Many tabs of one app: ${load.tabs} tabs in one Chromium, HTTP/1.1 vs HTTP/2; ${load.ratePerSec} msg/s for ${load.durationSec} s; late = later than ${LATE_MS} ms`;

const scaling = (load: TabsLoad) =>
  `none in the limit (Chromium’s own ${H1_LIMIT} per origin, measured as it is); ${load.tabs} tabs in one profile; a feed of ${load.ratePerSec} msg/s for ${load.durationSec} s`;

function emptySymptoms(load: TabsLoad, transport: Transport): FieldResult['symptoms'] {
  return {
    tabs: load.tabs,
    'tabs live': null,
    'tabs late': null,
    'tabs stalled': null,
    lost: null,
    'latency p50 ms': null,
    'latency p99 ms': null,
    'latency max ms': null,
    'client errors': null,
    'server subscriptions max': null,
    'browser connections max': null,
    ...(transport === 'poll' ? { 'poll queued in browser max ms': null } : {}),
  };
}

/**
 * One browser profile (a context: one connection pool) with its tabs, kept for every row of one protocol:
 * a row loads each tab again (ending the previous row's subscriptions) instead of opening new tabs, which
 * costs a renderer process each (2–3 s for 8 on two cores, against ~0.5 s to reload them).
 */
class Profile {
  #context: BrowserContext | undefined;
  #pages: Page[] = [];
  constructor(
    readonly browser: Browser,
    readonly tabs: number,
  ) {}

  /** The tabs, each (re)loaded at `url`, all at once (a restored session). */
  async load(url: string): Promise<Page[]> {
    if (!this.#context) {
      const context = await this.browser.newContext({ ignoreHTTPSErrors: true });
      this.#context = context;
      this.#pages = await Promise.all(Array.from({ length: this.tabs }, () => context.newPage()));
    }
    await Promise.all(this.#pages.map((p) => p.goto(url)));
    return this.#pages;
  }

  /** Every tab to about:blank: the row's subscriptions end, and none runs during another row. */
  async unload(): Promise<void> {
    await Promise.all(this.#pages.map((p) => p.goto('about:blank').catch(() => {})));
  }
}

/** One row: `profile`'s tabs on `lab`, each with one subscription of `c.transport`. */
async function measureCase(
  env: FieldEnv,
  profile: Profile,
  c: Case,
  lab: LabProcess,
  load: TabsLoad,
  maxLagMs: number,
): Promise<FieldResult> {
  env.log.step(
    `field many-tabs: ${c.transport} ${c.setting}, ${load.tabs} tabs on ${c.setting === 'naive' ? 'HTTP/1.1' : 'HTTP/2'}`,
    load.durationSec + 5,
  );
  const base = {
    scenario: 'many-tabs',
    title: title(load),
    setting: c.setting,
    what: what(c, load),
    transport: c.transport,
    scaling: scaling(load),
  };
  const invalid = (reason: string): FieldResult => ({
    ...base,
    symptoms: emptySymptoms(load, c.transport),
    status: 'invalid',
    reason,
    verdict: 'invalid',
  });

  try {
    const pages = await profile.load(`${lab.handle.baseUrl}${PAGE_PATH}`);
    // The previous row's subscriptions are gone at the server before this one opens its own.
    await waitFor(async () => {
      const s = await lab.handle.stats().catch(() => undefined);
      return (
        s !== undefined &&
        s.transports.sse.connections + s.transports.ws.connections + s.transports.poll.connections === 0
      );
    }, 5_000);
    const since = (await lab.handle.stats()).feed.lastId;
    const protocol = (await pages[0]!.evaluate(
      "performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? ''",
    )) as string;
    if (protocol !== PROTOCOL[c.setting].expect)
      return invalid(
        `the page was served over ${protocol || 'an unknown protocol'}, not ${PROTOCOL[c.setting].expect}`,
      );
    // One tab after the other, as a user opens them.
    for (const page of pages)
      await page.evaluate(`(${SUBSCRIBE})(${JSON.stringify({ transport: c.transport, since })})`);
    await waitOpen(pages);

    // The feed, with the server's subscriptions and the browser's connections sampled meanwhile.
    let serverMax: number | null = null;
    let connectionsMax: number | null = null;
    let feeding = true;
    const sampler = (async () => {
      while (feeding) {
        const [s, b] = await Promise.all([serverSubscriptions(lab, c.transport), browserConnections(lab.port)]);
        if (s !== null) serverMax = Math.max(serverMax ?? 0, s);
        if (b !== null) connectionsMax = Math.max(connectionsMax ?? 0, b);
        await sleep(SAMPLE_MS);
      }
    })();
    const feedStart = performance.timeOrigin + performance.now();
    let outcome: PublishOutcome;
    try {
      outcome = await publishInWorker({
        controlUrl: lab.handle.controlUrl,
        ratePerSec: load.ratePerSec,
        durationSec: load.durationSec,
        payloadBytes: PAYLOAD_BYTES,
      });
    } finally {
      feeding = false;
      await sampler;
    }
    if (outcome.failures > 0) return invalid(`publish failed: ${outcome.firstFailure ?? 'unknown'}`);
    if (outcome.lagP99Ms > maxLagMs)
      return invalid(`publisher fell behind its schedule (lag p99 ${outcome.lagP99Ms.toFixed(1)} ms)`);
    const published = new Set(outcome.ids);
    const count = (t: TabState) => new Set(t.got.map(([id]) => id).filter((id) => published.has(id))).size;

    // Every tab that receives gets its chance to catch up to the last message.
    await waitFor(async () => {
      const tabs = await Promise.all(pages.map(tabState));
      return tabs.every((t) => count(t) === 0 || count(t) === published.size);
    }, DRAIN_MS);

    const tabs = await Promise.all(pages.map(tabState));
    const latencies: number[] = [];
    let live = 0;
    let late = 0;
    let stalled = 0;
    let lost = 0;
    for (const t of tabs) {
      const seen = new Map<number, number>();
      for (const [id, arrival, scheduled] of t.got) {
        if (!published.has(id) || seen.has(id) || scheduled === null) continue;
        seen.set(id, arrival - scheduled);
      }
      latencies.push(...seen.values());
      if (seen.size === 0) stalled++;
      else if (seen.size === published.size && [...seen.values()].every((ms) => ms <= LATE_MS)) live++;
      else late++;
      if (seen.size > 0) lost += published.size - seen.size;
    }
    if (latencies.length === 0) return invalid('no tab received anything');
    latencies.sort((a, b) => a - b);
    const round = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);
    let queued: number | null = null;
    if (c.transport === 'poll') {
      const waits = (
        await Promise.all(pages.map((p) => p.evaluate(`(${QUEUE_WAITS})(${feedStart})`)))
      ).flat() as number[];
      queued = waits.length ? round(Math.max(...waits)) : null;
    }
    return {
      ...base,
      symptoms: {
        tabs: load.tabs,
        'tabs live': live,
        'tabs late': late,
        'tabs stalled': stalled,
        lost,
        'latency p50 ms': round(percentile(latencies, 50)),
        'latency p99 ms': round(percentile(latencies, 99)),
        'latency max ms': round(latencies.at(-1)!),
        'client errors': tabs.reduce((a, t) => a + t.errors, 0),
        'server subscriptions max': serverMax,
        'browser connections max': connectionsMax,
        ...(c.transport === 'poll' ? { 'poll queued in browser max ms': queued } : {}),
      },
      status: 'ok',
      verdict: stalled > 0 || lost > 0 ? 'fails' : 'works',
    };
  } catch (err) {
    return invalid(`run failed: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await profile.unload();
  }
}

/**
 * Every transport × {HTTP/1.1 cleartext (`naive`), HTTP/2 over TLS (`lab`)}, a row each, in the
 * report's order (each transport's naive row, then its lab row). `opts.load`: smaller runs for the tests.
 */
export async function measureTabs(env: FieldEnv, opts: TabsOptions = {}): Promise<FieldResult[]> {
  const load = opts.load ?? LOAD;
  const cases: Case[] = (opts.transports ?? (['sse', 'poll', 'ws'] as const)).flatMap((transport) => [
    { transport, setting: 'naive' as const },
    { transport, setting: 'lab' as const },
  ]);
  const invalidRows = (reason: string): FieldResult[] =>
    cases.map((c) => ({
      scenario: 'many-tabs',
      title: title(load),
      setting: c.setting,
      what: what(c, load),
      transport: c.transport satisfies TransportName,
      scaling: scaling(load),
      symptoms: emptySymptoms(load, c.transport),
      status: 'invalid',
      reason,
      verdict: 'invalid',
    }));
  preparePublisher(); // its thread starts while Chromium and the labs do
  let browser: Browser;
  try {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: TAB_ARGS });
  } catch (err) {
    return invalidRows(`Chromium did not start: ${(err as Error).message.split('\n')[0]}`);
  }
  const labs: LabProcess[] = [];
  try {
    const started = await Promise.allSettled([env.lab(PROTOCOL.naive.config), env.lab(PROTOCOL.lab.config)]);
    for (const s of started) if (s.status === 'fulfilled') labs.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) return invalidRows(`the lab did not start: ${String(failed.reason).split('\n')[0]}`);
    const [naive, lab] = labs as [LabProcess, LabProcess];
    const on = { naive, lab };
    const profiles = { naive: new Profile(browser, load.tabs), lab: new Profile(browser, load.tabs) };
    const maxLagMs = opts.maxPublisherLagMs ?? env.limits.publisherLagMs;
    const measure = (c: Case, l: LabProcess) => measureCase(env, profiles[c.setting], c, l, load, maxLagMs);
    if (opts.paired) return await inLanes(cases, on, measure);
    const rows: FieldResult[] = [];
    for (const c of cases) rows.push(await measure(c, on[c.setting]));
    return rows;
  } finally {
    await browser.close().catch(() => {});
    await Promise.all(labs.map((l) => l.stop().catch(() => {})));
  }
}
