/**
 * The report's one table and chart model. The Markdown (markdown.ts), the self-contained HTML
 * (html.ts) and the dashboard's Reports view (web/reports.js, fed by GET /reports/<name>/model) are
 * thin renderers of `reportModel(report)`: grouping, order, colours, number formats and INVALID
 * marking are decided here once, so the three can never disagree.
 *
 * An invalid result is never shown as a fast number: its row says INVALID and why, every measured
 * figure in it is "—", and it is left out of every chart (the chart group names what it left out).
 * Counts of what was delivered and lost stay, because they explain the reason.
 *
 * Scenario tables are grouped by shape (clients, rate, payload), and within a shape by network; when
 * some scenario ran over a relay, "Transport by network" comes first: per shape, the lab's transports on
 * each network side by side, with what each transport adds beyond the network's one-way delay.
 */
import { describeProfile, type NetworkProfile } from '../server/network/profiles.js';
import { HTTP_PROTOCOLS } from '../server/protocol.js';
import { scenarioAnswers, TRANSPORT_LABELS } from './answers.js';
import { goalRows, type GoalRow } from './goals.js';
import {
  COMPRESSIONS,
  protocolLabel,
  protocolOf,
  SERVER_NAMES,
  TRANSPORT_NAMES,
  type AutocannonResult,
  type Claim,
  type FieldResult,
  type Figure,
  type MemoryResult,
  type MicroResult,
  type Report,
  type ScenarioResult,
  type ServerName,
  type SweepResult,
  type TransportName,
} from './types.js';

// ---- Number formats -----------------------------------------------------------------------------

const NF = [0, 1, 2, 3, 4].map(
  (d) => new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }),
);
export const fixed = (x: number, digits: 0 | 1 | 2 | 3 | 4): string => NF[digits]!.format(x);

export const DASH = '—';

/** Whole numbers with thousands separators: 1,500,000. */
const fmtCount = (x: number): string => fixed(x, 0);
/** Milliseconds (and µs of CPU): two decimals below 10, one below 100, none above (0.89, 38.2, 1,007). */
export const fmtMs = (x: number): string => fixed(x, Math.abs(x) < 10 ? 2 : Math.abs(x) < 100 ? 1 : 0);
/** Bytes per message or per request: one decimal (260.4). */
export const fmtBytes = (x: number): string => fixed(x, 1);
/** Requests per message: 1.003, 0.0203, 0.0020. */
export const fmtPerMsg = (x: number): string =>
  x === 0 ? '0' : Math.abs(x) >= 1 ? fixed(x, 3) : Math.abs(x) >= 0.01 ? fixed(x, 4) : x.toPrecision(2);
/** A ratio against the bare server: ×1.23. */
const fmtRatio = (x: number): string => `×${fixed(x, 2)}`;
/** Memory sizes: 9.6 KiB, 15.6 GiB (signed: retained heap can be negative). */
function fmtSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(bytes);
  let u = 0;
  for (; v >= 1024 && u < units.length - 1; u++) v /= 1024;
  return `${bytes < 0 ? '−' : ''}${fixed(v, u === 0 ? 0 : 1)} ${units[u]}`;
}
/** Durations from nanoseconds: 778.6 ns, 41.9 µs, 1.20 ms. */
const fmtNs = (ns: number): string =>
  ns < 1_000 ? `${fixed(ns, 1)} ns` : ns < 1_000_000 ? `${fixed(ns / 1_000, 1)} µs` : `${fixed(ns / 1_000_000, 2)} ms`;
/** Memory per connection in KiB, one decimal (negative when the heap shrank). */
const fmtKiB = (bytes: number): string => fixed(bytes / 1024, 1);
/** Seconds as "33 min 35 s". */
export function fmtDuration(sec: number): string {
  const s = Math.round(sec);
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}
const fmtSec = (x: number): string => `${fmtCount(x)} s`;
const fmtRme = (x: number): string => `±${fixed(x, 2)} %`;
const plural = (n: number, word: string): string => `${fmtCount(n)} ${word}${n === 1 ? '' : 's'}`;

/**
 * "median (min–max)"; just the median when the repeats agree or there was one; "—" when nothing was
 * measured (null median).
 */
function fmtFigure(f: Figure, fmt: (x: number) => string): string {
  const { median, min, max } = f;
  if (median === null) return DASH;
  if (min === null || max === null || fmt(min) === fmt(max)) return fmt(median);
  // An en dash between two negative numbers reads as a minus: spell the range out then.
  return `${fmt(median)} (${fmt(min)}${min < 0 || max < 0 ? ' to ' : '–'}${fmt(max)})`;
}

// ---- The model ----------------------------------------------------------------------------------

export interface Cell {
  text: string;
  /** Bold: the INVALID marker and its reason, a sweep's result. */
  strong?: boolean;
  /** Code span: paths, command lines. */
  code?: boolean;
  /** The INVALID marker (with its reason): renderers colour it. */
  invalid?: boolean;
}

export interface Row {
  /** What the row reports, e.g. "scenario 100c-100r lab/ws"; the invalid summary names rows by it. */
  id: string;
  cells: Cell[];
  /** The row reports an invalid result: renderers mark it, and `reason` says why. */
  invalid: boolean;
  reason?: string;
  /**
   * The row's anchor in every rendering (`#row-…`), unique in the report: its id slugged, a repeat numbered
   * `-1`, `-2` in the order the sections list them. Set by reportModel; what the guide links to.
   */
  anchor?: string;
}

export interface Table {
  /** A heading above the table, e.g. the scenario group's parameters. */
  title?: string;
  headers: string[];
  /** 'r' for numeric columns. */
  align: ('l' | 'r')[];
  rows: Row[];
  /** Lines under the table (footnotes). */
  notes: string[];
}

export interface ChartDataset {
  label: string;
  /** The series' colour; '' for a transport's series, which the chart draws in that transport's colour (web/theme.js TRANSPORT_COLORS). */
  color: string;
  /** Set when the series is one transport (a line per transport): its colour comes from the transport. */
  transport?: TransportName;
  /** Medians; null where this series has no valid result for the label (a gap, never NaN). */
  data: (number | null)[];
  /** Tooltip line per point, aligned with `data`: the spread over repeats, or '' when there is none. */
  tips: string[];
}

export interface ChartSpec {
  /** `line`: one line per dataset across the labels (a figure against RTT); bars otherwise. */
  kind?: 'line';
  /** The canvas id. */
  id: string;
  title: string;
  /** Axis title with its unit. */
  yTitle: string;
  logarithmic: boolean;
  /** Axis minimum: on a log axis bars grow from it, so it sits a decade below the smallest value. */
  yMin?: number;
  /** Span the full row (the latency chart has the most bars). */
  wide: boolean;
  labels: string[];
  datasets: ChartDataset[];
}

/** An invalid result and why: in the summary named as its row ("scenario small lab/ws"), in a chart group by server/transport. */
export interface Excluded {
  what: string;
  reason: string;
}

/** The charts of a group of results, and the invalid results they leave out. */
export interface ChartGroup {
  title: string;
  charts: ChartSpec[];
  excluded: Excluded[];
}

/**
 * A table and, for scenarios and memory, the charts of the same results. A table wider than
 * TABLE_COLUMNS_MAX is split by concern: `table` holds the rows' first concern (with their anchors and
 * INVALID reasons), `more` the others, each titled, its rows repeating the columns that name them.
 */
export interface Group {
  table: Table;
  more?: Table[];
  charts?: ChartGroup;
}

/** A heading, maybe a sentence (`intro`) under it, and its groups. */
export interface Section {
  title: string;
  /** The answer: renderers put it before the charts; every other section comes after them. */
  lead?: true;
  intro?: string;
  groups: Group[];
}

/** A labelled line of the header ("Node: v20.20.2") or the method; `code` shows the value as code. */
export interface Fact {
  label: string;
  value: string;
  code?: boolean;
}

