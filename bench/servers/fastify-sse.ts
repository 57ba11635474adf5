/**
 * The @fastify/sse reference: the same feed served the way a typical Fastify application serves it
 * with Fastify's own SSE plugin, so the bench can put the lab's SSE next to the plugin a Fastify user
 * would otherwise install.
 *
 * GET /events is a route with `{ sse: 'only' }`: the plugin's form for an SSE-only route (any Accept
 * that admits text/event-stream gets the stream, one that refuses it the plugin's 406). `sse: true` is
 * the plugin's back-compat form, routed like 'dual': without an explicit `Accept: text/event-stream`
 * the handler would run with no `reply.sse` and have to answer something else. EventSource always
 * sends that Accept, so for the bench both forms serve the same stream.
 *
 * The handler calls `reply.sse.keepAlive()` (without it the plugin ends the stream when the handler
 * returns), sends the lab's hello event, replays, and adds the reply to a Set of open replies
 * (`reply.sse.onClose` removes it).
 *
 * The hello is needed: the plugin commits the head lazily, and even its `reply.sse.sendHeaders()` only
 * has Node queue it (`writeHead`) until the first body write, so with nothing to replay EventSource
 * would not open (and the bench's client not be ready) until the first message or the first heartbeat
 * 30 s later. A typical application sends something on connect (the README's examples do); here it is
 * the lab's own first frame, `reply.sse.send({ event: 'hello', data })` with data
 * `{"type":"hello","epoch","lastId"}` (server/protocol.ts hello, an epoch of the lab's shape and length):
 * the plugin writes `event: hello\ndata: …\n\n`, byte for byte the lab's sseControl(hello). The bench's
 * SSE client listens for no `hello` event; EventSource fires nothing for it.
 *
 * The plugin has no channel or broadcast: each publish serializes the message once and calls
 * `reply.sse.send({ id, data })` on every open reply, as its README's examples do per connection.
 * The data is the lab's own message JSON (server/protocol.ts messageJson), handed over as a string
 * with the plugin's `serializer` set to pass strings through (its default, JSON.stringify, would
 * encode the string again). The sends are not awaited: `send` writes synchronously and its promise
 * only waits for a drain under backpressure. Every other setting is the plugin's (and Fastify's)
 * default.
 *
 * Replay: supported. With a Last-Event-ID header the plugin's `reply.sse.replay(cb)` calls back with it
 * (it reads only the header: `reply.sse.lastEventId`); without one, the `since` query parameter is the
 * cursor; absent or not a non-negative integer: from now. The retained messages after the cursor are
 * sent to that reply and it joins the Set in the same synchronous step (the replay callback runs
 * synchronously inside `replay()`, and publishes are synchronous too), so nothing is lost or sent twice.
 * A cursor older than retention resumes silently at the oldest retained message (no gap announcement);
 * a future cursor is treated as now.
 *
 * What differs from the lab's bytes (HTTP/1.1, server/protocol.ts, bench/servers/bare.ts):
 * - Response head: `content-type: text/event-stream` (the lab adds `; charset=utf-8`),
 *   `cache-control: no-cache` (same), `connection: keep-alive` (lab: `close`), `x-accel-buffering: no`
 *   (same); Node adds `Date` and `Transfer-Encoding: chunked` to both: 189 bytes, 10 fewer than the
 *   lab's 199.
 * - Per connection: no `retry:` (the plugin sends none; EventSource then waits its own default, 3 s
 *   in the `eventsource` package): the first chunk is the hello alone, 84 bytes framed with lastId 0,
 *   13 fewer than the lab's `retry: <1000…3000 jittered>\n\n` + hello in one chunk (97 with a 4-digit
 *   retry); the keep-alive is `: heartbeat\n\n` (the lab's own bytes, 18 framed) every 30 s (lab:
 *   every 15 s).
 * - Per message: none. `id: <id>\ndata: <json>\n\n`, byte for byte the lab's event; but each send is
 *   its own `res.write`, so every message is one HTTP chunk per reply, replayed ones too (the lab
 *   writes one chunk per flushed or replayed batch: the same at low rates, fewer chunks in bursts).
 *
 * /stats (the lab's StatsSnapshot, everything under `sse`): requests = GET /events requests,
 * connections = open streams, messagesOut = one per message per reply written (replay included),
 * disconnects.client = streams the client closed, bytesIn/bytesOut = the TCP sockets' own counters of
 * every socket that carried GET /events (closed sockets folded in on close). Unknown paths: Fastify's
 * default 404. Cleartext HTTP/1.1 only. Control (POST /publish, GET /stats) is on a second port so
 * every byte on the transport port is SSE traffic. IPC per bench/servers/ipc.ts.
 */
