// Colours, one per transport and one per server, used by every chart and pane.

export const TRANSPORT_COLORS = {
  poll: '#2563eb',
  sse: '#059669',
  ws: '#c026d3',
  'short-poll': '#ea580c',
};

export const SERVER_COLORS = {
  lab: '#2563eb',
  bare: '#94a3b8',
  socketio: '#f59e0b',
};

export const PERCENTILE_COLORS = {
  p50: '#93c5fd',
  p90: '#3b82f6',
  p99: '#1e3a8a',
};

/** Chart.js, loaded by a classic <script> from /vendor/chart.umd.js; undefined if that failed. */
export const chartLib = () => /** @type {any} */ (globalThis).Chart;

/** Defaults every chart shares: no animation (cheap redraws), the page's font. */
export function chartDefaults() {
  const Chart = chartLib();
  if (!Chart) return;
  Chart.defaults.animation = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#475569';
  Chart.defaults.maintainAspectRatio = false;
}
