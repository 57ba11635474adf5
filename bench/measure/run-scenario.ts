/**
 * One measured run: N clients of one transport against one server, an open-loop publisher, every
 * delivery checked, and the server's /stats deltas over the measured window turned into per-message
 * figures. A run with loss, duplicates, reordering, client errors, failed publishes or a publisher
 * behind schedule is `invalid` with the reason — its numbers are kept but never presented as a result.
 * Over a relay (relay.ts) the clients connect through it, the publisher and /stats do not; a relay
 * behind its schedule, or deliveries faster than its one-way delay, make the run invalid too.
 */
import { clientsOf, sendingClientsOf, type SendingGroup } from '../clients/index.js';
import { type ChatOutcome, sendFromClients } from './chat.js';
import type { ClientFactory, ClientSink } from '../clients/types.js';
import type { ScenarioParams } from '../../report/types.js';
import { floorFor } from './floor-bytes.js';
import { publishLockstep, type LockstepOutcome } from './lockstep.js';
import { publishInWorker } from './publisher.js';
import type { HeaderMode } from '../clients/browser-headers.js';
import type { PayloadKind } from './payloads.js';
import { type Histogram, Recorder } from './recorder.js';
import type { NetworkRoute } from '../processes/pool.js';
import { belowOneWayProblem, relayLatenessProblem } from '../processes/relay-process.js';
import type { ServerHandle, ServerStats } from '../processes/server-process.js';
import type { Target } from '../plan/targets.js';

export interface RunParams {
  clients: number;
  /** Test and field hook: a client factory of the caller's own instead of the target's kind (bench/clients/index.ts). */
  clientFactory?: ClientFactory;
  ratePerSec: number;
  payloadBytes: number;
  durationSec: number;
  /** Short polling interval. @default 1000 */
  shortPollIntervalMs?: number;
  /** The hold long-polling clients ask for. @default 25000 */
  longPollTimeoutMs?: number;
  /** `lockstep`: one message at a time, each delivered to every client before the next (see lockstep.ts). @default 'open-loop' */
  pace?: Pace;
  /** Test hook, see Recorder. */
  lossyEvery?: number;
  /** Publisher lag p99 above which the run is invalid. @default PUBLISHER_LAG_LIMIT_MS */
  maxPublisherLagMs?: number;
  /** The network the clients reach the server over, and its relay (none when the profile is direct). */
  network?: NetworkRoute;
  /** How long the clients get to connect before the run fails. @default 30000 */
  connectTimeoutMs?: number;
  /** A reverse proxy in front of the server (bench/processes/nginx.ts): clients connect to it; publisher and /stats go direct. */
  proxy?: { baseUrl: string };
  /** The clients' header set and cookie (the protocol is the target's). */
  headers: HeaderMode;
  cookieBytes: number;
  /**
   * The chat workload (chat.ts): the clients themselves send, `ratePerSec` each, and every client
   * receives every client's messages; no publisher.
   */
  chat?: boolean;
  /** Chat sends queued this long and sent as one batch (chat.ts); absent: one send per message. */
  batchMs?: number;
  /** Chat: one more client floods at this rate, past its send budget (chat.ts); absent: none. */
  floodPerSec?: number;
  /**
   * How long the drain waits with no new delivery before it counts what is missing as lost. A run that
   * cuts clients (a restart) sets it above their longest reconnect wait: a client still waiting to
   * reconnect has lost nothing yet. @default DRAIN_QUIET_MS
   */
  drainQuietMs?: number;
  /** Realistic messages instead of padding (payloads.ts). */
  payload?: PayloadKind;
}

export type Pace = NonNullable<ScenarioParams['pace']>;

export type RunOutcome = { status: 'ok' } | { status: 'invalid'; reason: string };

