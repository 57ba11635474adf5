/**
 * The suite's scenarios: each on every target it names, over its network (a relay process between
 * clients and server when not direct) and, with --proxy, through nginx. Repeat r of every scenario on
 * every target runs before repeat r + 1, so that servers alternate within a repeat (lab, bare,
 * socketio, lab, bare, …); the repeats of each become one report row (bench/measure/aggregate.ts).
 */
import { addRatios, aggregate, runOrFail } from '../measure/aggregate.js';
import { preparePublisher } from '../measure/publisher.js';
import type { RunResult } from '../measure/run-scenario.js';
import { type BenchOptions, networkOf, repeatsOf, STEP_SEC, targetsFor } from '../plan/plan.js';
import type { ScenarioSpec } from '../plan/suite.js';
import type { Target } from '../plan/targets.js';
import { protocolLabel, type ScenarioResult } from '../../report/types.js';
import type { Stage } from './stage.js';

/** The scenarios a run measures (none in a sweep: it sets its own loads). */
const specsOf = (opts: BenchOptions): ScenarioSpec[] => (opts.sweep ? [] : opts.scenarios);

export const scenariosStage: Stage = {
  name: 'scenarios',
  runs: (opts) => specsOf(opts).length > 0,
  targets: (opts) => specsOf(opts).flatMap((s) => targetsFor(s, opts)),
  // The relay and the publisher's thread start before anything is measured; each relay link too (one at
  // a time: the relay process answers in order).
  async prepare({ opts, processes }) {
    const specs = specsOf(opts);
    if (specs.some((s) => s.pace !== 'lockstep')) preparePublisher();
    for (const spec of specs) for (const t of targetsFor(spec, opts)) await processes.network(t, networkOf(spec, opts));
  },
  // Forking the relay process counts here, sweep or not.
  estimateSec: (opts) =>
    specsOf(opts).reduce(
      (a, s) =>
        a +
        repeatsOf(s, opts) *
          targetsFor(s, opts).reduce((b, t) => b + STEP_SEC.run(s, t.transport, networkOf(s, opts)), 0),
      0,
    ) + (opts.networks.some((n) => !n.direct) ? STEP_SEC.relay : 0),
  async run({ opts, log, processes }) {
    const specs = specsOf(opts);
    const total = specs.reduce((a, s) => a + repeatsOf(s, opts) * targetsFor(s, opts).length, 0);
    const runs = new Map<string, RunResult[]>();
    const key = (spec: ScenarioSpec, t: Target) =>
      `${spec.name}|${networkOf(spec, opts).name}|${t.protocol}|${spec.proxy ?? ''}|${t.server}|${t.transport}`;
    let done = 0;
    for (let r = 0; r < Math.max(0, ...specs.map((s) => repeatsOf(s, opts))); r++) {
      for (const spec of specs.filter((s) => r < repeatsOf(s, opts))) {
        const network = networkOf(spec, opts);
        for (const t of targetsFor(spec, opts)) {
          const load = `${spec.clients} clients × ${spec.ratePerSec} msg/s${spec.workload === 'chat' ? ` each, chat${spec.batchMs ? ` batched ${spec.batchMs} ms` : ''}${spec.floodPerSec ? `, one flooding at ${spec.floodPerSec} msg/s` : ''}` : ''} × ${spec.payload ?? `${spec.payloadBytes} B`}${spec.compression ? `, compressed (${spec.compression})` : ''} × ${spec.durationSec} s${network.direct ? '' : ` over ${network.name}`}${spec.proxy ? ` via ${spec.proxy}` : ''}${t.protocol === 'http/1.1' ? '' : `, ${protocolLabel(t.protocol)}`}`;
          log.step(
            `run ${++done}/${total}: ${spec.name} ${t.server}/${t.transport} (${load}), repeat ${r + 1}/${repeatsOf(spec, opts)}`,
            STEP_SEC.run(spec, t.transport, network),
          );
          const result = await runOrFail(await processes.server(t), t, {
            clients: spec.clients,
            ratePerSec: spec.ratePerSec,
            payloadBytes: spec.payloadBytes,
            durationSec: spec.durationSec,
            shortPollIntervalMs: spec.shortPollIntervalMs ?? opts.shortPollIntervalMs,
            ...(spec.pace ? { pace: spec.pace } : {}),
            ...(spec.workload === 'chat' ? { chat: true } : {}),
            ...(spec.batchMs ? { batchMs: spec.batchMs } : {}),
            ...(spec.floodPerSec ? { floodPerSec: spec.floodPerSec } : {}),
            ...(spec.payload ? { payload: spec.payload } : {}),
            ...(opts.lossyEvery ? { lossyEvery: opts.lossyEvery } : {}),
            maxPublisherLagMs: opts.maxPublisherLagMs,
            network: await processes.network(t, network),
            ...(spec.proxy ? { proxy: await processes.proxy(t) } : {}),
            headers: opts.headers,
            cookieBytes: opts.cookieBytes,
          });
          if (result.outcome.status === 'invalid') log.note(`  INVALID: ${result.outcome.reason}`);
          runs.set(key(spec, t), [...(runs.get(key(spec, t)) ?? []), result]);
        }
      }
    }
    const scenarios: ScenarioResult[] = [];
    for (const spec of specs) {
      for (const t of targetsFor(spec, opts))
        scenarios.push(
          aggregate(spec, t, networkOf(spec, opts), runs.get(key(spec, t)) ?? [], repeatsOf(spec, opts), opts.lab, {
            headers: opts.headers,
            cookieBytes: opts.cookieBytes,
          }),
        );
    }
    addRatios(scenarios);
    return { scenarios };
  },
};
