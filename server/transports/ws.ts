/**
 * GET /ws?since=<id>[&epoch=<epoch>][&token=<token>] — WebSocket (RFC 6455, via @fastify/websocket + ws).
 *
 * One text frame per message (the message JSON). Control frames have a top-level `"type"`: `hello`
 * (epoch and last id, on connect), `gap`, `reset`, `ack`, `error`. Clients may publish with
 * `{"type":"publish","data":…,"ref"?:…}` and get `{"type":"ack","id":n,"ref"?:…}`.
 * Browsers' upgrades are checked against the server's own origin and ALLOWED_ORIGINS (403 otherwise);
 * upgrades without `Origin` come from non-browser clients and are accepted.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { WebSocket } from 'ws';
import { ERRORS, HttpErrors, WS_CLOSE } from '../errors.js';
import type { Message } from '../feed/types.js';
import { appendOrFail, checkToken, mayPublish } from '../publish.js';
import type { DisconnectReason } from '../stats.js';
import { wsFrames } from './encode.js';
import { Hub, type Announcement, type Subscriber } from './hub.js';
import { parseCursor, parseEpoch, startCursor, type Query, type TransportOptions } from './params.js';

/** Close reasons must fit in 123 bytes (RFC 6455 §5.5: control frame payload ≤ 125, 2 for the code). */
const CLOSE_FOR: Record<Exclude<DisconnectReason, 'client'>, [number, string]> = {
  'slow-consumer': [WS_CLOSE.TRY_AGAIN_LATER, ERRORS.SLOW_CONSUMER.code],
  shutdown: [WS_CLOSE.GOING_AWAY, ERRORS.SHUTTING_DOWN.code],
  'pong-timeout': [WS_CLOSE.POLICY_VIOLATION, 'LAB_PONG_TIMEOUT'],
  error: [WS_CLOSE.GOING_AWAY, ERRORS.FEED_UNAVAILABLE.code],
};

/** Message payloads are pre-encoded Buffers; they go out as text frames (one options object, not one per frame). */
const TEXT_FRAME = Object.freeze({ binary: false });

function originAllowed(request: FastifyRequest, allowed: readonly string[]): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

