/**
 * The lab over an emulated network (`--network`): GET /network tells a request that came through a
 * relay from one that came straight to the server, the CLI starts and closes the relays, and the
 * dashboard, opened through a 100 ms RTT relay in real Chromium, names its network and shows long
 * polling falling behind WebSocket.
 *
 * Timing is asserted as lower bounds only (a relay never releases early); waits are for counts.
 * Chromium missing: the browser test fails under CI and is skipped elsewhere, as in dashboard.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULTS, envName } from '../../server/config.js';
import { customProfile, type NetworkProfile, PROFILES } from '../../server/network/profiles.js';
import { Relay } from '../../server/network/relay.js';
import type { NetworkAnswer, NetworkLink } from '../../server/network/route.js';
import { type RunningLab, startLab, until } from '../helpers/lab.js';
import { pageErrors } from '../helpers/real-parts.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TRANSPORTS = ['poll', 'sse', 'ws', 'short-poll'] as const;
type Transport = (typeof TRANSPORTS)[number];
/** Every connection through the relay pays a handshake RTT before its first byte: generous for CI. */
const WAIT_MS = 20_000;
/** The emulated link: 100 ms round trip, so 50 ms each way; no rate limit, no loss, no jitter. */
const RTT_MS = 100;
/** The publish rate, msg/s, set with the page's own controls. */
const RATE = 100;
/** Samples per pane before its p50 is read: one second at RATE, inside the panes' 5 s window. */
const SAMPLES = 100;

/**
 * The browser globals the page callbacks read: `window.__lab` (web/app.js) and the panes' data-*
 * attributes. Typed here because this file is checked without the DOM library (tsconfig.json).
 */
interface PageGlobals {
  __lab?: { ready: boolean; panes: Record<Transport, { received: number }> };
  document: {
    querySelector(
      selector: string,
    ): { getAttribute(name: string): string | null; dataset: Record<string, string | undefined> } | null;
  };
}

/** A lab (demo off) with a relay emulating `profile` in front of it, both closed when the test ends. */
async function labBehindRelay(
  profile: NetworkProfile,
): Promise<{ running: RunningLab; relay: Relay; relayUrl: string }> {
  let links: readonly NetworkLink[] = [];
  const running = await startLab({ demo: false }, { networks: () => links });
  const relay = await Relay.start({ target: { host: '127.0.0.1', port: Number(new URL(running.url).port) }, profile });
  onTestFinished(() => relay.close());
  links = [{ profile: relay.profile, port: relay.port }];
  return { running, relay, relayUrl: `http://127.0.0.1:${relay.port}` };
}

const network = async (url: string): Promise<NetworkAnswer> => {
  const res = await fetch(`${url}/network`, { headers: { connection: 'close' } });
  expect(res.status).toBe(200);
  return (await res.json()) as NetworkAnswer;
};

describe('GET /network', () => {
  it('answers current=null straight from the server and the profile through the relay, with both URLs', async () => {
    const profile = customProfile({ rttMs: 20, name: 'rtt-20' });
    const { running, relay, relayUrl } = await labBehindRelay(profile);
    const available = [
      { name: 'loopback', url: `${running.url}/`, profile: PROFILES.loopback },
      { name: 'rtt-20', url: `${relayUrl}/`, profile },
    ];
    // This lab starts no relay on demand (buildApp's default; npm start's single process does).
    expect(await network(running.url)).toEqual({ current: null, available, onDemand: [] });
    expect(await network(relayUrl)).toEqual({ current: profile, available, onDemand: [] });
    // It really went through the relay.
    expect(relay.counters().connectionsOpened).toBeGreaterThan(0);
    // The links keep the name the client used.
    const byName = await network(running.url.replace('127.0.0.1', 'localhost'));
    expect(byName.available.map((a) => a.url)).toEqual([
      `${running.url.replace('127.0.0.1', 'localhost')}/`,
      `http://localhost:${relay.port}/`,
    ]);
  });

  it('a lab without relays lists only itself', async () => {
    const running = await startLab();
    expect(await network(running.url)).toEqual({
      current: null,
      available: [{ name: 'loopback', url: `${running.url}/`, profile: PROFILES.loopback }],
      onDemand: [],
    });
  });
});

