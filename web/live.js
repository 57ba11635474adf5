// The live view's rendering: pane DOM, the latency chart and the /stats comparison strip.
// Nothing here runs per message: the panes are redrawn on a timer (RENDER_INTERVAL_MS) from the
// models' bounded state, the chart once a second, the strip whenever /stats answers.

import { nowMs } from './api.js';
import { fmtBytes, fmtMs, fmtNum, preview, setData, setText } from './format.js';
import { percentiles } from './metrics.js';
import { compressChoices, RECENT_ROWS, TRANSPORTS } from './panes.js';
import { pageTls, paneProtocolText, paneProtocolWhy } from './protocol.js';
import { sendText } from './send.js';
import { chartLib, TRANSPORT_COLORS } from './theme.js';

/** Chart.js is loaded as a classic script (a global); its objects are not typed here. @typedef {any} ChartJs */
/** At most four renders a second, whatever the message rate. */
export const RENDER_INTERVAL_MS = 250;
/** Latency percentiles are over the messages that arrived in this window. */
export const LATENCY_WINDOW_MS = 5000;
/** Bytes and requests per message are shown once the window holds at least this many messages. */
const MIN_MESSAGES_PER_FIGURE = 20;
/** The chart shows this much history, one point per second. */
const CHART_HISTORY_SEC = 60;

/**
 * @typedef {import('./panes.js').PaneModel} PaneModel
 * @typedef {import('../server/stats.ts').StatsSnapshot} StatsSnapshot
 * @typedef {import('../server/stats.ts').TransportKey} TransportKey
 */

export class PaneView {
  /** @param {PaneModel} model @param {HTMLTemplateElement} template @param {() => void} onDrop */
  constructor(model, template, onDrop) {
    this.model = model;
    const meta = TRANSPORTS.find((t) => t.key === model.key);
    const frag = /** @type {DocumentFragment} */ (template.content.cloneNode(true));
    this.el = /** @type {HTMLElement} */ (frag.firstElementChild);
    this.el.dataset.transport = model.key;
    this.el.style.setProperty('--accent', TRANSPORT_COLORS[model.key]);
    setText(this.q('.pane-title'), meta?.title ?? model.key);
    setText(this.q('.pane-how'), meta?.how ?? '');
    /** @type {Record<string, HTMLElement>} */
    this.fields = {};
    for (const el of this.el.querySelectorAll('[data-field]'))
      this.fields[/** @type {HTMLElement} */ (el).dataset.field ?? ''] = /** @type {HTMLElement} */ (el);
    const tbody = this.q('.recent tbody');
    /** @type {HTMLTableCellElement[][]} */
    this.rows = [];
    for (let i = 0; i < RECENT_ROWS; i++) {
      const tr = document.createElement('tr');
      const cells = [0, 1, 2, 3].map(() => tr.appendChild(document.createElement('td')));
      tbody.appendChild(tr);
      this.rows.push(cells);
    }
    this.q('[data-action="drop"]').addEventListener('click', onDrop);
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.autoTimer = undefined;
    /** @type {WeakMap<object, string>} */
    this.previews = new WeakMap();
    this.tls = pageTls();
  }

