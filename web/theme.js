// Colours of the live view, Chart.js defaults, and the one Chart.js configuration of a report chart.
// The report charts' series colours (one per server, lab-redis included, and one per percentile) come
// with each chart in the report model (report/model.ts), which the self-contained HTML report
// and the dashboard's Reports view both draw with `reportChartConfig`: html.ts inlines this file.

/** @typedef {import('../report/model.ts').ChartSpec} ChartSpec */

export const TRANSPORT_COLORS = {
  poll: '#2563eb',
  sse: '#059669',
  ws: '#c026d3',
  'short-poll': '#ea580c',
};

/** Chart.js, loaded by a classic <script> (/vendor/chart.umd.js, or inlined); undefined if that failed. */
export const chartLib = () => /** @type {any} */ (globalThis).Chart;

/** Defaults every chart of the dashboard shares: no animation (cheap redraws), the page's font. */
export function chartDefaults() {
  const Chart = chartLib();
  if (!Chart) return;
  Chart.defaults.animation = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#475569';
  Chart.defaults.maintainAspectRatio = false;
}

/** A log axis labels every tick (…, 700, 800, 900, 1,000): keep the 1-2-5 steps only. @param {number} v */
function logTick(v) {
  const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9);
  const keep = [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6);
  return keep ? (v >= 1 ? v.toLocaleString('en-US') : String(+v.toPrecision(1))) : '';
}

/** The Chart.js configuration of one report chart: a bar per label and dataset, tooltips from the model. @param {ChartSpec} spec */
export function reportChartConfig(spec) {
  const line = spec.kind === 'line';
  return {
    type: line ? 'line' : 'bar',
    data: {
      labels: spec.labels,
      datasets: spec.datasets.map((d) => {
        const color = d.color || (d.transport ? TRANSPORT_COLORS[d.transport] : '#64748b');
        return {
          label: d.label,
          data: d.data,
          backgroundColor: color,
          borderColor: color,
          borderWidth: line ? 2 : 1,
          maxBarThickness: 32,
          spanGaps: false,
          pointRadius: line ? 3 : undefined,
        };
      }),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { position: 'top' },
        tooltip: {
          callbacks: {
            /** @param {{datasetIndex: number, dataIndex: number}} ctx */
            afterLabel: (ctx) => spec.datasets[ctx.datasetIndex]?.tips[ctx.dataIndex] ?? '',
          },
        },
      },
      scales: {
        x: { ticks: { autoSkip: false, maxRotation: 60 } },
        y: {
          type: spec.logarithmic ? 'logarithmic' : 'linear',
          beginAtZero: !spec.logarithmic,
          min: spec.yMin,
          title: { display: true, text: spec.yTitle },
          ticks: spec.logarithmic ? { callback: logTick } : {},
        },
      },
    },
  };
}
