// The browser's connection limit, reproduced: N extra EventSources, or N extra long-poll loops, to this
// same origin, and for each one whether it is getting through.
//
// Over HTTP/1.1 Chromium opens at most 6 connections per origin (scheme + host + port) and queues any
// further request until one of them is free, without an error, an event or a timeout: an EventSource
// beyond the limit just stays CONNECTING, which is how "the 7th tab stalls with no error" looks
// (freenet/freenet-core#5213). Over HTTP/2 every request is a stream on one connection and they all go.
//
// What "live" and "stalled" mean differs by kind, because the two kinds use connections differently:
//
// - EventSource holds its connection for good. `live`: the stream opened and its `hello` event
//   arrived. `stalled`: it has not even opened, although since it was created a message newer than
//   anything this page had then has arrived over another connection (a pane, another extra stream):
//   the server was up and publishing, and this stream's request never got an answer. `waiting`:
//   neither yet (nothing newer has arrived anywhere, so a quiet feed cannot be told from a stall).
//   The page cannot tell a queued request from one still on its way (Chromium has no Resource Timing
//   entry for an open EventSource), so a stream whose request is still in flight when such a message
//   arrives over an open connection counts as stalled for those few milliseconds, until it opens.
//
// - A long poll gives its connection back with every answer, so a queued poll does go out as soon as
//   an answer frees a connection: it gets each message late, not never (a few ms here, but up to the
//   poll timeout, 25 s, when nothing is published; meanwhile every other request to the origin waits).
//   So a loop is classified per message, from Resource Timing (startTime: issued by the page;
//   requestStart: sent on a connection): for the newest message #m that every loop has received, let
//   E be the earliest responseEnd of the answers that brought #m. `live`: its request was sent before
//   E (it was held at the server when #m was published). `stalled`: it was issued before E but sent
//   only after E (it waited in the browser until an answer freed a connection). A request issued after
//   E (the loop was between two polls) counts as live: it was not held back by the limit. `waiting`:
//   no message has reached every loop yet.

import { fmtMs, fmtNum, setData, setText } from './format.js';
import { EXTRA_PARAM, navigationProtocol, pageTls, protocolLabel } from './protocol.js';

/**
 * Chromium's limit of connections per origin over HTTP/1.1 (its socket pools' "max sockets per group";
 * test/web/connection-limit.test.ts checks it: the SSE pane's stream and at most 5 extra ones).
 */
const H1_CONNECTIONS_PER_ORIGIN = 6;
/** The number input's default. */
const DEFAULT_EXTRA = 10;
const MAX_EXTRA = 100;
/** Answers (with messages) each poll loop remembers, for the classification above. */
const DELIVERIES_KEPT = 16;
/** A poll loop retries this long after an error. */
const RETRY_MS = 1000;

/**
 * @typedef {import('./panes.js').PaneModel} PaneModel
 * @typedef {import('../server/protocol.ts').PollAnswer} PollAnswer
 * @typedef {import('../server/protocol.ts').Message} Message
 * @typedef {'sse' | 'poll'} ExtraKind
 * @typedef {'waiting' | 'live' | 'stalled' | 'error'} ExtraState
 * @typedef {{id: string, state: ExtraState, received: number, lastId: number, waitMs: number | null}} ExtraStreamView
 * @typedef {{
 *   kind: ExtraKind | null, opened: number, live: number, stalled: number, waiting: number, errors: number,
 *   protocol: string, tls: boolean, limit: number | null,
 *   panesHold: {sse: number, poll: number, 'short-poll': number}, maxLive: number | null,
 *   reference: number | null, streams: ExtraStreamView[],
 * }} ExtraSnapshot
 */

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ExtraSse {
  /** @param {string} id @param {number} baseline the newest id this page had when it was created */
  constructor(id, baseline) {
    this.id = id;
    this.baseline = baseline;
    this.hello = false;
    this.received = 0;
    this.lastId = baseline;
    this.errors = 0;
    // From the baseline on: a stream that opens late still gets what was published meanwhile.
    const q = new URLSearchParams({ since: String(baseline), [EXTRA_PARAM]: id });
    this.es = new EventSource(`/events?${q}`);
    this.es.addEventListener('hello', () => {
      this.hello = true;
    });
    this.es.onmessage = (e) => {
      const m = /** @type {Message} */ (JSON.parse(e.data));
      this.received++;
      this.lastId = Math.max(this.lastId, m.id);
    };
    this.es.addEventListener('reset', () => {
      this.lastId = 0;
    });
    // Over HTTP/1.1 a queued EventSource never gets here: it has no error to report. After an error
    // it reconnects by itself, and is live again once a new hello arrives.
    this.es.onerror = () => {
      this.errors++;
      this.hello = false;
    };
  }

  /** @param {number} newest the newest id this page has received, over any connection @returns {ExtraState} */
  state(newest) {
    if (this.es.readyState === EventSource.CLOSED) return 'error';
    if (this.hello) return 'live';
    if (this.errors > 0) return 'error';
    return newest > this.baseline ? 'stalled' : 'waiting';
  }

  close() {
    this.es.close();
  }
}

