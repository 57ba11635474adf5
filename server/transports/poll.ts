/**
 * GET /poll?since=<id>&timeout=<ms>[&epoch=<epoch>] — HTTP long polling.
 *
 * Messages after `since` exist → answered at once with all of them up to `pollBatchMax`. None → the
 * request is held until the next publish or `timeout` (default 25 s) and answered empty. `timeout=0`
 * is plain short polling and is counted apart (`shortPoll`). The client's cursor and the feed's
 * retention are the whole buffer: nothing is queued per client.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Message } from '../feed/types.js';
import { HttpErrors } from '../errors.js';
import type { DisconnectReason } from '../stats.js';
import { pollBody, type PollBody } from './encode.js';
import { Hub, readAfter, type Announcement, type Subscriber } from './hub.js';
import { parseCursor, parseEpoch, startCursor, type Query, type TransportOptions } from './params.js';

function parseTimeout(raw: unknown, def: number, max: number): number {
  if (raw === undefined) return def;
  const n = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= max)) throw new HttpErrors.BAD_TIMEOUT(max, JSON.stringify(raw));
  return n;
}

export default fp(
  async function pollTransport(app, opts: TransportOptions) {
    const { feed, config, stats } = opts;
    const epochOf = () => feed.info().epoch;
    // Every poller held at the same cursor gets the same bytes: encode the answer once per batch.
    const hub = new Hub<string>(feed, {
      encode: (messages) => pollBody({ messages: [...messages], lastId: messages[messages.length - 1]!.id, epoch: epochOf() }),
      batchMax: config.pollBatchMax,
      // A poll is answered once, whole: nothing queues per client beyond that one answer.
      maxBufferedBytes: Number.POSITIVE_INFINITY,
      drainTimeoutMs: config.catchUpDrainMs,
      onError: (err) => app.log.error({ err }, 'poll fan-out failed'),
    });
    const held = new Set<HeldPoll>();

    class HeldPoll implements Subscriber<string> {
      closed = false;
      readonly #timer: NodeJS.Timeout;
      constructor(
        public cursor: number,
        readonly reply: FastifyReply,
        timeoutMs: number,
      ) {
        this.#timer = setTimeout(() => this.#answer([], undefined), timeoutMs);
        held.add(this);
      }
      deliver(messages: readonly Message[], encoded: string | undefined): void {
        this.#answer(messages, encoded);
      }
      /** While held, only a store event can need telling: answer at once so the client hears it. */
      announce(a: Announcement): void {
        switch (a.type) {
          case 'gap':
          case 'reset': {
            if (this.closed) return;
            this.#finish();
            const body: PollBody = { messages: [], lastId: a.type === 'gap' ? a.firstId - 1 : 0, epoch: epochOf() };
            assign(body, a);
            send(this.reply, pollBody(body));
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
      bufferedBytes(): number {
        return 0;
      }
      drained(): Promise<void> {
        return Promise.resolve();
      }
      kill(reason: DisconnectReason): void {
        if (this.closed) return;
        stats.transports.poll.disconnects[reason]++;
        if (reason === 'shutdown') this.reply.header('connection', 'close');
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
      #answer(messages: readonly Message[], encoded: string | undefined): void {
        if (this.closed) return;
        this.#finish();
        stats.transports.poll.messagesOut += messages.length;
        const last = messages[messages.length - 1];
        const body = encoded ?? pollBody({ messages: [...messages], lastId: last ? last.id : this.cursor, epoch: epochOf() });
        send(this.reply, body);
      }
    }

    function send(reply: FastifyReply, body: string): void {
      reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body);
    }

    app.get('/poll', async (request: FastifyRequest, reply) => {
      const q = request.query as Query;
      const since = parseCursor(q.since);
      const epoch = parseEpoch(q.epoch);
      const timeoutMs = parseTimeout(q.timeout, config.pollTimeoutMs, config.pollMaxTimeoutMs);
      // HEAD: checked like GET, then the headers of an empty answer at once: never held, never counted.
      if (request.method === 'HEAD') {
        send(reply, pollBody({ messages: [], lastId: startCursor(feed, since), epoch: epochOf() }));
        return reply;
      }
      const key = timeoutMs === 0 ? 'shortPoll' : 'poll';
      const counters = stats.transports[key];
      stats.claim(request.raw.socket, key);
      counters.requests++;
      counters.connections++;
      reply.raw.once('close', () => counters.connections--);

      const first = await readAfter(feed, startCursor(feed, since), config.pollBatchMax, epoch);
      if (first.messages.length > 0 || first.announcements.length > 0 || timeoutMs === 0) {
        counters.messagesOut += first.messages.length;
        const lastId = first.messages[first.messages.length - 1]?.id ?? first.cursor;
        const body: PollBody = { messages: [...first.messages], lastId, epoch: epochOf() };
        for (const a of first.announcements) assign(body, a);
        send(reply, pollBody(body));
        return reply;
      }
      const poll = new HeldPoll(first.cursor, reply, timeoutMs);
      // 'close' on the response before it finished means the client went away while held.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) poll.abandon();
      });
      hub.join(poll).catch((err: unknown) => {
        poll.closed = true;
        held.delete(poll);
        reply.send(err);
      });
      return reply;
    });

    function assign(body: PollBody, a: Announcement): void {
      if (a.type === 'gap') body.gap = a;
      else if (a.type === 'reset') body.reset = a;
    }

    app.addHook('preClose', async () => {
      for (const poll of [...held]) poll.kill('shutdown');
      hub.close();
    });
  },
  { name: 'lab-poll', fastify: '5.x' },
);
