/**
 * The Socket.IO 4 reference: the same feed served the way a typical Socket.IO application serves it,
 * so the bench can put the lab next to the library most Node developers reach for.
 *
 * BENCH_SERVER_OPTS `{ "transport": "websocket" | "polling" }` restricts Socket.IO to that one
 * transport (absent: Socket.IO's default, polling then upgrade to WebSocket). A client passes
 * `auth: { since }`; on connection it is sent the retained messages after `since`, then every live
 * message, each as `socket.emit('message', {id, ts, data})`. Live delivery is one `io.emit` per
 * publish, as a Socket.IO user would write it (Socket.IO encodes a broadcast packet once for all).
 * Socket.IO's own defaults are kept (pingInterval 25 s, HTTP compression of polling answers over
 * 1 KiB when the client accepts it, no per-message deflate). A client's send (the chat workload) is an
 * emit with acknowledgement, `socket.emit('send', data, ack)`, published as any message and
 * acknowledged with its id, as a Socket.IO chat is usually written (no idempotency: Socket.IO has none).
 *
 * Control (POST /publish, GET /stats) is on a second port so every byte on the transport port is
 * Socket.IO traffic. IPC per bench/servers/ipc.ts.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { Server, type Socket } from 'socket.io';
import type { StatsSnapshot, TransportKey } from '../../server/stats.js';
import { serveReference } from './control.js';
import { Ledger } from './ledger.js';
import { RetainedLog } from './log.js';

type Transport = 'websocket' | 'polling';
const opts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { transport?: Transport };
if (opts.transport !== undefined && opts.transport !== 'websocket' && opts.transport !== 'polling') {
  console.error(
    `socketio bench server: BENCH_SERVER_OPTS.transport must be "websocket" or "polling", got ${JSON.stringify(opts.transport)}`,
  );
  process.exit(1);
}

type Key = Extract<TransportKey, 'poll' | 'ws'>;
const ledger = new Ledger();
const { counters } = ledger;
const keyOf = (transportName: string): Key => (transportName === 'websocket' ? 'ws' : 'poll');

// ---- The log ------------------------------------------------------------------------------------
const log = new RetainedLog('socketio');

// ---- Socket.IO ----------------------------------------------------------------------------------
const server = createServer();
const io = new Server(server, {
  serveClient: false,
  ...(opts.transport ? { transports: [opts.transport] } : {}),
});

io.on('connection', (socket: Socket) => {
  // Runs synchronously right after Socket.IO adds the socket to the broadcast set, and publishes are
  // synchronous too: catch-up covers exactly up to lastId, every later id comes from io.emit.
  socket.on('send', (data: unknown, ack?: (answer: { id: number }) => void) => {
    const id = publish(data);
    if (typeof ack === 'function') ack({ id });
  });
  const since = Number((socket.handshake.auth as { since?: unknown }).since);
  if (!Number.isSafeInteger(since) || since < 0 || since >= log.lastId) return;
  const missed = log.after(since);
  for (const m of missed) socket.emit('message', m);
  counters[keyOf(socket.conn.transport.name)].messagesOut += missed.length;
});

function publish(data: unknown): number {
  const m = log.append(data);
  io.emit('message', m);
  // With one transport every socket is on it; otherwise count each socket on its own transport.
  if (opts.transport) counters[keyOf(opts.transport)].messagesOut += io.of('/').sockets.size;
  else for (const s of io.of('/').sockets.values()) counters[keyOf(s.conn.transport.name)].messagesOut++;
  return m.id;
}

// ---- Socket byte and request accounting ---------------------------------------------------------
// Added after Socket.IO attached: engine.io re-registers earlier 'request' listeners behind its own
// and calls them only for paths it does not serve, while later ones see every request.
const defaultKey: Key = opts.transport === 'websocket' ? 'ws' : 'poll';
server.on('connection', (socket: NetSocket) => ledger.track(socket, defaultKey));
server.on('request', (req: IncomingMessage) => {
  ledger.claim(req.socket, 'poll');
  counters.poll.requests++;
});
server.on('upgrade', (req: IncomingMessage) => {
  ledger.claim(req.socket, 'ws');
  counters.ws.requests++;
});

// ---- Control port -------------------------------------------------------------------------------
function stats(): StatsSnapshot {
  const snapshot = ledger.snapshot(log.info());
  // An engine.io session is the connection, whichever transport it currently rides on.
  for (const s of io.of('/').sockets.values()) snapshot.transports[keyOf(s.conn.transport.name)].connections++;
  return snapshot;
}

await serveReference({
  server,
  publish,
  stats,
  stop() {
    // io.close() disconnects every client and closes the transport http server, which would still
    // wait on keep-alive sockets (a polling client's agent): cut those too, then wait.
    const closed = io.close();
    server.closeAllConnections();
    return closed;
  },
});
