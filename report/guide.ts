/**
 * The decision guide (results/guide.{md,html}, and its table in the README): for each condition people
 * deploy into, the transport to pick, the runner-up and the measured figures that decide it, each linked
 * to the report row it comes from. Built from the committed reports only (GUIDE_SOURCES), never from a
 * typed figure: a condition whose report lacks the rows says "not measured", and the pick is made by one
 * stated rule (PICK_RULE), not by judgement.
 */
import { chatRowId, fixed, fmtBytes, fmtMs, memoryRowId, reportModel, scenarioId } from './model.js';
import { P99_TIE_RATIO, PICK_RULE, ranked, TRANSPORT_LABELS } from './answers.js';
import { gitShort } from './write.js';
import {
  type FieldResult,
  type MemoryResult,
  protocolOf,
  type Report,
  type ScenarioResult,
  type TransportName,
} from './types.js';

/**
 * Every committed report the guide and the docs' figures (doc-figures.ts) read, by role: its path under
 * results/ without the extension.
 */
export const GUIDE_SOURCES = Object.freeze({
  suite: 'latest',
  networks: 'networks/latest',
  networksSlow: 'networks-1msg/latest',
  protocols: 'protocols/latest',
  proxy: 'proxy/latest',
  feeds: 'feeds/latest',
  claims: 'claims',
  field: 'field',
  chat: 'chat/latest',
  compression: 'compression/latest',
} as const);
export type GuideSource = keyof typeof GUIDE_SOURCES;
export type GuideReports = Readonly<Record<GuideSource, Report>>;

/** A piece of text, linked when it is a figure: `href` is relative to results/ (the guide's folder). */
export interface Span {
  text: string;
  href?: string;
}

export interface GuideRow {
  condition: string;
  /** null: the reports do not decide it (said in `figures`). */
  pick: TransportName | null;
  runnerUp: TransportName | null;
  /** Why, in one short line: the figure of the pick against the runner-up's. */
  why: Span[];
  /** The figures that decide it, each linked to its row. */
  figures: Span[];
}

export interface GuideAnswer {
  question: string;
  answer: Span[];
}

export interface GuideSourceFact {
  name: string;
  href: string;
  git: string;
  machine: string;
  startedAt: string;
}

export interface Guide {
  title: string;
  rule: string;
  rows: GuideRow[];
  answers: GuideAnswer[];
  notMeasured: string[];
  sources: GuideSourceFact[];
}

// ---- Finding rows and their anchors ------------------------------------------------------------------

/** The anchor of each row id in a report's renderings (reportModel's numbering), first occurrence. */
function anchorsOf(report: Report): Map<string, string> {
  const out = new Map<string, string>();
  for (const row of reportModel(report).sections.flatMap((s) => s.groups.flatMap((g) => g.table.rows)))
    if (row.anchor && !out.has(row.id)) out.set(row.id, row.anchor);
  return out;
}

class Source {
  private anchors: Map<string, string> | undefined;
  constructor(
    readonly role: GuideSource,
    readonly report: Report,
  ) {}
  get file(): string {
    return `${GUIDE_SOURCES[this.role]}.md`;
  }
  /** A link to the row with `id` (reportModel's row ids), or to the report when the row has no anchor. */
  href(id: string): string {
    this.anchors ??= anchorsOf(this.report);
    const a = this.anchors.get(id);
    return a ? `${this.file}#${a}` : this.file;
  }
}

const isLab = (s: ScenarioResult) => s.server === 'lab';
const fieldRowId = (f: FieldResult) => `field ${f.scenario} ${f.setting} ${f.transport}`;

const med = (f: { median: number | null }): number => f.median ?? Number.NaN;
const p99 = (s: ScenarioResult) => med(s.latencyMs.p99);
const p50 = (s: ScenarioResult) => med(s.latencyMs.p50);
const bytes = (s: ScenarioResult) => med(s.wire.bytesOutPerMsg);
const cpu = (s: ScenarioResult) => med(s.serverMetrics.cpuUsPerMsg);

// ---- Conditions ----------------------------------------------------------------------------------------

const label = (t: TransportName) => TRANSPORT_LABELS[t];
const ms = (x: number) => `${fmtMs(x)} ms`;
const count = (x: number) => fixed(x, 0);

