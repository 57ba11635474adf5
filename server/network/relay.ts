/**
 * A TCP relay that emulates a network in user space (this kernel has no netem qdisc). Every accepted
 * connection gets its own connection to the target; bytes go both ways under a NetworkProfile.
 *
 * The model, per direction (up = client → server, down = server → client), each a FIFO queue:
 * - **Segments.** Every chunk read is cut into segments of at most 1,448 B (SEGMENT_BYTES: a 1,500 B
 *   Ethernet MTU less IPv4, TCP and timestamp-option headers). Jitter, loss and serialisation apply
 *   per segment, as on the wire.
 * - **Connection setup.** No byte leaves before the handshake is done: accept time + one RTT in both
 *   directions. A client that writes as soon as it connects (every HTTP client) waits exactly one
 *   extra RTT, so a new connection's first response takes ≥ 2 × RTT; a pre-connected socket that
 *   writes later waits less, as in TCP. Every new connection pays it (reconnects, new poll sockets).
 * - **Bandwidth.** A segment of n bytes occupies its direction's link for n × 8 / kbps ms; segments
 *   serialise one after another: `sent = max(arrival, handshake done, previous sent) + n × 8 / kbps`.
 * - **Delay and jitter.** One-way delay is RTT / 2 plus a jitter sample drawn **uniformly from
 *   [0, jitterMs)** (seeded mulberry32): rttMs is the floor, jitter only adds, as queueing does. A
 *   segment is released at `max(sent + RTT/2 + jitter, previous release)`, so jitter never reorders
 *   bytes (TCP never does); it shows up as queueing behind the slowest segment.
 * - **Loss.** TCP turns loss into delay. With probability `loss` (seeded, its own stream) a segment is
 *   held an extra `retransmitMs`, and everything behind it in that direction waits (head-of-line
 *   blocking), through the same `max(…, previous release)`.
 * - **Backpressure.** A direction holds at most `queueBytes` not yet written. When full, the relay
 *   stops reading that direction's sender (`socket.pause()`; the unread rest goes back with
 *   `unshift`) and resumes below half: the sender's kernel buffers fill and its `write()` returns
 *   false, as behind a closed TCP window, so the server's slow-consumer rule still works through the
 *   relay. A receiver that stops reading makes `write()` return false; the relay stops releasing
 *   until 'drain', its queue fills, and the sender is paused in turn. The queue then plays the
 *   receiver's kernel buffer: what waited in it arrives in one burst once the reader reads again.
 * - **FIN and reset.** An end (FIN) is queued behind the direction's data and takes the one-way delay.
 *   A reset (an error on either leg, or a leg closed before both its halves ended) passes at once:
 *   queued data in both directions is dropped and the other leg is reset (RST), not ended. A reset
 *   the kernel reports as an end passes as an end: Linux reads an RST that finds unread bytes in the
 *   receive queue as those bytes and then EOF, so the relay only sees a reset as one when it has
 *   read everything before it.
 * - **Timers.** One timer per direction at a time, armed for the head of its queue; the clock is
 *   `performance.now()`. A timer never releases early (it re-arms if it fires before the head is due),
 *   so every lower bound holds; lateness (actual − intended release) is recorded for every segment,
 *   counted from the later of its due time and the receiver's last 'drain' (a reader that stopped is
 *   the network's doing, not the relay's).
 * - **Seeds.** Each direction of each connection has its own jitter and loss streams, derived from
 *   (seed, accept order, direction): a run repeats exactly when its connections are accepted in the
 *   same order.
 *
 * Not emulated: reordering beyond TCP's (none reaches the application), packet loss as missing bytes
 * (loss is a retransmission stall, never a gap), congestion control (no slow start, no congestion
 * window ramp: a new connection sends at the full link rate at once), fast retransmit (every loss
 * costs a full retransmitMs), retransmissions using bandwidth again, a shared bottleneck between
 * connections (each connection has its own links), MTU fragmentation beyond the 1,448 B segments,
 * Nagle / delayed ACKs (both legs setNoDelay(true)), and the handshake's effect on the peers' own
 * `connect` events (the relay accepts at once; the handshake costs time on the first bytes instead).
 * Timer resolution is 1 ms, so sub-millisecond profiles are late by up to about 1 ms: `lateness()`
 * says by how much.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { ConfigError } from '../errors.js';
import type { NetworkProfile } from './profiles.js';

/** 1,500 B Ethernet MTU − 20 B IPv4 − 20 B TCP − 12 B timestamps option: Linux's usual MSS. */
export const SEGMENT_BYTES = 1448;

