/**
 * Bench smoke test: the real harness (server in its own process, real clients, publisher worker) on a
 * tiny scenario. The report must validate, every client must get every message, and a deliberately
 * lossy client must turn the scenario INVALID — a benchmark that loses messages never reports "fast".
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reportFileName } from '../../../report/write.js';
import { Progress } from '../../../bench/plan/progress.js';
import { validateReport } from '../../../report/schema.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import type { Report } from '../../../report/types.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { ServerPool } from '../../../bench/processes/server-process.js';

const quiet = () => new Progress(process.stderr, true);
const tiny = [
  '--clients',
  '5',
  // 50 messages in half a second: what every check below needs, at a load a shared 2-core machine keeps on schedule.
  '--rate',
  '100',
  '--duration',
  '0.5',
  '--repeats',
  '1',
  '--short-poll-interval-ms',
  '200',
  '--memory-connections',
  '10',
  '--no-autocannon',
  '--no-micro',
  // A correctness test, run beside other suites: a busy machine may delay the publisher; loss may not.
  '--max-publisher-lag-ms',
  '2000',
];

/**
 * The lab, bare and the floor (memory feed, not profiled): one process each, shared by the runs below
 * that use them one after another (the smoke and lossy runs), started by the first, stopped when the
 * file is done.
 */
const pool = new ServerPool();
afterAll(() => pool.stop());

/**
 * One run for the tests on what a run records — the servers' CPU profiles, the feed that served each
 * row: the lab, the lab on Redis and bare over WebSocket, profiled. Made by the first test that needs
 * it (its time is that test's), read by the others.
 */
let recording: Promise<{ report: Report; out: string }> | undefined;
const recorded = () =>
  (recording ??= (async () => {
    const out = await mkdtemp(join(tmpdir(), 'bench-profile-'));
    const opts = parseBenchArgs([
      ...tiny,
      '--servers',
      'lab,lab-redis,bare',
      '--transports',
      'ws',
      '--no-memory',
      '--profile',
      '--out',
      out,
    ]);
    return { report: await runBench(opts, quiet()), out };
  })());
afterAll(async () => {
  const run = await recording?.catch(() => undefined);
  if (run) await rm(run.out, { recursive: true, force: true });
});