export default fp(
  async function wsTransport(app, opts: TransportOptions) {
    const { feed, config, stats } = opts;
    const counters = stats.transports.ws;
    const hub = new Hub<Buffer[]>(feed, {
      encode: wsFrames,
      batchMax: config.pollBatchMax,
      maxBufferedBytes: config.maxBufferedBytes,
    });
    const peers = new Set<WsPeer>();

    class WsPeer implements Subscriber<Buffer[]> {
      closed = false;
      alive = true;
      constructor(
        public cursor: number,
        readonly ws: WebSocket,
        readonly socket: Socket,
        readonly canPublish: boolean,
      ) {}
      deliver(messages: readonly Message[], encoded: Buffer[] | undefined): void {
        const frames = encoded ?? wsFrames(messages);
        // One corked write per tick: all of this batch's frames leave in one writev.
        this.socket.cork();
        for (const f of frames) this.ws.send(f, TEXT_FRAME);
        this.socket.uncork();
        counters.messagesOut += messages.length;
      }
      announce(a: Announcement): void {
        this.ws.send(JSON.stringify(a));
      }
      bufferedBytes(): number {
        return this.ws.bufferedAmount;
      }
      async drained(): Promise<void> {
        if (this.closed || this.socket.writableLength === 0) return;
        await Promise.race([once(this.socket, 'drain'), once(this.ws, 'close')]);
      }
      kill(reason: DisconnectReason): void {
        if (this.closed) return;
        this.closed = true;
        counters.disconnects[reason]++;
        if (reason === 'client') return;
        if (reason === 'pong-timeout') {
          this.ws.terminate();
          return;
        }
        const [code, why] = CLOSE_FOR[reason];
        this.ws.close(code, why);
        // A peer that does not finish the closing handshake (a stalled reader never will) is cut.
        setTimeout(() => this.ws.terminate(), config.wsCloseGraceMs).unref();
      }
    }

    await app.register(websocket, {
      options: { maxPayload: config.maxPayloadBytes, perMessageDeflate: false },
      // Our own shutdown: close every socket with 1001 and a reason, then stop the ws server.
      preClose(done) {
        for (const p of [...peers]) p.kill('shutdown');
        app.server.removeAllListeners('upgrade');
        app.websocketServer.close(() => done());
      },
    });

    const ping = setInterval(() => {
      for (const p of peers) {
        if (p.closed) continue;
        if (!p.alive) {
          p.kill('pong-timeout');
          continue;
        }
        p.alive = false;
        p.ws.ping();
      }
    }, config.wsPingIntervalMs).unref();
    app.addHook('onClose', async () => {
      clearInterval(ping);
      hub.close();
    });

    app.get(
      '/ws',
      {
        websocket: true,
        // Runs before the upgrade, so a refusal is a plain HTTP answer with our error body.
        preValidation: async (request) => {
          const q = request.query as Query;
          parseCursor(q.since);
          parseEpoch(q.epoch);
          if (!originAllowed(request, config.allowedOrigins)) {
            throw new HttpErrors.ORIGIN_FORBIDDEN(JSON.stringify(request.headers.origin));
          }
          // A wrong token is refused; no token means a read-only connection.
          if (checkToken(config.publishToken, request, true) === 'invalid') throw new HttpErrors.UNAUTHORIZED();
        },
      },
      (ws, request) => {
        const q = request.query as Query;
        const socket = request.raw.socket;
        stats.claim(socket, 'ws', true);
        counters.requests++;
        counters.connections++;
        const peer = new WsPeer(
          startCursor(feed, parseCursor(q.since)),
          ws,
          socket,
          mayPublish(checkToken(config.publishToken, request, true)),
        );
        peers.add(peer);
        // Listeners first, synchronously: a frame that arrives before them would be lost.
        ws.on('message', (data, isBinary) => void onFrame(peer, data as Buffer, isBinary));
        ws.on('pong', () => {
          peer.alive = true;
        });
        ws.on('close', () => {
          peer.kill('client');
          peers.delete(peer);
          hub.leave(peer);
          counters.connections--;
          stats.settle(socket, true);
        });
        const info = feed.info();
        ws.send(JSON.stringify({ type: 'hello', epoch: info.epoch, lastId: info.lastId }));
        hub.join(peer, parseEpoch(q.epoch)).catch((err: unknown) => {
          // The store is unreachable: say so, then close with 1001 and the code as reason.
          if (!peer.closed) peer.announce({ type: 'feed-down', code: 'LAB_ERR_FEED_UNAVAILABLE', message: (err as Error).message });
          peer.kill('error');
        });
      },
    );

    const sendError = (peer: WsPeer, code: string, message: string, ref?: unknown) =>
      peer.ws.send(JSON.stringify({ type: 'error', code, message, ...(ref === undefined ? {} : { ref }) }));

    async function onFrame(peer: WsPeer, data: Buffer, isBinary: boolean): Promise<void> {
      let frame: unknown;
      try {
        if (isBinary) throw new Error('binary');
        frame = JSON.parse(data.toString('utf8'));
      } catch {
        sendError(peer, ERRORS.BAD_FRAME.code, ERRORS.BAD_FRAME.message);
        return;
      }
      const f = frame as { type?: unknown; data?: unknown; ref?: unknown };
      if (frame === null || typeof frame !== 'object' || f.type !== 'publish' || !('data' in f)) {
        sendError(peer, ERRORS.BAD_FRAME.code, ERRORS.BAD_FRAME.message, f?.ref);
        return;
      }
      if (!peer.canPublish) {
        sendError(peer, ERRORS.UNAUTHORIZED.code, ERRORS.UNAUTHORIZED.message, f.ref);
        return;
      }
      try {
        const message = await appendOrFail(feed, f.data);
        peer.ws.send(JSON.stringify({ type: 'ack', id: message.id, ...(f.ref === undefined ? {} : { ref: f.ref }) }));
      } catch (err) {
        const e = err as { code?: string; message: string };
        sendError(peer, e.code ?? ERRORS.INTERNAL.code, e.message, f.ref);
      }
    }
  },
  { name: 'lab-ws', fastify: '5.x' },
);
