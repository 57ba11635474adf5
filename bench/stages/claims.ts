/**
 * `npm run bench -- --claims`: claims that articles and course notes teaching this topic make (quoted
 * from one such text), each held against what the claims suite (bench/plan/suite.ts) measured in this run.
 * A claim whose scenario is missing or invalid is "not measured", never guessed; the tutorial snippet's
 * scenario (server `shift`) is expected to lose messages — that is what it measures.
 */
import { fixed, fmtBytes, fmtMs } from '../../report/model.js';
import { CLAIM_SCENARIOS } from '../plan/suite.js';
import { protocolOf, type Claim, type Report, type ScenarioResult } from '../../report/types.js';

/** A claim and how to hold this run's scenarios against it. */
interface ClaimCheck {
  claim: string;
  /** `intervalMs(name)`: the short-polling interval scenario `name` ran with. */
  judge(find: Finder, intervalMs: (name: string) => number): Omit<Claim, 'claim'>;
}
type Finder = (
  name: string,
  server: string,
  transport: string,
  opts?: { network?: string; protocol?: string; anyStatus?: boolean },
) => ScenarioResult;

class NotMeasured extends Error {}

const med = (f: { median: number | null }, what: string): number => {
  if (f.median === null) throw new NotMeasured(`${what} was not measured`);
  return f.median;
};
const pct = (x: number): string => `${fixed(x * 100, x < 0.1 ? 1 : 0)} %`;

