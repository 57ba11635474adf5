/**
 * `--sweep`: capacity per target, the SWEEP rule (suite.ts) — add clients until p95 latency exceeds the
 * limit or any message is lost; the last count that passed is the capacity. Once per network asked for
 * (`--network`), the relay on the subscriber path as in the scenarios.
 */
import type { NetworkProfile } from '../../server/network/profiles.js';
import { runOrFail } from '../measure/aggregate.js';
import type { Progress } from '../plan/progress.js';
import type { SweepResult } from '../../report/types.js';
import type { RunParams } from '../measure/run-scenario.js';
import type { ServerHandle } from '../processes/server-process.js';
import { SWEEP } from '../plan/suite.js';
import type { Target } from '../plan/targets.js';
import { STEP_SEC, sweepLoad, targetsOf, type BenchOptions } from '../plan/plan.js';
import type { Stage } from './stage.js';

export async function runSweep(
  opts: BenchOptions,
  serverOf: (t: Target) => Promise<ServerHandle>,
  networkFor: (t: Target, p: NetworkProfile) => Promise<NonNullable<RunParams['network']>>,
  log: Progress,
): Promise<SweepResult[]> {
  const out: SweepResult[] = [];
  const { ratePerSec, durationSec, payloadBytes } = sweepLoad(opts);
  for (const network of opts.networks) {
    for (const t of targetsOf(opts))
      out.push(
        await sweepOne(opts, t, await serverOf(t), await networkFor(t, network), log, {
          ratePerSec,
          durationSec,
          payloadBytes,
        }),
      );
  }
  return out;
}

async function sweepOne(
  opts: BenchOptions,
  t: Target,
  server: ServerHandle,
  network: NonNullable<RunParams['network']>,
  log: Progress,
  { ratePerSec, durationSec, payloadBytes }: ReturnType<typeof sweepLoad>,
): Promise<SweepResult> {
  const steps: SweepResult['steps'] = [];
  let maxClients = 0;
  const over = network.profile.direct ? '' : ` over ${network.profile.name}`;
  for (const clients of SWEEP.clientSteps) {
    log.step(
      `sweep ${t.server}/${t.transport}${over}: ${clients} clients × ${ratePerSec} msg/s`,
      STEP_SEC.sweep(durationSec),
    );
    const r = await runOrFail(server, t, {
      clients,
      ratePerSec,
      payloadBytes,
      durationSec,
      shortPollIntervalMs: opts.shortPollIntervalMs,
      network,
      headers: opts.headers,
      cookieBytes: opts.cookieBytes,
    });
    // null = not measured (a failed run): the step is invalid, never a made-up latency.
    const p95 = r.latencyMs.p95 !== null && Number.isFinite(r.latencyMs.p95) ? r.latencyMs.p95 : null;
    const reasons: string[] = [];
    if (r.outcome.status === 'invalid') reasons.push(r.outcome.reason);
    if (p95 === null) reasons.push('p95 not measured');
    else if (p95 > SWEEP.p95LimitMs) reasons.push(`p95 ${p95.toFixed(0)} ms > ${SWEEP.p95LimitMs} ms`);
    steps.push({
      clients,
      p95Ms: p95,
      lost: r.lost,
      status: reasons.length ? 'invalid' : 'ok',
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    });
    if (reasons.length) break;
    maxClients = clients;
  }
  return {
    server: t.server,
    transport: t.transport,
    network: network.profile,
    ratePerSec,
    payloadBytes,
    p95LimitMs: SWEEP.p95LimitMs,
    maxClients,
    steps,
  };
}

/** `--sweep`: every target, on every network asked for. */
export const sweepStage: Stage = {
  name: 'sweep',
  runs: (opts) => opts.sweep,
  targets: (opts) => (opts.sweep ? targetsOf(opts) : []),
  estimateSec: (opts) =>
    opts.sweep
      ? opts.networks.length *
        targetsOf(opts).length *
        SWEEP.clientSteps.length *
        STEP_SEC.sweep(sweepLoad(opts).durationSec)
      : 0,
  run: async ({ opts, log, processes }) => ({
    sweep: await runSweep(
      opts,
      (t) => processes.server(t),
      (t, p) => processes.network(t, p),
      log,
    ),
  }),
};
