/**
 * Socket.IO clients (socket.io-client 4), one engine.io connection each (`forceNew`), restricted to
 * one transport. The cursor rides in `auth`, read again on every reconnect, so a reconnect resumes
 * after the last message received instead of starting over or from now.
 *
 * Request counting is exact and cheap: the transport classes socket.io-client ships for Node are
 * subclassed, and every HTTP request (polling: each poll and each POST) or WebSocket upgrade passes
 * through the one overridden method.
 */
import { Agent } from 'node:http';
import { io, NodeWebSocket, NodeXHR, type Socket } from 'socket.io-client';
import type { Message } from '../../server/protocol.js';
import { headersFor } from './http.js';
import { scheduledMs } from './parse.js';
import type { Sending } from './senders.js';
import type { ClientGroup, ClientGroupOptions } from './types.js';

/** How long an emit waits for its acknowledgement before it fails (the chat runner then retries). */
const ACK_TIMEOUT_MS = 10_000;

/** `onConnect`: called on every 'connect' of client `i` (the first and each reconnect). */
function socketioClients(
  opts: ClientGroupOptions,
  transport: 'websocket' | 'polling',
  onConnect?: (i: number) => void,
): ClientGroup & { sending: Sending } {
  const { baseUrl, count, since, sink } = opts;
  // The same browser header set as the lab's clients send (Node's engine.io-client sends extraHeaders
  // on every polling request and on the WebSocket upgrade) — but for polling without Accept-Encoding:
  // engine.io gzips polling answers over 1 KiB when asked, and Node's polling client
  // (xmlhttprequest-ssl) cannot decode them (every such answer was a "transport error", messages
  // lost). A browser would decode them, and Socket.IO would spend CPU compressing: its polling figures
  // leave that cost out (the README says so).
  const headers = headersFor(transport === 'websocket' ? 'ws' : 'poll', baseUrl, opts.http);
  const extraHeaders =
    transport === 'polling'
      ? Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'accept-encoding'))
      : headers;
  let requests = 0;

  class CountingWebSocket extends NodeWebSocket {
    override createSocket(uri: string, protocols: string | string[] | undefined, o: Record<string, unknown>): unknown {
      requests++;
      return super.createSocket(uri, protocols, o);
    }
  }
  class CountingXHR extends NodeXHR {
    override request(o?: Record<string, unknown>) {
      requests++;
      return super.request(o);
    }
  }
  // xmlhttprequest-ssl (socket.io-client's Node polling) opens a new TCP connection per request unless
  // given an agent; a keep-alive agent matches what a browser does and what the lab's poll clients do,
  // and keeps thousands of pollers from running the machine out of ephemeral ports.
  const agent = transport === 'polling' ? new Agent({ keepAlive: true }) : undefined;

  const sockets: Socket[] = [];
  const connected: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    let last = since;
    const socket = io(baseUrl, {
      transports: [transport === 'websocket' ? CountingWebSocket : CountingXHR],
      forceNew: true,
      reconnection: true,
      auth: (cb) => cb({ since: last }),
      extraHeaders,
      // Typed `string | boolean` (the browser build's view); the Node build hands it to http.request.
      ...(agent ? { agent: agent as unknown as boolean } : {}),
    });
    sockets.push(socket);
    // The reference server emits the lab's message objects as they are (bench/servers/socketio.ts).
    socket.on('message', (msg: Message) => {
      if (msg.id > last) last = msg.id;
      sink.message(i, msg.id, scheduledMs(msg.data));
    });
    socket.on('connect_error', (err) => sink.error(i, err));
    socket.on('disconnect', (reason) => {
      // A disconnect we did not ask for; socket.io-client reconnects by itself (reconnection: true).
      if (reason !== 'io client disconnect') sink.error(i, new Error(`socket.io disconnect: ${reason}`));
    });
    if (onConnect) socket.on('connect', () => onConnect(i));
    connected.push(new Promise((resolve) => socket.once('connect', () => resolve())));
  }

  return {
    ready: Promise.all(connected).then(() => {}),
    requests: () => requests,
    // An emit with acknowledgement on the client's connection (bench/servers/socketio.ts answers `{id}`).
    sending: {
      async send(client, data) {
        const answer = (await sockets[client]!.timeout(ACK_TIMEOUT_MS).emitWithAck('send', data)) as { id: number };
        return { ok: true, id: answer.id, duplicate: false };
      },
      ownWire: () => ({ bytesUp: 0, bytesDown: 0, requests: 0 }),
      close: async () => {},
    },
    async close() {
      await Promise.all(
        sockets.map((socket) => {
          const engine = socket.io.engine;
          // The manager closes its engine once its only socket disconnects; wait for that.
          const closed =
            engine === undefined || engine.readyState === 'closed'
              ? Promise.resolve()
              : new Promise<void>((resolve) => engine.once('close', () => resolve()));
          socket.disconnect();
          return closed;
        }),
      );
      agent?.destroy();
    },
  };
}

export const socketioWebsocketClients = (opts: ClientGroupOptions) => socketioClients(opts, 'websocket');
export const socketioPollingClients = (opts: ClientGroupOptions) => socketioClients(opts, 'polling');
/** Polling clients that also report each client's every 'connect' (bench/field/sticky.ts counts who ever connected). */
export const socketioPollingClientsWatched = (onConnect: (i: number) => void) => (opts: ClientGroupOptions) =>
  socketioClients(opts, 'polling', onConnect);
