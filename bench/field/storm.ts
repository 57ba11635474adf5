/**
 * Field failure 4, reconnect storm: a lab restarted behind nginx drops every SSE stream, WebSocket
 * and held long poll at once, and all of them come back at once: the new process takes the storm of
 * connects (and every catch-up read) while it is still warming up. Two rows: `naive`, the lab's fixed
 * `retry: 1000` and clients reconnecting after a fixed 100 ms; `lab`, a jittered `retry:`
 * (sseRetryJitterMs) and clients backing off exponentially with full jitter (bench/clients/types.ts).
 *
 * The feed is Redis, so the restarted lab serves the same ids and epoch (no `reset`) and "0 lost"
 * means what it says. Messages are published through a second lab on the same feed that is never
 * restarted, so the schedule runs on while the lab behind nginx is down; every message published
 * before, during and after the restart must reach every client once.
 *
 * nginx answers 502 while the lab is down: EventSource gives up on a non-200 answer (WHATWG: "fail the
 * connection", readyState CLOSED), as a browser does, so the SSE clients here reopen a closed
 * EventSource (resuming from their last id) as an application must, after the same wait the WebSocket
 * and polling clients use. These errors are the symptom `client errors during recovery`.
 *
 * The harness is checked as in every bench run: the publisher's lag against its schedule and the
 * client process's own event-loop delay over the recovery; past either limit the row is INVALID.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ConfigInput } from '../../server/config.js';
import { longPollClients } from '../clients/poll.js';
import { sseClients } from '../clients/sse.js';
import type { ClientGroup, ClientSink, ReconnectMode } from '../clients/types.js';
import { wsClients } from '../clients/ws.js';
import { type PublishOutcome, publishInWorker } from '../measure/publisher.js';
import { Recorder, type DeliveryCounts, nowMs } from '../measure/recorder.js';
import type { FieldResult } from '../../report/types.js';
import type { ServerStats } from '../processes/server-process.js';
import { type FieldEnv, type HarnessLimits, type LabProcess, sleep } from './env.js';
import type { HttpSetup } from '../plan/http-setup.js';

/** Clients per transport: 2,000 in all, under nginx's 4096 worker_connections (two per streaming client). */
export interface FleetCounts {
  sse: number;
  ws: number;
  poll: number;
}

export interface StormOptions {
  counts?: FleetCounts;
  /** Publish rate, msg/s: low, so the storm is connects and catch-up, not fan-out. @default 2 */
  ratePerSec?: number;
  payloadBytes?: number;
  /** Publishing before the restart, s. @default 2 */
  beforeSec?: number;
  /** How long every client gets to come back after the restart before the row fails, s. @default 20 */
  recoverSec?: number;
  /** The lab row's sseRetryJitterMs. @default 2000 */
  jitterMs?: number;
  /** Only these rows. @default both */
  settings?: readonly ('naive' | 'lab')[];
}

/**
 * 2,000 clients across the transports. Not 700/700/600: with 600 long pollers retrying every 100 ms on
 * the proxy's 502s (~6,000 requests/s), the bench's one client process itself fell behind (event-loop
 * p99 > 100 ms) and the naive row came out INVALID every time; streams are the storm that matters.
 */
const DEFAULT_COUNTS: FleetCounts = { sse: 900, ws: 900, poll: 200 };
/** How often the lab's /stats (and the clients' own counters) are sampled during recovery. */
const SAMPLE_MS = 100;

/**
 * SSE, WebSocket and long-polling clients at once, each delivery checked by one Recorder (clients
 * numbered SSE first, then WebSocket, then polling), with each client's time of its first delivery
 * after `markDown()`: when it was back.
 */
export class Fleet implements ClientSink {
  readonly recorder: Recorder;
  readonly total: number;
  /** Per client: when its first delivery after markDown() arrived (NaN: not yet). */
  readonly backAt: Float64Array;
  #down = false;
  readonly #groups: ClientGroup[];

