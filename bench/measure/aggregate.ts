/**
 * From runs to report rows: the repeats of one scenario on one target become a ScenarioResult (figures
 * are medians over repeats, counts are totals); lab rows get their `vsBare` ratios, and every row the
 * floor server also ran its `vsFloor`.
 */
import { figure, ratioOfMedians, round } from '../../report/figures.js';
import type { NetworkProfile } from '../../server/network/profiles.js';
import { protocolOf, type Figure, type ScenarioResult } from '../../report/types.js';
import { runScenario, type RunParams, type RunResult } from './run-scenario.js';
import type { ServerHandle } from '../processes/server-process.js';
import type { ScenarioSpec } from '../plan/suite.js';
import type { LabSetup, Target } from '../plan/targets.js';
import type { HttpSetup } from '../plan/http-setup.js';

/** A run that threw is an invalid run with nothing measured (null figures), never a missing repeat. */
export async function runOrFail(server: ServerHandle, t: Target, params: RunParams): Promise<RunResult> {
  try {
    return await runScenario(server, t, params);
  } catch (err) {
    return {
      outcome: { status: 'invalid', reason: `run failed: ${(err as Error).message}` },
      published: 0,
      delivered: 0,
      expected: 0,
      lost: 0,
      duplicated: 0,
      reordered: 0,
      gaps: 0,
      latencyMs: { p50: null, p90: null, p95: null, p99: null, max: null },
      publisherLagMs: { p99: NaN, max: NaN },
      wire: { bytesOutPerMsg: null, bytesInPerMsg: null, requestsPerMsg: null },
      bytesInPerRequest: null,
      requestsPerSec: null,
      requests: 0,
      clientErrors: 0,
      firstClientError: undefined,
      polls: null,
      cpuUsPerMsg: null,
      eventLoopDelayP99Ms: NaN,
      floor: null,
      relayLatenessP99Ms: null,
      chat: null,
    };
  }
}

/** The feed and workers that serve `t`: only the lab servers take --feed/--workers. */
function servedBy(t: Target, lab: LabSetup): Pick<ScenarioResult, 'feed' | 'workers'> {
  switch (t.server) {
    case 'lab':
      return { feed: lab.feed === 'memory' ? 'memory' : 'redis', workers: lab.workers };
    case 'lab-redis':
      return { feed: 'redis', workers: lab.workers };
    case 'bare':
    case 'floor':
    case 'socketio':
    case 'better-sse':
    case 'fastify-sse':
    case 'shift':
      return { feed: 'memory', workers: 1 };
    default:
      return t.server satisfies never;
  }
}

/** Counts of a run, summed over repeats. */
const COUNTS = ['published', 'delivered', 'expected', 'lost', 'duplicated', 'reordered', 'gaps'] as const;

export function aggregate(
  spec: ScenarioSpec,
  t: Target,
  network: NetworkProfile,
  runs: RunResult[],
  repeats: number,
  lab: LabSetup,
  http: Omit<HttpSetup, 'protocol'>,
): ScenarioResult {
  const invalid = runs
    .map((r, i) => (r.outcome.status === 'invalid' ? `repeat ${i + 1}: ${r.outcome.reason}` : undefined))
    .filter(Boolean);
  // Per key of `pick(run)`, its figure over the repeats; not measured (null, NaN) stays null: see figure().
  const figs = <K extends string>(pick: (r: RunResult) => Record<K, number | null>, ...keys: K[]) =>
    Object.fromEntries(keys.map((k) => [k, figure(runs.map((r) => pick(r)[k]))])) as Record<K, Figure>;
  return {
    name: spec.name,
    server: t.server,
    transport: t.transport,
    clients: spec.clients,
    ratePerSec: spec.ratePerSec,
    payloadBytes: spec.payloadBytes,
    durationSec: spec.durationSec,
    ...servedBy(t, lab),
    ...(spec.pace === 'lockstep' ? { pace: 'lockstep' as const } : {}),
    network,
    ...(spec.proxy ? { proxy: spec.proxy } : {}),
    http: { protocol: t.protocol, headers: http.headers, cookieBytes: http.cookieBytes },
    repeats,
    status: invalid.length ? 'invalid' : 'ok',
    ...(invalid.length ? { reason: invalid.join(' | ') } : {}),
    ...(Object.fromEntries(COUNTS.map((k) => [k, runs.reduce((a, r) => a + r[k], 0)])) as Record<
      (typeof COUNTS)[number],
      number
    >),
    latencyMs: figs((r) => r.latencyMs, 'p50', 'p90', 'p99', 'max'),
    publisherLagMs: figs((r) => r.publisherLagMs, 'p99', 'max'),
    wire: {
      ...figs((r) => r.wire, 'bytesOutPerMsg', 'bytesInPerMsg', 'requestsPerMsg'),
      bytesInPerRequest: figure(runs.map((r) => r.bytesInPerRequest)),
      requestsPerSec: figure(runs.map((r) => r.requestsPerSec)),
    },
    serverMetrics: figs((r) => r, 'cpuUsPerMsg', 'eventLoopDelayP99Ms'),
    ...pollsOf(runs),
    ...(network.direct ? {} : { relayLatenessP99Ms: figure(runs.map((r) => r.relayLatenessP99Ms)) }),
    ...(t.server === 'lab' ? floorOf(runs) : {}),
    ...(spec.workload === 'chat' ? { workload: 'chat' as const, ...chatOf(runs) } : {}),
    ...(spec.compression ? { compression: spec.compression } : {}),
    ...(spec.payload ? { payload: spec.payload } : {}),
    ...(spec.crossOrigin ? { crossOrigin: true as const } : {}),
    ...(spec.batchMs ? { batchMs: spec.batchMs } : {}),
    ...(spec.floodPerSec ? { floodPerSec: spec.floodPerSec } : {}),
  };
}

