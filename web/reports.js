// The Reports view: lists GET /reports (bench reports in results/, newest first) and renders the
// chosen one from its model, GET /reports/<name>/model: the table and chart model of
// report/model.ts, the same one the Markdown and the self-contained HTML report are rendered
// from. Grouping, colours, number formats and INVALID marking are all the model's; this file only
// turns it into DOM, and draws the charts with theme.js's reportChartConfig, as the HTML report does.

import { api } from './api.js';
import { chartLib, reportChartConfig } from './theme.js';

/**
 * @typedef {import('../report/model.ts').ReportModel} ReportModel
 * @typedef {import('../report/model.ts').Group} Group
 * @typedef {import('../report/model.ts').Table} Table
 * @typedef {import('../report/model.ts').Cell} Cell
 * @typedef {import('../report/model.ts').Fact} Fact
 * @typedef {import('../report/model.ts').ChartSpec} ChartSpec
 * @typedef {{name: string, title?: string, startedAt: string, git: string}} ReportEntry
 * @typedef {Node | string | null | undefined | false} Child
 */

/**
 * Tiny DOM builder: h('td', {className: 'x', dataset: {a: '1'}}, 'text', child).
 * @param {string} tag @param {Record<string, any>} [props] @param {...Child} children
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el) /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** @param {string} sha */
const shortSha = (sha) => (/^[0-9a-f]{40}$/i.test(sha) ? sha.slice(0, 8) : sha);
/** @param {string} iso */
const when = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
};
/** @param {unknown} err */
const message = (err) => (err instanceof Error ? err.message : String(err));

export class ReportsView {
  /** @param {HTMLElement} list @param {HTMLElement} target */
  constructor(list, target) {
    this.list = list;
    this.target = target;
    /** @type {any[]} Chart instances of the report on screen */
    this.charts = [];
    /** @type {string | undefined} */
    this.current = undefined;
  }

  async show() {
    /** @type {ReportEntry[]} */
    let entries;
    try {
      entries = /** @type {{reports: ReportEntry[]}} */ (await api('/reports')).reports;
    } catch (err) {
      this.list.replaceChildren(h('li', { className: 'hint' }, `GET /reports failed: ${message(err)}`));
      return;
    }
    if (entries.length === 0) {
      this.list.replaceChildren(
        h('li', { className: 'hint' }, 'No reports yet: run npm run bench (or npm run bench -- --quick).'),
      );
      this.target.replaceChildren();
      return;
    }
    this.list.replaceChildren(
      ...entries.map((r) => {
        const btn = h(
          'button',
          { type: 'button', className: 'report-link', dataset: { report: r.name } },
          h('strong', {}, r.title ?? r.name),
          ` · ${when(r.startedAt)} · ${shortSha(r.git)} · ${r.name}`,
        );
        btn.addEventListener('click', () => void this.open(r.name));
        return h('li', {}, btn);
      }),
    );
    const wanted = this.current && entries.some((r) => r.name === this.current) ? this.current : entries[0]?.name;
    if (wanted) await this.open(wanted);
  }

  /** @param {string} name */
  async open(name) {
    this.current = name;
    for (const b of this.list.querySelectorAll('.report-link')) {
      /** @type {HTMLElement} */ (b).classList.toggle(
        'selected',
        /** @type {HTMLElement} */ (b).dataset.report === name,
      );
    }
    const path = `/reports/${name.split('/').map(encodeURIComponent).join('/')}/model`;
    /** @type {ReportModel} */
    let model;
    try {
      model = await api(path);
    } catch (err) {
      this.target.replaceChildren(h('p', { className: 'hint' }, `GET ${path} failed: ${message(err)}`));
      return;
    }
    if (this.current !== name) return; // another report was chosen meanwhile
    this.render(name, model);
  }

