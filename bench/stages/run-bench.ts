/**
 * `npm run bench` — the bench harness CLI. Starts every server under test in its own process, runs
 * the scenarios (repeats alternate servers: lab, bare, socketio, lab, bare, …), each over its network
 * (a non-direct one puts the relay process, relay.ts, between clients and server), then the stages —
 * idle memory (memory.ts), autocannon (autocannon.ts), the sweep (sweep.ts), tinybench (micro.ts) —
 * and writes results/<time>-<sha>.json plus latest.{json,md,html}. Flags and the plan: options.ts;
 * repeats into report rows: aggregate.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { addRatios, aggregate, runOrFail } from '../measure/aggregate.js';
import { Nginx } from '../processes/nginx.js';
import { runField } from './field.js';
import { runAutocannon } from './autocannon.js';
import { type Counted, INSTRUCTIONS_METHOD, runInstructions, startCounted, stopCounted } from './instructions.js';
import { runMemory } from './memory.js';
import { runMicro } from './micro.js';
import type { NetworkProfile } from '../../server/network/profiles.js';
import { writeSelfSigned } from '../../server/tls.js';
import { Progress } from '../plan/progress.js';
import { protocolLabel, REPORT_SCHEMA, type Report, type ScenarioResult } from '../../report/types.js';
import { reportFileName } from '../../report/write.js';
import { RELAY_LATENESS_LIMIT, startRelayProcess, type RelayProcess } from '../processes/relay-process.js';
import { PUBLISHER_LAG_LIMIT_MS, type RunParams, type RunResult } from '../measure/run-scenario.js';
import { type ServerPool, startServer, type ServerHandle } from '../processes/server-process.js';
import { runSweep } from './sweep.js';
import type { ScenarioSpec } from '../plan/suite.js';
import { processKey, type LabSetup, type Target } from '../plan/targets.js';
import { preparePublisher } from '../measure/publisher.js';
import { estimateSec } from './estimate.js';
import { memoryTargets, networkOf, protocolsOf, repeatsOf, STEP_SEC, targetsFor, targetsOf, type BenchOptions } from '../plan/plan.js';
import { isTls } from '../plan/http-setup.js';

function gitSha(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the plan: every stage, over processes of its own. `serverPool` (tests): server processes shared
 * with other runs (see ServerPool); never with --profile (a profiled process is the run's own), nor for
 * the lab on Redis (the run drops its keys).
 */
