import {
  type HeaderMode,
  PAYLOADS,
  type ScenarioParams,
  type ServerName,
  type TransportName,
} from '../../report/types.js';
import { HTTP_PROTOCOLS } from './http-setup.js';

/**
 * The scenario suites. A scenario is clients × publish rate × payload × measured seconds; every suite
 * runs it for each transport on each server, over its network (loopback unless it names one).
 * Durations are what each suite's `budgetSec` allows on a 2-core machine; the bench prints its estimate
 * before it starts and the summary says by how much it missed; see docs/bench.md's "Method".
 */

/**
 * A scenario as a suite states it: the report's scenario parameters (one definition, report/types.ts),
 * except that the network may be left unset — `loopback` in a suite; `--network` replaces the suite's
 * networks (see options.ts).
 */
/** The gate's instruction counts (bench/stages/instructions.ts): clients and windows per transport. */
export interface InstructionPlan {
  clients: number;
  payloadBytes: number;
  /** Messages per window, per transport; one window's worth is published uninstrumented first (warm-up). */
  windowMessages: Readonly<Record<TransportName, number>>;
  windows: number;
}

export type ScenarioSpec = Omit<ScenarioParams, 'network'> & { network?: string };

export interface Suite {
  scenarios: ScenarioSpec[];
  repeats: number;
  /** Idle connections for the memory measurement (0 = skip). */
  memoryConnections: number;
  /**
   * Measured passes per memory target; the figure is their median. The gate takes 3: single SSE passes
   * read up to +15 % apart with nothing changed (three gate runs on 2026-12-01), the median of three much less.
   * @default 1
   */
  memoryRepeats?: number;
  autocannonDurationSec: number;
  microTimeMs: number;
  /** Wall-time budget, seconds: repeats are lowered (never below 1) until the estimate fits. */
  budgetSec: number;
  /** The clients' headers unless `--headers` says otherwise. @default 'browser' */
  headers?: HeaderMode;
  /** Instructions per delivered message under callgrind (bench/stages/instructions.ts); the gate only. */
  instructions?: InstructionPlan;
  /** Servers whose idle memory is measured. @default every server of the lab's endpoints */
  memoryServers?: readonly ServerName[];
}

/** The claims suite's scenario names, as bench/stages/claims.ts looks them up. */
export const CLAIM_SCENARIOS = Object.freeze({
  shortPolls: 'claims-1000-short-polls',
  ws1000: 'claims-1000-ws',
  ws100: 'claims-ws-100',
  headersH2: 'claims-headers-h2',
  shift: 'claims-shift',
});

/** The chat suite's load: a busy group chat, every client sending and receiving everyone's. */
const CHAT = Object.freeze({
  name: 'chat-20c-2r',
  clients: 20,
  ratePerSec: 2,
  payloadBytes: 100,
  durationSec: 5,
  workload: 'chat',
  servers: ['lab'],
} as const satisfies ScenarioSpec);

/**
 * The chat suite's busier load, where batching pays: 10 clients each sending 20 a second (a cursor, a
 * game's moves), each send a POST on SSE and polling; over 4g a POST takes a round trip of 170 ms, so
 * a page needs several connections at once (senders.ts) unless it batches.
 */
const CHAT_BUSY = Object.freeze({
  name: 'chat-10c-20r',
  clients: 10,
  ratePerSec: 20,
  payloadBytes: 100,
  durationSec: 5,
  workload: 'chat',
  servers: ['lab'],
  network: '4g',
} as const satisfies ScenarioSpec);

/** `--compare-compression`: each realistic payload, uncompressed and compressed both ways. */
const COMPRESSION_SCENARIOS: ScenarioSpec[] = PAYLOADS.flatMap((payload) =>
  ([undefined, 'on', 'no-context-takeover'] as const).map((compression) => ({
    name: `100c-100r-${payload}${compression === undefined ? '' : compression === 'on' ? '-deflate' : '-deflate-alone'}`,
    clients: 100,
    ratePerSec: 100,
    payloadBytes: 100,
    durationSec: 3,
    payload,
    servers: ['lab' as const],
    ...(compression ? { compression } : {}),
  })),
);

export const SUITES: Record<
  'default' | 'quick' | 'check' | 'feeds' | 'protocols' | 'claims' | 'chat' | 'compression',
  Suite
