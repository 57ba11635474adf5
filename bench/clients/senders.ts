/**
 * Clients that send as well as receive (the chat workload): what a send answers, and the HTTP sender a
 * page on SSE, long or short polling sends with — `POST /send` (server/publish.ts) on a connection of
 * its own beside the one its stream or held poll occupies, as a browser's connection pool gives it, with
 * the page's headers, an `Idempotency-Key` per send. Over HTTP/2 the page's one session would carry both;
 * here the sends get a session of their own, so the transport's own bytes stay its own on the server.
 * WebSocket clients send on their open socket (ws.ts).
 *
 * A page on another origin than the lab (`pageOrigin`) sends cross-origin: its POST carries that Origin
 * and `Sec-Fetch-Site: cross-site`, and, being a JSON POST with an Idempotency-Key, needs a CORS
 * preflight first, which the client caches as a browser does: for the answer's Access-Control-Max-Age
 * (Chromium: 5 s without it, at most 2 h). The preflights are counted among the sends' requests.
 */
import type { Socket } from 'node:net';
import { buildConnector, Client, Pool } from 'undici';
import { type HttpSetup, isTls } from '../plan/http-setup.js';
import { ACCEPT_SELF_SIGNED, headersFor } from './http.js';
import type { BatchAckItem, SendItem } from '../../server/protocol.js';

/** A send's answer: acknowledged with the feed id it got (`duplicate`: a retried key), or refused with a LAB_ERR_* code. */
export type SendAnswer = { ok: true; id: number; duplicate: boolean } | { ok: false; code: string };

/** A client group's sending side. */
export interface Sending {
  /** Client `client` sends `data` with idempotency key `key`; resolves with the server's answer (rejects on a transport failure). */
  send(client: number, data: unknown, key: string): Promise<SendAnswer>;
  /**
   * Client `client` sends several messages in one request or frame (`{batch}`, server/protocol.ts), each
   * with its key; resolves with one answer per item, in order. Absent where the peer has no batch form.
   */
  sendBatch?(client: number, items: SendItem[]): Promise<SendAnswer[]>;
  /**
   * Traffic of sends on connections of their own (HTTP sends), which the server's transport counters do
   * not see: bytes each way on the wire and requests. Zero when sends share the transport's connection (WebSocket).
   */
  ownWire(): { bytesUp: number; bytesDown: number; requests: number };
  close(): Promise<void>;
}

/**
 * The headers of a page's `fetch(url, {method: 'POST', body: JSON})`: the captured fetch headers
 * (browser-headers.ts, the poll request's) with the Origin and Content-Type a browser adds to a POST.
 */
function sendHeaders(origin: string, setup: HttpSetup, pageOrigin?: string): Record<string, string> {
  const fetchHeaders = headersFor('poll', origin, setup, pageOrigin);
  if (pageOrigin) return { ...fetchHeaders, 'content-type': 'application/json' };
  const browser = Object.keys(fetchHeaders).length > 0;
  return {
    ...fetchHeaders,
    ...(browser ? { origin: new URL(origin).origin } : {}),
    'content-type': 'application/json',
  };
}

/** Chromium's preflight cache: 5 s when the answer gives no Access-Control-Max-Age, never more than 2 h. */
const PREFLIGHT_DEFAULT_SEC = 5;
const PREFLIGHT_MAX_SEC = 7200;

/**
 * Chromium opens at most 6 HTTP/1.1 connections to one host; a page's stream or held poll takes one, its
 * sends the rest: a send finding them all busy waits for one, as fetch() does. Over HTTP/2 one session
 * carries every send.
 */
export const SEND_CONNECTIONS_PER_PAGE = 6 - 1;

/** `POST /send` per client, each on connections (or an HTTP/2 session) of its own; every socket counted. */
export function httpSending(baseUrl: string, setup: HttpSetup, count: number, pageOrigin?: string): Sending {
  const sockets: Socket[] = [];
  const connect = buildConnector({
    ...(isTls(setup.protocol) ? ACCEPT_SELF_SIGNED : {}),
    allowH2: setup.protocol === 'h2',
  });
  const counted: buildConnector.connector = (opts, callback) =>
    connect(opts, (err, socket) => {
      if (socket) sockets.push(socket as Socket);
      callback(err as null, socket as Socket);
    });
  const options = {
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    allowH2: setup.protocol === 'h2',
    connect: counted,
  };
  const connections = Array.from({ length: count }, () =>
    setup.protocol === 'h2'
      ? // Streams at once on the session (undici takes `pipelining` for them): a browser's sends multiplex.
        new Client(baseUrl, { ...options, pipelining: 100 })
      : new Pool(baseUrl, { ...options, connections: SEND_CONNECTIONS_PER_PAGE }),
  );
  const headers = sendHeaders(baseUrl, setup, pageOrigin);
  let requests = 0;
  /** Per client: until when (performance.now ms) its preflight answer is cached. */
  const preflightUntil = Array.from({ length: count }, () => 0);
  /** A CORS preflight for a POST /send from `pageOrigin`; false when the lab refused it (no ACAO). */
  async function preflight(client: number): Promise<boolean> {
    requests++;
    const res = await connections[client]!.request({
      path: '/send',
      method: 'OPTIONS',
      headers: {
        ...Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'content-type')),
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,idempotency-key',
      },
    });
    await res.body.dump();
    if (res.headers['access-control-allow-origin'] !== pageOrigin) return false;
    const maxAge = Number(res.headers['access-control-max-age'] ?? PREFLIGHT_DEFAULT_SEC);
    preflightUntil[client] = performance.now() + Math.min(PREFLIGHT_MAX_SEC, maxAge) * 1000;
    return true;
  }
  type Answer = { id?: number; duplicate?: boolean; batch?: BatchAckItem[]; error?: { code: string } };
  /** One POST /send from `client` (after its preflight when cross-origin): the status and parsed body, or the refusal. */
  async function post(client: number, body: unknown, extra: Record<string, string>) {
    if (pageOrigin && performance.now() >= preflightUntil[client]! && !(await preflight(client)))
      return { refused: 'CORS preflight refused' };
    requests++;
    const res = await connections[client]!.request({
      path: '/send',
      method: 'POST',
      headers: { ...headers, ...extra },
      body: JSON.stringify(body),
    });
    const answer = (await res.body.json()) as Answer;
    if (res.statusCode === 201 || res.statusCode === 200) return { answer };
    return { refused: answer.error?.code ?? `HTTP ${res.statusCode}` };
  }
  return {
    async send(client, data, key) {
      const r = await post(client, { data }, { 'idempotency-key': key });
      if (r.refused !== undefined) return { ok: false, code: r.refused };
      if (typeof r.answer.id !== 'number') throw new Error('POST /send answered without an id');
      return { ok: true, id: r.answer.id, duplicate: r.answer.duplicate === true };
    },
    async sendBatch(client, items) {
      const r = await post(client, { batch: items }, {});
      if (r.refused !== undefined) return items.map((): SendAnswer => ({ ok: false, code: r.refused }));
      if (r.answer.batch?.length !== items.length)
        throw new Error(`a batch of ${items.length} was not answered item by item`);
      return r.answer.batch.map((a): SendAnswer => ({ ok: true, id: a.id, duplicate: a.duplicate === true }));
    },
    ownWire: () => ({
      bytesUp: sockets.reduce((n, s) => n + s.bytesWritten, 0),
      bytesDown: sockets.reduce((n, s) => n + s.bytesRead, 0),
      requests,
    }),
    async close() {
      await Promise.all(connections.map((c) => c.destroy()));
    },
  };
}
