/**
 * `npm run fixture` — regenerates the report fixtures from two real, tiny bench runs (about two
 * minutes on 2 cores), so that the report tests pin what the harness really writes:
 * - test/fixtures/bench-report.json: lab, bare, floor and socketio on every transport they speak, in two
 *   scenario shapes: a small one (every result ok), and one whose payload is larger than the lab's
 *   `maxPayloadBytes`, so that the lab refuses every publish and its scenarios are INVALID with nothing
 *   measured; the small one again over the `broadband` network (the relay), lab only; plus idle memory,
 *   autocannon and tinybench;
 * - test/fixtures/bench-sweep.json: a capacity sweep of short polling at its 1 s interval, over
 *   loopback and over `broadband`, whose p95 breaks the 250 ms rule at the first step (an INVALID step,
 *   max clients 0);
 * - and each one's Markdown (.md), which test/report/report.test.ts compares with what the renderer writes now.
 * `npm run fixture -- --render` re-renders the Markdown from the stored JSON without running anything.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { DEFAULTS } from '../../server/config.js';
import { parseBenchArgs } from './options.js';
import { Progress } from '../plan/progress.js';
import { runBench } from '../stages/run-bench.js';
import { renderMarkdown } from '../../report/markdown.js';
import { ReportValidationError, validateReport } from '../../report/schema.js';
import type { Report } from '../../report/types.js';

const DIR = new URL('../../test/fixtures/', import.meta.url);
const FIXTURES = { report: new URL('bench-report.json', DIR), sweep: new URL('bench-sweep.json', DIR) } as const;
const markdownOf = (json: URL): URL => new URL(json.href.replace(/\.json$/, '.md'));

/** Flags both runs share: a loaded machine may delay the publisher (2 s allowed); loss never is. */
const COMMON = ['--max-publisher-lag-ms', '2000'];

async function reportRun(log: Progress): Promise<Report> {
  const opts = parseBenchArgs([
    ...COMMON,
    '--servers',
    'lab,bare,floor,socketio',
    '--repeats',
    '2',
    '--short-poll-interval-ms',
    '200',
    '--memory-connections',
    '20',
    '--network',
    'loopback,broadband',
  ]);
  // Two shapes (the command line holds one), one of them over two networks, and short autocannon and tinybench stages.
  opts.scenarios = [
    { name: 'small', clients: 5, ratePerSec: 50, payloadBytes: 100, durationSec: 1, network: 'loopback' },
    {
      name: 'oversize',
      clients: 2,
      ratePerSec: 10,
      payloadBytes: DEFAULTS.maxPayloadBytes + 1024,
      durationSec: 1,
      repeats: 1,
      network: 'loopback',
    },
    {
      name: 'small',
      clients: 5,
      ratePerSec: 50,
      payloadBytes: 100,
      durationSec: 1,
      network: 'broadband',
      servers: ['lab'],
    },
  ];
  opts.autocannonDurationSec = 1;
  opts.microTimeMs = 100;
  opts.argv = ['bench/cli/fixture.ts'];
  const r = await runBench(opts, log);
  const bad = r.scenarios.filter((s) => s.status === 'invalid').map((s) => `${s.name} ${s.server}/${s.transport}`);
  const want = ['oversize lab/poll', 'oversize lab/short-poll', 'oversize lab/sse', 'oversize lab/ws'];
  if (bad.join() !== want.join())
    throw new Error(
      `expected exactly ${want.join(', ')} to be INVALID, got: ${bad.join(', ') || 'none'} (rerun on a quieter machine)`,
    );
  return r;
}

async function sweepRun(log: Progress): Promise<Report> {
  const opts = parseBenchArgs([
    ...COMMON,
    '--sweep',
    '--servers',
    'lab,bare',
    '--transports',
    'short-poll',
    '--short-poll-interval-ms',
    '1000',
    '--rate',
    '10',
    '--duration',
    '1',
    '--network',
    'loopback,broadband',
  ]);
  opts.argv = ['bench/cli/fixture.ts'];
  return runBench(opts, log);
}

async function write(json: URL, report: Report): Promise<void> {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  const result = validateReport(JSON.parse(text));
  if (!result.ok) throw new ReportValidationError(result.errors);
  await writeFile(json, text);
  await writeFile(markdownOf(json), renderMarkdown(JSON.parse(text) as Report));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const renderOnly = process.argv.includes('--render');
  const log = new Progress();
  for (const [json, run] of [
    [FIXTURES.report, reportRun],
    [FIXTURES.sweep, sweepRun],
  ] as const) {
    await write(json, renderOnly ? (JSON.parse(await readFile(json, 'utf8')) as Report) : await run(log));
    console.log(`wrote ${json.pathname} and its .md`);
  }
  process.exit(0);
}
