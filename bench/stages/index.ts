/**
 * Every stage of a bench run, in the order they run: a new stage is one file and one line here. The
 * estimate of a run is the sum of its stages' own (a stage that runs alongside the one before it
 * counts as the longer of the two), plus the run's start.
 */
import type { BenchOptions } from '../plan/plan.js';
import { autocannonStage } from './autocannon.js';
import { fieldStage } from './field.js';
import { instructionsStage } from './instructions.js';
import { memoryStage } from './memory.js';
import { microStage } from './micro.js';
import { scenariosStage } from './scenarios.js';
import type { Stage } from './stage.js';
import { sweepStage } from './sweep.js';

export const STAGES: readonly Stage<never>[] = Object.freeze([
  scenariosStage,
  memoryStage,
  instructionsStage,
  autocannonStage,
  sweepStage,
  microStage,
  fieldStage,
] as Stage<never>[]);

/** Starting the run's processes, before the first stage. */
const START_SEC = 5;

/** What the whole bench should take, in seconds. */
export function estimateSec(opts: BenchOptions): number {
  let total = START_SEC;
  let previous = 0;
  for (const stage of STAGES) {
    const sec = stage.runs(opts) ? stage.estimateSec(opts) : 0;
    if (stage.alongside) {
      total += Math.max(0, sec - previous);
      previous = Math.max(previous, sec);
    } else {
      total += sec;
      previous = sec;
    }
  }
  return total;
}
