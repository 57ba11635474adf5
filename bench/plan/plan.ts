/**
 * The plan of a bench run: what the flags (bench/cli/options.ts) resolved to — targets, scenarios over
 * their networks and protocols, repeats, which targets each stage measures — and how long each step
 * should take. Stages read it; nothing here starts a process.
 */
import { type NetworkProfile, PROFILES } from '../../server/network/profiles.js';
import { TRANSPORT_NAMES, type HeaderMode, type ServerName, type TransportName } from '../../report/types.js';
import { HTTP_PROTOCOLS, type HttpProtocol } from './http-setup.js';
import { type InstructionPlan, type ScenarioSpec, SWEEP } from './suite.js';
import { compressed, fromOtherOrigin, target, type LabSetup, type Target } from './targets.js';
import { COMPRESSIONS } from '../../report/types.js';

export const TRANSPORTS: readonly TransportName[] = TRANSPORT_NAMES;

export interface BenchOptions {
  transports: TransportName[];
  servers: ServerName[];
  scenarios: ScenarioSpec[];
  repeats: number;
  out: string;
  memoryConnections: number;
  /** Measured passes per memory target (median). */
  memoryRepeats: number;
  memory: boolean;
  /**
   * Memory also for the lab compressing (each compression setting, SSE and WebSocket), each target idle
   * and after one message to every client (compressors allocate on first use): --compare-compression.
   */
  memoryCompression?: boolean;
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
  /**
   * Every network a scenario runs over, in order; each of `scenarios` names one (`network`). Non-direct
   * ones put the relay (relay.ts) between the clients and the server.
   */
  networks: NetworkProfile[];
  /** `--profile`: each server process runs under V8's CPU profiler; its profile lands next to the report. */
  profile?: boolean;
  /** `--claims`: the claims suite; the report gets its claims and is written as `claims.*`. */
  claims?: boolean;
  /** `--field`: the field-failure scenarios to run (bench/stages/field.ts); the report is written as `field.*`. */
  field?: readonly string[];
  /** The clients' request headers (`--headers`) and cookie size (`--cookie-bytes`), on every scenario. */
  headers: HeaderMode;
  cookieBytes: number;
  /** Test hook, no flag: the relays forward without delay, so the sanity check must call every run over them INVALID. */
  brokenRelay?: boolean;
  /** The gate only: instructions per delivered message under callgrind (bench/stages/instructions.ts). */
  instructions?: InstructionPlan;
  /** Which servers' idle memory is measured (the gate: the lab's only, the one it gates). @default every server of the lab's endpoints */
  memoryServers?: readonly ServerName[];
}

/** Every protocol a scenario of the run speaks, in HTTP_PROTOCOLS order. */
export const protocolsOf = (opts: Pick<BenchOptions, 'scenarios'>): HttpProtocol[] =>
  HTTP_PROTOCOLS.filter((p) => opts.scenarios.some((s) => (s.protocol ?? 'http/1.1') === p));

/** The protocol a scenario runs over. */
export const protocolOfSpec = (spec: ScenarioSpec): HttpProtocol => spec.protocol ?? 'http/1.1';

/** The profile a scenario runs over (one of `opts.networks`). */
export function networkOf(spec: ScenarioSpec, opts: Pick<BenchOptions, 'networks'>): NetworkProfile {
  const name = spec.network ?? PROFILES.loopback.name;
  const p = opts.networks.find((n) => n.name === name);
  if (!p)
    throw new Error(
      `scenario ${spec.name}: network "${name}" is not one of this run's (${opts.networks.map((n) => n.name).join(', ')})`,
    );
  return p;
}

/** A scenario's targets: the run's over its protocol, or those of its own `servers`. */
export const targetsFor = (
  spec: ScenarioSpec,
  opts: Pick<BenchOptions, 'transports' | 'servers' | 'lab' | 'scenarios'>,
): Target[] =>
  targetsOf(opts)
    .filter(
      (t) =>
        t.protocol === protocolOfSpec(spec) &&
        // Socket.IO's paths are not in the shipped nginx config (its WebSocket needs /socket.io/ upgrades).
        (spec.proxy === undefined || t.server !== 'socketio') &&
        (spec.servers === undefined || spec.servers.includes(t.server)) &&
        (spec.transports === undefined || spec.transports.includes(t.transport)),
    )
    // A compressed or cross-origin scenario runs on the lab only (the others have no such setting).
    .flatMap((t) => compressed(t, spec.compression) ?? [])
    .flatMap((t) => (spec.crossOrigin ? (fromOtherOrigin(t) ?? []) : [t]));

/** A scenario's own repeats (fixed by its suite) or the run's. */
export const repeatsOf = (spec: ScenarioSpec, opts: Pick<BenchOptions, 'repeats'>): number =>
  spec.repeats ?? opts.repeats;