export const RELAY_DEFAULTS = Object.freeze({
  listenHost: '127.0.0.1',
  listenPort: 0,
  /**
   * Bytes one direction of one connection may hold. 256 KiB is about a 4G bandwidth-delay product
   * (9 Mbit/s × 170 ms ≈ 190 KiB) with room to spare, and with unlimited rate it acts as a receive
   * window: throughput ≤ queueBytes / one-way delay.
   */
  queueBytes: 256 * 1024,
  /** Fixed, so that two runs without a seed see the same jitter and losses. */
  seed: 0x5eed,
});

/** A uniform [0, 1) generator: mulberry32 (public domain, Tommy Ettinger), small, fast and seedable. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One 32-bit seed per (relay seed, connection, direction, purpose): murmur3's finaliser over each. */
function streamSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export interface ScheduleOptions {
  /** One-way propagation delay (RTT / 2), ms. */
  delayMs: number;
  /** Each segment adds a sample uniform in [0, jitterMs), ms. */
  jitterMs: number;
  /** Link rate, kbit/s (1 kbps = 1,000 bit/s); null = no serialisation delay. */
  kbps: number | null;
  /** Probability (0–1) that a segment is lost and held `retransmitMs`. */
  loss: number;
  /** How long a lost segment is held, ms. */
  retransmitMs: number;
  /** Nothing is sent before this time (the handshake), ms on the caller's clock. */
  notBeforeMs: number;
  /** Jitter's uniform [0, 1) source. */
  jitterRandom: () => number;
  /** Loss's uniform [0, 1) source: its own stream, so a change of loss never moves the jitter. */
  lossRandom: () => number;
}

export interface PlannedSegment {
  bytes: number;
  /** When the segment is due at the receiver, ms on the caller's clock. */
  releaseAtMs: number;
  /** Lost once and held `retransmitMs`. */
  held: boolean;
}

/**
 * The model of one direction as a pure schedule: arrivals in, release times out. The relay runs on
 * it, and tests check it exactly (FIFO, jitter never reorders, serialisation = bytes / rate, a lost
 * segment holds everything behind it).
 */
export class ReleaseSchedule {
  readonly #o: ScheduleOptions;
  /** When the link finishes serialising what it was given. */
  #linkFreeAtMs = Number.NEGATIVE_INFINITY;
  #lastReleaseMs = Number.NEGATIVE_INFINITY;

  constructor(options: ScheduleOptions) {
    this.#o = options;
  }