/** The chat figures over the repeats that measured them: counts summed, figures per repeat. */
function chatOf(runs: RunResult[]): Pick<ScenarioResult, 'chat'> {
  const measured = runs.flatMap((r) => (r.chat ? [r.chat] : []));
  if (measured.length === 0) return {};
  const sum = (k: 'sent' | 'refused' | 'duplicates' | 'retries' | 'batches') => measured.reduce((a, c) => a + c[k], 0);
  const fig = (pick: (c: (typeof measured)[number]) => number | null) => figure(measured.map(pick));
  return {
    chat: {
      sent: sum('sent'),
      refused: sum('refused'),
      duplicates: sum('duplicates'),
      retries: sum('retries'),
      batches: sum('batches'),
      ...floodOf(measured),
      ackMs: { p50: fig((c) => c.ackMs.p50), p99: fig((c) => c.ackMs.p99) },
      everyoneMs: { p50: fig((c) => c.everyoneMs.p50), p99: fig((c) => c.everyoneMs.p99) },
      bytesUpPerSend: fig((c) => c.bytesUpPerSend),
      requestsPerSend: fig((c) => c.requestsPerSend),
      bytesDownPerDelivery: fig((c) => c.bytesDownPerDelivery),
    },
  };
}

/** Polling answers summed over the repeats that counted them. */
function pollsOf(runs: RunResult[]): Pick<ScenarioResult, 'polls'> {
  const counted = runs.flatMap((r) => (r.polls ? [r.polls] : []));
  if (counted.length === 0) return {};
  return {
    polls: { answers: counted.reduce((a, p) => a + p.answers, 0), empty: counted.reduce((a, p) => a + p.empty, 0) },
  };
}

/** Lab only: bytes per message beyond the message JSON, against the protocol floor (medians over repeats). */
function floorOf(runs: RunResult[]): Pick<ScenarioResult, 'floor'> {
  const measured = runs.flatMap((r) =>
    r.floor && r.wire.bytesOutPerMsg !== null ? [{ ...r.floor, out: r.wire.bytesOutPerMsg }] : [],
  );
  if (measured.length === 0) return {};
  const overhead = figure(measured.map((m) => m.out - m.jsonBytesPerMsg)).median;
  const floor = figure(measured.map((m) => m.floorBytesPerMsg)).median;
  const excess = figure(measured.map((m) => m.out - m.jsonBytesPerMsg - m.floorBytesPerMsg)).median;
  if (overhead === null || floor === null || excess === null) return {};
  return {
    floor: { overheadBytesPerMsg: round(overhead), floorBytesPerMsg: round(floor), excessBytesPerMsg: round(excess) },
  };
}

/** The result of `server` for the same scenario, network, protocol, proxy and transport as `r`, when it is valid. */
const counterpart = (
  results: readonly ScenarioResult[],
  r: ScenarioResult,
  server: ScenarioResult['server'],
): ScenarioResult | undefined =>
  results.find(
    (x) =>
      x.server === server &&
      x.name === r.name &&
      x.network.name === r.network.name &&
      protocolOf(x) === protocolOf(r) &&
      x.proxy === r.proxy &&
      x.transport === r.transport &&
      x.status === 'ok',
  );

/**
 * `vsBare`: lab ÷ bare for the same scenario, network and transport as a ratio of medians (ratioOfMedians), when
 * both are valid and every ratio is a number. The CI gate takes the median of paired ratios instead.
 * `vsFloor`: any server ÷ the floor (every transport, where the floor ran), the same way.
 */
export function addRatios(results: ScenarioResult[]): void {
  for (const r of results) {
    if (r.status !== 'ok') continue;
    const floor = r.server === 'floor' ? undefined : counterpart(results, r, 'floor');
    if (floor) {
      const cpuUsPerMsg = ratioOfMedians(r.serverMetrics.cpuUsPerMsg, floor.serverMetrics.cpuUsPerMsg);
      const latencyP99 = ratioOfMedians(r.latencyMs.p99, floor.latencyMs.p99);
      if (cpuUsPerMsg !== null && latencyP99 !== null) r.vsFloor = { cpuUsPerMsg, latencyP99 };
    }
    const bare = r.server === 'lab' ? counterpart(results, r, 'bare') : undefined;
    if (!bare) continue;
    const cpuUsPerMsg = ratioOfMedians(r.serverMetrics.cpuUsPerMsg, bare.serverMetrics.cpuUsPerMsg);
    const bytesOutPerMsg = ratioOfMedians(r.wire.bytesOutPerMsg, bare.wire.bytesOutPerMsg);
    const latencyP99 = ratioOfMedians(r.latencyMs.p99, bare.latencyMs.p99);
    if (cpuUsPerMsg === null || bytesOutPerMsg === null || latencyP99 === null) continue;
    r.vsBare = { cpuUsPerMsg, bytesOutPerMsg, latencyP99 };
  }
}

/** The flooder's counts summed over the repeats that had one. */
function floodOf(measured: NonNullable<RunResult['chat']>[]) {
  const floods = measured.flatMap((c) => (c.flood ? [c.flood] : []));
  if (floods.length === 0) return {};
  const sum = (k: 'sent' | 'accepted' | 'refused' | 'cut') => floods.reduce((a, f) => a + f[k], 0);
  return { flood: { sent: sum('sent'), accepted: sum('accepted'), refused: sum('refused'), cut: sum('cut') } };
}
