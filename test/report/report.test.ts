/**
 * The bench report. The fixtures are real runs (`npm run fixture`, bench/cli/fixture.ts), so these
 * tests pin what the harness writes: the schema (TypeBox, also the report's types) accepts it and
 * refuses what the types and rules forbid; the one model (model.ts) groups, orders and marks it; the
 * Markdown and the HTML show the model's tables, figures and INVALID rows and nothing else (the
 * dashboard's are checked against the same model in test/web/dashboard.test.ts); the HTML is one
 * self-contained file; a report that does not validate is never written.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { figure } from '../../report/figures.js';
import { readHtmlScripts, renderHtml } from '../../report/html.js';
import { renderMarkdown } from '../../report/markdown.js';
import {
  DASH,
  fmtMs,
  reportModel,
  TABLE_COLUMNS_MAX,
  SERVER_COLORS,
  type ChartGroup,
  type ReportModel,
  type Section,
} from '../../report/model.js';
import { ReportValidationError, reportJsonSchema, validateReport } from '../../report/schema.js';
import {
  REPORT_SCHEMA,
  SERVER_NAMES,
  TRANSPORT_NAMES,
  type Figure,
  type Report,
  type ScenarioResult,
} from '../../report/types.js';
import { gitShort, reportFileName, writeReports } from '../../report/write.js';
import { startLab } from '../helpers/lab.js';
import { htmlTables, markdownTables, modelTables } from '../helpers/report-views.js';

const REPORT_JSON = new URL('../fixtures/bench-report.json', import.meta.url);
const SWEEP_JSON = new URL('../fixtures/bench-sweep.json', import.meta.url);
const TEXT = { report: readFileSync(REPORT_JSON, 'utf8'), sweep: readFileSync(SWEEP_JSON, 'utf8') };

/** A fresh copy each time: tests break it on purpose. */
const fixture = (): Report => JSON.parse(TEXT.report) as Report;
const sweepFixture = (): Report => JSON.parse(TEXT.sweep) as Report;
const NO_SCRIPTS = { chartJs: '', theme: '' };

const invalidScenario = (r: Report): ScenarioResult => {
  const s = r.scenarios.find((x) => x.status === 'invalid');
  if (!s) throw new Error('the fixture must hold an invalid scenario');
  return s;
};

function okScenario(
  r: Report,
  server: string,
  transport: string,
  name = 'small',
  network = 'loopback',
): ScenarioResult {
  const s = r.scenarios.find(
    (x) =>
      x.status === 'ok' &&
      x.server === server &&
      x.transport === transport &&
      x.name === name &&
      x.network.name === network,
  );
  if (!s) throw new Error(`the fixture must hold an ok ${name} ${server}/${transport} scenario over ${network}`);
  return s;
}

/** The model's section of that title. */
function section(m: ReportModel, title: string): Section {
  const s = m.sections.find((x) => x.title === title);
  if (!s) throw new Error(`the model must have a section "${title}"`);
  return s;
}

/** A figure's number that the test needs measured (the fixture's ok figures always are). */
function measured(x: number | null | undefined): number {
  if (x === null || x === undefined) throw new Error('expected a measured figure');
  return x;
}

/** Every figure of a scenario. */
const figuresOf = (s: ScenarioResult): Figure[] =>
  [s.latencyMs, s.publisherLagMs, s.wire, s.serverMetrics]
    .flatMap((g) => Object.values(g as Record<string, Figure | undefined>))
    .filter((f): f is Figure => f !== undefined);

/** An ok scenario turned invalid the way run.ts would mark a lossy run: measured figures, a reason. */
function measuredButInvalid(r: Report): ScenarioResult {
  const s = okScenario(r, 'lab', 'ws');
  s.status = 'invalid';
  s.reason = 'repeat 2: 3 messages lost | repeat 1: 1 duplicates';
  delete s.vsBare;
  return s;
}

/** The page without its script elements (the embedded report JSON holds null legitimately). */
const visibleHtml = (html: string): string => html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/gi, '');