export interface ReportModel {
  /** "Transport Lab bench, 2026-11-20" */
  title: string;
  /** The commit, short: "5c1e0d9". */
  commit: string;
  /** Where the numbers came from. */
  facts: Fact[];
  /** Every invalid result (rows marked invalid, and invalid sweep steps), for the summary at the top. */
  invalid: Excluded[];
  /** A sentence above the charts. */
  chartsIntro: string;
  sections: Section[];
  /** How each figure is measured. */
  method: Fact[];
}

/** One colour per server: a series keeps its colour in every chart. */
export const SERVER_COLORS: Readonly<Record<ServerName, string>> = {
  lab: '#2563eb',
  'lab-redis': '#7c3aed',
  bare: '#9ca3af',
  floor: '#111827',
  socketio: '#f59e0b',
  'better-sse': '#10b981',
  'fastify-sse': '#0891b2',
  shift: '#dc2626',
};

const c = (text: string, extra: Omit<Cell, 'text'> = {}): Cell => ({ text, ...extra });
const dash = (): Cell => c(DASH);
const why = (reason: string | undefined): string => reason ?? 'no reason given';

/** Transport first, then server: the rows a reader compares sit next to each other. */
const byTransportThenServer = <T extends { transport: TransportName; server: ServerName }>(a: T, b: T): number =>
  TRANSPORT_NAMES.indexOf(a.transport) - TRANSPORT_NAMES.indexOf(b.transport) ||
  SERVER_NAMES.indexOf(a.server) - SERVER_NAMES.indexOf(b.server);

/** Items grouped by `key`, in the order the groups first appear. */
function groupBy<T>(items: readonly T[], key: (x: T) => string | number): T[][] {
  const groups = new Map<string | number, T[]>();
  for (const x of items) groups.set(key(x), [...(groups.get(key(x)) ?? []), x]);
  return [...groups.values()];
}

// ---- Charts -------------------------------------------------------------------------------------

/** A figure as a chart point: null (a gap the chart skips) where nothing was measured. */
function point(f: Figure | undefined, scale = 1): { value: number | null; tip: string } {
  if (!f || f.median === null) return { value: null, tip: '' };
  const repeats = f.values.filter((v) => v !== null).length;
  const tip =
    f.min === null || f.max === null || repeats < 2
      ? ''
      : `min–max ${fmtMs(f.min / scale)}–${fmtMs(f.max / scale)} over ${repeats} repeats`;
  return { value: f.median / scale, tip };
}

/** Labels = transports present, one dataset per server present: a grouped bar per transport. */
function byTransport<T extends { server: ServerName; transport: TransportName }>(
  id: string,
  title: string,
  yTitle: string,
  items: readonly T[],
  figure: (x: T) => ReturnType<typeof point>,
): ChartSpec {
  const transports = TRANSPORT_NAMES.filter((t) => items.some((x) => x.transport === t));
  const servers = SERVER_NAMES.filter((s) => items.some((x) => x.server === s));
  const datasets = servers.map((server): ChartDataset => {
    const points = transports.map((t) => {
      const item = items.find((x) => x.server === server && x.transport === t);
      return item ? figure(item) : point(undefined);
    });
    return {
      label: server,
      color: SERVER_COLORS[server],
      data: points.map((p) => p.value),
      tips: points.map((p) => p.tip),
    };
  });
  return { id, title, yTitle, logarithmic: false, wide: false, labels: [...transports], datasets };
}

/**
 * Delivery latency p50 and p99: a group of bars per transport, one colour per server (the legend), on a
 * log axis — short polling waits up to its interval (~1 s) while pushes take ~1 ms: only a log axis shows both.
 */
function latencyCharts(idPrefix: string, scenarios: readonly ScenarioResult[]): ChartSpec[] {
  const smallest = Math.min(
    ...scenarios.map((s) => s.latencyMs.p50.median).filter((x): x is number => x !== null && x > 0),
  );
  const yMin = Number.isFinite(smallest) ? { yMin: 10 ** Math.floor(Math.log10(smallest)) } : {};
  return (['p50', 'p99'] as const).map((pct) => ({
    ...byTransport(
      `${idPrefix}-${pct}`,
      `Delivery latency ${pct}, per server`,
      `${pct} ms, log scale`,
      scenarios,
      (s) => point(s.latencyMs[pct]),
    ),
    logarithmic: true,
    ...yMin,
  }));
}

/** The chart group of some results: only the valid ones are charted; the group lists the others. */
function chartGroup<
  T extends { status: 'ok' | 'invalid'; reason?: string; server: ServerName; transport: TransportName },
>(title: string, results: readonly T[], charts: (ok: T[]) => ChartSpec[]): ChartGroup {
  const ok = results.filter((r) => r.status === 'ok');
  const excluded = results
    .filter((r) => r.status === 'invalid')
    .map((r) => ({ what: `${r.server}/${r.transport}`, reason: why(r.reason) }));
  return { title, charts: ok.length ? charts(ok) : [], excluded };
}

// ---- Tables -------------------------------------------------------------------------------------

/** A column: its header, its cell, and 'r' when numeric (right-aligned). */
type Column<T> = [header: string, cell: (x: T) => Cell, align?: 'r'];
const text = <T>(header: string, pick: (x: T) => string, extra: Omit<Cell, 'text'> = {}): Column<T> => [
  header,
  (x) => c(pick(x), extra),
];
const num = <T>(header: string, pick: (x: T) => number, fmt = fmtCount): Column<T> => [
  header,
  (x) => c(fmt(pick(x))),
  'r',
];
const fig = <T>(header: string, pick: (x: T) => Figure, fmt: (x: number) => string): Column<T> => [
  header,
  (x) => c(fmtFigure(pick(x), fmt)),
  'r',
];
const status: Column<{ status?: 'ok' | 'invalid'; reason?: string }> = [
  'Status',
  (r) => (r.status === 'invalid' ? c(`INVALID: ${why(r.reason)}`, { strong: true, invalid: true }) : c('ok')),
];

/**
 * One row per result: the `head` and `tail` columns always, the `figures` only when the result is
 * ok; an invalid one shows as many dashes, and its row is marked with the reason.
 */
function resultTable<T extends object>(
  items: readonly T[],
  id: (x: T) => string,
  [head, figures, tail = []]: [Column<T>[], Column<T>[], Column<T>[]?],
  title?: string,
): Table {
  const columns = [...head, ...figures, ...tail];
  const cells = (x: T, cs: Column<T>[]) => cs.map(([, cell]) => cell(x));
  const rows = items.map((x): Row => {
    // Micro results have no status: they are always ok.
    const r: { status?: string; reason?: string } = x;
    if (r.status !== 'invalid') return { id: id(x), invalid: false, cells: cells(x, columns) };
    return {
      id: id(x),
      invalid: true,
      reason: why(r.reason),
      cells: [...cells(x, head), ...figures.map(dash), ...cells(x, tail)],
    };
  });
  return {
    ...(title ? { title } : {}),
    headers: columns.map(([h]) => h),
    align: columns.map(([, , a]) => a ?? 'l'),
    rows,
    notes: [],
  };
}

/** The most columns a report table has, so that it reads at 1,280 px: a wider one is split (splitTable). */
export const TABLE_COLUMNS_MAX = 8;

/**
 * A wide table as one table per concern, by header: the first shows `first` and keeps the table's title
 * and notes (and so its rows keep their anchors); each of `more` is titled and repeats the `keys` columns,
 * which say which row is which. Every column goes somewhere, and every header named is the table's: a
 * split that drifted from its columns throws rather than drop a figure.
 */
