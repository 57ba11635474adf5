/**
 * The plan of a run — what the flags resolve to, the targets of every stage, the estimate — for a set
 * of flag combinations, against test/fixtures/bench-plans.json. The fixture was written by the code
 * before bench/ was regrouped (options.ts then held the flags and the plan): the regrouping changed
 * no plan. A change to a plan on purpose rewrites it, in the commit that makes the change (git log of
 * the fixture lists them): `UPDATE_PLANS=1 npx vitest run test/bench/plan`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkOptions } from '../../../bench/cli/check.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { type BenchOptions, cannonServers, memoryTargets, targetsOf } from '../../../bench/plan/plan.js';
import type { Target } from '../../../bench/plan/targets.js';
import { estimateSec } from '../../../bench/stages/index.js';

const FIXTURE = new URL('../../fixtures/bench-plans.json', import.meta.url);

const FLAGS: string[][] = [
  [],
  ['--quick'],
  ['--compare-feeds'],
  ['--compare-protocols'],
  ['--claims'],
  ['--sweep'],
  ['--network', 'all'],
  ['--field', 'all'],
  ['--proxy', 'nginx'],
  ['--http', '1.1,2'],
  ['--tls', '--transports', 'ws,sse'],
  ['--clients', '50', '--rate', '20'],
  ['--feed', 'redis', '--workers', '2'],
  ['--rtt-ms', '80', '--servers', 'lab,bare'],
];

/** A target as the plan sees it (the client module it names is the clients' business). */
const plain = (t: Target) => ({
  server: t.server,
  transport: t.transport,
  protocol: t.protocol,
  process: t.process,
  holdsConnections: t.holdsConnections,
});

function plan(label: string, b: BenchOptions) {
  return {
    label,
    suite: b.suite,
    repeats: b.repeats,
    repeatsNote: b.repeatsNote ?? null,
    transports: b.transports,
    servers: b.servers,
    scenarios: b.scenarios,
    networks: b.networks.map((n) => n.name),
    memory: b.memory,
    memoryConnections: b.memoryConnections,
    memoryRepeats: b.memoryRepeats,
    autocannon: b.autocannon,
    micro: b.micro,
    sweep: b.sweep,
    field: b.field ?? null,
    claims: b.claims ?? null,
    instructions: b.instructions ?? null,
    memoryServers: b.memoryServers ?? null,
    headers: b.headers,
    lab: { ...b.lab, redisKeyPrefix: undefined },
    targets: targetsOf(b).map(plain),
    memoryTargets: memoryTargets(b).map(plain),
    cannonServers: cannonServers(b),
    estimateSec: Math.round(estimateSec(b) * 1000) / 1000,
  };
}

/** Each run's Redis key prefix is its own (pid and time): the same placeholder in every plan. */
const normalised = (x: unknown) =>
  JSON.parse(JSON.stringify(x).replace(/transport-lab-bench-\d+-[a-z0-9]+/g, 'transport-lab-bench-RUN'));

describe('the plan', () => {
  it('every flag combination plans what it planned before the regrouping, to the second of its estimate', () => {
    const plans = normalised([
      ...FLAGS.map((f) => plan(f.join(' ') || '(default)', parseBenchArgs(f))),
      plan('bench:check', checkOptions()),
      plan('bench:check --doctor ws', checkOptions(['ws'])),
    ]);
    if (process.env.UPDATE_PLANS) writeFileSync(FIXTURE, `${JSON.stringify(plans, null, 1)}\n`);
    const before = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { label: string }[];
    expect(plans.map((p: { label: string }) => p.label)).toEqual(before.map((p) => p.label));
    for (let i = 0; i < before.length; i++) expect(plans[i], before[i]!.label).toEqual(before[i]);
  });
});
