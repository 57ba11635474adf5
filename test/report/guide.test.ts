/**
 * The guide (report/guide.ts) and the figures the docs quote (report/doc-figures.ts) come from the committed
 * reports and nothing else: results/guide.{md,html}, the README's guide block and every `<!--fig:…-->` in
 * README.md and docs/*.md are exactly what `npm run guide` makes from results/ (a figure typed or left
 * behind fails here); every link the guide makes reaches a row of its report; the pick follows the one
 * stated rule; and a measured-looking figure outside those spans fails unless it is listed below as not
 * coming from a committed report.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { guideFiles, readGuideReports } from '../../bench/cli/guide.js';
import { DOC_FIGURES, figureKeys, fillFigures } from '../../report/doc-figures.js';
import { ranked } from '../../report/answers.js';
import { GUIDE_SOURCES, type GuideReports, guideModel } from '../../report/guide.js';
import { README_GUIDE_END, README_GUIDE_START, renderGuideMarkdown } from '../../report/guide-render.js';
import { renderMarkdown } from '../../report/markdown.js';
import type { Report, ScenarioResult } from '../../report/types.js';

/** A real run of `npm run fixture` (test/fixtures/bench-report.json): lab, bare and peers, loopback and broadband. */
const fixture = (): Report => JSON.parse(read('test/fixtures/bench-report.json')) as Report;

const ROOT = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

/** Every anchor a rendered report has: its row ids. */
const rowAnchors = (md: string) => new Set([...md.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]!));