const CLAIMS: ClaimCheck[] = [
  {
    claim: '“1000 users polling every 2 seconds = 500 requests/second”',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
      const perSec = med(s.wire.requestsPerSec ?? { median: null }, 'requests per second');
      return {
        measured: `${fixed(perSec, 0)} requests/s`,
        how: `${s.clients} short-polling clients, one poll every 2 s each, ${s.ratePerSec} msg/s published; requests counted by the lab's /stats over the measured window (${s.durationSec} s of publishing and the drain after it, wall clock; median of ${s.repeats} repeats)`,
        verdict: Math.abs(perSec - 500) <= 50 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: '“Empty responses: ~490 (98%)”',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
      if (!s.polls || s.polls.answers === 0) throw new NotMeasured('no poll answers were counted');
      const empty = s.polls.empty / s.polls.answers;
      return {
        measured: `${pct(empty)} of ${s.polls.answers.toLocaleString('en-US')} answers were empty`,
        how: `the same run; each client counts the answers that carried no message (the drain after the last publish included). At ${s.ratePerSec} msg/s a poll every 2 s finds ~${fixed(s.ratePerSec * 2, 0)} messages waiting; 98 % empty needs a message only every ~100 s (one in 50 polls), i.e. a feed that is almost idle`,
        verdict: Math.abs(empty - 0.98) <= 0.05 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: '“Delay: 0-2 seconds” (polling every 2 s)',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
      const p50 = med(s.latencyMs.p50, 'latency p50');
      const max = med(s.latencyMs.max, 'latency max');
      return {
        measured: `latency p50 ${fmtMs(p50)} ms, max ${fmtMs(max)} ms`,
        how: 'received − scheduled for every delivery, the same run',
        verdict: max <= 2_250 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: '“Bandwidth: HIGH (constant requests)” for polling',
    judge(find) {
      const poll = find(CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
      const ws = find(CLAIM_SCENARIOS.ws1000, 'lab', 'ws');
      const bytes = (s: ScenarioResult) =>
        med(s.wire.bytesOutPerMsg, 'bytes out') + med(s.wire.bytesInPerMsg, 'bytes in');
      const ratio = bytes(poll) / bytes(ws);
      return {
        measured: `${fmtBytes(bytes(poll))} B per delivered message both ways, ${fixed(ratio, 2)}× WebSocket's ${fmtBytes(bytes(ws))} B`,
        how: `bytes on the sockets (headers included, browser header set) per delivered message, short polling every 2 s vs WebSocket, ${poll.clients} clients, ${poll.ratePerSec} msg/s: at this rate each answer carries ~20 messages, so the ~550 B request costs ~28 B per message`,
        verdict: ratio >= 2 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: '“~500 bytes of headers for every request!” (polling)',
    judge(find) {
      const h1 = find(CLAIM_SCENARIOS.shortPolls, 'lab', 'short-poll');
      const h2 = find(CLAIM_SCENARIOS.headersH2, 'lab', 'short-poll', { protocol: 'h2' });
      const b1 = med(h1.wire.bytesInPerRequest ?? { median: null }, 'bytes per request');
      const b2 = med(h2.wire.bytesInPerRequest ?? { median: null }, 'bytes per request over HTTP/2');
      return {
        measured: `HTTP/1.1: ${fmtBytes(b1)} B per request; HTTP/2 over TLS: ${fmtBytes(b2)} B`,
        how: 'client → server bytes per poll request with the header set Chromium sends (bench/clients/fixtures/chromium-headers.json), counted by the lab on its sockets; HTTP/2 sends repeated headers as HPACK table indexes',
        verdict: b1 >= 400 && b1 <= 700 ? (b2 < b1 / 3 ? 'holds only over HTTP/1.1' : 'holds') : 'wrong',
      };
    },
  },
  {
    claim: 'WebSocket: “[2 bytes header] + your message”',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.ws1000, 'lab', 'ws');
      if (!s.floor) throw new NotMeasured('the WebSocket frame overhead was not measured');
      const json = med(s.wire.bytesOutPerMsg, 'bytes out') - s.floor.overheadBytesPerMsg;
      return {
        measured: `${fmtBytes(s.floor.overheadBytesPerMsg)} B per message beyond the ${fmtBytes(json)}-B message JSON (server → client)`,
        how: `bytes written per delivered message minus the message JSON the client parsed, ${s.clients} clients. RFC 6455 §5.2: 2 B only for payloads under 126 B, 4 B up to 64 KiB, 10 B beyond; client → server frames add a 4-B mask`,
        verdict: s.floor.overheadBytesPerMsg <= 2.5 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: 'WebSocket: “Requests per second: 0”',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.ws1000, 'lab', 'ws');
      const perSec = med(s.wire.requestsPerSec ?? { median: null }, 'requests per second');
      return {
        measured: `${fixed(perSec, 2)} HTTP requests/s after the upgrades; ${fmtBytes(med(s.wire.bytesInPerMsg, 'bytes in'))} B client → server per message`,
        how: `the lab's /stats over the measured window, ${s.clients} connected clients (pings every 30 s, answered by pongs, are the only upstream traffic)`,
        verdict: perSec === 0 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: 'WebSocket: “Delay: 0ms (instant)”',
    judge(find) {
      const local = find(CLAIM_SCENARIOS.ws100, 'lab', 'ws');
      const far = find(CLAIM_SCENARIOS.ws100, 'lab', 'ws', { network: '4g' });
      const crowd = find(CLAIM_SCENARIOS.ws1000, 'lab', 'ws');
      const p50 = med(local.latencyMs.p50, 'latency p50');
      const farP50 = med(far.latencyMs.p50, 'latency p50 over 4g');
      const oneWay = far.network.rttMs / 2;
      return {
        measured: `loopback: p50 ${fmtMs(p50)} ms (the transport's own cost, ${local.clients} clients; ${fmtMs(med(crowd.latencyMs.p50, 'latency p50'))} ms with ${crowd.clients}); over 4g: p50 ${fmtMs(farP50)} ms, of which ${fmtMs(oneWay)} ms is the network's one-way delay`,
        how: 'received − scheduled; the 4g scenario runs through the network emulator (server/network/profiles.ts): no transport removes the network’s one-way delay',
        verdict: p50 < 5 && farP50 >= oneWay ? 'holds only on loopback' : p50 < 1 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: 'WebSocket: “Bandwidth: LOW (only actual messages)”',
    judge(find) {
      const s = find(CLAIM_SCENARIOS.ws1000, 'lab', 'ws');
      if (!s.floor) throw new NotMeasured('the WebSocket frame overhead was not measured');
      const out = med(s.wire.bytesOutPerMsg, 'bytes out');
      const json = out - s.floor.overheadBytesPerMsg;
      return {
        measured: `${fmtBytes(out)} B per message for a ${fmtBytes(json)}-B message JSON (${pct(s.floor.overheadBytesPerMsg / out)} overhead)`,
        how: `bytes on the sockets per delivered message, ${s.clients} clients`,
        verdict: s.floor.overheadBytesPerMsg / out < 0.05 ? 'holds' : 'wrong',
      };
    },
  },
  {
    claim: 'The polling snippet: poll every second with `setInterval`, answer with `messages.shift()`',
    judge(find, intervalMs) {
      const shift = find(CLAIM_SCENARIOS.shift, 'shift', 'short-poll', { anyStatus: true });
      const lab = find(CLAIM_SCENARIOS.shift, 'lab', 'short-poll');
      const share = shift.expected > 0 ? shift.delivered / shift.expected : 0;
      return {
        measured: `${shift.clients} clients: ${shift.delivered.toLocaleString('en-US')} of ${shift.expected.toLocaleString('en-US')} deliveries (${pct(share)}; ${shift.lost.toLocaleString('en-US')} lost) — each message reached one client; the lab's cursor poll, same load: ${lab.delivered.toLocaleString('en-US')} of ${lab.expected.toLocaleString('en-US')}`,
        how: `the snippet as a server (bench/servers/shift.ts: a queue, one \`shift()\` per poll) against ${shift.clients} short-polling clients every ${fixed(intervalMs(CLAIM_SCENARIOS.shift) / 1000, 1)} s at ${shift.ratePerSec} msg/s, every delivery audited per client`,
        verdict: share < 0.99 ? 'wrong' : 'holds',
      };
    },
  },
];

/** Every claim against `report` (a claims-suite run). */
export function evaluateClaims(report: Report): Claim[] {
  const find: Finder = (name, server, transport, opts = {}) => {
    const s = report.scenarios.find(
      (r) =>
        r.name === name &&
        r.server === server &&
        r.transport === transport &&
        r.network.name === (opts.network ?? 'loopback') &&
        protocolOf(r) === (opts.protocol ?? 'http/1.1'),
    );
    if (!s) throw new NotMeasured(`scenario ${name} ${server}/${transport} is not in the report`);
    if (s.status !== 'ok' && !opts.anyStatus)
      throw new NotMeasured(`scenario ${name} ${server}/${transport} is INVALID: ${s.reason}`);
    return s;
  };
  const intervalMs = (name: string) =>
    report.params.scenarios.find((s) => s.name === name)?.shortPollIntervalMs ?? report.params.shortPollIntervalMs;
  return CLAIMS.map(({ claim, judge }) => {
    try {
      return { claim, ...judge(find, intervalMs) };
    } catch (err) {
      if (!(err instanceof NotMeasured)) throw err;
      return { claim, measured: err.message, how: 'see the scenario', verdict: 'not measured' };
    }
  });
}
