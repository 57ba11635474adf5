/**
 * The report as tables a person can paste into an issue. The tables are built once as a small model
 * (`reportTables`) that both this file and html.ts render, so the Markdown and the HTML never disagree.
 *
 * An invalid result is never shown as a fast number: its row says INVALID and why, and every measured
 * figure in it is "—". Counts of what was delivered and lost stay, because they explain the reason.
 */
import type {
  AutocannonResult,
  Figure,
  MemoryResult,
  MicroResult,
  Report,
  ScenarioResult,
  ServerName,
  SweepResult,
  TransportName,
} from './types.js';

// ---- Number formats -----------------------------------------------------------------------------

const nf = (digits: number) =>
  new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const NF = [nf(0), nf(1), nf(2), nf(3), nf(4)] as const;
const fixed = (x: number, digits: 0 | 1 | 2 | 3 | 4): string => NF[digits].format(x);

export const DASH = '—';

/** Whole numbers with thousands separators: 1,500,000. */
export const fmtCount = (x: number): string => fixed(x, 0);
/** Milliseconds: two decimals below 10, one below 100, none above (0.89, 38.2, 1,007). */
export const fmtMs = (x: number): string => fixed(x, Math.abs(x) < 10 ? 2 : Math.abs(x) < 100 ? 1 : 0);
/** Microseconds of CPU: same steps as milliseconds. */
export const fmtUs = fmtMs;
/** Bytes per message or per request: one decimal (260.4). */
export const fmtBytes = (x: number): string => fixed(x, 1);
/** Requests per message: 1.003, 0.0203, 0.0020. */
export const fmtPerMsg = (x: number): string =>
  x === 0 ? '0' : Math.abs(x) >= 1 ? fixed(x, 3) : Math.abs(x) >= 0.01 ? fixed(x, 4) : x.toPrecision(2);
