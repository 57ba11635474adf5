/**
 * The report as ONE self-contained HTML file: no external URL anywhere (a Content-Security-Policy of
 * `default-src 'none'` makes the browser refuse any that slipped in), Chart.js's UMD build inlined,
 * the report JSON embedded in `<script type="application/json" id="bench-report">`, and the chart
 * data, computed here by `chartSpecs`, embedded next to it for a small inline script to draw.
 *
 * Invalid results are marked in the tables (the same table model as the Markdown) and left out of
 * every chart; each chart group lists what it left out and why.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  byTransportThenServer,
  groupScenarios,
  invalidResults,
  reportFacts,
  reportTables,
  SERVER_ORDER,
  TRANSPORT_ORDER,
  type Cell,
  type Table,
} from './markdown.js';
import type { Figure, MemoryResult, Report, ScenarioResult, ServerName, TransportName } from './types.js';

// ---- Chart.js -----------------------------------------------------------------------------------

/**
 * Where the Chart.js UMD build lives (a dependency, shared with the dashboard). chart.js's `exports`
 * map does not list `./dist/chart.umd.js`, so resolving that subpath throws ERR_PACKAGE_PATH_NOT_EXPORTED;
 * the package's main entry (`dist/chart.cjs`) sits in the same folder, so resolve that and go next door.
 * (In chart.js 4.5+ `chart.umd.js` is already minified; `chart.umd.min.js` is the same build.)
 */
export function chartJsPath(): string {
  return join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');
}

export async function readChartJsSource(): Promise<string> {
  return readFile(chartJsPath(), 'utf8');
}

// ---- Chart data ---------------------------------------------------------------------------------

export interface ChartDataset {
  label: string;
  color: string;
  /** Medians; null where this series has no valid result for the label. */
  data: (number | null)[];
  /** Spread over repeats for the tooltip, aligned with `data`. */
  spread: ({ min: number; max: number; repeats: number } | null)[];
}

export interface ChartSpec {
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

export interface ChartGroup {
  title: string;
  charts: ChartSpec[];
  /** Invalid results this group's charts leave out. */
  excluded: { what: string; reason: string }[];
}

const SERVER_COLOR: Record<ServerName, string> = { lab: '#2563eb', 'lab-redis': '#dc2626', bare: '#9ca3af', socketio: '#f59e0b' };
const PERCENTILES = [
  { key: 'p50', color: '#93c5fd' },
  { key: 'p90', color: '#3b82f6' },
  { key: 'p99', color: '#1e3a8a' },
] as const;

/** A figure as a chart point: null (a gap the chart skips) where nothing was measured. */
const point = (f: Figure, scale = 1): { value: number | null; spread: ChartDataset['spread'][number] } => ({
  value: f.median === null ? null : f.median / scale,
  spread:
    f.min === null || f.max === null
      ? null
      : { min: f.min / scale, max: f.max / scale, repeats: f.values.filter((v) => v !== null).length },
});

/** Labels = transports present, one dataset per server present: a grouped bar per transport. */
function byTransport<T extends { server: ServerName; transport: TransportName }>(
  id: string,
  title: string,
  yTitle: string,
  items: readonly T[],
  figure: (x: T) => { value: number | null; spread: ChartDataset['spread'][number] } | undefined,
): ChartSpec {
  const transports = TRANSPORT_ORDER.filter((t) => items.some((x) => x.transport === t));
  const servers = SERVER_ORDER.filter((s) => items.some((x) => x.server === s));
  return {
    id,
    title,
    yTitle,
    logarithmic: false,
    wide: false,
    labels: [...transports],
    datasets: servers.map((server) => {
      const points = transports.map((t) => {
        const item = items.find((x) => x.server === server && x.transport === t);
        return item ? figure(item) : undefined;
      });
      return {
        label: server,
        color: SERVER_COLOR[server],
        data: points.map((p) => p?.value ?? null),
        spread: points.map((p) => p?.spread ?? null),
      };
    }),
  };
}

function latencyChart(id: string, scenarios: readonly ScenarioResult[]): ChartSpec {
  const sorted = [...scenarios].sort(byTransportThenServer);
  const smallest = Math.min(...sorted.map((s) => s.latencyMs.p50.median).filter((x): x is number => x !== null && x > 0));
  return {
    id,
    title: 'Delivery latency percentiles (median over repeats)',
    yTitle: 'ms, log scale',
    // Short polling waits up to its interval (~1 s) while pushes take ~1 ms: only a log axis shows both.
    logarithmic: true,
    ...(Number.isFinite(smallest) ? { yMin: 10 ** Math.floor(Math.log10(smallest)) } : {}),
    wide: true,
    labels: sorted.map((s) => `${s.transport} · ${s.server}`),
    datasets: PERCENTILES.map(({ key, color }) => ({
      label: key,
      color,
      data: sorted.map((s) => point(s.latencyMs[key]).value),
      spread: sorted.map((s) => point(s.latencyMs[key]).spread),
    })),
  };
}

/** Every chart, grouped like the tables; only valid results are charted. */
export function chartSpecs(report: Report): ChartGroup[] {
  const groups: ChartGroup[] = [];
  groupScenarios(report.scenarios).forEach((g, i) => {
    const ok = g.scenarios.filter((s) => s.status === 'ok');
    const excluded = g.scenarios
      .filter((s) => s.status === 'invalid')
      .map((s) => ({ what: s.name, reason: s.reason ?? 'no reason given' }));
    const charts =
      ok.length === 0
        ? []
        : [
            latencyChart(`chart-s${i}-latency`, ok),
            byTransport(`chart-s${i}-bytes`, 'Bytes out per message (headers and framing included)', 'bytes / message', ok, (s) =>
              point(s.wire.bytesOutPerMsg),
            ),
            byTransport(`chart-s${i}-cpu`, 'Server CPU per message delivered', 'µs / message', ok, (s) =>
              point(s.serverMetrics.cpuUsPerMsg),
            ),
          ];
    groups.push({ title: g.title, charts, excluded });
  });

  const byConnections = new Map<number, MemoryResult[]>();
  for (const m of report.memory) byConnections.set(m.connections, [...(byConnections.get(m.connections) ?? []), m]);
  [...byConnections.entries()].forEach(([connections, results], i) => {
    const ok = results.filter((m) => m.status === 'ok');
    const excluded = results
      .filter((m) => m.status === 'invalid')
      .map((m) => ({ what: `${m.server}/${m.transport}`, reason: m.reason ?? 'no reason given' }));
    const charts =
      ok.length === 0
        ? []
        : [
            byTransport(`chart-m${i}-heap`, 'Heap per connection', 'KiB / connection', ok, (m) => point(m.heapBytesPerConn, 1024)),
            byTransport(`chart-m${i}-rss`, 'RSS per connection', 'KiB / connection', ok, (m) => point(m.rssBytesPerConn, 1024)),
          ];
    groups.push({ title: `Memory per connection, ${connections.toLocaleString('en-US')} idle connections`, charts, excluded });
  });
  return groups;
}

// ---- HTML ---------------------------------------------------------------------------------------

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);

