/**
 * Per-transport counters, and the two routes that expose them: GET /stats (JSON) and GET /metrics
 * (Prometheus text, via prom-client). Bytes are counted from the sockets (`bytesRead`/`bytesWritten`),
 * so HTTP headers, chunked framing and WebSocket frame headers are all included.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry } from 'prom-client';
import { LastWindow, type EventLoopDelay } from './event-loop.js';
import {
  newCounters,
  TRANSPORT_KEYS,
  type DisconnectReason,
  type TransportCounters,
  type TransportKey,
} from './counters.js';
import type { Feed, FeedInfo } from './feed/types.js';

export { TRANSPORT_KEYS, type DisconnectReason, type TransportCounters, type TransportKey };

/** Given this process's snapshot function, a function that resolves with every process's snapshots. */
export type Gather = (local: () => StatsSnapshot) => (() => Promise<StatsSnapshot[]>) | undefined;

interface SocketMark {
  read: number;
  written: number;
  owner: TransportKey | undefined;
  /** The last owner: what the connection writes after its last response (TLS close_notify) is its too. */
  last: TransportKey | undefined;
}

/**
 * An HTTP/2 session's mark. Its streams interleave on one connection, so its bytes cannot be split
 * per stream: they go to the one transport its streams belong to, or to `mixed` once it has carried
 * streams of two transports (or a transport and anything else: the dashboard, /stats), never guessed.
 */
interface SessionMark {
  read: number;
  written: number;
  /** Transports (and `other`, for any other route) whose streams this session has carried. */
  kinds: Set<TransportKey | 'other'>;
  mixed: boolean;
}

/** Bytes of HTTP/2 sessions whose streams belong to more than one transport (see SessionMark). */
export interface MixedCounters {
  /** Sessions that carried streams of more than one kind. */
  sessions: number;
  bytesOut: number;
  bytesIn: number;
}

/** A request as Node hands it over HTTP/1.1 (`IncomingMessage`) or HTTP/2 (`Http2ServerRequest`). */
type AnyRequest = IncomingMessage | Http2ServerRequest;

const keyOf = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string =>
  `${s.remoteAddress}|${s.remotePort}`;
export interface StatsSnapshot {
  transports: Record<TransportKey, TransportCounters>;
  /** HTTP/2 sessions that carried more than one transport: their bytes, counted apart (never split by guess). */
  mixed: MixedCounters;
  /** With several workers: each worker's own figures (transports and process are then their sums). */
  workers?: { pid: number; transports: Record<TransportKey, TransportCounters>; process: StatsSnapshot['process'] }[];
  feed: FeedInfo & { kind: string };
  process: {
    pid: number;
    uptimeSec: number;
    /** Cumulative CPU time of the process, microseconds. */
    cpu: { userUs: number; systemUs: number };
    memory: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
    /** Event-loop delay over the last complete window of TIMING.eventLoopWindowMs (see event-loop.ts). */
    eventLoopDelayMs: EventLoopDelay;
  };
}

/**
 * Bytes are read off the TCP sockets themselves: over TLS that is the encrypted stream (a TLSSocket's
 * own counters are the plaintext), handshake and records included; over HTTP/2, the session's socket.
 */
export class Stats {
  readonly transports: Record<TransportKey, TransportCounters> = {
    poll: newCounters(),
    'short-poll': newCounters(),
    sse: newCounters(),
    ws: newCounters(),
  };
  readonly mixed: MixedCounters = { sessions: 0, bytesOut: 0, bytesIn: 0 };
  /** Byte marks per socket: what has already been counted. Keep-alive sockets carry them across requests. */
  readonly #marks = new WeakMap<Socket, SocketMark>();
  readonly #sessions = new WeakMap<Socket, SessionMark>();
  /** Long-lived sockets (SSE, WebSocket, HTTP/2 sessions) that are sampled on every snapshot. */
  readonly #live = new Set<Socket>();
  /** TCP sockets of the TLS connections open now, by peer address and port. */
  readonly #byPeer = new Map<string, Socket>();
  /** The TCP socket under a TLSSocket or an HTTP/2 session (cached lookups of #byPeer). */
  readonly #tcpOf = new WeakMap<object, Socket>();
  /** Requests a transport claimed (HTTP/2: the others make their session `other`). */
  readonly #claimed = new WeakSet<AnyRequest>();
  readonly #eventLoop: LastWindow;
  /** Whether watch() was called: only then are request sockets TLS ones (cleartext needs no lookups). */
  #tls = false;

  constructor(readonly eventLoopWindowMs: number) {
    this.#eventLoop = new LastWindow(eventLoopWindowMs);
  }

