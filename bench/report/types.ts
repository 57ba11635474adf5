/**
 * The bench report, schema `transport-lab/bench@1`. Every figure is a median over repeats and keeps its
 * per-repeat values next to it. A run that failed or lost messages is data (`status: 'invalid'` with a
 * reason), never a fast number. The JSON schema in schema.ts pins this shape; the README documents it.
 */

export const REPORT_SCHEMA = 'transport-lab/bench@1';

/** `lab-redis`: the lab on the Redis feed, for comparing feeds in one run. */
export type ServerName = 'lab' | 'lab-redis' | 'bare' | 'socketio';
export type TransportName = 'poll' | 'short-poll' | 'sse' | 'ws';

/**
 * A figure measured once per repeat: the median, the spread, and every value. `null` means "not
 * measured" (a run that failed before it could measure; only ever in an invalid result): a missing
 * number is never replaced by a made-up one.
 */
export interface Figure {
  median: number | null;
  min: number | null;
  max: number | null;
  values: (number | null)[];
}

export interface Env {
  node: string;
  os: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  /** Extra context: load-generator process, feed, workers, command line. */
  loadGenerator: { pid: number; cpuUsPerSec?: number; threads: number };
  /** The `lab` server's feed and workers as asked on the command line (`--feed`, `--workers`); what served each scenario is in the scenario. */
  feed: FeedKind;
  workers: number;
  argv: string[];
}

export type ScenarioStatus = 'ok' | 'invalid';
export type FeedKind = 'memory' | 'redis';

export interface ScenarioResult {
  name: string;
  server: ServerName;
  transport: TransportName;
  clients: number;
  ratePerSec: number;
  payloadBytes: number;
  durationSec: number;
  /** The feed and worker processes that served this scenario (`lab-redis`: redis; the reference servers: their own in-process memory). */
  feed: FeedKind;
  workers: number;
  /** Present when messages were published in lockstep (one at a time, each delivered before the next); else open loop. */
  pace?: 'lockstep';
  repeats: number;
  status: ScenarioStatus;
  /** Why the scenario is invalid; absent when ok. */
  reason?: string;
  /** Totals over all repeats. */
  published: number;
  delivered: number;
  /** published × clients. */
  expected: number;
  lost: number;
  duplicated: number;
  reordered: number;
  gaps: number;
  /** received − scheduled, milliseconds (coordinated omission corrected by construction). */
  latencyMs: { p50: Figure; p90: Figure; p99: Figure; max: Figure };
  /** How late the publisher sent relative to its schedule, milliseconds. */
  publisherLagMs: { p99: Figure; max: Figure };
  wire: { bytesOutPerMsg: Figure; bytesInPerMsg: Figure; requestsPerMsg: Figure };
  /**
   * The sketch names both the server and these figures `server`; JSON cannot hold both, so the
   * figures live here (documented in the README as a deliberate deviation).
   */
  serverMetrics: {
    cpuUsPerMsg: Figure;
    heapBytesPerConn?: Figure;
    rssBytesPerConn?: Figure;
    eventLoopDelayP99Ms: Figure;
  };
  /** Lab figure divided by the bare server's for the same transport and parameters (medians). */
  vsBare?: { cpuUsPerMsg: number; bytesOutPerMsg: number; latencyP99: number };
  /** Protocol floor (lab only): bytes per message beyond the payload, and what the protocol needs at least. */
  floor?: { overheadBytesPerMsg: number; floorBytesPerMsg: number; excessBytesPerMsg: number };
}

export interface MemoryResult {
  server: ServerName;
  transport: TransportName;
  connections: number;
  status: ScenarioStatus;
  reason?: string;
  heapBytesPerConn: Figure;
  rssBytesPerConn: Figure;
  /** Heap after every client disconnected and GC ran, minus the heap before they connected. */
  heapRetainedAfterCloseBytes: Figure;
}

export interface AutocannonResult {
  name: string;
  server: ServerName;
  method: 'GET' | 'POST';
  path: string;
  connections: number;
  durationSec: number;
  status: ScenarioStatus;
  reason?: string;
  requestsPerSec: Figure;
  latencyMs: { p50: Figure; p99: Figure };
  bytesPerRequest: Figure;
  errors: number;
  non2xx: number;
}

export interface MicroResult {
  name: string;
  transport: TransportName;
  /** Operations per second (tinybench throughput mean). */
  opsPerSec: number;
  /** Mean time per operation, nanoseconds. */
  meanNs: number;
  p99Ns: number;
  /** Relative margin of error, percent. */
  rme: number;
  samples: number;
}

export interface SweepResult {
  server: ServerName;
  transport: TransportName;
  ratePerSec: number;
  payloadBytes: number;
  /** The rule: p95 delivery latency vs schedule ≤ 250 ms and no loss. */
  p95LimitMs: number;
  /** The last client count that passed (0 if none did). */
  maxClients: number;
  /** `p95Ms` is null when the step failed before it could measure (then the step is invalid). */
  steps: { clients: number; p95Ms: number | null; lost: number; status: ScenarioStatus; reason?: string }[];
}

export interface Report {
  schema: typeof REPORT_SCHEMA;
  startedAt: string;
  finishedAt: string;
  git: string;
  env: Env;
  /** The parameters the run was started with. */
  params: Record<string, unknown>;
  /** How each figure is measured, in words. */
  method: Record<string, string>;
  scenarios: ScenarioResult[];
  memory: MemoryResult[];
  autocannon: AutocannonResult[];
  micro: MicroResult[];
  sweep?: SweepResult[];
}
