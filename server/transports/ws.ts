/**
 * GET /ws?since=<id>[&epoch=<epoch>][&token=<token>][&compress=deflate|deflate-alone|off] — WebSocket (RFC 6455,
 * via @fastify/websocket + ws; permessage-deflate per connection: ws-deflate.ts).
 *
 * One text frame per message (the message JSON). Control frames have a top-level `"type"`: `hello`
 * (epoch and last id, on connect), `gap`, `reset`, `ack`, `error`. Clients may publish with
 * `{"type":"publish","data":…,"ref"?:…}` and get `{"type":"ack","id":n,"ref"?:…}`.
 * Browsers' upgrades are checked against the server's own origin and ALLOWED_ORIGINS (403 otherwise);
 * upgrades without `Origin` come from non-browser clients and are accepted. Frame shapes and close
 * codes: ../protocol.ts.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { WebSocket } from 'ws';
import { mistakeLogger } from '../client-log.js';
import { ERRORS, HttpErrors, type ErrorCode } from '../errors.js';
import type { Message } from '../feed/types.js';
import { checkSendKey, publishBatch, publishChecked, sendItems } from '../publish.js';
import { SendBudget } from '../send-budget.js';
import { checkToken, mayPublish } from '../token.js';
import type { DisconnectReason } from '../stats.js';
import {
  ack,
  batchAck,
  errorFrame,
  feedDown,
  hello,
  isErrorCode,
  parsePublishFrame,
  refOf,
  WS_END,
  wsControl,
  wsWire,
  type Announcement,
  type Control,
  type PublishFrame,
  type SendItem,
} from '../protocol.js';
import { drainedOrClosed, Hub, isFeedError, type Subscriber } from './hub.js';
import { parseCompress, parseCursor, parseEpoch, startCursor, type Query, type TransportOptions } from './params.js';
import { sendWsBatch } from './shared-write.js';
import { spreadClose, spreadsDone } from './shutdown.js';
import { DeflatePerConnection, deflateOptions, wsDeflateFor, type WsDeflate } from './ws-deflate.js';

/** RFC 6455 §4.2.1: the key is 16 random bytes in base64; versions 13 (and the draft's 8, as `ws` accepts). */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

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

/**
 * @fastify/websocket routes each upgrade through Fastify with a ServerResponse of its own assigned to
 * the socket, which nothing writes once the upgrade succeeded but which the socket then keeps (and
 * with it the request, its headers and Fastify's request and reply) for the connection's whole life.
 * Detached, they are garbage once the handler returns: about 3 KiB less per idle connection.
 */
function detachRoutingResponse(socket: Socket): void {
  const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (res && typeof res.detachSocket === 'function') res.detachSocket(socket);
}