  /**
   * The send box: Send sends the text once; auto sends `auto #n` at the chosen rate until set off.
   * @param {import('./send.js').Sender} sender
   */
  bindSend(sender) {
    const form = /** @type {HTMLFormElement} */ (this.q('form.send'));
    const input = /** @type {HTMLInputElement} */ (form.elements.namedItem('text'));
    const auto = /** @type {HTMLSelectElement} */ (form.elements.namedItem('auto'));
    const sends = this.model.sends;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void sendText(sends, sender, input.value || `hello from ${this.model.key}`);
      input.value = '';
    });
    let n = 0;
    auto.addEventListener('change', () => {
      clearInterval(this.autoTimer);
      const rate = Number(auto.value);
      if (rate > 0) this.autoTimer = setInterval(() => void sendText(sends, sender, `auto #${++n}`), 1000 / rate);
    });
  }

  /**
   * The compression choice: the pane's connection asks for it (`?compress=`) and reconnects at once from its
   * cursor. Its B/msg is the server's count for all of this transport's connections over 5 s, so it moves to
   * the compressed figure within that window (with other clients of the transport, only part of the way).
   * @param {{reconnect(): void}} driver
   */
  bindCompress(driver) {
    const select = /** @type {HTMLSelectElement} */ (this.q('select[name="compress"]'));
    const choices = compressChoices(this.model.key);
    select.replaceChildren(
      ...choices.map((c) => Object.assign(document.createElement('option'), { value: c.value, textContent: c.label })),
    );
    select.value = this.model.compress;
    select.addEventListener('change', () => {
      const choice = choices.find((c) => c.value === select.value);
      if (!choice || choice.value === this.model.compress) return;
      this.model.compress = choice.value;
      setData(this.el, 'compress', choice.value);
      driver.reconnect();
    });
  }

  /** @param {string} sel @returns {HTMLElement} */
  q(sel) {
    const el = this.el.querySelector(sel);
    if (!el) throw new Error(`pane template lacks ${sel}`);
    return /** @type {HTMLElement} */ (el);
  }

  /**
   * The wire figures of this transport from /stats (StatsStrip), next to the pane's own counts: bytes and
   * requests per message are where the transports differ at any rate. @param {Record<string, number|null> | undefined} w
   */
  wire(w) {
    const bytes = w?.bytesOutPerMsg ?? null;
    const requests = w?.requestsPerMsg ?? null;
    setText(this.fields.bytesPerMsg, bytes === null ? '–' : fmtNum(bytes, 0));
    setText(this.fields.requestsPerMsg, requests === null ? '–' : fmtNum(requests, requests < 0.1 ? 3 : 2));
    setData(this.el, 'bytesPerMsg', bytes === null ? '' : String(bytes));
    setData(this.el, 'requestsPerMsg', requests === null ? '' : String(requests));
  }

  /** @param {number} now @param {number} offsetMs */
  render(now, offsetMs) {
    const m = this.model;
    const [p50, p99] = percentiles(m.latency.since(now - LATENCY_WINDOW_MS), [50, 99]);
    this.p50 = p50;
    this.p99 = p99;
    const el = this.el;
    setData(el, 'state', m.state);
    setData(el, 'received', String(m.received));
    setData(el, 'lost', String(m.lost));
    setData(el, 'duplicates', String(m.duplicates));
    setData(el, 'skipped', String(m.skipped));
    setData(el, 'reconnects', String(m.reconnects));
    setData(el, 'resets', String(m.resets));
    setData(el, 'requests', String(m.requests));
    setData(el, 'catchUps', String(m.catchUps));
    setData(el, 'lastId', String(m.lastSeen));
    setData(el, 'protocol', m.protocol);
    setData(el, 'protocolSource', m.protocolSource);
    setData(el, 'compress', m.compress);
    // Unrounded, for tests and tooltips; empty while the window holds no sample.
    setData(el, 'p50Ms', p50 === null || p50 === undefined ? '' : String(p50));
    setData(el, 'p99Ms', p99 === null || p99 === undefined ? '' : String(p99));
    const f = this.fields;
    setText(f.state, m.state === 'dropped' ? `dropped ${fmtMs(now - m.stateSince)}` : m.state);
    setText(f.detail, m.detail || '\u00a0');
    setText(f.protocol, paneProtocolText(m, this.tls));
    const why = paneProtocolWhy(m);
    if (f.protocol.title !== why) f.protocol.title = why;
    setText(f.received, fmtNum(m.received));
    setText(f.lost, fmtNum(m.lost));
    setText(f.duplicates, fmtNum(m.duplicates));
    setText(f.reconnects, fmtNum(m.reconnects));
    setText(f.resets, fmtNum(m.resets));
    setText(f.requests, fmtNum(m.requests));
    setText(f.catchUps, fmtNum(m.catchUps));
    const rate = m.rate.perSec(now);
    setText(f.rate, fmtNum(rate, rate !== null && rate < 100 ? 1 : 0));
    setText(f.p50, fmtMs(p50));
    setText(f.p99, fmtMs(p99));
    f.skipped.hidden = m.skipped === 0;
    renderSends(this, now);
    if (m.skipped) setText(f.skipped, `${fmtNum(m.skipped)} ids skipped without a gap announcement: a server bug`);

    const items = m.recent.items;
    for (let i = 0; i < RECENT_ROWS; i++) {
      const cells = /** @type {HTMLTableCellElement[]} */ (this.rows[i]);
      const item = /** @type {{message: {id: number, ts: number, data: unknown}, latency: number} | undefined} */ (
        items[items.length - 1 - i]
      );
      if (!item) {
        for (const c of cells) setText(c, '');
        continue;
      }
      let text = this.previews.get(item);
      if (text === undefined) {
        text = preview(item.message.data);
        this.previews.set(item, text);
      }
      setText(/** @type {HTMLElement} */ (cells[0]), String(item.message.id));
      setText(/** @type {HTMLElement} */ (cells[1]), fmtMs(now + offsetMs - item.message.ts));
      setText(/** @type {HTMLElement} */ (cells[2]), fmtMs(item.latency));
      setText(/** @type {HTMLElement} */ (cells[3]), text);
    }
  }
}