/** "SSE p50/p99 88.6/97.0 ms, 110.2 B/msg, 9.1 µs/msg" linked to its row. */
function scenarioSpan(src: Source, s: ScenarioResult): Span {
  return {
    text: `${label(s.transport)} ${fmtMs(p50(s))}/${fmtMs(p99(s))} ms, ${fmtBytes(bytes(s))} B/msg, ${fmtMs(cpu(s))} µs/msg`,
    href: src.href(scenarioId(s)),
  };
}

/** What set the pick above the runner-up, in PICK_RULE's terms; `rowId` names the rows' ids in their report. */
function whyScenario(src: Source, a: ScenarioResult, b: ScenarioResult | undefined, rowId = scenarioId): Span[] {
  if (!b) return [{ text: `the only one measured: p99 ${ms(p99(a))}`, href: src.href(rowId(a)) }];
  const link = (text: string): Span[] => [{ text, href: src.href(rowId(a)) }];
  if (p99(b) > p99(a) * P99_TIE_RATIO) return link(`p99 ${ms(p99(a))} vs ${ms(p99(b))}`);
  if (bytes(a) !== bytes(b))
    return link(
      `p99 within 10 % (${fmtMs(p99(a))} vs ${ms(p99(b))}); ${fmtBytes(bytes(a))} vs ${fmtBytes(bytes(b))} B/msg`,
    );
  return link(`p99 within 10 %, same bytes; ${fmtMs(cpu(a))} vs ${fmtMs(cpu(b))} µs/msg CPU`);
}

/** How a condition's rows are shown and linked: the usual scenario rows, or the chat's ("Both directions"). */
interface RowView {
  rowId: (s: ScenarioResult) => string;
  span: (src: Source, s: ScenarioResult) => Span;
}
const SCENARIO_VIEW: RowView = { rowId: scenarioId, span: scenarioSpan };

/** A condition decided by one group of the lab's scenario rows. */
function scenarioRow(
  condition: string,
  src: Source,
  rows: readonly ScenarioResult[],
  extra: Span[] = [],
  view = SCENARIO_VIEW,
): GuideRow {
  const order = ranked(rows.filter(isLab));
  if (order.length === 0) return notMeasured(condition, `${src.file} has no valid lab rows for it`);
  const [a, b] = order as [ScenarioResult, ScenarioResult | undefined];
  const longPoll = order.find((s) => s.transport === 'poll');
  const shown = [a, ...(b ? [b] : []), ...(longPoll && longPoll !== a && longPoll !== b ? [longPoll] : [])];
  // A transport whose row is INVALID (or lost messages) is not ranked: said, never silently dropped.
  const unranked = rows.filter((s) => isLab(s) && !order.includes(s));
  const notRanked = (s: ScenarioResult): Span => ({
    text: `${label(s.transport)}: ${s.status === 'invalid' ? 'INVALID in this run' : `${count(s.lost)} lost`}, not ranked`,
    href: src.href(view.rowId(s)),
  });
  return {
    condition,
    pick: a.transport,
    runnerUp: b?.transport ?? null,
    why: [...whyScenario(src, a, b, view.rowId), ...unranked.flatMap((s) => [{ text: '; ' }, notRanked(s)])],
    figures: [...shown.map((s) => view.span(src, s)), ...unranked.map(notRanked), ...extra],
  };
}

function notMeasured(condition: string, why: string): GuideRow {
  return { condition, pick: null, runnerUp: null, why: [{ text: `not measured: ${why}` }], figures: [] };
}

const scenarios = (r: Report, pick: (s: ScenarioResult) => boolean) => r.scenarios.filter(pick);
const describeNet = (s: ScenarioResult | undefined) =>
  s === undefined || s.network.direct
    ? 'loopback'
    : `${s.network.name} (${fmtMs(s.network.rttMs)} ms RTT${s.network.loss ? `, ${fixed(s.network.loss * 100, 1)} % loss` : ''})`;

/** Each network of a networks report, one row per network (loopback left out: it is the rate rows' case). */
function networkRows(src: Source, what: (net: string) => string): GuideRow[] {
  const nets = [...new Set(src.report.scenarios.filter((s) => !s.network.direct).map((s) => s.network.name))];
  return nets.map((net) => {
    const rows = scenarios(src.report, (s) => s.network.name === net);
    return scenarioRow(`${what(describeNet(rows[0]))}`, src, rows);
  });
}

