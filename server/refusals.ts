/**
 * How the server refuses what it cannot serve, below and beside the routes: requests Node's parser
 * rejects, router errors, unknown methods, a foreign `Host` on a loopback bind, `Expect` headers, and
 * uploads the client abandoned. Every refusal carries a catalogue code (see errors.ts); client
 * mistakes are logged through the rate-limited mistake logger, never at error level.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyRequest } from 'fastify';
import type { MistakeLogger } from './client-log.js';
import { isLoopback, parseHostPort } from './config.js';
import { ERRORS, FASTIFY_CODE_MAP, type ErrorBody, type ErrorCode, type ErrorName } from './errors.js';

/** A Fastify 4xx error that no map names: the catalogue entry for its status (400 otherwise). */
export const BY_STATUS: Readonly<Record<number, ErrorName>> = Object.freeze({
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_TIMEOUT',
  412: 'PRECONDITION_FAILED',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  416: 'RANGE_NOT_SATISFIABLE',
  417: 'EXPECTATION_FAILED',
  431: 'HEADERS_TOO_LARGE',
});

/** Fills a catalogue message's `%s` slots in order. */
export const format = (template: string, ...args: string[]): string => {
  let i = 0;
  return template.replace(/%s/g, () => args[i++] ?? '');
};

/**
 * A complete HTTP/1.1 error answer for a raw socket (no request or response object exists): our JSON
 * body, then the connection is closed.
 */
export function rawErrorAnswer(name: ErrorName, message: string, extraHeaders = ''): string {
  const { code, statusCode } = ERRORS[name];
  const body = JSON.stringify({ error: { code, message } } satisfies ErrorBody);
  return (
    `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`
  );
}

/** Writes `answer` and closes; a socket that can no longer take it is just cut. */
export function answerAndClose(socket: Socket, answer: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(answer, () => socket.destroy());
}

/**
 * Node's parser refused the bytes (malformed request line or headers, bad chunking, conflicting
 * Content-Length/Transfer-Encoding, headers too large, headers too slow): answer with our JSON body
 * and close. Only when nothing of a response went out on this connection yet — with a pipelined
 * request behind a started answer (an SSE stream), writing would corrupt it, so the connection is cut.
 * (`socket._httpMessage` is Node's in-flight ServerResponse; Node's own fallback does the same check.)
 */
export function clientErrorHandler(mistake: MistakeLogger) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    // A client hanging up (mid-request, too) is no mistake worth a line of its own.
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE') {
      socket.destroy();
      return;
    }
    // The code only: err.rawPacket holds up to the whole header block the client sent.
    mistake('malformed HTTP request', { code: err.code });
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    let answer: string;
    if (err.code === 'HPE_HEADER_OVERFLOW')
      answer = rawErrorAnswer('HEADERS_TOO_LARGE', ERRORS.HEADERS_TOO_LARGE.message);
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
      answer = rawErrorAnswer('REQUEST_TIMEOUT', ERRORS.REQUEST_TIMEOUT.message);
    else answer = rawErrorAnswer('BAD_REQUEST', format(ERRORS.BAD_REQUEST.message, err.code ?? 'unparsable'));
    answerAndClose(socket, answer);
  };
}

/**
 * The `Host` check against DNS rebinding, for a loopback bind: a page on evil.example whose name was
 * rebound to 127.0.0.1 is same-origin with this server in the browser, but its requests still say
 * `Host: evil.example`. Loopback names (localhost, 127.x.x.x, [::1]) pass with any port; an
 * ALLOWED_HOSTS entry passes with any port, or only with its own port if it names one.
 */
export function hostAllowedFor(allowedHosts: readonly string[]): (host: string) => boolean {
  const anyPort = new Set<string>();
  const exact = new Set<string>();
  for (const entry of allowedHosts) {
    const h = parseHostPort(entry)!;
    if (h.port === undefined) anyPort.add(h.name);
    else exact.add(`${h.name}:${h.port}`);
  }
  // Runs on every request: the few Host values a server sees are remembered once accepted.
  const accepted = new Set<string>();
  return (host) => {
    if (accepted.has(host)) return true;
    const h = parseHostPort(host);
    if (h === undefined) return false;
    const ok =
      isLoopback(h.name === '[::1]' ? '::1' : h.name) ||
      anyPort.has(h.name) ||
      (h.port !== undefined && exact.has(`${h.name}:${h.port}`));
    if (ok && accepted.size < 64) accepted.add(host);
    return ok;
  };
}

/** Errors a request stream raises when the client went away mid-upload: its mistake, not a bug of ours. */
const ABORTED = new Set(['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * Our status and body for any error a route, hook, parser or the router raised. Client errors of
 * Fastify's get the catalogue code for their status; an abandoned upload is logged as a mistake; only
 * what is left (a bug) is logged at error level and answered 500.
 */
export function errorAnswer(
  err: FastifyError,
  request: FastifyRequest,
  log: FastifyBaseLogger,
  mistake: MistakeLogger,
  maxPayloadBytes: number,
): { status: number; body: ErrorBody } {
  const mapped = err.code ? FASTIFY_CODE_MAP[err.code] : undefined;
  let code: ErrorCode;
  let status: number;
  let message: string;
  if (mapped === 'PAYLOAD_TOO_LARGE') {
    ({ code, statusCode: status } = ERRORS.PAYLOAD_TOO_LARGE);
    message = ERRORS.PAYLOAD_TOO_LARGE.message.replace('%s', String(maxPayloadBytes));
  } else if (mapped) {
    ({ code, statusCode: status, message } = ERRORS[mapped]);
    if (mapped === 'BAD_CONTROL') message = err.message;
    if (mapped === 'BAD_REQUEST') message = format(message, err.message);
  } else if (err.code?.startsWith('LAB_ERR_')) {
    code = err.code as ErrorCode;
    status = err.statusCode ?? 500;
    message = err.message;
  } else if ((err.code !== undefined && ABORTED.has(err.code)) || request.raw.destroyed) {
    mistake('request aborted by the client', { code: err.code, url: request.url.split('?')[0] });
    ({ code, statusCode: status } = ERRORS.BAD_REQUEST);
    message = format(ERRORS.BAD_REQUEST.message, 'the client aborted the request');
  } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    // A client error no map names (Fastify's, or @fastify/static's 412/416): still one of our codes, never a 500.
    const name = BY_STATUS[err.statusCode] ?? 'BAD_REQUEST';
    ({ code, statusCode: status } = ERRORS[name]);
    message = name === 'BAD_REQUEST' ? format(ERRORS.BAD_REQUEST.message, err.message) : err.message;
  } else {
    log.error(err);
    ({ code, statusCode: status, message } = ERRORS.INTERNAL);
  }
  return { status, body: { error: { code, message } } };
}
