/**
 * Figures the README and docs/ quote from the committed reports, never typed by hand: in the Markdown a
 * figure is written `<!--fig:KEY-->text<!--/fig-->`, and `npm run guide` rewrites `text` from the reports
 * with DOC_FIGURES[KEY]; test/docs-figures.test.ts fails when a text differs from what its report says, or
 * when a key is unknown. Each key reads one report (GUIDE_SOURCES) and formats as the reports do.
 */
import { goalRows } from './goals.js';
import type { GuideReports } from './guide.js';
import { fixed, fmtDuration, fmtMs, fmtPerMsg } from './model.js';
import type { FieldResult, Report, ScenarioResult, ServerName, TransportName } from './types.js';

/** What picks one scenario row: the lab's unless said, loopback cleartext HTTP/1.1 direct unless said. */
interface Pick {
  transport: TransportName;
  server?: string;
  name?: string;
  network?: string;
  protocol?: string;
  proxy?: boolean;
}

/** Lab ÷ floor, CPU per message (medians), in scenario `name` of `r`. */
function labOverFloor(r: Report, transport: TransportName, name: string): string {
  const cpu = (server: ServerName) => med(scenario(r, { transport, name, server }).serverMetrics.cpuUsPerMsg);
  return fixed(cpu('lab') / cpu('floor'), 2);
}

function scenario(r: Report, p: Pick): ScenarioResult {
  const hit = r.scenarios.find(
    (s) =>
      s.server === (p.server ?? 'lab') &&
      s.transport === p.transport &&
      (p.name === undefined || s.name === p.name) &&
      s.network.name === (p.network ?? 'loopback') &&
      (s.http?.protocol ?? 'http/1.1') === (p.protocol ?? 'http/1.1') &&
      Boolean(s.proxy) === Boolean(p.proxy),
  );
  if (!hit || hit.status !== 'ok') throw new Error(`no valid scenario row for ${JSON.stringify(p)}`);
  return hit;
}

const fieldRow = (r: Report, scenarioName: string, setting: FieldResult['setting']): FieldResult | undefined =>
  (r.field ?? []).find((f) => f.scenario === scenarioName && f.setting === setting);

/** A symptom of a valid field row; an INVALID row has no figures to quote. */
function symptom(r: Report, scenarioName: string, setting: FieldResult['setting'], name: string): number {
  const row = fieldRow(r, scenarioName, setting);
  if (row?.status === 'invalid') throw new Error(`${scenarioName} ${setting} is INVALID: it has no figures to quote`);
  const v = row?.symptoms[name];
  if (v === null || v === undefined) throw new Error(`no ${scenarioName} ${setting} "${name}" in the field report`);
  return v;
}

const med = (x: { median: number | null }): number => {
  if (x.median === null) throw new Error('a figure was not measured');
  return x.median;
};
const count = (x: number) => fixed(x, 0);
const p50 = (s: ScenarioResult) => fmtMs(med(s.latencyMs.p50));
const p99 = (s: ScenarioResult) => fmtMs(med(s.latencyMs.p99));
const cpu = (s: ScenarioResult) => fmtMs(med(s.serverMetrics.cpuUsPerMsg));
/** CPU per message rounded to whole µs, for prose. */
const cpuWhole = (s: ScenarioResult) => count(med(s.serverMetrics.cpuUsPerMsg));
const bytesOut = (s: ScenarioResult) => count(med(s.wire.bytesOutPerMsg));
/** Requests per message, as the reports print them (1.000, 0.0362). */
const perMsg = (s: ScenarioResult) => fmtPerMsg(med(s.wire.requestsPerMsg));
const upPerRequest = (s: ScenarioResult) => (s.wire.bytesInPerRequest ? count(med(s.wire.bytesInPerRequest)) : '—');
/** Max relay lateness p99 over a report's relayed scenarios. */
const relayP99Max = (r: Report) =>
  fmtMs(Math.max(...r.scenarios.flatMap((s) => (s.relayLatenessP99Ms ? [med(s.relayLatenessP99Ms)] : [0]))));
/** The lab's figure on the Redis feed minus on the memory feed, one transport (the feeds report). */
const redisMinusMemory = (r: Report, t: TransportName, f: (s: ScenarioResult) => number) =>
  f(scenario(r, { transport: t, server: 'lab-redis' })) - f(scenario(r, { transport: t }));

