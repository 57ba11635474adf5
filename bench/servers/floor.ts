/**
 * The "floor" reference server: the leanest Node program that puts the lab's bytes on the wire for
 * GET /poll (long and short polling), GET /events (SSE) and GET /ws (WebSocket), and nothing else. Its CPU
 * per message is what Node itself costs on this machine for that traffic; the bench report divides every
 * server's CPU by it.
 *
 * Polling, per batch: the waiting polls are grouped by cursor (after a batch every waiter of a transport
 * usually holds the same one), and each group's answer is built ONCE — the body and its header list,
 * Content-Length included — and ended on every waiting response as it is (`res.writeHead(200, list)` with
 * a flat array, which node:http writes without looking at names, then `res.end(body)`); a poll that
 * finds messages is answered at once, a short poll (`timeout=0`) always; nothing per waiter but its entry in
 * its cursor's Set and one timer, a function shared by all. node:http's own per-request work (the parser,
 * IncomingMessage, ServerResponse, the Date header) stays: it is what a Node server answering polls pays.
 *
 * Streams, per batch of messages (everything published in one event-loop turn):
 * - ONE encode per transport: `wsWire` (every message as a whole unmasked text frame, headers
 *   included, in one Buffer) and `httpChunk(sseBatch(…))` (the SSE events as one HTTP/1.1 chunk, the
 *   bytes Node's res.write would frame), each built only if some client of that transport is live;
 * - the SAME Buffer written to every socket, with ONE `socket.write` per socket per turn, straight to
 *   the net.Socket: no per-socket framing (by `ws` or by Node's chunked encoder) nor copy, no batch limit;
 * - no framework, no feed abstraction, no hub, no stats beyond the counters the bench reads.
 *
 * What it is not (like bare, bench/servers/bare.ts; the bench does not exercise them): no gap/reset announcements (a cursor older than retention resumes at the oldest
 * retained message; a future cursor or a foreign `epoch` is "from now"), no publish over WebSocket,
 * no tokens, no origin checks, no HEAD, cleartext HTTP/1.1 only (SSE clients must speak HTTP/1.1: the
 * live chunks assume a chunked response).
 *
 * Same as the lab, so the bytes match (test/bench/servers/reference-servers.test.ts pins them): its DEFAULTS
 * (server/config.ts), encoders and frames (server/protocol.ts), query rules and errors
 * (server/transports/params.ts, server/errors.ts), its `retry:` rule with the bench's config, its
 * hello, catch-up batches, heartbeats and pings, the log and epoch format of bare. Control (POST
 * /publish, GET /stats) is on a second port; IPC per bench/servers/ipc.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEFAULTS, resolveConfig, type ConfigInput } from '../../server/config.js';
import { HttpErrors } from '../../server/errors.js';
import {
  hello,
  httpChunk,
  jitteredRetryMs,
  POLL_HEAD,
  pollAnswer,
  pollBody,
  SSE_HEADERS,
  sseBatch,
  sseControl,
  sseRetry,
  wsControl,
  wsWire,
  type Message,
} from '../../server/protocol.js';
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

const {
  pollBatchMax: BATCH_MAX,
  pollTimeoutMs: POLL_TIMEOUT_MS,
  pollMaxTimeoutMs: POLL_MAX_TIMEOUT_MS,
  maxBufferedBytes: MAX_BUFFERED_BYTES,
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
} = DEFAULTS;
// The bench's config, for the `retry:` of each stream only (the wire test fixes its jitter at 0, as for the lab).
const settings = resolveConfig(
  (JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { config?: ConfigInput }).config ?? {},
);

const ledger = new Ledger();
const { counters } = ledger;

// ---- The log ------------------------------------------------------------------------------------
const log = new RetainedLog();
const { epoch } = log;
/** Last id written to the live clients. */
let flushed = 0;
let scheduled = false;

/** Messages with id > cursor, at most `limit`. */
const after = (cursor: number, limit: number = BATCH_MAX): Message[] => log.after(cursor, limit);

function publish(data: unknown): number {
  const m = log.append(data);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
  return m.id;
}

// ---- Clients ------------------------------------------------------------------------------------
interface Client {
  socket: Socket;
  cursor: number;
  /** Dropped by the server (slow consumer, no pong), so its close is not the client's doing. */
  dropped: boolean;
}
interface WsClient extends Client {
  ws: WebSocket;
  alive: boolean;
}
interface SseClient extends Client {
  res: ServerResponse;
}
const wsClients = new Set<WsClient>();
const sseClients = new Set<SseClient>();

