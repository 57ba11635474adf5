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

/** The headers a client adds for a `kind` request to `origin` (see browser-headers.ts). */
export const headersFor = (kind: RequestKind, origin: string, setup: HttpSetup): Record<string, string> =>
  requestHeaders(kind, { mode: setup.headers, origin, cookieBytes: setup.cookieBytes });