function splitTable(
  t: Table,
  first: readonly string[],
  keys: readonly string[],
  more: readonly (readonly [title: string, headers: readonly string[]])[],
): { table: Table; more: Table[] } {
  const placed = new Set([...first, ...keys, ...more.flatMap(([, h]) => h)]);
  const lost = [...t.headers.filter((h) => !placed.has(h)), ...[...placed].filter((h) => !t.headers.includes(h))];
  if (lost.length) throw new Error(`splitTable: columns ${lost.join(', ')} are in the table or the split, not both`);
  const pick = (headers: readonly string[]): Omit<Table, 'notes'> => {
    const at = headers.map((h) => t.headers.indexOf(h));
    return {
      headers: at.map((i) => t.headers[i]!),
      align: at.map((i) => t.align[i] ?? 'l'),
      rows: t.rows.map((r) => ({ ...r, cells: at.map((i) => r.cells[i]!) })),
    };
  };
  // An invalid row says so in every table: in the further ones its first unmeasured figure reads
  // "INVALID: see Status" (the reason is in the first table's Status column).
  const marked = (x: Omit<Table, 'notes'>): Omit<Table, 'notes'> => ({
    ...x,
    rows: x.rows.map((r) => {
      if (!r.invalid) return r;
      const at = Math.max(
        keys.length,
        r.cells.findIndex((cell, i) => i >= keys.length && cell.text === DASH),
      );
      const cells = r.cells.map((cell, i) =>
        i !== at
          ? cell
          : c(`INVALID: see Status${cell.text === DASH ? '' : `; ${cell.text}`}`, { strong: true, invalid: true }),
      );
      return { ...r, cells };
    }),
  });
  return {
    table: { ...(t.title ? { title: t.title } : {}), ...pick(first), notes: t.notes },
    more: more.map(([title, headers]) => ({ title, ...marked(pick([...keys, ...headers])), notes: [] })),
  };
}

/** `xs` in the fewest runs of at most `n`, of equal length but the last: 13 by 6 is 5, 5, 3. */
function runsOf<T>(xs: readonly T[], n: number): T[][] {
  const count = Math.ceil(xs.length / n);
  const size = Math.ceil(xs.length / Math.max(count, 1));
  return Array.from({ length: count }, (_, i) => xs.slice(i * size, (i + 1) * size));
}

const where = <T extends { server: ServerName; transport: TransportName }>(): Column<T>[] => [
  text('Server', (x) => x.server),
  text('Transport', (x) => x.transport),
];

function deliveredCell(s: ScenarioResult): Cell {
  const extras = Object.entries({ lost: s.lost, dup: s.duplicated, reordered: s.reordered, gaps: s.gaps }).filter(
    ([, n]) => n > 0,
  );
  return c(
    `${fmtCount(s.delivered)} / ${fmtCount(s.expected)}${extras.map(([what, n]) => `, ${what} ${fmtCount(n)}`).join('')}`,
  );
}

/** Client → server bytes per HTTP request (absent in reports before it was measured). */
const upPerRequest: Column<ScenarioResult> = [
  'Up B/request',
  (s) => (s.wire.bytesInPerRequest ? c(fmtFigure(s.wire.bytesInPerRequest, fmtBytes)) : dash()),
  'r',
];
const ratio = (pick: (v: NonNullable<ScenarioResult['vsBare']>) => number) => (s: ScenarioResult) =>
  s.vsBare ? c(fmtRatio(pick(s.vsBare))) : dash();
const vsFloorCpu: Column<ScenarioResult> = [
  'vs floor: CPU',
  (s) => (s.vsFloor ? c(fmtRatio(s.vsFloor.cpuUsPerMsg)) : dash()),
  'r',
];
const SCENARIO_COLUMNS: [Column<ScenarioResult>[], Column<ScenarioResult>[]] = [
  [...where<ScenarioResult>(), status, ['Delivered / expected', deliveredCell]],
  [
    fig('Latency p50 ms', (s) => s.latencyMs.p50, fmtMs),
    fig('p99 ms', (s) => s.latencyMs.p99, fmtMs),
    fig('max ms', (s) => s.latencyMs.max, fmtMs),
    fig('Out B/msg', (s) => s.wire.bytesOutPerMsg, fmtBytes),
    fig('In B/msg', (s) => s.wire.bytesInPerMsg, fmtBytes),
    fig('Requests/msg', (s) => s.wire.requestsPerMsg, fmtPerMsg),
    upPerRequest,
    fig('CPU µs/msg', (s) => s.serverMetrics.cpuUsPerMsg, fmtMs),
    vsFloorCpu,
    ['vs bare: CPU', ratio((v) => v.cpuUsPerMsg), 'r'],
    ['vs bare: bytes', ratio((v) => v.bytesOutPerMsg), 'r'],
    ['vs bare: p99', ratio((v) => v.latencyP99), 'r'],
    [
      'Floor excess B/msg (overhead − floor)',
      ({ floor: f }) =>
        f
          ? c(`${fmtBytes(f.excessBytesPerMsg)} (${fmtBytes(f.overheadBytesPerMsg)} − ${fmtBytes(f.floorBytesPerMsg)})`)
          : dash(),
      'r',
    ],
    fig('Event loop p99 ms', (s) => s.serverMetrics.eventLoopDelayP99Ms, fmtMs),
    fig('Publisher lag p99 ms', (s) => s.publisherLagMs.p99, fmtMs),
  ],
];
/** A scenario table by concern: latency and delivery first, then the wire, CPU and the controls, the harness's health. */
const splitScenarios = (t: Table) =>
  splitTable(
    t,
    ['Server', 'Transport', 'Status', 'Delivered / expected', 'Latency p50 ms', 'p99 ms', 'max ms'],
    ['Server', 'Transport'],
    [
      [
        'On the wire',
        ['Out B/msg', 'In B/msg', 'Requests/msg', 'Up B/request', 'Floor excess B/msg (overhead − floor)'],
      ],
      [
        'Server CPU, and against the controls',
        ['CPU µs/msg', 'vs floor: CPU', 'vs bare: CPU', 'vs bare: bytes', 'vs bare: p99'],
      ],
      ['The run’s own health: server event loop, publisher schedule', ['Event loop p99 ms', 'Publisher lag p99 ms']],
    ],
  );

/** What a reader compares a scenario across: its clients, rate and payload. */
const shapeKey = (s: ScenarioResult): string =>
  `${s.clients}/${s.ratePerSec}/${s.payload ?? s.payloadBytes}/${s.compression ?? ''}`;
const shapeTitle = ({ clients, ratePerSec, payloadBytes, payload, compression }: ScenarioResult): string =>
  `${plural(clients, 'client')} · ${fmtCount(ratePerSec)} msg/s · ${payload ? `${payload} messages` : `${fmtCount(payloadBytes)} B payload`}${compression ? ` · ${COMPRESSION_WORDS[compression]}` : ''}`;
/** How a compressed scenario's title names its compression. */
const COMPRESSION_WORDS: Readonly<Record<NonNullable<ScenarioResult['compression']>, string>> = Object.freeze({
  on: 'compressed (permessage-deflate with context takeover, gzip)',
  'no-context-takeover': 'compressed (permessage-deflate without context takeover, gzip)',
});
/** "over 4g" after a row's id: loopback (no relay) is the unqualified case. */
const over = (p: NetworkProfile): string => (p.direct ? '' : ` over ${p.name}`);
/** ", HTTP/2 + TLS" after a row's id: cleartext HTTP/1.1 is the unqualified case. */
const onProtocol = (s: ScenarioResult): string =>
  protocolOf(s) === 'http/1.1' ? '' : `, ${protocolLabel(protocolOf(s))}`;
/** " via nginx" after a row's id: direct is the unqualified case. */
const via = (s: ScenarioResult): string => (s.proxy ? ` via ${s.proxy}` : '');
/** A scenario's row id in every table (and so its anchor): what the guide links to. */
export const scenarioId = (s: ScenarioResult): string =>
  `scenario ${s.name}${over(s.network)}${onProtocol(s)}${via(s)} ${s.server}/${s.transport}`;