// ---- Polls --------------------------------------------------------------------------------------
/** A poll's answer as node:http writes it: the flat header list (lowercase names, as the lab's) and the body. */
interface PollReply {
  head: string[];
  body: Buffer;
}
/** The lab's poll answer: its header list (server/protocol.ts POLL_HEAD) and the body's length. */
function pollReply(cursor: number, messages: readonly Message[]): PollReply {
  const body = Buffer.from(pollBody(pollAnswer(messages, messages[messages.length - 1]?.id ?? cursor, epoch)));
  return { head: [...POLL_HEAD, 'content-length', String(body.length)], body };
}
const answer = (res: ServerResponse, r: PollReply): void => {
  res.writeHead(200, r.head);
  res.end(r.body);
};
interface HeldPoll {
  res: ServerResponse;
  cursor: number;
  timer: NodeJS.Timeout;
}
/** Held long polls by cursor: every poll at one cursor gets the same answer, built once. */
const held = new Map<number, Set<HeldPoll>>();
/** The hold ran out: an empty answer at its own cursor. One function for every poll's timer. */
function expire(p: HeldPoll): void {
  const group = held.get(p.cursor);
  if (!group?.delete(p)) return;
  if (group.size === 0) held.delete(p.cursor);
  counters.poll.connections--;
  answer(p.res, pollReply(p.cursor, []));
}

function answerHeld(): void {
  for (const [cursor, polls] of held) {
    if (cursor >= log.lastId) continue; // held after the publish that scheduled this flush
    held.delete(cursor);
    const messages = after(cursor);
    const reply = pollReply(cursor, messages);
    for (const p of polls) {
      clearTimeout(p.timer);
      counters.poll.messagesOut += messages.length;
      counters.poll.connections--;
      answer(p.res, reply);
    }
  }
}

/** After a write: a client that cannot keep up is dropped rather than buffered without bound, as by the lab. */
function slow(c: Client, key: 'sse' | 'ws'): boolean {
  if (c.socket.writableLength <= MAX_BUFFERED_BYTES) return false;
  counters[key].disconnects['slow-consumer']++;
  c.dropped = true;
  return true;
}

function flush(): void {
  scheduled = false;
  if (flushed === log.lastId) return;
  if (held.size > 0) answerHeld();
  // Everything since the last flush, in one batch: one write per socket per turn.
  const batch = after(flushed, Number.POSITIVE_INFINITY);
  const first = batch[0]!.id;
  const last = log.lastId;
  flushed = last;
  // Each encoding is made once, only if a client of that transport needs it. A client whose cursor is
  // inside the batch (it caught up while the batch was published) gets its own, from its cursor on; one
  // before the batch (only if retention dropped messages inside one turn) skips them silently, as bare.
  let wire: Buffer | undefined;
  for (const c of wsClients) {
    // Already caught up past this batch, or closing: nothing to write.
    if (c.cursor >= last || c.ws.readyState !== c.ws.OPEN) continue;
    if (c.cursor < first) {
      wire ??= wsWire(batch);
      c.socket.write(wire);
      counters.ws.messagesOut += batch.length;
    } else {
      c.socket.write(wsWire(batch.slice(c.cursor - first + 1)));
      counters.ws.messagesOut += last - c.cursor;
    }
    c.cursor = last;
    if (slow(c, 'ws')) {
      wsClients.delete(c);
      c.ws.terminate();
    }
  }
  let chunk: Buffer | undefined;
  for (const c of sseClients) {
    if (c.cursor >= last) continue;
    // Straight to the socket: the headers and the first chunk went through res.write, so this chunk continues its body.
    if (c.cursor < first) {
      chunk ??= httpChunk(sseBatch(batch));
      c.socket.write(chunk);
      counters.sse.messagesOut += batch.length;
    } else {
      c.socket.write(httpChunk(sseBatch(batch.slice(c.cursor - first + 1))));
      counters.sse.messagesOut += last - c.cursor;
    }
    c.cursor = last;
    if (slow(c, 'sse')) {
      sseClients.delete(c);
      c.res.destroy();
    }
  }
}

/**
 * Writes everything after the client's cursor in the lab's batch sizes (so the framing matches too),
 * then makes it live; like bare, it waits for a drain whenever more than MAX_BUFFERED_BYTES is queued.
 */