const shape = (s: ScenarioResult) => `${count(s.clients)} clients × ${count(s.ratePerSec)} msg/s`;

function memorySpans(src: Source, memory: readonly MemoryResult[]): Span[] {
  return memory
    .filter((m) => m.server === 'lab' && m.status === 'ok' && m.heapBytesPerConn.median !== null)
    .map((m) => ({
      text: `${label(m.transport)} ${fixed(m.heapBytesPerConn.median! / 1024, 1)} KiB heap/connection`,
      href: src.href(`memory ${m.server}/${m.transport} × ${count(m.connections)}`),
    }));
}

const field = (src: Source, scenario: string) => (src.report.field ?? []).filter((f) => f.scenario === scenario);
/** A symptom of a valid field row; an INVALID row has no figures (null). */
const sym = (f: FieldResult | undefined, name: string): number | null =>
  f?.status === 'ok' ? (f.symptoms[name] ?? null) : null;
const fieldSpan = (src: Source, f: FieldResult, text: string): Span => ({ text, href: src.href(fieldRowId(f)) });

/**
 * A condition a field scenario decides by what works (its naive rows: the failure's setting) and a scenario
 * ranking decides among what works: `perf` are the lab's rows of the closest measured condition.
 */
function filteredRow(
  condition: string,
  fieldSrc: Source,
  scenarioName: string,
  perfSrc: Source,
  perf: readonly ScenarioResult[],
  describe: (f: FieldResult) => string,
): GuideRow {
  const rows = field(fieldSrc, scenarioName).filter((f) => f.setting === 'naive' && f.status === 'ok');
  if (rows.length === 0) return notMeasured(condition, `no valid ${scenarioName} rows in field.md`);
  const works = new Set(rows.filter((f) => f.verdict === 'works').map((f) => f.transport));
  const order = ranked(perf.filter((s) => isLab(s) && works.has(s.transport)));
  const failing = rows.filter((f) => f.verdict === 'fails');
  const [a, b] = order as [ScenarioResult | undefined, ScenarioResult | undefined];
  return {
    condition,
    pick: a?.transport ?? null,
    runnerUp: b?.transport ?? null,
    why: [
      ...failing.flatMap((f, i) => [...(i ? [t('; ')] : []), fieldSpan(fieldSrc, f, describe(f))]),
      ...(a ? [t(failing.length ? '; then ' : ''), ...whyScenario(perfSrc, a, b)] : []),
    ],
    figures: [
      ...rows.map((f) => fieldSpan(fieldSrc, f, describe(f))),
      ...[a, b].flatMap((s) => (s ? [scenarioSpan(perfSrc, s)] : [])),
    ],
  };
}

function tabsRow(fieldSrc: Source, perfSrc: Source, perf: readonly ScenarioResult[]): GuideRow {
  return filteredRow(
    'Many tabs of one app in one browser on HTTP/1.1 (6 connections per origin)',
    fieldSrc,
    'many-tabs',
    perfSrc,
    perf,
    (f) =>
      `${label(f.transport as TransportName)}: ${count(sym(f, 'tabs stalled') ?? 0)} of ${count(sym(f, 'tabs') ?? 0)} tabs stalled`,
  );
}

function upgradeRow(fieldSrc: Source, perfSrc: Source, perf: readonly ScenarioResult[]): GuideRow {
  return filteredRow(
    'Behind a proxy that strips the Upgrade header',
    fieldSrc,
    'upgrade-stripped',
    perfSrc,
    perf,
    (f) => {
      if (f.transport !== 'ws') return `${label(f.transport as TransportName)}: ${count(sym(f, 'lost') ?? 0)} lost`;
      const learned = sym(f, 'time until the client knows ms (median)');
      return f.verdict === 'fails'
        ? `WebSocket refused (HTTP ${sym(f, 'refusal HTTP status') ?? '?'})${learned === null ? '' : ` within ${ms(learned)}`}`
        : 'WebSocket opened';
    },
  );
}