describe('POST /network/<name>: a relay on demand', () => {
  const post = (url: string, name: string, token?: string) =>
    fetch(`${url}/network/${name}`, {
      method: 'POST',
      headers: { connection: 'close', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
  const relayable = Object.values(PROFILES).filter((p) => !p.direct);

  it('starts the profile’s relay once (201, then 200), serves the lab through it, and closes it with the server', async () => {
    const running = await startLab({ demo: false }, { networksOnDemand: true });
    expect((await network(running.url)).onDemand).toEqual(relayable);

    // Two at once start one relay.
    const [a, b] = await Promise.all([post(running.url, '3g'), post(running.url, '3g')]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    const choice = (await a.json()) as NetworkAnswer['available'][number];
    expect(await b.json()).toEqual(choice);
    expect(choice).toMatchObject({ name: '3g', profile: PROFILES['3g'] });
    const relayUrl = choice.url.slice(0, -1);
    expect(relayUrl).not.toBe(running.url);

    // Through it: the answer names 3G, lists it, and no longer offers it.
    const through = await network(relayUrl);
    expect(through.current).toEqual(PROFILES['3g']);
    expect(through.available.map((x) => x.name)).toEqual(['loopback', '3g']);
    expect(through.onDemand.map((p) => p.name)).toEqual(relayable.filter((p) => p.name !== '3g').map((p) => p.name));
    // loopback is the server itself: answered, nothing started.
    const loopback = await post(running.url, 'loopback');
    expect(loopback.status).toBe(200);
    expect(await loopback.json()).toEqual({ name: 'loopback', url: `${running.url}/`, profile: PROFILES.loopback });

    await running.app.close();
    await expect(fetch(`${relayUrl}/network`, { headers: { connection: 'close' } })).rejects.toThrow();
  });

  it('refuses an unknown profile (404), a missing token (401), and a lab that cannot start one (409)', async () => {
    const open = await startLab({ demo: false }, { networksOnDemand: true });
    const unknown = await post(open.url, '5g');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('LAB_ERR_UNKNOWN_NETWORK');
    // A name that is an Object.prototype key is no profile either.
    expect((await post(open.url, 'constructor')).status).toBe(404);

    const guarded = await startLab({ demo: false, publishToken: 'secret-token-123456' }, { networksOnDemand: true });
    const refused = await post(guarded.url, '4g');
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('LAB_ERR_UNAUTHORIZED');
    expect((await network(guarded.url)).available).toHaveLength(1);
    expect((await post(guarded.url, '4g', 'secret-token-123456')).status).toBe(201);

    const fixed = await startLab({ demo: false });
    const no = await post(fixed.url, '4g');
    expect(no.status).toBe(409);
    const body = (await no.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('LAB_ERR_NETWORK_FIXED');
    expect(body.error.message).toContain('--network 4g');
  });
});

describe('CLI --network', () => {
  it('PORT=0 --network 4g,loopback: prints the relay URL, serves the lab through it, closes it first on SIGTERM', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(DEFAULTS)) delete env[envName(key)];
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'server/main.ts', '--no-demo', '--network', '4g,loopback'],
      {
        cwd: ROOT,
        env: { ...env, PORT: '0', LOG_LEVEL: 'warn' },
      },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    const relayLine = /the dashboard over a 4G-like link: (http:\/\/127\.0\.0\.1:(\d+)\/) {2}\(4g: RTT 170 ms/;
    await until(() => relayLine.test(out) || child.exitCode !== null, 15_000);
    const direct = /Transport Lab listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    const relayUrl = relayLine.exec(out)?.[1];
    expect(relayUrl, `stdout: ${out}\nstderr: ${err}`).toBeDefined();
    // loopback is the server itself: one relay, one line.
    expect(out.match(/the dashboard over/g)).toHaveLength(1);

    const answer = await network(relayUrl!.slice(0, -1));
    expect(answer.current).toEqual(PROFILES['4g']);
    expect(answer.available.map((a) => [a.name, a.url])).toEqual([
      ['loopback', `${direct}/`],
      ['4g', relayUrl],
    ]);
    expect((await network(direct!)).current).toBeNull();

    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(out).toContain('SIGTERM: closing (the relay, then answering polls');
  });
});

if (!HAVE_CHROMIUM) {
  const why = `${CHROMIUM} is missing: the dashboard tests need Debian's chromium (apt-get install chromium)`;
  if (process.env.CI) {
    describe('dashboard over a relay in Chromium', () => {
      it('has a browser to run in', () => expect.fail(why));
    });
  } else {
    console.warn(`test/web/network-dashboard.test.ts browser test skipped: ${why}`);
  }
}

describe.skipIf(!HAVE_CHROMIUM)('dashboard over a relay in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it(`over a ${RTT_MS} ms RTT link the header names the network, and long polling falls behind WebSocket`, async () => {
    const profile = customProfile({ rttMs: RTT_MS, jitterMs: 0, name: 'rtt-100' });
    const { running, relay, relayUrl } = await labBehindRelay(profile);
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    const errors = pageErrors(page);
    // Every request the page makes must go through the relay, none straight to the server.
    const direct: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(`${relayUrl}/`) && !r.url().startsWith(`ws://127.0.0.1:${relay.port}/`))
        direct.push(r.url());
    });
    await page.goto(`${relayUrl}/`);
    await page.waitForFunction(
      (ts) =>
        (globalThis as unknown as PageGlobals).__lab?.ready &&
        ts.every(
          (t) =>
            (globalThis as unknown as PageGlobals).document
              .querySelector(`[data-transport="${t}"]`)
              ?.getAttribute('data-state') === 'open',
        ),
      TRANSPORTS,
      { timeout: WAIT_MS },
    );

    // The header: which network, with its parameters, and a link back to the direct server.
    const info = page.locator('#network-info');
    expect(await info.getAttribute('data-network')).toBe('rtt-100');
    expect(await info.textContent()).toContain('rtt-100 · RTT 100 ms');
    expect(await info.textContent()).toContain('loss 0 %');
    // The link to another network asks its page to set the rate where the transports differ there.
    expect(await page.locator('#network-links a[data-network="loopback"]').getAttribute('href')).toBe(
      `${running.url}/?differ`,
    );
    expect(await page.locator('#network-links a[aria-current="page"]').getAttribute('data-network')).toBe('rtt-100');

    // RATE msg/s with the page's own controls (PUT /control, through the relay too).
    await page.fill('#rate', String(RATE));
    await page.click('#control-btn');
    await page.waitForFunction(
      () =>
        (globalThis as unknown as PageGlobals).document.querySelector('#control-status')?.getAttribute('data-kind') ===
        'ok',
      undefined,
      { timeout: WAIT_MS },
    );
    expect(running.app.lab.generator.state.ratePerSec).toBe(RATE);

    // Enough samples in every pane, and a p50 over them in its 5 s window.
    await page.waitForFunction(
      ({ ts, n }) =>
        ts.every((t) => {
          const g = globalThis as unknown as PageGlobals;
          const p50Ms = g.document.querySelector(`[data-transport="${t}"]`)?.dataset.p50Ms;
          return (g.__lab?.panes[t].received ?? 0) >= n && p50Ms !== undefined && p50Ms !== '';
        }),
      { ts: TRANSPORTS, n: SAMPLES },
      { timeout: WAIT_MS },
    );
    const p50 = (await page.evaluate(
      (ts) =>
        Object.fromEntries(
          ts.map((t) => [
            t,
            Number(
              (globalThis as unknown as PageGlobals).document.querySelector(`[data-transport="${t}"]`)?.dataset.p50Ms,
            ),
          ]),
        ),
      TRANSPORTS,
    )) as Record<Transport, number>;

    // A message reaches the WebSocket pane no sooner than one way down the link.
    expect(p50.ws, JSON.stringify(p50)).toBeGreaterThanOrEqual(RTT_MS / 2);
    // Long polling waits on top of that for its next request to go up the link.
    expect(p50.poll, JSON.stringify(p50)).toBeGreaterThan(p50.ws);
    expect(relay.counters().bytesDown).toBeGreaterThan(0);
    expect(direct).toEqual([]);
    expect(errors).toEqual([]);
  });
});