/** A ratio against the bare server: ×1.23. */
export const fmtRatio = (x: number): string => `×${fixed(x, 2)}`;
/** Memory sizes: 9.6 KiB, 15.6 GiB (signed: retained heap can be negative). */
export function fmtSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${bytes < 0 ? '−' : ''}${u === 0 ? fixed(v, 0) : fixed(v, 1)} ${units[u]}`;
}
/** Durations from nanoseconds: 778.6 ns, 41.9 µs, 1.20 ms. */
export function fmtNs(ns: number): string {
  if (ns < 1_000) return `${fixed(ns, 1)} ns`;
  if (ns < 1_000_000) return `${fixed(ns / 1_000, 1)} µs`;
  return `${fixed(ns / 1_000_000, 2)} ms`;
}
/** Memory per connection in KiB, one decimal (negative when the heap shrank). */
export const fmtKiB = (bytes: number): string => fixed(bytes / 1024, 1);
/** Seconds as "33 min 35 s". */
export function fmtDuration(sec: number): string {
  const s = Math.round(sec);
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

/** A number that may be null ("not measured"): "—" for null, never "null" or "NaN". */
export const fmtOrDash = (x: number | null, fmt: (x: number) => string): string => (x === null ? DASH : fmt(x));

/**
 * "median (min–max)"; just the median when the repeats agree or there was one; "—" when nothing was
 * measured (null median).
 */
export function fmtFigure(f: Figure, fmt: (x: number) => string): string {
  const { median, min, max } = f;
  if (median === null) return DASH;
  const m = fmt(median);
  if (min === null || max === null) return m;
  const lo = fmt(min);
  const hi = fmt(max);
  // An en dash between two negative numbers reads as a minus: spell the range out then.
  const sep = min < 0 || max < 0 ? ' to ' : '–';
  return lo === hi ? m : `${m} (${lo}${sep}${hi})`;
}

// ---- The table model ----------------------------------------------------------------------------

export interface Cell {
  text: string;
  /** Bold: the INVALID marker and its reason. */
  strong?: boolean;
  /** Code span: paths, command lines. */
  code?: boolean;
}

export interface Row {
  cells: Cell[];
  /** The row reports an invalid result; renderers mark it. */
  invalid: boolean;
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

export interface Section {
  title: string;
  /** A sentence under the heading. */
  intro?: string;
  tables: Table[];
}

const c = (text: string, extra: Omit<Cell, 'text'> = {}): Cell => ({ text, ...extra });
const dash = (): Cell => c(DASH);

/** The status cell: "ok", or INVALID with the reason, in bold. */
function statusCell(status: 'ok' | 'invalid', reason: string | undefined): Cell {
  return status === 'ok' ? c('ok') : c(`INVALID: ${reason ?? 'no reason given'}`, { strong: true });
}

export const TRANSPORT_ORDER: readonly TransportName[] = ['poll', 'short-poll', 'sse', 'ws'];
export const SERVER_ORDER: readonly ServerName[] = ['lab', 'lab-redis', 'bare', 'socketio'];

/** Transport first, then server: the rows a reader compares sit next to each other. */
export function byTransportThenServer<T extends { transport: TransportName; server: ServerName }>(a: T, b: T): number {
  return (
    TRANSPORT_ORDER.indexOf(a.transport) - TRANSPORT_ORDER.indexOf(b.transport) ||
    SERVER_ORDER.indexOf(a.server) - SERVER_ORDER.indexOf(b.server)
  );
}

export interface ScenarioGroup {
  key: string;
  clients: number;
  ratePerSec: number;
  payloadBytes: number;
  /** "100 clients · 50 msg/s · 256 B payload · 10 s × 3 repeats" */
  title: string;
  scenarios: ScenarioResult[];
}

/** Scenarios with the same clients, rate and payload, in the order the groups first appear. */
export function groupScenarios(scenarios: readonly ScenarioResult[]): ScenarioGroup[] {
  const groups = new Map<string, ScenarioGroup>();
  for (const s of scenarios) {
    const key = `${s.clients}/${s.ratePerSec}/${s.payloadBytes}`;
    let g = groups.get(key);
    if (!g) {
      g = { key, clients: s.clients, ratePerSec: s.ratePerSec, payloadBytes: s.payloadBytes, title: '', scenarios: [] };
      groups.set(key, g);
    }
    g.scenarios.push(s);
  }
  for (const g of groups.values()) {
    g.scenarios.sort(byTransportThenServer);
    const runs = [...new Set(g.scenarios.map((s) => `${fmtCount(s.durationSec)} s × ${s.repeats} repeat${s.repeats === 1 ? '' : 's'}`))];
    g.title = `${fmtCount(g.clients)} client${g.clients === 1 ? '' : 's'} · ${fmtCount(g.ratePerSec)} msg/s · ${fmtCount(g.payloadBytes)} B payload · ${runs.join(' / ')}`;
  }
  return [...groups.values()];
}

function deliveredCell(s: ScenarioResult): Cell {
  const extras: string[] = [];
  if (s.lost) extras.push(`lost ${fmtCount(s.lost)}`);
  if (s.duplicated) extras.push(`dup ${fmtCount(s.duplicated)}`);
  if (s.reordered) extras.push(`reordered ${fmtCount(s.reordered)}`);
  if (s.gaps) extras.push(`gaps ${fmtCount(s.gaps)}`);
  return c(`${fmtCount(s.delivered)} / ${fmtCount(s.expected)}${extras.length ? `, ${extras.join(', ')}` : ''}`);
}

function scenarioTable(g: ScenarioGroup): Table {
  const headers = [
    'Server',
    'Transport',
    'Status',
    'Delivered / expected',
    'Latency p50 ms',
    'p99 ms',
    'max ms',
    'Out B/msg',
    'In B/msg',
    'Requests/msg',
    'CPU µs/msg',
    'vs bare: CPU',
    'vs bare: bytes',
    'vs bare: p99',
    'Floor excess B/msg (overhead − floor)',
    'Event loop p99 ms',
    'Publisher lag p99 ms',
  ];
  const rows = g.scenarios.map((s): Row => {
    const head = [c(s.server), c(s.transport), statusCell(s.status, s.reason), deliveredCell(s)];
    if (s.status === 'invalid') return { cells: [...head, ...headers.slice(head.length).map(dash)], invalid: true };
    return {
      invalid: false,
      cells: [
        ...head,
        c(fmtFigure(s.latencyMs.p50, fmtMs)),
        c(fmtFigure(s.latencyMs.p99, fmtMs)),
        c(fmtFigure(s.latencyMs.max, fmtMs)),
        c(fmtFigure(s.wire.bytesOutPerMsg, fmtBytes)),
        c(fmtFigure(s.wire.bytesInPerMsg, fmtBytes)),
        c(fmtFigure(s.wire.requestsPerMsg, fmtPerMsg)),
        c(fmtFigure(s.serverMetrics.cpuUsPerMsg, fmtUs)),
        s.vsBare ? c(fmtRatio(s.vsBare.cpuUsPerMsg)) : dash(),
        s.vsBare ? c(fmtRatio(s.vsBare.bytesOutPerMsg)) : dash(),
        s.vsBare ? c(fmtRatio(s.vsBare.latencyP99)) : dash(),
        s.floor
          ? c(`${fmtBytes(s.floor.excessBytesPerMsg)} (${fmtBytes(s.floor.overheadBytesPerMsg)} − ${fmtBytes(s.floor.floorBytesPerMsg)})`)
          : dash(),
        c(fmtFigure(s.serverMetrics.eventLoopDelayP99Ms, fmtMs)),
        c(fmtFigure(s.publisherLagMs.p99, fmtMs)),
      ],
    };
  });
  return {
    title: g.title,
    headers,
    align: headers.map((_, i) => (i < 4 ? 'l' : 'r')),
    rows,
    notes: [],
  };
}

function memoryTable(memory: readonly MemoryResult[]): Table {
  const headers = ['Server', 'Transport', 'Connections', 'Status', 'Heap KiB/conn', 'RSS KiB/conn', 'Heap retained after close, KiB'];
  const rows = [...memory].sort(byTransportThenServer).map((m): Row => {
    const head = [c(m.server), c(m.transport), c(fmtCount(m.connections)), statusCell(m.status, m.reason)];
    if (m.status === 'invalid') return { cells: [...head, dash(), dash(), dash()], invalid: true };
    return {
      invalid: false,
      cells: [
        ...head,
        c(fmtFigure(m.heapBytesPerConn, fmtKiB)),
        c(fmtFigure(m.rssBytesPerConn, fmtKiB)),
        c(fmtFigure(m.heapRetainedAfterCloseBytes, fmtKiB)),
      ],
    };
  });
  return { headers, align: ['l', 'l', 'r', 'l', 'r', 'r', 'r'], rows, notes: [] };
}

function autocannonTable(results: readonly AutocannonResult[]): Table {
  const headers = ['Name', 'Server', 'Request', 'Connections', 'Duration', 'Status', 'Requests/s', 'Latency p50 ms', 'p99 ms', 'B/request', 'Errors', 'Non-2xx'];
  const rows = results.map((a): Row => {
    const head = [
      c(a.name),
      c(a.server),
      c(`${a.method} ${a.path}`, { code: true }),
      c(fmtCount(a.connections)),
      c(`${fmtCount(a.durationSec)} s`),
      statusCell(a.status, a.reason),
    ];
    const counts = [c(fmtCount(a.errors)), c(fmtCount(a.non2xx))];
    if (a.status === 'invalid') return { cells: [...head, dash(), dash(), dash(), dash(), ...counts], invalid: true };
    return {
      invalid: false,
      cells: [
        ...head,
        c(fmtFigure(a.requestsPerSec, fmtCount)),
        c(fmtFigure(a.latencyMs.p50, fmtMs)),
        c(fmtFigure(a.latencyMs.p99, fmtMs)),
        c(fmtFigure(a.bytesPerRequest, fmtBytes)),
        ...counts,
      ],
    };
  });
  return { headers, align: ['l', 'l', 'l', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'], rows, notes: [] };
}

function microTable(results: readonly MicroResult[]): Table {
  const headers = ['Name', 'Transport', 'ops/s', 'Mean', 'p99', '± (rme)', 'Samples'];
  const rows = results.map(
    (m): Row => ({
      invalid: false,
      cells: [
        c(m.name),
        c(m.transport),
        c(fmtCount(m.opsPerSec)),
        c(fmtNs(m.meanNs)),
        c(fmtNs(m.p99Ns)),
        c(`±${fixed(m.rme, 2)} %`),
        c(fmtCount(m.samples)),
      ],
    }),
  );
  return { headers, align: ['l', 'l', 'r', 'r', 'r', 'r', 'r'], rows, notes: [] };
}

/** Whether a sweep step passed the rule: ran, no loss, p95 measured and within the limit. */
export function stepPassed(step: SweepResult['steps'][number], limitMs: number): boolean {
  return step.status === 'ok' && step.lost === 0 && step.p95Ms !== null && step.p95Ms <= limitMs;
}

/** One row per sweep, one column per client count: p95 ms, marked where the rule failed. */
function sweepTable(sweeps: readonly SweepResult[]): Table {
  const counts = [...new Set(sweeps.flatMap((s) => s.steps.map((st) => st.clients)))].sort((a, b) => a - b);
  const headers = ['Server', 'Transport', 'Rate', 'Payload', 'Rule', 'Max clients', ...counts.map((n) => `${fmtCount(n)} clients`)];
  const notes: string[] = [];
  const rows = sweeps.map((s): Row => {
    const steps = counts.map((n): Cell => {
      const st = s.steps.find((x) => x.clients === n);
      if (!st) return c('');
      if (st.status === 'invalid') {
        notes.push(`${s.server}/${s.transport} at ${fmtCount(n)} clients: INVALID: ${st.reason ?? 'no reason given'}`);
        return c('INVALID', { strong: true });
      }
      const lost = st.lost ? `, lost ${fmtCount(st.lost)}` : '';
      const p95 = fmtOrDash(st.p95Ms, fmtMs);
      return stepPassed(st, s.p95LimitMs) ? c(p95) : c(`${p95}${lost} ✗`, { strong: true });
    });
    // The sweep's result (max clients) stands even when a step was invalid: only that cell is marked.
    return {
      invalid: false,
      cells: [
        c(s.server),
        c(s.transport),
        c(`${fmtCount(s.ratePerSec)} msg/s`),
        c(`${fmtCount(s.payloadBytes)} B`),
        c(`p95 ≤ ${fmtMs(s.p95LimitMs)} ms, no loss`),
        c(fmtCount(s.maxClients), { strong: true }),
        ...steps,
      ],
    };
  });
  notes.unshift('Cells are p95 delivery latency in ms; ✗ marks a step that broke the rule.');
  return { headers, align: headers.map((_, i) => (i < 5 ? 'l' : 'r')), rows, notes };
}

/** Every section of the report, in order; both renderers walk this. */
export function reportTables(report: Report): Section[] {
  const sections: Section[] = [];
  const groups = groupScenarios(report.scenarios);
  sections.push({
    title: 'Scenarios',
    intro:
      'Latency is received − scheduled (ms); every figure is the median over repeats with min–max. ' +
      'vs bare = lab ÷ bare server (same transport and parameters). Floor excess = bytes per message beyond the payload and beyond what the protocol needs.',
    tables: groups.map(scenarioTable),
  });
  if (report.memory.length) {
    sections.push({ title: 'Memory per connection', tables: [memoryTable(report.memory)] });
  }
  if (report.autocannon.length) {
    sections.push({ title: 'HTTP endpoints (autocannon)', tables: [autocannonTable(report.autocannon)] });
  }
  if (report.micro.length) {
    sections.push({ title: 'Micro-benchmarks (tinybench)', tables: [microTable(report.micro)] });
  }
  if (report.sweep?.length) {
    sections.push({
      title: 'Capacity sweep',
      intro: 'Clients grow until the rule breaks; max clients is the last count that passed.',
      tables: [sweepTable(report.sweep)],
    });
  }
  return sections;
}

/** Invalid results of every kind, for the summary at the top. */
export function invalidResults(report: Report): { what: string; reason: string }[] {
  const out: { what: string; reason: string }[] = [];
  const reason = (r: string | undefined) => r ?? 'no reason given';
  for (const s of report.scenarios) if (s.status === 'invalid') out.push({ what: `scenario ${s.name}`, reason: reason(s.reason) });
  for (const m of report.memory) {
    if (m.status === 'invalid') out.push({ what: `memory ${m.server}/${m.transport} × ${fmtCount(m.connections)}`, reason: reason(m.reason) });
  }
  for (const a of report.autocannon) if (a.status === 'invalid') out.push({ what: `autocannon ${a.name} (${a.server})`, reason: reason(a.reason) });
  for (const s of report.sweep ?? []) {
    for (const st of s.steps) {
      if (st.status === 'invalid') out.push({ what: `sweep ${s.server}/${s.transport} at ${fmtCount(st.clients)} clients`, reason: reason(st.reason) });
    }
  }
  return out;
}

/** The header facts: where the numbers came from. */
export function reportFacts(report: Report): { label: string; value: string; code?: boolean }[] {
  const e = report.env;
  const ran = (Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000;
  const lg = e.loadGenerator;
  const lgCpu = lg.cpuUsPerSec === undefined ? '' : `, ${fixed(lg.cpuUsPerSec / 10_000, 0)} % of one core`;
  return [
    { label: 'Date', value: `${report.startedAt} → ${report.finishedAt}${Number.isFinite(ran) ? ` (${fmtDuration(ran)})` : ''}` },
    { label: 'Git', value: report.git, code: true },
    { label: 'Node', value: e.node },
    { label: 'OS', value: e.os },
    { label: 'CPU', value: `${e.cpuModel || 'unknown model'} × ${e.cpus}` },
    { label: 'Memory', value: fmtSize(e.memoryBytes) },
    { label: 'Load generator', value: `pid ${lg.pid}, ${lg.threads} thread${lg.threads === 1 ? '' : 's'}${lgCpu}` },
    { label: 'Feed', value: `${e.feed}, ${e.workers} worker${e.workers === 1 ? '' : 's'}` },
    { label: 'Command', value: e.argv.join(' '), code: true },
    { label: 'Parameters', value: JSON.stringify(report.params), code: true },
    { label: 'Schema', value: report.schema, code: true },
  ];
}

// ---- Markdown -----------------------------------------------------------------------------------

/** Escapes what would change meaning in a GitHub table cell; newlines become spaces. */
const escapeMd = (s: string): string => s.replace(/\r?\n/g, ' ').replace(/([\\`*|<[\]])/g, '\\$1');

