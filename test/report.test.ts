/**
 * The bench report: the fixture pins the format (schema `transport-lab/bench@1`), the schema refuses
 * what the types forbid, the Markdown never shows an invalid result as a number, the HTML is one
 * self-contained file, and a report that does not validate is never written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { figure } from '../bench/figures.js';
import { chartSpecs, readChartJsSource, renderHtml } from '../bench/report/html.js';
import { DASH, fmtMs, renderMarkdown } from '../bench/report/markdown.js';
import { ReportValidationError, reportJsonSchema, validateReport } from '../bench/report/schema.js';
import { REPORT_SCHEMA, type Figure, type Report, type ScenarioResult } from '../bench/report/types.js';
import { gitShort, reportFileName, writeReports } from '../bench/report/write.js';

const FIXTURE_PATH = new URL('./fixtures/bench-report.json', import.meta.url);
const FIXTURE_TEXT = readFileSync(FIXTURE_PATH, 'utf8');

/** A fresh copy each time: tests break it on purpose. */
const fixture = (): Report => JSON.parse(FIXTURE_TEXT) as Report;

function invalidScenario(r: Report): ScenarioResult {
  const s = r.scenarios.find((x) => x.status === 'invalid');
  if (!s) throw new Error('the fixture must hold an invalid scenario');
  return s;
}

function okScenario(r: Report, server: string, transport: string): ScenarioResult {
  const s = r.scenarios.find((x) => x.status === 'ok' && x.server === server && x.transport === transport);
  if (!s) throw new Error(`the fixture must hold an ok ${server}/${transport} scenario`);
  return s;
}

/** A figure's number that the test needs measured (the fixture's ok figures always are). */
function measured(x: number | null): number {
  if (x === null) throw new Error('expected a measured figure, got null');
  return x;
}

/** Every figure of a scenario, with its path, e.g. `latencyMs.p99`. */
function figuresOf(s: ScenarioResult): [string, Figure][] {
  const groups = { latencyMs: s.latencyMs, publisherLagMs: s.publisherLagMs, wire: s.wire, serverMetrics: s.serverMetrics };
  return Object.entries(groups).flatMap(([g, figs]) =>
    Object.entries(figs as Record<string, Figure | undefined>).flatMap(([k, f]): [string, Figure][] => (f ? [[`${g}.${k}`, f]] : [])),
  );
}

/**
 * Turns the fixture's invalid scenario into one whose runs failed before measuring: every figure not
 * measured in any repeat, except latency p50, measured in the first repeat only.
 */
function unmeasured(r: Report): ScenarioResult {
  const s = invalidScenario(r);
  for (const [, f] of figuresOf(s)) Object.assign(f, figure(Array.from({ length: s.repeats }, () => Number.NaN)));
  Object.assign(s.latencyMs.p50, figure([12.5, null, Number.NaN]));
  s.reason = 'repeat 1: run failed: server exited with code 1 | repeat 2: run failed: connect ECONNREFUSED';
  return s;
}

/** The page without its script elements (the embedded report JSON holds null legitimately). */
const visibleHtml = (html: string): string => html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/gi, '');