function expectInvalid(x: unknown, errorMatching: RegExp): void {
  const result = validateReport(x);
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(
    result.errors.some((e) => errorMatching.test(e)),
    result.errors.join('\n'),
  ).toBe(true);
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('the fixtures (real runs of npm run fixture)', () => {
  it('validate, as does every committed report', () => {
    expect(validateReport(fixture())).toEqual({ ok: true });
    expect(validateReport(sweepFixture())).toEqual({ ok: true });
    const results = new URL('../../results/', import.meta.url);
    for (const name of readdirSync(results).filter((n) => n.endsWith('.json'))) {
      expect(validateReport(JSON.parse(readFileSync(new URL(name, results), 'utf8'))), name).toEqual({ ok: true });
    }
  });

  it('cover what they pin: lab and bare ok per transport, socketio ws and poll, the lab INVALID on an oversize payload, the lab over broadband, every section', () => {
    const r = fixture();
    expect(r.schema).toBe(REPORT_SCHEMA);
    expect(r.env.argv).toEqual(['bench/cli/fixture.ts']);
    for (const transport of TRANSPORT_NAMES) {
      okScenario(r, 'lab', transport);
      okScenario(r, 'bare', transport);
      okScenario(r, 'bare', transport, 'oversize');
    }
    okScenario(r, 'socketio', 'ws');
    okScenario(r, 'socketio', 'poll');
    expect(r.params.networks.map((n) => n.name)).toEqual(['loopback', 'broadband']);
    for (const transport of TRANSPORT_NAMES) {
      const s = okScenario(r, 'lab', transport, 'small', 'broadband');
      // Every delivery crossed the relay's one-way delay (RTT/2 = 14 ms).
      expect(measured(s.latencyMs.p50.median)).toBeGreaterThanOrEqual(14);
      expect(s.relayLatenessP99Ms?.values).toHaveLength(s.repeats);
    }
    expect(r.scenarios.filter((s) => s.network.name === 'broadband').map((s) => s.server)).toEqual(
      Array(4).fill('lab'),
    );
    const invalid = r.scenarios.filter((s) => s.status === 'invalid');
    expect(invalid.map((s) => `${s.name} ${s.server}`)).toEqual(Array(4).fill('oversize lab'));
    for (const s of invalid) {
      expect(s.reason).toMatch(/413.*LAB_ERR_PAYLOAD_TOO_LARGE/);
      expect(s.latencyMs.p99.median).toBeNull(); // nothing was published, so nothing measured
    }
    expect(r.memory.length).toBeGreaterThan(0);
    expect(r.autocannon.length).toBeGreaterThan(0);
    expect(r.micro.length).toBeGreaterThan(0);
    for (const s of r.scenarios.filter((x) => x.status === 'ok'))
      expect(s.latencyMs.p99.values).toHaveLength(s.repeats);
    // params are what run.ts was given; every scenario's shape is one of them.
    for (const s of r.scenarios)
      expect(r.params.scenarios).toContainEqual(
        expect.objectContaining({ name: s.name, clients: s.clients, payloadBytes: s.payloadBytes }),
      );
    expect(sweepFixture().sweep!.map((s) => `${s.server} ${s.network.name}`)).toEqual([
      'lab loopback',
      'bare loopback',
      'lab broadband',
      'bare broadband',
    ]);
    const steps = sweepFixture().sweep!.flatMap((s) => s.steps);
    expect(steps.some((st) => st.status === 'invalid' && /p95 .* > 250 ms/.test(st.reason ?? ''))).toBe(true);
  });

  it('has wire figures in the expected range: ws = message + frame header, SSE = message + tens, poll = hundreds over', () => {
    const r = fixture();
    const floor = (t: string) => measured(okScenario(r, 'lab', t).floor?.overheadBytesPerMsg);
    expect(floor('ws')).toBeGreaterThanOrEqual(2);
    expect(floor('ws')).toBeLessThan(6);
    expect(floor('sse')).toBeGreaterThan(15);
    expect(floor('sse')).toBeLessThan(60);
    const out = (t: string) => measured(okScenario(r, 'lab', t).wire.bytesOutPerMsg.median);
    expect(out('poll') - out('ws')).toBeGreaterThan(100);
  });

  it('store the Markdown the renderer writes now (npm run fixture -- --render updates it)', () => {
    expect(renderMarkdown(fixture())).toBe(
      readFileSync(new URL('../fixtures/bench-report.md', import.meta.url), 'utf8'),
    );
    expect(renderMarkdown(sweepFixture())).toBe(
      readFileSync(new URL('../fixtures/bench-sweep.md', import.meta.url), 'utf8'),
    );
  });
});

describe('validateReport', () => {
  it('is a draft-07 JSON Schema that requires every non-optional top-level field', () => {
    const schema = JSON.parse(JSON.stringify(reportJsonSchema)) as { $schema: string; required: string[] };
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.required.sort()).toEqual(
      [
        'autocannon',
        'env',
        'finishedAt',
        'git',
        'memory',
        'method',
        'micro',
        'params',
        'scenarios',
        'schema',
        'startedAt',
      ].sort(),
    );
  });

  it.each([
    ['git', (r: Report) => delete (r as Partial<Report>).git, /must have required property 'git'/],
    [
      'scenarios[0].latencyMs',
      (r: Report) => delete (r.scenarios[0] as Partial<ScenarioResult>).latencyMs,
      /\/scenarios\/0 must have required property 'latencyMs'/,
    ],
    [
      'scenarios[0].latencyMs.p99.values',
      (r: Report) => delete (r.scenarios[0]!.latencyMs.p99 as { values?: number[] }).values,
      /\/scenarios\/0\/latencyMs\/p99 must have required property 'values'/,
    ],
    [
      'env.cpuModel',
      (r: Report) => delete (r.env as { cpuModel?: string }).cpuModel,
      /\/env must have required property 'cpuModel'/,
    ],
    [
      'memory[0].heapBytesPerConn',
      (r: Report) => delete (r.memory[0] as { heapBytesPerConn?: unknown }).heapBytesPerConn,
      /\/memory\/0 must have required property 'heapBytesPerConn'/,
    ],
    [
      'params.suite',
      (r: Report) => delete (r.params as { suite?: string }).suite,
      /\/params must have required property 'suite'/,
    ],
  ])('refuses a report without %s', (_name, remove, error) => {
    const r = fixture();
    remove(r);
    expectInvalid(r, error);
  });

  it('checks params: the run options, typed, nothing else', () => {
    const untyped = fixture() as Report & { params: { clients?: number[] } };
    untyped.params.clients = [100, 1000];
    expectInvalid(untyped, /\/params must NOT have additional properties 'clients'/);

    const transport = fixture();
    (transport.params.transports as string[]).push('carrier-pigeon');
    expectInvalid(
      transport,
      /\/params\/transports\/4 must be equal to one of the allowed values \(poll, short-poll, sse, ws\)/,
    );

    const pace = fixture();
    (pace.params.scenarios[0] as { pace?: string }).pace = 'fast';
    expectInvalid(
      pace,
      /\/params\/scenarios\/0\/pace must be equal to one of the allowed values \(open-loop, lockstep\)/,
    );

    const lag = fixture();
    lag.params.maxPublisherLagMs = 0;
    expectInvalid(lag, /\/params\/maxPublisherLagMs must be > 0/);
  });

  it('checks networks: a profile on every scenario and sweep, one of params.networks, the relay’s lateness exactly over a relay', () => {
    const none = fixture();
    delete (none.scenarios[0] as Partial<ScenarioResult>).network;
    expectInvalid(none, /\/scenarios\/0 must have required property 'network'/);

    const unlisted = fixture();
    unlisted.params.networks = unlisted.params.networks.filter((n) => n.name !== 'broadband');
    expectInvalid(unlisted, /\/scenarios\/\d+\/network "broadband" is not one of \/params\/networks/);

    const changed = fixture();
    okScenario(changed, 'lab', 'ws', 'small', 'broadband').network.rttMs = 1;
    expectInvalid(changed, /\/scenarios\/\d+\/network differs from the "broadband" of \/params\/networks/);

    const lateness = fixture();
    delete okScenario(lateness, 'lab', 'ws', 'small', 'broadband').relayLatenessP99Ms;
    expectInvalid(lateness, /must have required property 'relayLatenessP99Ms'/);

    const direct = fixture();
    okScenario(direct, 'lab', 'ws').relayLatenessP99Ms = figure([1, 1]);
    expectInvalid(direct, /\/scenarios\/\d+ must NOT be valid/);

    const sweep = sweepFixture();
    sweep.sweep![0]!.network = { ...sweep.sweep![0]!.network, name: 'moon' };
    expectInvalid(sweep, /\/sweep\/0\/network "moon" is not one of \/params\/networks/);
  });

  it('refuses a bad status', () => {
    const r = fixture();
    (r.scenarios[0] as { status: string }).status = 'failed';
    expectInvalid(r, /\/scenarios\/0\/status must be equal to one of the allowed values \(ok, invalid\)/);
  });

  it('refuses an invalid scenario, memory result or sweep step without a reason', () => {
    const r = fixture();
    delete invalidScenario(r).reason;
    expectInvalid(r, /\/scenarios\/\d+ must have required property 'reason'/);
    const m = fixture();
    m.memory[0]!.status = 'invalid';
    expectInvalid(m, /\/memory\/0 must have required property 'reason'/);
    const s = sweepFixture();
    delete s.sweep![0]!.steps[0]!.reason;
    expectInvalid(s, /\/sweep\/0\/steps\/0 must have required property 'reason'/);
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
    expectInvalid(r, /\/lost must be equal to constant \(0\)/);
  });

  it('refuses unknown fields, NaN figures, vsBare or floor on a non-lab server, and vsFloor on the floor', () => {
    const extra = fixture() as Report & { extra?: number };
    extra.extra = 1;
    expectInvalid(extra, /must NOT have additional properties 'extra'/);

    const nan = fixture();
    nan.scenarios[0]!.latencyMs.p50.median = Number.NaN;
    expectInvalid(nan, /\/scenarios\/0\/latencyMs\/p50\/median must be number,null/);

    for (const add of [
      (s: ScenarioResult) => (s.vsBare = { cpuUsPerMsg: 1, bytesOutPerMsg: 1, latencyP99: 1 }),
      (s: ScenarioResult) => (s.floor = { overheadBytesPerMsg: 4, floorBytesPerMsg: 4, excessBytesPerMsg: 0 }),
    ]) {
      const bare = fixture();
      add(okScenario(bare, 'bare', 'ws'));
      expectInvalid(
        bare,
        new RegExp(`/scenarios/${bare.scenarios.indexOf(okScenario(bare, 'bare', 'ws'))} must NOT be valid`),
      );
    }
    const floor = fixture();
    const f = okScenario(floor, 'floor', 'ws');
    f.vsFloor = { cpuUsPerMsg: 1, latencyP99: 1 };
    expectInvalid(floor, new RegExp(`/scenarios/${floor.scenarios.indexOf(f)} must NOT be valid`));
  });

  it('refuses figures that do not add up: a value per repeat, median within min…max, expected = published × clients', () => {
    const repeats = fixture();
    repeats.scenarios[0]!.wire.bytesOutPerMsg.values.pop();
    expectInvalid(repeats, /\/scenarios\/0\/wire\/bytesOutPerMsg has 1 values for 2 repeats/);

    const median = fixture();
    median.scenarios[0]!.latencyMs.p50.median = measured(median.scenarios[0]!.latencyMs.p50.max) + 1;
    expectInvalid(median, /\/scenarios\/0\/latencyMs\/p50 median .* is outside min…max/);

    const expected = fixture();
    expected.scenarios[0]!.expected += 1;
    expectInvalid(expected, /\/scenarios\/0\/expected .* is not published × clients/);
  });

  it('accepts invalid results that measured nothing or part, as JSON stores them', () => {
    const r = fixture();
    const s = invalidScenario(r);
    expect(s.latencyMs.p99).toEqual({ median: null, min: null, max: null, values: [null] });
    Object.assign(s.latencyMs.p50, figure([12.5]));
    Object.assign(r.memory[0]!, {
      status: 'invalid',
      reason: 'server crashed',
      heapBytesPerConn: figure([]),
      rssBytesPerConn: figure([NaN]),
    });
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual({ ok: true });
    const sweep = sweepFixture();
    sweep.sweep![0]!.steps[0]!.p95Ms = null;
    expect(validateReport(sweep)).toEqual({ ok: true });
  });

  it('refuses null (not measured) anywhere in an ok result', () => {
    const value = fixture();
    const lab = okScenario(value, 'lab', 'ws');
    lab.latencyMs.p99.values[1] = null;
    expectInvalid(
      value,
      new RegExp(
        `/scenarios/${value.scenarios.indexOf(lab)}/latencyMs/p99/values/1 is null \\(not measured\\) in an ok result`,
      ),
    );

    const median = fixture();
    median.scenarios[0]!.wire.bytesOutPerMsg.median = null;
    expectInvalid(median, /\/scenarios\/0\/wire\/bytesOutPerMsg\/median is null \(not measured\) in an ok result/);

    const all = fixture();
    Object.assign(all.scenarios[0]!.serverMetrics.cpuUsPerMsg, figure([NaN, NaN]));
    expectInvalid(all, /\/scenarios\/0\/serverMetrics\/cpuUsPerMsg\/min is null/);

    const memory = fixture();
    memory.memory[0]!.rssBytesPerConn.values[0] = null;
    expectInvalid(memory, /\/memory\/0\/rssBytesPerConn\/values\/0 is null/);

    const cannon = fixture();
    cannon.autocannon[0]!.requestsPerSec.median = null;
    expectInvalid(cannon, /\/autocannon\/0\/requestsPerSec\/median is null/);

    const sweep = sweepFixture();
    Object.assign(sweep.sweep![0]!.steps[0]!, { status: 'ok', p95Ms: null });
    delete sweep.sweep![0]!.steps[0]!.reason;
    expectInvalid(sweep, /\/sweep\/0\/steps\/0\/p95Ms is null \(not measured\) in an ok step/);
  });

  it('still refuses NaN and Infinity, and checks medians and extremes over the measured values only', () => {
    const inf = fixture();
    invalidScenario(inf).latencyMs.p99.values[0] = Number.POSITIVE_INFINITY;
    expectInvalid(inf, /latencyMs\/p99\/values\/0 must be number,null/);

    const extremes = fixture();
    const s = invalidScenario(extremes);
    Object.assign(s.latencyMs.p50, { ...figure([12.5]), values: [12.5, null, 40] });
    const at = extremes.scenarios.indexOf(s);
    expectInvalid(
      extremes,
      new RegExp(`/scenarios/${at}/latencyMs/p50 min/max 12.5/12.5 are not the extremes of values \\(12.5/40\\)`),
    );

    const outside = fixture();
    Object.assign(invalidScenario(outside).latencyMs.p50, { ...figure([12.5]), median: 13 });
    expectInvalid(outside, /latencyMs\/p50 median 13 is outside min…max 12.5…12.5/);
  });
});

