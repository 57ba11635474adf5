/**
 * How the bench's clients speak HTTP, as the plan states it: the protocol (cleartext HTTP/1.1, HTTP/1.1
 * over TLS, HTTP/2 over TLS), the header set (what Chromium sends, or only what the client library
 * sets), and a cookie. One definition for the options, the targets, the clients and the report.
 */
import type { HeaderMode } from '../../report/types.js';
import { HTTP_PROTOCOLS, type HttpProtocol } from '../../server/protocol.js';

/** Every protocol a scenario can run over, in the order reports list them. */
export { HTTP_PROTOCOLS, type HttpProtocol };

export interface HttpSetup {
  protocol: HttpProtocol;
  headers: HeaderMode;
  /** A Cookie header of exactly this many bytes on every request (0: none). */
  cookieBytes: number;
}

/** What the bench sends unless told otherwise: Chromium's headers over cleartext HTTP/1.1, no cookie. */
export const DEFAULT_HTTP: Readonly<HttpSetup> = Object.freeze({
  protocol: 'http/1.1',
  headers: 'browser',
  cookieBytes: 0,
});

export const isTls = (p: HttpProtocol): boolean => p !== 'http/1.1';
