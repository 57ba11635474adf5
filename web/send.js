// Sending from a pane: the send box and auto-send. A pane sends the way a page on its transport
// would — the WebSocket pane a publish frame on its open socket, the others POST /send — and times two
// things per send: until the server acknowledged it (ack), and until the pane received it back on its
// own transport (seen). Each send carries an idempotency key of this tab, which is also how the pane
// recognises its own messages among everyone's.

import { ApiError, api, nowMs } from './api.js';
import { LatencyRing } from './metrics.js';

/** Sends awaiting their own delivery are forgotten past this many (a pane that stopped receiving). */
const AWAITING_CAP = 1000;

/** This tab's id in every key: `<tab>:<transport>:<n>`. */
const TAB = Math.random().toString(36).slice(2, 8);

/** What one pane has sent and how long its sends took. */
export class SendModel {
  /** @param {string} transport */
  constructor(transport) {
    this.transport = transport;
    this.sent = 0;
    this.acked = 0;
    this.refused = 0;
    this.seen = 0;
    this.lastError = '';
    /** Send → acknowledged by the server, ms. */
    this.ack = new LatencyRing(1024);
    /** Send → received back on this pane's own transport, ms. */
    this.seenLatency = new LatencyRing(1024);
    /** @type {Map<string, number>} key → when it was sent (this browser's clock), until the pane receives it */
    this.awaiting = new Map();
    this.counter = 0;
  }

  nextKey() {
    this.counter++;
    return `${TAB}:${this.transport}:${this.counter}`;
  }

  /** @param {string} key @param {number} at */
  started(key, at) {
    this.sent++;
    this.awaiting.set(key, at);
    if (this.awaiting.size > AWAITING_CAP)
      this.awaiting.delete(/** @type {string} */ (this.awaiting.keys().next().value));
  }

  /** A message this pane received: if it is one of its own sends, its round trip is done. @param {unknown} data @param {number} now */
  delivered(data, now) {
    const k = data !== null && typeof data === 'object' ? /** @type {{k?: unknown}} */ (data).k : undefined;
    if (typeof k !== 'string') return;
    const at = this.awaiting.get(k);
    if (at === undefined) return;
    this.awaiting.delete(k);
    this.seen++;
    this.seenLatency.push(now, now - at);
  }
}

/**
 * How a pane sends: `send(data, key)` resolves once the server acknowledged it and rejects with an
 * ApiError (a refusal: its LAB_ERR_* code) or an Error (the connection failed first).
 * @typedef {{ send(data: unknown, key: string): Promise<unknown> }} Sender
 */

/** POST /send with the key as Idempotency-Key (the SSE, long- and short-polling panes). @param {unknown} data @param {string} key */
export const postSend = (data, key) =>
  api('/send', { method: 'POST', json: { data }, auth: true, headers: { 'idempotency-key': key } });

/**
 * The WebSocket pane's sends in flight, by ref: answered by the server's `ack` or `error` with that ref,
 * failed when the socket closes first.
 */
export class WsSends {
  #ref = 0;
  /** @type {Map<number, {resolve: (v: unknown) => void, reject: (e: Error) => void}>} */
  #pending = new Map();

  /** @param {WebSocket | undefined} ws @param {unknown} data @param {string} key */
  send(ws, data, key) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('socket not open'));
    const ref = ++this.#ref;
    return new Promise((resolve, reject) => {
      this.#pending.set(ref, { resolve, reject });
      ws.send(JSON.stringify({ type: 'publish', data, ref, key }));
    });
  }

  /** An `ack` or `error` frame; true when it answered one of these sends. @param {{type: string, ref?: unknown, code?: string, message?: string}} frame */
  answer(frame) {
    if (typeof frame.ref !== 'number') return false;
    const p = this.#pending.get(frame.ref);
    if (!p) return false;
    this.#pending.delete(frame.ref);
    if (frame.type === 'ack') p.resolve(frame);
    else p.reject(new ApiError(0, String(frame.code), String(frame.message ?? frame.code)));
    return true;
  }

  /** The socket closed: whatever was not answered may or may not have counted. */
  closed() {
    for (const p of this.#pending.values()) p.reject(new Error('socket closed before the answer'));
    this.#pending.clear();
  }
}

/**
 * One send of `text` from `model`'s pane through `sender`, timed.
 * @param {SendModel} model @param {Sender} sender @param {string} text
 */
export async function sendText(model, sender, text) {
  const key = model.nextKey();
  const at = nowMs();
  model.started(key, at);
  try {
    await sender.send({ text, from: model.transport, k: key }, key);
    model.acked++;
    const now = nowMs();
    model.ack.push(now, now - at);
  } catch (err) {
    model.awaiting.delete(key);
    model.refused++;
    model.lastError = err instanceof ApiError ? err.code : err instanceof Error ? err.message : String(err);
  }
}