function stormRow(src: Source): GuideRow {
  const condition = 'Reconnect storm after a deploy (2,000 clients, lab restarted behind nginx)';
  const [naive, lab] = ['naive', 'lab'].map((s) => field(src, 'reconnect-storm').find((f) => f.setting === s));
  if (!naive || !lab) return notMeasured(condition, 'no reconnect-storm rows in field.md');
  const back = sym(lab, 'time until every client is back and caught up ms');
  return {
    condition,
    pick: null,
    runnerUp: null,
    why: [{ text: 'not measured per transport: the retry setting decides, not the transport' }],
    figures: [
      fieldSpan(
        src,
        naive,
        naive.status === 'invalid'
          ? 'fixed retries: INVALID in this run'
          : `fixed retries: ${count(sym(naive, 'clients not back') ?? 0)} clients not back, ${count(sym(naive, 'lost') ?? 0)} messages lost`,
      ),
      fieldSpan(
        src,
        lab,
        lab.status === 'invalid'
          ? 'jittered retries: INVALID in this run'
          : `jittered retries: ${count(sym(lab, 'clients not back') ?? 0)} not back${back === null ? '' : ` (all within ${fixed(back / 1000, 1)} s)`}, ${count(sym(lab, 'lost') ?? 0)} lost`,
      ),
    ],
  };
}

// ---- Both directions (the chat report) ------------------------------------------------------------------

const NO_CHAT = Number.NaN;
const ack50 = (s: ScenarioResult) => (s.chat ? med(s.chat.ackMs.p50) : NO_CHAT);
const ack99 = (s: ScenarioResult) => (s.chat ? med(s.chat.ackMs.p99) : NO_CHAT);
const upPerSend = (s: ScenarioResult) => (s.chat ? med(s.chat.bytesUpPerSend) : NO_CHAT);
const requestsPerSend = (s: ScenarioResult) => (s.chat ? med(s.chat.requestsPerSend) : NO_CHAT);

/** "SSE ack p50 176 ms, p99 to everyone 181 ms, 761 B and 1.00 requests up per send, 29 µs/msg" linked to its chat row. */
function chatSpan(src: Source, s: ScenarioResult): Span {
  const everyone = s.chat ? med(s.chat.everyoneMs.p99) : NO_CHAT;
  return {
    text: `${label(s.transport)} ack p50 ${ms(ack50(s))}, to everyone p99 ${ms(everyone)}, ${fmtBytes(upPerSend(s))} B and ${fixed(requestsPerSend(s), 2)} requests up per send, ${fmtMs(cpu(s))} µs/msg`,
    href: src.href(chatRowId(s)),
  };
}
const CHAT_VIEW: RowView = { rowId: chatRowId, span: chatSpan };

/** One row per chat condition of the chat report (the lab's rows, ranked by PICK_RULE on delivery, send included). */
function chatRows(src: Source): GuideRow[] {
  const groups = new Map<string, ScenarioResult[]>();
  for (const s of src.report.scenarios.filter((r) => isLab(r) && r.workload === 'chat')) {
    const key = `${s.name}|${s.network.name}|${protocolOf(s)}|${s.proxy ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups.values()].map((rows) => {
    const s = rows[0]!;
    const condition = `Clients send too, ${shape(s)} each${s.network.direct ? '' : `, ${describeNet(s)}`}${protocolOf(s) === 'h2' ? ', HTTP/2' : ''}${s.proxy ? `, behind ${s.proxy}` : ''}${s.crossOrigin ? ', page on another origin (CORS)' : ''}${s.batchMs ? `, sends batched within ${count(s.batchMs)} ms` : ''}${s.floodPerSec ? `, one more client flooding at ${count(s.floodPerSec)} msg/s` : ''}`;
    return scenarioRow(condition, src, rows, [], CHAT_VIEW);
  });
}

// ---- The answers ---------------------------------------------------------------------------------------

const t = (text: string): Span => ({ text });
const find = (rows: readonly ScenarioResult[], transport: TransportName) =>
  rows.find((s) => isLab(s) && s.transport === transport && s.status === 'ok');

function longPollingAnswer(slow: Source, fast: Source, suite: Source): GuideAnswer {
  const question = 'When is long polling fine?';
  const at = (src: Source, net: string) => scenarios(src.report, (s) => s.network.name === net);
  const parts: Span[] = [];
  for (const [src, net] of [
    [slow, '4g'],
    [fast, '4g'],
  ] as const) {
    const rows = at(src, net);
    const poll = find(rows, 'poll');
    const best = ranked(rows.filter((s) => isLab(s) && s.transport !== 'poll'))[0];
    if (!poll || !best) continue;
    parts.push(
      t(
        `${parts.length ? ' At ' : 'At '}${count(poll.ratePerSec)} msg/s on ${describeNet(poll)}, long polling delivers at p50 `,
      ),
      { text: ms(p50(poll)), href: src.href(scenarioId(poll)) },
      t(` against ${label(best.transport)}'s `),
      { text: ms(p50(best)), href: src.href(scenarioId(best)) },
      t(` (×${fixed(p50(poll) / p50(best), 2)}).`),
    );
  }
  const fan = scenarios(suite.report, (s) => s.name === '100c-2000r' && s.network.direct);
  const poll = find(fan, 'poll');
  const best = ranked(fan.filter((s) => isLab(s) && s.transport !== 'poll'))[0];
  if (poll && best)
    parts.push(
      t(` On loopback at ${shape(poll)}, its CPU per message is `),
      { text: `${fmtMs(cpu(poll))} µs`, href: suite.href(scenarioId(poll)) },
      t(` against ${label(best.transport)}'s `),
      { text: `${fmtMs(cpu(best))} µs`, href: suite.href(scenarioId(best)) },
      t('.'),
    );
  if (parts.length === 0)
    return { question, answer: [t('Not measured: the networks reports have no long-polling rows.')] };
  parts.push(
    t(
      ' So: fine when messages are rarer than the round trip and every response can carry them; it falls behind once several messages arrive per round trip, since each waits for the next poll.',
    ),
  );
  return { question, answer: parts };
}

