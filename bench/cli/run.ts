/**
 * `npm run bench` — parses the flags (options.ts), runs the plan (bench/stages/run-bench.ts), evaluates
 * the claims and the storm verdict when asked, writes <out>/<time>-<sha>.json plus latest.{json,md,html}
 * (out: bench-out/ unless --out), and ends with the summary (report/terminal.ts): each scenario's answer,
 * every INVALID result, the time against the estimate, the files. Exits 1 when a result is INVALID, 2 on bad flags.
 */
import { renderSummary } from '../../report/terminal.js';
import { writeReports } from '../../report/write.js';
import { stormFlattened } from '../field/storm.js';
import { evaluateClaims } from '../stages/claims.js';
import { estimateSec } from '../stages/index.js';
import { runBench } from '../stages/run-bench.js';
import { HELP, parseBenchArgs } from './options.js';
import type { BenchOptions } from '../plan/plan.js';

if (import.meta.url === `file://${process.argv[1]}`) {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  const report = await runBench(opts);
  if (opts.claims) report.claims = evaluateClaims(report);
  const storm = report.field ? stormFlattened(report.field) : undefined;
  if (storm) {
    console.log(
      `reconnect storm: jittered reconnects ${storm.flattened ? 'flattened' : 'did not flatten'} the peak (${storm.naivePeak} → ${storm.labPeak} new SSE/WS connections/s)${storm.flattened ? ' without raising loss' : ''}`,
    );
  }
  const files = await writeReports(report, opts.out, opts.claims ? 'claims' : opts.field ? 'field' : undefined);
  // The tutorial snippet (server `shift`) losing messages is what --claims measures, not a failed run.
  const invalid =
    report.scenarios.filter((s) => s.status === 'invalid' && s.server !== 'shift').length +
    report.memory.filter((m) => m.status === 'invalid').length +
    (report.claims ?? []).filter((c) => c.verdict === 'not measured').length +
    (report.field ?? []).filter((f) => f.status === 'invalid').length;
  console.log(renderSummary(report, { estimateSec: estimateSec(opts), files: [files.md, files.html, files.json] }));
  process.exit(invalid ? 1 : 0);
}