  constructor(
    baseUrl: string,
    http: HttpSetup,
    counts: FleetCounts,
    since: number,
    capacity: number,
    reconnect: ReconnectMode,
  ) {
    this.total = counts.sse + counts.ws + counts.poll;
    this.recorder = new Recorder({ clients: this.total });
    this.recorder.startWindow(since, capacity);
    this.backAt = new Float64Array(this.total).fill(Number.NaN);
    const offsetSink = (offset: number): ClientSink => ({
      message: (c, id, t, bytes) => this.message(c + offset, id, t, bytes),
      gap: (c, s, f) => this.gap(c + offset, s, f),
      reset: (c) => this.reset(c + offset),
      error: (c, e) => this.error(c + offset, e),
    });
    const base = { baseUrl, http, since, reconnect };
    this.#groups = [
      sseClients({ ...base, count: counts.sse, sink: offsetSink(0) }),
      wsClients({ ...base, count: counts.ws, sink: offsetSink(counts.sse) }),
      longPollClients({ ...base, count: counts.poll, sink: offsetSink(counts.sse + counts.ws) }),
    ];
  }

  get ready(): Promise<void> {
    return Promise.all(this.#groups.map((g) => g.ready)).then(() => {});
  }
  /** Connects the clients have made (SSE opens, WebSocket upgrades, polls), 502s included. */
  requests(): number {
    return this.#groups.reduce((n, g) => n + g.requests(), 0);
  }
  /** From now on, each client's next delivery marks it back. */
  markDown(): void {
    this.backAt.fill(Number.NaN);
    this.#down = true;
  }
  /** Clients back since markDown(). */
  back(): number {
    let n = 0;
    for (const t of this.backAt) if (!Number.isNaN(t)) n++;
    return n;
  }
  message(client: number, id: number, scheduledMs: number, jsonBytes?: number): void {
    if (this.#down && Number.isNaN(this.backAt[client]!)) this.backAt[client] = nowMs();
    this.recorder.message(client, id, scheduledMs, jsonBytes);
  }
  gap(client: number, since: number, firstId: number): void {
    this.recorder.gap(client, since, firstId);
  }
  reset(client: number): void {
    this.recorder.reset(client);
  }
  error(client: number, err: Error): void {
    this.recorder.error(client, err);
  }
  close(): Promise<void> {
    return Promise.all(this.#groups.map((g) => g.close())).then(() => {});
  }
}

/** Streaming connections (SSE + WebSocket) and poll requests a lab has counted. */
const opened = (s: ServerStats) => ({
  streams: s.transports.sse.requests + s.transports.ws.requests,
  polls: s.transports.poll.requests,
});

/**
 * Samples `read()` (a cumulative counter) every SAMPLE_MS until stopped; `peakPerSec()` is the highest
 * rate over one interval. A read that fails (the lab is down) is skipped.
 */
export class RateSampler {
  #last: { t: number; v: number } | undefined;
  #peak = 0;
  #stopped = false;
  readonly #done: Promise<void>;
  constructor(read: () => Promise<number> | number, start?: { t: number; v: number }) {
    this.#last = start;
    this.#done = (async () => {
      while (!this.#stopped) {
        try {
          const v = await read();
          const t = performance.now();
          if (this.#last && t > this.#last.t)
            this.#peak = Math.max(this.#peak, ((v - this.#last.v) * 1000) / (t - this.#last.t));
          this.#last = { t, v };
        } catch {}
        await sleep(SAMPLE_MS);
      }
    })();
  }
  async stop(): Promise<number> {
    this.#stopped = true;
    await this.#done;
    return this.#peak;
  }
}

/** Waits until every published id reached every client (or nothing new arrived for quietMs). */
export async function drainFleet(fleet: Fleet, pub: PublishOutcome, quietMs = 2_000): Promise<DeliveryCounts> {
  const target = pub.ids.length * fleet.total;
  let last = -1;
  let since = performance.now();
  while (fleet.recorder.delivered < target && performance.now() - since < quietMs) {
    if (fleet.recorder.delivered !== last) {
      last = fleet.recorder.delivered;
      since = performance.now();
    }
    await sleep(20);
  }
  return fleet.recorder.counts(pub.ids);
}

/** A harness problem of a publish (INVALID), or undefined. */
export function publisherProblem(pub: PublishOutcome, limits: Readonly<HarnessLimits>): string | undefined {
  if (pub.ids.length === 0) return 'nothing was published';
  if (pub.failures > 0) return `${pub.failures} publishes failed (${pub.firstFailure})`;
  if (pub.lagP99Ms > limits.publisherLagMs)
    return `publisher fell behind its schedule (lag p99 ${pub.lagP99Ms.toFixed(1)} ms)`;
  return undefined;
}

/** The client process's own event-loop delay between start() and stop() (p99, ms). */
export function clientLoop(): { stop(): number } {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  return {
    stop() {
      h.disable();
      return h.percentile(99) / 1e6;
    },
  };
}

export async function waitForConnections(lab: LabProcess, counts: FleetCounts, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await lab.handle.stats();
    if (
      s.transports.sse.connections >= counts.sse &&
      s.transports.ws.connections >= counts.ws &&
      s.transports.poll.connections >= counts.poll
    )
      return;
    if (performance.now() > deadline) throw new Error(`clients not all connected after ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface StormRow {
  setting: 'naive' | 'lab';
  what: string;
  labConfig: ConfigInput;
  reconnect: ReconnectMode;
}

const ROWS = (jitterMs: number): StormRow[] => [
  {
    setting: 'naive',
    what: 'fixed retry: 1000 for every SSE stream; WebSocket and polling clients reconnect after a fixed 100 ms',
    labConfig: { sseRetryJitterMs: 0 },
    reconnect: 'immediate',
  },
  {
    setting: 'lab',
    what: `retry: uniform in 1000–${1000 + jitterMs} ms per SSE stream (sseRetryJitterMs ${jitterMs}); WebSocket and polling clients back off exponentially with full jitter (base 200 ms, cap 5 s)`,
    labConfig: { sseRetryJitterMs: jitterMs },
    reconnect: 'jittered',
  },
];

/** Symptom names, shared with stormFlattened() and the test. */
export const STORM = Object.freeze({
  recovery: 'time until every client is back and caught up ms',
  backP50: 'client back after the restart p50 ms',
  downtime: 'lab down (stop to ready) ms',
  peakStreams: 'peak new SSE+WS connections/s at the lab',
  peakPolls: 'peak poll requests/s at the lab',
  peakAttempts: 'peak connect attempts/s (client side, 502s included)',
  loopP99: 'lab event-loop delay p99 during recovery ms',
  errors: 'client errors during recovery',
  notBack: 'clients not back',
  lost: 'lost',
  duplicated: 'duplicated',
  reordered: 'reordered',
  resets: 'resets',
});

export async function measureStorm(env: FieldEnv, opts: StormOptions = {}): Promise<FieldResult[]> {
  const counts = opts.counts ?? DEFAULT_COUNTS;
  const ratePerSec = opts.ratePerSec ?? 2;
  const payloadBytes = opts.payloadBytes ?? 100;
  const beforeSec = opts.beforeSec ?? 2;
  const recoverSec = opts.recoverSec ?? 20;
  const jitterMs = opts.jitterMs ?? 2_000;
  const total = counts.sse + counts.ws + counts.poll;
  const rows: FieldResult[] = [];
  for (const row of ROWS(jitterMs).filter((r) => !opts.settings || opts.settings.includes(r.setting))) {
    env.log.step(
      `field reconnect-storm: ${row.setting}, ${total} clients, lab restarted behind nginx`,
      beforeSec + recoverSec / 2 + 15,
    );
    const config: ConfigInput = {
      feed: env.redisUrl,
      redisKeyPrefix: env.prefix(`storm-${row.setting}`),
      ...row.labConfig,
    };
    const lab = await env.lab(config);
    // The publisher's way in: another lab on the same feed, never restarted.
    const publisherLab = await env.lab(config);
    const proxy = await env.nginx({ upstreams: [lab.port] });
    const since = (await publisherLab.handle.stats()).feed.lastId;
    const publishSec = beforeSec + recoverSec;
    const fleet = new Fleet(
      proxy.url,
      { protocol: 'http/1.1', headers: env.headers, cookieBytes: 0 },
      counts,
      since,
      Math.ceil(ratePerSec * publishSec) + 16,
      row.reconnect,
    );
    let problem: string | undefined;
    const s: Record<string, number | null> = Object.fromEntries(Object.values(STORM).map((k) => [k, null]));
    let counted: DeliveryCounts | undefined;
    try {
      await Promise.race([
        fleet.ready,
        sleep(60_000).then(() => Promise.reject(new Error('clients not connected after 60 s'))),
      ]);
      await waitForConnections(lab, counts);
      const publishing = publishInWorker({
        controlUrl: publisherLab.handle.controlUrl,
        ratePerSec,
        payloadBytes,
        durationSec: publishSec,
      });
      await sleep(beforeSec * 1000);

      const loop = clientLoop();
      const attempts = new RateSampler(() => fleet.requests());
      const errorsBefore = fleet.recorder.errors;
      const downAt = nowMs();
      await lab.handle.stop();
      // Its connections are gone with the process: from here, a delivery comes over a new one.
      fleet.markDown();
      const exitedAt = nowMs();
      await lab.restart();
      const upAt = nowMs();
      await lab.handle.loopWindow.open();
      const t0 = { t: performance.now(), v: 0 };
      const streams = new RateSampler(async () => opened(await lab.handle.stats()).streams, t0);
      const polls = new RateSampler(async () => opened(await lab.handle.stats()).polls, t0);
      const deadline = performance.now() + recoverSec * 1000;
      while (fleet.back() < total && performance.now() < deadline) await sleep(20);
      const labLoop = await lab.handle.loopWindow.close();
      const clientLoopP99 = loop.stop();
      s[STORM.peakStreams] = Math.round(await streams.stop());
      s[STORM.peakPolls] = Math.round(await polls.stop());
      s[STORM.peakAttempts] = Math.round(await attempts.stop());
      s[STORM.errors] = fleet.recorder.errors - errorsBefore;
      s[STORM.downtime] = Math.round(upAt - downAt);
      s[STORM.loopP99] = labLoop ? Number(labLoop.p99.toFixed(1)) : null;
      const backs = [...fleet.backAt].filter((t) => !Number.isNaN(t)).sort((a, b) => a - b);
      s[STORM.notBack] = total - backs.length;
      if (backs.length === total) s[STORM.recovery] = Math.round(backs[total - 1]! - downAt);
      if (backs.length > 0) s[STORM.backP50] = Math.round(backs[Math.floor(backs.length / 2)]! - exitedAt);

      const pub = await publishing;
      counted = await drainFleet(fleet, pub);
      s[STORM.lost] = counted.lost;
      s[STORM.duplicated] = counted.duplicated;
      s[STORM.reordered] = counted.reordered;
      s[STORM.resets] = counted.resets;
      problem =
        publisherProblem(pub, env.limits) ??
        (clientLoopP99 > env.limits.clientLoopDelayMs
          ? `the client process fell behind (its event-loop delay p99 ${clientLoopP99.toFixed(1)} ms during recovery > ${env.limits.clientLoopDelayMs} ms)`
          : undefined);
    } catch (err) {
      problem = `run failed: ${(err as Error).message}`;
    } finally {
      await fleet.close();
      await proxy.stop();
      await lab.stop();
      await publisherLab.stop();
    }
    const fails =
      s[STORM.notBack] !== 0 ||
      (counted ? counted.lost + counted.duplicated + counted.reordered + counted.resets > 0 : true);
    const base = {
      scenario: 'reconnect-storm',
      title: `Reconnect storm: ${counts.sse} SSE + ${counts.ws} WebSocket + ${counts.poll} long-poll clients through nginx to one lab (Redis feed), ${ratePerSec} msg/s, the lab restarted on its port`,
      setting: row.setting,
      what: row.what,
      transport: 'sse+ws+poll',
      symptoms: s,
    };
    rows.push(
      problem
        ? { ...base, status: 'invalid', reason: problem, verdict: 'invalid' }
        : { ...base, status: 'ok', verdict: fails ? 'fails' : 'works' },
    );
  }
  return rows;
}

/**
 * For the decision on the default: whether the `lab` row's setting flattened the storm (its peak of new
 * connections at the lab below the naive one's) without raising loss or duplicates (both valid, both
 * with every client back). Undefined when the rows cannot tell (a row missing or INVALID).
 */
export function stormFlattened(
  rows: readonly FieldResult[],
): { flattened: boolean; naivePeak: number; labPeak: number } | undefined {
  const find = (setting: 'naive' | 'lab') =>
    rows.find((r) => r.scenario === 'reconnect-storm' && r.setting === setting && r.status === 'ok');
  const naive = find('naive');
  const lab = find('lab');
  const peak = (r: FieldResult) => r.symptoms[STORM.peakStreams];
  const harm = (r: FieldResult) =>
    (r.symptoms[STORM.lost] ?? Infinity) +
    (r.symptoms[STORM.duplicated] ?? Infinity) +
    (r.symptoms[STORM.notBack] ?? Infinity);
  if (!naive || !lab) return undefined;
  const naivePeak = peak(naive);
  const labPeak = peak(lab);
  if (naivePeak == null || labPeak == null) return undefined;
  return { flattened: labPeak < naivePeak && harm(lab) <= harm(naive), naivePeak, labPeak };
}
