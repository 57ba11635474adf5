/**
 * A bench run: the stages of the plan (index.ts) over the run's processes, and the report they make —
 * environment, parameters, method and every stage's results. The command line is bench/cli/run.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { REPORT_SCHEMA, type Report } from '../../report/types.js';
import { reportFileName } from '../../report/write.js';
import { writeSelfSigned } from '../../server/tls.js';
import { PUBLISHER_LAG_LIMIT_MS } from '../measure/run-scenario.js';
import { isTls } from '../plan/http-setup.js';
import { type BenchOptions, networkOf, protocolsOf, targetsOf } from '../plan/plan.js';
import { Progress } from '../plan/progress.js';
import type { LabSetup } from '../plan/targets.js';
import { Processes } from '../processes/pool.js';
import { RELAY_LATENESS_LIMIT } from '../processes/relay-process.js';
import type { ServerPool } from '../processes/server-process.js';
import { estimateSec, STAGES } from './index.js';
import { INSTRUCTIONS_METHOD } from './instructions.js';
import type { Stage, StageResult } from './stage.js';

function gitSha(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    // Reports the bench itself wrote into results/ do not make the code that measures dirty: `npm run
    // results` writes one report after the other from the same tree.
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)results'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    ).trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the plan: every stage of STAGES that has work in it, over one pool of processes (Processes)
 * that owns and stops every child. Every process a stage measures starts first, so that start-up
 * costs never land inside a measurement; then each stage prepares what it starts itself; then the
 * stages run in order (a stage marked `alongside` beside the one before it). `serverPool` (tests):
 * server processes shared with other runs (see ServerPool).
 */
export async function runBench(
  opts: BenchOptions,
  log: Progress = new Progress(),
  serverPool?: ServerPool,
): Promise<Report> {
  const startedAt = new Date().toISOString();
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  // One self-signed certificate for every TLS server of the run (server/tls.ts), so that the lab and
  // bare send the same handshake bytes.
  if (protocolsOf(opts).some(isTls) && !opts.lab.certificate) {
    const { cert, key } = await writeSelfSigned();
    opts.lab.certificate = { cert, key };
  }
  // --profile: one folder per server process under <out>/profiles/<this report>/, filled when they exit.
  const profileRoot = opts.profile
    ? join(opts.out, 'profiles', reportFileName({ startedAt, git: gitSha() }).replace(/\.json$/, ''))
    : undefined;
  const processes = new Processes({ lab: opts.lab, profileRoot, serverPool, brokenRelay: opts.brokenRelay });
  log.plan(estimateSec(opts));
  if (opts.repeatsNote) log.note(opts.repeatsNote);

  const stages = STAGES.filter((s) => s.runs(opts));
  const report: StageResult = {};
  const ctx = { opts, log, processes, report };
  const runStage = async (stage: Stage<unknown>, prepared: unknown) =>
    Object.assign(report, await stage.run(ctx, prepared));
  const runInOrder = async (list: Stage<unknown>[], prepared: Map<Stage<unknown>, unknown>) => {
    for (let i = 0; i < list.length; i++) {
      const beside = list.slice(i + 1).findIndex((s) => !s.alongside);
      const group = list.slice(i, beside < 0 ? list.length : i + 1 + beside);
      await Promise.all(group.map((s) => runStage(s, prepared.get(s))));
      i += group.length - 1;
    }
  };
  try {
    await Promise.all(stages.flatMap((s) => s.targets?.(opts) ?? []).map((t) => processes.server(t)));
    const prepared = new Map<Stage<unknown>, unknown>();
    for (const s of stages) if (s.prepare) prepared.set(s, await s.prepare(ctx));
    await runInOrder(
      stages.filter((s) => !s.afterProcesses),
      prepared,
    );
  } finally {
    await processes.stop();
    if (targetsOf(opts).some((t) => t.server === 'lab-redis' || (t.server === 'lab' && opts.lab.feed !== 'memory')))
      await dropRedisKeys(opts.lab);
  }
  const profiles = profileRoot ? await profilesIn(profileRoot, opts.out) : undefined;
  try {
    await runInOrder(
      stages.filter((s) => s.afterProcesses),
      new Map(),
    );
  } finally {
    if (opts.field) await dropRedisKeys(opts.lab);
  }
  const { scenarios = [], memory = [], instructions, autocannon = [], micro = [], sweep, field } = report;
  const cpu = process.cpuUsage(cpuStart);
  const wallSec = (performance.now() - wallStart) / 1000;
  log.done(`bench finished in ${wallSec.toFixed(0)} s`);
  const cpus = os.cpus();
  return {
    schema: REPORT_SCHEMA,
    startedAt,
    finishedAt: new Date().toISOString(),
    git: gitSha(),
    env: {
      node: process.version,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      memoryBytes: os.totalmem(),
      loadGenerator: { pid: process.pid, cpuUsPerSec: (cpu.user + cpu.system) / wallSec, threads: 2 },
      feed: opts.lab.feed === 'memory' ? 'memory' : 'redis',
      workers: opts.lab.workers,
      argv: opts.argv,
    },
    params: {
      suite: opts.suite,
      transports: opts.transports,
      servers: opts.servers,
      repeats: opts.repeats,
      ...(opts.repeatsNote ? { repeatsNote: opts.repeatsNote } : {}),
      scenarios: opts.scenarios.map((s) => ({ ...s, network: networkOf(s, opts).name })),
      networks: opts.networks,
      memoryConnections: opts.memory ? opts.memoryConnections : 0,
      autocannonDurationSec: opts.autocannon ? opts.autocannonDurationSec : 0,
      shortPollIntervalMs: opts.shortPollIntervalMs,
      maxPublisherLagMs: opts.maxPublisherLagMs,
      ...(opts.lossyEvery ? { lossyEvery: opts.lossyEvery } : {}),
      headers: opts.headers,
      cookieBytes: opts.cookieBytes,
    },
    method: opts.instructions ? { ...METHOD, instructions: INSTRUCTIONS_METHOD } : METHOD,
    scenarios,
    memory,
    ...(instructions ? { instructions } : {}),
    autocannon,
    micro,
    ...(sweep ? { sweep } : {}),
    ...(field ? { field } : {}),
    ...(profiles ? { profiles } : {}),
  };
}

