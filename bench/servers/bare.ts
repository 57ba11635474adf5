/**
 * The "bare" control server: the lab's three transports (GET /poll, GET /events, GET /ws) with the same
 * wire format, on plain `node:http` + `ws` and nothing else. It answers "what does the lab's framework,
 * feed abstraction and hub cost over the least code that puts the same bytes on the wire?".
 *
 * Lean on purpose: one in-memory array; on publish ONE flush per event-loop turn (setImmediate) that
 * encodes the new messages once per transport (SSE text, WS frame payloads, the poll answer body for
 * every poller held at the same cursor) and writes them to every client. Same cursor semantics as the
 * lab (`since`, `Last-Event-ID`, `timeout`, default 25 s, 0 = short poll). Not implemented (the bench
 * does not exercise them): gap/reset announcements (a cursor older than retention silently resumes at
 * the oldest retained message; a future cursor or a foreign `epoch` is treated as "from now"), publish
 * over WebSocket, tokens, origin checks.
 *
 * What it must not do is re-type the lab: its limits and timings are the lab's DEFAULTS
 * (server/config.ts), its frames and encoders the lab's (server/protocol.ts), its query parsing and
 * error answers the lab's (server/transports/params.ts, server/errors.ts), its /stats the lab's
 * StatsSnapshot type, its event-loop windows the lab's (server/event-loop.ts). Only the framework is
 * left out: none of those modules loads Fastify. test/bench/servers/reference-servers.test.ts pins the bytes.
 *
 * Control (POST /publish, GET /stats) is on a second port so every byte on the transport port is
 * transport traffic. IPC per bench/servers/ipc.ts.
 *
 * With `config: { tls | http2, tlsCert, tlsKey }` (the lab's settings) it serves HTTPS, or HTTP/2 over
 * TLS with HTTP/1.1 on the same port, as the lab does, with the certificate the lab would load
 * (server/tls.ts); bytes are then counted on the TCP sockets under TLS, like the lab's /stats.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2ServerRequest, type Http2Session } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEFAULTS, resolveConfig, type ConfigInput } from '../../server/config.js';
import { loadCredentials } from '../../server/tls.js';
import { HttpErrors } from '../../server/errors.js';
import {
  hello,
  jitteredRetryMs,
  POLL_HEAD,
  pollAnswer,
  pollBody,
  SSE_HEADERS,
  SSE_HEADERS_H2,
  sseBatch,
  sseControl,
  sseRetry,
  wsControl,
  wsFrames,
  type Message,
} from '../../server/protocol.js';
import type { TransportKey } from '../../server/stats.js';
import { parseCursor, parseEpoch, parseTimeout } from '../../server/transports/params.js';
import {
  KEEP_ALIVE_TIMEOUT_MS,
  keepAlives,
  param,
  refuseUpgrade,
  route,
  sendError,
  serveReference,
  thrownAnswer,
} from './control.js';
import { Ledger } from './ledger.js';
import { RetainedLog } from './log.js';

// The lab's defaults, so both servers behave the same under the bench.
const {
  pollBatchMax: BATCH_MAX,
  pollTimeoutMs: POLL_TIMEOUT_MS,
  pollMaxTimeoutMs: POLL_MAX_TIMEOUT_MS,
  sseRetryMs: SSE_RETRY_MS,
  maxBufferedBytes: MAX_BUFFERED_BYTES,
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
} = DEFAULTS;

const ledger = new Ledger();
const { counters } = ledger;

// ---- The log ------------------------------------------------------------------------------------
const log = new RetainedLog();
const { epoch } = log;
/** Last id written to the live SSE/WS clients. */
let flushed = 0;
let scheduled = false;

/** Messages with id > cursor, at most `limit`. */
const after = (cursor: number, limit = BATCH_MAX): Message[] => log.after(cursor, limit);

function publish(data: unknown): number {
  const m = log.append(data);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
  return m.id;
}

