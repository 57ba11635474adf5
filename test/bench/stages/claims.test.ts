/**
 * `npm run bench -- --claims`: the verdicts follow the figures (doctored copies of the committed
 * claims run flip them), a missing or invalid scenario is "not measured", the tutorials' shift()
 * snippet really loses messages against several clients (a real run), and the Reports view gets the
 * claims as a section of the report model.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluateClaims } from '../../../bench/stages/claims.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { Progress } from '../../../bench/plan/progress.js';
import type { ReportModel } from '../../../report/model.js';
import { validateReport } from '../../../report/schema.js';
import type { Claim, Report, ScenarioResult } from '../../../report/types.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { CLAIM_SCENARIOS } from '../../../bench/plan/suite.js';
import { startLab } from '../../helpers/lab.js';

const RESULTS = new URL('../../../results/', import.meta.url);
const committed = (): Report => JSON.parse(readFileSync(new URL('claims.json', RESULTS), 'utf8')) as Report;
const verdictOf = (claims: Claim[], start: string): Claim['verdict'] => {
  const c = claims.find((k) => k.claim.startsWith(start));
  if (!c) throw new Error(`no claim starting ${start}`);
  return c.verdict;
};
const scenario = (r: Report, name: string, server: string, transport: string): ScenarioResult =>
  r.scenarios.find(
    (s) => s.name === name && s.server === server && s.transport === transport && s.network.name === 'loopback',
  )!;

describe('the claims, re-measured', () => {
  it('results/claims.json validates and its verdicts are what the figures in it give', () => {
    const r = committed();
    expect(validateReport(r)).toEqual({ ok: true });
    expect(r.claims).toEqual(evaluateClaims(r));
    expect(r.claims!.length).toBeGreaterThanOrEqual(10);
    expect(r.claims!.every((c) => c.verdict !== 'not measured')).toBe(true);
    expect(verdictOf(r.claims!, '“1000 users polling')).toBe('holds');
    expect(verdictOf(r.claims!, 'The polling snippet')).toBe('wrong');
  });

  it('turns a verdict when the figure behind it changes', () => {
    const r = structuredClone(committed());
    const polls = scenario(r, CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
    // Twice the requests: 1,000 requests/s is not 500.
    for (const k of ['median', 'min', 'max'] as const) polls.wire.requestsPerSec![k]! *= 2;
    polls.polls = { answers: 100, empty: 98 };
    const shift = scenario(r, CLAIM_SCENARIOS.shift, 'shift', 'short-poll');
    shift.delivered = shift.expected;
    const claims = evaluateClaims(r);
    expect(verdictOf(claims, '“1000 users polling')).toBe('wrong');
    expect(verdictOf(claims, '“Empty responses')).toBe('holds');
    expect(verdictOf(claims, 'The polling snippet')).toBe('holds');
  });

  it('says "not measured" for a claim whose scenario is missing or INVALID, never a verdict', () => {
    const r = structuredClone(committed());
    r.scenarios = r.scenarios.filter((s) => s.name !== CLAIM_SCENARIOS.ws1000);
    const ws = scenario(r, CLAIM_SCENARIOS.ws100, 'lab', 'ws');
    ws.status = 'invalid';
    ws.reason = 'doctored';
    const claims = evaluateClaims(r);
    expect(verdictOf(claims, 'WebSocket: “Requests per second')).toBe('not measured');
    expect(claims.find((c) => c.claim.startsWith('WebSocket: “Delay'))!.measured).toMatch(
      /INVALID: doctored|not in the report/,
    );
    expect(verdictOf(claims, '“1000 users polling')).toBe('holds');
  });

  it('measures the shift() snippet for real: each message reaches one of the clients, the lab’s poll reaches all', async () => {
    const opts = parseBenchArgs(['--claims', '--repeats', '1', '--max-publisher-lag-ms', '2000']);
    opts.scenarios = [
      {
        name: CLAIM_SCENARIOS.shift,
        clients: 3,
        ratePerSec: 10,
        payloadBytes: 100,
        // Five messages, polled every 100 ms: the snippet's loss shows on the first; a lost message is
        // called lost after the drain's quiet time (1 s + two poll intervals), twice per run (warm-up, window).
        durationSec: 0.5,
        shortPollIntervalMs: 100,
        servers: ['lab', 'shift'],
        transports: ['short-poll'],
      },
    ];
    const report = await runBench(opts, new Progress(process.stderr, true));
    expect(validateReport(report)).toEqual({ ok: true });
    const shift = scenario(report, CLAIM_SCENARIOS.shift, 'shift', 'short-poll');
    const lab = scenario(report, CLAIM_SCENARIOS.shift, 'lab', 'short-poll');
    expect(lab.status, lab.reason).toBe('ok');
    expect(lab.delivered).toBe(lab.expected);
    expect(shift.status).toBe('invalid');
    expect(shift.reason).toMatch(/messages lost/);
    // Every message went to exactly one client: deliveries ≈ published, a third of what 3 clients need.
    expect(shift.delivered).toBeLessThanOrEqual(shift.published);
    expect(shift.delivered).toBeGreaterThan(shift.published / 2);
  }, 60_000);

  it('is a section of the report model the Reports view renders', async () => {
    const lab = await startLab({ resultsDir: new URL('.', RESULTS).pathname });
    const res = await fetch(`${lab.url}/reports/claims.json/model`);
    expect(res.status).toBe(200);
    const model = (await res.json()) as ReportModel;
    const section = model.sections[0]!;
    expect(section.title).toBe('Claims, re-measured');
    const table = section.groups[0]!.table;
    expect(table.headers).toEqual(['Claim', 'Measured', 'How', 'Verdict']);
    expect(table.rows.map((row) => row.cells[3]!.text)).toEqual(committed().claims!.map((c) => c.verdict));
    const list = (await (await fetch(`${lab.url}/reports`)).json()) as { reports: { name: string }[] };
    expect(list.reports.map((x) => x.name)).toContain('claims.json');
  });
});