describe('the model', () => {
  it('groups scenarios by shape in the order they ran, within a shape by network, rows by transport then server', () => {
    const r = fixture();
    const scenarios = section(reportModel(r), 'Scenarios');
    expect(scenarios.groups.map((g) => g.table.title)).toEqual([
      '5 clients · 50 msg/s · 100 B payload · 1 s × 2 repeats · network loopback: direct, no relay',
      '5 clients · 50 msg/s · 100 B payload · 1 s × 2 repeats · network broadband: RTT 28 ms, jitter 0 ms, down 5 Mbps, up 1 Mbps, loss 0 %',
      '2 clients · 10 msg/s · 66,560 B payload · 1 s × 1 repeat · network loopback: direct, no relay',
    ]);
    const ids = scenarios.groups[0]!.table.rows.map((row) => row.id);
    const expected = TRANSPORT_NAMES.flatMap((t) =>
      SERVER_NAMES.filter((s) =>
        r.scenarios.some((x) => x.name === 'small' && x.server === s && x.transport === t),
      ).map((s) => `scenario small ${s}/${t}`),
    );
    expect(ids).toEqual(expected);
    expect(scenarios.groups[1]!.table.rows.map((row) => row.id)).toEqual(
      TRANSPORT_NAMES.map((t) => `scenario small over broadband lab/${t}`),
    );
  });

  it('puts the answer first, then "Transport by network": per shape that ran over a relay, the lab per transport per network, with p50 − RTT/2; the targets last', () => {
    const r = fixture();
    const m = reportModel(r);
    expect(m.sections.map((s) => s.title)).toEqual([
      'The answer',
      'Transport by network',
      'Scenarios',
      'Memory per connection',
      'HTTP endpoints (autocannon)',
      'Micro-benchmarks (tinybench)',
      'Targets (the lab’s own overhead)',
    ]);
    expect(m.sections[0]!.lead).toBe(true);
    const [group, ...more] = m.sections[1]!.groups;
    expect(more).toEqual([]); // the oversize shape ran on loopback only
    const t = group!.table;
    expect(t.title).toBe('5 clients · 50 msg/s · 100 B payload · lab server');
    expect(t.headers).toEqual([
      'Transport',
      'Network',
      'RTT ms',
      'Status',
      'Latency p50 ms',
      'p99 ms',
      'Beyond one-way ms (p50 − RTT/2)',
    ]);
    // The wire and the emulator's lateness in a second table of the same rows.
    const [wire, ...none] = group!.more!;
    expect(none).toEqual([]);
    expect(wire!.headers).toEqual([
      'Transport',
      'Network',
      'Requests/msg',
      'Out B/msg',
      'Relay lateness p99 ms',
      'Scenario',
    ]);
    const ids = TRANSPORT_NAMES.flatMap((tr) => [
      `scenario small lab/${tr}`,
      `scenario small over broadband lab/${tr}`,
    ]);
    expect(t.rows.map((row) => row.id)).toEqual(ids);
    expect(wire!.rows.map((row) => row.id)).toEqual(ids);
    const ws = okScenario(r, 'lab', 'ws', 'small', 'broadband');
    const row = t.rows.find((x) => x.id === 'scenario small over broadband lab/ws')!;
    const p50 = measured(ws.latencyMs.p50.median);
    expect(row.cells[6]!.text.startsWith(fmtMs(p50 - 14))).toBe(true);
    const wireRow = (id: string) => wire!.rows.find((x) => x.id === id)!;
    expect(
      wireRow('scenario small over broadband lab/ws').cells[4]!.text.startsWith(
        fmtMs(measured(ws.relayLatenessP99Ms?.median)),
      ),
    ).toBe(true);
    expect(wireRow('scenario small lab/ws').cells[4]!.text).toBe(DASH);
    expect(t.notes).toEqual([
      expect.stringMatching(/^loopback: direct, no relay\. Source: No relay/),
      expect.stringMatching(/^broadband: RTT 28 ms.*Source: WebPageTest/),
    ]);
    // Not in a report measured on loopback only.
    expect(reportModel(sweepFixture()).sections.map((s) => s.title)).not.toContain('Transport by network');
    const loopbackOnly = fixture();
    loopbackOnly.scenarios = loopbackOnly.scenarios.filter((s) => s.network.direct);
    expect(reportModel(loopbackOnly).sections.map((s) => s.title)).not.toContain('Transport by network');
  });

  it('lists an invalid lab result once, though it shows in both sections', () => {
    const r = fixture();
    const s = okScenario(r, 'lab', 'ws', 'small', 'broadband');
    s.status = 'invalid';
    s.reason = 'repeat 1: the relay fell behind its schedule';
    const m = reportModel(r);
    const id = 'scenario small over broadband lab/ws';
    expect(
      m.sections.filter((x) => x.groups.some((g) => g.table.rows.some((row) => row.id === id && row.invalid))),
    ).toHaveLength(2);
    expect(m.invalid.filter((i) => i.what === id)).toEqual([{ what: id, reason: s.reason }]);
  });

  it('marks every invalid result: a row without figures, in the summary with its reason, left out of the charts', () => {
    const r = fixture();
    const m = reportModel(r);
    // The answer repeats each scenario row in a narrow table: its rows are marked too, listed once in the summary.
    const answer = m.sections[0]!.groups.flatMap((g) => g.table.rows).filter((row) => row.invalid);
    expect(answer.map((row) => row.id)).toEqual(TRANSPORT_NAMES.map((t) => `answer scenario oversize lab/${t}`));
    const rows = m.sections.filter((s) => !s.lead).flatMap((s) => s.groups.flatMap((g) => g.table.rows));
    const bad = rows.filter((row) => row.invalid);
    expect(bad.map((row) => row.id)).toEqual(TRANSPORT_NAMES.map((t) => `scenario oversize lab/${t}`));
    for (const row of bad) {
      expect(row.cells[2]).toEqual({ text: `INVALID: ${row.reason}`, strong: true, invalid: true });
      for (const cell of row.cells.slice(4)) expect(cell.text).toBe(DASH);
    }
    expect(m.invalid).toEqual(bad.map((row) => ({ what: row.id, reason: row.reason })));

    const oversize = section(m, 'Scenarios').groups[2]!.charts!;
    expect(oversize.excluded.map((e) => e.what)).toEqual(TRANSPORT_NAMES.map((t) => `lab/${t}`));
    for (const c of oversize.charts) {
      expect(c.labels.join()).not.toMatch(/\blab\b/);
      for (const d of c.datasets) expect(d.label).not.toBe('lab');
    }
  });

  it('never shows an invalid result as a number, even when it measured some', () => {
    const r = fixture();
    const s = measuredButInvalid(r);
    const row = section(reportModel(r), 'Scenarios').groups[0]!.table.rows.find(
      (x) => x.id === `scenario small lab/ws`,
    )!;
    expect(row.invalid).toBe(true);
    const text = row.cells.map((c) => c.text).join(' ');
    for (const f of figuresOf(s)) expect(text).not.toContain(fmtMs(measured(f.median)));
    const latency = section(reportModel(r), 'Scenarios').groups[0]!.charts!.charts.find((c) =>
      c.id.endsWith('-latency-p99'),
    )!;
    // Charted from the valid results only: lab has no WebSocket point.
    const lab = latency.datasets.find((d) => d.label === 'lab')!;
    expect(lab.data[latency.labels.indexOf('ws')] ?? null).toBeNull();
  });

  it('charts only ok medians, with a gap (null) where a figure was not measured, never NaN', () => {
    const r = fixture();
    const ok = new Set(r.scenarios.filter((s) => s.status === 'ok').map((s) => s.latencyMs.p99.median));
    const groups = reportModel(r).sections.flatMap((s) => s.groups.flatMap((g) => (g.charts ? [g.charts] : [])));
    for (const c of groups.flatMap((g) => g.charts).filter((x) => x.id.endsWith('-latency-p99'))) {
      for (const v of c.datasets.flatMap((d) => d.data)) if (v !== null) expect(ok.has(v)).toBe(true);
    }
    // Not a report that validates (an ok result is always measured), but the charts must not break on one.
    const lab = okScenario(r, 'lab', 'ws');
    Object.assign(lab.latencyMs.p99, figure([NaN, NaN]));
    Object.assign(lab.wire.bytesOutPerMsg, figure([null, null]));
    const [small] = section(reportModel(r), 'Scenarios').groups;
    const latency = small!.charts!.charts.find((c) => c.id.endsWith('-latency-p99'))!;
    const p99 = latency.datasets.find((d) => d.label === 'lab')!;
    expect(p99.data[latency.labels.indexOf('ws')]).toBeNull();
    expect(p99.tips[latency.labels.indexOf('ws')]).toBe('');
    const bytes = small!.charts!.charts.find((c) => c.id.endsWith('-bytes'))!;
    expect(bytes.datasets.find((d) => d.label === 'lab')!.data[bytes.labels.indexOf('ws')]).toBeNull();
    expect(JSON.stringify(reportModel(r))).not.toMatch(/NaN/);
  });

  it('charts latency p50 and p99, bytes, CPU and memory per connection, one distinct colour per server (lab-redis too), and latency by network one line per transport', () => {
    const groups = reportModel(fixture()).sections.flatMap((s) =>
      s.groups.flatMap((g) => (g.charts ? [g.charts] : [])),
    );
    const ids = groups.flatMap((g) => g.charts.map((c) => c.id));
    for (const suffix of ['-latency-p50', '-latency-p99', '-bytes', '-cpu', '-heap', '-rss'])
      expect(ids.some((id) => id.endsWith(suffix))).toBe(true);
    const latency = groups.flatMap((g) => g.charts).filter((c) => c.id.includes('-latency-'));
    for (const c of latency) {
      expect(c.logarithmic).toBe(true);
      for (const d of c.datasets) expect(SERVER_NAMES).toContain(d.label);
    }
    // The fixture ran small over loopback and broadband: a line per transport across the two networks.
    const byNetwork = groups.flatMap((g) => g.charts).filter((c) => c.kind === 'line');
    expect(byNetwork.map((c) => c.title)).toEqual([
      'Latency p50 by network, one line per transport',
      'Latency p99 by network, one line per transport',
    ]);
    for (const c of byNetwork) {
      expect(c.labels.map((l) => l.split(' ')[0])).toEqual(['loopback', 'broadband']);
      for (const d of c.datasets) {
        expect(d.transport).toBe(d.label);
        expect(d.data).toHaveLength(2);
      }
    }
    expect(Object.keys(SERVER_COLORS).sort()).toEqual([...SERVER_NAMES].sort());
    expect(new Set(Object.values(SERVER_COLORS)).size).toBe(SERVER_NAMES.length);
    for (const d of groups.flatMap((g) => g.charts.flatMap((c) => c.datasets))) {
      if ((SERVER_NAMES as readonly string[]).includes(d.label))
        expect(d.color).toBe(SERVER_COLORS[d.label as keyof typeof SERVER_COLORS]);
    }
  });
});

