// One pane per transport: a model that counts what arrived (bounded), and a driver that keeps one
// connection of that transport going with the browser's own fetch / EventSource / WebSocket.
//
// Every driver resumes from the pane's cursor (the last id it saw): after a drop or an error it asks
// for "what came after cursor X", so a resumed pane shows zero lost and zero duplicates unless the
// server announces a gap (cursor older than retention) or a reset (restarted feed / future cursor).

import { api, ApiError, getToken, nowMs } from './api.js';
import { LatencyRing, RateMeter, RecentList } from './metrics.js';
import { postSend, SendModel, WsSends } from './send.js';

/**
 * Short polling asks every second on average: the baseline the other transports are compared with. Each
 * wait is drawn uniformly from 0.5–1.5 × the interval, so the polls do not lock in phase with a publisher
 * that also runs on a 1 s clock (they would then show 100–200 ms where the mean is half the interval).
 */
export const SHORT_POLL_INTERVAL_MS = 1000;
const SHORT_POLL_JITTER = 0.5;
/** "Drop connection" keeps the pane disconnected this long, so messages published meanwhile have to
 * come from the cursor, visibly. */
export const DROP_PAUSE_MS = 1000;
/** A long-poll pane's first request after (re)connecting is held only this long: its answer says the
 * server is there (the pane shows "open"), and anything already after the cursor comes at once. Not 0,
 * which would make it a short poll (and count it under short-poll in /stats). */
const CONNECT_POLL_TIMEOUT_MS = 1;
/**
 * Retry after an error: exponential backoff with full jitter (as Centrifugo's clients do), a wait
 * uniform in [0, min(10 s, 1 s · 2^(failures − 1))], reset by a success: the tabs a restart dropped
 * together (the server may be restarting) do not all come back in the same instant.
 */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10_000;
/** The test hook keeps every received id, up to this many per pane (older ids are dropped). */
export const IDS_CAP = 100_000;
/** Rows in a pane's "last messages" list. */
export const RECENT_ROWS = 10;

/**
 * Wire shapes come from the server's protocol module (types only: the browser loads no TypeScript).
 * A pane's key is also its key in /stats `transports`.
 * @typedef {import('../server/stats.ts').TransportKey} TransportKey
 * @typedef {'connecting'|'open'|'dropped'|'retrying'} PaneState
 * @typedef {import('../server/protocol.ts').Message} Message
 * @typedef {import('../server/protocol.ts').Hello} Hello
 * @typedef {import('../server/protocol.ts').Gap} Gap
 * @typedef {import('../server/protocol.ts').Reset} Reset
 * @typedef {import('../server/protocol.ts').PollAnswer} PollAnswer
 * @typedef {import('../server/protocol.ts').ServerFrame} ServerFrame
 * @typedef {import('../server/transports/params.ts').Compress<'http'>} HttpCompress
 * @typedef {import('../server/transports/params.ts').Compress<'ws'>} WsCompress
 * @typedef {HttpCompress | WsCompress | ''} PaneCompress a pane's `compress`; '' asks for nothing
 */

/** @type {{key: TransportKey, title: string, how: string}[]} */
export const TRANSPORTS = [
  { key: 'poll', title: 'Long polling', how: 'fetch GET /poll?since=<id>, held until a message' },
  { key: 'sse', title: 'Server-Sent Events', how: 'EventSource on /events?since=<id>' },
  { key: 'ws', title: 'WebSocket', how: 'WebSocket on /ws?since=<id>' },
  {
    key: 'short-poll',
    title: 'Short polling',
    how: `fetch GET /poll?since=<id>&timeout=0 every ${SHORT_POLL_INTERVAL_MS / 1000} s on average (jittered ±${SHORT_POLL_JITTER * 100} %)`,
  },
];