// ---- Clients ------------------------------------------------------------------------------------
interface WsClient {
  ws: WebSocket;
  socket: Socket;
  cursor: number;
  alive: boolean;
  /** Dropped by the server (slow consumer, no pong), so its close is not the client's doing. */
  dropped: boolean;
}
interface SseClient {
  res: ServerResponse;
  cursor: number;
  dropped: boolean;
}
interface HeldPoll {
  res: ServerResponse;
  timer: NodeJS.Timeout;
}
const wsClients = new Set<WsClient>();
const sseClients = new Set<SseClient>();
/** Held long polls by cursor: everyone at one cursor gets the same body, encoded once. */
const held = new Map<number, Set<HeldPoll>>();

function sendWs(c: WsClient, frames: readonly Buffer[], count: number): void {
  // Corked: the whole batch leaves in one writev instead of one syscall per frame.
  c.socket.cork();
  for (const f of frames) c.ws.send(f, { binary: false });
  c.socket.uncork();
  counters.ws.messagesOut += count;
  if (c.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    // Like the lab, a client that cannot keep up is dropped rather than buffered without bound.
    counters.ws.disconnects['slow-consumer']++;
    c.dropped = true;
    wsClients.delete(c);
    c.ws.terminate();
  }
}

function sendSse(c: SseClient, buf: Buffer, count: number): void {
  c.res.write(buf);
  counters.sse.messagesOut += count;
  if (c.res.writableLength > MAX_BUFFERED_BYTES) {
    counters.sse.disconnects['slow-consumer']++;
    c.dropped = true;
    sseClients.delete(c);
    c.res.destroy();
  }
}

function answerPoll(res: ServerResponse, body: Buffer | string): void {
  res.writeHead(200, [...POLL_HEAD, 'content-length', String(Buffer.byteLength(body))]);
  res.end(body);
}

const pollBodyAfter = (cursor: number, messages: Message[]): Buffer =>
  Buffer.from(pollBody(pollAnswer(messages, messages[messages.length - 1]?.id ?? cursor, epoch)));

function flush(): void {
  scheduled = false;
  while (flushed < log.lastId) {
    const batch = after(flushed);
    const first = batch[0]!.id;
    const last = batch[batch.length - 1]!.id;
    // Each encoding is made once per batch, only if someone needs it.
    let frames: Buffer[] | undefined;
    for (const c of wsClients) {
      if (c.cursor >= last) continue; // joined after this batch was published: already caught up
      // `<`: only if retention dropped messages inside one turn; they are skipped silently (no gap frame).
      if (c.cursor <= first - 1) {
        frames ??= wsFrames(batch);
        sendWs(c, frames, batch.length);
      } else sendWs(c, wsFrames(batch.slice(c.cursor - first + 1)), last - c.cursor);
      c.cursor = last;
    }
    let text: Buffer | undefined;
    for (const c of sseClients) {
      if (c.cursor >= last) continue;
      if (c.cursor <= first - 1) {
        text ??= sseBatch(batch);
        sendSse(c, text, batch.length);
      } else sendSse(c, sseBatch(batch.slice(c.cursor - first + 1)), last - c.cursor);
      c.cursor = last;
    }
    flushed = last;
  }
  for (const [cursor, polls] of held) {
    if (cursor >= log.lastId) continue; // held after the publish that scheduled this flush
    held.delete(cursor);
    const messages = after(cursor);
    const body = pollBodyAfter(cursor, messages);
    for (const p of polls) {
      clearTimeout(p.timer);
      counters.poll.messagesOut += messages.length;
      counters.poll.connections--;
      answerPoll(p.res, body);
    }
  }
}

/**
 * Writes everything after the client's cursor in the lab's batch sizes (so SSE chunk framing matches
 * too), then makes it live. Like the lab's hub it waits for a drain whenever more than
 * MAX_BUFFERED_BYTES is queued, instead of queueing the whole backlog at once; until it is live the
 * flushes skip it, and the read after each wait picks up whatever was published meanwhile.
 */