describe('the guide and the docs’ figures', () => {
  it('results/guide.*, the README’s block and every <!--fig--> in README and docs are what the committed reports make', () => {
    const stale = guideFiles().filter((f) => read(f.path) !== f.text);
    expect(
      stale.map((f) => f.path),
      'run npm run guide and commit what it writes',
    ).toEqual([]);
    const readme = read('README.md');
    expect(readme.indexOf(README_GUIDE_START)).toBeGreaterThan(0);
    expect(readme.indexOf(README_GUIDE_END)).toBeGreaterThan(readme.indexOf(README_GUIDE_START));
  });

  it('every link in results/guide.md reaches a row of a committed report', () => {
    const guide = read('results/guide.md');
    const links = [...guide.matchAll(/\]\(([^)#]+)#([^)]+)\)/g)].map((m) => ({ file: m[1]!, anchor: m[2]! }));
    expect(links.length).toBeGreaterThan(20);
    const problems = links.filter(({ file, anchor }) => !rowAnchors(read(join('results', file))).has(anchor));
    expect(problems).toEqual([]);
  });

  it('every committed report it reads comes from one machine and a clean commit', () => {
    const reports = readGuideReports(new URL('results', ROOT).pathname);
    const machines = new Set(Object.values(reports).map((r) => `${r.env.cpus} × ${r.env.cpuModel}`));
    expect([...machines]).toHaveLength(1);
    for (const [role, r] of Object.entries(reports)) expect(r.git, role).toMatch(/^[0-9a-f]{7,40}$/);
  });

  it('a figure span with an unknown key, or whose row is missing, is refused with its name', () => {
    const reports = readGuideReports(new URL('results', ROOT).pathname);
    expect(() => fillFigures('<!--fig:nope-->1<!--/fig-->', reports, 'x.md')).toThrow(/x\.md: unknown figure/);
    const empty = { ...reports, field: { ...reports.field, field: [] } } as GuideReports;
    expect(() => fillFigures('<!--fig:deploy.fold-->7<!--/fig-->', empty, 'y.md')).toThrow(
      /y\.md: figure deploy\.fold/,
    );
    // Every key the docs use exists, and every key exists for a reason: some doc uses it.
    const used = new Set(
      guideFiles()
        .filter((f) => f.path.endsWith('.md'))
        .flatMap((f) => figureKeys(f.text)),
    );
    expect([...used].filter((k) => !(k in DOC_FIGURES))).toEqual([]);
    expect(Object.keys(DOC_FIGURES).filter((k) => !used.has(k))).toEqual([]);
  });
});

// ---- The rule, on rows made for it -----------------------------------------------------------------------

const row = (transport: string, p99: number, bytes: number, cpu = 1, extra: Partial<ScenarioResult> = {}) =>
  ({
    server: 'lab',
    transport,
    status: 'ok',
    lost: 0,
    latencyMs: { p99: { median: p99 } },
    wire: { bytesOutPerMsg: { median: bytes } },
    serverMetrics: { cpuUsPerMsg: { median: cpu } },
    ...extra,
  }) as unknown as ScenarioResult;

describe('the pick rule', () => {
  it('lowest p99 first; within 10 % of it, fewer bytes; then less CPU; invalid or lossy rows never', () => {
    const order = (rows: ScenarioResult[]) => ranked(rows).map((r) => r.transport);
    expect(order([row('poll', 50, 100), row('sse', 20, 160), row('ws', 21, 140)])).toEqual(['ws', 'sse', 'poll']);
    expect(order([row('sse', 20, 160), row('ws', 23, 140)])).toEqual(['sse', 'ws']);
    expect(order([row('sse', 20, 140, 5), row('ws', 20, 140, 3)])).toEqual(['ws', 'sse']);
    expect(
      order([row('ws', 1, 1, 1, { status: 'invalid' }), row('sse', 1, 1, 1, { lost: 3 }), row('poll', 90, 300)]),
    ).toEqual(['poll']);
  });

  it('a report without the rows a condition needs says "not measured", never a guessed pick', () => {
    const f = fixture();
    const reports = Object.fromEntries(Object.keys(GUIDE_SOURCES).map((k) => [k, f])) as unknown as GuideReports;
    const guide = guideModel(reports);
    const text = renderGuideMarkdown(guide);
    expect(text).not.toMatch(/NaN|undefined|Infinity/);
    for (const r of guide.rows) {
      if (r.pick === null) expect(r.why.map((s) => s.text).join('')).toMatch(/^not measured/);
      else expect(r.figures.length).toBeGreaterThan(0);
    }
    expect(guide.rows.some((r) => r.pick === null)).toBe(true);
    // Each link reaches a row of the fixture's own rendering.
    const anchors = rowAnchors(renderMarkdown(f));
    for (const s of guide.rows.flatMap((r) => [...r.why, ...r.figures]))
      if (s.href?.includes('#')) expect(anchors.has(s.href.split('#')[1]!), s.href).toBe(true);
  });
});

// ---- No figure typed by hand --------------------------------------------------------------------------

/**
 * Figures that look measured but come from no committed report, each with why (a run described in the
 * text itself, a change's before and after, a profile, a setting). Anything else measured-looking in
 * README.md or docs/*.md outside a <!--fig--> span or the guide block fails the scan.
 */
const NOT_FROM_A_REPORT: readonly string[] = [
  // docs/bench.md: a change's before and after, measured when it was made (the runs are not committed).
  'went from ×1.85 to ×1.5–1.6',
  // docs/bench.md: instruction counts of the change that took the usual long poll past Fastify (its own runs).
  'long polling went from ×1.15 to ×1.05 of the floor and short polling from ×1.14 to',
  '×1.03 (the runs of the change;',
  'bare + 2.4 KiB to bare + 0.3 KiB',
  '6.4 → 3.3 KiB per idle connection, bare 3.4 KiB',
  // docs/bench.md: CPU per message on HTTP/2 either side of the change that took its polls past Fastify.
  '×1.40 to ×1.09 and long polling from ×1.12 to ×1.08',
  // docs/bench.md: a sampling heap profile (`--profile`), not a report figure.
  'profile counted 13.3 KB allocated per',
  "against bare's 10.4 KB",
  // docs/bench.md: the independent floor's figures (issue 26) and the bench's at the time, then callgrind
  // counts of WebSocket fan-out at 10, 100 and 1,000 clients (dev runs of bench/stages/instructions.ts).
  "put the lab's WebSocket at ×1.30 (100 × 100) and ×1.24 (1,000 × 100)",
  '(×1.19 and ×1.03)',
  "×1.23–×1.24 of the floor's per delivery",
  'intake ×1.27–×1.30; in total ×1.25 at 100 clients and ×1.24 at 1,000',
  '×1.24; the gate holds the instruction ratio',
  "×1.19 in the issue's run, ×1.33 in",
  // docs/bench.md: the run before the committed one (18d39c9's), a dev run with one client, a profile.
  'polling read ×1.18 of the floor in the run before',
  'SSE ×1.07 and then',
  'cost ×1.19 of the floor',
  // docs/bench.md: a profiled dev run over HTTP/2 (lab and bare, one repeat).
  'read ×1.05 (long polling), ×1.06 (short) and',
  '×1.10 (SSE), inside the target',
  // docs/testing.md: settings of the gate (the doctor's spin, the idle sample), not measurements.
  'a lab doctored to spin 2.5 µs',
  'sampled for 0.5 s',
  // docs/testing.md: vitest's own durations of the suites, which that page records.
  '(idle timeouts 11.5 s, proxy buffering 8.4 s)',
  '11.5 s), `field-sticky`',
  '`dashboard-h2` 8.5 s',
  '`bench-protocols` 7.6 s',
];

/** Decimal figures with a unit, ratios written ×1.23, and "-fold": what a report's figure looks like. */
const MEASURED = /\d[\d,]*\.\d+ ?(?:ms|µs|B|KiB|KB|MiB|s)\b|×\d+\.\d+|\d(?:\.\d+)?-fold/g;

describe('no hand-typed figure in README.md and docs/*.md', () => {
  it('finds none outside the generated spans but those listed as not from a report', () => {
    const found: string[] = [];
    for (const f of guideFiles().filter((x) => x.path.endsWith('.md') && !x.path.startsWith('results/'))) {
      const text = f.text
        .replace(/<!--fig:[\w.-]+-->[\s\S]*?<!--\/fig-->/g, '')
        .replace(new RegExp(`${README_GUIDE_START}[\\s\\S]*?${README_GUIDE_END}`), '')
        .replace(/```[\s\S]*?```/g, '');
      text.split('\n').forEach((line, i) => {
        for (const m of line.matchAll(MEASURED)) {
          if (!NOT_FROM_A_REPORT.some((allowed) => line.includes(allowed)))
            found.push(`${f.path}:${i + 1}: ${m[0]} in “${line.trim().slice(0, 90)}”`);
        }
      });
    }
    expect(found).toEqual([]);
  });

  it('the scan sees a typed figure', () => {
    expect('p99 12.5 ms and ×1.54 and 7.7-fold, 15 s'.match(MEASURED)).toEqual(['12.5 ms', '×1.54', '7.7-fold']);
  });
});
