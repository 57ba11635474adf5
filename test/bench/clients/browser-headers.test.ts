/**
 * The Chromium header set the bench replays (bench/clients/browser-headers.ts), and the fixture it replays
 * (bench/clients/fixtures/chromium-headers.json, written by bench/cli/capture-headers.ts).
 *
 * Unit tests pin what requestHeaders() builds from the fixture. The Chromium suite captures again from
 * Debian's Chromium and checks that today's browser still sends the same header names and about the same
 * bytes, so that a Chromium upgrade that changes them shows up as a failing test (regenerate the fixture
 * with `npx tsx bench/cli/capture-headers.ts`). Chromium missing: that suite fails under CI, is skipped elsewhere.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { headersFor } from '../../../bench/clients/http.js';
import { DEFAULT_HTTP } from '../../../bench/plan/http-setup.js';
import { CHROMIUM, HAVE_CHROMIUM, requirePart } from '../../helpers/real-parts.js';
import {
  type CapturedHeaders,
  type CapturedRequest,
  capturedRequestBytes,
  HEADER_MODES,
  headerBlockBytes,
  PLACEHOLDERS,
  parseCapturedHeaders,
  type RequestKind,
  requestHeaders,
} from '../../../bench/clients/browser-headers.js';
import { captureChromiumHeaders } from '../../../bench/cli/capture-headers.js';

const KINDS: readonly RequestKind[] = ['poll', 'sse', 'ws'];
const FIXTURE_URL = new URL('../../../bench/clients/fixtures/chromium-headers.json', import.meta.url);
const FIXTURE = parseCapturedHeaders(JSON.parse(readFileSync(FIXTURE_URL, 'utf8')));
/** What requestHeaders() must never return: the client libraries set these, or HTTP/2 forbids them. */
const EXCLUDED = [
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
];
/** Same length as the capture server's origin (a 5-digit ephemeral port), so byte counts are comparable. */
const HTTP = 'http://127.0.0.1:43210';
const HTTPS = 'https://lab.example:8443';
/** Size differences allowed between today's Chromium and the fixture (a version number, a brand). */
const TOLERANCE = 0.15;

const lowerNames = (request: CapturedRequest): string[] => request.headers.map(([name]) => name.toLowerCase());
/** The fixture's value of a header, placeholders filled for `origin` (undefined when Chromium did not send it). */
function fixtureValue(kind: RequestKind, name: string, origin: string): string | undefined {
  const url = new URL(origin);
  const value = FIXTURE.requests[kind].headers.find(([n]) => n.toLowerCase() === name)?.[1];
  return value?.replaceAll(PLACEHOLDERS.origin, url.origin).replaceAll(PLACEHOLDERS.host, url.host);
}
const browser = (kind: RequestKind, origin = HTTP, cookieBytes = 0) =>
  requestHeaders(kind, { mode: 'browser', origin, cookieBytes });

