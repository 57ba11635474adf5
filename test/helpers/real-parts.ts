/**
 * The real parts the suites drive (Debian's Chromium, nginx): whether the machine has them, and one
 * rule for when it does not — the suite fails under CI (.ci/run installs them) and is skipped with a
 * warning elsewhere. One launch of Chromium per suite, with the flags this machine needs.
 */
import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/**
 * When `have` is false: under CI a suite named `suite` with one failing test saying `why`, elsewhere a
 * warning naming `file`. Call it at the top level, next to `describe.skipIf(!have)(suite, …)`.
 */
export function requirePart(have: boolean, suite: string, file: string, why: string): void {
  if (have) return;
  if (process.env.CI) {
    describe(suite, () => {
      it('has what it needs to run', () => expect.fail(why));
    });
  } else {
    console.warn(`${file} skipped: ${why}`);
  }
}

/** Chromium is missing: what to say. */
export const NO_CHROMIUM = `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)`;

/**
 * A headless Chromium for the enclosing suite, launched before its tests and closed after; the
 * returned function gives it. `--ignore-certificate-errors` for the labs' self-signed certificates.
 * playwright-core is imported here, not at the top: it takes 1–3 s to import, and a file that only
 * needs requirePart (test/bench/field/field.test.ts) should not pay for it.
 */
export function useChromium(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--ignore-certificate-errors',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => browser!;
}

/** Collects a Chromium page's console errors and uncaught page errors, from now on (Playwright `Page`). */
export function pageErrors(page: {
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): unknown;
  on(event: 'pageerror', fn: (e: Error) => void): unknown;
}): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

/** Records Content-Security-Policy violations from the first script on (a string: no DOM types here). */
const RECORD_CSP = `window.__cspSeen = []; document.addEventListener('securitypolicyviolation', (e) => window.__cspSeen.push(e.violatedDirective + ' ' + e.blockedURI));`;

/**
 * A page of its own on `url` (a fresh context, the labs' self-signed certificates accepted), closed
 * when the test ends, with the console and page errors and the CSP violations it has seen.
 */
export async function openPage(
  browser: Browser,
  url: string,
): Promise<{ page: Page; errors: string[]; cspViolations: () => Promise<string[]> }> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, ignoreHTTPSErrors: true });
  onTestFinished(() => context.close());
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.addInitScript({ content: RECORD_CSP });
  await page.goto(url);
  return { page, errors, cspViolations: () => page.evaluate('window.__cspSeen') as Promise<string[]> };
}

/**
 * Opens the dashboard at `url` (openPage) and waits until the page is ready and every pane of
 * `transports` is open (its test hook, `window.__lab`).
 */
export async function openDashboard(browser: Browser, url: string, transports: readonly string[], timeoutMs: number) {
  const opened = await openPage(browser, url);
  await opened.page.waitForFunction(
    (ts) => {
      // The page's test hook (web/app.js); globalThis, since this file has no DOM types.
      const lab = (globalThis as { __lab?: { ready: boolean; panes: Record<string, { state: string }> } }).__lab;
      return lab?.ready === true && ts.every((t) => lab.panes[t]?.state === 'open');
    },
    transports,
    { timeout: timeoutMs },
  );
  return opened;
}
