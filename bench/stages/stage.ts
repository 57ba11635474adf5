/**
 * What a stage is: one part of a bench run (the scenarios, idle memory, instruction counts, autocannon,
 * the sweep, tinybench, the field), over the run's processes (bench/processes/pool.ts). The run
 * (run-bench.ts) starts every stage's targets, prepares the stages, runs them in list order and merges
 * what each returns into the report; the estimate (index.ts) is the sum of theirs.
 */
import type { Report } from '../../report/types.js';
import type { BenchOptions } from '../plan/plan.js';
import type { Progress } from '../plan/progress.js';
import type { Target } from '../plan/targets.js';
import type { Processes } from '../processes/pool.js';

export interface StageContext {
  readonly opts: BenchOptions;
  readonly log: Progress;
  readonly processes: Processes;
  /** What the stages before this one measured. */
  readonly report: Readonly<Partial<Report>>;
}

/** The part of the report a stage measured. */
export type StageResult = Partial<
  Pick<Report, 'scenarios' | 'memory' | 'instructions' | 'autocannon' | 'micro' | 'sweep' | 'field'>
>;

export interface Stage<Prepared = unknown> {
  readonly name: string;
  /** Whether the stage has anything to do in this plan. */
  runs(opts: BenchOptions): boolean;
  /** The servers it measures: their processes start before any stage measures. @default none */
  targets?(opts: BenchOptions): Target[];
  /** What it starts once those are ready, before any stage measures (the counted servers). */
  prepare?(ctx: StageContext): Promise<Prepared>;
  /** Seconds it should take. */
  estimateSec(opts: BenchOptions): number;
  /** Runs beside the stage before it: its figures do not depend on the machine's load. */
  readonly alongside?: boolean;
  /** Runs once the run's processes are stopped: it needs none, or starts its own. */
  readonly afterProcesses?: boolean;
  run(ctx: StageContext, prepared: Prepared): Promise<StageResult>;
}