describe('the Markdown and the HTML render the model', () => {
  const reports = {
    'the report fixture': fixture,
    'the sweep fixture': sweepFixture,
    'a measured but invalid scenario': () => {
      const r = fixture();
      measuredButInvalid(r);
      return r;
    },
  };

  it.each(Object.entries(reports))(
    '%s: same sections, groups, headers, cells and INVALID rows in both',
    (_name, make) => {
      const r = make();
      const model = modelTables(reportModel(r));
      expect(model.length).toBeGreaterThan(0);
      expect(markdownTables(renderMarkdown(r))).toEqual(model);
      expect(htmlTables(renderHtml(r, NO_SCRIPTS))).toEqual(model);
    },
  );

  /** Every committed report (latest, claims or field .json in any folder of results/) and the fixtures, by name. */
  const everyReport = (): [string, Report][] => {
    const results = new URL('../../results/', import.meta.url);
    const committed = readdirSync(results, { recursive: true, encoding: 'utf8' })
      .filter((f) => /(^|\/)(latest|claims|field)\.json$/.test(f))
      .map((f): [string, Report] => [`results/${f}`, JSON.parse(readFileSync(new URL(f, results), 'utf8')) as Report]);
    expect(committed.length).toBeGreaterThan(5);
    return [...committed, ['the report fixture', fixture()], ['the sweep fixture', sweepFixture()]];
  };

  it('no table wider than TABLE_COLUMNS_MAX, no empty section, group or table, in any committed report or fixture', () => {
    for (const [name, r] of everyReport()) {
      const m = reportModel(r);
      for (const s of m.sections) {
        expect(s.groups.length, `${name}: section "${s.title}" is empty`).toBeGreaterThan(0);
        for (const t of s.groups.flatMap((g) => [g.table, ...(g.more ?? [])])) {
          const where = `${name}: ${s.title} / ${t.title ?? '(untitled)'}`;
          expect(t.headers.length, `${where}: ${t.headers.join(', ')}`).toBeLessThanOrEqual(TABLE_COLUMNS_MAX);
          expect(t.rows.length, `${where} has no rows`).toBeGreaterThan(0);
          for (const row of t.rows) expect(row.cells, `${where}: ${row.id}`).toHaveLength(t.headers.length);
        }
        for (const g of s.groups.filter((x) => x.charts))
          expect(g.charts!.charts.length + g.charts!.excluded.length, `${name}: ${g.charts!.title}`).toBeGreaterThan(0);
      }
      // The HTML has no heading without content under it: every <section>'s h2 is followed by more than an intro.
      const html = visibleHtml(renderHtml(r, NO_SCRIPTS));
      for (const part of html.split('<section>').slice(1)) {
        expect(part, `${name}: an empty section`).toMatch(/<(table|canvas|dl|ul)\b/);
      }
    }
  });

  it('the HTML embeds the model’s chart groups, and a canvas for each chart', () => {
    const r = fixture();
    const html = renderHtml(r, NO_SCRIPTS);
    const embedded = JSON.parse(
      /<script type="application\/json" id="chart-specs">([^<]*)<\/script>/.exec(html)![1]!,
    ) as ChartGroup[];
    const model = reportModel(r).sections.flatMap((s) => s.groups.flatMap((g) => (g.charts ? [g.charts] : [])));
    expect(embedded).toEqual(model);
    for (const c of model.flatMap((g) => g.charts)) expect(html).toContain(`<canvas id="${c.id}">`);
  });
});

