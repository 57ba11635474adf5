/**
 * GET /poll?since=<id>&timeout=<ms>[&epoch=<epoch>] — HTTP long polling.
 *
 * Messages after `since` exist → answered at once with all of them up to `pollBatchMax`. None → the
 * request is held until the next publish or `timeout` (default 25 s) and answered empty. `timeout=0`
 * is plain short polling and is counted apart (`short-poll`). The client's cursor and the feed's
 * retention are the whole buffer: nothing is queued per client.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Message } from '../feed/types.js';
import { HttpErrors } from '../errors.js';
import type { DisconnectReason } from '../stats.js';
import { pollAnswer, pollBody, type Announcement } from '../protocol.js';
import { Hub, isFeedError, readAfter, type Subscriber } from './hub.js';

import {
  isHttp2,
  parseCursor,
  parseEpoch,
  parseTimeout,
  startCursor,
  type Query,
  type TransportOptions,
} from './params.js';

/** A message's JSON beyond its data, at most: `{"id":…,"ts":…,"data":}` and the comma between messages. */
const MESSAGE_FRAME_BYTES = 64;
/** The headers of every poll answer, in Fastify's order: what a client caches, what it parses. */
const POLL_HEAD: readonly string[] = Object.freeze([
  'cache-control',
  'no-store',
  'content-type',
  'application/json; charset=utf-8',
]);

