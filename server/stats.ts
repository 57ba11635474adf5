/**
 * Per-transport counters, and the two routes that expose them: GET /stats (JSON) and GET /metrics
 * (Prometheus text, via prom-client). Bytes are counted from the sockets (`bytesRead`/`bytesWritten`),
 * so HTTP headers, chunked framing and WebSocket frame headers are all included.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Registry } from 'prom-client';
import { LastWindow, type EventLoopDelay } from './event-loop.js';
import { newCounters, TRANSPORT_KEYS, type DisconnectReason, type TransportCounters, type TransportKey } from './counters.js';
import type { Feed, FeedInfo } from './feed/types.js';

export { TRANSPORT_KEYS, type DisconnectReason, type TransportCounters, type TransportKey };

/** Given this process's snapshot function, a function that resolves with every process's snapshots. */
export type Gather = (local: () => StatsSnapshot) => (() => Promise<StatsSnapshot[]>) | undefined;

interface SocketMark {
  read: number;
  written: number;
  owner: TransportKey | undefined;
}

export interface StatsSnapshot {
  transports: Record<TransportKey, TransportCounters>;
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

export class Stats {
  readonly transports: Record<TransportKey, TransportCounters> = {
    poll: newCounters(),
    'short-poll': newCounters(),
    sse: newCounters(),
    ws: newCounters(),
  };
  /** Byte marks per socket: what has already been counted. Keep-alive sockets carry them across requests. */
  readonly #marks = new WeakMap<Socket, SocketMark>();
  /** Long-lived sockets (SSE, WebSocket) that are sampled on every snapshot. */
  readonly #live = new Set<Socket>();
  readonly #eventLoop: LastWindow;

  constructor(readonly eventLoopWindowMs: number) {
    this.#eventLoop = new LastWindow(eventLoopWindowMs);
  }

  #mark(socket: Socket): SocketMark {
    let m = this.#marks.get(socket);
    if (!m) {
      m = { read: 0, written: 0, owner: undefined };
      this.#marks.set(socket, m);
    }
    return m;
  }

  /** Bytes on `socket` from now until it is released are counted for `key`. */
  claim(socket: Socket, key: TransportKey, live = false): void {
    this.#mark(socket).owner = key;
    if (live) this.#live.add(socket);
  }

  /**
   * Counts the bytes on `socket` since its last mark for its owner (or for nobody), and moves the mark.
   * Called at the end of every HTTP response (keep-alive sockets carry other routes' requests too) and
   * for live sockets on every snapshot.
   */
  settle(socket: Socket, release = false): void {
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
    for (const socket of this.#live) this.settle(socket);
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    return {
      transports: structuredClone(this.transports),
      feed: { kind: feed.kind, ...feed.info() },
      process: {
        pid: process.pid,
        uptimeSec: process.uptime(),
        cpu: { userUs: cpu.user, systemUs: cpu.system },
        memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external },
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
    for (const k of Object.keys(tp.memory) as (keyof StatsSnapshot['process']['memory'])[]) tp.memory[k] += p.process.memory[k];
    for (const k of ['p50', 'p99', 'max'] as const) tp.eventLoopDelayMs[k] = Math.max(tp.eventLoopDelayMs[k], p.process.eventLoopDelayMs[k]);
  }
  total.workers = parts.map((p) => ({ pid: p.process.pid, transports: p.transports, process: p.process }));
  return total;
}

/** Prometheus view of the same snapshot, built on each scrape. */
function buildRegistry(): Registry & { scrape(snapshot: StatsSnapshot): Promise<string> } {
  const registry = new Registry();
  let snap: StatsSnapshot | undefined;
  const current = (): StatsSnapshot => snap!;
  const perTransport = (name: string, help: string, pick: (t: TransportCounters) => number, type: 'counter' | 'gauge' = 'counter') => {
    const Metric = type === 'counter' ? Counter : Gauge;
    new Metric({
      name,
      help,
      labelNames: ['transport'],
      registers: [registry],
      collect(this: Counter | Gauge) {
        this.reset();
        for (const key of TRANSPORT_KEYS) {
          const v = pick(current().transports[key]);
          if (this instanceof Gauge) this.set({ transport: key }, v);
          else this.inc({ transport: key }, v);
        }
      },
    });
  };
  perTransport('lab_connections', 'Open connections (held polls, SSE streams, WebSockets)', (t) => t.connections, 'gauge');
  perTransport('lab_requests_total', 'HTTP requests, upgrades included', (t) => t.requests);
  perTransport('lab_messages_out_total', 'Feed messages delivered', (t) => t.messagesOut);
  perTransport('lab_bytes_out_total', 'Bytes written to sockets, server to client', (t) => t.bytesOut);
  perTransport('lab_bytes_in_total', 'Bytes read from sockets, client to server', (t) => t.bytesIn);
  perTransport('lab_connections_cut_total', 'Connections the server ended whose peer never saw the end (cut at TCP level)', (t) => t.cut);
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
  gauge('lab_event_loop_delay_p50_seconds', 'Event-loop delay p50 over the last window', (s) => s.process.eventLoopDelayMs.p50 / 1e3);
  gauge('lab_event_loop_delay_p99_seconds', 'Event-loop delay p99 over the last window', (s) => s.process.eventLoopDelayMs.p99 / 1e3);
  return Object.assign(registry, {
    async scrape(snapshot: StatsSnapshot): Promise<string> {
      snap = snapshot;
      return registry.metrics();
    },
  });
}

export default fp(
  /**
   * `gather`, when given, collects every worker's snapshot (this one's included) so that any worker
   * answers for all of them; app.ts passes cluster.ts's gatherer when running as a cluster worker.
   */
  async function statsRoutes(app: FastifyInstance, opts: { stats: Stats; feed: Feed; gather?: Gather | undefined }) {
    const { stats, feed, gather: makeGather } = opts;
    // Every response moves its socket's byte mark, so that a keep-alive socket that carried a
    // /publish before a /poll does not charge the publish bytes to the poll.
    app.addHook('onResponse', (request, _reply, done) => {
      stats.settle(request.raw.socket, true);
      done();
    });
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