describe('requestHeaders in browser mode', () => {
  it.each(KINDS)(
    '%s: every header Chromium sent but the excluded ones, lower-case, in its order, values as captured',
    (kind) => {
      const headers = browser(kind);
      const expected = lowerNames(FIXTURE.requests[kind]).filter((n) => !EXCLUDED.includes(n));
      expect(Object.keys(headers)).toEqual(expected);
      for (const name of expected) expect(headers[name], name).toBe(fixtureValue(kind, name, HTTP));
      for (const name of EXCLUDED) expect(headers).not.toHaveProperty(name);
      expect(headers['user-agent']).toMatch(/^Mozilla\/5\.0 .*Chrome\/\d+/);
      expect(headers['accept-encoding']).toContain('gzip');
    },
  );

  it('poll and sse carry the fetch metadata and client hints a same-origin fetch sends; ws its Origin', () => {
    for (const kind of ['poll', 'sse'] as const) {
      const headers = browser(kind);
      expect(headers).toMatchObject({
        'sec-fetch-site': 'same-origin',
        'sec-fetch-mode': 'cors',
        'sec-fetch-dest': 'empty',
        referer: `${HTTP}/`,
      });
      expect(headers['sec-ch-ua']).toMatch(/Chromium/);
    }
    expect(browser('poll').accept).toBe('*/*');
    expect(browser('sse').accept).toBe('text/event-stream');
    expect(browser('ws').origin).toBe(HTTP);
  });

  it("from a page on another origin: Origin and Referer are the page's and Sec-Fetch-Site cross-site; minimal mode the Origin only", () => {
    const page = 'https://app.example';
    for (const kind of KINDS) {
      const headers = headersFor(kind, HTTP, DEFAULT_HTTP, page);
      expect(headers.origin, kind).toBe(page);
      if (kind !== 'ws') expect([headers.referer, headers['sec-fetch-site']], kind).toEqual([`${page}/`, 'cross-site']);
      expect(Object.values(headers).join('\n'), kind).not.toContain(HTTP);
      expect(headersFor(kind, HTTP, { ...DEFAULT_HTTP, headers: 'minimal' }, page), kind).toEqual({ origin: page });
    }
  });

  it('fills the placeholders from the given origin, https too, and leaves none behind', () => {
    for (const kind of KINDS) {
      const headers = browser(kind, HTTPS);
      const values = Object.values(headers).join('\n');
      expect(values).not.toMatch(/\{[a-z-]+\}/);
      expect(values).not.toContain('127.0.0.1');
      expect(headers.referer ?? headers.origin).toMatch(/^https:\/\/lab\.example:8443\/?$/);
    }
    expect(browser('poll', 'https://lab.example').referer).toBe('https://lab.example/'); // default port dropped, as a browser does
    expect(() => browser('poll', 'ws://127.0.0.1:1')).toThrow(TypeError);
  });
});

describe('requestHeaders in minimal mode and the cookie', () => {
  it('minimal mode adds nothing', () => {
    for (const kind of KINDS)
      expect(requestHeaders(kind, { mode: 'minimal', origin: HTTP, cookieBytes: 0 })).toEqual({});
  });

  it.each(HEADER_MODES)(
    '%s mode: cookieBytes N gives a cookie of exactly N bytes, last, made of cookie-safe characters',
    (mode) => {
      for (const n of [1, 2, 3, 4, 5, 6, 100, 4096]) {
        const headers = requestHeaders('poll', { mode, origin: HTTP, cookieBytes: n });
        expect(Buffer.byteLength(headers.cookie ?? ''), `cookieBytes ${n}`).toBe(n);
        expect(Object.keys(headers).at(-1)).toBe('cookie');
        expect(headers.cookie).toMatch(/^([a-z]+=)?x*$/);
      }
      expect(requestHeaders('poll', { mode, origin: HTTP, cookieBytes: 0 })).not.toHaveProperty('cookie');
    },
  );

  it('refuses cookieBytes that are negative or not integers', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => requestHeaders('ws', { mode: 'minimal', origin: HTTP, cookieBytes: bad }), String(bad)).toThrow(
        RangeError,
      );
    }
  });
});

