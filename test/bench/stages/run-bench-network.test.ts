/**
 * The bench over an emulated network: real servers, real clients, the real relay in its own process.
 * Timing is asserted only as lower bounds (the relay never releases early, and the publisher never
 * sends before the schedule), so a loaded machine cannot fail them; a relay that does not delay, and a
 * relay that falls behind its schedule, must make a run INVALID, never fast.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { customProfile, PROFILES } from '../../../server/network/profiles.js';
import { HELP, parseBenchArgs } from '../../../bench/cli/options.js';
import { Progress } from '../../../bench/plan/progress.js';
import {
  belowOneWayProblem,
  relayLatenessLimitMs,
  relayLatenessProblem,
} from '../../../bench/processes/relay-process.js';
import { renderHtml } from '../../../report/html.js';
import { renderMarkdown } from '../../../report/markdown.js';
import { fmtMs, reportModel } from '../../../report/model.js';
import { validateReport } from '../../../report/schema.js';
import type { ScenarioResult } from '../../../report/types.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { ServerPool } from '../../../bench/processes/server-process.js';
import { SUITES } from '../../../bench/plan/suite.js';
import { htmlTables, markdownTables, modelTables } from '../../helpers/report-views.js';
import { type BenchOptions, targetsFor } from '../../../bench/plan/plan.js';
import { estimateSec } from '../../../bench/stages/index.js';

const quiet = () => new Progress(process.stderr, true);
/** One lab process for both runs (each run has a relay of its own). */
const pool = new ServerPool();
afterAll(() => pool.stop());
const tiny = (...more: string[]): BenchOptions => ({
  ...parseBenchArgs([
    // 25 messages to 5 clients: enough for a p50 and a per-message price, little for the relay to carry.
    ...[
      '--clients',
      '5',
      '--rate',
      '50',
      '--duration',
      '0.5',
      '--repeats',
      '1',
      '--servers',
      'lab',
      '--no-memory',
      '--no-autocannon',
      '--no-micro',
    ],
    // A correctness test, run beside other suites: a busy machine may delay the publisher; loss may not.
    ...['--max-publisher-lag-ms', '2000'],
    ...more,
  ]),
});

/** Ok, or INVALID for the one reason a busy machine may honestly cause here: the relay fell behind its schedule. */
const okUnlessRelayLate = (s: ScenarioResult) => {
  if (s.status !== 'ok')
    expect(s.reason, `${s.server}/${s.transport}`).toMatch(/^repeat 1: the relay fell behind its schedule[^;|]*$/);
};