export interface RunResult {
  outcome: RunOutcome;
  published: number;
  delivered: number;
  expected: number;
  lost: number;
  duplicated: number;
  reordered: number;
  gaps: number;
  /** ms; null when nothing was delivered. */
  latencyMs: { p50: number | null; p90: number | null; p95: number | null; p99: number | null; max: number | null };
  publisherLagMs: { p99: number; max: number };
  wire: { bytesOutPerMsg: number | null; bytesInPerMsg: number | null; requestsPerMsg: number | null };
  /**
   * Client → server bytes per HTTP request: for polling over the measured window (GET requests carry
   * no body: this is their headers, framed, TLS records included); for SSE and WebSocket over the
   * connect phase (the opening request with its TLS handshake and HTTP/2 preface). Null if none was made.
   */
  bytesInPerRequest: number | null;
  /** HTTP requests per second over the measured window (publishing and drain), wall clock. */
  requestsPerSec: number | null;
  /** HTTP requests (reconnects and upgrades included) over the measured window, as the server counted them. */
  requests: number;
  /** Errors the clients saw (a failed poll, an EventSource error, a WebSocket error), and the first. */
  clientErrors: number;
  firstClientError: string | undefined;
  /** Polling: answers over the measured window and how many were empty; null for the other transports. */
  polls: { answers: number; empty: number } | null;
  cpuUsPerMsg: number | null;
  eventLoopDelayP99Ms: number;
  /** Per delivered message: its JSON on the wire and the protocol's floor overhead (SSE and WS only). */
  floor: { jsonBytesPerMsg: number; floorBytesPerMsg: number } | null;
  /** The relay's lateness p99 over the measured window, ms; null without a relay or with nothing relayed. */
  relayLatenessP99Ms: number | null;
  /** The chat workload's own figures; null for a publisher's run. */
  chat: ChatFigures | null;
}

/** What a chat run measures besides the usual figures (per sent message: each is delivered to every client). */
export interface ChatFigures {
  sent: number;
  refused: number;
  duplicates: number;
  retries: number;
  /** Requests or frames the sends went in: `sent` unless batched. */
  batches: number;
  /** The flooding client's sends (chat.ts FloodOutcome, without its first refusal); null without one. */
  flood: { sent: number; accepted: number; refused: number; cut: number } | null;
  /** Due → acknowledged to its sender, ms. */
  ackMs: { p50: number | null; p99: number | null };
  /** Due → delivered to the last of the clients, ms. */
  everyoneMs: { p50: number | null; p99: number | null };
  /** Client → server bytes (every request and frame, sends' own connections included) per sent message. */
  bytesUpPerSend: number | null;
  /** HTTP requests (sends, polls, connects) per sent message. */
  requestsPerSend: number | null;
  /** Server → client bytes (answers, streams, frames, sends' answers) per delivered message. */
  bytesDownPerDelivery: number | null;
}

/**
 * A publisher later than this against its schedule (p99) means the load generator, not the server,
 * set the pace: the run is invalid. 100 ms is well above timer and GC jitter on a busy 2-core machine.
 */
export const PUBLISHER_LAG_LIMIT_MS = 100;
/**
 * After the last publish, deliveries are awaited until all arrived, or nothing new arrived for
 * DRAIN_QUIET_MS (plus two polling intervals for short polling), or DRAIN_MAX_MS passed. What is
 * missing then counts as lost.
 */
const DRAIN_QUIET_MS = 1_000;
const DRAIN_MAX_MS = 15_000;