/**
 * Every (server, transport, protocol) asked for that exists (Socket.IO has no SSE or short polling,
 * and runs cleartext only); the protocols are those of the run's scenarios (cleartext HTTP/1.1 when none).
 */
export const targetsOf = (opts: Pick<BenchOptions, 'transports' | 'servers' | 'lab' | 'scenarios'>): Target[] => {
  const protocols = protocolsOf(opts);
  return (protocols.length > 0 ? protocols : (['http/1.1'] as HttpProtocol[])).flatMap((p) =>
    opts.transports.flatMap((tr) =>
      opts.servers.map((s) => target(s, tr, opts.lab, p)).filter((t): t is Target => t !== undefined),
    ),
  );
};

/** Whether the run has cleartext HTTP/1.1 scenarios: memory and autocannon are measured over it only. */
/** Whether the run has cleartext HTTP/1.1 targets (no scenarios: targetsOf's default, cleartext). */
const cleartext = (opts: BenchOptions): boolean => {
  const protocols = protocolsOf(opts);
  return protocols.length === 0 || protocols.includes('http/1.1');
};

/**
 * Where idle memory per connection is measured: the lab, bare and the peers a user would install instead
 * (their transports that hold connections). Not the floor: its point is CPU.
 */
const MEMORY_SERVERS: readonly ServerName[] = ['lab', 'lab-redis', 'bare', 'socketio', 'better-sse', 'fastify-sse'];

/** Idle memory is measured where idle clients hold connections, on the lab, bare and the peers, over cleartext HTTP/1.1. */
export const memoryTargets = (opts: BenchOptions): Target[] => {
  const plain =
    opts.memory && cleartext(opts)
      ? targetsOf(opts).filter(
          (t) =>
            t.holdsConnections &&
            (opts.memoryServers ?? MEMORY_SERVERS).includes(t.server) &&
            t.protocol === 'http/1.1',
        )
      : [];
  if (!opts.memoryCompression) return plain;
  // Each compression setting too, on the transports that keep a compressor per connection (SSE, WebSocket).
  const kept = plain.filter((t) => t.transport === 'sse' || t.transport === 'ws');
  return [...plain, ...COMPRESSIONS.flatMap((c) => kept.flatMap((t) => compressed(t, c) ?? []))];
};

/** The servers of all the lab's endpoints (/publish, /poll, /stats…): the lab and bare. */
const LAB_ENDPOINTS: readonly ServerName[] = ['lab', 'lab-redis', 'bare'];

/** autocannon speaks the lab's HTTP endpoints (cleartext, /poll among them). */
export const cannonServers = (opts: BenchOptions): ServerName[] =>
  opts.autocannon && cleartext(opts) ? opts.servers.filter((s) => LAB_ENDPOINTS.includes(s)) : [];

/** The load of every sweep step: SWEEP's, unless a custom scenario (--rate, --duration …) sets it. */
export function sweepLoad(opts: Pick<BenchOptions, 'suite' | 'scenarios'>): {
  ratePerSec: number;
  durationSec: number;
  payloadBytes: number;
} {
  const base = opts.scenarios[0]!;
  const custom = opts.suite === 'custom';
  return {
    ratePerSec: custom ? base.ratePerSec : SWEEP.ratePerSec,
    durationSec: custom ? base.durationSec : SWEEP.durationSec,
    payloadBytes: base.payloadBytes,
  };
}

/**
 * Seconds one step should take; the plan below and the progress line use the same figures. Calibrated
 * on the 2-core machine of the README: the default suite's steps as measured (December 2026), each
 * estimate at or above what it took (1,000 clients connected in under a second, an idle-memory step
 * at 1,000 connections took 0.5–1 s): the suite as it stands took 262 s against an estimate of 293 s.
 */
export const STEP_SEC = {
  /**
   * One scenario run: warm-up, measured window, drain, connecting the clients; over a relay, four round
   * trips more (each connection's handshake and first request, the last delivery of warm-up and window).
   */
  run: (spec: ScenarioSpec, transport: TransportName, network?: NetworkProfile): number =>
    spec.durationSec +
    Math.min(1, spec.durationSec / 5) +
    1 +
    spec.clients / 1000 +
    (transport === 'short-poll' ? 1.5 : 0) +
    (network && !network.direct ? (4 * network.rttMs) / 1000 : 0),
  /** Forking the relay process. */
  relay: 1,
  memory: (connections: number): number => 1 + connections / 1000,
  /** One autocannon request kind on one server. */
  cannon: (durationSec: number): number => durationSec + 1,
  /** All three encoders. */
  micro: (timeMs: number): number => (timeMs * 3) / 1000 + 1,
  /** One client count of the sweep. */
  sweep: (durationSec: number): number => durationSec + 3,
};
