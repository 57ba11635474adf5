/**
 * GET /events?since=<id>[&epoch=<epoch>][&compress=gzip|off] — Server-Sent Events (WHATWG HTML §9.2).
 *
 * One event per message (`id: <id>`, `data: <message JSON>`); resume from the `Last-Event-ID` header,
 * which wins over `since` because EventSource sends it on every automatic reconnect; `gap` and `reset`
 * are named events; a `hello` event tells the epoch; a comment line every `sseHeartbeatMs` keeps
 * proxies from timing out an idle stream and lets clients detect a dead one.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import fp from 'fastify-plugin';
import type { Message } from '../feed/types.js';
import type { DisconnectReason } from '../stats.js';
import {
  feedDown,
  hello,
  jitteredRetryMs,
  SSE_HEADERS,
  SSE_HEADERS_H2,
  SSE_HEARTBEAT,
  sseBatch,
  sseControl,
  sseRetry,
  type Announcement,
} from '../protocol.js';
import { FlushingGzip, gzipFor } from './compression.js';
import { drainedOrClosed, Hub, isFeedError, type Subscriber } from './hub.js';
import { SseEncoded, writeSseBatch } from './shared-write.js';
import { spreadClose } from './shutdown.js';
import {
  isHttp2,
  parseCompress,
  parseCursor,
  parseEpoch,
  startCursor,
  type Query,
  type TransportOptions,
} from './params.js';

export default fp(
  async function sseTransport(app, opts: TransportOptions) {
    const { feed, tail, config, stats } = opts;
    const extraWork = opts.extraWork?.sse;
    const counters = stats.transports.sse;
    const hub = new Hub<SseEncoded>(feed, tail, {
      encode: (messages) => new SseEncoded(sseBatch(messages)),
      sizeOf: (e) => e.body.length,
      batchMax: config.pollBatchMax,
      maxBufferedBytes: config.maxBufferedBytes,
      drainTimeoutMs: config.catchUpDrainMs,
      onError: (err) => app.log.error({ err }, 'SSE fan-out failed'),
    });

    class SseStream implements Subscriber<SseEncoded> {
      closed = false;
      constructor(
        public cursor: number,
        readonly res: ServerResponse,
        readonly h2: boolean,
        /** Gzip'd (compression.ts gzipFor): every write goes through the stream's own compressor. */
        readonly gzip: FlushingGzip | undefined,
      ) {}
      deliver(messages: readonly Message[], encoded: SseEncoded | undefined): void {
        if (this.gzip) this.gzip.write(encoded?.body ?? sseBatch(messages));
        else writeSseBatch(this.res, messages, encoded);
        counters.messagesOut += messages.length;
        extraWork?.(messages);
      }
      /**
       * Every write that is not a feed message (hello, announcements, heartbeats) goes through here and
       * counts against maxBufferedBytes like messages do: a stream that is not read is cut, whatever fills it.
       */
      send(text: string): void {
        if (this.closed) return;
        if (this.gzip) this.gzip.write(text);
        else this.res.write(text);
        if (this.bufferedBytes() > config.maxBufferedBytes) {
          hub.leave(this);
          this.kill('slow-consumer');
        }
      }
      announce(a: Announcement): void {
        this.send(sseControl(a));
      }
      bufferedBytes(): number {
        return this.res.writableLength + (this.gzip?.pending ?? 0);
      }
      async drained(): Promise<void> {
        if (this.closed || this.bufferedBytes() === 0) return;
        // Compressed: the compressor drains once the response takes its output.
        if (this.gzip && this.gzip.gzip.writableLength > 0) return drainedOrClosed(this.gzip.gzip, this.res);
        // Shared chunks go to the socket past `res`, which then never needs (or emits) its own 'drain':
        // over HTTP/1.1 wait for the socket's, which follows every write, ours and Node's.
        const socket = this.res.socket;
        await drainedOrClosed(socket && !this.h2 ? socket : this.res, this.res);
      }
      kill(reason: DisconnectReason): void {
        if (this.closed) return;
        this.closed = true;
        counters.disconnects[reason]++;
        // A slow consumer would never read the end of the stream: cut it. Otherwise end it cleanly;
        // `Connection: close` then closes the socket, so shutdown does not wait on keep-alive.
        if (reason === 'slow-consumer' || reason === 'pong-timeout') {
          counters.cut++;
          this.gzip?.gzip.destroy();
          this.res.destroy();
        } else if (this.gzip)
          this.gzip.gzip.end(); // ends the response once the compressor has flushed
        else this.res.end();
      }
    }

    const streams = new Set<SseStream>();
    const heartbeat = setInterval(() => {
      for (const s of streams) s.send(SSE_HEARTBEAT);
    }, config.sseHeartbeatMs).unref();

    app.get('/events', async (request, reply) => {
      const q = request.query as Query;
      const header = request.headers['last-event-id'];
      // Last-Event-ID wins: it is what EventSource sends on reconnect, while the URL keeps the original `since`.
      const since = parseCursor(header !== undefined ? header : q.since);
      // A reconnect's URL keeps the epoch of the first connect, while Last-Event-ID is an id this
      // stream set (after a reset, in the new epoch): checking the stale epoch again would reset and
      // replay the epoch on every reconnect. So `epoch` is checked only when there is no Last-Event-ID.
      const queryEpoch = parseEpoch(q.epoch);
      const epoch = header !== undefined ? undefined : queryEpoch;
      const compress = parseCompress(q.compress, 'http', config.compressionOptIn);
      reply.hijack();
      const res = reply.raw;
      // Hijacked: headers hooks set on the reply (CORS, server/cors.ts) are written here or never.
      const gzip = gzipFor(compress, config.httpGzip, request.headers['accept-encoding']);
      const own = reply.getHeaders() as OutgoingHttpHeaders;
      const headers: OutgoingHttpHeaders = {
        ...own,
        ...(isHttp2(request) ? SSE_HEADERS_H2 : SSE_HEADERS),
        ...(gzip
          ? { 'content-encoding': 'gzip', vary: own.vary ? `${String(own.vary)}, accept-encoding` : 'accept-encoding' }
          : {}),
      };
      // HEAD: checked like GET, then the stream's headers and no body; no stream is opened or counted.
      if (request.method === 'HEAD') {
        res.writeHead(200, headers);
        res.end();
        return;
      }
      stats.claim(request.raw, 'sse', true);
      counters.requests++;
      res.writeHead(200, headers);
      const info = feed.info();
      const compressor = gzip ? new FlushingGzip() : undefined;
      compressor?.gzip.pipe(res);
      const stream = new SseStream(startCursor(feed, since), res, isHttp2(request), compressor);
      streams.add(stream);
      counters.connections++;
      res.once('close', () => {
        if (!stream.closed) {
          stream.closed = true;
          counters.disconnects.client++;
        }
        streams.delete(stream);
        hub.leave(stream);
        compressor?.gzip.destroy();
        counters.connections--;
        stats.settle(request.raw, true);
      });
      stream.send(
        sseRetry(jitteredRetryMs(config.sseRetryMs, config.sseRetryJitterMs)) +
          sseControl(hello(info.epoch, info.lastId)),
      );
      try {
        await hub.join(stream, epoch);
      } catch (err) {
        // The store is unreachable: say so, then end; EventSource retries after `retry:`. Anything
        // else is a bug of ours: logged, and the stream ends without blaming the store.
        if (isFeedError(err)) {
          if (!stream.closed) stream.announce(feedDown((err as Error).message));
          stream.kill('feed-down');
        } else {
          app.log.error({ err }, 'SSE catch-up failed');
          stream.kill('error');
        }
      }
    });

    // Spread over shutdownSpreadMs, not awaited here: the WebSocket transport's preClose (registered
    // after this one) spreads its own closes over the same window and waits for both.
    app.addHook('preClose', async () => {
      void spreadClose(app, [...streams], config.shutdownSpreadMs, (s) => s.kill('shutdown')).then(() => {
        clearInterval(heartbeat);
        hub.close();
      });
    });
  },
  { name: 'lab-sse', fastify: '5.x' },
);
