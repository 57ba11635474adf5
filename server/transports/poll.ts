/**
 * GET /poll?since=<id>&timeout=<ms>[&epoch=<epoch>][&compress=gzip|off] — HTTP long polling.
 *
 * Messages after `since` exist → answered at once with all of them up to `pollBatchMax`. None → the
 * request is held until the next publish or `timeout` (default 25 s) and answered empty. `timeout=0`
 * is plain short polling and is counted apart (`short-poll`). The client's cursor and the feed's
 * retention are the whole buffer: nothing is queued per client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Feed, Message } from '../feed/types.js';
import { ERRORS, HttpErrors, type ErrorBody, type ErrorCode } from '../errors.js';
import type { DisconnectReason } from '../stats.js';
import { POLL_HEAD, pollAnswer, pollBody, type Announcement } from '../protocol.js';
import { GZIP_HEAD, gzipBody, gzipFor } from './compression.js';
import { Hub, isFeedError, readAfter, readAfterNow, type ReadAfter, type Subscriber } from './hub.js';

import {
  isHttp2,
  parseCompress,
  parseCursor,
  parseEpoch,
  parseTimeout,
  startCursor,
  type Compress,
  type Query,
  type TransportOptions,
} from './params.js';

/** The poll a response answers, for the one close listener all of them share. */
const POLL = Symbol('lab.poll');
type PollResponse = (ServerResponse | Http2ServerResponse) & { [POLL]?: { closed(): void } };
function pollClosed(this: PollResponse): void {
  this[POLL]?.closed();
}

/** Where a poll's answer goes: Fastify's reply, or node:http's response (RawOut). */
interface PollOut {
  send(body: string | Buffer): void;
  /** A LAB_ERR_* error (an HttpErrors instance), answered with its status and JSON body. */
  fail(err: Error): void;
  /** Shutdown: the answer tells an HTTP/1.1 client not to reuse the connection. */
  closeConnection(): void;
}

/**
 * A poll answered on node:http's (or node:http2's compatibility) response: the header list pre-built, the
 * same headers as Fastify's. Over HTTP/2 no `connection` header (the stream ends, the session stays).
 */
class RawOut implements PollOut {
  #close = false;
  constructor(
    readonly res: ServerResponse | Http2ServerResponse,
    readonly h2: boolean,
    /** Answers gzip'd (compression.ts gzipFor). */
    readonly gzip: boolean,
  ) {}
  send(body: string | Buffer): void {
    const out = this.gzip ? gzipBody(body) : body;
    const head = [
      ...(this.#close ? CLOSE_HEAD : []),
      ...(this.gzip ? POLL_HEAD_GZIP : POLL_HEAD),
      'content-length',
      String(Buffer.byteLength(out)),
    ];
    this.#head(200, head);
    this.res.end(out);
  }
  fail(err: Error): void {
    const e = err as Error & { code?: string; statusCode?: number };
    const status = e.statusCode ?? 500;
    const body = JSON.stringify({
      error: e.code?.startsWith('LAB_ERR_')
        ? { code: e.code as ErrorCode, message: e.message }
        : { code: ERRORS.INTERNAL.code, message: ERRORS.INTERNAL.message },
    } satisfies ErrorBody);
    this.#head(e.code?.startsWith('LAB_ERR_') ? status : 500, [
      ...(this.#close ? CLOSE_HEAD : []),
      'content-type',
      'application/json; charset=utf-8',
      'content-length',
      String(Buffer.byteLength(body)),
    ]);
    this.res.end(body);
  }
  closeConnection(): void {
    this.#close = !this.h2;
  }
  /** node:http2's compatibility writeHead takes a flat list too (its types say only an object). */
  #head(status: number, list: string[]): void {
    (this.res as ServerResponse).writeHead(status, list);
  }
}
const CLOSE_HEAD: readonly string[] = Object.freeze(['connection', 'close']);
/** A compressed poll answer's header list but its length, built once. */
const POLL_HEAD_GZIP: readonly string[] = Object.freeze([...POLL_HEAD, ...GZIP_HEAD]);

/** Whether a query component has escapes to decode (`%XX`, `+`). */
const escaped = (x: string): boolean => x.includes('%') || x.includes('+');

type PollQuery = { since?: string; epoch?: string; timeout?: string; compress?: string };
/**
 * The poll parameters of a query string (`since=…&timeout=…&compress=…`), decoded as Fastify's query parser
 * decodes them (`+` is a space, percent-escapes); undefined when one of them comes twice or does not decode,
 * which Fastify's route then refuses with its own answer. Other parameters are ignored, as by the route.
 */