describe('npm run bench -- --network (real relay)', () => {
  it('a custom 60 ms RTT network, lab ws and poll: the report records it, WS p50 ≥ the one-way delay, long polling priced per message, the summary has the rows', async () => {
    const report = await runBench(tiny('--transports', 'ws,poll', '--rtt-ms', '60'), quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    const custom = customProfile({ rttMs: 60 });
    expect(report.params.networks).toEqual([custom]);
    expect(report.scenarios.map((s) => `${s.server}/${s.transport}`).sort()).toEqual(['lab/poll', 'lab/ws']);
    const by = (t: string) => report.scenarios.find((s) => s.transport === t)!;
    for (const s of report.scenarios) {
      expect(s.network).toEqual(custom);
      okUnlessRelayLate(s);
      expect(s.delivered).toBe(s.published * s.clients);
      expect(s.relayLatenessP99Ms?.median).toBeGreaterThanOrEqual(0);
    }
    // Every delivery crossed the relay after it was published, never before its schedule.
    expect(by('ws').latencyMs.p50.median).toBeGreaterThanOrEqual(30);
    expect(by('poll').latencyMs.p50.median).toBeGreaterThanOrEqual(30);
    expect(by('poll').wire.requestsPerMsg.median).toBeGreaterThan(0);
    expect(by('poll').wire.bytesOutPerMsg.median).toBeGreaterThan(100);

    const m = reportModel(report);
    // The answer first, then the transports by network.
    expect(m.sections.map((s) => s.title).slice(0, 2)).toEqual(['The answer', 'Transport by network']);
    const [group] = m.sections[1]!.groups;
    expect(group!.table.rows.map((r) => r.id)).toEqual([
      'scenario custom over custom lab/poll',
      'scenario custom over custom lab/ws',
    ]);
    const col = (h: string) => group!.table.headers.indexOf(h);
    const ws = group!.table.rows[1]!;
    expect(ws.cells[col('Network')]?.text).toBe('custom');
    if (!ws.invalid)
      expect(ws.cells[col('Beyond one-way ms (p50 − RTT/2)')]?.text).toBe(fmtMs(by('ws').latencyMs.p50.median! - 30));
    // Each row on its own: one may be INVALID (the relay fell behind) while the other is not.
    const poll = group!.table.rows[0]!;
    if (!poll.invalid) expect(poll.cells[col('Requests/msg')]?.text).not.toBe('—');
    expect(group!.table.notes).toEqual([expect.stringMatching(/^custom: RTT 60 ms.*Source: command line\.$/)]);
    // The same tables in the Markdown and the HTML (and the dashboard: the same model).
    expect(markdownTables(renderMarkdown(report))).toEqual(modelTables(m));
    expect(htmlTables(renderHtml(report, { chartJs: '', theme: '' }))).toEqual(modelTables(m));
  }, 60_000);

  it('a relay that does not delay (test hook) makes every run over it INVALID: a broken relay never produces a fast number', async () => {
    const opts = tiny('--transports', 'ws', '--rtt-ms', '400');
    opts.brokenRelay = true;
    const report = await runBench(opts, quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    const [s] = report.scenarios;
    expect(s?.status).toBe('invalid');
    expect(s?.reason).toMatch(
      /latency p50 .* ms is below the one-way delay of custom \(200 ms\): the relay was bypassed or did not delay/,
    );
    expect(reportModel(report).invalid.map((i) => i.what)).toEqual(['scenario custom over custom lab/ws']);
  }, 60_000);
});

describe('the relay rules (pure)', () => {
  it('lateness p99 above max(5 ms, 10 % of the one-way delay) is INVALID; a direct network or nothing relayed never is', () => {
    const rtt60 = customProfile({ rttMs: 60 });
    const fourG = PROFILES['4g'];
    const late = (p99Ms: number | null) => ({ count: p99Ms === null ? 0 : 100, p50Ms: p99Ms, p99Ms, maxMs: p99Ms });
    expect(relayLatenessLimitMs(rtt60)).toBe(5);
    expect(relayLatenessLimitMs(fourG)).toBeCloseTo(8.5, 9);
    expect(relayLatenessProblem(rtt60, late(5))).toBeUndefined();
    expect(relayLatenessProblem(rtt60, late(5.1))).toMatch(/lateness p99 5\.1 ms > 5\.0 ms/);
    expect(relayLatenessProblem(fourG, late(8.4))).toBeUndefined();
    expect(relayLatenessProblem(fourG, late(8.6))).toMatch(/the relay fell behind its schedule/);
    expect(relayLatenessProblem(fourG, late(null))).toBeUndefined();
    expect(relayLatenessProblem(fourG, undefined)).toBeUndefined();
    expect(relayLatenessProblem(PROFILES.loopback, late(50))).toBeUndefined();
  });

  it('latency p50 below the one-way delay (RTT/2) is INVALID over a relay', () => {
    const rtt60 = customProfile({ rttMs: 60 });
    expect(belowOneWayProblem(rtt60, 29.9)).toMatch(/p50 29\.90 ms is below the one-way delay of custom \(30 ms\)/);
    expect(belowOneWayProblem(rtt60, 30)).toBeUndefined();
    expect(belowOneWayProblem(rtt60, null)).toBeUndefined();
    expect(belowOneWayProblem(PROFILES.loopback, 0.1)).toBeUndefined();
  });
});

describe('network flags', () => {
  const networksOf = (argv: string[]) => parseBenchArgs(argv).networks.map((n) => n.name);
  const pairs = (argv: string[]) => parseBenchArgs(argv).scenarios.map((s) => `${s.name}@${s.network}`);

  it('the default suite: every scenario on loopback, and the 100-client one again over 4g on the lab, in its time budget', () => {
    const opts = parseBenchArgs([]);
    expect(opts.networks).toEqual([PROFILES.loopback, PROFILES['4g']]);
    expect(pairs([])).toEqual(['100c-100r@loopback', '1000c-100r@loopback', '100c-2000r@loopback', '100c-100r@4g']);
    const g4 = opts.scenarios[3]!;
    expect(targetsFor(g4, opts).map((t) => `${t.server}/${t.transport}`)).toEqual([
      'lab/poll',
      'lab/short-poll',
      'lab/sse',
      'lab/ws',
    ]);
    expect(SUITES.default.scenarios.some((s) => s.network === '4g' && s.clients === 100)).toBe(true);
    // Medians over three: what the README's targets table quotes.
    expect(opts.repeats).toBe(3);
    expect(estimateSec(opts)).toBeLessThanOrEqual(SUITES.default.budgetSec);
  });

  it('--network replaces the suite’s networks: each scenario once per network, in the order asked; all = every profile', () => {
    expect(networksOf(['--network', '4g'])).toEqual(['4g']);
    expect(pairs(['--network', '4g'])).toEqual(['100c-100r@4g', '1000c-100r@4g', '100c-2000r@4g']);
    expect(pairs(['--quick', '--network', 'loopback,broadband,4g'])).toEqual([
      '100c-100r@loopback',
      '100c-100r@broadband',
      '100c-100r@4g',
    ]);
    expect(networksOf(['--network', 'all'])).toEqual(Object.keys(PROFILES));
    expect(pairs(['--clients', '10', '--network', 'lan'])).toEqual(['custom@lan']);
  });

  it('--rtt-ms --jitter-ms --down-kbps --up-kbps --loss make one profile named custom, after any --network', () => {
    const opts = parseBenchArgs([
      '--network',
      '3g',
      '--rtt-ms',
      '80',
      '--jitter-ms',
      '5',
      '--down-kbps',
      '2000',
      '--up-kbps',
      'unlimited',
      '--loss',
      '0.01',
    ]);
    expect(opts.networks.map((n) => n.name)).toEqual(['3g', 'custom']);
    expect(opts.networks[1]).toMatchObject({
      name: 'custom',
      direct: false,
      rttMs: 80,
      jitterMs: 5,
      downKbps: 2000,
      upKbps: null,
      loss: 0.01,
    });
    expect(networksOf(['--loss', '0.02'])).toEqual(['custom']);
  });

  it('--sweep takes --network too', () => {
    const opts = parseBenchArgs(['--sweep', '--network', 'loopback,4g']);
    expect(opts.networks.map((n) => n.name)).toEqual(['loopback', '4g']);
    expect(parseBenchArgs(['--sweep']).networks).toEqual([PROFILES.loopback]);
    expect(estimateSec(opts)).toBeGreaterThan(estimateSec(parseBenchArgs(['--sweep'])));
  });

  it('the CI gate’s suite refuses a network: its baseline is loopback (test/bench/cli/check.test.ts checks the gate itself)', () => {
    expect(() => parseBenchArgs(['--network', '4g'], 'check')).toThrow(/--network/);
  });

  it('rejects bad values with a message naming the flag, and --help lists every network flag', () => {
    expect(() => parseBenchArgs(['--network', '5g'])).toThrow(/--network.*unknown network "5g"/);
    expect(() => parseBenchArgs(['--network', '4g,'])).toThrow(/--network/);
    expect(() => parseBenchArgs(['--rtt-ms', 'fast'])).toThrow(/--rtt-ms/);
    expect(() => parseBenchArgs(['--rtt-ms', '-1'])).toThrow(/--rtt-ms/);
    expect(() => parseBenchArgs(['--jitter-ms', '1e9'])).toThrow(/--jitter-ms/);
    expect(() => parseBenchArgs(['--down-kbps', '0'])).toThrow(/--down-kbps/);
    expect(() => parseBenchArgs(['--up-kbps', 'lots'])).toThrow(/--up-kbps/);
    expect(() => parseBenchArgs(['--loss', '2'])).toThrow(/--loss/);
    for (const flag of [
      '--network',
      '--rtt-ms',
      '--jitter-ms',
      '--down-kbps',
      '--up-kbps',
      '--loss',
      '--retransmit-ms',
    ])
      expect(HELP).toContain(flag);
  });
});