function catchUp<C extends Client>(c: C, live: Set<C>, write: (batch: Message[]) => void, open: () => boolean): void {
  for (let batch = after(c.cursor); batch.length > 0; batch = after(c.cursor)) {
    write(batch);
    c.cursor = batch[batch.length - 1]!.id;
    if (c.socket.writableLength > MAX_BUFFERED_BYTES) {
      c.socket.once('drain', () => open() && catchUp(c, live, write, open));
      return;
    }
  }
  live.add(c);
}

// ---- Routes -------------------------------------------------------------------------------------
function onPoll(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
  const since = parseCursor(param(q, 'since'));
  parseEpoch(param(q, 'epoch'));
  const timeoutMs = parseTimeout(param(q, 'timeout'), POLL_TIMEOUT_MS, POLL_MAX_TIMEOUT_MS);
  const key = timeoutMs === 0 ? 'short-poll' : 'poll';
  ledger.claim(req.socket, key);
  const c = counters[key];
  c.requests++;
  const cursor = log.start(since);
  const messages = after(cursor);
  if (messages.length > 0 || timeoutMs === 0) {
    c.messagesOut += messages.length;
    answer(res, pollReply(cursor, messages));
    return;
  }
  let group = held.get(cursor);
  if (!group) {
    group = new Set();
    held.set(cursor, group);
  }
  const poll = { res, cursor } as HeldPoll;
  poll.timer = setTimeout(expire, timeoutMs, poll);
  group.add(poll);
  c.connections++;
  res.once('close', () => {
    // Answered (by a flush or the timer) is writableEnded; otherwise the client went away while held.
    if (res.writableEnded || !group.delete(poll)) return;
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
  const socket = req.socket;
  ledger.claim(socket, 'sse');
  counters.sse.requests++;
  counters.sse.connections++;
  res.writeHead(200, SSE_HEADERS);
  const client: SseClient = { socket, res, cursor: log.start(since), dropped: false };
  res.once('close', () => {
    sseClients.delete(client);
    if (!client.dropped) counters.sse.disconnects.client++;
    counters.sse.connections--;
  });
  res.write(
    sseRetry(jitteredRetryMs(settings.sseRetryMs, settings.sseRetryJitterMs)) + sseControl(hello(epoch, log.lastId)),
  );
  const write = (batch: Message[]) => {
    res.write(sseBatch(batch));
    counters.sse.messagesOut += batch.length;
  };
  catchUp(client, sseClients, write, () => !res.destroyed);
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_PAYLOAD_BYTES });

function onWs(req: IncomingMessage, socket: Socket, head: Buffer, q: URLSearchParams): void {
  const cursor = log.start(parseCursor(param(q, 'since')));
  parseEpoch(param(q, 'epoch'));
  ledger.claim(socket, 'ws');
  counters.ws.requests++;
  wss.handleUpgrade(req, socket, head, (ws) => {
    counters.ws.connections++;
    const client: WsClient = { socket, ws, cursor, alive: true, dropped: false };
    // Frames from clients are ignored: the bench's clients only read.
    ws.on('pong', () => (client.alive = true));
    ws.on('error', () => {});
    ws.on('close', () => {
      wsClients.delete(client);
      if (!client.dropped) counters.ws.disconnects.client++;
      counters.ws.connections--;
    });
    ws.send(wsControl(hello(epoch, log.lastId)));
    const write = (batch: Message[]) => {
      socket.write(wsWire(batch));
      counters.ws.messagesOut += batch.length;
    };
    catchUp(client, wsClients, write, () => ws.readyState === ws.OPEN);
  });
}

const server = createServer((req, res) => {
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
});
server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
server.on('connection', (socket: Socket) => ledger.track(socket));
server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
  const [path, q] = route(req.url);
  try {
    if (path !== '/ws') throw new HttpErrors.NOT_FOUND('GET', path);
    onWs(req, socket, head, q);
  } catch (err) {
    refuseUpgrade(socket, err);
  }
});

// The lab's keep-alive mechanisms at its intervals, so idle traffic weighs the same.
const stopKeepAlives = keepAlives(sseClients, wsClients, counters.ws);

// ---- Control port -------------------------------------------------------------------------------
const stats = () => ledger.snapshot(log.info());

await serveReference({
  server,
  publish,
  stats,
  stop() {
    stopKeepAlives();
    for (const polls of held.values()) for (const p of polls) clearTimeout(p.timer);
    for (const c of wsClients) c.ws.terminate();
    for (const c of sseClients) c.res.destroy();
    wss.close();
  },
});