function scenarioGroup(scenarios: ScenarioResult[], i: number): Group {
  const sorted = [...scenarios].sort(byTransportThenServer);
  const runs = [...new Set(sorted.map((s) => `${fmtCount(s.durationSec)} s × ${plural(s.repeats, 'repeat')}`))];
  const title = `${shapeTitle(sorted[0]!)} · ${runs.join(' / ')} · network ${describeProfile(sorted[0]!.network)}${onProtocol(sorted[0]!)}${via(sorted[0]!)}`;
  const charts = chartGroup(title, sorted, (ok) => [
    ...latencyCharts(`chart-s${i}-latency`, ok),
    byTransport(
      `chart-s${i}-bytes`,
      'Bytes out per message (headers and framing included)',
      'bytes / message',
      ok,
      (s) => point(s.wire.bytesOutPerMsg),
    ),
    byTransport(`chart-s${i}-cpu`, 'Server CPU per message delivered', 'µs / message', ok, (s) =>
      point(s.serverMetrics.cpuUsPerMsg),
    ),
  ]);
  return { ...splitScenarios(resultTable(sorted, scenarioId, SCENARIO_COLUMNS, title)), charts };
}

/** p50 − RTT/2 per repeat: the latency the transport adds to the network's one-way delay. */
const beyondOneWay = (s: ScenarioResult): Figure => {
  const f = s.latencyMs.p50;
  const less = (v: number | null) => (v === null ? null : v - s.network.rttMs / 2);
  return { median: less(f.median), min: less(f.min), max: less(f.max), values: f.values.map(less) };
};
const NETWORK_COLUMNS: [Column<ScenarioResult>[], Column<ScenarioResult>[], Column<ScenarioResult>[]] = [
  [
    text('Transport', (s) => s.transport),
    text('Network', (s) => s.network.name),
    num(
      'RTT ms',
      (s) => s.network.rttMs,
      (x) => (Number.isInteger(x) ? fmtCount(x) : fmtMs(x)),
    ),
    status,
  ],
  [
    fig('Latency p50 ms', (s) => s.latencyMs.p50, fmtMs),
    fig('p99 ms', (s) => s.latencyMs.p99, fmtMs),
    fig('Beyond one-way ms (p50 − RTT/2)', beyondOneWay, fmtMs),
    fig('Requests/msg', (s) => s.wire.requestsPerMsg, fmtPerMsg),
    fig('Out B/msg', (s) => s.wire.bytesOutPerMsg, fmtBytes),
    ['Relay lateness p99 ms', (s) => (s.relayLatenessP99Ms ? c(fmtFigure(s.relayLatenessP99Ms, fmtMs)) : dash()), 'r'],
  ],
  [text('Scenario', (s) => s.name)],
];

/**
 * "Transport by network": one table per shape that ran over a relay, the lab's rows ordered by
 * transport, then network (in params.networks order); the profiles and their sources as notes.
 */
function networkGroups(report: Report): Group[] {
  const order = (p: NetworkProfile) => report.params.networks.findIndex((n) => n.name === p.name);
  const lab = report.scenarios.filter((s) => s.server === 'lab');
  const shapes = groupBy(lab, shapeKey).filter((g) => g.some((s) => !s.network.direct));
  return shapes.map((g, i): Group => {
    const sorted = [...g].sort(
      (a, b) =>
        TRANSPORT_NAMES.indexOf(a.transport) - TRANSPORT_NAMES.indexOf(b.transport) ||
        order(a.network) - order(b.network),
    );
    const { table, more } = splitTable(
      resultTable(sorted, scenarioId, NETWORK_COLUMNS, `${shapeTitle(sorted[0]!)} · lab server`),
      ['Transport', 'Network', 'RTT ms', 'Status', 'Latency p50 ms', 'p99 ms', 'Beyond one-way ms (p50 − RTT/2)'],
      ['Transport', 'Network'],
      [
        [
          'On the wire, and the emulator’s own lateness',
          ['Requests/msg', 'Out B/msg', 'Relay lateness p99 ms', 'Scenario'],
        ],
      ],
    );
    const profiles = [...new Map(sorted.map((s) => [s.network.name, s.network])).values()].sort(
      (a, b) => order(a) - order(b),
    );
    const charts = chartGroup(`${shapeTitle(sorted[0]!)} · lab server, by network`, sorted, (ok) =>
      (['p50', 'p99'] as const).map((pct) => latencyByNetwork(`chart-n${i}-${pct}`, pct, profiles, ok)),
    );
    return {
      table: { ...table, notes: profiles.map((p) => `${describeProfile(p)}. Source: ${p.source}.`) },
      more,
      charts,
    };
  });
}

/** Latency p50 or p99 against the network (in the report's order, RTT in the label): one line per transport. */
function latencyByNetwork(
  id: string,
  pct: 'p50' | 'p99',
  profiles: readonly NetworkProfile[],
  ok: readonly ScenarioResult[],
): ChartSpec {
  const transports = TRANSPORT_NAMES.filter((t) => ok.some((s) => s.transport === t));
  return {
    kind: 'line',
    id,
    title: `Latency ${pct} by network, one line per transport`,
    yTitle: `${pct} ms (log)`,
    logarithmic: true,
    yMin: 1,
    wide: false,
    labels: profiles.map(
      (p) => `${p.name} (${fmtMs(p.rttMs)} ms RTT${p.loss ? `, ${fixed(p.loss * 100, 1)} % loss` : ''})`,
    ),
    datasets: transports.map((t): ChartDataset => {
      const points = profiles.map((p) =>
        point(ok.find((s) => s.transport === t && s.network.name === p.name)?.latencyMs[pct]),
      );
      return { label: t, color: '', transport: t, data: points.map((x) => x.value), tips: points.map((x) => x.tip) };
    }),
  };
}

/** A memory row's setting: compression and whether every connection had received a message. */
const memorySetting = (m: MemoryResult): string =>
  `${m.compression ? `deflate${m.compression === 'on' ? '' : ' alone'} + gzip` : 'plain'}, ${m.active ? 'active' : 'idle'}`;

/** A memory row's id; `withSetting` when its table compares settings (compression, idle or active). */
export const memoryRowId = (m: MemoryResult, withSetting: boolean): string =>
  `memory ${m.server}/${m.transport} × ${fmtCount(m.connections)}${withSetting ? ` ${memorySetting(m)}` : ''}`;

/** A chat row's id (the "Both directions" section). */
export const chatRowId = (s: ScenarioResult): string => `chat ${scenarioId(s)}`;

function memoryGroup(memory: MemoryResult[], i: number): Group {
  const settingOrder = (m: MemoryResult) =>
    (m.compression ? COMPRESSIONS.indexOf(m.compression) + 1 : 0) * 2 + (m.active ? 1 : 0);
  const sorted = [...memory].sort((a, b) => byTransportThenServer(a, b) || settingOrder(a) - settingOrder(b));
  const settings = sorted.some((m) => m.compression || m.active);
  const id = (m: MemoryResult) => memoryRowId(m, settings);
  const table = resultTable(sorted, id, [
    [
      ...where<MemoryResult>(),
      ...(settings ? [text<MemoryResult>('Setting', memorySetting)] : []),
      num('Connections', (m) => m.connections),
      status,
    ],
    [
      fig('Heap KiB/conn', (m) => m.heapBytesPerConn, fmtKiB),
      fig('RSS KiB/conn', (m) => m.rssBytesPerConn, fmtKiB),
      fig('Heap retained after close, KiB', (m) => m.heapRetainedAfterCloseBytes, fmtKiB),
    ],
  ]);
  // Charted: the idle, uncompressed rows (one point per server and transport); the table has every setting.
  const charts = chartGroup(
    `Memory per connection, ${fmtCount(sorted[0]!.connections)} idle connections`,
    sorted.filter((m) => !m.compression && !m.active),
    (ok) => [
      byTransport(`chart-m${i}-heap`, 'Heap per connection', 'KiB / connection', ok, (m) =>
        point(m.heapBytesPerConn, 1024),
      ),
      byTransport(`chart-m${i}-rss`, 'RSS per connection', 'KiB / connection', ok, (m) =>
        point(m.rssBytesPerConn, 1024),
      ),
    ],
  );
  return { table, charts };
}