  /**
   * Learns the TCP socket under each TLS connection of `server` (HTTPS, or HTTP/2 with its HTTP/1.1
   * fallback), by peer address and port while it is open: public API only (no `_parent`), and it
   * works through the proxy an HTTP/2 session hands out as its socket. Not needed for cleartext
   * HTTP/1.1, whose request sockets are the TCP sockets.
   */
  watch(server: EventEmitter): void {
    this.#tls = true;
    server.on('connection', (socket: Socket) => {
      const key = keyOf(socket);
      this.#byPeer.set(key, socket);
      socket.once('close', () => {
        if (this.#byPeer.get(key) === socket) this.#byPeer.delete(key);
      });
    });
  }

  /** The TCP socket under `socket` (itself when cleartext). */
  #tcp(socket: Socket): Socket {
    if (!this.#tls) return socket;
    let tcp = this.#tcpOf.get(socket);
    if (!tcp) {
      tcp = this.#byPeer.get(keyOf(socket)) ?? socket;
      this.#tcpOf.set(socket, tcp);
    }
    return tcp;
  }

  /** The TCP socket `req` arrived on, and whether it carries an HTTP/2 session. */
  #carrier(req: AnyRequest): { tcp: Socket; session: boolean } {
    const session = ((req as Http2ServerRequest).stream as ServerHttp2Stream | undefined)?.session;
    if (session) {
      let tcp = this.#tcpOf.get(session);
      if (!tcp) {
        tcp = this.#byPeer.get(keyOf(session.socket)) ?? (session.socket as Socket);
        this.#tcpOf.set(session, tcp);
      }
      return { tcp, session: true };
    }
    return { tcp: this.#tcp(req.socket as Socket), session: false };
  }

  #mark(socket: Socket): SocketMark {
    let m = this.#marks.get(socket);
    if (!m) {
      const mark: SocketMark = { read: 0, written: 0, owner: undefined, last: undefined };
      this.#marks.set(socket, mark);
      // TLS writes after the last response (close_notify); cleartext TCP does not (a FIN has no bytes),
      // so only TLS connections pay for the listener.
      if (this.#tls) {
        socket.once('close', () => {
          mark.owner ??= mark.last;
          this.#settleSocket(socket, true);
        });
      }
      m = mark;
    }
    return m;
  }

  #session(tcp: Socket): SessionMark {
    let m = this.#sessions.get(tcp);
    if (!m) {
      m = { read: 0, written: 0, kinds: new Set(), mixed: false };
      this.#sessions.set(tcp, m);
      tcp.once('close', () => {
        this.#settleSession(tcp);
        this.#live.delete(tcp);
      });
    }
    return m;
  }

  /** A session's kind set grows; once it holds a transport and any other kind, it is mixed. */
  #addKind(m: SessionMark, kind: TransportKey | 'other'): void {
    if (m.kinds.has(kind)) return;
    m.kinds.add(kind);
    if (!m.mixed && m.kinds.size > 1 && [...m.kinds].some((k) => k !== 'other')) {
      m.mixed = true;
      this.mixed.sessions++;
    }
  }

  #settleSession(tcp: Socket): void {
    const m = this.#sessions.get(tcp);
    if (!m) return;
    const read = tcp.bytesRead;
    const written = tcp.bytesWritten;
    const only = m.kinds.size === 1 ? [...m.kinds][0] : undefined;
    if (m.mixed || (only !== undefined && only !== 'other')) {
      const t = m.mixed ? this.mixed : this.transports[only as TransportKey];
      t.bytesIn += read - m.read;
      t.bytesOut += written - m.written;
    }
    m.read = read;
    m.written = written;
  }

  /** Bytes of `req`'s connection from now until it is released are counted for `key`. */
  claim(req: AnyRequest, key: TransportKey, live = false): void {
    const { tcp, session } = this.#carrier(req);
    if (session) {
      this.#claimed.add(req);
      // Not settled first: like an HTTP/1.1 connection's first request, the first transport on a
      // session is charged with everything since it opened (TLS handshake, preface, SETTINGS).
      this.#addKind(this.#session(tcp), key);
      this.#live.add(tcp);
      return;
    }
    const m = this.#mark(tcp);
    m.owner = key;
    m.last = key;
    if (live) this.#live.add(tcp);
  }

  /**
   * claim() for a connection that outlives its request (a WebSocket): returns its `settle(req, true)`,
   * which holds the connection only, so that the request object need not be kept for the connection's life.
   */
  claimConnection(req: AnyRequest, key: TransportKey): () => void {
    this.claim(req, key, true);
    const { tcp, session } = this.#carrier(req);
    return session ? () => this.#settleSession(tcp) : () => this.#settleSocket(tcp, true);
  }

  /**
   * Counts the bytes on `req`'s connection since its last mark for its owner (or for nobody), and
   * moves the mark. Called at the end of every HTTP response (keep-alive sockets carry other routes'
   * requests too) and for live connections on every snapshot. An HTTP/2 session is never released:
   * it stays live until its socket closes.
   */
  settle(req: AnyRequest, release = false): void {
    const { tcp, session } = this.#carrier(req);
    if (session) {
      const m = this.#session(tcp);
      if (!this.#claimed.has(req)) this.#addKind(m, 'other');
      this.#settleSession(tcp);
      return;
    }
    this.#settleSocket(tcp, release);
  }

  #settleSocket(socket: Socket, release = false): void {
    const m = this.#mark(socket);
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (m.owner) {
      const t = this.transports[m.owner];
      t.bytesIn += read - m.read;
      t.bytesOut += written - m.written;
    }
    m.read = read;
    m.written = written;
    if (release) {
      m.owner = undefined;
      this.#live.delete(socket);
    }
  }

  snapshot(feed: Feed): StatsSnapshot {
    for (const socket of this.#live) {
      if (this.#sessions.has(socket)) this.#settleSession(socket);
      else this.#settleSocket(socket);
    }
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    return {
      transports: structuredClone(this.transports),
      mixed: { ...this.mixed },
      feed: { kind: feed.kind, ...feed.info() },
      process: {
        pid: process.pid,
        uptimeSec: process.uptime(),
        cpu: { userUs: cpu.user, systemUs: cpu.system },
        memory: {
          rssBytes: mem.rss,
          heapUsedBytes: mem.heapUsed,
          heapTotalBytes: mem.heapTotal,
          externalBytes: mem.external,
        },
        eventLoopDelayMs: this.#eventLoop.read(),
      },
    };
  }

  close(): void {
    this.#eventLoop.close();
  }
}