function expectInvalid(x: unknown, errorMatching: RegExp): void {
  const result = validateReport(x);
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.errors.some((e) => errorMatching.test(e)), result.errors.join('\n')).toBe(true);
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('the fixture', () => {
  it('validates', () => {
    expect(validateReport(fixture())).toEqual({ ok: true });
  });

  it('covers what it pins: lab and bare per transport, socketio ws and poll, an invalid scenario, every section', () => {
    const r = fixture();
    expect(r.schema).toBe(REPORT_SCHEMA);
    for (const transport of ['poll', 'short-poll', 'sse', 'ws']) {
      okScenario(r, 'lab', transport);
      okScenario(r, 'bare', transport);
    }
    okScenario(r, 'socketio', 'ws');
    okScenario(r, 'socketio', 'poll');
    expect(invalidScenario(r).reason).toMatch(/\S/);
    expect(r.memory.length).toBeGreaterThan(0);
    expect(r.autocannon.length).toBeGreaterThan(0);
    expect(r.micro.length).toBeGreaterThan(0);
    expect(r.sweep?.length).toBeGreaterThan(0);
    for (const s of r.scenarios) expect(s.latencyMs.p99.values).toHaveLength(s.repeats);
  });

  it('has wire figures in the expected range: ws ≈ payload + frame header, SSE ≈ payload + tens, poll ≈ hundreds over', () => {
    const r = fixture();
    const over = (s: ScenarioResult) => measured(s.wire.bytesOutPerMsg.median) - s.payloadBytes;
    expect(over(okScenario(r, 'lab', 'ws'))).toBeGreaterThanOrEqual(2);
    expect(over(okScenario(r, 'lab', 'ws'))).toBeLessThan(6);
    expect(over(okScenario(r, 'lab', 'sse'))).toBeGreaterThan(15);
    expect(over(okScenario(r, 'lab', 'sse'))).toBeLessThan(60);
    expect(over(okScenario(r, 'lab', 'poll'))).toBeGreaterThan(100);
  });
});