function pollQuery(search: string): PollQuery | undefined {
  const q: PollQuery = {};
  if (search === '') return q;
  for (const pair of search.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    if (name !== 'since' && name !== 'epoch' && name !== 'timeout' && name !== 'compress') {
      if (escaped(name)) return undefined; // an encoded name could decode to one of ours
      continue;
    }
    if (q[name] !== undefined) return undefined;
    let value = eq < 0 ? '' : pair.slice(eq + 1);
    if (escaped(value)) {
      try {
        value = decodeURIComponent(value.replaceAll('+', ' '));
      } catch {
        return undefined;
      }
    }
    q[name] = value;
  }
  return q;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Serves `req` if it is a plain GET poll (true), past Fastify; false leaves it to Fastify (poll.ts). */
    pollRaw: (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => boolean;
  }
}

export default fp(
  async function pollTransport(app, opts: TransportOptions) {
    const { feed, tail, config, stats, extraWork } = opts;
    const epochOf = () => feed.info().epoch;
    const memory = feed.kind === 'memory';
    const readsNow = feed.readNow ? (feed as Feed & Required<Pick<Feed, 'readNow'>>) : undefined;
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
     * poll, from this answer's lastId. Called only for an answer found over the bound.
     */
    const fitting = (messages: readonly Message[]): readonly Message[] => {
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
        readonly out: PollOut,
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
            this.out.send(pollBody(pollAnswer([], a.type === 'gap' ? a.firstId - 1 : 0, epochOf(), [a])));
            break;
          }
          case 'feed-down':
            if (this.closed) return;
            this.#finish();
            this.out.fail(new HttpErrors.FEED_UNAVAILABLE(a.message));
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
        if (reason === 'shutdown') this.out.closeConnection();
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
        this.out.send(body);
      }
    }

    /** A poll's answer through Fastify's reply: HEAD, HTTP/2, CORS, and whatever node:http's path passed on. */
    const viaFastify = (reply: FastifyReply, gzip: boolean): PollOut => ({
      send: (body) => send(reply, body, gzip),
      fail: (err) => reply.send(err),
      closeConnection: () => {
        if (!isHttp2(reply.request)) reply.header('connection', 'close');
      },
    });

    /** `gzip`: compression.ts gzipFor, decided when the request's query was read. */
    function send(reply: FastifyReply, answer: string | Buffer, gzip: boolean): void {
      const body = gzip ? gzipBody(answer) : answer;
      if (gzip) {
        reply.header('content-encoding', 'gzip');
        const vary = reply.getHeader('vary');
        reply.header('vary', vary ? `${String(vary)}, accept-encoding` : 'accept-encoding');
      }
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
      const compress = parseCompress(q.compress, 'http', config.compressionOptIn);
      const gzip = gzipFor(compress, config.httpGzip, request.headers['accept-encoding']);
      // HEAD: checked like GET, then the headers of an empty answer at once: never held, never counted.
      if (request.method === 'HEAD') {
        reply.raw.once('close', () => stats.settle(request.raw, true));
        send(reply, pollBody(pollAnswer([], startCursor(feed, since), epochOf())), gzip);
        return;
      }
      servePoll(since, epoch, timeoutMs, request.raw, reply.raw, viaFastify(reply, gzip));
    });

    /**
     * A GET poll after its query was read: counted, answered at once (messages, announcements, or a
     * short poll) or held until the next batch, its timeout, or a store event. `out` is where the answer
     * goes; `res` closing before it is the client going away.
     */
    function servePoll(
      since: number | undefined,
      epoch: string | undefined,
      timeoutMs: number,
      req: IncomingMessage | Http2ServerRequest,
      res: ServerResponse | Http2ServerResponse,
      out: PollOut,
    ): void {
      const r = new PollRequest(timeoutMs, req, res, out);
      const cursor = startCursor(feed, since);
      const info = feed.info();
      // Up to date — the usual long poll, asking again from the last id it got: on the memory feed, whose
      // reads cannot fail, held at once without a read (its promises, on the path every held poll takes).
      // A Redis feed reads, so that a store that is down answers 503 LAB_ERR_FEED_UNAVAILABLE at once.
      if (memory && timeoutMs > 0 && cursor === info.lastId && (epoch === undefined || epoch === info.epoch)) {
        r.hold(cursor);
        return;
      }
      // The memory feed answers at once: no promise on the path of every short poll and every answer.
      if (readsNow) r.answerOrHold(readAfterNow(readsNow, cursor, config.pollBatchMax, epoch));
      else
        readAfter(feed, cursor, config.pollBatchMax, epoch).then(
          (first) => r.answerOrHold(first),
          (err: unknown) => r.refuse(err),
        );
    }

    /**
     * One GET poll on its way: counted from here, its answer sent once through `out`. A class, not closures:
     * nothing is allocated per request but this object (and, on a Redis feed, the read's callbacks).
     */
    class PollRequest {
      readonly key: 'poll' | 'short-poll';
      poll: HeldPoll | undefined;
      constructor(
        readonly timeoutMs: number,
        readonly req: IncomingMessage | Http2ServerRequest,
        readonly res: ServerResponse | Http2ServerResponse,
        readonly out: PollOut,
      ) {
        this.key = timeoutMs === 0 ? 'short-poll' : 'poll';
        const counters = stats.transports[this.key];
        stats.claim(req, this.key);
        counters.requests++;
        counters.connections++;
        (res as PollResponse)[POLL] = this;
        res.once('close', pollClosed);
      }
      /** The response closed: answered, or the client went away while held. */
      closed(): void {
        stats.transports[this.key].connections--;
        // 'close' on the response before it finished means the client went away while held.
        if (this.poll !== undefined && !this.res.writableFinished) this.poll.abandon();
        stats.settle(this.req, true);
      }
      refuse(err: unknown): void {
        this.out.fail((isFeedError(err) ? new HttpErrors.FEED_UNAVAILABLE(err.message) : err) as Error);
      }
      hold(cursor: number): void {
        const p = new HeldPoll(cursor, this.out, this.timeoutMs);
        this.poll = p;
        // Live at once (the usual case) or a catch-up read, which may fail.
        hub.joinLevel(p)?.catch((err: unknown) => {
          p.closed = true;
          held.delete(p);
          this.refuse(err);
        });
      }
      answerOrHold(first: ReadAfter): void {
        if (first.messages.length === 0 && first.announcements.length === 0 && this.timeoutMs > 0) {
          this.hold(first.cursor);
          return;
        }
        // Encoded once; only an answer over the bound is encoded again, shorter.
        let messages = first.messages;
        let body = answerBody(messages, first);
        if (messages.length > 1 && body.length > config.maxBufferedBytes) {
          messages = fitting(messages);
          body = answerBody(messages, first);
        }
        stats.transports[this.key].messagesOut += messages.length;
        extraWork?.[this.key]?.(messages);
        this.out.send(body);
      }
    }
    /**
     * An answer at once, encoded to UTF-8 once: its length is then the bound's check and the
     * Content-Length, and node:http writes the bytes as they are (a string would be measured twice and
     * encoded again: three passes over a short poll's thousand messages).
     */
    const answerBody = (messages: readonly Message[], first: ReadAfter): Buffer =>
      Buffer.from(
        pollBody(
          pollAnswer(messages, messages[messages.length - 1]?.id ?? first.cursor, epochOf(), first.announcements),
        ),
      );

    /**
     * The usual long poll on node:http's own request and response, past Fastify's routing and hooks:
     * app.ts hands it every HTTP/1.1 and HTTP/2 request from an allowed Host while the lab is not closing. It takes
     * a `GET /poll` without Origin (CORS stays Fastify's) or Upgrade, whose query it reads as Fastify
     * would (each parameter once at most); anything else — HEAD, a repeated or bad parameter, which
     * Fastify then refuses with its LAB_ERR_* answer — it leaves alone and says false.
     */
    const pollRaw = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean => {
      const url = req.url ?? '';
      if (req.method !== 'GET' || !(url === '/poll' || url.startsWith('/poll?'))) return false;
      if (req.headers.origin !== undefined || req.headers.upgrade !== undefined) return false;
      const q = pollQuery(url.slice(6));
      if (q === undefined) return false;
      let since: number | undefined;
      let epoch: string | undefined;
      let timeoutMs: number;
      let compress: Compress<'http'> | undefined;
      try {
        since = parseCursor(q.since);
        epoch = parseEpoch(q.epoch);
        timeoutMs = parseTimeout(q.timeout, config.pollTimeoutMs, config.pollMaxTimeoutMs);
        compress = parseCompress(q.compress, 'http', config.compressionOptIn);
      } catch {
        return false;
      }
      const gzip = gzipFor(compress, config.httpGzip, req.headers['accept-encoding']);
      servePoll(since, epoch, timeoutMs, req, res, new RawOut(res, req.httpVersion === '2.0', gzip));
      return true;
    };
    app.decorate('pollRaw', pollRaw);

    app.addHook('preClose', async () => {
      for (const poll of [...held]) poll.kill('shutdown');
      hub.close();
    });
  },
  { name: 'lab-poll', fastify: '5.x' },
);