/**
 * One snapshot for several workers: counters and process figures summed, event-loop delay the worst
 * worker's, and each worker's own snapshot kept under `workers`.
 */
export function sumSnapshots(parts: StatsSnapshot[]): StatsSnapshot {
  const [first, ...rest] = parts;
  if (!first) throw new Error('no snapshot to sum');
  if (rest.length === 0) return first;
  const total = structuredClone(first);
  for (const p of rest) {
    total.mixed.sessions += p.mixed.sessions;
    total.mixed.bytesOut += p.mixed.bytesOut;
    total.mixed.bytesIn += p.mixed.bytesIn;
    for (const key of TRANSPORT_KEYS) {
      const t = total.transports[key];
      const o = p.transports[key];
      t.connections += o.connections;
      t.requests += o.requests;
      t.messagesOut += o.messagesOut;
      t.bytesOut += o.bytesOut;
      t.bytesIn += o.bytesIn;
      t.cut += o.cut;
      for (const r of Object.keys(t.disconnects) as DisconnectReason[]) t.disconnects[r] += o.disconnects[r];
    }
    const tp = total.process;
    tp.uptimeSec = Math.max(tp.uptimeSec, p.process.uptimeSec);
    tp.cpu.userUs += p.process.cpu.userUs;
    tp.cpu.systemUs += p.process.cpu.systemUs;
    for (const k of Object.keys(tp.memory) as (keyof StatsSnapshot['process']['memory'])[])
      tp.memory[k] += p.process.memory[k];
    for (const k of ['p50', 'p99', 'max'] as const)
      tp.eventLoopDelayMs[k] = Math.max(tp.eventLoopDelayMs[k], p.process.eventLoopDelayMs[k]);
  }
  total.workers = parts.map((p) => ({ pid: p.process.pid, transports: p.transports, process: p.process }));
  return total;
}