function sseCostAnswer(protocols: Source, fieldSrc: Source): GuideAnswer {
  const question = 'What does SSE cost over HTTP/1.1 in a browser?';
  const parts: Span[] = [];
  const tabs = (setting: FieldResult['setting']) =>
    field(fieldSrc, 'many-tabs').find((f) => f.setting === setting && f.transport === 'sse' && f.status === 'ok');
  const [h1Tabs, h2Tabs] = [tabs('naive'), tabs('lab')];
  const stalled = (f: FieldResult) =>
    `${count(sym(f, 'tabs stalled') ?? 0)} of ${count(sym(f, 'tabs') ?? 0)} tabs’ streams stalled`;
  if (h1Tabs)
    parts.push(
      t('A connection per stream, out of the browser’s 6 per origin: with 8 tabs of one app on HTTP/1.1, '),
      fieldSpan(fieldSrc, h1Tabs, stalled(h1Tabs)),
      t(' with no error'),
      ...(h2Tabs ? [t('; over HTTP/2, '), fieldSpan(fieldSrc, h2Tabs, stalled(h2Tabs))] : []),
      t('.'),
    );
  const rows = protocols.report.scenarios.filter((s) => isLab(s) && s.transport === 'sse' && s.status === 'ok');
  const h1 = rows.find((s) => protocolOf(s) === 'https/1.1');
  const h2 = rows.find((s) => protocolOf(s) === 'h2');
  if (h1 && h2)
    parts.push(
      t(`${parts.length ? ' ' : ''}On the wire: `),
      { text: `${fmtBytes(bytes(h1))} B/msg over HTTP/1.1 + TLS`, href: protocols.href(scenarioId(h1)) },
      t(' against '),
      { text: `${fmtBytes(bytes(h2))} B/msg over HTTP/2`, href: protocols.href(scenarioId(h2)) },
      t('.'),
    );
  return parts.length ? { question, answer: parts } : { question, answer: [t('Not measured.')] };
}