/** The send box's figures: how many, ack and back p50 over the window, the last refusal. @param {PaneView} view @param {number} now */
function renderSends(view, now) {
  const s = view.model.sends;
  const [ack] = percentiles(s.ack.since(now - LATENCY_WINDOW_MS), [50]);
  const [back] = percentiles(s.seenLatency.since(now - LATENCY_WINDOW_MS), [50]);
  const el = view.el;
  setData(el, 'sent', String(s.sent));
  setData(el, 'acked', String(s.acked));
  setData(el, 'sendRefused', String(s.refused));
  setData(el, 'seen', String(s.seen));
  setData(el, 'sendAckP50Ms', ack === null || ack === undefined ? '' : String(ack));
  setData(el, 'sendBackP50Ms', back === null || back === undefined ? '' : String(back));
  const text =
    s.sent === 0
      ? 'nothing sent'
      : `sent ${fmtNum(s.sent)} · ack p50 ${fmtMs(ack)} · back p50 ${fmtMs(back)}${s.refused ? ` · ${fmtNum(s.refused)} refused (${s.lastError})` : ''}`;
  setText(view.fields.sendFigures, text);
}

/** Log-scale ticks: label only the powers of ten. @param {number} v */
const decadeLabel = (v) => {
  const l = Math.log10(v);
  return Math.abs(l - Math.round(l)) < 1e-9 ? fmtMs(v) : '';
};