class ExtraPoll {
  /** @param {string} id @param {number} baseline */
  constructor(id, baseline) {
    this.id = id;
    this.cursor = baseline;
    this.lastId = baseline;
    this.received = 0;
    this.errors = 0;
    /** Whether the last request failed (it retries after RETRY_MS). */
    this.failing = false;
    this.seq = 0;
    this.closed = false;
    this.abort = new AbortController();
    /** @type {{tag: string, firstId: number, lastId: number}[]} answers with messages, newest last */
    this.deliveries = [];
    /** @type {Map<string, PerformanceResourceTiming>} this loop's recent requests' entries, by tag */
    this.timings = new Map();
    void this.#run();
  }

  async #run() {
    while (!this.closed) {
      const tag = `${this.id}.${++this.seq}`;
      // The server's default timeout (25 s): held until a message, like the long-poll pane.
      const q = new URLSearchParams({ since: String(this.cursor), [EXTRA_PARAM]: tag });
      try {
        const res = await fetch(`/poll?${q}`, { cache: 'no-store', signal: this.abort.signal });
        const body = /** @type {PollAnswer} */ (await res.json());
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        if (this.closed) return;
        if (body.reset) this.lastId = 0;
        const first = body.messages[0];
        const last = body.messages[body.messages.length - 1];
        if (first && last) {
          this.deliveries.push({ tag, firstId: first.id, lastId: last.id });
          if (this.deliveries.length > DELIVERIES_KEPT) this.deliveries.shift();
          this.received += body.messages.length;
          this.lastId = Math.max(this.lastId, last.id);
        }
        this.cursor = body.lastId;
        this.failing = false;
      } catch {
        if (this.closed) return;
        this.errors++;
        this.failing = true;
        await sleep(RETRY_MS);
      }
    }
  }

  /** @param {string} tag @param {PerformanceResourceTiming} entry */
  timed(tag, entry) {
    this.timings.set(tag, entry);
    // The entry may come before or after its answer was read: keep a few more than the deliveries.
    if (this.timings.size > 2 * DELIVERIES_KEPT) {
      const oldest = this.timings.keys().next().value;
      if (oldest !== undefined) this.timings.delete(oldest);
    }
  }

  /** The answer that brought message `id`, with its timing (undefined if none, or not timed yet). @param {number} id */
  delivery(id) {
    const d = this.deliveries.find((x) => x.firstId <= id && id <= x.lastId);
    const timing = d && this.timings.get(d.tag);
    return timing ? { timing } : undefined;
  }

  close() {
    this.closed = true;
    this.abort.abort();
  }
}

