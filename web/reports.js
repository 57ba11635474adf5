// The Reports view: lists GET /reports (bench reports in results/, newest first) and renders the
// chosen one (GET /reports/<name>) as charts — latency percentiles, bytes per message, CPU per message
// per scenario shape, and memory per connection — with a table under each. INVALID results are
// marked in the tables and left out of the charts: a failed run is data, never a fast number.

import { api } from './api.js';
import { fmtBytes, fmtMs, fmtNum } from './format.js';
import { chartLib, PERCENTILE_COLORS, SERVER_COLORS } from './theme.js';

const TRANSPORT_ORDER = ['poll', 'short-poll', 'sse', 'ws'];
const SERVER_ORDER = ['lab', 'lab-redis', 'bare', 'socketio'];
const SERVER_LABELS = { lab: 'lab', 'lab-redis': 'lab (Redis feed)', bare: 'bare', socketio: 'Socket.IO' };

/**
 * @typedef {{median: number|null, min: number|null, max: number|null, values: (number|null)[]}} Figure
 * @typedef {{name: string, startedAt: string, git: string}} ReportEntry
 */

/**
 * Tiny DOM builder: h('td', {className: 'x', dataset: {a: '1'}}, 'text', child).
 * @param {string} tag @param {Record<string, any>} [props] @param {...(Node|string|null|undefined|false)} children
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

/** @param {Figure | undefined} f */
const med = (f) => (f && typeof f.median === 'number' ? f.median : null);
/** @param {string} sha */
const shortSha = (sha) => (/^[0-9a-f]{40}$/i.test(sha) ? sha.slice(0, 8) : sha);
/** @param {string} iso */
const when = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
};

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
    let entries;
    try {
      entries = /** @type {{reports: ReportEntry[]}} */ (await api('/reports')).reports;
    } catch (err) {
      this.list.replaceChildren(h('li', { className: 'hint' }, `GET /reports failed: ${err instanceof Error ? err.message : err}`));
      return;
    }
    if (entries.length === 0) {
      this.list.replaceChildren(h('li', { className: 'hint' }, 'No reports yet: run npm run bench (or npm run bench -- --quick).'));
      this.target.replaceChildren();
      return;
    }
    this.list.replaceChildren(
      ...entries.map((r) => {
        const btn = h('button', { type: 'button', className: 'report-link', dataset: { report: r.name } }, h('strong', {}, when(r.startedAt)), ` · ${shortSha(r.git)} · ${r.name}`);
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
      /** @type {HTMLElement} */ (b).classList.toggle('selected', /** @type {HTMLElement} */ (b).dataset.report === name);
    }
    let report;
    try {
      report = await api(`/reports/${encodeURIComponent(name)}`);
    } catch (err) {
      this.target.replaceChildren(h('p', { className: 'hint' }, `GET /reports/${name} failed: ${err instanceof Error ? err.message : err}`));
      return;
    }
    if (this.current !== name) return; // another report was chosen meanwhile
    this.render(name, report);
  }

  /** @param {string} name @param {any} r a transport-lab/bench@1 report */
  render(name, r) {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    const out = h('div', { className: 'report', dataset: { report: name } });
    out.append(this.#summary(name, r));

    const scenarios = /** @type {any[]} */ (r.scenarios ?? []);
    /** @type {Map<string, any[]>} */
    const groups = new Map();
    for (const s of scenarios) {
      const key = `${fmtNum(s.clients)} clients · ${fmtNum(s.ratePerSec)} msg/s · ${fmtNum(s.payloadBytes)} B payload · ${fmtNum(s.durationSec)} s × ${s.repeats}`;
      (groups.get(key) ?? groups.set(key, []).get(key))?.push(s);
    }
    for (const [title, list] of groups) out.append(this.#scenarioGroup(title, list));
    if (Array.isArray(r.memory) && r.memory.length > 0) out.append(this.#memory(r.memory));
    if (Array.isArray(r.sweep) && r.sweep.length > 0) out.append(this.#sweep(r.sweep));
    if (Array.isArray(r.autocannon) && r.autocannon.length > 0) out.append(this.#autocannon(r.autocannon));
    this.target.replaceChildren(out);
    // Charts size themselves from their box: create them once the boxes are in the document.
    for (const make of this.pending ?? []) make();
    this.pending = [];
    this.target.dataset.rendered = name;
  }

  /** @param {string} name @param {any} r */
  #summary(name, r) {
    const env = r.env ?? {};
    const invalid = [...(r.scenarios ?? []), ...(r.memory ?? []), ...(r.autocannon ?? [])].filter((s) => s.status === 'invalid');
    const card = h(
      'section',
      { className: 'card report-summary' },
      h('div', { className: 'card-head' }, h('h2', {}, `Report ${name}`), h('p', { className: 'hint' }, `schema ${r.schema ?? '?'}`)),
      h(
        'dl',
        { className: 'facts' },
        ...fact('started', `${when(r.startedAt)} (finished ${when(r.finishedAt)})`),
        ...fact('commit', shortSha(String(r.git ?? '?'))),
        ...fact('machine', `${env.cpus ?? '?'} × ${env.cpuModel ?? '?'}, ${fmtBytes(env.memoryBytes)} RAM, ${env.os ?? '?'}`),
        ...fact('node', String(env.node ?? '?')),
        ...fact('feed', String(env.feed ?? '?')),
        ...(r.params?.repeatsNote ? fact('repeats', String(r.params.repeatsNote)) : []),
        ...(Array.isArray(r.params?.skipped) && r.params.skipped.length ? fact('skipped', r.params.skipped.join('; ')) : []),
      ),
    );
    if (invalid.length > 0) {
      card.append(
        h(
          'div',
          { className: 'invalid-box', dataset: { invalidCount: String(invalid.length) } },
          h('strong', {}, `${invalid.length} INVALID result${invalid.length > 1 ? 's' : ''}, left out of the charts:`),
          h('ul', {}, ...invalid.map((s) => h('li', {}, h('span', { className: 'invalid-tag' }, 'INVALID'), ` ${s.name ?? `${s.server}/${s.transport}`}: ${s.reason ?? 'no reason given'}`))),
        ),
      );
    }
    return card;
  }

  /** @param {string} title @param {any[]} list scenarios of one shape */
  #scenarioGroup(title, list) {
    const valid = list.filter((s) => s.status === 'ok');
    const transports = TRANSPORT_ORDER.filter((t) => list.some((s) => s.transport === t));
    const servers = SERVER_ORDER.filter((sv) => list.some((s) => s.server === sv));
    const byKey = (t, sv) => valid.find((s) => s.transport === t && s.server === sv);

    // Latency: one bar group per (transport, server) that has a valid result, p50/p90/p99 side by side.
    const combos = [];
    for (const t of transports) for (const sv of servers) if (byKey(t, sv)) combos.push(/** @type {any} */ (byKey(t, sv)));
    const latency = this.#chart('Latency percentiles (received − scheduled)', 'ms', {
      labels: combos.map((s) => [s.transport, SERVER_LABELS[s.server] ?? s.server]),
      datasets: ['p50', 'p90', 'p99'].map((p) => ({
        label: p,
        data: combos.map((s) => med(s.latencyMs?.[p])),
        figures: combos.map((s) => s.latencyMs?.[p]),
        backgroundColor: PERCENTILE_COLORS[p],
      })),
      log: true,
      format: fmtMs,
    });
    // A transport whose result for some server is INVALID says so under its bars.
    const labelFor = (t) => {
      const bad = list.filter((s) => s.transport === t && s.status !== 'ok').map((s) => SERVER_LABELS[s.server] ?? s.server);
      return bad.length ? [t, `(${bad.join(', ')}: INVALID)`] : t;
    };
    const perServer = (pick, fmt, label, unit) =>
      this.#chart(label, unit, {
        labels: transports.map(labelFor),
        datasets: servers.map((sv) => ({
          label: SERVER_LABELS[sv] ?? sv,
          data: transports.map((t) => med(pick(byKey(t, sv)))),
          figures: transports.map((t) => pick(byKey(t, sv))),
          backgroundColor: SERVER_COLORS[sv],
        })),
        format: fmt,
      });
    const bytes = perServer((s) => s?.wire?.bytesOutPerMsg, fmtBytes, 'Bytes per message, server → client', 'bytes');
    const cpu = perServer((s) => s?.serverMetrics?.cpuUsPerMsg, (v) => `${fmtNum(v, Math.abs(v) < 10 ? 1 : 0)} µs`, 'Server CPU per message', 'µs');
    latency.classList.add('wide');

    const rows = list
      .slice()
      .sort((a, b) => TRANSPORT_ORDER.indexOf(a.transport) - TRANSPORT_ORDER.indexOf(b.transport) || SERVER_ORDER.indexOf(a.server) - SERVER_ORDER.indexOf(b.server))
      .map((s) => {
        const bad = s.status !== 'ok';
        return h(
          'tr',
          { className: bad ? 'invalid' : '', dataset: { scenario: s.name, status: s.status } },
          h('td', {}, s.transport),
          h('td', {}, SERVER_LABELS[s.server] ?? s.server),
          h('td', {}, bad ? h('span', { className: 'invalid-tag', title: s.reason ?? '' }, 'INVALID') : 'ok'),
          h('td', { className: 'num' }, `${fmtNum(s.delivered)} / ${fmtNum(s.expected)}`),
          h('td', { className: 'num' }, fmtNum(s.lost)),
          h('td', { className: 'num' }, fmtMs(med(s.latencyMs?.p50))),
          h('td', { className: 'num' }, fmtMs(med(s.latencyMs?.p99))),
          h('td', { className: 'num' }, fmtBytes(med(s.wire?.bytesOutPerMsg))),
          h('td', { className: 'num' }, fmtNum(med(s.wire?.requestsPerMsg), 2)),
          h('td', { className: 'num' }, fmtNum(med(s.serverMetrics?.cpuUsPerMsg), 1)),
          h('td', { className: 'num' }, s.vsBare ? `${fmtNum(s.vsBare.cpuUsPerMsg, 2)}×` : ''),
          h('td', { className: 'reason' }, bad ? s.reason ?? '' : ''),
        );
      });
    return h(
      'section',
      { className: 'card scenario-group' },
      h('div', { className: 'card-head' }, h('h2', {}, title), h('p', { className: 'hint' }, 'medians over repeats; hover a bar for min–max')),
      h('div', { className: 'chart-grid' }, latency, bytes, cpu),
      table(['transport', 'server', 'status', 'delivered', 'lost', 'p50', 'p99', 'bytes/msg', 'req/msg', 'CPU µs/msg', 'CPU vs bare', 'reason'], rows),
    );
  }

  /** @param {any[]} memory */
  #memory(memory) {
    const valid = memory.filter((m) => m.status === 'ok');
    const transports = TRANSPORT_ORDER.filter((t) => memory.some((m) => m.transport === t));
    const servers = SERVER_ORDER.filter((sv) => memory.some((m) => m.server === sv));
    const find = (t, sv) => valid.find((m) => m.transport === t && m.server === sv);
    // Plotted in KiB so that the axis gets round ticks.
    const kib = (v) => (v === null ? null : v / 1024);
    const chart = (field, label) =>
      this.#chart(label, 'KiB', {
        labels: transports,
        datasets: servers.map((sv) => {
          const figures = transports.map((t) => find(t, sv)?.[field]);
          return {
            label: SERVER_LABELS[sv] ?? sv,
            data: figures.map((f) => kib(med(f))),
            figures: figures.map((f) => f && { ...f, min: f.min === null ? null : kib(f.min), max: f.max === null ? null : kib(f.max) }),
            backgroundColor: SERVER_COLORS[sv],
          };
        }),
        format: (v) => `${fmtNum(v, Math.abs(v) < 10 ? 1 : 0)} KiB`,
      });
    const connections = [...new Set(memory.map((m) => m.connections))].join(', ');
    const rows = memory.map((m) => {
      const bad = m.status !== 'ok';
      return h(
        'tr',
        { className: bad ? 'invalid' : '', dataset: { status: m.status, scenario: `memory ${m.server}/${m.transport}` } },
        h('td', {}, m.transport),
        h('td', {}, SERVER_LABELS[m.server] ?? m.server),
        h('td', {}, bad ? h('span', { className: 'invalid-tag' }, 'INVALID') : 'ok'),
        h('td', { className: 'num' }, fmtNum(m.connections)),
        h('td', { className: 'num' }, fmtBytes(med(m.heapBytesPerConn))),
        h('td', { className: 'num' }, fmtBytes(med(m.rssBytesPerConn))),
        h('td', { className: 'num' }, fmtBytes(med(m.heapRetainedAfterCloseBytes))),
        h('td', { className: 'reason' }, bad ? m.reason ?? '' : ''),
      );
    });
    return h(
      'section',
      { className: 'card' },
      h('div', { className: 'card-head' }, h('h2', {}, `Memory per idle connection (${connections} connections)`), h('p', { className: 'hint' }, 'after gc(), minus the same before they connected')),
      h('div', { className: 'chart-grid' }, chart('heapBytesPerConn', 'Heap per connection'), chart('rssBytesPerConn', 'RSS per connection')),
      table(['transport', 'server', 'status', 'connections', 'heap/conn', 'RSS/conn', 'heap retained after close', 'reason'], rows),
    );
  }

  /** @param {any[]} sweep */
  #sweep(sweep) {
    const rows = sweep.map((s) =>
      h(
        'tr',
        {},
        h('td', {}, s.transport),
        h('td', {}, SERVER_LABELS[s.server] ?? s.server),
        h('td', { className: 'num' }, fmtNum(s.maxClients)),
        h('td', {}, s.steps.map((st) => `${fmtNum(st.clients)}: ${st.p95Ms === null ? '–' : fmtMs(st.p95Ms)}${st.status !== 'ok' ? ' INVALID' : ''}`).join(' · ')),
      ),
    );
    return h(
      'section',
      { className: 'card' },
      h('div', { className: 'card-head' }, h('h2', {}, 'Capacity sweep'), h('p', { className: 'hint' }, 'the last client count with p95 ≤ limit and no loss; steps show p95')),
      table(['transport', 'server', 'max clients', 'steps (clients: p95)'], rows),
    );
  }

  /** @param {any[]} list */
  #autocannon(list) {
    const rows = list.map((a) =>
      h(
        'tr',
        { className: a.status !== 'ok' ? 'invalid' : '', dataset: { status: a.status } },
        h('td', {}, `${a.method} ${a.path}`),
        h('td', {}, SERVER_LABELS[a.server] ?? a.server),
        h('td', {}, a.status !== 'ok' ? h('span', { className: 'invalid-tag', title: a.reason ?? '' }, 'INVALID') : 'ok'),
        h('td', { className: 'num' }, fmtNum(med(a.requestsPerSec))),
        h('td', { className: 'num' }, fmtMs(med(a.latencyMs?.p50))),
        h('td', { className: 'num' }, fmtMs(med(a.latencyMs?.p99))),
        h('td', { className: 'num' }, fmtBytes(med(a.bytesPerRequest))),
      ),
    );
    return h(
      'section',
      { className: 'card' },
      h('div', { className: 'card-head' }, h('h2', {}, 'Request overhead (autocannon)')),
      table(['request', 'server', 'status', 'req/s', 'p50', 'p99', 'bytes/request'], rows),
    );
  }

  /**
   * A bar chart in its own box; created after the box is in the document.
   * @param {string} title @param {string} unit
   * @param {{labels: any[], datasets: any[], log?: boolean, format: (v: number) => string}} spec
   */
  #chart(title, unit, spec) {
    const canvas = h('canvas', { role: 'img', 'aria-label': title });
    const box = h('figure', { className: 'report-chart' }, h('figcaption', {}, title), h('div', { className: 'chart-box' }, canvas));
    const Chart = chartLib();
    if (!Chart) {
      box.append(h('p', { className: 'hint' }, 'chart.js did not load (/vendor/chart.umd.js)'));
      return box;
    }
    this.pending ??= [];
    this.pending.push(() => {
      const chart = new Chart(canvas, {
        type: 'bar',
        data: { labels: spec.labels, datasets: spec.datasets.map((d) => ({ ...d, borderWidth: 0, maxBarThickness: 28 })) },
        options: {
          scales: {
            x: { grid: { display: false }, ticks: { autoSkip: false, maxRotation: 0 } },
            y: spec.log
              ? { type: 'logarithmic', title: { display: true, text: unit }, ticks: { callback: (v) => (isDecade(v) ? spec.format(v) : '') } }
              : { beginAtZero: true, title: { display: true, text: unit }, ticks: { callback: (v) => (v === 0 ? '0' : spec.format(v)) } },
          },
          plugins: {
            legend: { position: 'top', align: 'end', labels: { boxWidth: 12, boxHeight: 12 } },
            tooltip: {
              callbacks: {
                label: (ctx) => {
                  const f = ctx.dataset.figures?.[ctx.dataIndex];
                  const range = f && f.min !== null && f.max !== null ? ` (min ${spec.format(f.min)}, max ${spec.format(f.max)}, n=${f.values?.length ?? '?'})` : '';
                  return `${ctx.dataset.label}: ${spec.format(ctx.parsed.y)}${range}`;
                },
              },
            },
          },
        },
      });
      this.charts.push(chart);
    });
    return box;
  }
}

/** @param {number} v */
const isDecade = (v) => {
  const l = Math.log10(v);
  return Math.abs(l - Math.round(l)) < 1e-9;
};

/** @param {string} term @param {string} value */
function fact(term, value) {
  return [h('dt', {}, term), h('dd', {}, value)];
}

/** @param {string[]} heads @param {HTMLElement[]} rows */
function table(heads, rows) {
  return h('div', { className: 'table-wrap' }, h('table', { className: 'data' }, h('thead', {}, h('tr', {}, ...heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, ...rows)));
}
