// Transport Lab dashboard: entry point. Plain ES modules, no build step; everything is served by the
// lab itself (chart.js from /vendor), so the page works offline and under a strict CSP (no inline
// scripts or styles: DOM and CSSOM from here only).

import { api, ApiError, getToken, nowMs, setToken } from './api.js';
import { SIGNIFICANT_OFFSET_MS, syncClock } from './clock.js';
import { fmtKbps, fmtMs, fmtNum, setText } from './format.js';
import { LatencyChart, PaneView, RENDER_INTERVAL_MS, StatsStrip } from './live.js';
import { driverFor, PaneModel, TRANSPORTS } from './panes.js';
import { ExtraStreams } from './extra.js';
import { navigationProtocol, pageTls, ProtocolWatch, protocolLabel, WS_PROTOCOL_NOTE } from './protocol.js';
import { ReportsView } from './reports.js';
import { chartDefaults } from './theme.js';

const STATS_INTERVAL_MS = 1000;
const CONTROL_INTERVAL_MS = 2000;
/** Re-estimate the clock offset now and then: clocks drift, and NTP steps them. */
const CLOCK_RESYNC_MS = 60_000;

/** @param {string} id */
const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el;
};

/** @type {import('./clock.js').ClockSync | undefined} */
let clock;
const offsetMs = () => clock?.offsetMs ?? 0;

/** Test and debugging hook: the models themselves (ids, counters, state), no text scraping needed. */
const lab = {
  ready: false,
  /** @type {Record<string, PaneModel>} */
  panes: {},
  /** @type {Record<string, any>} */
  drivers: {},
  clock: () => clock,
  /** @type {StatsStrip | undefined} */
  strip: undefined,
  /** @type {NetworkAnswer | undefined} GET /network as the header shows it */
  network: undefined,
  /** The page's own connection: the navigation entry's nextHopProtocol, and whether it is TLS. */
  protocol: { page: navigationProtocol(), tls: pageTls() },
  /** @type {ExtraStreams | undefined} the "Connection limit" section */
  extraStreams: undefined,
  /** @returns {import('./extra.js').ExtraSnapshot | undefined} the extra streams now: kind, opened, live, stalled, per stream */
  get extra() {
    return lab.extraStreams?.snapshot();
  },
};
/** @type {any} */ (window).__lab = lab;

// ---- tabs (#live / #reports) ---------------------------------------------------------------------