/** The CPU profiles the server processes wrote when they exited, each named by its folder (server, protocol, process). */
async function profilesIn(root: string, out: string): Promise<NonNullable<Report['profiles']>> {
  const found: NonNullable<Report['profiles']> = [];
  let dirs: string[] = [];
  try {
    dirs = await readdir(root);
  } catch {
    return found;
  }
  for (const dir of dirs.sort()) {
    for (const file of (await readdir(join(root, dir))).filter((f) => f.endsWith('.cpuprofile')).sort()) {
      found.push({ server: dir, file: relative(out, join(root, dir, file)) });
    }
  }
  return found;
}

/** A bench run's Redis keys are its own (unique prefix); nothing is left behind. */
async function dropRedisKeys(lab: LabSetup): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(lab.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${lab.redisKeyPrefix}*`, 'COUNT', 100);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } catch {
    // Redis is gone: nothing we can clean.
  } finally {
    redis.disconnect();
  }
}

export const METHOD: Record<string, string> = {
  servers:
    'Each server runs in its own Node process (--expose-gc, no demo publisher); the load generator runs in the bench process on the same machine: all clients on the main thread, the publisher in a worker thread so client load cannot delay its schedule.',
  publishing:
    'Open loop: message k is due at start + k/rate and carries that scheduled time; it is POSTed to /publish over keep-alive connections whatever happened to earlier messages. Scenarios with pace "lockstep" publish one message at a time instead, the next (never before its schedule) only once every client has it; a short-polling client then makes one poll that carries the message and one that comes back empty, so wire figures per message do not depend on timer phase.',
  latency:
    'received − scheduled for every delivery, one clock (the bench process), HdrHistogram in µs; includes publish, fan-out and client parsing. Warm-up (≤1 s at the same rate) is not measured.',
  proxy:
    'With --proxy nginx every scenario runs twice in the same run: directly, and with the clients going through nginx (Debian’s, started by the bench with the shipped deploy/nginx.conf rendered for that server’s port; the publisher and /stats stay direct). Bytes and CPU are the server’s, so through the proxy they are the nginx → server hop; latency is end to end: the difference is the hop’s cost.',
  network: `Clients reach the server directly over 127.0.0.1 (network "loopback") or through the network emulator (server/network/relay.ts, network profiles in params.networks) running in a process of its own; the publisher and /stats always go straight to the server, as a publisher inside the data centre would. Over a relay, a run is INVALID when the relay's own lateness p99 exceeds max(${RELAY_LATENESS_LIMIT.floorMs} ms, ${RELAY_LATENESS_LIMIT.oneWayFraction * 100} % of the one-way delay), or when latency p50 is below the one-way delay (RTT/2), which every delivery must cross: a broken relay never produces a fast number. Beyond one-way = p50 − RTT/2: what the transport adds to the network's own delay.`,
  validity: `Every delivery is checked per client: lost (not announced by a gap), duplicated and out-of-order ids, client errors, failed publishes, and a publisher whose lag p99 exceeds the limit (params.maxPublisherLagMs, default ${PUBLISHER_LAG_LIMIT_MS} ms) make the scenario INVALID with the reason.`,
  wire: 'Server /stats deltas over the measured window divided by messages delivered: bytes read and written on the transport sockets (HTTP headers, chunked framing, WebSocket frame headers included) and HTTP requests.',
  cpu: 'Server process CPU time (user + system) over the measured window divided by messages delivered; includes accepting the publishes.',
  eventLoop:
    'Server event-loop delay p99 (perf_hooks.monitorEventLoopDelay, 10 ms resolution; server/event-loop.ts, one meter for the lab and the reference servers) over the measured window: the runner opens a window in the server process over IPC when the measured window opens and reads it when it closes (with several workers, the worst worker), so every server reports the delay over the same interval as its CPU and wire figures.',
  memory:
    'Idle memory: server heap and RSS after gc() with N idle clients connected, minus the same before they connected, divided by N; again after they all disconnect (must come back).',
  repeats:
    'Each repeat runs every server once (lab, bare, socketio, lab, bare, …); figures are medians over repeats with min–max; counts are totals.',
  vsBare: 'Lab median ÷ bare median for the same scenario, measured in the same run.',
  vsFloor:
    'Any server’s median ÷ the floor server’s median (bench/servers/floor.ts: no framework, each batch framed once, headers included, and the same Buffer written to every socket, one write per socket per event-loop turn) for the same scenario and transport, measured in the same run; for polls, the waiting polls grouped by cursor, each group’s answer built once: how far a server is from the least CPU Node needs to put the same bytes on the wire.',
  autocannon:
    'autocannon against GET /poll catch-up (10 retained messages of 100 B, answered at once) and POST /publish; bytes per request = response bytes / requests.',
  micro:
    'tinybench over the server’s own encoders: one SSE event, one WebSocket frame (payload + ws framing), one 10-message poll body.',
};