export default fp(
  async function pollTransport(app, opts: TransportOptions) {
    const { feed, tail, config, stats, extraWork } = opts;
    const epochOf = () => feed.info().epoch;
    const memory = feed.kind === 'memory';
    // Every poller held at the same cursor gets the same bytes: encode the answer once per batch, to a
    // Buffer, so that no answer converts (and measures) the same string again.
    const hub = new Hub<Buffer>(feed, tail, {
      encode: (messages) => Buffer.from(pollBody(pollAnswer(messages, messages[messages.length - 1]!.id, epochOf()))),
      batchMax: config.pollBatchMax,
      // A poll is answered once, whole: nothing queues per client beyond that one answer.
      maxBufferedBytes: Number.POSITIVE_INFINITY,
      drainTimeoutMs: config.catchUpDrainMs,
      onError: (err) => app.log.error({ err }, 'poll fan-out failed'),
    });
    const held = new Set<HeldPoll>();
    const expire = (poll: HeldPoll) => poll.expire();

    /**
     * The longest prefix of `messages` whose answer stays within maxBufferedBytes, one message at least:
     * what one poll may leave queued on its connection, the bound a stream's queue has (node:http reads no
     * further pipelined request while an answer waits to drain). The client gets the rest on its next
     * poll, from this answer's lastId. Free when the batch cannot reach the bound.
     */
    const fitting = (messages: readonly Message[]): readonly Message[] => {
      if (messages.length * (config.maxPayloadBytes + MESSAGE_FRAME_BYTES) <= config.maxBufferedBytes) return messages;
      let bytes = 0;
      for (let i = 0; i < messages.length; i++) {
        bytes += Buffer.byteLength(JSON.stringify(messages[i])) + 1;
        if (bytes > config.maxBufferedBytes && i > 0) return messages.slice(0, i);
      }
      return messages;
    };
    /** The last oversized batch the hub handed the held polls, and the answer that fits: built once for all of them. */
    let trimmed: { batch: readonly Message[]; fit: readonly Message[]; body: Buffer } | undefined;
    const fitted = (batch: readonly Message[], encoded: Buffer | undefined) => {
      if (encoded !== undefined && encoded.length <= config.maxBufferedBytes) return { fit: batch, body: encoded };
      if (trimmed?.batch !== batch) {
        const fit = fitting(batch);
        trimmed = { batch, fit, body: Buffer.from(pollBody(pollAnswer(fit, fit[fit.length - 1]!.id, epochOf()))) };
      }
      return trimmed;
    };

    class HeldPoll implements Subscriber<Buffer> {
      closed = false;
      readonly #timer: NodeJS.Timeout;
      constructor(
        public cursor: number,
        readonly reply: FastifyReply,
        timeoutMs: number,
      ) {
        // One function for every poll's timer, the poll as its argument: no closure per held poll.
        this.#timer = setTimeout(expire, timeoutMs, this);
        held.add(this);
      }
      /** The hold ran out: answer empty. */
      expire(): void {
        this.#answer([], undefined);
      }
      deliver(messages: readonly Message[], encoded: Buffer | undefined): void {
        const { fit, body } = fitted(messages, encoded);
        this.#answer(fit, body);
      }
      /** While held, only a store event can need telling: answer at once so the client hears it. */
      announce(a: Announcement): void {
        switch (a.type) {
          case 'gap':
          case 'reset': {
            if (this.closed) return;
            this.#finish();
            send(this.reply, pollBody(pollAnswer([], a.type === 'gap' ? a.firstId - 1 : 0, epochOf(), [a])));
            break;
          }
          case 'feed-down':
            if (this.closed) return;
            this.#finish();
            this.reply.send(new HttpErrors.FEED_UNAVAILABLE(a.message));
            break;
          case 'feed-up':
            break;
          default:
            a satisfies never;
        }
      }
      kill(reason: DisconnectReason): void {
        if (this.closed) return;
        stats.transports.poll.disconnects[reason]++;
        if (reason === 'shutdown' && !isHttp2(this.reply.request)) this.reply.header('connection', 'close');
        this.#answer([], undefined);
      }
      /** The client went away before an answer: forget it. */
      abandon(): void {
        if (this.closed) return;
        stats.transports.poll.disconnects.client++;
        this.#finish();
      }
      #finish(): void {
        this.closed = true;
        clearTimeout(this.#timer);
        hub.leave(this);
        held.delete(this);
      }
      #answer(messages: readonly Message[], encoded: Buffer | undefined): void {
        if (this.closed) return;
        this.#finish();
        stats.transports.poll.messagesOut += messages.length;
        extraWork?.poll?.(messages);
        const last = messages[messages.length - 1];
        const body = encoded ?? pollBody(pollAnswer(messages, last ? last.id : this.cursor, epochOf()));
        send(this.reply, body);
      }
    }

    function send(reply: FastifyReply, body: string | Buffer): void {
      if (reply.request.method !== 'GET' || isHttp2(reply.request)) {
        reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body);
        return;
      }
      // The answer of every poll: straight to node:http, the header list pre-built but for what a hook
      // set (CORS, Connection: close on shutdown) and the length; the same bytes as Fastify's send.
      const head: string[] = [];
      for (const [name, value] of Object.entries(reply.getHeaders()))
        if (value !== undefined) head.push(name, String(value));
      head.push(...POLL_HEAD, 'content-length', String(Buffer.byteLength(body)));
      reply.hijack();
      reply.raw.writeHead(200, head);
      reply.raw.end(body);
    }

    // Not async, and never `return reply`: a held poll is answered later through reply.send, and an
    // async handler's promise resolving to the reply would make Fastify wait on the response with
    // end-of-stream listeners of its own for as long as the poll is held.
    // settlesBytes: its close listener settles the connection's bytes (stats.ts settleEveryRoute), no hook.
    app.get('/poll', { config: { settlesBytes: true } }, (request: FastifyRequest, reply): void => {
      const q = request.query as Query;
      const since = parseCursor(q.since);
      const epoch = parseEpoch(q.epoch);
      const timeoutMs = parseTimeout(q.timeout, config.pollTimeoutMs, config.pollMaxTimeoutMs);
      // HEAD: checked like GET, then the headers of an empty answer at once: never held, never counted.
      if (request.method === 'HEAD') {
        reply.raw.once('close', () => stats.settle(request.raw, true));
        send(reply, pollBody(pollAnswer([], startCursor(feed, since), epochOf())));
        return;
      }
      const key = timeoutMs === 0 ? 'short-poll' : 'poll';
      const counters = stats.transports[key];
      stats.claim(request.raw, key);
      counters.requests++;
      counters.connections++;
      let poll: HeldPoll | undefined;
      reply.raw.once('close', () => {
        counters.connections--;
        // 'close' on the response before it finished means the client went away while held.
        if (poll !== undefined && !reply.raw.writableFinished) poll.abandon();
        stats.settle(request.raw, true);
      });
      const refuse = (err: unknown) =>
        reply.send(isFeedError(err) ? new HttpErrors.FEED_UNAVAILABLE(err.message) : err);

      const hold = (cursor: number) => {
        const p = new HeldPoll(cursor, reply, timeoutMs);
        poll = p;
        // Live at once (the usual case) or a catch-up read, which may fail.
        hub.joinLevel(p)?.catch((err: unknown) => {
          p.closed = true;
          held.delete(p);
          refuse(err);
        });
      };
      const cursor = startCursor(feed, since);
      const info = feed.info();
      // Up to date — the usual long poll, asking again from the last id it got: on the memory feed, whose
      // reads cannot fail, held at once without a read (its promises, on the path every held poll takes).
      // A Redis feed reads, so that a store that is down answers 503 LAB_ERR_FEED_UNAVAILABLE at once.
      if (memory && timeoutMs > 0 && cursor === info.lastId && (epoch === undefined || epoch === info.epoch)) {
        hold(cursor);
        return;
      }
      readAfter(feed, cursor, config.pollBatchMax, epoch).then((first) => {
        if (first.messages.length > 0 || first.announcements.length > 0 || timeoutMs === 0) {
          const messages = fitting(first.messages);
          counters.messagesOut += messages.length;
          extraWork?.[key]?.(messages);
          const lastId = messages[messages.length - 1]?.id ?? first.cursor;
          send(reply, pollBody(pollAnswer(messages, lastId, epochOf(), first.announcements)));
          return;
        }
        hold(first.cursor);
      }, refuse);
    });

    app.addHook('preClose', async () => {
      for (const poll of [...held]) poll.kill('shutdown');
      hub.close();
    });
  },
  { name: 'lab-poll', fastify: '5.x' },
);