/** Prometheus view of the same snapshot, built on each scrape. */
function buildRegistry(): Registry & { scrape(snapshot: StatsSnapshot): Promise<string> } {
  const registry = new Registry();
  let snap: StatsSnapshot | undefined;
  const current = (): StatsSnapshot => snap!;
  const perTransport = (
    name: string,
    help: string,
    pick: (t: TransportCounters) => number,
    type: 'counter' | 'gauge' = 'counter',
    withMixed = false,
  ) => {
    const Metric = type === 'counter' ? Counter : Gauge;
    new Metric({
      name,
      help,
      labelNames: ['transport'],
      registers: [registry],
      collect(this: Counter | Gauge) {
        this.reset();
        const rows: [string, TransportCounters][] = TRANSPORT_KEYS.map((key) => [key, current().transports[key]]);
        const { bytesIn, bytesOut } = current().mixed;
        if (withMixed) rows.push(['mixed', { ...newCounters(), bytesIn, bytesOut }]);
        for (const [key, t] of rows) {
          const v = pick(t);
          if (this instanceof Gauge) this.set({ transport: key }, v);
          else this.inc({ transport: key }, v);
        }
      },
    });
  };
  perTransport(
    'lab_connections',
    'Open connections (held polls, SSE streams, WebSockets)',
    (t) => t.connections,
    'gauge',
  );
  perTransport('lab_requests_total', 'HTTP requests, upgrades included', (t) => t.requests);
  perTransport('lab_messages_out_total', 'Feed messages delivered', (t) => t.messagesOut);
  perTransport(
    'lab_bytes_out_total',
    'Bytes written to sockets, server to client (transport "mixed": HTTP/2 sessions of several)',
    (t) => t.bytesOut,
    'counter',
    true,
  );
  perTransport(
    'lab_bytes_in_total',
    'Bytes read from sockets, client to server (transport "mixed": HTTP/2 sessions of several)',
    (t) => t.bytesIn,
    'counter',
    true,
  );
  perTransport(
    'lab_connections_cut_total',
    'Connections the server ended whose peer never saw the end (cut at TCP level)',
    (t) => t.cut,
  );
  new Counter({
    name: 'lab_disconnects_total',
    help: 'Connections ended, by reason',
    labelNames: ['transport', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const key of TRANSPORT_KEYS) {
        for (const [reason, v] of Object.entries(current().transports[key].disconnects)) {
          this.inc({ transport: key, reason }, v);
        }
      }
    },
  });
  const gauge = (name: string, help: string, pick: (s: StatsSnapshot) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(current()));
      },
    });
  gauge('lab_feed_last_id', 'Id of the newest message', (s) => s.feed.lastId);
  gauge('lab_feed_retained', 'Messages retained in the feed', (s) => s.feed.retained);
  gauge('lab_process_cpu_user_seconds', 'Process user CPU time', (s) => s.process.cpu.userUs / 1e6);
  gauge('lab_process_cpu_system_seconds', 'Process system CPU time', (s) => s.process.cpu.systemUs / 1e6);
  gauge('lab_process_rss_bytes', 'Resident set size', (s) => s.process.memory.rssBytes);
  gauge('lab_process_heap_used_bytes', 'V8 heap used', (s) => s.process.memory.heapUsedBytes);
  gauge(
    'lab_event_loop_delay_p50_seconds',
    'Event-loop delay p50 over the last window',
    (s) => s.process.eventLoopDelayMs.p50 / 1e3,
  );
  gauge(
    'lab_event_loop_delay_p99_seconds',
    'Event-loop delay p99 over the last window',
    (s) => s.process.eventLoopDelayMs.p99 / 1e3,
  );
  return Object.assign(registry, {
    async scrape(snapshot: StatsSnapshot): Promise<string> {
      snap = snapshot;
      return registry.metrics();
    },
  });
}

/**
 * Every response moves its socket's byte mark (Stats.settle), so that a keep-alive socket that carried
 * a /publish or a /stats before a /poll does not charge those bytes to the poll. A route-level onResponse
 * hook on every route but those that settle their own connection (`config: { settlesBytes: true }`:
 * GET /poll, in the close listener it has anyway), so that the poll path runs no hook for it. app.ts
 * calls this before registering any route; the not-found handler settles its own answers.
 */
export function settleEveryRoute(app: FastifyInstance, stats: Stats): void {
  const settle = (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    stats.settle(request.raw, true);
    done();
  };
  app.addHook('onRoute', (route) => {
    if ((route.config as { settlesBytes?: boolean } | undefined)?.settlesBytes) return;
    const own = route.onResponse === undefined ? [] : [route.onResponse].flat();
    route.onResponse = [...own, settle] as NonNullable<typeof route.onResponse>;
  });
}

export default fp(
  /**
   * `gather`, when given, collects every worker's snapshot (this one's included) so that any worker
   * answers for all of them; app.ts passes cluster.ts's gatherer when running as a cluster worker.
   */
  async function statsRoutes(app: FastifyInstance, opts: { stats: Stats; feed: Feed; gather?: Gather | undefined }) {
    const { stats, feed, gather: makeGather } = opts;
    const gather = makeGather?.(() => stats.snapshot(feed));
    const snapshot = async (): Promise<StatsSnapshot> => (gather ? sumSnapshots(await gather()) : stats.snapshot(feed));
    app.get('/stats', async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return snapshot();
    });
    const registry = buildRegistry();
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.scrape(await snapshot());
    });
  },
  { name: 'lab-stats', fastify: '5.x' },
);