function framingAnswer(slow: Source): GuideAnswer {
  const question = 'Does WebSocket’s smaller framing matter at 1 msg/s?';
  const rows = scenarios(slow.report, (s) => s.network.direct);
  const ws = find(rows, 'ws');
  const sse = find(rows, 'sse');
  const poll = find(rows, 'poll');
  if (!ws || !sse) return { question, answer: [t('Not measured: no 1 msg/s loopback rows.')] };
  const perHour = (b: number) => `${fixed((b * ws.ratePerSec * 3600) / 1024, 0)} KiB`;
  return {
    question,
    answer: [
      t(`At ${count(ws.ratePerSec)} msg/s a WebSocket message takes `),
      { text: `${fmtBytes(bytes(ws))} B`, href: slow.href(scenarioId(ws)) },
      t(' on the wire, an SSE event '),
      { text: `${fmtBytes(bytes(sse))} B`, href: slow.href(scenarioId(sse)) },
      ...(poll
        ? [t(', a long-poll answer '), { text: `${fmtBytes(bytes(poll))} B`, href: slow.href(scenarioId(poll)) }]
        : []),
      t(
        `: per client and hour ${perHour(bytes(ws))} against ${perHour(bytes(sse))}${poll ? ` and ${perHour(bytes(poll))}` : ''} (server → client). The framing difference matters little at this rate; polling’s per-request headers do.`,
      ),
    ],
  };
}

function proxyAnswer(fieldSrc: Source): GuideAnswer {
  const question = 'What breaks behind a proxy?';
  const failing = (fieldSrc.report.field ?? []).filter(
    (f) => f.setting === 'naive' && f.verdict === 'fails' && f.scenario !== 'many-tabs',
  );
  if (failing.length === 0) return { question, answer: [t('Not measured: field.md has no failing naive rows.')] };
  const parts: Span[] = [t('Measured behind nginx, each with the setting that fixes it in field.md: ')];
  failing.forEach((f, i) => {
    parts.push(fieldSpan(fieldSrc, f, `${f.transport}: ${f.what}`), t(i === failing.length - 1 ? '.' : '; '));
  });
  return { question, answer: parts };
}

/** The chat report's rows of one plain condition (the lab, HTTP/1.1, direct, same origin, unbatched). */
function chatRowsOf(src: Source, name: string, net: string): ScenarioResult[] {
  return scenarios(
    src.report,
    (s) =>
      isLab(s) &&
      s.workload === 'chat' &&
      s.name === name &&
      s.network.name === net &&
      protocolOf(s) === 'http/1.1' &&
      !s.proxy &&
      s.status === 'ok',
  );
}

function sendingAnswer(chat: Source): GuideAnswer {
  const question = 'When does sending from the client tip the choice?';
  const first = chat.report.scenarios.find((s) => s.workload === 'chat' && !s.crossOrigin && !s.batchMs);
  const mobile = first ? chatRowsOf(chat, first.name, '4g') : [];
  const ws = mobile.find((s) => s.transport === 'ws');
  const sse = mobile.find((s) => s.transport === 'sse');
  if (!first || !ws || !sse) return { question, answer: [t('Not measured: the chat report has no valid 4g rows.')] };
  const link = (s: ScenarioResult, text: string): Span => ({ text, href: chat.href(chatRowId(s)) });
  const sameTrip = ack50(sse) <= ack50(ws) * P99_TIE_RATIO;
  const parts: Span[] = [
    t(`With ${shape(ws)} each on ${describeNet(ws)}, a WebSocket send is acknowledged at p50 `),
    link(ws, ms(ack50(ws))),
    t(', a POST beside an SSE stream at '),
    link(sse, ms(ack50(sse))),
    t(
      sameTrip
        ? ': on a kept-alive connection a POST costs the same round trip as a frame, so latency does not tip it. '
        : ` (×${fixed(ack50(sse) / ack50(ws), 2)}): the POST's own round trips show. `,
    ),
    t('What differs is the wire and the server: '),
    link(ws, `${fmtBytes(upPerSend(ws))} B up per send`),
    t(' against '),
    link(sse, `${fmtBytes(upPerSend(sse))} B and ${fixed(requestsPerSend(sse), 2)} requests`),
    t(', and '),
    link(ws, `${fmtMs(cpu(ws))} µs`),
    t(' against '),
    link(sse, `${fmtMs(cpu(sse))} µs`),
    t(' of server CPU per message.'),
  ];
  const cors = scenarios(
    chat.report,
    (s) => isLab(s) && !!s.crossOrigin && s.transport === 'sse' && s.status === 'ok',
  )[0];
  if (cors)
    parts.push(
      t(' A page on another origin preflights its sends: ack p99 '),
      link(cors, ms(ack99(cors))),
      t(' against '),
      link(sse, ms(ack99(sse))),
      t(' from the same origin.'),
    );
  const busy = scenarios(chat.report, (s) => isLab(s) && !!s.batchMs && s.transport === 'sse' && s.status === 'ok')[0];
  const single = busy ? chatRowsOf(chat, busy.name.replace(/-batched$/, ''), busy.network.name) : [];
  const one = single.find((s) => s.transport === 'sse');
  if (busy && one)
    parts.push(
      t(
        ` At ${shape(one)} each, batching what falls due within ${count(busy.batchMs!)} ms takes requests per send from `,
      ),
      link(one, fixed(requestsPerSend(one), 2)),
      t(' to '),
      link(busy, fixed(requestsPerSend(busy), 2)),
      t(' and CPU from '),
      link(one, `${fmtMs(cpu(one))} µs`),
      t(' to '),
      link(busy, `${fmtMs(cpu(busy))} µs`),
      t(' per message, for ack p50 '),
      link(busy, ms(ack50(busy))),
      t(' instead of '),
      link(one, ms(ack50(one))),
      t('.'),
    );
  const flooded = scenarios(
    chat.report,
    (s) => isLab(s) && !!s.floodPerSec && s.transport === 'ws' && s.status === 'ok',
  )[0];
  const calm = flooded ? chatRowsOf(chat, flooded.name.replace(/-flood$/, ''), flooded.network.name) : [];
  const calmWs = calm.find((s) => s.transport === 'ws');
  if (flooded?.chat?.flood && calmWs) {
    const f = flooded.chat.flood;
    parts.push(
      t(` One more page flooding at ${count(flooded.floodPerSec!)} msg/s over WebSocket got `),
      link(flooded, `${count(f.accepted)} of its ${count(f.sent)} sends through`),
      t(` (${count(f.refused)} refused, ${count(f.cut)} cut with its connection); the others' delivery p99 was `),
      link(flooded, ms(p99(flooded))),
      t(' against '),
      link(calmWs, ms(p99(calmWs))),
      t(` without it, ${count(flooded.lost)} lost.`),
    );
  }
  parts.push(
    t(
      ' So: sending tips the choice to WebSocket where upstream bytes, requests or server CPU count (many senders, metered mobile data); for a few sends a minute SSE with POST costs one round trip like a frame.',
    ),
  );
  return { question, answer: parts };
}

