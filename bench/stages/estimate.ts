/**
 * What a whole bench run should take: the sum of its stages' own estimates (the progress line and the
 * repeats budget read it).
 */
import { type BenchOptions, cannonServers, memoryTargets, networkOf, repeatsOf, STEP_SEC, sweepLoad, targetsFor, targetsOf } from '../plan/plan.js';
import type { ScenarioSpec } from '../plan/suite.js';
import { SWEEP } from '../plan/suite.js';
import { FIELD_SCENARIOS } from './field.js';
import { countedTargets, instructionsEstimateSec } from './instructions.js';

/** What the whole bench should take, in seconds. */
export function estimateSec(opts: BenchOptions): number {
  const targets = targetsOf(opts);
  const run = (s: ScenarioSpec) => targetsFor(s, opts).reduce((b, t) => b + STEP_SEC.run(s, t.transport, networkOf(s, opts)), 0);
  const scenarios = opts.sweep ? 0 : opts.scenarios.reduce((a, s) => a + repeatsOf(s, opts) * run(s), 0);
  const memory = memoryTargets(opts).length * opts.memoryRepeats * STEP_SEC.memory(opts.memoryConnections);
  const cannon = cannonServers(opts).length * 2 * STEP_SEC.cannon(opts.autocannonDurationSec); // poll catch-up and publish
  const micro = opts.micro ? STEP_SEC.micro(opts.microTimeMs) : 0;
  const sweep = opts.sweep ? opts.networks.length * targets.length * SWEEP.clientSteps.length * STEP_SEC.sweep(sweepLoad(opts).durationSec) : 0;
  const relay = opts.networks.some((n) => !n.direct) ? STEP_SEC.relay : 0;
  const field = FIELD_SCENARIOS.filter((f) => opts.field?.includes(f.name)).reduce((a, f) => a + f.estimateSec, 0);
  // Instruction counts do not depend on the machine's load: they run beside the memory stage.
  const instructions = opts.instructions ? instructionsEstimateSec(countedTargets(opts.transports, opts.servers).length) : 0;
  return 5 + relay + scenarios + Math.max(memory, instructions) + cannon + micro + sweep + field;
}