const autocannonTable = (results: readonly AutocannonResult[]): Table =>
  resultTable(results, (a) => `autocannon ${a.name} (${a.server})`, [
    [
      text('Name', (a) => a.name),
      text('Server', (a) => a.server),
      text('Request', (a) => `${a.method} ${a.path}`, { code: true }),
      num('Connections', (a) => a.connections),
      num('Duration', (a) => a.durationSec, fmtSec),
      status,
    ],
    [
      fig('Requests/s', (a) => a.requestsPerSec, fmtCount),
      fig('Latency p50 ms', (a) => a.latencyMs.p50, fmtMs),
      fig('p99 ms', (a) => a.latencyMs.p99, fmtMs),
      fig('B/request', (a) => a.bytesPerRequest, fmtBytes),
    ],
    [num('Errors', (a) => a.errors), num('Non-2xx', (a) => a.non2xx)],
  ]);

const microTable = (results: readonly MicroResult[]): Table =>
  resultTable(results, (m) => `micro ${m.name}`, [
    [text('Name', (m) => m.name), text('Transport', (m) => m.transport)],
    [
      num('ops/s', (m) => m.opsPerSec),
      num('Mean', (m) => m.meanNs, fmtNs),
      num('p99', (m) => m.p99Ns, fmtNs),
      num('± (rme)', (m) => m.rme, fmtRme),
      num('Samples', (m) => m.samples),
    ],
  ]);

/** Whether a sweep step passed the rule: ran, no loss, p95 measured and within the limit. */
function stepPassed(step: SweepResult['steps'][number], limitMs: number): boolean {
  return step.status === 'ok' && step.lost === 0 && step.p95Ms !== null && step.p95Ms <= limitMs;
}

const stepWhat = (s: SweepResult, clients: number) =>
  `sweep ${s.server}/${s.transport}${over(s.network)} at ${fmtCount(clients)} clients`;

/** The sweep's result per sweep, then its p95 per client count, at most five counts a table. */
function sweepGroup(sweeps: readonly SweepResult[]): Group {
  const t = sweepTable(sweeps);
  const keys = ['Server', 'Transport', 'Network'];
  const first = [...keys, 'Rate', 'Payload', 'Rule', 'Max clients'];
  const runs = runsOf(
    t.headers.filter((h) => !first.includes(h)),
    TABLE_COLUMNS_MAX - keys.length,
  );
  const { table, more } = splitTable(
    { ...t, notes: [] },
    first,
    keys,
    runs.map((r) => [`p95 ms at ${r[0]} to ${r.at(-1)}`, r] as const),
  );
  // The notes say how to read the steps: under the last table of them.
  const last = more.at(-1);
  return last
    ? { table, more: [...more.slice(0, -1), { ...last, notes: t.notes }] }
    : { table: { ...table, notes: t.notes }, more };
}

/** One row per sweep, one column per client count: p95 ms, marked where the rule failed. */
function sweepTable(sweeps: readonly SweepResult[]): Table {
  const counts = [...new Set(sweeps.flatMap((s) => s.steps.map((st) => st.clients)))].sort((a, b) => a - b);
  const headers = [
    'Server',
    'Transport',
    'Network',
    'Rate',
    'Payload',
    'Rule',
    'Max clients',
    ...counts.map((n) => `${fmtCount(n)} clients`),
  ];
  const notes = ['Cells are p95 delivery latency in ms; ✗ marks a step that broke the rule.'];
  const rows = sweeps.map((s): Row => {
    const steps = counts.map((n): Cell => {
      const st = s.steps.find((x) => x.clients === n);
      if (!st) return c('');
      if (st.status === 'invalid') {
        notes.push(
          `${s.server}/${s.transport}${over(s.network)} at ${fmtCount(n)} clients: INVALID: ${why(st.reason)}`,
        );
        return c('INVALID', { strong: true, invalid: true });
      }
      const p95 = st.p95Ms === null ? DASH : fmtMs(st.p95Ms);
      return stepPassed(st, s.p95LimitMs)
        ? c(p95)
        : c(`${p95}${st.lost ? `, lost ${fmtCount(st.lost)}` : ''} ✗`, { strong: true });
    });
    // The sweep's result (max clients) stands even when a step was invalid: only that cell is marked.
    return {
      id: `sweep ${s.server}/${s.transport}${over(s.network)}`,
      invalid: false,
      cells: [
        c(s.server),
        c(s.transport),
        c(s.network.name),
        c(`${fmtCount(s.ratePerSec)} msg/s`),
        c(`${fmtCount(s.payloadBytes)} B`),
        c(`p95 ≤ ${fmtMs(s.p95LimitMs)} ms, no loss`),
        c(fmtCount(s.maxClients), { strong: true }),
        ...steps,
      ],
    };
  });
  return { headers, align: headers.map((_, i) => (i < 6 ? 'l' : 'r')), rows, notes };
}

/** The header facts: where the numbers came from. */
const PROTOCOL_COLUMNS: [Column<ScenarioResult>[], Column<ScenarioResult>[], Column<ScenarioResult>[]] = [
  [
    text('Transport', (s) => s.transport),
    text('Protocol', (s) => protocolLabel(protocolOf(s))),
    text('Server', (s) => s.server),
    status,
  ],
  [
    upPerRequest,
    fig('Out B/msg', (s) => s.wire.bytesOutPerMsg, fmtBytes),
    fig('In B/msg', (s) => s.wire.bytesInPerMsg, fmtBytes),
    fig('Requests/msg', (s) => s.wire.requestsPerMsg, fmtPerMsg),
    fig('CPU µs/msg', (s) => s.serverMetrics.cpuUsPerMsg, fmtMs),
    fig('p99 ms', (s) => s.latencyMs.p99, fmtMs),
    vsFloorCpu,
    ['vs bare: CPU', ratio((v) => v.cpuUsPerMsg), 'r'],
  ],
  [text('Scenario', (s) => s.name)],
];

/** The chat workload's columns: both directions per message, and the send's own round trip. */
const CHAT_COLUMNS: [Column<ScenarioResult>[], Column<ScenarioResult>[]] = [
  [text('Transport', (s) => s.transport), text('Server', (s) => s.server), status],
  [
    fig('Ack p50 ms', (s) => s.chat?.ackMs.p50 ?? NO_FIGURE, fmtMs),
    fig('Ack p99 ms', (s) => s.chat?.ackMs.p99 ?? NO_FIGURE, fmtMs),
    fig('Everyone p50 ms', (s) => s.chat?.everyoneMs.p50 ?? NO_FIGURE, fmtMs),
    fig('Everyone p99 ms', (s) => s.chat?.everyoneMs.p99 ?? NO_FIGURE, fmtMs),
    fig('Up B/send', (s) => s.chat?.bytesUpPerSend ?? NO_FIGURE, fmtBytes),
    fig('Requests/send', (s) => s.chat?.requestsPerSend ?? NO_FIGURE, fmtPerMsg),
    fig('Down B/delivery', (s) => s.chat?.bytesDownPerDelivery ?? NO_FIGURE, fmtBytes),
    fig('CPU µs/msg', (s) => s.serverMetrics.cpuUsPerMsg, fmtMs),
  ],
];

/** A figure nothing measured (a row without chat figures). */
const NO_FIGURE: Figure = Object.freeze({ median: null, min: null, max: null, values: [] });

/** `, sends batched within 50 ms (2.1 a batch)`: the batching and the mean batch the first row's sends made. */
function batchedTitle(s: ScenarioResult): string {
  if (s.batchMs === undefined) return '';
  const perBatch = s.chat?.batches ? s.chat.sent / s.chat.batches : null;
  return `, sends batched within ${s.batchMs} ms${perBatch === null ? '' : ` (${fixed(perBatch, 1)} a batch)`}`;
}