function compressionAnswer(src: Source): GuideAnswer {
  const question = 'Does compression pay?';
  const rows = src.report.scenarios.filter((s) => isLab(s) && s.status === 'ok' && s.payload);
  const of = (payload: string, transport: TransportName, compression?: string) =>
    rows.find((s) => s.payload === payload && s.transport === transport && s.compression === compression);
  const parts: Span[] = [];
  const link = (s: ScenarioResult, text: string): Span => ({ text, href: src.href(scenarioId(s)) });
  for (const payload of [...new Set(rows.map((s) => s.payload!))]) {
    const [plain, deflate, alone] = [undefined, 'on', 'no-context-takeover'].map((c) => of(payload, 'ws', c));
    const [ssePlain, gzip] = [undefined, 'on'].map((c) => of(payload, 'sse', c));
    if (!plain || !deflate) continue;
    parts.push(
      t(`${parts.length ? ' ' : ''}${payload[0]!.toUpperCase()}${payload.slice(1)} messages: WebSocket `),
      link(plain, `${fmtBytes(bytes(plain))} B`),
      t(' → '),
      link(deflate, `${fmtBytes(bytes(deflate))} B`),
      t(' with permessage-deflate'),
      ...(alone ? [t(' ('), link(alone, `${fmtBytes(bytes(alone))} B`), t(' without context takeover)')] : []),
      t(', CPU '),
      link(plain, `${fmtMs(cpu(plain))}`),
      t(' → '),
      link(deflate, `${fmtMs(cpu(deflate))} µs/msg`),
      ...(ssePlain && gzip
        ? [
            t('; SSE '),
            link(ssePlain, `${fmtBytes(bytes(ssePlain))} B`),
            t(' → '),
            link(gzip, `${fmtBytes(bytes(gzip))} B`),
            t(' gzip’d'),
          ]
        : []),
      t('.'),
    );
  }
  const memory = src.report.memory.filter((m) => m.server === 'lab' && m.transport === 'ws' && m.status === 'ok');
  const idle = memory.find((m) => !m.compression && !m.active);
  const active = memory.find((m) => m.compression === 'on' && m.active);
  const withSetting = memory.some((m) => m.compression || m.active);
  const kib = (m: MemoryResult) => `${fixed(med(m.rssBytesPerConn) / 1024, 1)} KiB`;
  if (idle && active)
    parts.push(
      t(' The price is memory: a WebSocket connection holds '),
      { text: kib(idle), href: src.href(memoryRowId(idle, withSetting)) },
      t(' of RSS uncompressed and '),
      { text: kib(active), href: src.href(memoryRowId(active, withSetting)) },
      t(' with deflate’s context once it has sent.'),
    );
  if (parts.length === 0) return { question, answer: [t('Not measured: the compression report has no valid rows.')] };
  return { question, answer: parts };
}