/** The "Connection limit" section: its controls, its extra streams and the test hook's view of them. */
export class ExtraStreams {
  /**
   * @param {{count: HTMLInputElement, openSse: HTMLElement, openPoll: HTMLElement, close: HTMLElement,
   *   protocol: HTMLElement, explain: HTMLElement, summary: HTMLElement, list: HTMLElement}} els
   * @param {Record<string, PaneModel>} panes by transport key
   * @param {import('./protocol.js').ProtocolWatch} watch
   */
  constructor(els, panes, watch) {
    this.els = els;
    this.panes = panes;
    /** @type {ExtraKind | null} */
    this.kind = null;
    /** @type {(ExtraSse | ExtraPoll)[]} */
    this.streams = [];
    this.generation = 0;
    this.protocol = navigationProtocol();
    this.tls = pageTls();
    /** @type {HTMLLIElement[]} */
    this.items = [];
    watch.onEntry((e) => this.#timed(e));
    els.count.value = String(DEFAULT_EXTRA);
    els.count.max = String(MAX_EXTRA);
    els.count.addEventListener('input', () => this.#labels());
    els.openSse.addEventListener('click', () => this.open('sse', this.#count()));
    els.openPoll.addEventListener('click', () => this.open('poll', this.#count()));
    els.close.addEventListener('click', () => this.close());
    this.#labels();
    setText(
      els.protocol,
      `this page: ${protocolLabel(this.protocol)} · ${this.tls ? 'TLS' : 'no TLS'} (navigation entry's nextHopProtocol)`,
    );
    setText(els.explain, this.#explanation());
  }

  #count() {
    const n = this.els.count.valueAsNumber;
    return Number.isFinite(n) ? Math.max(1, Math.min(MAX_EXTRA, Math.round(n))) : DEFAULT_EXTRA;
  }

  #labels() {
    const n = this.#count();
    setText(this.els.openSse, `Open ${n} EventSource${n === 1 ? '' : 's'}`);
    setText(this.els.openPoll, `Open ${n} long poll${n === 1 ? '' : 's'}`);
  }

  /** The newest message id this page has received over any connection (panes and extra streams). */
  #newest() {
    let newest = 0;
    for (const p of Object.values(this.panes)) newest = Math.max(newest, p.lastSeen);
    for (const s of this.streams) newest = Math.max(newest, s.lastId);
    return newest;
  }

  /** @param {ExtraKind} kind @param {number} n */
  open(kind, n) {
    this.close();
    this.kind = kind;
    const gen = ++this.generation;
    const baseline = this.#newest();
    for (let i = 1; i <= n; i++) {
      const id = `${kind === 'sse' ? 's' : 'p'}${gen}-${i}`;
      this.streams.push(kind === 'sse' ? new ExtraSse(id, baseline) : new ExtraPoll(id, baseline));
    }
    this.render();
  }

  /** Closes every extra stream: over HTTP/1.1 their connections go back to the queue (or are closed). */
  close() {
    for (const s of this.streams) s.close();
    this.streams = [];
    this.kind = null;
    this.render();
  }

  /** @param {PerformanceResourceTiming} e */
  #timed(e) {
    if (this.kind !== 'poll') return;
    let tag;
    try {
      tag = new URL(e.name).searchParams.get(EXTRA_PARAM);
    } catch {
      return;
    }
    if (!tag) return;
    const id = tag.slice(0, tag.lastIndexOf('.'));
    const loop = this.streams.find((s) => s.id === id);
    if (loop instanceof ExtraPoll) loop.timed(tag, e);
  }

  /**
   * For the poll loops: the newest message every loop has received with its request timed, and per
   * loop whether that request was held at the server or queued in the browser (see the top of the file).
   * @param {ExtraPoll[]} loops
   * @returns {{reference: number, states: Map<ExtraPoll, {state: ExtraState, waitMs: number}>} | undefined}
   */
  #classifyPolls(loops) {
    /** @type {Set<number>} */
    const candidates = new Set();
    for (const l of loops) for (const d of l.deliveries) candidates.add(d.lastId).add(d.firstId);
    for (const m of [...candidates].sort((a, b) => b - a)) {
      const got = loops.map((l) => l.delivery(m));
      if (!got.every((g) => g !== undefined)) continue;
      const timings = got.map((g) => /** @type {{timing: PerformanceResourceTiming}} */ (g).timing);
      const firstAnswer = Math.min(...timings.map((t) => t.responseEnd));
      /** @type {Map<ExtraPoll, {state: ExtraState, waitMs: number}>} */
      const states = new Map();
      loops.forEach((l, i) => {
        const t = /** @type {PerformanceResourceTiming} */ (timings[i]);
        const queued = t.startTime < firstAnswer && t.requestStart >= firstAnswer;
        states.set(l, { state: queued ? 'stalled' : 'live', waitMs: t.requestStart - t.startTime });
      });
      return { reference: m, states };
    }
    return undefined;
  }

  /** @returns {ExtraSnapshot} */
  snapshot() {
    const newest = this.#newest();
    const sse = this.panes.sse;
    const poll = this.panes.poll;
    const short = this.panes['short-poll'];
    const panesHold = { sse: sse?.inFlight ?? 0, poll: poll?.inFlight ?? 0, 'short-poll': short?.inFlight ?? 0 };
    const limit = this.protocol === 'http/1.1' ? H1_CONNECTIONS_PER_ORIGIN : null;
    const loops = /** @type {ExtraPoll[]} */ (this.streams.filter((s) => s instanceof ExtraPoll));
    const classified = this.kind === 'poll' ? this.#classifyPolls(loops) : undefined;
    /** @type {ExtraStreamView[]} */
    const streams = this.streams.map((s) => {
      if (s instanceof ExtraSse)
        return { id: s.id, state: s.state(newest), received: s.received, lastId: s.lastId, waitMs: null };
      const c = classified?.states.get(s);
      /** @type {ExtraState} */
      const state = s.failing ? 'error' : (c?.state ?? 'waiting');
      return { id: s.id, state, received: s.received, lastId: s.lastId, waitMs: c ? c.waitMs : null };
    });
    const count = (/** @type {ExtraState} */ st) => streams.filter((s) => s.state === st).length;
    return {
      kind: this.kind,
      opened: this.streams.length,
      live: count('live'),
      stalled: count('stalled'),
      waiting: count('waiting'),
      errors: count('error'),
      protocol: this.protocol,
      tls: this.tls,
      limit,
      panesHold,
      // The SSE pane's stream holds its connection for good; the long-poll pane's request gives its
      // connection back at every answer (and an extra stream queued before it may take it).
      maxLive: limit === null ? null : limit - panesHold.sse,
      reference: classified?.reference ?? null,
      streams,
    };
  }

  #explanation() {
    if (this.protocol === 'http/1.1') {
      return (
        `This page talks HTTP/1.1 to the server (${this.tls ? 'over TLS' : 'cleartext'}). Chromium opens at most ${H1_CONNECTIONS_PER_ORIGIN} ` +
        'connections per origin (scheme + host + port) and queues every further request until one is free: no error, no event, no timeout. ' +
        "The panes already use some: the SSE pane's stream holds one for good; the long-poll pane's request holds one while it is held " +
        '(it gives it back at every answer, and a queued stream may take it); short polls and the /stats and /control fetches hold one for a ' +
        'moment each. WebSockets have a pool of their own and do not count. So at most 6 − 1 = 5 extra streams can be live (4 while the ' +
        'long-poll pane holds its request), the rest stall; and once extra EventSources hold every connection, the long-poll and short-poll ' +
        "panes and this page's own /stats fetches wait behind them too. Long polls give their connection back at every answer: a queued " +
        'long poll goes out when an answer frees one, so it gets each message late (up to the 25 s poll timeout when nothing is published), not never.'
      );
    }
    if (this.protocol === 'h2' || this.protocol === 'h3') {
      return (
        `This page talks ${protocolLabel(this.protocol)}: every request is a stream on one multiplexed connection, so HTTP/1.1's limit of ` +
        `${H1_CONNECTIONS_PER_ORIGIN} connections per origin does not apply and every extra stream gets through. ` +
        '(The WebSocket pane still opens an HTTP/1.1 connection of its own: ws does not implement RFC 8441.)'
      );
    }
    return `This page's protocol is not known (${this.protocol || 'no nextHopProtocol'}).`;
  }

  render() {
    const s = this.snapshot();
    const { summary, list } = this.els;
    setData(summary, 'kind', s.kind ?? 'none');
    setData(summary, 'stalled', String(s.stalled));
    if (s.kind === null) {
      setText(summary, 'No extra streams open.');
    } else {
      const what = s.kind === 'sse' ? 'EventSource' : 'long poll';
      const held = `requests the panes have outstanding: SSE ${s.panesHold.sse}, long poll ${s.panesHold.poll}, short poll ${s.panesHold['short-poll']}`;
      const max = s.maxLive === null ? 'no per-origin connection limit' : `at most ${s.maxLive} can be live (${held})`;
      const ref =
        s.kind === 'poll'
          ? s.reference === null
            ? ' · no message has reached all of them yet'
            : ` · for message #${s.reference}`
          : '';
      setText(
        summary,
        `${fmtNum(s.opened)} extra ${what}${s.opened === 1 ? '' : 's'}: ${fmtNum(s.live)} live, ${fmtNum(s.stalled)} stalled${s.kind === 'poll' ? ' (queued in the browser, so late)' : ' (no error, no event)'}, ` +
          `${fmtNum(s.waiting)} waiting${s.errors ? `, ${fmtNum(s.errors)} failing` : ''}${ref} · ${max}`,
      );
    }
    while (this.items.length < s.streams.length) this.items.push(list.appendChild(document.createElement('li')));
    while (this.items.length > s.streams.length) this.items.pop()?.remove();
    s.streams.forEach((v, i) => {
      const li = /** @type {HTMLLIElement} */ (this.items[i]);
      setData(li, 'state', v.state);
      const wait =
        v.waitMs === null
          ? ''
          : v.state === 'stalled'
            ? ` · queued ${fmtMs(v.waitMs)}`
            : ` · sent after ${fmtMs(v.waitMs)}`;
      setText(li, `${v.id} ${v.state}${wait} · ${fmtNum(v.received)} msg${v.received === 1 ? '' : 's'}`);
      li.title = TITLES[s.kind === 'poll' ? 'poll' : 'sse'][v.state];
    });
  }
}

/** Each state's meaning, per kind, as a tooltip. */
const TITLES = {
  sse: {
    live: 'the stream opened and its hello event arrived',
    stalled:
      'not opened: a newer message has since arrived over another connection, yet this request never got an answer (and no error)',
    waiting: 'not opened yet, and no newer message has arrived anywhere: cannot yet be told from a quiet feed',
    error: 'EventSource reported an error (it is reconnecting or gave up)',
  },
  poll: {
    live: 'its request for the reference message was already sent when the first answer carrying that message arrived: held at the server',
    stalled:
      'its request was issued before the first answer carrying the reference message arrived but sent only after it, on the connection that answer freed: queued in the browser',
    waiting: 'no message has reached every loop yet',
    error: 'its last request failed; it retries in a second',
  },
};