/**
 * What a pane's compression choice may be (`?compress=` on its connection, server/transports/params.ts): gzip on
 * the HTTP transports, permessage-deflate with or without context takeover on the WebSocket, or off. `''` asks
 * for nothing: the server's own setting (HTTP_GZIP, WS_DEFLATE: both off by default) applies, as before the
 * choice existed. The values are the server's (type-checked against it); the labels are the page's.
 * @param {TransportKey} key
 * @returns {{value: PaneCompress, label: string}[]}
 */
export function compressChoices(key) {
  /** @type {{value: PaneCompress, label: string}[]} */
  const server = [
    { value: '', label: "server's setting" },
    { value: 'off', label: 'off' },
  ];
  if (key === 'ws')
    return [
      ...server,
      { value: /** @type {WsCompress} */ ('deflate'), label: 'permessage-deflate' },
      { value: /** @type {WsCompress} */ ('deflate-alone'), label: 'deflate, each message alone' },
    ];
  return [...server, { value: /** @type {HttpCompress} */ ('gzip'), label: 'gzip' }];
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** @param {number} failures */
const retryDelay = (failures) => Math.random() * Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.max(0, failures - 1));
/** @param {unknown} err */
const describe = (err) => (err instanceof ApiError ? err.code : err instanceof Error ? err.message : String(err));

export class PaneModel {
  /** @param {TransportKey} key @param {() => number} offsetMs browser → server clock offset */
  constructor(key, offsetMs) {
    this.key = key;
    this.offsetMs = offsetMs;
    /** @type {PaneState} */
    this.state = 'connecting';
    this.detail = '';
    this.stateSince = nowMs();
    /** The resume cursor: the next request asks for ids after this one. */
    this.cursor = 0;
    /** @type {string | undefined} */
    this.epoch = undefined;
    /** Highest id accepted in this epoch; an id at or below it is a duplicate. */
    this.lastSeen = 0;
    this.received = 0;
    this.lost = 0;
    this.duplicates = 0;
    /** Ids that never arrived and were not announced by a gap: must stay 0. */
    this.skipped = 0;
    this.reconnects = 0;
    this.resets = 0;
    this.requests = 0;
    /**
     * Requests of this pane the browser has outstanding now (an EventSource that is not closed counts
     * as one): what it holds of the origin's connections over HTTP/1.1 (web/extra.js).
     */
    this.inFlight = 0;
    /** nextHopProtocol of this pane's connection ('' until known) and where it was read (web/protocol.js). */
    this.protocol = '';
    /** @type {'' | 'resource' | 'navigation' | 'websocket'} */
    this.protocolSource = '';
    /** @type {number[]} every id delivered, duplicates included, in arrival order (test hook) */
    this.ids = [];
    this.recent = new RecentList(RECENT_ROWS);
    /** Latency of live deliveries: what p50 and p99 are over. */
    this.latency = new LatencyRing();
    /**
     * Server-clock time (ms) from which the current subscription is live (live()): a message published
     * before it is a catch-up delivery — the page load, a reconnect — its latency the time the pane was
     * not connected, not the transport's. Counted, charted apart, kept out of p50/p99.
     */
    this.liveSince = Number.POSITIVE_INFINITY;
    this.catchUps = 0;
    this.catchUpLatency = new LatencyRing(1024);
    this.rate = new RateMeter(5);
    /** What this pane sent from its send box, and how long the sends took (web/send.js). */
    this.sends = new SendModel(key);
    /** @type {PaneCompress} the compression its connection asks for (compressChoices); '' the server's own */
    this.compress = '';
  }

  /**
   * The subscription is live from `at` (this browser's clock, ms): the stream or socket opened, or the
   * first poll of a (re)connected loop was sent. Call it before accepting what that connection delivers.
   * @param {number} [at]
   */
  live(at = nowMs()) {
    this.liveSince = at + this.offsetMs();
  }

  /**
   * Where to start: the feed's last id when the page loaded, so every pane sees the same messages.
   * @param {number} cursor @param {string} epoch
   */
  startAt(cursor, epoch) {
    this.cursor = cursor;
    this.lastSeen = cursor;
    this.epoch = epoch;
  }

