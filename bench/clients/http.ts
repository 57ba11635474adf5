/**
 * How a bench client connects, as the plan's HttpSetup (bench/plan/http-setup.ts) says.
 *
 * Every client gets a connection of its own, as every browser tab has: over HTTP/1.1 one keep-alive
 * socket per client (no pipelining), over HTTP/2 one session per client with its requests as streams
 * on it. WebSocket has no HTTP/2 form in `ws` (RFC 8441), so in an `h2` scenario it is HTTP/1.1 over
 * TLS, on the same port (ALPN).
 */
import { Client } from 'undici';
import { type HttpSetup, isTls } from '../plan/http-setup.js';
import { type RequestKind, requestHeaders } from './browser-headers.js';
import { ACCEPT_SELF_SIGNED } from './self-signed.js';

/** The bench's clients accept the servers' self-signed certificates (self-signed.ts). */
export { ACCEPT_SELF_SIGNED };

/** One client's own connection to `origin`: HTTP/2 when the scenario's protocol is h2 (ALPN), else HTTP/1.1. */
export function clientConnection(origin: string, setup: HttpSetup): Client {
  return new Client(origin, {
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    allowH2: setup.protocol === 'h2',
    ...(isTls(setup.protocol) ? { connect: ACCEPT_SELF_SIGNED } : {}),
  });
}

/**
 * The headers a client adds for a `kind` request to `origin` (see browser-headers.ts). From a page on
 * another origin (`pageOrigin`) a browser's request says so: Origin and Referer are the page's, and
 * Sec-Fetch-Site is `cross-site` (EventSource, fetch and WebSocket alike); minimal headers get the Origin only.
 */
export function headersFor(
  kind: RequestKind,
  origin: string,
  setup: HttpSetup,
  pageOrigin?: string,
): Record<string, string> {
  const headers = requestHeaders(kind, { mode: setup.headers, origin, cookieBytes: setup.cookieBytes });
  if (pageOrigin === undefined) return headers;
  if (setup.headers !== 'browser') return { ...headers, origin: pageOrigin };
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'origin' || name === 'referer') out[name] = name === 'origin' ? pageOrigin : `${pageOrigin}/`;
    else if (name === 'sec-fetch-site') out[name] = 'cross-site';
    else out[name] = value;
  }
  return { origin: pageOrigin, ...out };
}