/**
 * `, one more client flooding at 500 msg/s (WebSocket: 1,200 of 7,500 accepted, 5,900 refused, 400 cut; …)`:
 * what each transport's flooder got through, so the others' figures in the table read against it.
 */
function floodTitle(rows: ScenarioResult[]): string {
  const first = rows[0]!;
  if (first.floodPerSec === undefined) return '';
  const each = rows.flatMap((s) =>
    s.chat?.flood
      ? [
          `${s.server === 'lab' ? '' : `${s.server} `}${s.transport}: ${fmtCount(s.chat.flood.accepted)} of ${fmtCount(s.chat.flood.sent)} accepted, ${fmtCount(s.chat.flood.refused)} refused, ${fmtCount(s.chat.flood.cut)} cut`,
        ]
      : [],
  );
  return `, one more client flooding at ${fmtCount(first.floodPerSec)} msg/s${each.length ? ` (${each.join('; ')})` : ''}`;
}

/** "Both directions": per chat condition (shape, network, protocol, proxy), one row per transport. */
function chatGroups(report: Report): Group[] {
  const chat = report.scenarios.filter((s) => s.workload === 'chat');
  return groupBy(
    chat,
    (s) =>
      `${shapeKey(s)}|${s.network.name}|${protocolOf(s)}|${s.proxy ?? ''}|${s.crossOrigin ?? ''}|${s.batchMs ?? ''}|${s.floodPerSec ?? ''}`,
  ).map((g) => {
    const sorted = [...g].sort(byTransportThenServer);
    const first = sorted[0]!;
    const title = `${first.clients} clients each sending ${fixed(first.ratePerSec, first.ratePerSec < 10 ? 1 : 0)} msg/s, ${first.payloadBytes} B${over(first.network)}${onProtocol(first)}${via(first)}${first.crossOrigin ? ', pages on another origin (CORS)' : ''}${batchedTitle(first)}${floodTitle(sorted)}`;
    return splitTable(
      resultTable(sorted, chatRowId, CHAT_COLUMNS, title),
      ['Transport', 'Server', 'Status', 'Ack p50 ms', 'Ack p99 ms', 'Everyone p50 ms', 'Everyone p99 ms'],
      ['Transport', 'Server'],
      [
        [
          'Both directions on the wire, and the server',
          ['Up B/send', 'Requests/send', 'Down B/delivery', 'CPU µs/msg'],
        ],
      ],
    );
  });
}

/** "Transport by protocol": per shape and network measured over more than one protocol, rows by transport, protocol, server. */
function protocolGroups(report: Report): Group[] {
  const order = (s: ScenarioResult) => HTTP_PROTOCOLS.indexOf(protocolOf(s));
  const servers = (s: ScenarioResult) => SERVER_NAMES.indexOf(s.server);
  return groupBy(report.scenarios, (s) => `${shapeKey(s)}|${s.network.name}`)
    .filter((g) => new Set(g.map(protocolOf)).size > 1)
    .map((g) => {
      const sorted = [...g].sort(
        (a, b) =>
          TRANSPORT_NAMES.indexOf(a.transport) - TRANSPORT_NAMES.indexOf(b.transport) ||
          order(a) - order(b) ||
          servers(a) - servers(b),
      );
      const title = `${shapeTitle(sorted[0]!)} · network ${describeProfile(sorted[0]!.network)}`;
      return splitTable(
        resultTable(sorted, scenarioId, PROTOCOL_COLUMNS, title),
        ['Transport', 'Protocol', 'Server', 'Status', 'p99 ms', 'CPU µs/msg', 'vs floor: CPU', 'vs bare: CPU'],
        ['Transport', 'Protocol', 'Server'],
        [['On the wire', ['Up B/request', 'Out B/msg', 'In B/msg', 'Requests/msg', 'Scenario']]],
      );
    });
}

/** A field scenario: what each setting did and its verdict, then its symptoms, at most six a table. */
function fieldGroup(rows: FieldResult[]): Group {
  const t = fieldTable(rows);
  const keys = ['Setting', 'Transport'];
  const symptoms = t.headers.filter((h) => !['What', 'Status', 'Verdict', ...keys].includes(h));
  const runs = runsOf(symptoms, TABLE_COLUMNS_MAX - keys.length);
  return splitTable(
    t,
    [...keys, 'What', 'Status', 'Verdict'],
    keys,
    runs.map((r, i) => [`Symptoms${runs.length > 1 ? ` (${i + 1} of ${runs.length})` : ''}`, r] as const),
  );
}

function fieldTable(rows: FieldResult[]): Table {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.symptoms)))];
  const scaling = [...new Set(rows.flatMap((r) => (r.scaling ? [r.scaling] : [])))];
  return {
    title: rows[0]!.title,
    headers: ['Setting', 'Transport', 'What', 'Status', ...names, 'Verdict'],
    align: ['l', 'l', 'l', 'l', ...names.map(() => 'r' as const), 'l'],
    rows: rows.map((r) => {
      const id = `field ${r.scenario} ${r.setting} ${r.transport}`;
      const cells = [
        c(r.setting),
        c(r.transport),
        c(r.what),
        r.status === 'ok' ? c('ok') : c(`INVALID: ${r.reason ?? ''}`, { strong: true, invalid: true }),
        ...names.map((n) => {
          const v = r.symptoms[n];
          return v === undefined || v === null ? dash() : c(Number.isInteger(v) ? fmtCount(v) : fmtMs(v));
        }),
        c(r.verdict, { strong: r.verdict !== 'works' }),
      ];
      return r.status === 'invalid'
        ? { id, invalid: true, reason: r.reason ?? '', cells }
        : { id, invalid: false, cells };
    }),
    notes: scaling.map((x) => `Scaled: ${x}`),
  };
}

const fmtGoal = (unit: GoalRow['unit'], x: number): string =>
  unit === 'ratio' ? fmtRatio(x) : unit === 'bytes' ? `${fmtCount(Math.round(x))} B` : `${fmtMs(x)} ms`;

function goalsTable(rows: GoalRow[]): Table {
  return {
    headers: ['Target', 'Where', 'Measured', 'Limit', 'Verdict'],
    align: ['l', 'l', 'r', 'r', 'l'],
    rows: rows.map((r) => ({
      id: `target ${r.goal} ${r.where}`,
      invalid: false,
      cells: [
        c(r.goal),
        c(r.where),
        r.measured === null ? dash() : c(fmtGoal(r.unit, r.measured)),
        c(`≤ ${fmtGoal(r.unit, r.limit)}`),
        c(r.met === null ? 'not measured' : r.met ? 'met' : 'NOT MET', { strong: r.met !== true }),
      ],
    })),
    notes: [],
  };
}

function claimsTable(claims: Claim[]): Table {
  return {
    headers: ['Claim', 'Measured', 'How', 'Verdict'],
    align: ['l', 'l', 'l', 'l'],
    rows: claims.map((k, i) => ({
      id: `claim ${i + 1}`,
      invalid: false,
      cells: [c(k.claim), c(k.measured), c(k.how), c(k.verdict, { strong: k.verdict !== 'holds' })],
    })),
    notes: [],
  };
}