describe('capturedRequestBytes and the fixture', () => {
  it('counts a full browser-sized header block (undici alone sends ~93 B)', () => {
    for (const kind of KINDS) expect(capturedRequestBytes(kind, HTTP), kind).toBeGreaterThan(300);
  });

  it('counts the request line, every header and the CRLFs, with the origin filled in', () => {
    const request = FIXTURE.requests.poll;
    const manual = request.headers.reduce(
      (sum, [name, value]) => sum + `${name}: ${fixtureValue('poll', name.toLowerCase(), HTTP) ?? value}\r\n`.length,
      0,
    );
    expect(capturedRequestBytes('poll', HTTP)).toBe(`${request.requestLine}\r\n`.length + manual + 2);
    // A longer origin costs its extra length once per templated value.
    const templated = request.headers.filter(
      ([, v]) => v.includes(PLACEHOLDERS.origin) || v.includes(PLACEHOLDERS.host),
    ).length;
    expect(templated).toBeGreaterThan(0);
    expect(capturedRequestBytes('poll', 'http://127.0.0.1:43210')).toBe(
      capturedRequestBytes('poll', 'http://127.0.0.1:4321') + templated,
    );
    // The WebSocket key's value is not stored, but its 24 bytes are counted.
    expect(capturedRequestBytes('ws', HTTP)).toBe(headerBlockBytes(FIXTURE.requests.ws, HTTP));
    const withoutKey = {
      ...FIXTURE.requests.ws,
      headers: FIXTURE.requests.ws.headers.filter(([n]) => n.toLowerCase() !== 'sec-websocket-key'),
    };
    expect(capturedRequestBytes('ws', HTTP) - headerBlockBytes(withoutKey, HTTP)).toBe(
      'Sec-WebSocket-Key: \r\n'.length + 24,
    );
  });

  it('the fixture is templated: no capture-server address, the WebSocket key not stored', () => {
    const text = readFileSync(FIXTURE_URL, 'utf8');
    expect(text).not.toContain('127.0.0.1');
    expect(text).toContain(PLACEHOLDERS.origin);
    expect(text).toContain(PLACEHOLDERS.host);
    expect(FIXTURE.requests.ws.headers.find(([n]) => n.toLowerCase() === 'sec-websocket-key')?.[1]).toBe(
      PLACEHOLDERS.websocketKey,
    );
  });

  it('parseCapturedHeaders refuses a malformed fixture, naming what is wrong', () => {
    const good = (): CapturedHeaders => structuredClone(FIXTURE);
    expect(() => parseCapturedHeaders([])).toThrow(/not a JSON object/);
    const noWs: Record<string, unknown> = {
      ...good(),
      requests: { poll: FIXTURE.requests.poll, sse: FIXTURE.requests.sse },
    };
    expect(() => parseCapturedHeaders(noWs)).toThrow(/requests\.ws is missing/);
    const badPair = good();
    (badPair.requests.sse.headers as unknown[])[2] = ['Accept'];
    expect(() => parseCapturedHeaders(badPair)).toThrow(/requests\.sse\.headers\[2\]/);
    const badLine = good();
    badLine.requests.poll.requestLine = 'POST /poll HTTP/1.1';
    expect(() => parseCapturedHeaders(badLine)).toThrow(/requests\.poll\.requestLine/);
    expect(parseCapturedHeaders(good())).toEqual(FIXTURE);
  });
});

requirePart(
  HAVE_CHROMIUM,
  'Chromium still sends the captured headers',
  'test/bench/clients/browser-headers.test.ts',
  `${CHROMIUM} is missing: the header capture needs Debian's chromium (apt-get install chromium)`,
);

describe.skipIf(!HAVE_CHROMIUM)('Chromium still sends the captured headers', () => {
  it('same header names per transport and about the same bytes as the fixture', { timeout: 60_000 }, async () => {
    const fresh = parseCapturedHeaders(await captureChromiumHeaders(), 'fresh capture');
    expect(fresh.capturedWith).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const kind of KINDS) {
      const now = fresh.requests[kind];
      const stored = FIXTURE.requests[kind];
      expect(now.requestLine, kind).toBe(stored.requestLine);
      expect(
        new Set(lowerNames(now)),
        `${kind}: header names (regenerate: npx tsx bench/cli/capture-headers.ts)`,
      ).toEqual(new Set(lowerNames(stored)));
      const bytes = headerBlockBytes(now, HTTP);
      const expected = capturedRequestBytes(kind, HTTP);
      expect(bytes, `${kind}: fresh capture is a real header block`).toBeGreaterThan(300);
      expect(
        Math.abs(bytes - expected) / expected,
        `${kind}: ${bytes} B now vs ${expected} B in the fixture`,
      ).toBeLessThanOrEqual(TOLERANCE);
      // The capture templated the random server address and the random key.
      expect(JSON.stringify(now)).not.toContain('127.0.0.1');
    }
    expect(fresh.requests.ws.headers.find(([n]) => n.toLowerCase() === 'sec-websocket-key')?.[1]).toBe(
      PLACEHOLDERS.websocketKey,
    );
  });
});
