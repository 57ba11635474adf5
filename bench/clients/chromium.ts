/**
 * The bench's real browser: Debian's Chromium (never a downloaded one), headless, with no background
 * traffic of its own that would add requests to what a scenario counts. capture-headers.ts records the
 * headers it sends; field/tabs.ts opens many tabs in it.
 */
export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);