function catchUp<C extends { cursor: number }>(
  c: C,
  live: Set<C>,
  write: (batch: Message[]) => void,
  buffered: () => number,
  drains: NodeJS.EventEmitter,
  closed: () => boolean,
): void {
  for (let batch = after(c.cursor); batch.length > 0; batch = after(c.cursor)) {
    write(batch);
    c.cursor = batch[batch.length - 1]!.id;
    if (buffered() > MAX_BUFFERED_BYTES) {
      drains.once('drain', () => closed() || catchUp(c, live, write, buffered, drains, closed));
      return;
    }
  }
  live.add(c);
}

// ---- Socket byte accounting ---------------------------------------------------------------------
// Every transport-port TCP socket is charged to the last route it served (ledger.ts; in the bench a
// keep-alive socket or an HTTP/2 session serves one kind of request, so per-socket attribution is exact
// enough). Under TLS a request's socket is the TLSSocket (or an HTTP/2 session's proxy of it): its TCP
// socket is found by peer address and port.
const byPeer = new Map<string, Socket>();
const peerOf = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string =>
  `${s.remoteAddress}|${s.remotePort}`;
const tcpOf = (s: Socket): Socket => byPeer.get(peerOf(s)) ?? s;
const claim = (req: IncomingMessage | Http2ServerRequest, key: TransportKey): void =>
  ledger.claim(tcpOf(req.socket as Socket), key);

// ---- Routes -------------------------------------------------------------------------------------
function onPoll(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
  const since = parseCursor(param(q, 'since'));
  parseEpoch(param(q, 'epoch'));
  const timeoutMs = parseTimeout(param(q, 'timeout'), POLL_TIMEOUT_MS, POLL_MAX_TIMEOUT_MS);
  const key: TransportKey = timeoutMs === 0 ? 'short-poll' : 'poll';
  claim(req, key);
  const c = counters[key];
  c.requests++;
  const cursor = log.start(since);
  const messages = after(cursor);
  if (messages.length > 0 || timeoutMs === 0) {
    c.messagesOut += messages.length;
    answerPoll(res, pollBodyAfter(cursor, messages));
    return;
  }
  let group = held.get(cursor);
  if (!group) {
    group = new Set();
    held.set(cursor, group);
  }
  const poll: HeldPoll = {
    res,
    timer: setTimeout(() => {
      group.delete(poll);
      if (group.size === 0 && held.get(cursor) === group) held.delete(cursor);
      c.connections--;
      answerPoll(res, pollBodyAfter(cursor, []));
    }, timeoutMs),
  };
  group.add(poll);
  c.connections++;
  res.once('close', () => {
    // Answered (by a flush or the timer) is `writableEnded`, not `writableFinished`: an HTTP/2 stream the
    // client reset reads as finished, and the held poll stayed counted until its timer (25 s).
    if (res.writableEnded || !group.delete(poll)) return;
    // The client went away while held.
    clearTimeout(poll.timer);
    if (group.size === 0 && held.get(cursor) === group) held.delete(cursor);
    c.connections--;
    c.disconnects.client++;
  });
}

function onEvents(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
  // Last-Event-ID wins: EventSource sends it on every reconnect, while the URL keeps the first `since`.
  const header = req.headers['last-event-id'];
  const since = parseCursor(header !== undefined ? header : param(q, 'since'));
  parseEpoch(param(q, 'epoch'));
  claim(req, 'sse');
  counters.sse.requests++;
  counters.sse.connections++;
  res.writeHead(200, req.httpVersionMajor === 2 ? SSE_HEADERS_H2 : SSE_HEADERS);
  const client: SseClient = { res, cursor: log.start(since), dropped: false };
  res.once('close', () => {
    sseClients.delete(client);
    if (!client.dropped) counters.sse.disconnects.client++;
    counters.sse.connections--;
  });
  // The lab's retry rule, with its settings (a jittered retry by default).
  res.write(sseRetry(jitteredRetryMs(SSE_RETRY_MS, settings.sseRetryJitterMs)) + sseControl(hello(epoch, log.lastId)));
  catchUp(
    client,
    sseClients,
    (batch) => {
      res.write(sseBatch(batch));
      counters.sse.messagesOut += batch.length;
    },
    () => res.writableLength,
    res,
    () => res.destroyed,
  );
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_PAYLOAD_BYTES });