export async function runBench(opts: BenchOptions, log: Progress = new Progress(), serverPool?: ServerPool): Promise<Report> {
  const startedAt = new Date().toISOString();
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  // One self-signed certificate for every TLS server of the run (server/tls.ts), so that the lab and
  // bare send the same handshake bytes.
  if (protocolsOf(opts).some(isTls) && !opts.lab.certificate) {
    const { cert, key } = await writeSelfSigned();
    opts.lab.certificate = { cert, key };
  }
  const targets = targetsOf(opts);
  // --profile: one folder per server process under <out>/profiles/<this report>/, filled when they exit.
  const profileRoot = opts.profile ? join(opts.out, 'profiles', reportFileName({ startedAt, git: gitSha() }).replace(/\.json$/, '')) : undefined;
  // One process per server configuration; targets that share a process share its handle. With a
  // server pool (tests), the pool's process, left running at the end.
  const handles = new Map<string, Promise<ServerHandle>>();
  const pooled = new Set<string>();
  const serverOf = (t: Target): Promise<ServerHandle> => {
    const key = processKey(t);
    if (!handles.has(key)) {
      const dir = profileRoot ? join(profileRoot, `${t.server}-${t.protocol.replace('/', '')}-${handles.size + 1}`) : undefined;
      const start = () => startServer(t.process.script, t.process.options, dir ? { profileDir: dir } : {});
      const pool = dir === undefined && t.server !== 'lab-redis' && !(t.server === 'lab' && opts.lab.feed !== 'memory') ? serverPool : undefined;
      if (pool) pooled.add(key);
      handles.set(key, pool ? pool.get(key, start) : start());
    }
    return handles.get(key)!;
  };
  // One relay process for every (server, network) pair that is not direct, started only when needed.
  let relays: Promise<RelayProcess> | undefined;
  const networkFor = async (t: Target, profile: NetworkProfile): Promise<NonNullable<RunParams['network']>> => {
    if (profile.direct) return { profile, relay: undefined };
    relays ??= startRelayProcess({ delay: !opts.brokenRelay });
    const server = await serverOf(t);
    return { profile, relay: await (await relays).open(server.port, profile, new URL(server.baseUrl).protocol === 'https:' ? 'https' : 'http') };
  };
  // One nginx per server process that a proxied scenario needs, in front of its port.
  const proxies = new Map<string, Promise<Nginx>>();
  const proxyFor = async (t: Target): Promise<{ baseUrl: string }> => {
    const key = processKey(t);
    if (!proxies.has(key))
      proxies.set(
        key,
        serverOf(t).then((s) => Nginx.start({ upstreams: [s.port] })),
      );
    return { baseUrl: (await proxies.get(key)!).url };
  };
  log.plan(estimateSec(opts));
  if (opts.repeatsNote) log.note(opts.repeatsNote);

  // The gate's instruction counts: servers of their own under callgrind, started after the others.
  let counted: Counted[] = [];
  const scenarios: ScenarioResult[] = [];
  let memory: Report['memory'] = [];
  let instructions: Report['instructions'];
  let autocannon: Report['autocannon'] = [];
  let sweep: Report['sweep'];
  try {
    // Start every process a stage will use first, so that start-up costs never land inside a
    // measurement; the publisher's thread and the relay meanwhile.
    const specs = opts.sweep ? [] : opts.scenarios;
    if (opts.scenarios.some((s) => s.pace !== 'lockstep')) preparePublisher();
    if (specs.some((s) => !networkOf(s, opts).direct)) {
      relays ??= startRelayProcess({ delay: !opts.brokenRelay });
      relays.catch(() => {}); // awaited below (or in finally): a failed start is reported there
    }
    const used = opts.sweep ? targets : [...specs.flatMap((s) => targetsFor(s, opts)), ...memoryTargets(opts)];
    await Promise.all(used.map(serverOf));
    // Then the counted ones under callgrind, each ~10 s of CPU to start: beside the others, two cores
    // could not start the lab within its ready timeout. Ready before any measurement.
    if (opts.instructions) counted = startCounted(opts.transports, opts.servers, opts.lab);
    await Promise.all(counted.map((c) => c.handle.catch(() => undefined)));
    // And every relay: one at a time (the relay process answers in order).
    for (const spec of specs) for (const t of targetsFor(spec, opts)) await networkFor(t, networkOf(spec, opts));
    const total = specs.reduce((a, s) => a + repeatsOf(s, opts) * targetsFor(s, opts).length, 0);
    const runs = new Map<string, RunResult[]>();
    const key = (spec: ScenarioSpec, t: Target) => `${spec.name}|${networkOf(spec, opts).name}|${t.protocol}|${spec.proxy ?? ''}|${t.server}|${t.transport}`;
    let done = 0;
    // Repeat r of every scenario on every target before repeat r + 1: servers alternate within a repeat.
    for (let r = 0; r < Math.max(0, ...specs.map((s) => repeatsOf(s, opts))); r++) {
      for (const spec of specs.filter((s) => r < repeatsOf(s, opts))) {
        const network = networkOf(spec, opts);
        for (const t of targetsFor(spec, opts)) {
          const load = `${spec.clients} clients × ${spec.ratePerSec} msg/s × ${spec.payloadBytes} B × ${spec.durationSec} s${network.direct ? '' : ` over ${network.name}`}${spec.proxy ? ` via ${spec.proxy}` : ''}${t.protocol === 'http/1.1' ? '' : `, ${protocolLabel(t.protocol)}`}`;
          log.step(
            `run ${++done}/${total}: ${spec.name} ${t.server}/${t.transport} (${load}), repeat ${r + 1}/${repeatsOf(spec, opts)}`,
            STEP_SEC.run(spec, t.transport, network),
          );
          const result = await runOrFail(await serverOf(t), t, {
            clients: spec.clients,
            ratePerSec: spec.ratePerSec,
            payloadBytes: spec.payloadBytes,
            durationSec: spec.durationSec,
            shortPollIntervalMs: spec.shortPollIntervalMs ?? opts.shortPollIntervalMs,
            ...(spec.pace ? { pace: spec.pace } : {}),
            ...(opts.lossyEvery ? { lossyEvery: opts.lossyEvery } : {}),
            maxPublisherLagMs: opts.maxPublisherLagMs,
            network: await networkFor(t, network),
            ...(spec.proxy ? { proxy: await proxyFor(t) } : {}),
            headers: opts.headers,
            cookieBytes: opts.cookieBytes,
          });
          if (result.outcome.status === 'invalid') log.note(`  INVALID: ${result.outcome.reason}`);
          runs.set(key(spec, t), [...(runs.get(key(spec, t)) ?? []), result]);
        }
      }
    }
    for (const spec of specs) {
      for (const t of targetsFor(spec, opts))
        scenarios.push(
          aggregate(spec, t, networkOf(spec, opts), runs.get(key(spec, t)) ?? [], repeatsOf(spec, opts), opts.lab, {
            headers: opts.headers,
            cookieBytes: opts.cookieBytes,
          }),
        );
    }
    addRatios(scenarios);

    // Instruction counts do not depend on the machine's load, nor does idle heap: side by side.
    [memory, instructions] = await Promise.all([
      runMemory(opts, serverOf, log),
      opts.instructions
        ? runInstructions(counted, opts.instructions, { protocol: 'http/1.1', headers: opts.headers, cookieBytes: opts.cookieBytes }, log)
        : undefined,
    ]);
    autocannon = await runAutocannon(opts, serverOf, log);
    if (opts.sweep) sweep = await runSweep(opts, serverOf, networkFor, log);
  } finally {
    await Promise.all([...proxies.values()].map(async (p) => (await p.catch(() => undefined))?.stop()));
    await Promise.all([...handles].map(async ([key, h]) => (pooled.has(key) ? undefined : (await h.catch(() => undefined))?.stop())));
    await (await relays?.catch(() => undefined))?.stop();
    await stopCounted(counted);
    if (targets.some((t) => t.server === 'lab-redis' || (t.server === 'lab' && opts.lab.feed !== 'memory'))) await dropRedisKeys(opts.lab);
  }

  const micro = opts.micro ? await runMicro(opts, log) : [];
  const profiles = profileRoot ? await profilesIn(profileRoot, opts.out) : undefined;
  let field: Report['field'];
  if (opts.field) {
    try {
      field = await runField({ log, redisUrl: opts.lab.redisUrl, keyPrefix: opts.lab.redisKeyPrefix, headers: opts.headers, only: opts.field });
    } finally {
      await dropRedisKeys(opts.lab);
    }
  }
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
  repeats: 'Each repeat runs every server once (lab, bare, socketio, lab, bare, …); figures are medians over repeats with min–max; counts are totals.',
  vsBare: 'Lab median ÷ bare median for the same scenario, measured in the same run.',
  vsFloor:
    'Any server’s median ÷ the floor server’s median (bench/servers/floor.ts: no framework, each batch framed once, headers included, and the same Buffer written to every socket, one write per socket per event-loop turn) for the same SSE or WebSocket scenario, measured in the same run: how far a server is from the least CPU Node needs to put the same bytes on the wire.',
  autocannon:
    'autocannon against GET /poll catch-up (10 retained messages of 100 B, answered at once) and POST /publish; bytes per request = response bytes / requests.',
  micro: 'tinybench over the server’s own encoders: one SSE event, one WebSocket frame (payload + ws framing), one 10-message poll body.',
};