describe('npm run bench (smoke)', () => {
  it('--profile: every server process writes a V8 CPU profile next to the report, and the report lists them', async () => {
    const { report, out } = await recorded();
    expect(validateReport(report)).toEqual({ ok: true });
    const profiles = report.profiles ?? [];
    // One per thread of each process (tsx's module-loader thread writes its own); lab-redis is the lab
    // (its folder: lab-redis-…).
    expect([...new Set(profiles.map((p) => p.server.split('-')[0]))].sort()).toEqual(['bare', 'lab']);
    for (const p of profiles) {
      expect(p.file).toMatch(
        new RegExp(`^profiles/${reportFileName(report).replace('.json', '')}/[^/]+/[^/]+\\.cpuprofile$`),
      );
      const profile = JSON.parse(await readFile(join(out, p.file), 'utf8')) as {
        nodes: unknown[];
        startTime: number;
        endTime: number;
      };
      expect(profile.nodes.length).toBeGreaterThan(10);
      expect(profile.endTime).toBeGreaterThan(profile.startTime);
    }
  }, 90_000);

  it('measures every transport on lab, bare and the floor: the report validates and delivered = published × clients', async () => {
    const report = await runBench(parseBenchArgs([...tiny, '--servers', 'lab,bare,floor']), quiet(), pool);
    const check = validateReport(report);
    expect(check).toEqual({ ok: true });
    expect(report.scenarios.map((s) => `${s.server}/${s.transport}`).sort()).toEqual([
      'bare/poll',
      'bare/short-poll',
      'bare/sse',
      'bare/ws',
      'floor/poll',
      'floor/short-poll',
      'floor/sse',
      'floor/ws',
      'lab/poll',
      'lab/short-poll',
      'lab/sse',
      'lab/ws',
    ]);
    for (const s of report.scenarios) {
      expect(s.status, `${s.server}/${s.transport}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.published).toBe(50);
      expect(s.delivered).toBe(s.published * s.clients);
      expect(s.expected).toBe(s.delivered);
      expect(s.lost + s.duplicated + s.reordered).toBe(0);
      // Bytes on the wire per message carry at least the message itself (payload 100 B + id/ts).
      expect(s.wire.bytesOutPerMsg.median).toBeGreaterThan(100);
    }
    const labWs = report.scenarios.find((s) => s.server === 'lab' && s.transport === 'ws')!;
    expect(labWs.vsBare?.bytesOutPerMsg).toBeGreaterThan(0);
    // Every server's rows against the floor measured in the same run, on every transport; the floor's own have none.
    for (const s of report.scenarios) {
      const compared = s.server !== 'floor';
      expect(s.vsFloor === undefined, `${s.server}/${s.transport}`).toBe(!compared);
      if (s.vsFloor) {
        const floor = report.scenarios.find((f) => f.server === 'floor' && f.transport === s.transport)!;
        expect(s.vsFloor.cpuUsPerMsg).toBeCloseTo(
          s.serverMetrics.cpuUsPerMsg.median! / floor.serverMetrics.cpuUsPerMsg.median!,
          9,
        );
      }
    }
    // Idle memory on the lab and bare only (the floor is a CPU control).
    expect(report.memory.length).toBe(6);
    expect(report.env.node).toBe(process.version);
  }, 90_000);

  it('lockstep pins every poll against the publishes: wire figures per message repeat exactly, whatever the timers do', async () => {
    const lockstep = async () => {
      // A lab of its own for each run: the same ids in both, so their digits weigh the same.
      const o = parseBenchArgs([...tiny, '--servers', 'lab', '--no-memory']);
      o.scenarios = [
        { name: 'wire', clients: 5, ratePerSec: 100, payloadBytes: 100, durationSec: 0.2, pace: 'lockstep' },
      ];
      return runBench(o, quiet());
    };
    // Side by side: lockstep waits for every delivery, so a busy machine slows a round but cannot
    // change what it carries.
    const [a, b] = await Promise.all([lockstep(), lockstep()]);
    expect(validateReport(a)).toEqual({ ok: true });
    const wire = (r: typeof a, t: string) => r.scenarios.find((s) => s.transport === t)!;
    for (const t of ['poll', 'short-poll', 'sse', 'ws']) {
      const s = wire(a, t);
      expect(s.status, `${t}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.pace).toBe('lockstep');
      expect(s.delivered).toBe(20 * 5);
      // The same 20 messages in the same lockstep: the bytes differ at most by the digits of ids.
      expect(Math.abs(s.wire.bytesOutPerMsg.median! - wire(b, t).wire.bytesOutPerMsg.median!), t).toBeLessThanOrEqual(
        2,
      );
    }
    // One answer per message for long polling; one full and one empty answer for short polling.
    expect(wire(a, 'poll').wire.requestsPerMsg.median).toBe(1);
    expect(wire(a, 'short-poll').wire.requestsPerMsg.median).toBe(2);
    expect(wire(a, 'sse').wire.requestsPerMsg.median).toBe(0);
  }, 60_000);

  it('reports a lossy client as INVALID with the reason, not as a result', async () => {
    const report = await runBench(
      parseBenchArgs([...tiny, '--servers', 'lab', '--transports', 'ws', '--lossy-every', '7', '--no-memory']),
      quiet(),
      pool,
    );
    expect(validateReport(report)).toEqual({ ok: true });
    const [s] = report.scenarios;
    expect(s?.status).toBe('invalid');
    expect(s?.lost).toBeGreaterThan(0);
    expect(s?.reason).toMatch(/lost/);
  }, 60_000);

  it('--feed redis --workers 2 measures the lab as a two-worker cluster on Redis, and says so in the report', async () => {
    const report = await runBench(
      parseBenchArgs([
        ...tiny,
        '--servers',
        'lab',
        '--transports',
        'ws,poll',
        '--feed',
        'redis',
        '--workers',
        '2',
        '--no-memory',
      ]),
      quiet(),
    );
    expect(validateReport(report)).toEqual({ ok: true });
    expect(report.env).toMatchObject({ feed: 'redis', workers: 2 });
    for (const s of report.scenarios) {
      expect(s.status, s.reason).toBe('ok');
      expect(s.delivered).toBe(s.published * s.clients);
      expect(s).toMatchObject({ feed: 'redis', workers: 2 });
    }
  }, 60_000);

  it('each scenario records the feed that served it: lab-redis on Redis, lab and bare on memory', async () => {
    const { report } = await recorded();
    expect(validateReport(report)).toEqual({ ok: true });
    expect(report.env).toMatchObject({ feed: 'memory', workers: 1 });
    const served = Object.fromEntries(report.scenarios.map((s) => [s.server, { feed: s.feed, workers: s.workers }]));
    expect(served).toEqual({
      lab: { feed: 'memory', workers: 1 },
      'lab-redis': { feed: 'redis', workers: 1 },
      bare: { feed: 'memory', workers: 1 },
    });
  }, 60_000);

  it('rejects bad flags with a message naming the flag', () => {
    expect(() => parseBenchArgs(['--workers', '2'])).toThrow(/--workers/);
    expect(() => parseBenchArgs(['--transports', 'carrier-pigeon'])).toThrow(/--transports/);
    expect(() => parseBenchArgs(['--rate', '-5'])).toThrow(/--rate/);
    expect(() => parseBenchArgs(['--servers', 'nginx'])).toThrow(/--servers/);
  });
});