  /** Segments for `bytes` read at `arrivalMs`, in order, each with its release time. */
  plan(arrivalMs: number, bytes: number): PlannedSegment[] {
    const o = this.#o;
    const out: PlannedSegment[] = [];
    const ready = Math.max(arrivalMs, o.notBeforeMs);
    for (let offset = 0; offset < bytes; offset += SEGMENT_BYTES) {
      const n = Math.min(SEGMENT_BYTES, bytes - offset);
      const sent = Math.max(ready, this.#linkFreeAtMs) + (o.kbps === null ? 0 : (n * 8) / o.kbps);
      if (o.kbps !== null) this.#linkFreeAtMs = sent;
      const jitter = o.jitterMs > 0 ? o.jitterRandom() * o.jitterMs : 0;
      const held = o.loss > 0 && o.lossRandom() < o.loss;
      const due = sent + o.delayMs + jitter + (held ? o.retransmitMs : 0);
      this.#lastReleaseMs = Math.max(due, this.#lastReleaseMs);
      out.push({ bytes: n, releaseAtMs: this.#lastReleaseMs, held });
    }
    return out;
  }

  /** When an end (FIN) read at `arrivalMs` reaches the receiver: after the data, one delay later. */
  planEnd(arrivalMs: number): number {
    const sent = Math.max(arrivalMs, this.#o.notBeforeMs, this.#linkFreeAtMs);
    this.#lastReleaseMs = Math.max(sent + this.#o.delayMs, this.#lastReleaseMs);
    return this.#lastReleaseMs;
  }
}

export interface LatenessSummary {
  /** Releases recorded (one per segment). */
  count: number;
  /** null while count is 0: no figure is made up. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/**
 * Lateness in µs, log-linear buckets (exact below 128 µs, then 64 per power of two: ≤ 1.6 % high).
 * Hand-rolled because `npm start` uses the relay and hdr-histogram-js is a devDependency.
 */
class Histogram {
  #buckets: number[] = [];
  #count = 0;
  #maxUs = 0;

  record(ms: number): void {
    const us = Math.min(Math.max(0, Math.round(ms * 1000)), 2 ** 31 - 1);
    let i = us;
    if (us >= 128) {
      const shift = 31 - Math.clz32(us) - 6;
      i = shift * 64 + (us >>> shift);
    }
    this.#buckets[i] = (this.#buckets[i] ?? 0) + 1;
    this.#count++;
    if (us > this.#maxUs) this.#maxUs = us;
  }

  /** The bucket's highest value, never above the exact max. */
  #upper(i: number): number {
    if (i < 128) return i;
    const shift = Math.floor(i / 64) - 1;
    return Math.min((i - shift * 64 + 1) * 2 ** shift - 1, this.#maxUs);
  }

  #quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i] ?? 0;
      if (seen >= rank) return this.#upper(i) / 1000;
    }
    return this.#maxUs / 1000;
  }

  summary(): LatenessSummary {
    if (this.#count === 0) return { count: 0, p50Ms: null, p99Ms: null, maxMs: null };
    return { count: this.#count, p50Ms: this.#quantile(0.5), p99Ms: this.#quantile(0.99), maxMs: this.#maxUs / 1000 };
  }

  reset(): void {
    this.#buckets = [];
    this.#count = 0;
    this.#maxUs = 0;
  }
}

export interface RelayCounters {
  connectionsOpened: number;
  connectionsOpen: number;
  /** Bytes written to the server / to the client. */
  bytesUp: number;
  bytesDown: number;
  /** Segments written (each has one lateness sample). */
  segmentsReleased: number;
  /** Segments held for loss (retransmitMs each). */
  segmentsHeld: number;
  /** Times a full queue stopped the relay reading a sender. */
  readPauses: number;
  /** Connections ended by a reset (error, or a leg closed early) rather than two FINs; close() is not counted. */
  resets: number;
  /** Connections the listener failed to accept (EMFILE and the like); the relay keeps listening. */
  acceptErrors: number;
  /** Bytes queued now, all connections and directions. */
  queuedBytes: number;
  /** The most one direction of one connection ever held; ≤ queueBytes by construction. */
  peakQueuedBytes: number;
}

type MutableCounters = Omit<RelayCounters, 'connectionsOpen' | 'queuedBytes'>;

export interface RelayOptions {
  target: { host: string; port: number };
  profile: NetworkProfile;
  /** Seeds jitter and loss. @default RELAY_DEFAULTS.seed */
  seed?: number | undefined;
  /** @default '127.0.0.1' */
  listenHost?: string | undefined;
  /** @default 0 (any free port) */
  listenPort?: number | undefined;
  /** Bytes one direction of one connection may queue before its sender is paused. @default 256 KiB */
  queueBytes?: number | undefined;
}

interface Queued {
  /** null: the end (FIN). */
  buf: Buffer | null;
  releaseAtMs: number;
}

interface Shared {
  readonly queueBytes: number;
  readonly lateness: Histogram;
  readonly counters: MutableCounters;
}

/** One direction of one connection: read from `src`, release into `dst` on schedule. */
class Direction {
  readonly #queue: (Queued | undefined)[] = [];
  #head = 0;
  queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #paused = false;
  #blocked = false;
  /** When `dst` last drained: a segment kept back by the receiver is late from then, not from its due time. */
  #drainedAtMs = Number.NEGATIVE_INFINITY;
  #dead = false;

  constructor(
    readonly name: 'up' | 'down',
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly schedule: ReleaseSchedule,
    private readonly shared: Shared,
  ) {}

  onData(chunk: Buffer): void {
    if (this.#dead) return;
    const room = this.shared.queueBytes - this.queuedBytes;
    let take = chunk;
    if (chunk.length > room) {
      // Take what fits; the rest goes back to the socket, which stops reading once its own buffer is
      // full: the sender's kernel buffers fill and its write() returns false.
      this.src.pause();
      this.#paused = true;
      this.shared.counters.readPauses++;
      this.src.unshift(chunk.subarray(room));
      if (room === 0) return;
      take = chunk.subarray(0, room);
    }
    const now = performance.now();
    let offset = 0;
    for (const seg of this.schedule.plan(now, take.length)) {
      this.#queue.push({ buf: take.subarray(offset, offset + seg.bytes), releaseAtMs: seg.releaseAtMs });
      offset += seg.bytes;
      if (seg.held) this.shared.counters.segmentsHeld++;
    }
    this.queuedBytes += take.length;
    if (this.queuedBytes > this.shared.counters.peakQueuedBytes)
      this.shared.counters.peakQueuedBytes = this.queuedBytes;
    this.#arm();
  }

  onEnd(): void {
    if (this.#dead) return;
    this.#queue.push({ buf: null, releaseAtMs: this.schedule.planEnd(performance.now()) });
    this.#arm();
  }

  /** Drops everything queued and stops: the connection was reset. */
  kill(): void {
    this.#dead = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#head = 0;
    this.queuedBytes = 0;
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#blocked || this.#dead) return;
    const head = this.#queue[this.#head];
    if (head === undefined) return;
    const waitMs = head.releaseAtMs - performance.now();
    if (waitMs <= 0) this.#release();
    // Rounded up: Node's timers count whole ms from the loop's cached time, which can fire early; #release re-arms then.
    else this.#timer = setTimeout(this.#release, Math.ceil(waitMs));
  }

  readonly #release = (): void => {
    this.#timer = undefined;
    if (this.#dead) return;
    const now = performance.now();
    const { counters, lateness } = this.shared;
    let corked = false;
    while (!this.#blocked) {
      const next = this.#queue[this.#head];
      if (next === undefined || next.releaseAtMs > now) break;
      this.#queue[this.#head++] = undefined;
      if (next.buf === null) {
        this.dst.end();
        continue;
      }
      if (!corked) {
        this.dst.cork();
        corked = true;
      }
      lateness.record(now - Math.max(next.releaseAtMs, this.#drainedAtMs));
      counters.segmentsReleased++;
      if (this.name === 'up') counters.bytesUp += next.buf.length;
      else counters.bytesDown += next.buf.length;
      this.queuedBytes -= next.buf.length;
      if (!this.dst.write(next.buf)) {
        this.#blocked = true;
        this.dst.once('drain', this.#onDrain);
      }
    }
    if (corked) this.dst.uncork();
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.#paused && this.queuedBytes < this.shared.queueBytes / 2) {
      this.#paused = false;
      this.src.resume();
    }
    this.#arm();
  };

  readonly #onDrain = (): void => {
    this.#blocked = false;
    this.#drainedAtMs = performance.now();
    this.#release();
  };
}

/** A leg closed cleanly: it ended its side (we saw its FIN) and we ended ours (our FIN flushed). */
const closedCleanly = (s: Socket): boolean => s.readableEnded && s.writableFinished;

/** Closes with RST, so the peer sees ECONNRESET as it would behind a router; a leg still connecting is just destroyed. */
function reset(s: Socket): void {
  if (s.destroyed) return;
  if (s.connecting) s.destroy();
  else s.resetAndDestroy();
}

export class Relay {
  readonly profile: NetworkProfile;
  readonly seed: number;
  readonly queueBytes: number;
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #lateness = new Histogram();
  readonly #counters: MutableCounters = {
    connectionsOpened: 0,
    bytesUp: 0,
    bytesDown: 0,
    segmentsReleased: 0,
    segmentsHeld: 0,
    readPauses: 0,
    resets: 0,
    acceptErrors: 0,
    peakQueuedBytes: 0,
  };
  /** Open connections (until both legs have closed). */
  readonly #links = new Set<{ up: Direction; down: Direction; client: Socket; server: Socket; reset: () => void }>();
  readonly #idle: (() => void)[] = [];
  #closing = false;
  #port = 0;

  private constructor(options: RelayOptions, server: Server, queueBytes: number, seed: number) {
    this.profile = options.profile;
    this.#target = { ...options.target };
    this.#server = server;
    this.queueBytes = queueBytes;
    this.seed = seed;
    server.on('connection', (client) => this.#accept(client));
    // After listen, the listener's only errors are failed accepts: count them rather than crash npm start.
    server.on('error', () => {
      this.#counters.acceptErrors++;
    });
  }

  /** Starts a relay listening on `listenHost:listenPort` in front of `target`. */
  static async start(options: RelayOptions): Promise<Relay> {
    const queueBytes = options.queueBytes ?? RELAY_DEFAULTS.queueBytes;
    if (!Number.isInteger(queueBytes) || queueBytes < SEGMENT_BYTES) {
      throw new ConfigError('queueBytes', queueBytes, `expected an integer of at least ${SEGMENT_BYTES} (one segment)`);
    }
    const seed = options.seed ?? RELAY_DEFAULTS.seed;
    if (!Number.isInteger(seed)) throw new ConfigError('seed', seed, 'expected an integer');
    const { port } = options.target;
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new ConfigError('target.port', port, 'expected a port from 1 to 65535');
    // allowHalfOpen: a FIN from one side is passed on (after its data), not answered by closing ours.
    const server = net.createServer({ allowHalfOpen: true });
    const relay = new Relay(options, server, queueBytes, seed);
    const listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(
        options.listenPort ?? RELAY_DEFAULTS.listenPort,
        options.listenHost ?? RELAY_DEFAULTS.listenHost,
        () => {
          server.off('error', reject);
          resolve();
        },
      );
    });
    await listening;
    relay.#port = (server.address() as AddressInfo).port;
    return relay;
  }

  /** The port clients connect to (still readable after close()). */
  get port(): number {
    return this.#port;
  }

  #accept(client: Socket): void {
    const p = this.profile;
    const index = this.#counters.connectionsOpened++;
    const acceptedAt = performance.now();
    const server = net.connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    server.setNoDelay(true);
    const direction = (name: 'up' | 'down', n: number, src: Socket, dst: Socket, kbps: number | null) =>
      new Direction(
        name,
        src,
        dst,
        new ReleaseSchedule({
          delayMs: p.rttMs / 2,
          jitterMs: p.jitterMs,
          kbps,
          loss: p.loss,
          retransmitMs: p.retransmitMs,
          notBeforeMs: acceptedAt + p.rttMs,
          jitterRandom: mulberry32(streamSeed(this.seed, index, n, 0)),
          lossRandom: mulberry32(streamSeed(this.seed, index, n, 1)),
        }),
        { queueBytes: this.queueBytes, lateness: this.#lateness, counters: this.#counters },
      );
    const up = direction('up', 0, client, server, p.upKbps);
    const down = direction('down', 1, server, client, p.downKbps);
    let closed = 0;
    let wasReset = false;
    const resetBoth = () => {
      if (wasReset) return;
      wasReset = true;
      if (!this.#closing) this.#counters.resets++;
      up.kill();
      down.kill();
      reset(client);
      reset(server);
    };
    const link = { up, down, client, server, reset: resetBoth };
    this.#links.add(link);
    const onClose = (leg: Socket) => () => {
      if (!closedCleanly(leg)) resetBoth();
      if (++closed < 2) return;
      this.#links.delete(link);
      if (this.#links.size === 0) for (const done of this.#idle.splice(0)) done();
    };
    // Listeners first, before anything can fail (an unhandled 'error' would crash the process).
    client.on('data', (chunk: Buffer) => up.onData(chunk));
    server.on('data', (chunk: Buffer) => down.onData(chunk));
    client.on('end', () => up.onEnd());
    server.on('end', () => down.onEnd());
    client.on('error', resetBoth);
    server.on('error', resetBoth);
    client.on('close', onClose(client));
    server.on('close', onClose(server));
  }

  /** Lateness of every release so far: actual − intended release time. */
  lateness(): LatenessSummary {
    return this.#lateness.summary();
  }

  resetLateness(): void {
    this.#lateness.reset();
  }

  counters(): RelayCounters {
    let queuedBytes = 0;
    for (const { up, down } of this.#links) queuedBytes += up.queuedBytes + down.queuedBytes;
    return { ...this.#counters, connectionsOpen: this.#links.size, queuedBytes };
  }

  /** Stops listening, resets every connection (queued data is dropped) and resolves once all are closed. */
  async close(): Promise<void> {
    this.#closing = true;
    const listening = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const drained = new Promise<void>((resolve) => {
      if (this.#links.size === 0) resolve();
      else this.#idle.push(resolve);
    });
    for (const link of this.#links) link.reset();
    await Promise.all([listening, drained]);
  }
}