  /** @param {string} name @param {ReportModel} m */
  render(name, m) {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    /** @type {[HTMLCanvasElement, ChartSpec][]} */
    const pending = [];
    const out = h('div', { className: 'report', dataset: { report: name } }, summary(name, m));
    for (const s of m.sections) {
      out.append(
        h(
          'section',
          { className: 'card report-section' },
          h(
            'div',
            { className: 'card-head' },
            h('h2', {}, s.title),
            s.intro ? h('p', { className: 'hint' }, s.intro) : null,
          ),
          ...s.groups.map((g) => group(g, pending)),
        ),
      );
    }
    // The appendix: where the numbers came from and how each is measured.
    out.append(
      h(
        'section',
        { className: 'card report-appendix' },
        h('div', { className: 'card-head' }, h('h2', {}, 'Appendix: environment, parameters and method')),
        h('dl', { className: 'facts' }, ...m.facts.flatMap(fact)),
        ...(m.method.length ? [h('h3', {}, 'Method'), h('dl', { className: 'facts' }, ...m.method.flatMap(fact))] : []),
      ),
    );
    this.target.replaceChildren(out);
    // Charts size themselves from their box: create them once the boxes are in the document.
    const Chart = chartLib();
    for (const [canvas, spec] of pending) {
      if (Chart) this.charts.push(new Chart(canvas, reportChartConfig(spec)));
      else canvas.replaceWith(h('p', { className: 'hint' }, 'chart.js did not load (/vendor/chart.umd.js)'));
    }
    this.target.dataset.rendered = name;
  }
}

/** @param {string} name @param {ReportModel} m */
function summary(name, m) {
  const card = h(
    'section',
    { className: 'card report-summary' },
    h('div', { className: 'card-head' }, h('h2', {}, `${m.title} (${m.commit})`), h('p', { className: 'hint' }, name)),
    h('p', { className: 'hint' }, m.chartsIntro),
  );
  if (m.invalid.length > 0) {
    card.append(
      h(
        'div',
        { className: 'invalid-box', dataset: { invalidCount: String(m.invalid.length) } },
        h(
          'strong',
          {},
          `${m.invalid.length} INVALID result${m.invalid.length > 1 ? 's' : ''}, shown without figures and left out of the charts:`,
        ),
        h(
          'ul',
          {},
          ...m.invalid.map((i) =>
            h('li', {}, h('span', { className: 'invalid-tag' }, 'INVALID'), ` ${i.what}: ${i.reason}`),
          ),
        ),
      ),
    );
  }
  return card;
}

/** A group: its charts (valid results only; the group names what it left out), then its table. @param {Group} g @param {[HTMLCanvasElement, ChartSpec][]} pending */
function group(g, pending) {
  const title = g.table.title ?? g.charts?.title;
  const el = h('section', { className: 'report-group' }, title ? h('h3', {}, title) : null);
  if (g.charts) {
    if (g.charts.excluded.length) {
      el.append(
        h(
          'p',
          { className: 'hint' },
          'Not charted (invalid): ',
          g.charts.excluded.map((e) => `${e.what}: ${e.reason}`).join('; '),
        ),
      );
    }
    if (g.charts.charts.length === 0) el.append(h('p', { className: 'hint' }, 'No valid results to chart.'));
    const figures = g.charts.charts.map((spec) => {
      const canvas = /** @type {HTMLCanvasElement} */ (
        h('canvas', { id: spec.id, role: 'img', 'aria-label': spec.title })
      );
      pending.push([canvas, spec]);
      return h(
        'figure',
        { className: `report-chart${spec.wide ? ' wide' : ''}` },
        h('figcaption', {}, spec.title),
        h('div', { className: 'chart-box' }, canvas),
      );
    });
    el.append(h('div', { className: 'chart-grid' }, ...figures));
  }
  el.append(table(g.table));
  // A wide table's further concerns (latency first, then the wire, CPU…), each under its own heading.
  for (const t of g.more ?? []) el.append(h('div', { className: 'report-more' }, h('h4', {}, t.title ?? ''), table(t)));
  return el;
}

/** @param {Table} t */
function table(t) {
  const rows = t.rows.map((r) =>
    h(
      'tr',
      { className: r.invalid ? 'invalid' : '', dataset: { row: r.id, status: r.invalid ? 'invalid' : 'ok' } },
      ...r.cells.map((c, i) =>
        h(
          'td',
          { className: [t.align[i] === 'r' ? 'num' : '', c.invalid ? 'reason' : ''].filter(Boolean).join(' ') },
          cell(c),
        ),
      ),
    ),
  );
  return h(
    'div',
    { className: 'table-wrap' },
    h(
      'table',
      { className: 'data' },
      h('thead', {}, h('tr', {}, ...t.headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, ...rows),
    ),
    t.notes.length ? h('ul', { className: 'hint' }, ...t.notes.map((n) => h('li', {}, n))) : null,
  );
}

/** @param {Cell} c */
function cell(c) {
  const inner = c.code ? h('code', {}, c.text) : c.text;
  return c.strong ? h('strong', {}, inner) : inner;
}

/** @param {Fact} f */
function fact(f) {
  return [h('dt', {}, f.label), h('dd', {}, f.code ? h('code', {}, f.value) : f.value)];
}
