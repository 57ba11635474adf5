/**
 * The report as ONE self-contained HTML file: no external URL anywhere (a Content-Security-Policy of
 * `default-src 'none'` makes the browser refuse any that slipped in), Chart.js's UMD build inlined,
 * the report JSON embedded in `<script type="application/json" id="bench-report">`, and the model's
 * chart specs next to it, drawn by web/theme.js (inlined: the dashboard draws them with the same code).
 *
 * Tables and charts are the one model's (model.ts): invalid results are marked in the tables and left
 * out of every chart; each chart group lists what it left out and why.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { reportModel, type Cell, type ChartGroup, type Table } from './model.js';
import type { Report } from './types.js';

/** The scripts the page inlines: Chart.js's UMD build and the dashboard's chart configuration. */
export interface HtmlScripts {
  chartJs: string;
  theme: string;
}

/**
 * chart.js's `exports` map does not list `./dist/chart.umd.js` (resolving it throws
 * ERR_PACKAGE_PATH_NOT_EXPORTED); its main entry (`dist/chart.cjs`) sits in the same folder.
 */
export const chartJsPath = (): string =>
  join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');
const THEME_PATH = new URL('../web/theme.js', import.meta.url);

export async function readHtmlScripts(): Promise<HtmlScripts> {
  const [chartJs, theme] = await Promise.all([readFile(chartJsPath(), 'utf8'), readFile(THEME_PATH, 'utf8')]);
  return { chartJs, theme };
}

export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);

/**
 * JSON inside `<script type="application/json">`: escaping every `<` (and the two line separators
 * that old parsers choke on) means no string in the report can close the element.
 */
const jsonForScript = (x: unknown): string =>
  JSON.stringify(x)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** Script source inside `<script>`: `</script` would end the element early; `<\/script` means the same in JS. */
const scriptForHtml = (src: string): string => src.replace(/<\/(script)/gi, '<\\/$1');

function cellHtml(cell: Cell, tag: 'td' | 'th', align: 'l' | 'r'): string {
  let inner = escapeHtml(cell.text);
  if (cell.code) inner = `<code>${inner}</code>`;
  if (cell.strong) inner = `<strong>${inner}</strong>`;
  // A long reason wraps in a column of its own width; a bare "INVALID" marker stays narrow.
  const cls = [
    align === 'r' ? 'num' : '',
    cell.invalid ? 'status-invalid' : '',
    cell.invalid && cell.text.length > 40 ? 'reason' : '',
  ]
    .filter(Boolean)
    .join(' ');
  return `<${tag}${cls ? ` class="${cls}"` : ''}>${inner}</${tag}>`;
}

/** A table under its title: `h3` for a group's, `h4` for the group's further concerns (Group.more). */
function tableHtml(t: Table, heading = 'h3'): string {
  const head = t.headers.map((h, i) => cellHtml({ text: h }, 'th', t.align[i] ?? 'l')).join('');
  const body = t.rows
    .map(
      (r) =>
        `<tr${r.invalid ? ' class="invalid"' : ''}${r.anchor ? ` id="${r.anchor}"` : ''}>${r.cells.map((c, i) => cellHtml(c, 'td', t.align[i] ?? 'l')).join('')}</tr>`,
    )
    .join('\n');
  const notes = t.notes.length
    ? `<ul class="notes">${t.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`
    : '';
  return `${t.title ? `<${heading}>${escapeHtml(t.title)}</${heading}>` : ''}<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>${notes}`;
}

function chartGroupHtml(g: ChartGroup): string {
  const excluded = g.excluded.length
    ? `<p class="excluded">Not charted (invalid): ${g.excluded.map((e) => `<strong>${escapeHtml(e.what)}</strong>: ${escapeHtml(e.reason)}`).join('; ')}</p>`
    : '';
  const figures = g.charts
    .map(
      (c) =>
        `<figure${c.wide ? ' class="wide"' : ''}><figcaption>${escapeHtml(c.title)}</figcaption><div class="chart"><canvas id="${escapeHtml(c.id)}"></canvas></div></figure>`,
    )
    .join('\n');
  const none = g.charts.length === 0 ? '<p class="excluded">No valid results to chart.</p>' : '';
  return `<section class="chart-group"><h3>${escapeHtml(g.title)}</h3>${excluded}${none}<div class="charts">\n${figures}\n</div></section>`;
}