/** A reconnect-storm row in words, or what made it INVALID (then without figures). */
function stormPhrase(r: Report, setting: FieldResult['setting']): string {
  const row = fieldRow(r, 'reconnect-storm', setting);
  if (row?.status === 'invalid') return `INVALID in the committed run (${row.reason}), so no figures`;
  const s = (name: string) => symptom(r, 'reconnect-storm', setting, name);
  const back = row?.symptoms['time until every client is back and caught up ms'];
  return [
    `${count(s('clients not back'))} clients not back within 20 s${back == null ? '' : ` (the last back after ${fixed(back / 1000, 1)} s)`}`,
    `${count(s('lost'))} messages lost`,
    `a peak of ${count(s('peak new SSE+WS connections/s at the lab'))} new SSE and WebSocket connections per second at the lab`,
  ].join(', ');
}

/** A difference with its sign: +4.4, −1.2. */
const signed = (x: number) => `${x < 0 ? '−' : '+'}${fmtMs(Math.abs(x))}`;

type Key = (r: GuideReports) => string;

export const DOC_FIGURES: Readonly<Record<string, Key>> = Object.freeze({
  // docs/deployment.md — the field failures
  'storm.naive': (r) => stormPhrase(r.field, 'naive'),
  'storm.lab': (r) => stormPhrase(r.field, 'lab'),
  'deploy.naive.peak': (r) =>
    count(symptom(r.field, 'rolling-deploy', 'naive', 'peak reconnects/s at the surviving instance')),
  'deploy.lab.peak': (r) =>
    count(symptom(r.field, 'rolling-deploy', 'lab', 'peak reconnects/s at the surviving instance')),
  'deploy.fold': (r) =>
    fixed(
      symptom(r.field, 'rolling-deploy', 'naive', 'peak reconnects/s at the surviving instance') /
        symptom(r.field, 'rolling-deploy', 'lab', 'peak reconnects/s at the surviving instance'),
      1,
    ),
  // docs/bench.md — the default suite: how long it took, its targets and its p99 at 2,000 msg/s
  'suite.duration': (r) => fmtDuration((Date.parse(r.suite.finishedAt) - Date.parse(r.suite.startedAt)) / 1000),
  'targets.met': (r) => count(goalRows(r.suite).filter((g) => g.met === true).length),
  // The floor's CPU per message ÷ Socket.IO's, WebSocket, 100 clients × 100 msg/s: why "lab ≤ 0.5 × Socket.IO" was retired.
  'floor.ws.vsSocketio': (r) => {
    const at = { transport: 'ws' as const, name: '100c-100r' };
    const floor = med(scenario(r.suite, { ...at, server: 'floor' }).serverMetrics.cpuUsPerMsg);
    return fixed(floor / med(scenario(r.suite, { ...at, server: 'socketio' }).serverMetrics.cpuUsPerMsg), 2);
  },
  // Lab ÷ floor CPU per message, WebSocket, at 100 and 1,000 clients × 100 msg/s (docs/bench.md: the independent floor).
  'floor.ws.100.ratio': (r) => labOverFloor(r.suite, 'ws', '100c-100r'),
  'floor.ws.1000.ratio': (r) => labOverFloor(r.suite, 'ws', '1000c-100r'),
  'floor.poll.100.ratio': (r) => labOverFloor(r.suite, 'poll', '100c-100r'),
  'floor.sse.100.ratio': (r) => labOverFloor(r.suite, 'sse', '100c-100r'),
  'targets.total': (r) => count(goalRows(r.suite).length),
  'p99.2000.poll': (r) => p99(scenario(r.suite, { transport: 'poll', name: '100c-2000r' })),
  'p99.2000.bare.poll': (r) => p99(scenario(r.suite, { transport: 'poll', name: '100c-2000r', server: 'bare' })),
  'p99.2000.sse': (r) => p99(scenario(r.suite, { transport: 'sse', name: '100c-2000r' })),
  'p99.2000.ws': (r) => p99(scenario(r.suite, { transport: 'ws', name: '100c-2000r' })),
  // The floor's p99 at the same load: what the machine itself reaches there.
  'p99.2000.floor.poll': (r) => p99(scenario(r.suite, { transport: 'poll', name: '100c-2000r', server: 'floor' })),
  'p99.2000.floor.sse': (r) => p99(scenario(r.suite, { transport: 'sse', name: '100c-2000r', server: 'floor' })),
  'p99.2000.floor.ws': (r) => p99(scenario(r.suite, { transport: 'ws', name: '100c-2000r', server: 'floor' })),
  // docs/networks.md
  'networks.relayP99Max': (r) => relayP99Max(r.networks),
  'networks.poll.req.loopback': (r) => perMsg(scenario(r.networks, { transport: 'poll' })),
  'networks.poll.req.3g': (r) => perMsg(scenario(r.networks, { transport: 'poll', network: '3g' })),
  'networks.lossy.p99range': (r) => {
    const all = r.networks.scenarios
      .filter((s) => s.network.name === 'lossy-wifi' && s.status === 'ok' && s.transport !== 'short-poll')
      .map((s) => med(s.latencyMs.p99));
    return `${fmtMs(Math.min(...all))}–${fmtMs(Math.max(...all))}`;
  },
  // docs/tls-http2.md — the three protocols, the lab
  'protocols.poll.up.h1': (r) => upPerRequest(scenario(r.protocols, { transport: 'poll' })),
  'protocols.poll.up.tls': (r) => upPerRequest(scenario(r.protocols, { transport: 'poll', protocol: 'https/1.1' })),
  'protocols.poll.up.h2': (r) => upPerRequest(scenario(r.protocols, { transport: 'poll', protocol: 'h2' })),
  'protocols.poll.in.h1': (r) => count(med(scenario(r.protocols, { transport: 'poll' }).wire.bytesInPerMsg)),
  'protocols.poll.in.h2': (r) =>
    count(med(scenario(r.protocols, { transport: 'poll', protocol: 'h2' }).wire.bytesInPerMsg)),
  'protocols.poll.req.h1': (r) => perMsg(scenario(r.protocols, { transport: 'poll' })),
  'protocols.poll.req.h2': (r) => perMsg(scenario(r.protocols, { transport: 'poll', protocol: 'h2' })),
  'protocols.poll.cpu.h1': (r) => cpuWhole(scenario(r.protocols, { transport: 'poll' })),
  'protocols.poll.cpu.h2': (r) => cpuWhole(scenario(r.protocols, { transport: 'poll', protocol: 'h2' })),
  'protocols.bare.poll.cpu.h1': (r) => cpuWhole(scenario(r.protocols, { transport: 'poll', server: 'bare' })),
  'protocols.bare.poll.cpu.h2': (r) =>
    cpuWhole(scenario(r.protocols, { transport: 'poll', server: 'bare', protocol: 'h2' })),
  'protocols.sse.out.h1': (r) => bytesOut(scenario(r.protocols, { transport: 'sse' })),
  'protocols.sse.out.tls': (r) => bytesOut(scenario(r.protocols, { transport: 'sse', protocol: 'https/1.1' })),
  // docs/reliability.md — what the Redis feed costs (the feeds report)
  ...Object.fromEntries(
    (['poll', 'short-poll', 'sse', 'ws'] as const).flatMap((t) => [
      [
        `feeds.${t}.cpu`,
        (r: GuideReports) =>
          `${cpu(scenario(r.feeds, { transport: t }))} → ${cpu(scenario(r.feeds, { transport: t, server: 'lab-redis' }))}`,
      ],
      [
        `feeds.${t}.p50`,
        (r: GuideReports) =>
          `${p50(scenario(r.feeds, { transport: t }))} → ${p50(scenario(r.feeds, { transport: t, server: 'lab-redis' }))}`,
      ],
      [
        `feeds.${t}.p99`,
        (r: GuideReports) =>
          `${p99(scenario(r.feeds, { transport: t }))} → ${p99(scenario(r.feeds, { transport: t, server: 'lab-redis' }))}`,
      ],
      [
        `feeds.${t}.cpuDelta`,
        (r: GuideReports) => signed(redisMinusMemory(r.feeds, t, (s) => med(s.serverMetrics.cpuUsPerMsg))),
      ],
    ]),
  ),
});

const SPAN = /<!--fig:([\w.-]+)-->([\s\S]*?)<!--\/fig-->/g;

/** `markdown` with every figure span's text rewritten from the reports; an unknown key or a missing row throws. */
export function fillFigures(markdown: string, reports: GuideReports, file = 'the text'): string {
  return markdown.replace(SPAN, (_all, key: string) => {
    const f = DOC_FIGURES[key];
    if (!f) throw new Error(`${file}: unknown figure <!--fig:${key}--> (report/doc-figures.ts lists them)`);
    try {
      return `<!--fig:${key}-->${f(reports)}<!--/fig-->`;
    } catch (err) {
      throw new Error(`${file}: figure ${key}: ${(err as Error).message}`);
    }
  });
}

/** The keys a text uses, in order. */
export const figureKeys = (markdown: string): string[] => [...markdown.matchAll(SPAN)].map((m) => m[1]!);