  /** @param {PaneState} state @param {string} [detail] */
  setState(state, detail = '') {
    if (state !== this.state) this.stateSince = nowMs();
    this.state = state;
    this.detail = detail;
  }

  /** @param {Message} m */
  accept(m) {
    const now = nowMs();
    this.ids.push(m.id);
    if (this.ids.length > IDS_CAP) this.ids.splice(0, this.ids.length - IDS_CAP + IDS_CAP / 10);
    if (m.id <= this.lastSeen) {
      this.duplicates++;
    } else {
      if (m.id > this.lastSeen + 1) this.skipped += m.id - this.lastSeen - 1;
      this.lastSeen = m.id;
      this.received++;
      const latency = now + this.offsetMs() - m.ts;
      const catchUp = m.ts < this.liveSince;
      if (catchUp) {
        this.catchUps++;
        this.catchUpLatency.push(now, latency);
      } else {
        this.latency.push(now, latency);
      }
      this.rate.add(now);
      this.recent.push({ message: m, latency, catchUp });
      this.sends.delivered(m.data, now);
    }
    if (m.id > this.cursor) this.cursor = m.id;
  }

  /** The cursor fell out of retention: `missed` messages are gone, and the server says so. @param {Gap} g */
  gap(g) {
    this.lost += g.missed;
    this.lastSeen = Math.max(this.lastSeen, g.firstId - 1);
    this.cursor = Math.max(this.cursor, g.firstId - 1);
  }

  /** A restarted feed or a future cursor: the stream starts over at cursor 0 of `epoch`. @param {Reset} r */
  reset(r) {
    this.resets++;
    this.epoch = r.epoch;
    this.cursor = 0;
    this.lastSeen = 0;
    this.latency.clear();
    this.catchUpLatency.clear();
  }

  /** @param {Hello} h */
  hello(h) {
    this.epoch ??= h.epoch;
  }

  resumeQuery() {
    const q = new URLSearchParams({ since: String(this.cursor) });
    if (this.epoch) q.set('epoch', this.epoch);
    if (this.compress) q.set('compress', this.compress);
    return q;
  }
}

/**
 * Long polling (held until a message or the server's timeout) and short polling (timeout=0 on a
 * fixed 1 s cadence) share one loop. A drop aborts the request in flight; its answer, if any, is
 * discarded before it is counted, and the cursor did not move, so the next poll asks again.
 */
export class PollDriver {
  #gen = 0;
  /** @type {AbortController | undefined} */
  #abort;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #resumeTimer;

  /** @param {PaneModel} pane @param {boolean} short */
  constructor(pane, short) {
    this.pane = pane;
    this.short = short;
  }

  /** POST /send, as a page on this transport sends. @param {unknown} data @param {string} key */
  send(data, key) {
    return postSend(data, key);
  }

  start() {
    void this.#run(++this.#gen);
  }