import type { Socket } from 'node:net';
import sseModule, { type SSEPluginOptions } from '@fastify/sse';
import Fastify, { type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { hello, messageJson, type Message } from '../../server/protocol.js';
import { serveReference } from './control.js';
import { Ledger } from './ledger.js';
import { RetainedLog } from './log.js';

const ledger = new Ledger();
const sse = ledger.counters.sse;

// ---- The log ------------------------------------------------------------------------------------
// The lab's memory-feed epoch shape (log.ts), so hello frames weigh the same.
const log = new RetainedLog();

/** A cursor as a typical application reads one: a non-negative integer, anything else = from now. */
function cursorOf(value: unknown): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

// ---- Fastify + @fastify/sse ---------------------------------------------------------------------
/**
 * The plugin's types declare an ES `export default` on a CommonJS module: under NodeNext the default
 * import is `module.exports`, which at run time IS the (fastify-plugin wrapped) plugin. Its `.default`
 * and `.fastifySSE` are the bare function, which would encapsulate the plugin's onRoute hook away from
 * this app's routes: do not use them.
 */
const fastifySSE = sseModule as unknown as FastifyPluginAsync<SSEPluginOptions>;

const app = Fastify();
/** The message JSON is made once per publish; pass it through instead of JSON.stringify-ing it again. */
await app.register(fastifySSE, { serializer: (data: unknown) => data as string });

const open = new Set<FastifyReply>();

/** Fire and forget: the write is synchronous; a send to a stream closing under it just fails. */
const send = (reply: FastifyReply, m: Message, json = messageJson(m)): void =>
  void reply.sse.send({ id: String(m.id), data: json }).catch(() => {});

function publish(data: unknown): number {
  const m = log.append(data);
  const json = messageJson(m);
  for (const reply of open) send(reply, m, json);
  sse.messagesOut += open.size;
  return m.id;
}

/** The retained messages after `since` to one reply, synchronously. */
function replayTo(reply: FastifyReply, since: number | undefined): void {
  if (since === undefined || since >= log.lastId) return;
  const missed = log.after(since);
  for (const m of missed) send(reply, m);
  sse.messagesOut += missed.length;
}

app.get('/events', { sse: 'only' }, async (request, reply) => {
  // Only the sockets that carried GET /events are SSE traffic (ledger.ts).
  ledger.claim(request.raw.socket, 'sse');
  sse.requests++;
  sse.connections++;
  reply.raw.once('close', () => {
    sse.connections--;
    sse.disconnects.client++;
  });
  reply.sse.keepAlive();
  reply.sse.onClose(() => open.delete(reply));
  // From here to open.add() nothing yields: no publish can fall between the hello, the replay and the Set.
  void reply.sse.send({ event: 'hello', data: JSON.stringify(hello(log.epoch, log.lastId)) }).catch(() => {});
  if (reply.sse.lastEventId !== null) {
    void reply.sse.replay(async (lastEventId) => replayTo(reply, cursorOf(lastEventId)));
  } else replayTo(reply, cursorOf((request.query as Record<string, unknown>).since));
  if (reply.sse.isConnected) open.add(reply);
});

// ---- Socket byte accounting ---------------------------------------------------------------------
app.server.on('connection', (socket: Socket) => ledger.track(socket));

// ---- Control port -------------------------------------------------------------------------------
const stats = () => ledger.snapshot(log.info());

await app.listen({ host: '127.0.0.1', port: 0 });
await serveReference({
  server: app.server,
  publish,
  stats,
  stop() {
    // Fastify's close waits for the streams in flight: cut them first.
    app.server.closeAllConnections();
    return app.close();
  },
});
