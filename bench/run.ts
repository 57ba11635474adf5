/**
 * `npm run bench` — the bench harness CLI. Starts every server under test in its own process, runs
 * the scenarios (repeats alternate servers: lab, bare, socketio, lab, bare, …), idle memory,
 * autocannon and tinybench, and writes results/<time>-<sha>.json plus latest.{json,md,html}.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { runCannon, type CannonSpec } from './autocannon.js';
import { figure, round } from './figures.js';
import { measureIdleMemory } from './memory.js';
import { runMicro } from './micro.js';
import { Progress } from './progress.js';
import { makeData, Publisher } from './publisher.js';
import {
  REPORT_SCHEMA,
  type AutocannonResult,
  type Figure,
  type MemoryResult,
  type Report,
  type ScenarioResult,
  type ServerName,
  type SweepResult,
  type TransportName,
} from './report/types.js';
import { writeReports } from './report/write.js';
import { PUBLISHER_LAG_LIMIT_MS, runScenario, type RunResult } from './run-scenario.js';
import { startServer, type ServerHandle } from './server-process.js';
import { DEFAULT_LAB_SETUP, processKey, target, type LabSetup, type Target } from './targets.js';
import { SUITES, SWEEP, type ScenarioSpec } from './suite.js';

const TRANSPORTS: readonly TransportName[] = ['poll', 'short-poll', 'sse', 'ws'];
const SERVERS: readonly ServerName[] = ['lab', 'lab-redis', 'bare', 'socketio'];
/** `lab-redis` runs only when asked for (or with --compare-feeds): it needs a Redis. */
const DEFAULT_SERVERS: readonly ServerName[] = ['lab', 'bare', 'socketio'];

function list<T extends string>(raw: string | undefined, allowed: readonly T[], flag: string): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new Error(`--${flag}: unknown "${i}" (expected ${allowed.join(', ')})`);
  return items as T[];
}

function positive(raw: string | undefined, flag: string, integer = true): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${flag}: expected a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  return n;
}

