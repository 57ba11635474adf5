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
 * 1 KiB when the client accepts it, no per-message deflate).
 *
 * Control (POST /publish, GET /stats) is on a second port so every byte on the transport port is
 * Socket.IO traffic. IPC per bench/servers/protocol.ts.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Server, type Socket } from 'socket.io';
import { DEFAULTS } from '../../server/config.js';
import type { Message } from '../../server/protocol.js';
import type { StatsSnapshot, TransportCounters, TransportKey } from '../../server/stats.js';
import { controlServer, listenAnyPort, processMeter } from './control.js';
import { newCounters } from '../../server/counters.js';
import { serveIpc } from './protocol.js';

const RETENTION = DEFAULTS.retentionMessages;

type Transport = 'websocket' | 'polling';
const opts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { transport?: Transport };
if (opts.transport !== undefined && opts.transport !== 'websocket' && opts.transport !== 'polling') {
  console.error(`socketio bench server: BENCH_SERVER_OPTS.transport must be "websocket" or "polling", got ${JSON.stringify(opts.transport)}`);
  process.exit(1);
}

type Key = Extract<TransportKey, 'poll' | 'ws'>;
const counters: Record<TransportKey, TransportCounters> = {
  poll: newCounters(),
  'short-poll': newCounters(),
  sse: newCounters(),
  ws: newCounters(),
};
const keyOf = (transportName: string): Key => (transportName === 'websocket' ? 'ws' : 'poll');

// ---- The log ------------------------------------------------------------------------------------
let log: Message[] = [];
let lastId = 0;
const firstId = (): number => log[0]?.id ?? lastId + 1;

// ---- Socket.IO ----------------------------------------------------------------------------------
const server = createServer();
const io = new Server(server, {
  serveClient: false,
  ...(opts.transport ? { transports: [opts.transport] } : {}),
});

io.on('connection', (socket: Socket) => {
  // Runs synchronously right after Socket.IO adds the socket to the broadcast set, and publishes are
  // synchronous too: catch-up covers exactly up to lastId, every later id comes from io.emit.
  const since = Number((socket.handshake.auth as { since?: unknown }).since);
  if (!Number.isSafeInteger(since) || since < 0 || since >= lastId) return;
  const start = Math.max(0, since + 1 - firstId());
  for (let i = start; i < log.length; i++) socket.emit('message', log[i]!);
  counters[keyOf(socket.conn.transport.name)].messagesOut += log.length - start;
});

function publish(data: unknown): number {
  const m: Message = { id: ++lastId, ts: performance.timeOrigin + performance.now(), data };
  log.push(m);
  if (log.length >= 2 * RETENTION) log = log.slice(-RETENTION);
  io.emit('message', m);
  // With one transport every socket is on it; otherwise count each socket on its own transport.
  if (opts.transport) counters[keyOf(opts.transport)].messagesOut += io.of('/').sockets.size;
  else for (const s of io.of('/').sockets.values()) counters[keyOf(s.conn.transport.name)].messagesOut++;
  return m.id;
}

// ---- Socket byte and request accounting ---------------------------------------------------------
// Added after Socket.IO attached: engine.io re-registers earlier 'request' listeners behind its own
// and calls them only for paths it does not serve, while later ones see every request.
const sockets = new Map<NetSocket, Key>();
const defaultKey: Key = opts.transport === 'websocket' ? 'ws' : 'poll';
server.on('connection', (socket: NetSocket) => {
  sockets.set(socket, defaultKey);
  socket.once('close', () => {
    const key = sockets.get(socket)!;
    counters[key].bytesIn += socket.bytesRead;
    counters[key].bytesOut += socket.bytesWritten;
    sockets.delete(socket);
  });
});
server.on('request', (req: IncomingMessage) => {
  sockets.set(req.socket, 'poll');
  counters.poll.requests++;
});
server.on('upgrade', (req: IncomingMessage) => {
  sockets.set(req.socket, 'ws');
  counters.ws.requests++;
});

// ---- Control port -------------------------------------------------------------------------------
const processFigures = processMeter();

function stats(): StatsSnapshot {
  const transports = structuredClone(counters);
  for (const [socket, key] of sockets) {
    transports[key].bytesIn += socket.bytesRead;
    transports[key].bytesOut += socket.bytesWritten;
  }
  // An engine.io session is the connection, whichever transport it currently rides on.
  for (const s of io.of('/').sockets.values()) transports[keyOf(s.conn.transport.name)].connections++;
  return {
    transports,
    mixed: { sessions: 0, bytesOut: 0, bytesIn: 0 },
    feed: { kind: 'memory', epoch: 'socketio', lastId, firstId: firstId(), retained: lastId - firstId() + 1 },
    process: processFigures(),
  };
}

const control = controlServer({ publish, stats });
const port = await listenAnyPort(server);
const controlPort = await listenAnyPort(control);

serveIpc({
  port,
  controlPort,
  async stop() {
    // io.close() disconnects every client and closes the transport http server, which would still
    // wait on keep-alive sockets (a polling client's agent): cut those too.
    const closed = io.close();
    server.closeAllConnections();
    control.closeAllConnections();
    await Promise.all([closed, new Promise((r) => control.close(r))]);
  },
});