// ---- The guide -----------------------------------------------------------------------------------------

/** What no committed report measures, said instead of guessed. */
export const NOT_MEASURED: readonly string[] = Object.freeze([
  'Battery and radio wake-ups on mobile devices; the idle cost of staying connected.',
  'How many users one box holds: the capacity sweep is not committed yet.',
  'Real mobile or Wi-Fi links: networks are emulated by the lab’s relay (RTT, rate, loss, jitter), on one machine.',
  'Browsers other than Chromium; HTTP/3.',
]);

export function guideModel(reports: GuideReports): Guide {
  const src = Object.fromEntries(
    (Object.keys(GUIDE_SOURCES) as GuideSource[]).map((k) => [k, new Source(k, reports[k])]),
  ) as Record<GuideSource, Source>;
  const suite = src.suite.report;
  const loop = (name: string) => scenarios(suite, (s) => s.name === name && s.network.direct && !s.proxy);
  const slowLoop = scenarios(src.networksSlow.report, (s) => s.network.direct);
  const protocolRows = (p: string) => scenarios(src.protocols.report, (s) => protocolOf(s) === p);
  const viaNginx = scenarios(src.proxy.report, (s) => s.proxy === 'nginx');
  const rate = (rows: readonly ScenarioResult[]) => (rows[0] ? shape(rows[0]) : '');

  const rows: GuideRow[] = [
    ...networkRows(src.networksSlow, (net) => `${net}, ${rate(src.networksSlow.report.scenarios)}`),
    ...networkRows(src.networks, (net) => `${net}, ${rate(src.networks.report.scenarios)}`),
    scenarioRow(`Low rate, ${rate(slowLoop)}, LAN-like (loopback)`, src.networksSlow, slowLoop),
    scenarioRow(`LAN fan-out at a high rate, ${rate(loop('100c-2000r'))} (loopback)`, src.suite, loop('100c-2000r')),
    scenarioRow(
      `Many clients, ${rate(loop('1000c-100r'))} (loopback)`,
      src.suite,
      loop('1000c-100r'),
      memorySpans(src.suite, suite.memory),
    ),
    scenarioRow('Browser on HTTP/1.1 + TLS', src.protocols, protocolRows('https/1.1')),
    scenarioRow('Browser on HTTP/2 (WebSocket stays HTTP/1.1)', src.protocols, protocolRows('h2')),
    tabsRow(src.field, src.protocols, protocolRows('https/1.1')),
    scenarioRow(`Behind nginx (the shipped config), ${rate(viaNginx)}`, src.proxy, viaNginx),
    upgradeRow(src.field, src.proxy, viaNginx),
    stormRow(src.field),
    ...chatRows(src.chat),
  ];
  const answers = [
    longPollingAnswer(src.networksSlow, src.networks, src.suite),
    sseCostAnswer(src.protocols, src.field),
    framingAnswer(src.networksSlow),
    proxyAnswer(src.field),
    sendingAnswer(src.chat),
    compressionAnswer(src.compression),
  ];
  return {
    title: 'Which transport for my case? The measured guide',
    rule: PICK_RULE,
    rows,
    answers,
    notMeasured: [...NOT_MEASURED],
    sources: (Object.keys(GUIDE_SOURCES) as GuideSource[]).map((k) => ({
      name: k,
      href: src[k].file,
      git: gitShort(reports[k].git),
      machine: `${reports[k].env.cpus} × ${reports[k].env.cpuModel}`,
      startedAt: reports[k].startedAt,
    })),
  };
}