describe('renderMarkdown', () => {
  it('has a header with date, git, node, OS, CPU model × count, memory, the networks, the typed parameters, and the method', () => {
    const r = fixture();
    const md = renderMarkdown(r);
    const { networks, ...params } = r.params;
    for (const s of [
      r.startedAt,
      r.git,
      r.env.node,
      r.env.os,
      `${r.env.cpuModel} × ${r.env.cpus}`,
      JSON.stringify(params),
      '## Method',
    ])
      expect(md).toContain(s);
    // The networks in words, every parameter (JSON would show an unlimited rate as null).
    expect(md).toContain(
      '- **Networks:** loopback: direct, no relay; broadband: RTT 28 ms, jitter 0 ms, down 5 Mbps, up 1 Mbps, loss 0 %',
    );
    expect(networks).toHaveLength(2);
    expect(md).not.toMatch(/\bnull\b|NaN|undefined|Infinity/);
  });

  it('shows each invalid scenario as INVALID with its reason, every figure a dash, INVALID in every table of it', () => {
    const r = fixture();
    const md = renderMarkdown(r);
    const cells = (row: string) =>
      row
        .replace(/<a id="[^"]+"><\/a> \|$/, ' |')
        .slice(2, -2)
        .split(' | ');
    for (const s of r.scenarios.filter((x) => x.status === 'invalid')) {
      expect(md).toContain(`> - scenario ${s.name} ${s.server}/${s.transport}: **INVALID: ${s.reason}**`);
      const lines = md.split('\n');
      const at = lines.findIndex(
        (l) =>
          l.startsWith(`| ${s.server} | ${s.transport} | **INVALID`) && l.includes(`${s.delivered} / ${s.expected}`),
      );
      // Its row in the latency table, then in its group's wire, CPU and run's-health tables.
      const [row, ...more] = lines.slice(at).filter((l) => l.startsWith(`| ${s.server} | ${s.transport} | `));
      expect(cells(row!).slice(4)).toEqual(Array(3).fill(DASH));
      for (const [i, width] of [5, 5, 2].entries()) {
        const other = more.find((l) => cells(l).length === width + 2 && l.includes('**INVALID: see Status**'));
        expect(other, `table ${i + 2} of ${s.name}`).toBeDefined();
        expect(cells(other!).slice(2)).toEqual(['**INVALID: see Status**', ...Array(width - 1).fill(DASH)]);
      }
    }
  });

  it('prints valid figures as median (min–max), bytes to one decimal and ratios as ×1.23', () => {
    const r = fixture();
    const lab = okScenario(r, 'lab', 'sse');
    const lines = renderMarkdown(r).split('\n');
    const row = lines.find((l) => l.startsWith('| lab | sse | ok |'))!;
    // The scenario's group: its latency table, then its wire and CPU tables (the same rows, by concern).
    const group = lines.slice(lines.indexOf(row)).filter((l) => l.startsWith('| lab | sse |'));
    const p50 = lab.latencyMs.p50;
    expect(row).toContain(`${fmtMs(measured(p50.median))} (${fmtMs(measured(p50.min))}–${fmtMs(measured(p50.max))})`);
    expect(group[1]).toContain(measured(lab.wire.bytesOutPerMsg.median).toFixed(1));
    expect(group[2]).toContain(`×${measured(lab.vsBare?.cpuUsPerMsg).toFixed(2)}`);
  });

  it('has the memory, autocannon, micro and sweep tables', () => {
    const md = renderMarkdown(fixture());
    for (const s of [
      '## Memory per connection',
      '## HTTP endpoints (autocannon)',
      '`POST /publish`',
      '## Micro-benchmarks (tinybench)',
      fixture().micro[0]!.name,
    ])
      expect(md).toContain(s);
    const sweep = sweepFixture();
    const step = sweep.sweep![0]!.steps[0]!;
    expect(renderMarkdown(sweep)).toContain(
      `- ${sweep.sweep![0]!.server}/short-poll at 100 clients: INVALID: ${step.reason}`,
    );
  });
});