> = {
  default: {
    scenarios: [
      // 3 s windows, not 10: sixteen (server, transport) targets per scenario (the floor on every
      // transport) at three repeats, the medians the targets need, in 15 minutes.
      { name: '100c-100r', clients: 100, ratePerSec: 100, payloadBytes: 100, durationSec: 3 },
      { name: '1000c-100r', clients: 1000, ratePerSec: 100, payloadBytes: 100, durationSec: 3 },
      { name: '100c-2000r', clients: 100, ratePerSec: 2000, payloadBytes: 100, durationSec: 3 },
      // The first scenario again over a mobile network, so the headline shows the ranking users see; the
      // lab only (the ranking is between transports).
      {
        name: '100c-100r',
        clients: 100,
        ratePerSec: 100,
        payloadBytes: 100,
        durationSec: 3,
        network: '4g',
        servers: ['lab'],
      },
    ],
    repeats: 3,
    memoryConnections: 1000,
    autocannonDurationSec: 3,
    microTimeMs: 500,
    budgetSec: 900,
  },
  quick: {
    scenarios: [{ name: '100c-100r', clients: 100, ratePerSec: 100, payloadBytes: 100, durationSec: 3 }],
    repeats: 1,
    memoryConnections: 200,
    autocannonDurationSec: 1,
    microTimeMs: 200,
    budgetSec: 90,
  },
  /** `--compare-feeds`: the lab on the memory feed against the lab on the Redis feed. */
  feeds: {
    scenarios: [{ name: 'feeds', clients: 100, ratePerSec: 100, payloadBytes: 100, durationSec: 5 }],
    repeats: 3,
    memoryConnections: 0,
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 300,
  },
  /**
   * `npm run bench:check` (the CI gate), ≤ 4 min:
   * - `wire`, the lab: lockstep (see lockstep.ts), so that every poll answer and every stream write
   *   carries exactly one message, and short polling makes one full and one empty poll per message,
   *   whatever the machine's load: bytes and requests per message are then deterministic but for the
   *   digits of ids;
   * - `load`, lab and bare: enough concurrent traffic that a lost or duplicated message shows (gated:
   *   none), one repeat each; latency and CPU time are shown, not gated (p50 lab ÷ bare moved +209 %,
   *   CPU time ±50 % between runs of the same tree), so repeats would only cost time: three took 50 s of
   *   a 242 s gate on a quiet machine;
   * - `instructions`: the gate's CPU figure, instructions per delivered message counted by callgrind in
   *   lockstep windows on the lab, bare, the floor and a doctored lab (the positive control); windows
   *   hold fewer messages where a delivery costs more (a poll is a whole request), so that each window
   *   counts 13–30 million instructions and a transport takes ~10 s under valgrind.
   */
  check: {
    scenarios: [
      {
        name: 'wire',
        clients: 20,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 3,
        repeats: 1,
        pace: 'lockstep',
        servers: ['lab'],
      },
      {
        name: 'load',
        clients: 100,
        ratePerSec: 200,
        payloadBytes: 100,
        durationSec: 2,
        repeats: 1,
        servers: ['lab', 'bare'],
      },
    ],
    repeats: 1,
    memoryConnections: 500,
    // The median of five passes: with three, an unchanged tree read WebSocket +17 % once (passes of
    // 3,895, 3,820 and 3,216 B/conn against a baseline of 3,260) while the callgrind lanes kept both
    // cores busy. The passes run beside the instruction counts, which take longer: no wall time added.
    memoryRepeats: 5,
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 240,
    // The gate gates the lab's idle memory only.
    memoryServers: ['lab'],
    instructions: {
      clients: 10,
      payloadBytes: 100,
      // The median of five: a window that meets a one-off event (a GC the heap's growth triggers, a
      // heartbeat) counts up to 20 % more; measured, at most one window in five did.
      windows: 5,
      windowMessages: { ws: 12, sse: 12, poll: 4, 'short-poll': 2 },
    },
    // The gate compares against a baseline measured with the client libraries' own small requests;
    // it catches changes in the servers, which the header set would only dilute.
    headers: 'minimal',
  },
  /**
   * `--compare-protocols`: one load over cleartext HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS,
   * lab and bare (Socket.IO runs cleartext only), browser headers.
   */
  protocols: {
    scenarios: HTTP_PROTOCOLS.map((protocol) => ({
      name: '100c-100r',
      clients: 100,
      ratePerSec: 100,
      payloadBytes: 100,
      durationSec: 3,
      protocol,
      servers: ['lab', 'bare'],
    })),
    repeats: 3,
    memoryConnections: 0,
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 480,
  },
  /**
   * `--claims` (bench/stages/claims.ts): each claim measured as stated, browser headers. A chat-like rate of
   * 10 msg/s; 1,000 short-polling clients every 2 s; WebSocket at the same rate, on loopback and over
   * 4g; the header cost over HTTP/2; the tutorials' `messages.shift()` poll (server `shift`) against
   * the lab's with ten clients.
   */
  claims: {
    scenarios: [
      {
        name: CLAIM_SCENARIOS.shortPolls,
        clients: 1000,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 6,
        shortPollIntervalMs: 2000,
        servers: ['lab'],
        transports: ['short-poll'],
      },
      {
        name: CLAIM_SCENARIOS.ws1000,
        clients: 1000,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 3,
        servers: ['lab'],
        transports: ['ws'],
      },
      {
        name: CLAIM_SCENARIOS.ws100,
        clients: 100,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 3,
        servers: ['lab'],
        transports: ['ws'],
      },
      {
        name: CLAIM_SCENARIOS.ws100,
        clients: 100,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 3,
        network: '4g',
        servers: ['lab'],
        transports: ['ws'],
      },
      {
        name: CLAIM_SCENARIOS.headersH2,
        clients: 100,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 4,
        shortPollIntervalMs: 2000,
        protocol: 'h2',
        servers: ['lab'],
        transports: ['short-poll'],
      },
      {
        name: CLAIM_SCENARIOS.shift,
        clients: 10,
        ratePerSec: 10,
        payloadBytes: 100,
        durationSec: 3,
        shortPollIntervalMs: 1000,
        servers: ['lab', 'shift'],
        transports: ['short-poll'],
      },
    ],
    repeats: 3,
    memoryConnections: 0,
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 300,
  },
  /**
   * `--chat` (bench/measure/chat.ts): 20 clients each sending 2 msg/s (40 msg/s into the feed, 800
   * deliveries a second) and receiving everyone's, on every lab transport: on loopback, over 4g (where a
   * request per send costs a round trip), through nginx, and over HTTP/2. Socket.IO is the peer (its emit
   * with acknowledgement, over WebSocket and over polling) on loopback and 4g, where it runs (cleartext,
   * direct); bare and the floor take no client sends. Then 10 clients × 20 msg/s over 4g, one send per
   * message and batched within 50 ms. And one flooded: a 21st client sending 500 a second on loopback.
   */
  /**
   * `--compare-compression`: the lab at 100 clients × 100 msg/s with realistic messages (chat, price
   * ticks, JSON patches: bench/measure/payloads.ts), uncompressed, then compressed — permessage-deflate
   * with context takeover and without, gzip on SSE and polling — in one run, every transport.
   */
  compression: {
    scenarios: COMPRESSION_SCENARIOS,
    repeats: 3,
    // Enough connections that one compressor's size shows per connection; each measured idle and active.
    memoryConnections: 200,
    memoryServers: ['lab'],
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 900,
  },
  chat: {
    scenarios: [
      { ...CHAT, servers: ['lab', 'socketio'] },
      { ...CHAT, servers: ['lab', 'socketio'], network: '4g' },
      // Pages on another origin, over 4g: a preflight per client before its first send, then cached.
      { ...CHAT, name: 'chat-20c-2r-cors', servers: [...CHAT.servers], network: '4g', crossOrigin: true },
      { ...CHAT, servers: [...CHAT.servers], proxy: 'nginx' },
      { ...CHAT, servers: [...CHAT.servers], protocol: 'h2' },
      // The hostile case: one more page sends 500 a second, 10 × its budget (sendMessagesPerSec), never
      // backing off; the others' figures read against the loopback rows above.
      { ...CHAT, name: 'chat-20c-2r-flood', servers: [...CHAT.servers], floodPerSec: 500 },
      // One send per message against what falls due within 50 ms sent as one batch (about two a batch).
      { ...CHAT_BUSY, servers: [...CHAT_BUSY.servers] },
      { ...CHAT_BUSY, name: 'chat-10c-20r-batched', servers: [...CHAT_BUSY.servers], batchMs: 50 },
    ],
    repeats: 3,
    memoryConnections: 0,
    autocannonDurationSec: 0,
    microTimeMs: 0,
    budgetSec: 900,
  },
};

/**
 * Capacity sweep, the websocket-shootout rule measured at the receivers: add clients until p95
 * delivery latency against the schedule exceeds 250 ms or any message is lost.
 */
export const SWEEP = Object.freeze({
  p95LimitMs: 250,
  ratePerSec: 10,
  durationSec: 3,
  clientSteps: [100, 250, 500, 1000, 2000, 4000, 8000] as readonly number[],
});
