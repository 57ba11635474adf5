/**
 * The answer each scenario of a report gives: which transport, by one stated rule (PICK_RULE), with the
 * figures that decide it. The guide (guide.ts) applies the rule across the committed reports; the terminal
 * summary (terminal.ts) shows each scenario's answer at the end of a run.
 */
import type { ScenarioResult, ServerName, TransportName } from './types.js';

/** Within this ratio of the best p99, latency does not decide: bytes on the wire do, then CPU. */
export const P99_TIE_RATIO = 1.1;
export const PICK_RULE =
  'Among the lab’s transports with nothing lost: the lowest delivery p99; when the next is within 10 % of it, the fewer bytes per message (then the less CPU per message). A transport that failed the condition is never picked.';

export const TRANSPORT_LABELS: Readonly<Record<TransportName, string>> = Object.freeze({
  poll: 'long polling',
  'short-poll': 'short polling',
  sse: 'SSE',
  ws: 'WebSocket',
});

const med = (f: { median: number | null }): number => f.median ?? Number.NaN;
const p99 = (s: ScenarioResult) => med(s.latencyMs.p99);
const bytes = (s: ScenarioResult) => med(s.wire.bytesOutPerMsg);
const cpu = (s: ScenarioResult) => med(s.serverMetrics.cpuUsPerMsg);

/** Valid rows with nothing lost, in PICK_RULE's order (best first); the others are left out. */
export function ranked(rows: readonly ScenarioResult[]): ScenarioResult[] {
  const left = rows.filter((s) => s.status === 'ok' && s.lost === 0 && Number.isFinite(p99(s)));
  const out: ScenarioResult[] = [];
  while (left.length) {
    const best = Math.min(...left.map(p99));
    const close = left.filter((s) => p99(s) <= best * P99_TIE_RATIO);
    close.sort((a, b) => bytes(a) - bytes(b) || cpu(a) - cpu(b));
    const next = close[0]!;
    out.push(next);
    left.splice(left.indexOf(next), 1);
  }
  return out;
}

/** One scenario's answer: its rows of one server (the lab when it ran), best first, then the invalid ones. */
export interface ScenarioAnswer {
  /** "100 clients × 100 msg/s × 100 B · loopback" (network, protocol, proxy and the other settings when not the plain case). */
  condition: string;
  server: ServerName;
  /** The pick rule's order; rows it leaves out (invalid, lossy) follow. */
  rows: ScenarioResult[];
  pick: ScenarioResult | undefined;
}

const count = (x: number) => new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 }).format(x);
/** How a compressed scenario's condition names its compression. */
const COMPRESSED: Readonly<Record<NonNullable<ScenarioResult['compression']>, string>> = Object.freeze({
  on: 'permessage-deflate and gzip',
  'no-context-takeover': 'permessage-deflate without context takeover, and gzip',
});
/** What sets a scenario apart from another of the same shape: every setting that is not the plain case. */
const conditionOf = (s: ScenarioResult): string =>
  [
    `${count(s.clients)} clients × ${count(s.ratePerSec)} msg/s${s.workload === 'chat' ? ' each' : ''} × ${s.payload ? `${s.payload} messages` : `${count(s.payloadBytes)} B`}`,
    s.network.name,
    ...(s.http && s.http.protocol !== 'http/1.1' ? [s.http.protocol === 'h2' ? 'HTTP/2 + TLS' : 'HTTP/1.1 + TLS'] : []),
    ...(s.proxy ? [`via ${s.proxy}`] : []),
    ...(s.compression ? [COMPRESSED[s.compression]] : []),
    ...(s.crossOrigin ? ['pages on another origin'] : []),
    ...(s.batchMs ? [`sends batched within ${count(s.batchMs)} ms`] : []),
    ...(s.floodPerSec ? [`one more client flooding at ${count(s.floodPerSec)} msg/s`] : []),
  ].join(' · ');

/** Each scenario (same name, shape, network, protocol and proxy) of a report, in the order it ran. */
export function scenarioAnswers(scenarios: readonly ScenarioResult[]): ScenarioAnswer[] {
  const groups = new Map<string, ScenarioResult[]>();
  for (const s of scenarios) {
    const key = `${s.name}|${conditionOf(s)}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups.values()].map((rows) => {
    const server: ServerName = rows.some((s) => s.server === 'lab') ? 'lab' : rows[0]!.server;
    const mine = rows.filter((s) => s.server === server);
    const order = ranked(mine);
    return {
      condition: conditionOf(rows[0]!),
      server,
      rows: [...order, ...mine.filter((s) => !order.includes(s))],
      pick: order[0],
    };
  });
}