/** "Through the proxy": per shape, network and protocol measured both ways, rows by transport, server, path. */
function proxyGroups(report: Report): Group[] {
  const key = (s: ScenarioResult) => `${shapeKey(s)}|${s.network.name}|${protocolOf(s)}|${s.name}`;
  return groupBy(report.scenarios, key)
    .filter((g) => g.some((s) => s.proxy) && g.some((s) => !s.proxy))
    .map((g) => {
      const direct = (s: ScenarioResult) =>
        g.find((d) => !d.proxy && d.server === s.server && d.transport === s.transport);
      const added = (s: ScenarioResult): Cell => {
        const d = direct(s);
        const a = s.latencyMs.p50.median;
        const b = d?.latencyMs.p50.median;
        return !s.proxy ||
          d === undefined ||
          a === null ||
          b === null ||
          b === undefined ||
          s.status !== 'ok' ||
          d.status !== 'ok'
          ? dash()
          : c(fmtMs(a - b));
      };
      const columns: [Column<ScenarioResult>[], Column<ScenarioResult>[], Column<ScenarioResult>[]] = [
        [
          text('Transport', (s) => s.transport),
          text('Server', (s) => s.server),
          text('Path', (s) => s.proxy ?? 'direct'),
          status,
        ],
        [
          fig('Latency p50 ms', (s) => s.latencyMs.p50, fmtMs),
          ['+ p50 ms', added, 'r'],
          fig('p99 ms', (s) => s.latencyMs.p99, fmtMs),
          fig('Out B/msg', (s) => s.wire.bytesOutPerMsg, fmtBytes),
          fig('CPU µs/msg', (s) => s.serverMetrics.cpuUsPerMsg, fmtMs),
        ],
        [text('Scenario', (s) => s.name)],
      ];
      const sorted = [...g].sort(
        (a, b) => byTransportThenServer(a, b) || Number(Boolean(a.proxy)) - Number(Boolean(b.proxy)),
      );
      return splitTable(
        resultTable(
          sorted,
          scenarioId,
          columns,
          `${shapeTitle(sorted[0]!)} · network ${describeProfile(sorted[0]!.network)}${onProtocol(sorted[0]!)}`,
        ),
        ['Transport', 'Server', 'Path', 'Status', 'Latency p50 ms', '+ p50 ms', 'p99 ms'],
        ['Transport', 'Server', 'Path'],
        [['The server’s bytes and CPU', ['Out B/msg', 'CPU µs/msg', 'Scenario']]],
      );
    });
}

/** The clients' header set in words. */
const headersFact = (p: Report['params']): string =>
  p.headers === undefined
    ? 'minimal (the client libraries’ own; recorded from issue 13 on)'
    : `${p.headers === 'browser' ? 'browser (what Chromium sends: bench/clients/fixtures/chromium-headers.json)' : 'minimal (the client libraries’ own)'}${p.cookieBytes ? `, cookie ${fmtCount(p.cookieBytes)} B` : ''}`;