/** One line per transport (p99 solid, p50 dashed) on a shared log axis, one point per second. */
export class LatencyChart {
  /** @param {HTMLCanvasElement} canvas @param {PaneView[]} views */
  constructor(canvas, views) {
    this.views = views;
    /** @type {{t: number, values: Record<string, {p50: number|null, p99: number|null, catchUp: number|null}>}[]} */
    this.history = [];
    const Chart = chartLib();
    if (!Chart) {
      canvas.replaceWith(
        Object.assign(document.createElement('p'), {
          className: 'hint',
          textContent: 'chart.js did not load (/vendor/chart.umd.js)',
        }),
      );
      this.chart = undefined;
      return;
    }
    const datasets = [];
    for (const v of views) {
      const meta = TRANSPORTS.find((t) => t.key === v.model.key);
      const color = TRANSPORT_COLORS[v.model.key];
      datasets.push({
        label: meta?.title ?? v.model.key,
        key: v.model.key,
        pct: 'p99',
        data: [],
        borderColor: color,
        backgroundColor: color,
        borderWidth: 2,
        pointRadius: 0,
        tension: 0.2,
        spanGaps: false,
      });
      datasets.push({
        label: `${meta?.title ?? v.model.key} p50`,
        key: v.model.key,
        pct: 'p50',
        data: [],
        borderColor: color,
        backgroundColor: color,
        borderWidth: 1.25,
        borderDash: [5, 4],
        pointRadius: 0,
        tension: 0.2,
        spanGaps: false,
      });
      // Catch-up deliveries (published before the pane was connected): a triangle at the slowest of each
      // second, no line, never in p50/p99. The legend entry of the transport toggles them too.
      datasets.push({
        label: `${meta?.title ?? v.model.key} catch-up`,
        key: v.model.key,
        pct: 'catchUp',
        data: [],
        borderColor: color,
        backgroundColor: color,
        showLine: false,
        pointStyle: 'triangle',
        pointRadius: 5,
      });
    }
    this.chart = new Chart(canvas, {
      type: 'line',
      data: { datasets },
      options: {
        parsing: false,
        normalized: true,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        scales: {
          x: {
            type: 'linear',
            min: -CHART_HISTORY_SEC,
            max: 0,
            ticks: { stepSize: 10, callback: (/** @type {number | string} */ v) => (v === 0 ? 'now' : `${v} s`) },
            grid: { color: '#eef2f7' },
          },
          y: {
            type: 'logarithmic',
            title: { display: true, text: 'latency' },
            ticks: { callback: decadeLabel, autoSkip: false },
            grid: { color: '#eef2f7' },
          },
        },
        plugins: {
          legend: {
            position: 'top',
            align: 'end',
            labels: {
              boxWidth: 14,
              boxHeight: 3,
              filter: (/** @type {ChartJs} */ item, /** @type {ChartJs} */ data) =>
                data.datasets[item.datasetIndex]?.pct === 'p99',
            },
            // One legend entry per transport toggles both its lines.
            onClick: (/** @type {unknown} */ _e, /** @type {ChartJs} */ item, /** @type {ChartJs} */ legend) => {
              const chart = legend.chart;
              const key = chart.data.datasets[item.datasetIndex]?.key;
              const visible = chart.isDatasetVisible(item.datasetIndex);
              chart.data.datasets.forEach((/** @type {ChartJs} */ ds, /** @type {number} */ i) => {
                if (ds.key === key) chart.setDatasetVisibility(i, !visible);
              });
              chart.update('none');
            },
          },
          tooltip: {
            callbacks: {
              label: (/** @type {ChartJs} */ ctx) =>
                `${ctx.dataset.label}${ctx.dataset.pct === 'p99' ? ' p99' : ''}: ${fmtMs(ctx.parsed.y)}`,
            },
          },
        },
      },
    });
  }

  /** Adds one point per transport (the panes' current p50/p99, the slowest catch-up since the last sample) and redraws. */
  sample() {
    const now = nowMs();
    const since = this.history.at(-1)?.t ?? now - 1000;
    /** @type {Record<string, {p50: number|null, p99: number|null, catchUp: number|null}>} */
    const values = {};
    for (const v of this.views) {
      const caught = v.model.catchUpLatency.since(since);
      values[v.model.key] = {
        p50: v.p50 ?? null,
        p99: v.p99 ?? null,
        catchUp: caught.length ? Math.max(...caught) : null,
      };
    }
    this.history.push({ t: now, values });
    while (this.history.length > CHART_HISTORY_SEC + 2) this.history.shift();
    if (!this.chart) return;
    // Log axis: a latency can round to 0 or below (clock offset estimate); clamp to 10 µs.
    const y = (/** @type {number | null | undefined} */ n) =>
      n === null || n === undefined ? null : Math.max(0.01, n);
    for (const ds of this.chart.data.datasets) {
      const pct = /** @type {'p50' | 'p99' | 'catchUp'} */ (ds.pct);
      ds.data = this.history.map((h) => ({ x: (h.t - now) / 1000, y: y(h.values[ds.key]?.[pct]) }));
    }
    this.chart.update('none');
  }
}

