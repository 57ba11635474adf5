/**
 * The CI gate must be able to fail. The checker is fed the committed baseline itself (passes), and
 * doctored copies of it: 10% more bytes per message, a lost message, heavier heap, a lab that counts
 * 25% more instructions per message, a positive control the gate could not see. That a really
 * doctored lab is caught is proven by every gate run (its positive control, bench/servers/doctor.ts) and by
 * the runs in docs/testing.md.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../../server/network/profiles.js';
import {
  checkOptions,
  compare,
  DEFAULT_BASELINE,
  parseDoctor,
  renderSpread,
  renderTable,
  spread,
} from '../../../bench/cli/check.js';
import type { Figure, Report } from '../../../report/types.js';
import { validateReport } from '../../../report/schema.js';

const baseline = JSON.parse(readFileSync(DEFAULT_BASELINE, 'utf8')) as Report;
const copy = (): Report => structuredClone(baseline);
const scale = (f: Figure, k: number): Figure => ({
  median: f.median === null ? null : f.median * k,
  min: f.min === null ? null : f.min * k,
  max: f.max === null ? null : f.max * k,
  values: f.values.map((v) => (v === null ? null : v * k)),
});
const failed = (r: Report) => compare(baseline, r).filter((row) => row.verdict === 'FAIL');

describe('bench:check', () => {
  it('the committed baseline is a valid report of the check suite: wire on the lab, load on lab and bare, instructions on lab, bare, the floor and the doctored lab', () => {
    expect(validateReport(baseline)).toEqual({ ok: true });
    const names = new Set(baseline.scenarios.map((s) => `${s.name} ${s.server}/${s.transport}`));
    const counted = new Set(
      baseline.instructions?.map((i) => `${i.doctored ? 'doctored ' : ''}${i.server}/${i.transport}`),
    );
    for (const t of ['poll', 'short-poll', 'sse', 'ws']) {
      expect(names.has(`wire lab/${t}`)).toBe(true);
      for (const server of ['lab', 'bare']) expect(names.has(`load ${server}/${t}`)).toBe(true);
      for (const server of ['lab', 'bare', 'doctored lab']) expect(counted.has(`${server}/${t}`)).toBe(true);
    }
    // The floor server for the two transports it serves, so that lab ÷ floor is gated.
    for (const t of ['sse', 'ws']) expect(counted.has(`floor/${t}`)).toBe(true);
    expect(baseline.scenarios.every((s) => s.status === 'ok')).toBe(true);
    expect(baseline.instructions?.every((i) => i.status === 'ok' && i.instructionsPerMsg.values.length === 5)).toBe(
      true,
    );
  });

  it('stays on loopback: the baseline was measured there (its profile added as a migration), and the gate runs there', () => {
    expect(baseline.params.networks).toEqual([PROFILES.loopback]);
    expect(baseline.scenarios.every((s) => s.network.name === 'loopback' && s.relayLatenessP99Ms === undefined)).toBe(
      true,
    );
    const gate = checkOptions();
    expect(gate.networks).toEqual([PROFILES.loopback]);
    expect(gate.lab.doctor).toBeUndefined();
    expect(checkOptions(['ws']).lab.doctor).toEqual(['ws']);
    expect(() => parseDoctor('ws,carrier-pigeon')).toThrow(/--doctor: unknown transport "carrier-pigeon"/);
    expect(gate.scenarios.map((s) => s.network)).toEqual(['loopback', 'loopback']);
  });

  it('passes the baseline against itself', () => {
    const rows = compare(baseline, copy());
    expect(rows.filter((r) => r.verdict === 'FAIL')).toEqual([]);
    expect(rows.filter((r) => r.verdict === 'ok').length).toBeGreaterThan(20);
  });

  it('fails when a transport sends 10% more bytes per message, offending rows first', () => {
    const r = copy();
    for (const s of r.scenarios)
      if (s.server === 'lab' && s.name === 'wire' && s.transport === 'sse')
        s.wire.bytesOutPerMsg = scale(s.wire.bytesOutPerMsg, 1.1);
    const rows = compare(baseline, r);
    expect(rows[0]).toMatchObject({ metric: 'wire lab/sse bytes out/msg', verdict: 'FAIL' });
    expect(rows[0]?.change).toBeCloseTo(0.1, 6);
    expect(failed(r)).toHaveLength(1);
    expect(renderTable(rows).split('\n')[2]).toMatch(/wire lab\/sse bytes out\/msg .*\+10\.00% .*FAIL/);
  });

  it('fails when short polling sends 10% more bytes per message (the wire scenario runs in lockstep: no timer band)', () => {
    const r = copy();
    const sp = r.scenarios.find((s) => s.server === 'lab' && s.name === 'wire' && s.transport === 'short-poll')!;
    expect(sp.pace).toBe('lockstep');
    sp.wire.bytesOutPerMsg = scale(sp.wire.bytesOutPerMsg, 1.1);
    expect(failed(r).map((row) => row.metric)).toEqual(['wire lab/short-poll bytes out/msg']);
    const fewer = copy();
    const f = fewer.scenarios.find((s) => s.server === 'lab' && s.name === 'wire' && s.transport === 'short-poll')!;
    f.wire.requestsPerMsg = scale(f.wire.requestsPerMsg, 0.97);
    expect(failed(fewer).map((row) => row.metric)).toEqual(['wire lab/short-poll requests/msg']);
  });

  it('--spread reports the largest move per gated row over several runs, and counts failures', () => {
    const a = copy();
    const b = copy();
    for (const s of b.scenarios)
      if (s.server === 'lab' && s.name === 'wire' && s.transport === 'ws')
        s.wire.bytesOutPerMsg = scale(s.wire.bytesOutPerMsg, 1.01);
    const c = copy();
    for (const s of c.scenarios)
      if (s.server === 'lab' && s.name === 'wire' && s.transport === 'ws')
        s.wire.bytesOutPerMsg = scale(s.wire.bytesOutPerMsg, 0.95);
    const rows = spread(baseline, [a, b, c]);
    expect(rows[0]).toMatchObject({ metric: 'wire lab/ws bytes out/msg', failed: 1, runs: 3 });
    expect(rows[0]?.largestMove).toBeCloseTo(-0.05, 6);
    expect(rows.slice(1).every((r) => r.failed === 0 && r.runs === 3)).toBe(true);
    expect(renderSpread(rows).split('\n')[2]).toMatch(/wire lab\/ws bytes out\/msg .*-5\.00% .*1\/3/);
  });

  it('fails on 2.5% fewer requests per message too (a deterministic figure moved: the baseline is stale)', () => {
    const r = copy();
    for (const s of r.scenarios)
      if (s.server === 'lab' && s.name === 'wire' && s.transport === 'poll')
        s.wire.requestsPerMsg = scale(s.wire.requestsPerMsg, 0.975);
    expect(failed(r).map((row) => row.metric)).toEqual(['wire lab/poll requests/msg']);
  });

  it('tolerates a keep-alive pong in the window, but not a client that sends bytes per message on a stream', () => {
    const pong = copy();
    const ws = (r: Report) => r.scenarios.find((x) => x.server === 'lab' && x.name === 'wire' && x.transport === 'ws')!;
    ws(pong).wire.bytesInPerMsg = { median: 0.2, min: 0.2, max: 0.2, values: [0.2] };
    expect(failed(pong)).toEqual([]);
    const chatty = copy();
    ws(chatty).wire.bytesInPerMsg = { median: 6, min: 6, max: 6, values: [6] };
    expect(failed(chatty).map((row) => row.metric)).toEqual(['wire lab/ws bytes in/msg']);
  });

  it('fails when a message was lost', () => {
    const r = copy();
    const s = r.scenarios.find((x) => x.server === 'lab' && x.name === 'load' && x.transport === 'ws')!;
    s.lost = 1;
    s.status = 'invalid';
    s.reason = 'repeat 2: 1 messages lost';
    expect(failed(r).map((row) => row.metric)).toContain('load lab/ws delivery (lost+dup+reordered)');
  });

  it('fails when idle heap per connection grows 20%, or the lab counts 25% more instructions per message; not on CPU time alone', () => {
    const heavy = copy();
    for (const m of heavy.memory)
      if (m.server === 'lab' && m.transport === 'ws') m.heapBytesPerConn = scale(m.heapBytesPerConn, 1.2);
    expect(failed(heavy).map((row) => row.metric)).toEqual(['memory lab/ws idle heap bytes/conn']);

    const labCount = (r: Report, t: string) =>
      r.instructions!.find((i) => i.server === 'lab' && !i.doctored && i.transport === t)!;
    const dearPoll = copy();
    labCount(dearPoll, 'poll').instructionsPerMsg = scale(labCount(dearPoll, 'poll').instructionsPerMsg, 1.25);
    // Against the baseline, against bare and against the floor (which serves polls too).
    expect(failed(dearPoll).map((row) => row.metric)).toEqual([
      'instructions lab/poll per msg',
      'instructions poll lab÷bare',
      'instructions poll lab÷floor',
    ]);

    // WebSocket 25 % dearer: against the baseline, against bare and against the floor.
    const dearWs = copy();
    labCount(dearWs, 'ws').instructionsPerMsg = scale(labCount(dearWs, 'ws').instructionsPerMsg, 1.25);
    expect(failed(dearWs).map((row) => row.metric)).toEqual([
      'instructions lab/ws per msg',
      'instructions ws lab÷bare',
      'instructions ws lab÷floor',
    ]);

    // 5 % more: inside the band (unchanged runs moved within 4 %).
    const drift = copy();
    labCount(drift, 'sse').instructionsPerMsg = scale(labCount(drift, 'sse').instructionsPerMsg, 1.05);
    expect(failed(drift)).toEqual([]);

    // CPU time is shown, not gated: it moved ±50 % between runs of the same tree.
    const slow = copy();
    for (const s of slow.scenarios)
      if (s.server === 'lab' && s.name === 'load')
        s.serverMetrics.cpuUsPerMsg = scale(s.serverMetrics.cpuUsPerMsg, 1.4);
    expect(failed(slow)).toEqual([]);

    // Every count 30 % higher (another Node or valgrind): the ratios hold; the lab's own rows ask for a new baseline.
    const otherNode = copy();
    for (const i of otherNode.instructions!) i.instructionsPerMsg = scale(i.instructionsPerMsg, 1.3);
    expect(failed(otherNode).map((row) => row.metric)).toEqual(
      ['poll', 'short-poll', 'sse', 'ws'].map((t) => `instructions lab/${t} per msg`),
    );
  });

  it('fails when its positive control is not seen: the doctored lab of the run inside the band, or not measured', () => {
    const doctoredOf = (r: Report, t: string) => r.instructions!.find((i) => i.doctored && i.transport === t)!;
    const labOf = (r: Report, t: string) =>
      r.instructions!.find((i) => i.server === 'lab' && !i.doctored && i.transport === t)!;
    const weak = copy();
    doctoredOf(weak, 'sse').instructionsPerMsg = scale(labOf(weak, 'sse').instructionsPerMsg, 1.05);
    const rows = failed(weak);
    expect(rows.map((row) => row.metric)).toEqual(['instructions doctored lab/sse per msg (positive control)']);
    expect(rows[0]?.note).toMatch(/the gate cannot see a lab doctored this much/);

    const missing = copy();
    const d = doctoredOf(missing, 'ws');
    d.status = 'invalid';
    d.reason = 'window 1: 119 deliveries, expected 120';
    expect(failed(missing).map((row) => row.metric)).toEqual([
      'instructions doctored lab/ws per msg (positive control)',
    ]);

    // In the baseline, each doctored transport counts 20–40 % more than the lab: what the control is for.
    for (const t of ['poll', 'short-poll', 'sse', 'ws']) {
      const k = doctoredOf(baseline, t).instructionsPerMsg.median! / labOf(baseline, t).instructionsPerMsg.median!;
      expect(k).toBeGreaterThan(1.2);
      expect(k).toBeLessThan(1.4);
    }
  });

  it('the CLI exits 1 on a doctored report and 0 on the baseline (npm run bench:check -- --report)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-check-'));
    const doctored = copy();
    for (const s of doctored.scenarios)
      if (s.server === 'lab' && s.name === 'wire') s.wire.bytesOutPerMsg = scale(s.wire.bytesOutPerMsg, 1.1);
    await writeFile(join(dir, 'doctored.json'), JSON.stringify(doctored));
    const run = (file: string) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/cli/check.ts', '--report', file], {
        timeout: 30_000,
      }).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
      );
    const bad = await run(join(dir, 'doctored.json'));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/regression/);
    const good = await run(DEFAULT_BASELINE);
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/no regression/);
  }, 60_000);
});