function reportFacts(report: Report): Fact[] {
  const e = report.env;
  const ran = (Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000;
  const lg = e.loadGenerator;
  const lgCpu = lg.cpuUsPerSec === undefined ? '' : `, ${fixed(lg.cpuUsPerSec / 10_000, 0)} % of one core`;
  // The profiles in words (an unlimited rate is `null` in JSON, which a reader would take for "not measured").
  const { networks, ...params } = report.params;
  return [
    {
      label: 'Date',
      value: `${report.startedAt} → ${report.finishedAt}${Number.isFinite(ran) ? ` (${fmtDuration(ran)})` : ''}`,
    },
    { label: 'Git', value: report.git, code: true },
    { label: 'Node', value: e.node },
    { label: 'OS', value: e.os },
    { label: 'CPU', value: `${e.cpuModel || 'unknown model'} × ${e.cpus}` },
    { label: 'Memory', value: fmtSize(e.memoryBytes) },
    { label: 'Load generator', value: `pid ${lg.pid}, ${plural(lg.threads, 'thread')}${lgCpu}` },
    { label: 'Feed', value: `${e.feed}, ${plural(e.workers, 'worker')}` },
    { label: 'Command', value: e.argv.join(' '), code: true },
    { label: 'Networks', value: networks.map(describeProfile).join('; ') },
    { label: 'Request headers', value: headersFact(report.params) },
    ...(report.profiles
      ? [{ label: 'CPU profiles', value: report.profiles.map((p) => p.file).join(', ') || 'none written', code: true }]
      : []),
    { label: 'Parameters', value: JSON.stringify(params), code: true },
    { label: 'Schema', value: report.schema, code: true },
  ];
}

// ---- The answer -----------------------------------------------------------------------------------

/** The question a report answers, from what it measured: its title. */
export function reportQuestion(report: Report): string {
  const s = report.scenarios;
  const distinct = (f: (x: ScenarioResult) => string) => new Set(s.map(f)).size;
  if (report.field?.length) return 'What breaks behind a proxy, and what fixes it?';
  if (s.some((x) => x.workload === 'chat')) return 'What does sending from the client cost on each transport?';
  if (report.claims?.length) return 'Do the popular claims about these transports hold?';
  if (report.params.suite === 'check') return 'Has the lab’s overhead per message regressed?';
  if (s.some((x) => x.server === 'lab-redis')) return 'What does the Redis feed cost?';
  if (s.some((x) => x.proxy)) return 'What does nginx in front add?';
  if (distinct(protocolOf) > 1) return 'Which transport over HTTP/1.1, HTTP/1.1 + TLS and HTTP/2?';
  if (distinct((x) => x.network.name) > 1 && distinct((x) => x.name) === 1) return 'Which transport on which network?';
  if (s.length === 0 && report.sweep?.length) return 'How many clients before latency breaks?';
  return 'Which transport, and what does it cost?';
}

const transportLabel = (t: TransportName): string => TRANSPORT_LABELS[t];

/**
 * The report's first section: each scenario that compared transports (answers.ts), as one small table
 * whose title says the answer: the pick with its p99 and bytes, and the runner-up.
 */
function answerSection(report: Report): Section | undefined {
  const answers = scenarioAnswers(report.scenarios).filter((a) => a.rows.length > 1);
  if (answers.length === 0) return undefined;
  const groups = answers.map((a): Group => {
    const [pick, next] = [a.pick, a.rows.find((r) => r !== a.pick && r.status === 'ok' && r.lost === 0)];
    const said = (x: ScenarioResult) =>
      `${transportLabel(x.transport)} (p99 ${fmtMs(x.latencyMs.p99.median ?? 0)} ms, ${fmtBytes(x.wire.bytesOutPerMsg.median ?? 0)} B/msg)`;
    const title = `${a.condition}${a.server === 'lab' ? '' : ` (${a.server})`}: ${
      pick ? `${said(pick)}${next ? `, then ${said(next)}` : ''}` : 'no valid result'
    }`;
    const verdict: Column<ScenarioResult> = [
      'Verdict',
      (x) =>
        x.status === 'invalid'
          ? c(`INVALID: ${why(x.reason)}`, { strong: true, invalid: true })
          : x.lost > 0
            ? c(`${fmtCount(x.lost)} lost`, { strong: true })
            : x === pick
              ? c('pick', { strong: true })
              : x === next
                ? c('runner-up')
                : c(''),
    ];
    const median = (
      h: string,
      f: (x: ScenarioResult) => Figure,
      fmt: (v: number) => string,
    ): Column<ScenarioResult> => [h, (x) => c(f(x).median === null ? DASH : fmt(f(x).median!)), 'r'];
    return {
      table: resultTable(
        a.rows,
        (x) => `answer ${scenarioId(x)}`,
        [
          [text('Transport', (x) => transportLabel(x.transport))],
          [
            median('p50 ms', (x) => x.latencyMs.p50, fmtMs),
            median('p99 ms', (x) => x.latencyMs.p99, fmtMs),
            median('Out B/msg', (x) => x.wire.bytesOutPerMsg, fmtBytes),
            median('CPU µs/msg', (x) => x.serverMetrics.cpuUsPerMsg, fmtMs),
          ],
          [verdict],
        ],
        title,
      ),
    };
  });
  return {
    title: 'The answer',
    lead: true,
    intro:
      'Per scenario, the transports best first: the lowest delivery p99; within 10 % of it, the fewer bytes per message, then the less CPU (report/answers.ts). Medians over repeats; the detail tables below have the spread.',
    groups,
  };
}

/** Each server in the charts' caption, in words. */
const SERVER_WORDS: Readonly<Record<ServerName, string>> = Object.freeze({
  lab: 'the lab',
  'lab-redis': 'the lab on the Redis feed (lab-redis)',
  bare: 'a minimal hand-written server (bare)',
  floor: 'the leanest Node program for the same bytes (floor)',
  socketio: 'Socket.IO',
  'better-sse': 'better-sse',
  'fastify-sse': '@fastify/sse',
  shift: 'the taught messages.shift() poller (shift)',
});

/** The charts' caption: how to read them, naming only the servers this run charted. */
function chartsIntro(report: Report): string {
  const ran = SERVER_NAMES.filter((n) => [...report.scenarios, ...report.memory].some((x) => x.server === n));
  const list = ran.map((n) => SERVER_WORDS[n]);
  const said = list.length > 1 ? `${list.slice(0, -1).join(', ')} and ${list.at(-1)}` : (list[0] ?? '');
  return `Medians over repeats; hover a bar or point for the min–max. Only valid results are charted. Servers: ${said}.`;
}

/** A row id as an anchor: `row-` and the id in lowercase letters, digits and hyphens. */
export const rowSlug = (id: string): string =>
  `row-${id
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')}`;

/** Gives every row its anchor (see Row.anchor), in the order the sections list them. */
function anchorRows(sections: readonly Section[]): void {
  const seen = new Map<string, number>();
  for (const row of sections.flatMap((s) => s.groups.flatMap((g) => g.table.rows))) {
    const base = rowSlug(row.id);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    row.anchor = n === 0 ? base : `${base}-${n}`;
  }
}

/** The whole report as sections of tables and charts, in the order every renderer shows them. */
export function reportModel(report: Report): ReportModel {
  const sections: Section[] = [];
  const answer = answerSection(report);
  if (answer) sections.push(answer);
  if (report.field?.length) {
    sections.push({
      title: 'Field failures behind a proxy',
      intro:
        'Each failure of these transports seen in production behind a reverse proxy, reproduced with the naive setting, then measured with the lab’s; real nginx, real lab processes, every delivery audited per client. Timeouts are scaled down to run in seconds (each row says how).',
      groups: groupBy(report.field, (f) => f.scenario).map(fieldGroup),
    });
  }
  if (report.claims?.length) {
    sections.push({
      title: 'Claims, re-measured',
      intro:
        'Claims that articles and course notes teaching this topic make (quoted from one such text), each measured as stated in this run (npm run bench -- --claims), with its verdict. The scenarios behind them follow.',
      groups: [{ table: claimsTable(report.claims) }],
    });
  }
  const chat = chatGroups(report);
  if (chat.length) {
    sections.push({
      title: 'Both directions: the chat workload',
      intro:
        'Every client sends on a schedule and receives every client’s messages, its own included (bench/measure/chat.ts): WebSocket clients send frames on their open socket, SSE and polling clients POST /send beside their stream or poll, as a page would. Ack = due → acknowledged to the sender; Everyone = due → delivered to the last client. Up B/send = every client → server byte (sends, polls, connects) per sent message; Requests/send = HTTP requests of any kind per sent message; Down B/delivery = server → client bytes per delivered message. With a flooding client, its traffic (refused sends too) and the CPU it costs are in the per-message figures: what each delivered message cost under the flood. Medians over repeats with min–max.',
      groups: chat,
    });
  }
  const byNetwork = networkGroups(report);
  if (byNetwork.length) {
    sections.push({
      title: 'Transport by network',
      intro:
        'The lab server, each transport over each network (clients through the network emulator; the publisher direct). ' +
        'Beyond one-way = latency p50 − RTT/2: what the transport itself adds to the network’s own delay. Medians over repeats with min–max.',
      groups: byNetwork,
    });
  }
  const byProxy = proxyGroups(report);
  if (byProxy.length) {
    sections.push({
      title: 'Through the proxy',
      intro:
        'Each transport directly and through nginx (the shipped deploy/nginx.conf), in the same run. Latency is end to end, so "+ p50" is what the proxy hop adds; bytes and CPU are the server’s own (through the proxy: the nginx → server hop).',
      groups: byProxy,
    });
  }
  const byProtocol = protocolGroups(report);
  if (byProtocol.length) {
    sections.push({
      title: 'Transport by protocol',
      intro:
        'Each transport over cleartext HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS, lab and bare, in one run. Bytes are what crosses the network (encrypted: TLS records, handshake on connect). ' +
        'Up B/request = client → server bytes per HTTP request: for polling over the measured window (its request headers, framed), for SSE and WebSocket the opening request with its TLS handshake (and HTTP/2 preface). WebSocket is HTTP/1.1 over TLS in the HTTP/2 rows (ws has no RFC 8441).',
      groups: byProtocol,
    });
  }
  if (report.scenarios.length)
    sections.push({
      title: 'Scenarios',
      intro:
        'Latency is received − scheduled (ms); every figure is the median over repeats with min–max. ' +
        'vs bare = lab ÷ bare server (same transport, network and parameters). Floor excess = bytes per message beyond the payload and beyond what the protocol needs.',
      groups: groupBy(report.scenarios, shapeKey)
        .flatMap((shape) => groupBy(shape, (s) => s.network.name))
        .flatMap((net) => groupBy(net, protocolOf))
        .flatMap((proto) => groupBy(proto, (s) => s.proxy ?? 'direct'))
        .map(scenarioGroup),
    });
  if (report.memory.length)
    sections.push({
      title: 'Memory per connection',
      groups: groupBy(report.memory, (m) => m.connections).map(memoryGroup),
    });
  if (report.autocannon.length)
    sections.push({
      title: 'HTTP endpoints (autocannon)',
      groups: [
        splitTable(
          autocannonTable(report.autocannon),
          ['Name', 'Server', 'Status', 'Requests/s', 'Latency p50 ms', 'p99 ms', 'B/request'],
          ['Name', 'Server'],
          [['The load, and what failed', ['Request', 'Connections', 'Duration', 'Errors', 'Non-2xx']]],
        ),
      ],
    });
  if (report.micro.length)
    sections.push({ title: 'Micro-benchmarks (tinybench)', groups: [{ table: microTable(report.micro) }] });
  const goals = goalRows(report);
  if (goals.length) {
    sections.push({
      title: 'Targets (the lab’s own overhead)',
      intro:
        'For the lab’s developers: the lab’s own overhead targets (report/goals.ts), each from this run’s medians: CPU per message against the floor (the least Node needs for the same bytes, every transport), bare and each peer that serves the transport; idle heap per connection against bare and the peers; p99 at 100 clients × 2,000 msg/s; loopback, cleartext HTTP/1.1. Over HTTP/2 + TLS: CPU per message against bare on HTTP/2.',
      groups: [{ table: goalsTable(goals) }],
    });
  }
  if (report.sweep?.length) {
    sections.push({
      title: 'Capacity sweep',
      intro: 'Clients grow until the rule breaks; max clients is the last count that passed.',
      groups: [sweepGroup(report.sweep)],
    });
  }
  anchorRows(sections);
  // A lab scenario's row may show twice (by network, and in its scenario group): listed once.
  const invalidRows = [
    ...new Map(
      sections
        .filter((s) => !s.lead) // the answer repeats the scenario rows
        .flatMap((s) => s.groups.flatMap((g) => g.table.rows.filter((r) => r.invalid)))
        .map((r) => [r.id, r]),
    ).values(),
  ];
  const invalidSteps = (report.sweep ?? []).flatMap((s) =>
    s.steps
      .filter((st) => st.status === 'invalid')
      .map((st) => ({ what: stepWhat(s, st.clients), reason: why(st.reason) })),
  );
  return {
    title: `${reportQuestion(report)} Transport Lab, ${report.startedAt.slice(0, 10)}`,
    commit: /^[0-9a-f]{7,40}/i.test(report.git) ? report.git.slice(0, 7) : report.git,
    facts: reportFacts(report),
    invalid: [...invalidRows.map((r) => ({ what: r.id, reason: why(r.reason) })), ...invalidSteps],
    chartsIntro: chartsIntro(report),
    sections,
    method: Object.entries(report.method).map(([label, value]) => ({ label, value })),
  };
}
