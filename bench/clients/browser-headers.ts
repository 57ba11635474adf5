/**
 * The header set a real Chromium sends on the lab's three transports, for the bench's clients.
 *
 * undici and ws send tiny requests (~93 B); the dashboard in Chromium sends ~500 B of headers per
 * request, which matters for long polling (one request per message) and for anything behind a proxy.
 * bench/cli/capture-headers.ts records what Chromium really sends into bench/clients/fixtures/chromium-headers.json
 * (never typed by hand); this module replays it. The fixture is read once, at module load.
 */
import { readFileSync } from 'node:fs';

import { HEADER_MODES, type HeaderMode } from '../../report/types.js';

/** `browser`: send what Chromium sends; `minimal`: only what the client library sets itself (the report's enum). */
export { HEADER_MODES, type HeaderMode };
/** The lab's three transports: fetch of /poll, EventSource on /events, WebSocket on /ws. */
export type RequestKind = 'poll' | 'sse' | 'ws';
const KINDS: readonly RequestKind[] = ['poll', 'sse', 'ws'];

export interface HeaderOptions {
  mode: HeaderMode;
  /** e.g. http://127.0.0.1:4321 or https://… */
  origin: string;
  /** a Cookie header whose value is exactly this many bytes; 0 = none */
  cookieBytes: number;
}

/** One request as Chromium sent it: names in their original case and order, values templated. */
export interface CapturedRequest {
  /** e.g. `GET /poll?since=0&timeout=25000 HTTP/1.1` */
  requestLine: string;
  headers: [string, string][];
}

/** The fixture's shape (bench/clients/fixtures/chromium-headers.json). */
export interface CapturedHeaders {
  /** browser.version() of the Chromium that sent the requests */
  capturedWith: string;
  capturedAt: string;
  note: string;
  requests: Record<RequestKind, CapturedRequest>;
}

/**
 * Placeholders in stored values: the capture server's port is random, so its origin and host are
 * stored as templates; the WebSocket key is random per connection, so its value is not stored at all.
 * bench/cli/capture-headers.ts writes the same strings (it cannot import this module, which needs the fixture).
 */
export const PLACEHOLDERS = { origin: '{origin}', host: '{host}', websocketKey: '{websocket-key}' } as const;

/** A Sec-WebSocket-Key is base64 of 16 random bytes: always 24 characters. Used for byte counts only. */
const WEBSOCKET_KEY_STAND_IN = `${'A'.repeat(22)}==`;

/**
 * Headers the client libraries (undici, ws) set themselves, or that are hop-by-hop and forbidden in
 * HTTP/2: sending them again would duplicate them or break the request.
 */
const EXCLUDED = new Set([
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks the fixture's shape (enough that the rest of this module cannot trip over it) and returns it
 * typed. Throws an Error naming the first bad field, so a hand-edited or truncated fixture fails loudly.
 */
export function parseCapturedHeaders(value: unknown, source = 'chromium-headers.json'): CapturedHeaders {
  const fail = (what: string): never => {
    throw new Error(`${source}: ${what} (regenerate it with \`npx tsx bench/cli/capture-headers.ts\`)`);
  };
  if (!isObject(value)) return fail('not a JSON object');
  for (const key of ['capturedWith', 'capturedAt', 'note'] as const) {
    if (typeof value[key] !== 'string') fail(`${key} is not a string`);
  }
  const requests = value.requests;
  if (!isObject(requests)) return fail('requests is not an object');
  for (const kind of KINDS) {
    const request = requests[kind];
    if (!isObject(request)) return fail(`requests.${kind} is missing`);
    if (typeof request.requestLine !== 'string' || !/^GET \S+ HTTP\/1\.1$/.test(request.requestLine)) {
      fail(`requests.${kind}.requestLine is not "GET <path> HTTP/1.1"`);
    }
    const headers = request.headers;
    if (!Array.isArray(headers) || headers.length === 0)
      return fail(`requests.${kind}.headers is not a non-empty array`);
    headers.forEach((pair: unknown, i) => {
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== 'string' ||
        typeof pair[1] !== 'string' ||
        pair[0] === ''
      ) {
        fail(`requests.${kind}.headers[${i}] is not a [name, value] pair of strings`);
      }
    });
  }
  return value as unknown as CapturedHeaders;
}

const FIXTURE_URL = new URL('./fixtures/chromium-headers.json', import.meta.url);
const FIXTURE = loadFixture();

function loadFixture(): CapturedHeaders {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(FIXTURE_URL, 'utf8'));
  } catch (err) {
    throw new Error(`${FIXTURE_URL.pathname}: cannot read the Chromium header fixture: ${(err as Error).message}`);
  }
  return parseCapturedHeaders(parsed, FIXTURE_URL.pathname);
}

/** Fills the placeholders for `origin`; the WebSocket key gets a stand-in of its real length. */
function fill(value: string, origin: string): string {
  const url = new URL(origin);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError(`origin must be http: or https:, got ${origin}`);
  return value
    .replaceAll(PLACEHOLDERS.origin, url.origin)
    .replaceAll(PLACEHOLDERS.host, url.host)
    .replaceAll(PLACEHOLDERS.websocketKey, WEBSOCKET_KEY_STAND_IN);
}

/**
 * A Cookie value of exactly `bytes` bytes (ASCII, so bytes = characters): `lab=xxx…` from 5 bytes up,
 * `a=`, `a=x`, `a=xx` for 2 to 4, and a bare `x` for 1 (a cookie with an empty name, which is what
 * Chromium itself sends for a cookie set without `=`).
 */
function cookieValue(bytes: number): string {
  if (bytes >= 5) return `lab=${'x'.repeat(bytes - 4)}`;
  if (bytes >= 2) return `a=${'x'.repeat(bytes - 2)}`;
  return 'x';
}

/**
 * Headers to send in addition to those the client library sets itself, in Chromium's order, names
 * lower-case (valid for HTTP/2 too). Host, the hop-by-hop headers and the WebSocket handshake headers
 * are left out (see EXCLUDED); the cookie, when asked for, comes last, where Chromium puts it.
 */
export function requestHeaders(kind: RequestKind, opts: HeaderOptions): Record<string, string> {
  if (!Number.isInteger(opts.cookieBytes) || opts.cookieBytes < 0) {
    throw new RangeError(`cookieBytes must be a non-negative integer, got ${opts.cookieBytes}`);
  }
  const out: Record<string, string> = {};
  if (opts.mode === 'browser') {
    for (const [name, value] of FIXTURE.requests[kind].headers) {
      const lower = name.toLowerCase();
      if (EXCLUDED.has(lower)) continue;
      const filled = fill(value, opts.origin);
      out[lower] = lower in out ? `${out[lower]}, ${filled}` : filled;
    }
  }
  if (opts.cookieBytes > 0) out.cookie = cookieValue(opts.cookieBytes);
  return out;
}

/**
 * Bytes `request`'s header block takes on HTTP/1.1, for `origin`: the request line and CRLF, then
 * `Name: value` and CRLF per header, then the final CRLF. Works on any capture, stored or fresh.
 */
export function headerBlockBytes(request: CapturedRequest, origin: string): number {
  let text = `${request.requestLine}\r\n`;
  for (const [name, value] of request.headers) text += `${name}: ${fill(value, origin)}\r\n`;
  return Buffer.byteLength(`${text}\r\n`);
}

/** Bytes the full header block of the captured request takes on HTTP/1.1, for `origin` — used by tests and the report. */
export function capturedRequestBytes(kind: RequestKind, origin: string): number {
  return headerBlockBytes(FIXTURE.requests[kind], origin);
}