describe('renderHtml', () => {
  it('is one self-contained file: no external src or href, the report JSON, Chart.js and the chart code inlined', async () => {
    const r = fixture();
    const scripts = await readHtmlScripts();
    const html = renderHtml(r, scripts);
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/url\(\s*["']?(?:https?:)?\/\//i);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain(scripts.chartJs);
    expect(html).toContain('export function reportChartConfig');
    const embedded = /<script type="application\/json" id="bench-report">([^<]*)<\/script>/.exec(html);
    expect(JSON.parse(embedded![1]!)).toEqual(r);
  });

  it('draws with one module script that Node can parse (web/theme.js and the drawing loop)', async () => {
    const html = renderHtml(fixture(), await readHtmlScripts());
    const module = /<script type="module">([\s\S]*?)<\/script>/.exec(html)![1]!;
    const file = join(await tempDir(), 'draw.mjs');
    await writeFile(file, module);
    await expect(promisify(execFile)(process.execPath, ['--check', file])).resolves.toBeDefined();
  });

  it('marks invalid rows and shows nothing unmeasured as "null" or "NaN"', () => {
    const r = fixture();
    const html = renderHtml(r, NO_SCRIPTS);
    // Four invalid scenario rows, in the answer and in each of the detail tables (latency, wire, CPU, the run's health).
    expect(html.match(/<tr class="invalid"[ >]/g)).toHaveLength(4 * 5);
    const visible = visibleHtml(html);
    expect(visible).toContain(`<strong>INVALID: ${invalidScenario(r).reason!.replaceAll('"', '&quot;')}</strong>`);
    expect(visible).toContain('Not charted (invalid): <strong>lab/poll</strong>');
    expect(visible).not.toMatch(/\bnull\b|NaN|undefined|Infinity/);
  });

  it('cannot be broken out of its script elements by a reason or by the inlined sources', () => {
    const r = fixture();
    invalidScenario(r).reason = '</script><script>alert(1)</script>';
    const html = renderHtml(r, { chartJs: 'var s = "</script><b>x</b>";', theme: '// </script>' });
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('var s = "<\\/script><b>x</b>";');
    // Exactly the four script elements close: report JSON, chart specs, Chart.js, the chart drawing.
    expect(html.match(/<\/script>/g)).toHaveLength(4);
  });
});

describe('writeReports', () => {
  it('writes the timestamped JSON, latest.json, latest.md and latest.html', async () => {
    const dir = await tempDir();
    const r = fixture();
    const paths = await writeReports(r, dir);
    const name = reportFileName(r);
    expect(paths).toEqual({
      json: join(dir, name),
      latestJson: join(dir, 'latest.json'),
      md: join(dir, 'latest.md'),
      html: join(dir, 'latest.html'),
    });
    expect((await readdir(dir)).sort()).toEqual([name, 'latest.html', 'latest.json', 'latest.md'].sort());
    expect(await readFile(paths.json, 'utf8')).toBe(TEXT.report);
    expect(JSON.parse(await readFile(paths.latestJson, 'utf8'))).toEqual(r);
    expect(await readFile(paths.md, 'utf8')).toBe(renderMarkdown(r));
    expect(await readFile(paths.html, 'utf8')).toBe(renderHtml(r, await readHtmlScripts()));
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
    expect(reportFileName({ startedAt: '2026-01-02T03:04:05.006Z', git: 'abcdef0123' })).toBe(
      '2026-01-02T03-04-05.006Z-abcdef0.json',
    );
  });
});

describe('GET /reports/<name>/model', () => {
  it('serves the model the renderers use; 404 for a name outside the rules, a missing file or a file that is not a report', async () => {
    const dir = await tempDir();
    await copyFile(REPORT_JSON, join(dir, 'run.json'));
    await writeFile(join(dir, 'notes.json'), '{"hello":1}');
    await writeFile(join(dir, 'broken.json'), '{');
    const lab = await startLab({ resultsDir: dir });
    const res = await fetch(`${lab.url}/reports/run.json/model`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(reportModel(fixture()))));
    for (const bad of ['nope.json', 'notes.json', 'broken.json', '..%2Fpackage.json']) {
      const r = await fetch(`${lab.url}/reports/${bad}/model`);
      expect(r.status, bad).toBe(404);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('LAB_ERR_NOT_FOUND');
    }
  });
});