export interface BenchOptions {
  transports: TransportName[];
  servers: ServerName[];
  scenarios: ScenarioSpec[];
  repeats: number;
  out: string;
  memoryConnections: number;
  memory: boolean;
  autocannon: boolean;
  autocannonDurationSec: number;
  micro: boolean;
  microTimeMs: number;
  sweep: boolean;
  shortPollIntervalMs: number;
  lossyEvery: number;
  /** Publisher lag p99 (ms) above which a run is INVALID. */
  maxPublisherLagMs: number;
  suite: string;
  argv: string[];
  /** Set when the repeats were lowered to fit the suite's time budget. */
  repeatsNote: string | undefined;
  /** Feed and workers of the lab servers. */
  lab: LabSetup;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      transports: { type: 'string' },
      servers: { type: 'string' },
      clients: { type: 'string' },
      rate: { type: 'string' },
      payload: { type: 'string' },
      duration: { type: 'string' },
      repeats: { type: 'string' },
      out: { type: 'string' },
      quick: { type: 'boolean' },
      sweep: { type: 'boolean' },
      feed: { type: 'string' },
      workers: { type: 'string' },
      'compare-feeds': { type: 'boolean' },
      'memory-connections': { type: 'string' },
      'no-memory': { type: 'boolean' },
      'no-autocannon': { type: 'boolean' },
      'no-micro': { type: 'boolean' },
      'short-poll-interval-ms': { type: 'string' },
      'lossy-every': { type: 'string' },
      'max-publisher-lag-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const workers = positive(values.workers, 'workers') ?? 1;
  const feedFlag = values.feed ?? 'memory';
  const feed = feedFlag === 'redis' ? DEFAULT_LAB_SETUP.redisUrl : feedFlag;
  if (feed !== 'memory' && !/^rediss?:\/\//.test(feed)) throw new Error(`--feed: expected memory, redis or a redis:// URL, got "${feedFlag}"`);
  if (workers > 1 && feed === 'memory') throw new Error('--workers: several workers need the Redis feed (--feed redis): the memory feed lives in one process');
  const lab: LabSetup = {
    feed,
    redisUrl: feed === 'memory' ? DEFAULT_LAB_SETUP.redisUrl : feed,
    redisKeyPrefix: `transport-lab-bench-${process.pid}-${Date.now().toString(36)}`,
    workers,
  };
  const compareFeeds = values['compare-feeds'] ?? false;
  const suiteName = values.quick ? 'quick' : compareFeeds ? 'feeds' : 'default';
  const suite = SUITES[suiteName];
  const clients = positive(values.clients, 'clients');
  const rate = positive(values.rate, 'rate', false);
  const payload = positive(values.payload, 'payload');
  const duration = positive(values.duration, 'duration', false);
  const custom = clients !== undefined || rate !== undefined || payload !== undefined || duration !== undefined;
  const scenarios: ScenarioSpec[] = custom
    ? [
        {
          name: 'custom',
          clients: clients ?? suite.scenarios[0]!.clients,
          ratePerSec: rate ?? suite.scenarios[0]!.ratePerSec,
          payloadBytes: payload ?? suite.scenarios[0]!.payloadBytes,
          durationSec: duration ?? suite.scenarios[0]!.durationSec,
        },
      ]
    : suite.scenarios.map((s) => ({ ...s }));
  const opts: BenchOptions = {
    transports: list(values.transports, TRANSPORTS, 'transports') ?? [...TRANSPORTS],
    servers: list(values.servers, SERVERS, 'servers') ?? [...DEFAULT_SERVERS],
    scenarios,
    repeats: positive(values.repeats, 'repeats') ?? suite.repeats,
    out: values.out ?? 'results',
    memoryConnections: positive(values['memory-connections'], 'memory-connections') ?? suite.memoryConnections,
    // --sweep is its own mode: only the capacity sweep runs.
    memory: !values['no-memory'] && !values.sweep && suite.memoryConnections > 0,
    autocannon: !values['no-autocannon'] && !values.sweep,
    autocannonDurationSec: suite.autocannonDurationSec,
    micro: !values['no-micro'] && !values.sweep,
    microTimeMs: suite.microTimeMs,
    sweep: values.sweep ?? false,
    shortPollIntervalMs: positive(values['short-poll-interval-ms'], 'short-poll-interval-ms') ?? 1000,
    lossyEvery: positive(values['lossy-every'], 'lossy-every') ?? 0,
    maxPublisherLagMs: positive(values['max-publisher-lag-ms'], 'max-publisher-lag-ms') ?? PUBLISHER_LAG_LIMIT_MS,
    suite: custom ? 'custom' : suiteName,
    argv,
    repeatsNote: undefined,
    lab,
  };
  if (compareFeeds) {
    // The lab on each feed, same transports, same load: what the Redis feed costs per message.
    opts.servers = ['lab', 'lab-redis'];
    opts.memory = false;
    opts.autocannon = false;
    opts.micro = false;
  }
  // Repeats default to 3; when the whole suite would not fit its time budget, fewer (at least 1), and
  // the report says so. `--repeats N` always wins.
  if (values.repeats === undefined && !custom) {
    while (opts.repeats > 1 && estimateSec(opts) > suite.budgetSec) opts.repeats--;
    if (opts.repeats < suite.repeats) {
      opts.repeatsNote = `repeats lowered from ${suite.repeats} to ${opts.repeats} to fit the ${suite.budgetSec} s budget of this suite; use --repeats ${suite.repeats} (or fewer --transports/--servers) for medians over ${suite.repeats}`;
    }
  }
  return opts;
}

const HELP = `npm run bench -- [flags]
  --quick                     the ≤ 90 s subset
  --sweep                     capacity sweep: add clients until p95 latency > 250 ms or any loss
  --compare-feeds             the lab on the memory feed and on the Redis feed, same transports and load
  --feed memory|redis|URL     the lab's feed (redis = redis://127.0.0.1:6379/0)
  --workers N                 lab worker processes on one port (needs the Redis feed)
  --transports poll,short-poll,sse,ws
  --servers lab,lab-redis,bare,socketio
  --clients N --rate MSG_PER_S --payload BYTES --duration SEC   one custom scenario instead of the suite
  --repeats N                 repeats per scenario (servers alternate within each repeat)
  --memory-connections N      idle connections for the memory measurement
  --no-memory --no-autocannon --no-micro
  --short-poll-interval-ms MS short polling interval (default 1000)
  --max-publisher-lag-ms MS   publisher lag p99 above which a run is INVALID (default ${PUBLISHER_LAG_LIMIT_MS})
  --out DIR                   where reports go (default results)`;

function gitSha(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/** A scenario's own repeats (fixed by its suite) or the run's. */
export const repeatsOf = (spec: ScenarioSpec, opts: Pick<BenchOptions, 'repeats'>): number => spec.repeats ?? opts.repeats;

/** Seconds one run of `spec` takes: warm-up, measured window, drain, connecting the clients. */
export const runSec = (spec: ScenarioSpec, transport: TransportName): number =>
  spec.durationSec + Math.min(1, spec.durationSec / 5) + 1 + spec.clients / 500 + (transport === 'short-poll' ? 1.5 : 0);

export function targetsOf(opts: Pick<BenchOptions, 'transports' | 'servers' | 'lab'>): Target[] {
  return opts.transports.flatMap((tr) => opts.servers.map((s) => target(s, tr, opts.lab)).filter((t): t is Target => t !== undefined));
}

/** What the whole bench should take, in seconds, from the same per-step estimates the progress line uses. */
export function estimateSec(opts: BenchOptions): number {
  const targets = targetsOf(opts);
  const scenarioSec = opts.sweep
    ? 0
    : opts.scenarios.reduce((a, s) => a + repeatsOf(s, opts) * targets.reduce((b, t) => b + runSec(s, t.transport), 0), 0);
  const memory = opts.memory ? targets.filter((t) => t.holdsConnections && t.server !== 'socketio').length * (2 + opts.memoryConnections / 250) : 0;
  const cannon = opts.autocannon ? opts.servers.filter((s) => s !== 'socketio').length * 2 * (opts.autocannonDurationSec + 1) : 0;
  const micro = opts.micro ? (opts.microTimeMs * 3) / 1000 + 1 : 0;
  const sweep = opts.sweep ? targets.length * SWEEP.clientSteps.length * (SWEEP.durationSec + 3) : 0;
  return 5 + scenarioSec + memory + cannon + micro + sweep;
}

/** Starts each server process once; targets that share a process share the handle. */
class Servers {
  readonly #handles = new Map<string, Promise<ServerHandle>>();
  get(t: Target): Promise<ServerHandle> {
    const key = processKey(t);
    let h = this.#handles.get(key);
    if (!h) {
      h = startServer(t.process.script, t.process.options);
      this.#handles.set(key, h);
    }
    return h;
  }
  async stopAll(): Promise<void> {
    await Promise.all([...this.#handles.values()].map(async (h) => (await h.catch(() => undefined))?.stop()));
  }
}

/** Not measured (null, NaN) stays null in the figure: see figure(). */
const nums = (runs: RunResult[], pick: (r: RunResult) => number | null) => figure(runs.map(pick));

/** The feed and workers that serve `t`: only the lab servers take --feed/--workers. */
function servedBy(t: Target, lab: LabSetup): Pick<ScenarioResult, 'feed' | 'workers'> {
  switch (t.server) {
    case 'lab':
      return { feed: lab.feed === 'memory' ? 'memory' : 'redis', workers: lab.workers };
    case 'lab-redis':
      return { feed: 'redis', workers: lab.workers };
    case 'bare':
    case 'socketio':
      return { feed: 'memory', workers: 1 };
    default:
      return t.server satisfies never;
  }
}

function aggregate(spec: ScenarioSpec, t: Target, runs: RunResult[], repeats: number, lab: LabSetup): ScenarioResult {
  const invalid = runs.map((r, i) => (r.outcome.status === 'invalid' ? `repeat ${i + 1}: ${r.outcome.reason}` : undefined)).filter(Boolean);
  const total = (pick: (r: RunResult) => number) => runs.reduce((a, r) => a + pick(r), 0);
  return {
    name: spec.name,
    server: t.server,
    transport: t.transport,
    clients: spec.clients,
    ratePerSec: spec.ratePerSec,
    payloadBytes: spec.payloadBytes,
    durationSec: spec.durationSec,
    ...servedBy(t, lab),
    ...(spec.pace === 'lockstep' ? { pace: 'lockstep' as const } : {}),
    repeats,
    status: invalid.length ? 'invalid' : 'ok',
    ...(invalid.length ? { reason: invalid.join(' | ') } : {}),
    published: total((r) => r.published),
    delivered: total((r) => r.delivered),
    expected: total((r) => r.expected),
    lost: total((r) => r.lost),
    duplicated: total((r) => r.duplicated),
    reordered: total((r) => r.reordered),
    gaps: total((r) => r.gaps),
    latencyMs: {
      p50: nums(runs, (r) => r.latencyMs.p50),
      p90: nums(runs, (r) => r.latencyMs.p90),
      p99: nums(runs, (r) => r.latencyMs.p99),
      max: nums(runs, (r) => r.latencyMs.max),
    },
    publisherLagMs: { p99: nums(runs, (r) => r.publisherLagMs.p99), max: nums(runs, (r) => r.publisherLagMs.max) },
    wire: {
      bytesOutPerMsg: nums(runs, (r) => r.wire.bytesOutPerMsg),
      bytesInPerMsg: nums(runs, (r) => r.wire.bytesInPerMsg),
      requestsPerMsg: nums(runs, (r) => r.wire.requestsPerMsg),
    },
    serverMetrics: {
      cpuUsPerMsg: nums(runs, (r) => r.cpuUsPerMsg),
      eventLoopDelayP99Ms: nums(runs, (r) => r.eventLoopDelayP99Ms),
    },
    ...(t.server === 'lab' ? floorOf(runs) : {}),
  };
}

/** Lab only: bytes per message beyond the message JSON, against the protocol floor (medians over repeats). */
function floorOf(runs: RunResult[]): Pick<ScenarioResult, 'floor'> {
  const measured = runs.flatMap((r) => (r.floor && r.wire.bytesOutPerMsg !== null ? [{ ...r.floor, out: r.wire.bytesOutPerMsg }] : []));
  if (measured.length === 0) return {};
  const overhead = figure(measured.map((m) => m.out - m.jsonBytesPerMsg)).median;
  const floor = figure(measured.map((m) => m.floorBytesPerMsg)).median;
  const excess = figure(measured.map((m) => m.out - m.jsonBytesPerMsg - m.floorBytesPerMsg)).median;
  if (overhead === null || floor === null || excess === null) return {};
  return { floor: { overheadBytesPerMsg: round(overhead), floorBytesPerMsg: round(floor), excessBytesPerMsg: round(excess) } };
}

/** a ÷ b of two medians; null when either was not measured or the quotient is not a finite number. */
function ratio(a: Figure, b: Figure): number | null {
  if (a.median === null || b.median === null) return null;
  const q = a.median / b.median;
  return Number.isFinite(q) ? q : null;
}

/** Lab ÷ bare for the same scenario and transport, when both are valid (and every ratio is a number). */
function addVsBare(results: ScenarioResult[]): void {
  for (const lab of results) {
    if (lab.server !== 'lab' || lab.status !== 'ok') continue;
    const bare = results.find((r) => r.server === 'bare' && r.name === lab.name && r.transport === lab.transport && r.status === 'ok');
    if (!bare) continue;
    const cpuUsPerMsg = ratio(lab.serverMetrics.cpuUsPerMsg, bare.serverMetrics.cpuUsPerMsg);
    const bytesOutPerMsg = ratio(lab.wire.bytesOutPerMsg, bare.wire.bytesOutPerMsg);
    const latencyP99 = ratio(lab.latencyMs.p99, bare.latencyMs.p99);
    if (cpuUsPerMsg === null || bytesOutPerMsg === null || latencyP99 === null) continue;
    lab.vsBare = { cpuUsPerMsg, bytesOutPerMsg, latencyP99 };
  }
}

export async function runBench(opts: BenchOptions, log: Progress = new Progress()): Promise<Report> {
  const startedAt = new Date().toISOString();
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  const servers = new Servers();
  const targets = targetsOf(opts);
  const scenarioRuns = opts.scenarios.reduce((a, s) => a + repeatsOf(s, opts) * targets.length, 0);
  const maxRepeats = Math.max(0, ...opts.scenarios.map((s) => repeatsOf(s, opts)));
  const memoryTargets = opts.memory ? targets.filter((t) => t.holdsConnections && t.server !== 'socketio') : [];
  const cannonServers = opts.autocannon ? opts.servers.filter((s) => s !== 'socketio') : [];
  log.plan(estimateSec(opts));
  if (opts.repeatsNote) log.note(opts.repeatsNote);

  const scenarios: ScenarioResult[] = [];
  const memory: MemoryResult[] = [];
  const cannon: AutocannonResult[] = [];
  let sweep: SweepResult[] | undefined;
  try {
    // Start every process first, so that start-up costs never land inside a measurement.
    await Promise.all(targets.map((t) => servers.get(t)));
    const runs = new Map<string, RunResult[]>();
    let done = 0;
    for (let r = 0; r < (opts.sweep ? 0 : maxRepeats); r++) {
      for (const spec of opts.scenarios.filter((s) => r < repeatsOf(s, opts))) {
        for (const t of targets) {
          done++;
          log.step(`run ${done}/${scenarioRuns}: ${spec.name} ${t.server}/${t.transport} (${spec.clients} clients × ${spec.ratePerSec} msg/s × ${spec.payloadBytes} B × ${spec.durationSec} s), repeat ${r + 1}/${repeatsOf(spec, opts)}`, runSec(spec, t.transport));
          const key = `${spec.name}|${t.server}|${t.transport}`;
          let result: RunResult;
          try {
            result = await runScenario(await servers.get(t), t, {
              clients: spec.clients,
              ratePerSec: spec.ratePerSec,
              payloadBytes: spec.payloadBytes,
              durationSec: spec.durationSec,
              shortPollIntervalMs: spec.shortPollIntervalMs ?? opts.shortPollIntervalMs,
              ...(spec.pace ? { pace: spec.pace } : {}),
              ...(opts.lossyEvery ? { lossyEvery: opts.lossyEvery } : {}),
              maxPublisherLagMs: opts.maxPublisherLagMs,
            });
          } catch (err) {
            result = failedRun(err as Error);
          }
          if (result.outcome.status === 'invalid') log.note(`  INVALID: ${result.outcome.reason}`);
          runs.set(key, [...(runs.get(key) ?? []), result]);
        }
      }
    }
    for (const spec of opts.sweep ? [] : opts.scenarios) {
      for (const t of targets) scenarios.push(aggregate(spec, t, runs.get(`${spec.name}|${t.server}|${t.transport}`) ?? [], repeatsOf(spec, opts), opts.lab));
    }
    addVsBare(scenarios);

    for (const t of memoryTargets) {
      log.step(`idle memory: ${t.server}/${t.transport} with ${opts.memoryConnections} connections`, 2 + opts.memoryConnections / 250);
      const values: { heap: number; rss: number; retained: number }[] = [];
      let problem: string | undefined;
      try {
        const m = await measureIdleMemory(await servers.get(t), t, opts.memoryConnections);
        values.push({ heap: m.heapBytesPerConn, rss: m.rssBytesPerConn, retained: m.heapRetainedAfterCloseBytes });
        problem = m.problem;
      } catch (err) {
        problem = (err as Error).message;
      }
      memory.push({
        server: t.server,
        transport: t.transport,
        connections: opts.memoryConnections,
        status: problem ? 'invalid' : 'ok',
        ...(problem ? { reason: problem } : {}),
        heapBytesPerConn: figure(values.map((v) => v.heap)),
        rssBytesPerConn: figure(values.map((v) => v.rss)),
        heapRetainedAfterCloseBytes: figure(values.map((v) => v.retained)),
      });
    }

    if (cannonServers.length) {
      const specs: CannonSpec[] = [
        { name: 'poll catch-up (10 messages)', method: 'GET', path: '/poll?since=0&timeout=0' },
        { name: 'publish', method: 'POST', path: '/publish', body: JSON.stringify({ data: makeData(0, 100) }) },
      ];
      for (const s of cannonServers) {
        const t = target(s, 'poll', opts.lab)!;
        const server = await servers.get(t);
        // Same retained content on every server: 10 messages of 100 B (publishes below add more at the end).
        const lastId = (await server.stats()).feed.lastId;
        const pub = new Publisher(server.controlUrl);
        await pub.fill(10, 100);
        await pub.close();
        for (const spec of specs) {
          const path = spec.method === 'GET' ? `/poll?since=${lastId}&timeout=0` : spec.path;
          log.step(`autocannon: ${s} ${spec.method} ${path}`, opts.autocannonDurationSec + 1);
          const connections = 10;
          try {
            const c = await runCannon(server, { ...spec, path }, connections, opts.autocannonDurationSec);
            const problem = c.errors > 0 || c.non2xx > 0 ? `${c.errors} errors, ${c.non2xx} non-2xx answers` : undefined;
            cannon.push({
              name: spec.name,
              server: s,
              method: spec.method,
              path,
              connections,
              durationSec: opts.autocannonDurationSec,
              status: problem ? 'invalid' : 'ok',
              ...(problem ? { reason: problem } : {}),
              requestsPerSec: figure([c.requestsPerSec]),
              latencyMs: { p50: figure([c.latencyP50Ms]), p99: figure([c.latencyP99Ms]) },
              bytesPerRequest: figure([c.bytesPerRequest]),
              errors: c.errors,
              non2xx: c.non2xx,
            });
          } catch (err) {
            log.note(`  autocannon failed: ${(err as Error).message}`);
          }
        }
      }
    }

    if (opts.sweep) sweep = await runSweep(opts, targets, servers, log);
  } finally {
    await servers.stopAll();
    if (targets.some((t) => t.server === 'lab-redis' || (t.server === 'lab' && opts.lab.feed !== 'memory'))) await dropRedisKeys(opts.lab);
  }

  let micro: Report['micro'] = [];
  if (opts.micro) {
    log.step('tinybench: per-message encoding', (opts.microTimeMs * 3) / 1000 + 1);
    micro = await runMicro(opts.scenarios[0]?.payloadBytes ?? 100, opts.microTimeMs);
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
      scenarios: opts.scenarios,
      memoryConnections: opts.memory ? opts.memoryConnections : 0,
      autocannonDurationSec: opts.autocannon ? opts.autocannonDurationSec : 0,
      shortPollIntervalMs: opts.shortPollIntervalMs,
      maxPublisherLagMs: opts.maxPublisherLagMs,
      ...(opts.lossyEvery ? { lossyEvery: opts.lossyEvery } : {}),
    },
    method: METHOD,
    scenarios,
    memory,
    autocannon: cannon,
    micro,
    ...(sweep ? { sweep } : {}),
  };
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

function failedRun(err: Error): RunResult {
  return {
    outcome: { status: 'invalid', reason: `run failed: ${err.message}` },
    published: 0,
    delivered: 0,
    expected: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    gaps: 0,
    latencyMs: { p50: null, p90: null, p95: null, p99: null, max: null },
    publisherLagMs: { p99: NaN, max: NaN },
    wire: { bytesOutPerMsg: null, bytesInPerMsg: null, requestsPerMsg: null },
    cpuUsPerMsg: null,
    eventLoopDelayP99Ms: NaN,
    floor: null,
  };
}

async function runSweep(opts: BenchOptions, targets: Target[], servers: Servers, log: Progress): Promise<SweepResult[]> {
  const out: SweepResult[] = [];
  const base = opts.scenarios[0]!;
  const ratePerSec = opts.suite === 'custom' ? base.ratePerSec : SWEEP.ratePerSec;
  const durationSec = opts.suite === 'custom' ? base.durationSec : SWEEP.durationSec;
  for (const t of targets) {
    const steps: SweepResult['steps'] = [];
    let maxClients = 0;
    for (const clients of SWEEP.clientSteps) {
      log.step(`sweep ${t.server}/${t.transport}: ${clients} clients × ${ratePerSec} msg/s`, durationSec + 3);
      let r: RunResult;
      try {
        r = await runScenario(await servers.get(t), t, { clients, ratePerSec, payloadBytes: base.payloadBytes, durationSec, shortPollIntervalMs: opts.shortPollIntervalMs });
      } catch (err) {
        r = failedRun(err as Error);
      }
      // null = not measured (a failed run): the step is invalid, never a made-up latency.
      const p95 = r.latencyMs.p95 !== null && Number.isFinite(r.latencyMs.p95) ? r.latencyMs.p95 : null;
      const reasons: string[] = [];
      if (r.outcome.status === 'invalid') reasons.push(r.outcome.reason);
      if (p95 === null) reasons.push('p95 not measured');
      else if (p95 > SWEEP.p95LimitMs) reasons.push(`p95 ${p95.toFixed(0)} ms > ${SWEEP.p95LimitMs} ms`);
      steps.push({ clients, p95Ms: p95, lost: r.lost, status: reasons.length ? 'invalid' : 'ok', ...(reasons.length ? { reason: reasons.join('; ') } : {}) });
      if (reasons.length) break;
      maxClients = clients;
    }
    out.push({ server: t.server, transport: t.transport, ratePerSec, payloadBytes: base.payloadBytes, p95LimitMs: SWEEP.p95LimitMs, maxClients, steps });
  }
  return out;
}

export const METHOD: Record<string, string> = {
  servers: 'Each server runs in its own Node process (--expose-gc, no demo publisher); the load generator runs in the bench process on the same machine: all clients on the main thread, the publisher in a worker thread so client load cannot delay its schedule.',
  publishing: 'Open loop: message k is due at start + k/rate and carries that scheduled time; it is POSTed to /publish over keep-alive connections whatever happened to earlier messages. Scenarios with pace "lockstep" publish one message at a time instead, the next (never before its schedule) only once every client has it; a short-polling client then makes one poll that carries the message and one that comes back empty, so wire figures per message do not depend on timer phase.',
  latency: 'received − scheduled for every delivery, one clock (the bench process), HdrHistogram in µs; includes publish, fan-out and client parsing. Warm-up (≤1 s at the same rate) is not measured.',
  validity: `Every delivery is checked per client: lost (not announced by a gap), duplicated and out-of-order ids, client errors, failed publishes, and a publisher whose lag p99 exceeds the limit (params.maxPublisherLagMs, default ${PUBLISHER_LAG_LIMIT_MS} ms) make the scenario INVALID with the reason.`,
  wire: 'Server /stats deltas over the measured window divided by messages delivered: bytes read and written on the transport sockets (HTTP headers, chunked framing, WebSocket frame headers included) and HTTP requests.',
  cpu: 'Server process CPU time (user + system) over the measured window divided by messages delivered; includes accepting the publishes.',
  eventLoop: 'Server event-loop delay p99 (perf_hooks.monitorEventLoopDelay) over its most recent window.',
  memory: 'Idle memory: server heap and RSS after gc() with N idle clients connected, minus the same before they connected, divided by N; again after they all disconnect (must come back).',
  repeats: 'Each repeat runs every server once (lab, bare, socketio, lab, bare, …); figures are medians over repeats with min–max; counts are totals.',
  vsBare: 'Lab median ÷ bare median for the same scenario, measured in the same run.',
  autocannon: 'autocannon against GET /poll catch-up (10 retained messages of 100 B, answered at once) and POST /publish; bytes per request = response bytes / requests.',
  micro: 'tinybench over the server’s own encoders: one SSE event, one WebSocket frame (payload + ws framing), one 10-message poll body.',
};

if (import.meta.url === `file://${process.argv[1]}`) {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  const report = await runBench(opts);
  const files = await writeReports(report, opts.out);
  const invalid = report.scenarios.filter((s) => s.status === 'invalid').length + report.memory.filter((m) => m.status === 'invalid').length;
  console.log(`wrote ${files.json}, ${files.md}, ${files.html}${invalid ? ` — ${invalid} INVALID result(s), see the report` : ''}`);
  process.exit(invalid ? 1 : 0);
}
