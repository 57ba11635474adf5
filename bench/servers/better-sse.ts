/**
 * The better-sse reference: the same feed served the way a typical better-sse application serves it
 * (better-sse's documented usage with plain `node:http`), so the bench can put the lab's SSE next to
 * a library a Node developer would otherwise install.
 *
 * GET /events: `createSession(req, res)`, then the session joins ONE channel (`createChannel()`);
 * each publish is ONE `channel.broadcast(json, 'message', { eventId })` (the library loops over the
 * channel's sessions and calls `session.push` on each). The data is the lab's own message JSON
 * (server/protocol.ts messageJson), serialized once per publish and handed to better-sse as a string,
 * with the session's `serializer` set to pass strings through: better-sse's default serializer is
 * JSON.stringify, which would encode the string again (and, given the object, would stringify it once
 * per session). Every other option is better-sse's default, sanitizer included (it strips CR/LF, which
 * JSON.stringify never emits, so it changes no byte).
 *
 * Replay: supported. The cursor is the Last-Event-ID header (read by better-sse: `session.lastId`, which
 * also honours a `lastEventId` query parameter), else the `since` query parameter; absent or not a
 * non-negative integer: from now. Once the session is connected (createSession resolves after the head
 * and the `retry:` are written), the retained messages after the cursor are pushed to that session and
 * it joins the channel in the same synchronous step; publishes are synchronous too, so nothing is lost
 * or sent twice. A cursor older than retention resumes silently at the oldest retained message (no gap
 * announcement); a future cursor is treated as now. No hello event: the bench's SSE client
 * (bench/clients/sse.ts) is ready on EventSource's `open` and needs none.
 *
 * What differs from the lab's bytes (HTTP/1.1, server/protocol.ts, bench/servers/bare.ts):
 * - Response head: better-sse's headers (Connection.constants.RESPONSE_HEADERS), lower-cased by the
 *   Headers object they pass through: `content-type: text/event-stream` (the lab adds `; charset=utf-8`),
 *   `cache-control: private, no-cache, no-store, no-transform, must-revalidate, max-age=0` (lab:
 *   `no-cache`), `connection: keep-alive` (lab: `close`), `pragma: no-cache` (the lab has none),
 *   `x-accel-buffering: no` (same); Node adds `Date` and `Transfer-Encoding: chunked` to both: 268
 *   bytes, 69 more than the lab's 199.
 * - Per connection: first chunk `retry:2000\n\n`, 17 bytes framed (the lab's: `retry: <1000…3000
 *   jittered>\n\n` + `event: hello\ndata: {"type":"hello",…}\n\n`, 97 bytes framed with a 4-digit retry,
 *   a `mem-…` epoch and lastId 0: better-sse sends no hello); the keep-alive is an empty comment
 *   `:\n\n` every 10 s, 8 bytes framed (lab: `: heartbeat\n\n` every 15 s, 18 bytes framed).
 * - Per message: `event:message\nid:<id>\ndata:<json>\n\n`: an `event:message` line the lab omits
 *   (EventSource fires `message` either way) and no space after the colons: +14 − 2 = 12 bytes more
 *   than the lab's `id: <id>\ndata: <json>\n\n` (and the chunk-size line may be one hex digit longer).
 *   Each push is its own `res.write`, so every message is one HTTP chunk per session, replayed ones
 *   too (the lab writes one chunk per flushed or replayed batch: the same at low rates, fewer chunks
 *   in bursts).
 *
 * /stats (the lab's StatsSnapshot, everything under `sse`): requests = GET /events requests,
 * connections = open streams, messagesOut = one per message per session written (replay included),
 * disconnects.client = streams the client closed, bytesIn/bytesOut = the TCP sockets' own counters of
 * every socket that carried GET /events (closed sockets folded in on close). Unknown paths: the lab's
 * catalogue 404. Cleartext HTTP/1.1 only. Control (POST /publish, GET /stats) is on a second port so
 * every byte on the transport port is SSE traffic. IPC per bench/servers/ipc.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createChannel, createSession } from 'better-sse';
import { messageJson } from '../../server/protocol.js';
import { catalogueAnswer, sendError, serveReference } from './control.js';
import { Ledger } from './ledger.js';
import { RetainedLog } from './log.js';

const ledger = new Ledger();
const sse = ledger.counters.sse;

// ---- The log ------------------------------------------------------------------------------------
const log = new RetainedLog('better-sse');

/** A cursor as a typical application reads one: a non-negative integer, anything else = from now. */
function cursorOf(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

// ---- better-sse ---------------------------------------------------------------------------------
const channel = createChannel();
/** The message JSON is made once per publish; pass it through instead of JSON.stringify-ing it again. */
const serializer = (data: unknown): string => data as string;

const open = new Set<ServerResponse>();

function publish(data: unknown): number {
  const m = log.append(data);
  channel.broadcast(messageJson(m), 'message', { eventId: String(m.id) });
  sse.messagesOut += channel.sessionCount;
  return m.id;
}

async function onEvents(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  sse.requests++;
  sse.connections++;
  open.add(res);
  res.once('close', () => {
    open.delete(res);
    sse.connections--;
    sse.disconnects.client++;
  });
  const session = await createSession(req, res, { serializer });
  // The client may have gone before better-sse connected the session: then it is not registered.
  if (res.destroyed || !session.isConnected) return;
  // From here to register() nothing yields: no publish can fall between the replay and the channel.
  const since = cursorOf(session.lastId) ?? cursorOf(query.get('since'));
  if (since !== undefined && since < log.lastId) {
    const missed = log.after(since);
    for (const m of missed) session.push(messageJson(m), 'message', String(m.id));
    sse.messagesOut += missed.length;
  }
  channel.register(session);
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const i = url.indexOf('?');
  const path = i < 0 ? url : url.slice(0, i);
  if (req.method === 'GET' && path === '/events') {
    // Only the sockets that carried GET /events are SSE traffic (ledger.ts).
    ledger.claim(req.socket, 'sse');
    void onEvents(req, res, new URLSearchParams(i < 0 ? '' : url.slice(i + 1)));
  } else sendError(res, catalogueAnswer('NOT_FOUND', req.method ?? 'GET', path));
});
server.on('connection', (socket: Socket) => ledger.track(socket));

// ---- Control port -------------------------------------------------------------------------------
const stats = () => ledger.snapshot(log.info());

await serveReference({
  server,
  publish,
  stats,
  stop() {
    // Destroying the responses disconnects their sessions (better-sse clears its keep-alive timers).
    for (const res of open) res.destroy();
  },
});