/** @type {ReportsView | undefined} */
let reports;
function showView() {
  const view = location.hash === '#reports' ? 'reports' : 'live';
  $('view-live').hidden = view !== 'live';
  $('view-reports').hidden = view !== 'reports';
  for (const name of ['live', 'reports']) {
    const tab = $(`tab-${name}`);
    if (name === view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  document.body.dataset.view = view;
  if (view === 'reports') {
    reports ??= new ReportsView($('report-list'), $('report'));
    void reports.show();
  }
}
window.addEventListener('hashchange', showView);

// ---- controls ------------------------------------------------------------------------------------

const status = $('control-status');
/** @param {string} text @param {'ok'|'error'} kind */
function say(text, kind = 'ok') {
  status.textContent = text;
  status.dataset.kind = kind;
}
/** @param {unknown} err */
function sayError(err) {
  if (err instanceof ApiError && err.status === 401)
    say(`${err.code}: this server needs its publish token (Token field)`, 'error');
  else if (err instanceof ApiError) say(`${err.code}: ${err.message}`, 'error');
  else say(err instanceof Error ? err.message : String(err), 'error');
}

/** @param {string} id */
const numberInput = (id) => /** @type {HTMLInputElement} */ ($(id));

function wireControls() {
  const form = /** @type {HTMLFormElement} */ ($('controls'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = /** @type {HTMLInputElement} */ ($('publish-text')).value;
    try {
      const { id } = await api('/publish', { method: 'POST', json: { data: text }, auth: true });
      say(`published id ${id}`);
    } catch (err) {
      sayError(err);
    }
  });

  $('control-btn').addEventListener('click', async () => {
    const ratePerSec = numberInput('rate').valueAsNumber;
    const payloadBytes = numberInput('payload').valueAsNumber;
    // An empty field leaves that setting as it is.
    const body = {
      ...(Number.isFinite(ratePerSec) ? { ratePerSec } : {}),
      ...(Number.isFinite(payloadBytes) ? { payloadBytes } : {}),
    };
    try {
      const c = await api('/control', { method: 'PUT', json: body, auth: true });
      showControl(c);
      say(`server publisher set to ${fmtNum(c.ratePerSec)} msg/s, ${fmtNum(c.payloadBytes)} B`);
    } catch (err) {
      sayError(err);
    }
  });

  $('burst-btn').addEventListener('click', async () => {
    const count = numberInput('burst-count').valueAsNumber;
    try {
      const { firstId, lastId } = await api('/control/burst', { method: 'POST', json: { count }, auth: true });
      say(`burst published ids ${firstId}–${lastId}`);
    } catch (err) {
      sayError(err);
    }
  });

  const token = /** @type {HTMLInputElement} */ ($('token'));
  token.value = getToken();
  token.addEventListener('change', () => {
    setToken(token.value.trim());
    // The WebSocket carries the token in its URL (?token=): reopen it with the new one.
    lab.drivers.ws?.reconnect();
    say(token.value ? 'token saved for this tab' : 'token cleared');
  });
}

let controlFilled = false;
/** @param {{ratePerSec: number, payloadBytes: number, published: number}} c */
function showControl(c) {
  setText($('control-now'), `now ${fmtNum(c.ratePerSec)}/s · ${fmtNum(c.payloadBytes)} B`);
  $('control-now').title = `${fmtNum(c.published)} published by the server's publisher so far`;
  const rate = numberInput('rate');
  const payload = numberInput('payload');
  // Fill the inputs once from the server; afterwards they are the user's.
  if (!controlFilled && document.activeElement !== rate && document.activeElement !== payload) {
    rate.value = String(c.ratePerSec);
    payload.value = String(c.payloadBytes);
    controlFilled = true;
  }
}

async function refreshControl() {
  try {
    showControl(await api('/control'));
  } catch {
    setText($('control-now'), 'GET /control unavailable');
  }
}

// ---- header: feed and clock ----------------------------------------------------------------------

/** @param {any} stats */
function showFeed(stats) {
  const f = stats.feed;
  if (!f) return;
  setText(
    $('feed-info'),
    `feed ${f.kind} · epoch ${f.epoch} · last id ${fmtNum(f.lastId)} · ${fmtNum(f.retained)} retained`,
  );
}

function showClock() {
  const note = $('clock-note');
  if (!clock) {
    note.hidden = false;
    setText(note, 'clock offset unknown (GET /time failed): latencies assume the same clock');
    note.dataset.kind = 'warn';
    return;
  }
  const significant = Math.abs(clock.measuredOffsetMs) > SIGNIFICANT_OFFSET_MS;
  note.dataset.offsetMs = clock.offsetMs.toFixed(3);
  if (clock.applied || significant || !clock.local) {
    note.hidden = false;
    note.dataset.kind = 'warn';
    setText(
      note,
      `clock offset ≈ ${fmtMs(clock.measuredOffsetMs)}, estimated (±${fmtMs(clock.rttMs / 2)}, best of ${clock.samples} round trips to /time)` +
        (clock.applied ? ': latencies corrected by it' : ''),
    );
  } else {
    note.hidden = false;
    note.dataset.kind = 'ok';
    setText(note, `same machine as the server: one clock (measured offset ${fmtMs(clock.measuredOffsetMs)})`);
  }
}

async function resyncClock() {
  try {
    clock = await syncClock();
  } catch {
    clock = undefined;
  }
  showClock();
}

// ---- header: the protocol this page came over -----------------------------------------------------

function showProtocol() {
  const el = $('protocol-info');
  const { page, tls } = lab.protocol;
  setText(el, `${protocolLabel(page)} · ${tls ? 'TLS' : 'no TLS'} · WebSocket: HTTP/1.1`);
  el.title = `this page came over ${page || 'an unknown protocol'} (navigation entry's nextHopProtocol), ${tls ? 'over TLS' : 'in cleartext'}; WebSocket: ${WS_PROTOCOL_NOTE}`;
  el.dataset.protocol = page;
  el.dataset.tls = String(tls);
}

// ---- header: the network this page came over (--network) ----------------------------------------

/**
 * @typedef {import('../server/network/route.ts').NetworkAnswer} NetworkAnswer
 * @typedef {import('../server/network/profiles.ts').NetworkProfile} NetworkProfile
 */

/** `loopback` is the server itself: no relay, nothing emulated. @param {NetworkProfile} p */
const networkLabel = (p) => (p.direct ? 'direct' : p.name);

/** @param {NetworkProfile} p */
function describeNetwork(p) {
  if (p.direct) return 'network: direct (no relay)';
  const loss = p.loss === 0 ? 'loss 0 %' : `loss ${fmtNum(p.loss * 100, 2)} % (held ${fmtMs(p.retransmitMs)})`;
  return `network: ${p.name} · RTT ${fmtMs(p.rttMs)} · jitter ${fmtMs(p.jitterMs)} · down ${fmtKbps(p.downKbps)} · up ${fmtKbps(p.upKbps)} · ${loss}`;
}

/**
 * The publisher rate at which the transports differ visibly on `p`: three messages per round trip, so a
 * long poll's trip back to the server (one RTT, during which messages wait) shows in its latency within
 * seconds; 10 msg/s at least, 200 on loopback and LAN (where bytes and requests per message differ most).
 * On 3G (300 ms RTT): 10 msg/s. @param {NetworkProfile} p
 */
const differRate = (p) => Math.min(200, Math.max(10, Math.ceil((3 * 1000) / Math.max(p.rttMs, 1))));

/** The network this page came over: a relay's profile, or the direct server's (loopback). */
const pageNetwork = () =>
  lab.network?.current ?? lab.network?.available.find((a) => a.profile.direct)?.profile ?? undefined;

/** Sets the shared publisher to the rate where the transports differ on this page's network. */
async function whereTheyDiffer() {
  const p = pageNetwork();
  if (!p) return;
  const ratePerSec = differRate(p);
  numberInput('rate').value = String(ratePerSec);
  try {
    showControl(await api('/control', { method: 'PUT', json: { ratePerSec }, auth: true }));
    say(`publisher at ${fmtNum(ratePerSec)} msg/s for every viewer: where the transports differ on ${networkLabel(p)}`);
  } catch (err) {
    sayError(err);
  }
}

/** Starts the relay of `name` on the server (POST /network/<name>) and opens the dashboard through it. @param {string} name */
async function goToNetwork(name) {
  try {
    const choice = await api(`/network/${encodeURIComponent(name)}`, { method: 'POST', auth: true });
    location.assign(`${choice.url}?differ`);
  } catch (err) {
    sayError(err);
  }
}

/**
 * Which relay this page came through (the server tells from the Host header's port), links to the others
 * and, on a single-process lab, a button per profile that has no relay yet (the server starts it on
 * demand). Opening another network asks its page to set the rate where the transports differ (`?differ`).
 */
async function showNetwork() {
  /** @type {NetworkAnswer} */
  let answer;
  try {
    answer = await api('/network');
  } catch {
    return;
  }
  lab.network = answer;
  const current = answer.current;
  const onDemand = answer.onDemand ?? [];
  if (current === null && answer.available.length <= 1 && onDemand.length === 0) return;
  const shown = current ?? answer.available.find((a) => a.profile.direct)?.profile;
  const info = $('network-info');
  if (shown) {
    setText(info, describeNetwork(shown));
    info.dataset.network = shown.name;
    info.title = shown.source;
    info.hidden = false;
  }
  const nav = $('network-links');
  nav.replaceChildren(Object.assign(document.createElement('span'), { textContent: 'networks:' }));
  for (const choice of answer.available) {
    const a = document.createElement('a');
    a.href = choice.name === shown?.name ? choice.url : `${choice.url}?differ`;
    a.textContent = networkLabel(choice.profile);
    a.title = describeNetwork(choice.profile);
    a.dataset.network = choice.name;
    if (choice.name === shown?.name) a.setAttribute('aria-current', 'page');
    nav.appendChild(a);
  }
  for (const p of onDemand) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = networkLabel(p);
    b.title = `${describeNetwork(p)} (the server starts its relay now)`;
    b.dataset.network = p.name;
    b.addEventListener('click', () => void goToNetwork(p.name));
    nav.appendChild(b);
  }
  nav.hidden = false;
}

// ---- start ---------------------------------------------------------------------------------------

async function main() {
  chartDefaults();
  wireControls();
  showView();
  showProtocol();
  const network = showNetwork();

  // Every pane starts at the feed's last id as of now, so all four see the same messages from here on.
  /** @type {any} */
  let stats;
  for (let attempt = 1; ; attempt++) {
    try {
      stats = await api('/stats');
      break;
    } catch (err) {
      setText($('feed-info'), `server unreachable (${err instanceof Error ? err.message : err}); retrying…`);
      await new Promise((r) => setTimeout(r, Math.min(10_000, 1000 * attempt)));
    }
  }
  showFeed(stats);
  await resyncClock();
  setInterval(resyncClock, CLOCK_RESYNC_MS);

  const template = /** @type {HTMLTemplateElement} */ ($('pane-template'));
  const panesEl = $('panes');
  /** @type {PaneView[]} */
  const views = [];
  for (const t of TRANSPORTS) {
    const model = new PaneModel(t.key, offsetMs);
    model.startAt(stats.feed.lastId, stats.feed.epoch);
    const driver = driverFor(model);
    const view = new PaneView(model, template, () => driver.drop());
    view.bindSend(driver);
    view.bindCompress(driver);
    panesEl.appendChild(view.el);
    lab.panes[t.key] = model;
    lab.drivers[t.key] = driver;
    views.push(view);
    driver.start();
  }
  const watch = new ProtocolWatch(lab.panes);
  const extras = new ExtraStreams(
    {
      count: /** @type {HTMLInputElement} */ ($('extra-count')),
      openSse: $('extra-open-sse'),
      openPoll: $('extra-open-poll'),
      close: $('extra-close'),
      protocol: $('limit-protocol'),
      explain: $('limit-explain'),
      summary: $('extra-summary'),
      list: $('extra-list'),
    },
    lab.panes,
    watch,
  );
  lab.extraStreams = extras;

  const render = () => {
    const now = nowMs();
    for (const v of views) v.render(now, offsetMs());
    extras.render();
  };
  render();
  setInterval(render, RENDER_INTERVAL_MS);

  const chart = new LatencyChart(/** @type {HTMLCanvasElement} */ ($('latency-chart')), views);
  setInterval(() => chart.sample(), 1000);

  const strip = new StatsStrip(/** @type {HTMLTableElement} */ ($('strip')), $('loop-delay'));
  lab.strip = strip;
  /** @param {any} s a GET /stats answer: into the strip, and each pane's bytes and requests per message */
  const pushStats = (s) => {
    strip.push(s);
    for (const v of views) v.wire(strip.figures[v.model.key]);
  };
  pushStats(stats);
  setInterval(async () => {
    try {
      const s = await api('/stats');
      pushStats(s);
      showFeed(s);
    } catch {
      setText($('feed-info'), 'GET /stats failed; retrying');
    }
  }, STATS_INTERVAL_MS);

  await refreshControl();
  setInterval(refreshControl, CONTROL_INTERVAL_MS);
  await network;
  $('differ-btn').addEventListener('click', () => void whereTheyDiffer());
  // Arrived from another network's link: show where the transports differ here, once.
  if (new URLSearchParams(location.search).has('differ')) {
    history.replaceState(null, '', `${location.pathname}${location.hash}`);
    await whereTheyDiffer();
  }

  lab.ready = true;
  document.body.dataset.ready = 'true';
}

void main();