/**
 * JSON inside `<script type="application/json">`: escaping every `<` (and the two line separators
 * that old parsers choke on) means no string in the report can close the element.
 */
const jsonForScript = (x: unknown): string =>
  JSON.stringify(x).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** Script source inside `<script>`: `</script` would end the element early; `<\/script` means the same in JS. */
const scriptForHtml = (src: string): string => src.replace(/<\/(script)/gi, '<\\/$1');

function cellHtml(cell: Cell, tag: 'td' | 'th', align: 'l' | 'r'): string {
  let inner = escapeHtml(cell.text);
  if (cell.code) inner = `<code>${inner}</code>`;
  if (cell.strong) inner = `<strong>${inner}</strong>`;
  const invalid = cell.text.startsWith('INVALID');
  // A long reason wraps in a column of its own width; a bare "INVALID" marker stays narrow.
  const cls = [align === 'r' ? 'num' : '', invalid ? 'status-invalid' : '', invalid && cell.text.length > 40 ? 'reason' : '']
    .filter(Boolean)
    .join(' ');
  return `<${tag}${cls ? ` class="${cls}"` : ''}>${inner}</${tag}>`;
}

function tableHtml(t: Table): string {
  const head = t.headers.map((h, i) => cellHtml({ text: h }, 'th', t.align[i] ?? 'l')).join('');
  const body = t.rows
    .map((r) => `<tr${r.invalid ? ' class="invalid"' : ''}>${r.cells.map((c, i) => cellHtml(c, 'td', t.align[i] ?? 'l')).join('')}</tr>`)
    .join('\n');
  const notes = t.notes.length ? `<ul class="notes">${t.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : '';
  return `${t.title ? `<h3>${escapeHtml(t.title)}</h3>` : ''}<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>${notes}`;
}

function chartsHtml(groups: readonly ChartGroup[]): string {
  return groups
    .map((g) => {
      const excluded = g.excluded.length
        ? `<p class="excluded">Not charted (invalid): ${g.excluded
            .map((e) => `<strong>${escapeHtml(e.what)}</strong>: ${escapeHtml(e.reason)}`)
            .join('; ')}</p>`
        : '';
      const figures = g.charts
        .map((c) => `<figure${c.wide ? ' class="wide"' : ''}><figcaption>${escapeHtml(c.title)}</figcaption><div class="chart"><canvas id="${escapeHtml(c.id)}"></canvas></div></figure>`)
        .join('\n');
      const none = g.charts.length === 0 ? '<p class="excluded">No valid results to chart.</p>' : '';
      return `<section class="chart-group"><h3>${escapeHtml(g.title)}</h3>${excluded}${none}<div class="charts">\n${figures}\n</div></section>`;
    })
    .join('\n');
}

const CSS = `
:root { color-scheme: light; --border: #d1d5db; --muted: #6b7280; --bad: #b91c1c; --bad-bg: #fef2f2; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 24px; max-width: 1600px; color: #111827; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--border); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
.alert { border: 1px solid var(--bad); background: var(--bad-bg); padding: 8px 12px; border-radius: 6px; margin: 16px 0; }
.alert ul { margin: 4px 0 0; padding-left: 20px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid var(--border); padding: 3px 8px; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f9fafb; font-weight: 600; } .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.invalid td { background: var(--bad-bg); color: var(--muted); }
td.status-invalid, tr.invalid td.status-invalid, .alert strong, .excluded strong { color: var(--bad); }
td.reason { min-width: 280px; white-space: normal; }
.notes { color: var(--muted); margin: 6px 0; padding-left: 20px; }
.excluded { color: var(--bad); margin: 4px 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure.wide { grid-column: 1 / -1; }
figure { margin: 0; border: 1px solid var(--border); border-radius: 6px; padding: 8px 12px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.chart { position: relative; height: 300px; }
dl.method dt { font-weight: 600; } dl.method dd { margin: 0 0 6px 16px; }
`;

/** Builds the charts from the embedded specs; runs in the browser, after Chart.js. */
const CHART_SCRIPT = `
(function () {
  'use strict';
  var groups = JSON.parse(document.getElementById('chart-specs').textContent);
  if (typeof Chart === 'undefined') {
    document.querySelectorAll('.chart').forEach(function (el) { el.textContent = 'Chart.js did not load.'; });
    return;
  }
  var fmt = function (x) { return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2); };
  groups.forEach(function (group) {
    group.charts.forEach(function (spec) {
      var canvas = document.getElementById(spec.id);
      if (!canvas) return;
      new Chart(canvas, {
        type: 'bar',
        data: {
          labels: spec.labels,
          datasets: spec.datasets.map(function (d) {
            return { label: d.label, data: d.data, backgroundColor: d.color, borderColor: d.color, borderWidth: 1 };
          })
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: {
            legend: { position: 'top' },
            tooltip: {
              callbacks: {
                afterLabel: function (ctx) {
                  var s = spec.datasets[ctx.datasetIndex].spread[ctx.dataIndex];
                  return s && s.repeats > 1 ? 'min–max ' + fmt(s.min) + '–' + fmt(s.max) + ' over ' + s.repeats + ' repeats' : '';
                }
              }
            }
          },
          scales: {
            x: { ticks: { autoSkip: false, maxRotation: 60 } },
            y: {
              type: spec.logarithmic ? 'logarithmic' : 'linear',
              beginAtZero: !spec.logarithmic,
              min: spec.yMin,
              title: { display: true, text: spec.yTitle },
              // A log axis labels every tick (…, 700, 800, 900, 1,000): keep 1-2-5 steps only.
              ticks: spec.logarithmic ? { callback: function (v) {
                var m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
                return Math.abs(m - 1) < 1e-6 || Math.abs(m - 2) < 1e-6 || Math.abs(m - 5) < 1e-6 ? (v >= 1 ? v.toLocaleString('en-US') : String(+v.toPrecision(1))) : '';
              } } : {}
            }
          }
        }
      });
    });
  });
})();
`;

export function renderHtml(report: Report, chartJsSource: string): string {
  const short = /^[0-9a-f]{7,40}/i.test(report.git) ? report.git.slice(0, 7) : report.git;
  const title = `Transport Lab bench, ${report.startedAt.slice(0, 10)} (${short})`;
  const facts = reportFacts(report)
    .map((f) => `<dt>${escapeHtml(f.label)}</dt><dd>${f.code ? `<code>${escapeHtml(f.value)}</code>` : escapeHtml(f.value)}</dd>`)
    .join('\n');
  const invalid = invalidResults(report);
  const alert = invalid.length
    ? `<div class="alert"><strong>${invalid.length} invalid result${invalid.length === 1 ? '' : 's'}</strong>, shown without figures and left out of the charts:<ul>${invalid
        .map((i) => `<li>${escapeHtml(i.what)}: <strong>INVALID: ${escapeHtml(i.reason)}</strong></li>`)
        .join('')}</ul></div>`
    : '';
  const method = Object.entries(report.method)
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join('\n');
  const charts = chartSpecs(report);
  const sections = reportTables(report)
    .map(
      (s) =>
        `<section><h2>${escapeHtml(s.title)}</h2>${s.intro ? `<p>${escapeHtml(s.intro)}</p>` : ''}\n${s.tables.map(tableHtml).join('\n')}</section>`,
    )
    .join('\n');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<dl class="facts">
${facts}
</dl>
${alert}
<section><h2>Charts</h2>
<p>Medians over repeats; hover a bar for the min–max. Only valid results are charted; lab, bare and socketio are the same transport served by the lab, a minimal hand-written server and Socket.IO.</p>
${chartsHtml(charts)}
</section>
${sections}
${method ? `<section><h2>Method</h2><dl class="method">\n${method}\n</dl></section>` : ''}
<script type="application/json" id="bench-report">${jsonForScript(report)}</script>
<script type="application/json" id="chart-specs">${jsonForScript(charts)}</script>
<script>${scriptForHtml(chartJsSource)}</script>
<script>${CHART_SCRIPT}</script>
</body>
</html>
`;
}