export default fp(
  async function wsTransport(app, opts: TransportOptions) {
    const { feed, tail, config, stats } = opts;
    const extraWork = opts.extraWork?.ws;
    const counters = stats.transports.ws;
    /** The server's own permessage-deflate mode (resolveConfig checked the value). */
    const wsDeflate = config.wsDeflate as WsDeflate;
    // Each batch is framed once, headers included, and that one Buffer goes to every socket that can
    // take it as is (shared-write.ts), as Socket.IO does with its pre-encoded frames.
    const hub = new Hub<Buffer>(feed, tail, {
      encode: wsWire,
      sizeOf: (wire) => wire.length,
      batchMax: config.pollBatchMax,
      maxBufferedBytes: config.maxBufferedBytes,
      drainTimeoutMs: config.catchUpDrainMs,
      onError: (err) => app.log.error({ err }, 'WebSocket fan-out failed'),
    });
    const peers = new Set<WsPeer>();
    const mistake = mistakeLogger(app.log);
    const errorRate = config.wsErrorRepliesPerSec;
    // A protocol error on an open socket (bad opcode, invalid UTF-8, an oversized frame) is the
    // client's mistake: ws has already closed with the right code; log one line, no stack.
    function onWsError(error: Error, ws: WebSocket): void {
      mistake('bad WebSocket frame', { code: (error as { code?: string }).code, reason: error.message });
      ws.terminate();
    }

    class WsPeer implements Subscriber<Buffer> {
      closed = false;
      alive = true;
      /** Token bucket of error replies: `errorRate` per second, bursts of `errorRate`. */
      #errorTokens = errorRate;
      #tokensAt = performance.now();
      /** Its publish frames' budget (config sendMessagesPerSec, sendBytesPerSec), made on its first publish. */
      sendBudget: SendBudget | undefined;
      /**
       * Its sends' appends, one after another: a frame's messages are in the feed before the next
       * frame's, in the order the peer sent them (a batch appends over several turns of the event loop).
       */
      appending: Promise<void> = Promise.resolve();
      constructor(
        public cursor: number,
        readonly ws: WebSocket,
        readonly socket: Socket,
        readonly canPublish: boolean,
      ) {}
      /**
       * Every write that is not a feed message (hello, announcements, acks, errors) goes through here and
       * counts against maxBufferedBytes like messages do: a peer that sends but never reads is cut as a
       * slow consumer instead of making the server queue its answers without bound.
       */
      send(frame: Control): void {
        if (this.closed) return;
        this.ws.send(wsControl(frame));
        if (this.ws.bufferedAmount > config.maxBufferedBytes) {
          hub.leave(this);
          this.kill('slow-consumer');
        }
      }
      /** Whether one more frame may get an error answer now; past the budget the peer is closed 1008. */
      spendErrorReply(): boolean {
        const now = performance.now();
        this.#errorTokens = Math.min(errorRate, this.#errorTokens + ((now - this.#tokensAt) * errorRate) / 1000);
        this.#tokensAt = now;
        if (this.#errorTokens < 1) return false;
        this.#errorTokens -= 1;
        return true;
      }
      deliver(messages: readonly Message[], encoded: Buffer | undefined): void {
        sendWsBatch(this.ws, this.socket, messages, encoded);
        counters.messagesOut += messages.length;
        extraWork?.(messages);
      }
      announce(a: Announcement): void {
        this.send(a);
      }
      bufferedBytes(): number {
        return this.ws.bufferedAmount;
      }
      async drained(): Promise<void> {
        if (this.closed || this.socket.writableLength === 0) return;
        await drainedOrClosed(this.socket, this.ws);
      }
      kill(reason: DisconnectReason): void {
        if (this.closed) return;
        this.closed = true;
        counters.disconnects[reason]++;
        if (reason === 'client') return;
        const end = WS_END[reason];
        if (!end.frame) {
          counters.cut++;
          this.ws.terminate();
          return;
        }
        // The close frame queues behind whatever the peer has not read yet: a stalled reader never
        // gets to it, and is cut (counted in `cut`) when it has not finished the handshake in time.
        this.ws.close(end.code, end.reason);
        setTimeout(() => {
          if (this.ws.readyState !== this.ws.CLOSED) {
            counters.cut++;
            this.ws.terminate();
          }
        }, config.wsCloseGraceMs).unref();
      }
    }

    await app.register(websocket, {
      options: { maxPayload: config.maxPayloadBytes, perMessageDeflate: deflateOptions(wsDeflate) },
      errorHandler: onWsError,
      // Our own shutdown: close every socket with 1001 and a reason, then stop the ws server.
      // With shutdownSpreadMs, spread over that window; waits for the SSE streams' spread too.
      preClose(done) {
        void spreadClose(app, [...peers], config.shutdownSpreadMs, (p) => p.kill('shutdown'));
        void spreadsDone(app).then(() => {
          app.server.removeAllListeners('upgrade');
          void Promise.all([
            deflate.closeOthers(),
            new Promise<void>((resolve) => app.websocketServer.close(() => resolve())),
          ]).then(() => done());
        });
      },
    });

    // Each upgrade negotiates the permessage-deflate its `compress` asked for (ws-deflate.ts).
    const deflate = new DeflatePerConnection(app.websocketServer, wsDeflate);

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
        preValidation: async (request, reply) => {
          // Refused here with our error body, before ws would answer a bad handshake in plain text.
          const h = request.headers;
          if (h.upgrade?.toLowerCase() !== 'websocket') {
            reply.header('upgrade', 'websocket');
            throw new HttpErrors.UPGRADE_REQUIRED();
          }
          const key = h['sec-websocket-key'];
          if (typeof key !== 'string' || !WS_KEY.test(key.trim()))
            throw new HttpErrors.BAD_UPGRADE('Sec-WebSocket-Key must be 16 bytes in base64');
          const version = h['sec-websocket-version'];
          if (version !== '13' && version !== '8') {
            reply.header('sec-websocket-version', '13');
            throw new HttpErrors.BAD_UPGRADE('Sec-WebSocket-Version must be 13');
          }
          const q = request.query as Query;
          parseCursor(q.since);
          parseEpoch(q.epoch);
          const compress = parseCompress(q.compress, 'ws', config.compressionOptIn);
          if (!originAllowed(request, config.allowedOrigins)) {
            throw new HttpErrors.ORIGIN_FORBIDDEN(JSON.stringify(request.headers.origin));
          }
          // A wrong token is refused; no token means a read-only connection.
          if (checkToken(config.publishToken, request, true) === 'invalid') throw new HttpErrors.UNAUTHORIZED();
          deflate.choose(request.raw, wsDeflateFor(compress, wsDeflate));
        },
      },
      (ws, request) => {
        const q = request.query as Query;
        const socket = request.raw.socket;
        const release = stats.claimConnection(request.raw, 'ws');
        detachRoutingResponse(socket);
        // @fastify/websocket's own 'error' listener holds the request and reply for the connection's
        // life only to pass them to errorHandler, which does not use them: the same handling, without.
        ws.removeAllListeners('error');
        ws.on('error', (error) => onWsError(error, ws));
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
          release();
        });
        const info = feed.info();
        peer.send(hello(info.epoch, info.lastId));
        hub.join(peer, parseEpoch(q.epoch)).catch((err: unknown) => {
          // The store is unreachable: say so, then close with 1001 and the code as reason. Anything
          // else is a bug of ours: logged, and closed 1011 without blaming the store.
          if (isFeedError(err)) {
            peer.announce(feedDown((err as Error).message));
            peer.kill('feed-down');
          } else {
            app.log.error({ err }, 'WebSocket catch-up failed');
            peer.kill('error');
          }
        });
      },
    );

    const sendError = (peer: WsPeer, code: ErrorCode, message: string, ref?: unknown) =>
      peer.send(errorFrame(code, message, ref));

    /** A client mistake gets an error answer while its budget lasts; past it the peer is closed 1008. */
    const refuse = (peer: WsPeer, code: ErrorCode, message: string, ref?: unknown) => {
      if (!peer.spendErrorReply()) {
        mistake('too many refused WebSocket frames', { limitPerSec: errorRate });
        peer.kill('too-many-errors');
        return;
      }
      sendError(peer, code, message, ref);
    };

    async function onFrame(peer: WsPeer, data: Buffer, isBinary: boolean): Promise<void> {
      if (peer.closed) return;
      let frame: unknown;
      try {
        if (isBinary) throw new Error('binary');
        frame = JSON.parse(data.toString('utf8'));
      } catch {
        refuse(peer, ERRORS.BAD_FRAME.code, ERRORS.BAD_FRAME.message);
        return;
      }
      const f = parsePublishFrame(frame);
      if (!f) {
        refuse(peer, ERRORS.BAD_FRAME.code, ERRORS.BAD_FRAME.message, refOf(frame));
        return;
      }
      if (!peer.canPublish) {
        refuse(peer, ERRORS.UNAUTHORIZED.code, ERRORS.UNAUTHORIZED.message, f.ref);
        return;
      }
      /** A client mistake (4xx) is refused on the error budget; a store outage is answered plainly. */
      const answerError = (err: unknown) => {
        const e = err as { code?: string; message: string; statusCode?: number };
        const code = isErrorCode(e.code) ? e.code : ERRORS.INTERNAL.code;
        if (e.statusCode !== undefined && e.statusCode < 500) refuse(peer, code, e.message, f.ref);
        else sendError(peer, code, e.message, f.ref);
      };
      let items: SendItem[] | undefined;
      try {
        if ('batch' in f) items = sendItems(f.batch, config.sendBatchMax);
        else checkSendKey(f.key);
      } catch (err) {
        answerError(err);
        return;
      }
      // A refused send costs the budget nothing; its error answer counts against wsErrorRepliesPerSec,
      // so a client that keeps flooding is closed 1008. A batch spends one message per item.
      peer.sendBudget ??= new SendBudget(config.sendMessagesPerSec, config.sendBytesPerSec);
      const waitMs = peer.sendBudget.take(data.length, items?.length ?? 1);
      if (waitMs > 0) {
        refuse(peer, ERRORS.SEND_RATE.code, new HttpErrors.SEND_RATE(String(waitMs)).message, f.ref);
        return;
      }
      const append = async () => {
        try {
          if (items !== undefined) {
            peer.send(batchAck(await publishBatch(feed, items, config.maxNestingDepth, config.sendKeyTtlMs), f.ref));
            return;
          }
          const one = f as PublishFrame;
          const key = one.key === undefined ? undefined : { key: one.key, ttlMs: config.sendKeyTtlMs };
          const sent = await publishChecked(feed, one.data, config.maxNestingDepth, key);
          peer.send(ack(sent.message.id, f.ref, sent.duplicate));
        } catch (err) {
          answerError(err);
        }
      };
      peer.appending = peer.appending.then(append);
      await peer.appending;
    }
  },
  { name: 'lab-ws', fastify: '5.x' },
);