describe('validateReport', () => {
  it('is a draft-07 schema that requires every non-optional top-level field', () => {
    expect(reportJsonSchema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect([...reportJsonSchema.required].sort()).toEqual(
      ['autocannon', 'env', 'finishedAt', 'git', 'memory', 'method', 'micro', 'params', 'scenarios', 'schema', 'startedAt'].sort(),
    );
  });

  it.each([
    ['git', (r: Report) => delete (r as Partial<Report>).git, /must have required property 'git'/],
    ['scenarios[0].latencyMs', (r: Report) => delete (r.scenarios[0] as Partial<ScenarioResult>).latencyMs, /\/scenarios\/0 must have required property 'latencyMs'/],
    ['scenarios[0].latencyMs.p99.values', (r: Report) => delete (r.scenarios[0]!.latencyMs.p99 as { values?: number[] }).values, /\/scenarios\/0\/latencyMs\/p99 must have required property 'values'/],
    ['env.cpuModel', (r: Report) => delete (r.env as { cpuModel?: string }).cpuModel, /\/env must have required property 'cpuModel'/],
    ['memory[0].heapBytesPerConn', (r: Report) => delete (r.memory[0] as { heapBytesPerConn?: unknown }).heapBytesPerConn, /\/memory\/0 must have required property 'heapBytesPerConn'/],
  ])('refuses a report without %s', (_name, remove, error) => {
    const r = fixture();
    remove(r);
    expectInvalid(r, error);
  });

  it('refuses a bad status', () => {
    const r = fixture();
    (r.scenarios[0] as { status: string }).status = 'failed';
    expectInvalid(r, /\/scenarios\/0\/status must be equal to one of the allowed values/);
  });

  it('refuses an invalid scenario without a reason', () => {
    const r = fixture();
    delete invalidScenario(r).reason;
    expectInvalid(r, /\/scenarios\/\d+ must have required property 'reason'/);
  });

  it('refuses an invalid memory result or sweep step without a reason', () => {
    const r = fixture();
    r.memory[0]!.status = 'invalid';
    expectInvalid(r, /\/memory\/0 must have required property 'reason'/);
    const s = fixture();
    const step = s.sweep!.flatMap((x) => x.steps).find((x) => x.status === 'invalid')!;
    delete step.reason;
    expectInvalid(s, /\/sweep\/\d+\/steps\/\d+ must have required property 'reason'/);
  });

  it('refuses a reason on an ok result ("absent when ok")', () => {
    const r = fixture();
    r.scenarios[0]!.reason = 'looks fine';
    expectInvalid(r, /\/scenarios\/0 must NOT be valid/);
  });

  it('refuses an ok scenario that lost messages: loss makes a run invalid', () => {
    const r = fixture();
    const s = okScenario(r, 'lab', 'ws');
    s.lost = 1;
    s.delivered -= 1;
    expectInvalid(r, /\/lost must be equal to constant \(0\)/);
  });

  it('refuses unknown fields, NaN figures and vsBare on a non-lab server', () => {
    const extra = fixture() as Report & { extra?: number };
    extra.extra = 1;
    expectInvalid(extra, /must NOT have additional properties 'extra'/);

    const nan = fixture();
    nan.scenarios[0]!.latencyMs.p50.median = Number.NaN;
    expectInvalid(nan, /\/scenarios\/0\/latencyMs\/p50\/median must be number/);

    const bare = fixture();
    okScenario(bare, 'bare', 'ws').vsBare = { cpuUsPerMsg: 1, bytesOutPerMsg: 1, latencyP99: 1 };
    expectInvalid(bare, /must NOT be valid/);
  });

  it('refuses figures that do not add up: a value per repeat, median within min…max, expected = published × clients', () => {
    const repeats = fixture();
    repeats.scenarios[0]!.wire.bytesOutPerMsg.values.pop();
    expectInvalid(repeats, /\/scenarios\/0\/wire\/bytesOutPerMsg has 2 values for 3 repeats/);

    const median = fixture();
    median.scenarios[0]!.latencyMs.p50.median = measured(median.scenarios[0]!.latencyMs.p50.max) + 1;
    expectInvalid(median, /\/scenarios\/0\/latencyMs\/p50 median .* is outside min…max/);

    const expected = fixture();
    expected.scenarios[0]!.expected += 1;
    expectInvalid(expected, /\/scenarios\/0\/expected .* is not published × clients/);
  });

  it('accepts an invalid scenario whose figures were not measured (null), as JSON stores it', () => {
    const r = fixture();
    const s = unmeasured(r);
    expect(s.latencyMs.p99).toEqual({ median: null, min: null, max: null, values: [null, null, null] });
    expect(s.latencyMs.p50).toEqual({ median: 12.5, min: 12.5, max: 12.5, values: [12.5, null, null] });
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual({ ok: true });
  });

  it('accepts an invalid memory result or sweep step that measured nothing', () => {
    const r = fixture();
    Object.assign(r.memory[0]!, { status: 'invalid', reason: 'server crashed', heapBytesPerConn: figure([]), rssBytesPerConn: figure([NaN]) });
    const step = r.sweep!.flatMap((x) => x.steps).find((x) => x.status === 'invalid')!;
    step.p95Ms = null;
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual({ ok: true });
  });

  it('refuses null (not measured) anywhere in an ok result', () => {
    const value = fixture();
    okScenario(value, 'lab', 'ws').latencyMs.p99.values[1] = null;
    const at = value.scenarios.indexOf(okScenario(value, 'lab', 'ws'));
    expectInvalid(value, new RegExp(`/scenarios/${at}/latencyMs/p99/values/1 is null \\(not measured\\) in an ok result`));

    const median = fixture();
    median.scenarios[0]!.wire.bytesOutPerMsg.median = null;
    expectInvalid(median, /\/scenarios\/0\/wire\/bytesOutPerMsg\/median is null \(not measured\) in an ok result/);

    const all = fixture();
    Object.assign(all.scenarios[0]!.serverMetrics.cpuUsPerMsg, figure([NaN, NaN, NaN]));
    expectInvalid(all, /\/scenarios\/0\/serverMetrics\/cpuUsPerMsg\/min is null/);

    const memory = fixture();
    memory.memory[0]!.rssBytesPerConn.values[0] = null;
    expectInvalid(memory, /\/memory\/0\/rssBytesPerConn\/values\/0 is null/);

    const cannon = fixture();
    cannon.autocannon[0]!.requestsPerSec.median = null;
    expectInvalid(cannon, /\/autocannon\/0\/requestsPerSec\/median is null/);

    const sweep = fixture();
    sweep.sweep![0]!.steps[0]!.p95Ms = null;
    expectInvalid(sweep, /\/sweep\/0\/steps\/0\/p95Ms is null \(not measured\) in an ok step/);
  });

  it('still refuses NaN and Infinity, and checks medians and extremes over the measured values only', () => {
    const inf = fixture();
    invalidScenario(inf).latencyMs.p99.values[0] = Number.POSITIVE_INFINITY;
    expectInvalid(inf, /latencyMs\/p99\/values\/0 must be number,null/);

    const extremes = fixture();
    const s = unmeasured(extremes);
    s.latencyMs.p50.values = [12.5, null, 40];
    const at = extremes.scenarios.indexOf(s);
    expectInvalid(extremes, new RegExp(`/scenarios/${at}/latencyMs/p50 min/max 12.5/12.5 are not the extremes of values \\(12.5/40\\)`));

    const outside = fixture();
    const t = unmeasured(outside);
    t.latencyMs.p50.median = 13;
    expectInvalid(outside, /latencyMs\/p50 median 13 is outside min…max 12.5…12.5/);
  });
});

describe('renderMarkdown', () => {
  it('has a header with date, git, node, OS, CPU model × count, memory, and the method', () => {
    const r = fixture();
    const md = renderMarkdown(r);
    expect(md).toContain(r.startedAt);
    expect(md).toContain(r.git);
    expect(md).toContain(r.env.node);
    expect(md).toContain(r.env.os);
    expect(md).toContain(`${r.env.cpuModel} × ${r.env.cpus}`);
    expect(md).toContain('15.6 GiB');
    expect(md).toContain('## Method');
    expect(md).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('shows the invalid scenario as INVALID with its reason and never its latency as a number', () => {
    const r = fixture();
    const bad = invalidScenario(r);
    const md = renderMarkdown(r);
    expect(md).toContain(`**INVALID: ${bad.reason}**`);

    const row = md.split('\n').find((l) => l.startsWith(`| ${bad.server} | ${bad.transport} | **INVALID`));
    expect(row).toBeDefined();
    const cells = row!.split(' | ');
    // Server, transport, status, delivered; every measured figure after them is a dash.
    const figures = cells.slice(4).map((x) => x.replace(/\s*\|$/, ''));
    expect(figures.length).toBeGreaterThan(10);
    for (const cell of figures) expect(cell).toBe(DASH);
    for (const f of [bad.latencyMs.p50, bad.latencyMs.p99, bad.latencyMs.max]) {
      const median = measured(f.median);
      expect(row).not.toContain(fmtMs(median));
      expect(row).not.toContain(String(median));
    }
  });

  it('shows an invalid scenario that measured nothing with its reason and dashes, never "null" or "NaN"', () => {
    const r = fixture();
    const bad = unmeasured(r);
    const md = renderMarkdown(r);
    // The repeats' reasons are joined with ' | ', which a table cell escapes.
    expect(md).toContain(`**INVALID: ${bad.reason!.replaceAll('|', '\\|')}**`);
    const row = md.split('\n').find((l) => l.startsWith(`| ${bad.server} | ${bad.transport} | **INVALID`));
    expect(row).toBeDefined();
    for (const cell of row!.split(' | ').slice(4)) expect(cell.replace(/\s*\|$/, '')).toBe(DASH);
    expect(md).not.toMatch(/\bnull\b|NaN|undefined|Infinity/);
  });

  it('prints valid figures as median (min–max), bytes to one decimal and ratios as ×1.23', () => {
    const r = fixture();
    const lab = okScenario(r, 'lab', 'ws');
    const md = renderMarkdown(r);
    const row = md.split('\n').find((l) => l.startsWith('| lab | ws | ok | 150,000'))!;
    const p50 = lab.latencyMs.p50;
    expect(row).toContain(`${fmtMs(measured(p50.median))} (${fmtMs(measured(p50.min))}–${fmtMs(measured(p50.max))})`);
    expect(row).toContain(measured(lab.wire.bytesOutPerMsg.median).toFixed(1));
    expect(row).toContain(`×${lab.vsBare!.cpuUsPerMsg.toFixed(2)}`);
  });

  it('has the memory, autocannon, micro and sweep tables', () => {
    const r = fixture();
    const md = renderMarkdown(r);
    expect(md).toContain('## Memory per connection');
    expect(md).toContain('## HTTP endpoints (autocannon)');
    expect(md).toContain('`POST /publish`');
    expect(md).toContain('## Micro-benchmarks (tinybench)');
    expect(md).toContain(r.micro[0]!.name);
    expect(md).toContain('## Capacity sweep');
    const stepReason = r.sweep!.flatMap((s) => s.steps).find((s) => s.status === 'invalid')!.reason!;
    expect(md).toContain(stepReason);
  });
});

describe('renderHtml', () => {
  it('is one self-contained file: no external src or href, the report JSON and Chart.js inlined', async () => {
    const r = fixture();
    const chartJs = await readChartJsSource();
    const html = renderHtml(r, chartJs);
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/url\(\s*["']?(?:https?:)?\/\//i);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain(chartJs);

    const embedded = /<script type="application\/json" id="bench-report">([^<]*)<\/script>/.exec(html);
    expect(embedded).not.toBeNull();
    expect(JSON.parse(embedded![1]!)).toEqual(r);
  });

  it('marks the invalid scenario and leaves it out of every chart', () => {
    const r = fixture();
    const bad = invalidScenario(r);
    const html = renderHtml(r, '');
    expect(html).toContain('<tr class="invalid">');
    expect(html).toContain(`INVALID: ${bad.reason}`);

    const groups = chartSpecs(r);
    const group = groups.find((g) => g.excluded.some((e) => e.what === bad.name));
    expect(group).toBeDefined();
    const latency = group!.charts.find((c) => c.id.endsWith('-latency'))!;
    expect(latency.labels).not.toContain(`${bad.transport} · ${bad.server}`);
    const bytes = group!.charts.find((c) => c.id.endsWith('-bytes'))!;
    const at = bytes.labels.indexOf(bad.transport);
    expect(bytes.datasets.find((d) => d.label === bad.server)?.data[at] ?? null).toBeNull();
    // Every charted number is a valid scenario's median.
    const okMedians = new Set(r.scenarios.filter((s) => s.status === 'ok').map((s) => s.latencyMs.p99.median));
    for (const v of latency.datasets.find((d) => d.label === 'p99')!.data) expect(okMedians.has(v!)).toBe(true);
  });

  it('shows an invalid scenario that measured nothing with its reason, never "null" or "NaN", and charts no null figure', () => {
    const r = fixture();
    const bad = unmeasured(r);
    const html = renderHtml(r, '');
    expect(html).toContain(`INVALID: ${bad.reason}`);
    const visible = visibleHtml(html);
    expect(visible).toContain(`<strong>INVALID: ${bad.reason}</strong>`);
    expect(visible).not.toMatch(/\bnull\b|NaN|undefined|Infinity/);

    const groups = chartSpecs(r);
    expect(groups.some((g) => g.excluded.some((e) => e.what === bad.name))).toBe(true);
    for (const c of groups.flatMap((g) => g.charts)) {
      for (const d of c.datasets) for (const v of d.data) if (v !== null) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it('leaves a gap (null) in a chart, never NaN, where a figure was not measured', () => {
    const r = fixture();
    // Not a report that validates (an ok result is always measured), but the charts must not break on one.
    const lab = okScenario(r, 'lab', 'ws');
    Object.assign(lab.latencyMs.p99, figure([NaN, NaN, NaN]));
    Object.assign(lab.wire.bytesOutPerMsg, figure([null, null, null]));
    const group = chartSpecs(r).find((g) => g.charts.some((c) => c.labels.includes('ws · lab')))!;
    const latency = group.charts.find((c) => c.id.endsWith('-latency'))!;
    const i = latency.labels.indexOf('ws · lab');
    const p99 = latency.datasets.find((d) => d.label === 'p99')!;
    expect(p99.data[i]).toBeNull();
    expect(p99.spread[i]).toBeNull();
    const bytes = group.charts.find((c) => c.id.endsWith('-bytes'))!;
    expect(bytes.datasets.find((d) => d.label === 'lab')!.data[bytes.labels.indexOf('ws')]).toBeNull();
    expect(JSON.stringify(chartSpecs(r))).not.toMatch(/NaN/);
  });

  it('charts latency percentiles, bytes, CPU and memory per connection', () => {
    const ids = chartSpecs(fixture()).flatMap((g) => g.charts.map((c) => c.id));
    for (const suffix of ['-latency', '-bytes', '-cpu', '-heap', '-rss']) expect(ids.some((id) => id.endsWith(suffix))).toBe(true);
  });

  it('cannot be broken out of its script elements by a reason or by the Chart.js source', () => {
    const r = fixture();
    invalidScenario(r).reason = '</script><script>alert(1)</script>';
    const html = renderHtml(r, 'var s = "</script><b>x</b>";');
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('var s = "<\\/script><b>x</b>";');
    // Exactly the four script elements close: report JSON, chart specs, Chart.js, the chart builder.
    expect(html.match(/<\/script>/g)).toHaveLength(4);
  });
});

describe('writeReports', () => {
  it('writes the timestamped JSON, latest.json, latest.md and latest.html', async () => {
    const dir = await tempDir();
    const r = fixture();
    const paths = await writeReports(r, dir);
    expect(paths).toEqual({
      json: join(dir, '2026-11-20T14-05-12.337Z-5c1e0d9.json'),
      latestJson: join(dir, 'latest.json'),
      md: join(dir, 'latest.md'),
      html: join(dir, 'latest.html'),
    });
    expect((await readdir(dir)).sort()).toEqual(['2026-11-20T14-05-12.337Z-5c1e0d9.json', 'latest.html', 'latest.json', 'latest.md']);
    expect(JSON.parse(await readFile(paths.json, 'utf8'))).toEqual(r);
    expect(JSON.parse(await readFile(paths.latestJson, 'utf8'))).toEqual(r);
    expect(await readFile(paths.md, 'utf8')).toBe(renderMarkdown(r));
    expect(await readFile(paths.html, 'utf8')).toContain('id="bench-report"');
  });

  it('refuses a report that does not validate, and writes nothing', async () => {
    const dir = join(await tempDir(), 'out');
    const r = fixture();
    delete invalidScenario(r).reason;
    const err = await writeReports(r, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReportValidationError);
    expect((err as ReportValidationError).code).toBe('BENCH_ERR_REPORT_INVALID');
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses NaN, which JSON would have stored as null', async () => {
    const dir = join(await tempDir(), 'out');
    const r = fixture();
    r.scenarios[0]!.serverMetrics.cpuUsPerMsg.median = Number.NaN;
    await expect(writeReports(r, dir)).rejects.toMatchObject({ code: 'BENCH_ERR_REPORT_INVALID' });
    expect(existsSync(dir)).toBe(false);
  });

  it('names the file from startedAt and a short sha', () => {
    expect(gitShort('5c1e0d94b2a7f3e81d6c0a9b4e2f7d3a1c8b6e05')).toBe('5c1e0d9');
    expect(gitShort('5c1e0d94b2a7-dirty')).toBe('5c1e0d9-dirty');
    expect(gitShort('no git / here')).toBe('no_git_here');
    expect(reportFileName({ startedAt: '2026-01-02T03:04:05.006Z', git: 'abcdef0123' })).toBe('2026-01-02T03-04-05.006Z-abcdef0.json');
  });
});