/** Comparison strip from /stats: deltas over the last LATENCY_WINDOW_MS of snapshots. */
export class StatsStrip {
  /** @param {HTMLTableElement} table @param {HTMLElement} loopDelay */
  constructor(table, loopDelay) {
    this.table = table;
    this.loopDelay = loopDelay;
    /** @type {{at: number, stats: StatsSnapshot}[]} */
    this.snapshots = [];
    /** @type {TransportKey[]} The table's columns: long poll, short poll, SSE, WebSocket (keys of /stats `transports`). */
    this.columnOrder = ['poll', 'short-poll', 'sse', 'ws'];
    /** @type {Record<string, Record<string, number|null>>} last computed figures, for tests and tooltips */
    this.figures = {};
  }

  /** @param {StatsSnapshot} stats a GET /stats answer */
  push(stats) {
    const at = nowMs();
    this.snapshots.push({ at, stats });
    while (this.snapshots.length > 2 && at - /** @type {{at: number}} */ (this.snapshots[1]).at >= LATENCY_WINDOW_MS)
      this.snapshots.shift();
    this.render();
  }

  render() {
    const last = this.snapshots[this.snapshots.length - 1];
    const first = this.snapshots[0];
    if (!last || !first) return;
    const dtSec = (last.at - first.at) / 1000;
    /** @type {Record<string, Record<string, number|null>>} */
    const figures = {};
    for (const key of this.columnOrder) {
      const a = first.stats.transports?.[key];
      const b = last.stats.transports?.[key];
      if (!a || !b) continue;
      const msgs = b.messagesOut - a.messagesOut;
      // A per-message figure over a handful of messages is mostly the connect (a first poll, a handshake).
      const enough = msgs >= MIN_MESSAGES_PER_FIGURE;
      figures[key] = {
        msgRate: dtSec > 0 ? msgs / dtSec : null,
        bytesOutPerMsg: enough ? (b.bytesOut - a.bytesOut) / msgs : null,
        bytesInPerMsg: enough ? (b.bytesIn - a.bytesIn) / msgs : null,
        requestsPerMsg: enough ? (b.requests - a.requests) / msgs : null,
        connections: b.connections,
        messages: msgs,
      };
    }
    this.figures = figures;
    for (const tr of this.table.tBodies[0]?.rows ?? []) {
      const metric = tr.dataset.metric ?? '';
      this.columnOrder.forEach((key, i) => {
        const cell = tr.cells[i + 1];
        if (!cell) return;
        const v = figures[key]?.[metric];
        let text;
        if (metric === 'connections') text = fmtNum(v);
        else if (metric === 'msgRate') text = dtSec > 0 ? fmtNum(v, 1) : '…';
        else if (v === null || v === undefined) {
          const n = figures[key]?.messages ?? 0;
          text = n === 0 ? 'no messages' : `${n} msgs: too few`;
        } else text = metric === 'requestsPerMsg' ? fmtNum(v, 2) : fmtBytes(v);
        setText(cell, text);
        cell.classList.toggle('muted', v === null || v === undefined);
      });
    }
    const d = last.stats.process?.eventLoopDelayMs;
    if (d) {
      setText(
        this.loopDelay,
        `server event-loop delay (whole process, last ${fmtNum(d.windowMs / 1000)} s window): p50 ${fmtMs(d.p50)} · p99 ${fmtMs(d.p99)} · max ${fmtMs(d.max)}`,
      );
    }
  }
}
