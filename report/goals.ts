/**
 * The lab's overhead targets (issue 15), stated once: the report model renders them as the "Targets"
 * section of every report that measured them (so the README's table is a copy of results/latest.md),
 * and the CI gate shows the lab ÷ floor one next to the ratio it gates. Each row is computed from the
 * report's own medians, measured in that one run; a target whose figures are missing or INVALID is
 * "not measured", never met.
 */
import { ratioOfMedians } from './figures.js';
import { protocolOf, type Report, type ScenarioResult } from './types.js';

export const GOALS = Object.freeze({
  /** Lab ÷ floor CPU per message, every transport: within this of the least Node needs (issue 26). */
  floorCpuRatio: 1.15,
  /** Lab ÷ bare CPU per message, every transport. */
  bareCpuRatio: 1.1,
  /**
   * Lab ÷ each peer (Socket.IO, better-sse, @fastify/sse), CPU per message, wherever the peer serves the
   * transport: at most the peer's; idle heap per connection too (lab − peer ≤ 0 B). (It replaced "≤ 0.5 × Socket.IO", which
   * asked for less than the floor itself reaches: see the README's targets.)
   */
  peerRatio: 1,
  /** Lab ÷ bare over HTTP/2 + TLS, CPU per message: what the lab adds to Node's own http2. */
  h2BareCpuRatio: 1.15,
  /** Idle heap per connection at most bare's plus this many bytes, every transport that holds connections. */
  heapOverBareBytes: 1024,
  /** Latency p99 behind schedule at 100 clients × 2,000 msg/s, poll, SSE and WebSocket, publisher on schedule. */
  p99Ms: 20,
  /** The shape the latency target is stated for. */
  p99Shape: { clients: 100, ratePerSec: 2000 },
});

export interface GoalRow {
  goal: string;
  /** Scenario and transport, e.g. "100c-100r ws". */
  where: string;
  measured: number | null;
  /** How `measured` reads: a ratio, bytes or milliseconds. */
  unit: 'ratio' | 'bytes' | 'ms';
  limit: number;
  /** null: not measured (a side missing or INVALID). */
  met: boolean | null;
}

/** Loopback, cleartext HTTP/1.1, no proxy: the conditions the targets are stated for. */
const plain = (s: ScenarioResult): boolean => s.network.direct && protocolOf(s) === 'http/1.1' && s.proxy === undefined;
/** The peers a user would install instead, by the transports they serve. */
const PEERS: readonly { server: ScenarioResult['server']; name: string }[] = [
  { server: 'socketio', name: 'Socket.IO' },
  { server: 'better-sse', name: 'better-sse' },
  { server: 'fastify-sse', name: '@fastify/sse' },
];

const row = (goal: string, where: string, measured: number | null, unit: GoalRow['unit'], limit: number): GoalRow => ({
  goal,
  where,
  measured,
  unit,
  limit,
  met: measured === null ? null : measured <= limit,
});

/** Every target row the report has the figures for (none when it measured no lab row under the targets' conditions). */
export function goalRows(report: Report): GoalRow[] {
  const labs = report.scenarios.filter((s) => s.server === 'lab' && plain(s));
  const other = (lab: ScenarioResult, server: ScenarioResult['server']) =>
    report.scenarios.find(
      (s) => s.server === server && plain(s) && s.name === lab.name && s.transport === lab.transport,
    );
  const ok = (s: ScenarioResult | undefined): s is ScenarioResult => s?.status === 'ok';
  const rows: GoalRow[] = [];
  const where = (s: ScenarioResult) => `${s.name} ${s.transport}`;

  for (const lab of labs) {
    const floor = other(lab, 'floor');
    if (!floor) continue;
    rows.push(
      row(
        'CPU/msg lab ÷ floor',
        where(lab),
        ok(lab) && ok(floor) ? (lab.vsFloor?.cpuUsPerMsg ?? null) : null,
        'ratio',
        GOALS.floorCpuRatio,
      ),
    );
  }
  for (const lab of labs) {
    const bare = other(lab, 'bare');
    if (!bare) continue;
    rows.push(
      row(
        'CPU/msg lab ÷ bare',
        where(lab),
        ok(lab) && ok(bare) ? (lab.vsBare?.cpuUsPerMsg ?? null) : null,
        'ratio',
        GOALS.bareCpuRatio,
      ),
    );
  }
  for (const { server, name } of PEERS) {
    for (const lab of labs) {
      const peer = other(lab, server);
      if (!peer) continue;
      const ratio =
        ok(lab) && ok(peer) ? ratioOfMedians(lab.serverMetrics.cpuUsPerMsg, peer.serverMetrics.cpuUsPerMsg) : null;
      rows.push(row(`CPU/msg lab ÷ ${name}`, where(lab), ratio, 'ratio', GOALS.peerRatio));
    }
    for (const lab of report.memory.filter((m) => m.server === 'lab')) {
      const peer = report.memory.find(
        (m) => m.server === server && m.transport === lab.transport && m.connections === lab.connections,
      );
      if (!peer) continue;
      const l = lab.heapBytesPerConn.median;
      const p = peer.heapBytesPerConn.median;
      const over = lab.status === 'ok' && peer.status === 'ok' && l !== null && p !== null ? l - p : null;
      rows.push(row(`idle heap/conn lab − ${name}`, `${lab.connections} idle ${lab.transport}`, over, 'bytes', 0));
    }
  }
  // Over HTTP/2 + TLS on loopback: the lab against bare on the same protocol (Node's own http2).
  for (const lab of report.scenarios.filter(
    (s) => s.server === 'lab' && s.network.direct && protocolOf(s) === 'h2' && s.proxy === undefined,
  )) {
    const bare = report.scenarios.find(
      (s) =>
        s.server === 'bare' &&
        s.network.direct &&
        protocolOf(s) === 'h2' &&
        s.proxy === undefined &&
        s.name === lab.name &&
        s.transport === lab.transport,
    );
    if (!bare) continue;
    rows.push(
      row(
        'CPU/msg lab ÷ bare, HTTP/2',
        where(lab),
        ok(lab) && ok(bare) ? (lab.vsBare?.cpuUsPerMsg ?? null) : null,
        'ratio',
        GOALS.h2BareCpuRatio,
      ),
    );
  }
  for (const lab of report.memory.filter((m) => m.server === 'lab')) {
    const bare = report.memory.find(
      (m) => m.server === 'bare' && m.transport === lab.transport && m.connections === lab.connections,
    );
    if (!bare) continue;
    const l = lab.heapBytesPerConn.median;
    const b = bare.heapBytesPerConn.median;
    const over = lab.status === 'ok' && bare.status === 'ok' && l !== null && b !== null ? l - b : null;
    rows.push(
      row(
        'idle heap/conn lab − bare',
        `${lab.connections} idle ${lab.transport}`,
        over,
        'bytes',
        GOALS.heapOverBareBytes,
      ),
    );
  }
  const { clients, ratePerSec } = GOALS.p99Shape;
  for (const lab of labs.filter(
    (s) => s.clients === clients && s.ratePerSec === ratePerSec && s.transport !== 'short-poll',
  )) {
    // An INVALID run (lost messages, a publisher behind its schedule) measured nothing to meet a target with.
    rows.push(
      row('latency p99 behind schedule', where(lab), ok(lab) ? lab.latencyMs.p99.median : null, 'ms', GOALS.p99Ms),
    );
  }
  return rows;
}