async function drain(count: () => number, target: number, quietMs: number): Promise<void> {
  const start = performance.now();
  let last = count();
  let lastChange = start;
  while (count() < target) {
    const now = performance.now();
    if (count() !== last) {
      last = count();
      lastChange = now;
    }
    if (now - lastChange > quietMs || now - start > DRAIN_MAX_MS) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
const CONNECT_TIMEOUT_MS = 30_000;

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The flooder's receiving side: it receives like any page, but it is not one of the audited clients. */
const UNAUDITED: ClientSink = { message() {}, gap() {}, reset() {}, error() {} };

const perMsg = (delta: number, delivered: number): number | null => (delivered > 0 ? delta / delivered : null);

const ms = (h: Histogram, q: number): number | null => (h.totalCount > 0 ? h.getValueAtPercentile(q) / 1000 : null);

function chatFigures(
  pub: ChatOutcome,
  recorder: Recorder,
  wire: { up: number; down: number; requests: number },
  delivered: number,
): ChatFigures {
  const accepted = pub.ids.length;
  return {
    sent: pub.sent,
    refused: pub.refused,
    duplicates: pub.duplicates,
    retries: pub.retries,
    batches: pub.batches,
    flood: pub.flood
      ? { sent: pub.flood.sent, accepted: pub.flood.accepted, refused: pub.flood.refused, cut: pub.flood.cut }
      : null,
    ackMs: { p50: ms(pub.ack, 50), p99: ms(pub.ack, 99) },
    everyoneMs: { p50: ms(recorder.everyone, 50), p99: ms(recorder.everyone, 99) },
    bytesUpPerSend: perMsg(wire.up, accepted),
    requestsPerSend: perMsg(wire.requests, accepted),
    bytesDownPerDelivery: perMsg(wire.down, delivered),
  };
}

/** SSE and WebSocket make their request when they connect, polling once per answer. */
const opensPerConnection = (t: Target['transport']): boolean => t === 'sse' || t === 'ws';

/** The clients did not all connect in time: for the field scenarios a symptom (a proxy holding a stream's headers). */
export class ClientsNotConnected extends Error {
  constructor(readonly afterMs: number) {
    super(`clients not connected after ${afterMs} ms`);
  }
}

export async function runScenario(server: ServerHandle, t: Target, p: RunParams): Promise<RunResult> {
  const connectMs = p.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const floorOf = t.server === 'socketio' ? undefined : floorFor(t.transport);
  const recorder = new Recorder({
    clients: p.clients,
    ...(p.lossyEvery ? { lossyEvery: p.lossyEvery } : {}),
    ...(floorOf ? { floorOf } : {}),
  });
  const lockstep = p.pace === 'lockstep';
  const key = t.transport;
  const initial = await server.stats();
  const since = initial.feed.lastId;
  const relay = p.network?.relay;
  const sendingFactory = p.chat ? sendingClientsOf(t) : undefined;
  const groupOptions = {
    baseUrl: relay?.baseUrl ?? p.proxy?.baseUrl ?? server.baseUrl,
    http: { protocol: t.protocol, headers: p.headers, cookieBytes: p.cookieBytes },
    ...(t.compression ? { compression: true } : {}),
    ...(t.pageOrigin ? { pageOrigin: t.pageOrigin } : {}),
    count: p.clients,
    since,
    sink: recorder,
    ...(p.shortPollIntervalMs ? { shortPollIntervalMs: p.shortPollIntervalMs } : {}),
    ...(p.longPollTimeoutMs ? { longPollTimeoutMs: p.longPollTimeoutMs } : {}),
    ...(lockstep ? { stepped: true } : {}),
  };
  const group = (sendingFactory ?? p.clientFactory ?? clientsOf(t))(groupOptions);
  // The flooder: one more page of the same transport, its deliveries not audited (it is cut and
  // reconnects as a flooding WebSocket is), its sends counted apart.
  const flooder =
    sendingFactory && p.floodPerSec ? sendingFactory({ ...groupOptions, count: 1, sink: UNAUDITED }) : undefined;
  const job = {
    controlUrl: server.controlUrl,
    ratePerSec: p.ratePerSec,
    payloadBytes: p.payloadBytes,
    ...(p.payload ? { payload: p.payload } : {}),
  };
  let runs = 0;
  const publish = (durationSec: number): Promise<LockstepOutcome | ChatOutcome> =>
    sendingFactory
      ? sendFromClients({
          sending: (group as SendingGroup).sending,
          clients: p.clients,
          ratePerSec: p.ratePerSec,
          durationSec,
          payloadBytes: p.payloadBytes,
          runId: `${process.pid}-${Date.now().toString(36)}-${runs++}`,
          ...(p.batchMs ? { batchMs: p.batchMs } : {}),
          ...(flooder && p.floodPerSec ? { flood: { sending: flooder.sending, ratePerSec: p.floodPerSec } } : {}),
        })
      : lockstep
        ? publishLockstep({ ...job, durationSec, clients: p.clients, group, received: () => recorder.received })
        : publishInWorker({ ...job, durationSec });
  /** The sends' own connections' traffic, the flooder's included: with a flood, per-send figures carry its cost. */
  const ownWire = () => {
    if (!sendingFactory) return undefined;
    const own = (group as SendingGroup).sending.ownWire();
    const flood = flooder?.sending.ownWire();
    return flood
      ? {
          bytesUp: own.bytesUp + flood.bytesUp,
          bytesDown: own.bytesDown + flood.bytesDown,
          requests: own.requests + flood.requests,
        }
      : own;
  };
  // In lockstep, a snapshot is taken only with every connection-holding client connected again (long
  // polls re-held): then the window holds exactly one request per answer.
  const settled = async () => {
    if (lockstep && t.holdsConnections) {
      await waitFor(
        async () => (await server.stats()).transports[key].connections >= p.clients,
        CONNECT_TIMEOUT_MS,
        `${p.clients} ${t.transport} connections`,
      );
    }
  };
  try {
    await Promise.race([
      Promise.all([group.ready, flooder?.ready]),
      new Promise((_, reject) => setTimeout(() => reject(new ClientsNotConnected(connectMs)), connectMs).unref()),
    ]);
    if (t.holdsConnections) {
      await waitFor(
        async () => (await server.stats()).transports[key].connections >= p.clients,
        CONNECT_TIMEOUT_MS,
        `${p.clients} ${t.transport} connections`,
      );
    }
    const connected = await server.stats();

    // Warm-up at the same rate (JIT, buffers, keep-alive sockets), not measured; wait until delivered.
    const warmSec = Math.min(1, p.durationSec / 5);
    const warm = await publish(warmSec);
    const warmTarget = warm.ids.length * p.clients;
    const quietMs =
      (p.drainQuietMs ?? DRAIN_QUIET_MS) + (t.transport === 'short-poll' ? 2 * (p.shortPollIntervalMs ?? 1000) : 0);
    await drain(() => recorder.received, warmTarget, quietMs);

    await settled();
    // The server's event-loop window opens and closes with the measured one, on every server alike.
    await server.loopWindow.open();
    await relay?.resetLateness();
    const before = await server.stats();
    const ownBefore = ownWire();
    const windowStart = performance.now();
    const answersBefore = group.answers?.();
    const firstId = before.feed.lastId;
    // A chat window holds every client's sends.
    recorder.startWindow(
      firstId,
      ((p.chat ? p.clients : 1) * p.ratePerSec + (p.floodPerSec ?? 0)) * Math.ceil(p.durationSec) + 16,
    );
    const pub = await publish(p.durationSec);
    const expected = pub.ids.length * p.clients;
    await drain(() => recorder.delivered, expected, quietMs);
    await settled();
    const answersAfter = group.answers?.();
    const after = await server.stats();
    const ownAfter = ownWire();
    const windowSec = (performance.now() - windowStart) / 1000;
    const loop = await server.loopWindow.close();
    const lateness = await relay?.lateness();

    const c = recorder.counts(pub.ids);
    const d = (f: (s: ServerStats) => number) => f(after) - f(before);
    const cpuUs = d((s) => s.process.cpu.userUs + s.process.cpu.systemUs);
    const lat = (q: number) => (recorder.delivered > 0 ? recorder.latency.getValueAtPercentile(q) / 1000 : null);
    const lagP99 = pub.lagP99Ms;

    const problems: string[] = [];
    if ('stall' in pub && pub.stall) problems.push(pub.stall);
    if (pub.failures > 0) problems.push(`${pub.failures} publishes failed (${pub.firstFailure})`);
    if (c.lost > 0) problems.push(`${c.lost} messages lost`);
    if (c.duplicated > 0) problems.push(`${c.duplicated} duplicates`);
    if (c.reordered > 0) problems.push(`${c.reordered} out of order`);
    if (c.resets > 0) problems.push(`${c.resets} resets`);
    if (c.errors > 0) problems.push(`${c.errors} client errors (first: ${c.firstError})`);
    const lagLimit = p.maxPublisherLagMs ?? PUBLISHER_LAG_LIMIT_MS;
    if (lagP99 > lagLimit)
      problems.push(`publisher fell behind its schedule (lag p99 ${lagP99.toFixed(1)} ms > ${lagLimit} ms)`);
    if (pub.ids.length === 0) problems.push('nothing was published');
    if ('refused' in pub && pub.refused > 0)
      problems.push(`${pub.refused} of ${pub.sent} sends refused (first: ${pub.firstRefusal})`);
    if (p.network) {
      for (const problem of [
        relayLatenessProblem(p.network.profile, lateness),
        belowOneWayProblem(p.network.profile, lat(50)),
      ])
        if (problem) problems.push(problem);
    }

    return {
      outcome: problems.length ? { status: 'invalid', reason: problems.join('; ') } : { status: 'ok' },
      published: pub.ids.length,
      delivered: c.delivered,
      expected,
      lost: c.lost,
      duplicated: c.duplicated,
      reordered: c.reordered,
      gaps: c.gaps,
      latencyMs: {
        p50: lat(50),
        p90: lat(90),
        p95: lat(95),
        p99: lat(99),
        max: recorder.delivered > 0 ? recorder.latency.maxValue / 1000 : null,
      },
      publisherLagMs: { p99: lagP99, max: pub.lagMaxMs },
      wire: {
        bytesOutPerMsg: perMsg(
          d((s) => s.transports[key].bytesOut),
          c.delivered,
        ),
        bytesInPerMsg: perMsg(
          d((s) => s.transports[key].bytesIn),
          c.delivered,
        ),
        requestsPerMsg: perMsg(
          d((s) => s.transports[key].requests),
          c.delivered,
        ),
      },
      bytesInPerRequest: opensPerConnection(t.transport)
        ? perMsg(
            connected.transports[key].bytesIn - initial.transports[key].bytesIn,
            connected.transports[key].requests - initial.transports[key].requests,
          )
        : perMsg(
            d((s) => s.transports[key].bytesIn),
            d((s) => s.transports[key].requests),
          ),
      requests: d((s) => s.transports[key].requests),
      clientErrors: c.errors,
      firstClientError: c.firstError,
      requestsPerSec: windowSec > 0 ? d((s) => s.transports[key].requests) / windowSec : null,
      polls:
        answersBefore && answersAfter
          ? { answers: answersAfter.total - answersBefore.total, empty: answersAfter.empty - answersBefore.empty }
          : null,
      cpuUsPerMsg: perMsg(cpuUs, c.delivered),
      eventLoopDelayP99Ms: loop?.p99 ?? NaN,
      floor:
        floorOf && recorder.wire.messages > 0
          ? {
              jsonBytesPerMsg: recorder.wire.jsonBytes / recorder.wire.messages,
              floorBytesPerMsg: recorder.wire.floorBytes / recorder.wire.messages,
            }
          : null,
      relayLatenessP99Ms: lateness?.p99Ms ?? null,
      chat:
        'sent' in pub && ownBefore && ownAfter
          ? chatFigures(
              pub,
              recorder,
              {
                up: d((s) => s.transports[key].bytesIn) + ownAfter.bytesUp - ownBefore.bytesUp,
                down: d((s) => s.transports[key].bytesOut) + ownAfter.bytesDown - ownBefore.bytesDown,
                requests: d((s) => s.transports[key].requests) + ownAfter.requests - ownBefore.requests,
              },
              c.delivered,
            )
          : null,
    };
  } finally {
    await Promise.all([group.close(), flooder?.close()]);
    if (t.holdsConnections) {
      await waitFor(
        async () => (await server.stats()).transports[key].connections === 0,
        10_000,
        'clients to disconnect',
      ).catch(() => {});
    }
  }
}