const CSS = `
:root { color-scheme: light; --border: #d1d5db; --muted: #6b7280; --bad: #b91c1c; --bad-bg: #fef2f2; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 24px; max-width: 1600px; color: #111827; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--border); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
h4 { font-size: 13px; margin: 12px 0 6px; color: #555; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
.alert { border: 1px solid var(--bad); background: var(--bad-bg); padding: 8px 12px; border-radius: 6px; margin: 16px 0; }
.alert ul { margin: 4px 0 0; padding-left: 20px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid var(--border); padding: 3px 8px; text-align: left; vertical-align: top; }
td { min-width: 4em; } td:has(code) { overflow-wrap: anywhere; }
th { background: #f9fafb; font-weight: 600; } .num { text-align: right; font-variant-numeric: tabular-nums; } td.num { white-space: nowrap; }
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

/** Draws the embedded chart specs; appended to web/theme.js in one module script, after Chart.js. */
const DRAW_CHARTS = `
const Chart = chartLib();
for (const spec of JSON.parse(document.getElementById('chart-specs').textContent).flatMap((g) => g.charts)) {
  const canvas = document.getElementById(spec.id);
  if (!Chart) canvas.parentElement.textContent = 'Chart.js did not load.';
  else new Chart(canvas, reportChartConfig(spec));
}
`;

export function renderHtml(report: Report, scripts: HtmlScripts): string {
  const m = reportModel(report);
  const title = `${m.title} (${m.commit})`;
  const facts = m.facts
    .map(
      (f) =>
        `<dt>${escapeHtml(f.label)}</dt><dd>${f.code ? `<code>${escapeHtml(f.value)}</code>` : escapeHtml(f.value)}</dd>`,
    )
    .join('\n');
  const alert = m.invalid.length
    ? `<div class="alert"><strong>${m.invalid.length} invalid result${m.invalid.length === 1 ? '' : 's'}</strong>, shown without figures and left out of the charts:<ul>${m.invalid
        .map((i) => `<li>${escapeHtml(i.what)}: <strong>INVALID: ${escapeHtml(i.reason)}</strong></li>`)
        .join('')}</ul></div>`
    : '';
  const method = m.method.map((f) => `<dt>${escapeHtml(f.label)}</dt><dd>${escapeHtml(f.value)}</dd>`).join('\n');
  const charts = m.sections.flatMap((s) => s.groups.flatMap((g) => (g.charts ? [g.charts] : [])));
  const sectionHtml = (s: (typeof m.sections)[number]) =>
    `<section><h2>${escapeHtml(s.title)}</h2>${s.intro ? `<p>${escapeHtml(s.intro)}</p>` : ''}\n${s.groups.map((g) => [tableHtml(g.table), ...(g.more ?? []).map((t) => tableHtml(t, 'h4'))].join('\n')).join('\n')}</section>`;
  const lead = m.sections
    .filter((s) => s.lead)
    .map(sectionHtml)
    .join('\n');
  const sections = m.sections
    .filter((s) => !s.lead)
    .map(sectionHtml)
    .join('\n');
  const chartSection = charts.length
    ? `<section><h2>Charts</h2>\n<p>${escapeHtml(m.chartsIntro)}</p>\n${charts.map(chartGroupHtml).join('\n')}\n</section>`
    : '';

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
${alert}
${lead}
${chartSection}
${sections}
<section><h2>Appendix: environment, parameters and method</h2>
<dl class="facts">
${facts}
</dl>
${method ? `<h3>Method</h3><dl class="method">\n${method}\n</dl>` : ''}
</section>
<script type="application/json" id="bench-report">${jsonForScript(report)}</script>
<script type="application/json" id="chart-specs">${jsonForScript(charts)}</script>
<script>${scriptForHtml(scripts.chartJs)}</script>
<script type="module">${scriptForHtml(`${scripts.theme}\n${DRAW_CHARTS}`)}</script>
</body>
</html>
`;
}