function onWs(req: IncomingMessage, socket: Socket, head: Buffer, q: URLSearchParams): void {
  const cursor = log.start(parseCursor(param(q, 'since')));
  parseEpoch(param(q, 'epoch'));
  ledger.claim(tcpOf(socket), 'ws');
  counters.ws.requests++;
  wss.handleUpgrade(req, socket, head, (ws) => {
    counters.ws.connections++;
    const client: WsClient = { ws, socket, cursor, alive: true, dropped: false };
    // Listeners synchronously, before anything can arrive. Frames from clients are ignored: the
    // bench's clients only read.
    ws.on('pong', () => (client.alive = true));
    ws.on('error', () => {});
    ws.on('close', () => {
      wsClients.delete(client);
      if (!client.dropped) counters.ws.disconnects.client++;
      counters.ws.connections--;
    });
    ws.send(wsControl(hello(epoch, log.lastId)));
    catchUp(
      client,
      wsClients,
      (batch) => {
        socket.cork();
        for (const f of wsFrames(batch)) ws.send(f, { binary: false });
        socket.uncork();
        counters.ws.messagesOut += batch.length;
      },
      () => ws.bufferedAmount,
      socket,
      () => ws.readyState !== ws.OPEN,
    );
  });
}

const benchOpts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { config?: ConfigInput };
const settings = resolveConfig(benchOpts.config ?? {});
const credentials = await loadCredentials(settings);
const http2 = credentials !== undefined && benchOpts.config?.http2 === true;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const [path, q] = route(req.url);
  try {
    if (req.method === 'GET' && path === '/poll') onPoll(req, res, q);
    else if (req.method === 'GET' && path === '/events') onEvents(req, res, q);
    else throw new HttpErrors.NOT_FOUND(req.method ?? 'GET', path);
  } catch (err) {
    const answer = thrownAnswer(err);
    if (!answer) throw err;
    sendError(res, answer);
  }
}

// The compat API hands HTTP/2 streams over as request/response pairs shaped like HTTP/1.1's.
const server =
  credentials === undefined
    ? createServer(handle)
    : http2
      ? createSecureServer({ key: credentials.key, cert: credentials.cert, allowHTTP1: true }, handle as never)
      : createHttpsServer({ key: credentials.key, cert: credentials.cert }, handle);
if ('keepAliveTimeout' in server) server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
const sessions = new Set<Http2Session>();
server.on('session', (session: Http2Session) => {
  sessions.add(session);
  session.once('close', () => sessions.delete(session));
});
server.on('connection', (socket: Socket) => {
  const peer = peerOf(socket);
  ledger.track(socket);
  byPeer.set(peer, socket);
  socket.once('close', () => {
    if (byPeer.get(peer) === socket) byPeer.delete(peer);
  });
});
server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
  const [path, q] = route(req.url);
  try {
    if (path !== '/ws') throw new HttpErrors.NOT_FOUND('GET', path);
    onWs(req, socket, head, q);
  } catch (err) {
    refuseUpgrade(socket, err);
  }
});

// Same keep-alive mechanisms as the lab, at its default intervals, so idle traffic weighs the same.
const stopKeepAlives = keepAlives(sseClients, wsClients, counters.ws);

// ---- Control port -------------------------------------------------------------------------------
const stats = () => ledger.snapshot(log.info());

await serveReference({
  server,
  publish,
  stats,
  tls: credentials !== undefined,
  stop() {
    stopKeepAlives();
    for (const c of wsClients) c.ws.terminate();
    for (const c of sseClients) c.res.destroy();
    for (const polls of held.values()) for (const p of polls) clearTimeout(p.timer);
    wss.close();
    for (const session of sessions) session.destroy();
  },
});