  drop() {
    this.#gen++;
    this.#abort?.abort();
    clearTimeout(this.#resumeTimer);
    this.pane.setState('dropped', 'request aborted');
    const gen = this.#gen;
    this.#resumeTimer = setTimeout(() => {
      this.pane.reconnects++;
      void this.#run(gen);
    }, DROP_PAUSE_MS);
  }

  /** Poll again at once from the cursor (the pane's compression changed): the poll in flight is aborted, uncounted. */
  reconnect() {
    this.#gen++;
    this.#abort?.abort();
    clearTimeout(this.#resumeTimer);
    this.pane.reconnects++;
    void this.#run(this.#gen);
  }

  /** @param {number} gen */
  async #run(gen) {
    let failures = 0;
    let connected = false;
    while (gen === this.#gen) {
      const started = nowMs();
      const ctrl = new AbortController();
      this.#abort = ctrl;
      const q = this.pane.resumeQuery();
      if (this.short) q.set('timeout', '0');
      else if (!connected) q.set('timeout', String(CONNECT_POLL_TIMEOUT_MS));
      this.pane.requests++;
      if (this.pane.state !== 'open') this.pane.setState('connecting');
      this.pane.inFlight++;
      try {
        const answer = api(`/poll?${q}`, { signal: ctrl.signal }).finally(() => this.pane.inFlight--);
        const body = /** @type {PollAnswer} */ (await answer);
        if (gen !== this.#gen) return; // dropped while the answer was read: it never counted
        failures = 0;
        // The first answer of a (re)connected loop: what was published before its request is catch-up.
        if (!connected) this.pane.live(started);
        connected = true;
        this.pane.setState('open', this.short ? 'polling every second or so' : 'poll held until a message');
        if (body.reset) this.pane.reset(body.reset);
        if (body.gap) this.pane.gap(body.gap);
        for (const m of body.messages) this.pane.accept(m);
        this.pane.cursor = body.lastId;
        this.pane.epoch = body.epoch;
      } catch (err) {
        if (gen !== this.#gen) return;
        failures++;
        connected = false;
        this.pane.setState('retrying', describe(err));
        await sleep(retryDelay(failures));
        if (gen !== this.#gen) return;
        this.pane.reconnects++;
        continue;
      }
      if (this.short) {
        const interval = SHORT_POLL_INTERVAL_MS * (1 - SHORT_POLL_JITTER + 2 * SHORT_POLL_JITTER * Math.random());
        await sleep(Math.max(0, started + interval - nowMs()));
      }
    }
  }
}

/**
 * EventSource reconnects by itself after a network error, sending Last-Event-ID (which the server
 * prefers over ?since). A drop closes it and opens a new one at ?since=<cursor>; so does an error
 * that made EventSource give up (readyState CLOSED, e.g. an HTTP error status).
 */
export class SseDriver {
  /** @type {EventSource | undefined} */
  #es;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  #failures = 0;

  /** @param {PaneModel} pane */
  constructor(pane) {
    this.pane = pane;
  }

  /** POST /send, as a page on this transport sends. @param {unknown} data @param {string} key */
  send(data, key) {
    return postSend(data, key);
  }

  start() {
    this.#open();
  }

  #open() {
    const pane = this.pane;
    const es = new EventSource(`/events?${pane.resumeQuery()}`);
    this.#es = es;
    pane.inFlight = 1;
    pane.requests++;
    pane.setState('connecting');
    let hadError = false;
    const mine = () => this.#es === es;
    es.onopen = () => {
      if (!mine()) return;
      if (hadError) pane.reconnects++; // EventSource's own reconnect succeeded
      hadError = false;
      this.#failures = 0;
      pane.live();
      pane.setState('open', 'stream open');
    };
    es.onmessage = (e) => {
      if (mine()) pane.accept(JSON.parse(e.data));
    };
    es.addEventListener('hello', (e) => {
      if (mine()) pane.hello(JSON.parse(/** @type {MessageEvent} */ (e).data));
    });
    es.addEventListener('gap', (e) => {
      if (mine()) pane.gap(JSON.parse(/** @type {MessageEvent} */ (e).data));
    });
    es.addEventListener('reset', (e) => {
      if (mine()) pane.reset(JSON.parse(/** @type {MessageEvent} */ (e).data));
    });
    es.onerror = () => {
      if (!mine()) return;
      hadError = true;
      if (es.readyState === EventSource.CONNECTING) {
        pane.requests++; // it is about to try again on its own
        pane.setState('retrying', 'EventSource reconnecting');
        return;
      }
      es.close();
      pane.inFlight = 0;
      this.#failures++;
      pane.setState('retrying', 'EventSource gave up; reopening');
      this.#timer = setTimeout(() => {
        pane.reconnects++;
        this.#open();
      }, retryDelay(this.#failures));
    };
  }

  drop() {
    this.#es?.close();
    this.#es = undefined;
    this.pane.inFlight = 0;
    clearTimeout(this.#timer);
    this.pane.setState('dropped', 'EventSource closed');
    this.#timer = setTimeout(() => {
      this.pane.reconnects++;
      this.#open();
    }, DROP_PAUSE_MS);
  }

  /** Reopen at once from the cursor (the pane's compression changed). */
  reconnect() {
    this.#es?.close();
    this.#es = undefined;
    clearTimeout(this.#timer);
    this.pane.reconnects++;
    this.#open();
  }
}

/** WebSocket: reopened at ?since=<cursor> after a drop or any close. ?token= when a token is set. */
export class WsDriver {
  /** @type {WebSocket | undefined} */
  #ws;
  #sends = new WsSends();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  #failures = 0;

  /** @param {PaneModel} pane */
  constructor(pane) {
    this.pane = pane;
  }

  start() {
    this.#open();
  }

  #open() {
    const pane = this.pane;
    const q = pane.resumeQuery();
    const token = getToken();
    if (token) q.set('token', token);
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?${q}`);
    this.#ws = ws;
    pane.requests++;
    pane.setState('connecting');
    const mine = () => this.#ws === ws;
    let opened = false;
    ws.onopen = () => {
      if (!mine()) return;
      opened = true;
      this.#failures = 0;
      pane.live();
      pane.setState('open', 'socket open');
    };
    ws.onmessage = (e) => {
      if (!mine()) return;
      const frame = /** @type {ServerFrame} */ (JSON.parse(e.data));
      // A message never has a top-level `type`; every control frame has one.
      if (!('type' in frame)) pane.accept(frame);
      else if (frame.type === 'hello') pane.hello(frame);
      else if (frame.type === 'gap') pane.gap(frame);
      else if (frame.type === 'reset') pane.reset(frame);
      else if ((frame.type === 'ack' || frame.type === 'error') && this.#sends.answer(frame)) return;
      else if (frame.type === 'error') pane.setState(pane.state, `server error ${frame.code}`);
    };
    ws.onclose = (e) => {
      if (!mine()) return;
      this.#sends.closed();
      this.#ws = undefined;
      this.#failures++;
      // A refused upgrade (401 wrong token, 403 origin) reaches the page only as close 1006.
      const why = opened
        ? `closed ${e.code}${e.reason ? ` ${e.reason}` : ''}`
        : `could not connect (${token ? 'wrong token? ' : ''}close ${e.code})`;
      pane.setState('retrying', why);
      this.#timer = setTimeout(() => {
        pane.reconnects++;
        this.#open();
      }, retryDelay(this.#failures));
    };
  }

  /** A publish frame on the open socket. @param {unknown} data @param {string} key */
  send(data, key) {
    return this.#sends.send(this.#ws, data, key);
  }

  drop() {
    const ws = this.#ws;
    this.#ws = undefined; // detach first: nothing from the old socket counts any more
    this.#sends.closed();
    ws?.close(1000, 'dropped by the dashboard');
    clearTimeout(this.#timer);
    this.pane.setState('dropped', 'socket closed');
    this.#timer = setTimeout(() => {
      this.pane.reconnects++;
      this.#open();
    }, DROP_PAUSE_MS);
  }

  /** Reopen at once (the token or the pane's compression changed). */
  reconnect() {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#sends.closed();
    ws?.close(1000, 'reconnecting');
    clearTimeout(this.#timer);
    this.pane.reconnects++;
    this.#open();
  }
}

/** @param {PaneModel} pane */
export function driverFor(pane) {
  switch (pane.key) {
    case 'poll':
      return new PollDriver(pane, false);
    case 'short-poll':
      return new PollDriver(pane, true);
    case 'sse':
      return new SseDriver(pane);
    case 'ws':
      return new WsDriver(pane);
    default:
      throw new Error(`unknown transport ${pane.key}`);
  }
}