function codeSpan(s: string): string {
  // A pipe ends a table cell even inside a code span on GitHub; backticks need a longer fence.
  const t = s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  const fence = t.includes('`') ? '``' : '`';
  return `${fence}${fence.length > 1 ? ' ' : ''}${t}${fence.length > 1 ? ' ' : ''}${fence}`;
}

function mdCell(cell: Cell): string {
  if (cell.code) return codeSpan(cell.text);
  if (cell.text === '') return '';
  const t = escapeMd(cell.text);
  return cell.strong ? `**${t}**` : t;
}

function mdTable(t: Table): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const out = [
    line(t.headers.map(escapeMd)),
    line(t.align.map((a) => (a === 'r' ? '---:' : '---'))),
    ...t.rows.map((r) => line(r.cells.map(mdCell))),
  ];
  if (t.notes.length) out.push('', ...t.notes.map((n) => `- ${escapeMd(n)}`));
  return out.join('\n');
}

export function renderMarkdown(report: Report): string {
  const out: string[] = [`# Transport Lab bench, ${report.startedAt.slice(0, 10)}`, ''];
  for (const f of reportFacts(report)) out.push(`- **${f.label}:** ${f.code ? codeSpan(f.value) : escapeMd(f.value)}`);
  out.push('');

  const invalid = invalidResults(report);
  if (invalid.length) {
    out.push(`> **${invalid.length} invalid result${invalid.length === 1 ? '' : 's'}**, shown without figures:`, '>');
    for (const i of invalid) out.push(`> - ${escapeMd(i.what)}: **INVALID: ${escapeMd(i.reason)}**`);
    out.push('');
  }

  const method = Object.entries(report.method);
  if (method.length) {
    out.push('## Method', '');
    for (const [k, v] of method) out.push(`- **${escapeMd(k)}:** ${escapeMd(v)}`);
    out.push('');
  }

  for (const section of reportTables(report)) {
    out.push(`## ${section.title}`, '');
    if (section.intro) out.push(escapeMd(section.intro), '');
    for (const t of section.tables) {
      if (t.title) out.push(`### ${escapeMd(t.title)}`, '');
      out.push(mdTable(t), '');
    }
  }
  return out.join('\n');
}
