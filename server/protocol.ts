/**
 * The wire protocol, in one module: every frame the lab sends or accepts, the poll answer, their
 * encoders, and the WebSocket close codes. The server's transports, the bench's clients and reference
 * servers, the tests and the dashboard (through JSDoc `import()` types) all use these definitions;
 * none keeps a copy of a shape.
 *
 * A message is always the JSON `{"id","ts","data"}`; a control frame carries a top-level `"type"`,
 * which a message never has, so a client tells them apart by that one field. The README's "Message
 * and control formats" section is this file.
 */
import { ERRORS, type ErrorCode } from './errors.js';
import type { Message, ResetReason } from './feed/types.js';
import type { DisconnectReason } from './stats.js';

/** The message is the feed's own record: what is stored is what is sent. */
export type { Message, ResetReason };

// ---- Control frames, server → client ------------------------------------------------------------

/** SSE and WebSocket, first on every connect: the feed's epoch and last id at that moment. */
export interface Hello {
  readonly type: 'hello';
  readonly epoch: string;
  readonly lastId: number;
}

/** The cursor is older than retention: ids `since+1 … firstId-1` are gone; messages go on from `firstId`. */
export interface Gap {
  readonly type: 'gap';
  readonly since: number;
  readonly firstId: number;
  /** `firstId - 1 - since`. */
  readonly missed: number;
}

/** The cursor belongs to no history of this feed: start over at cursor 0 of `epoch`. */
export interface Reset {
  readonly type: 'reset';
  readonly reason: ResetReason;
  readonly epoch: string;
  readonly lastId: number;
}

/** The feed's store is unreachable: publishes fail with this code and nothing new arrives until `feed-up`. */
export interface FeedDown {
  readonly type: 'feed-down';
  readonly code: typeof ERRORS.FEED_UNAVAILABLE.code;
  readonly message: string;
}

export interface FeedUp {
  readonly type: 'feed-up';
}

/**
 * WebSocket: a publish frame was stored as message `id`; `ref` is the frame's own, echoed. `duplicate`:
 * its `key` had been sent already, and `id` is that send's (nothing was appended this time).
 */
export interface Ack {
  readonly type: 'ack';
  readonly id: number;
  readonly ref?: unknown;
  readonly duplicate?: true;
}

/** One item of a batch's answer, in the batch's order: the id it got, `duplicate` when its key had been sent. */
export interface BatchAckItem {
  readonly id: number;
  readonly duplicate?: true;
}

/**
 * WebSocket: a batch publish frame was stored, every item in order (their ids increase in the batch's
 * order); the body of POST /send's and /publish's answer to a batch is `{batch}` the same.
 */
export interface BatchAck {
  readonly type: 'ack';
  readonly batch: readonly BatchAckItem[];
  readonly ref?: unknown;
}

/** WebSocket: a frame was refused (or could not be stored); `ref` is the frame's own, echoed. */
export interface ErrorFrame {
  readonly type: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly ref?: unknown;
}

/** Control events a subscriber must be told about: lost messages are never silent. */
export type Announcement = Gap | Reset | FeedDown | FeedUp;
export type Control = Hello | Announcement | Ack | BatchAck | ErrorFrame;
export type ControlType = Control['type'];
/** What one WebSocket text frame or one SSE `data:` field carries. */
export type ServerFrame = Message | Control;

// ---- Client → server ----------------------------------------------------------------------------

/**
 * WebSocket only (pages on the other transports send with POST /send); answered by `ack` or `error`.
 * `key`: an idempotency key (1–128 visible ASCII characters), so that a send retried after a drop is
 * appended once (see Ack.duplicate).
 */
export interface PublishFrame {
  readonly type: 'publish';
  readonly data: unknown;
  readonly ref?: unknown;
  readonly key?: string;
}

/** One message of a batch: its data and, for retries, its own idempotency key. */
export interface SendItem {
  readonly data: unknown;
  readonly key?: string;
}

/**
 * Several sends in one frame (what a client queued within a few ms), answered by one batch `ack` or one
 * `error`: the batch is checked whole before anything is appended, then appended in order. POST /send and
 * /publish take the same `{batch}` as their body. At most config sendBatchMax items.
 */
export interface BatchPublishFrame {
  readonly type: 'publish';
  readonly batch: readonly SendItem[];
  readonly ref?: unknown;
}

/** The body of a 200 answer to GET /poll (errors are the catalogue's ErrorBody). */
export interface PollAnswer {
  readonly messages: readonly Message[];
  /** Pass this as `since` in the next poll. */
  readonly lastId: number;
  readonly epoch: string;
  readonly reset?: Reset;
  readonly gap?: Gap;
}

// ---- Constructors (one key order, so every server puts the same bytes on the wire) ---------------

export const hello = (epoch: string, lastId: number): Hello => ({ type: 'hello', epoch, lastId });

export const feedDown = (message: string): FeedDown => ({
  type: 'feed-down',
  code: ERRORS.FEED_UNAVAILABLE.code,
  message,
});

export const ack = (id: number, ref: unknown, duplicate = false): Ack => {
  const a: Ack = ref === undefined ? { type: 'ack', id } : { type: 'ack', id, ref };
  return duplicate ? { ...a, duplicate: true } : a;
};

/** The answer to a batch (one key order); `duplicate` only on items whose key had been sent. */
export const batchAck = (items: readonly { id: number; duplicate: boolean }[], ref: unknown): BatchAck => {
  const batch = items.map((i): BatchAckItem => (i.duplicate ? { id: i.id, duplicate: true } : { id: i.id }));
  return ref === undefined ? { type: 'ack', batch } : { type: 'ack', batch, ref };
};

/** A client's batch frame (one key order); `ref` only when given, each item's `key` only when given. */
export const batchFrame = (items: readonly SendItem[], ref?: unknown): BatchPublishFrame => ({
  type: 'publish',
  batch: items.map((i) => (i.key === undefined ? { data: i.data } : { data: i.data, key: i.key })),
  ...(ref === undefined ? {} : { ref }),
});

/** A client's publish frame (one key order); `ref` and `key` only when given. */
export const publishFrame = (data: unknown, ref?: unknown, key?: string): PublishFrame => ({
  type: 'publish',
  data,
  ...(ref === undefined ? {} : { ref }),
  ...(key === undefined ? {} : { key }),
});

export const errorFrame = (code: ErrorCode, message: string, ref: unknown): ErrorFrame =>
  ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref };

/** A poll answer: the messages, then what was announced before them (reset, then gap, in read order). */
export function pollAnswer(
  messages: readonly Message[],
  lastId: number,
  epoch: string,
  announcements: readonly Announcement[] = [],
): PollAnswer {
  let answer: PollAnswer = { messages, lastId, epoch };
  for (const a of announcements) {
    if (a.type === 'gap') answer = { ...answer, gap: a };
    else if (a.type === 'reset') answer = { ...answer, reset: a };
  }
  return answer;
}

const CODES: ReadonlySet<string> = new Set(Object.values(ERRORS).map((e) => e.code));
/** Whether `code` is one of the catalogue's (an error thrown by the lab's own code carries one). */
export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === 'string' && CODES.has(code);

/**
 * A client frame, checked for its type: a `publish` frame with `data`, or with `batch` (whose items the
 * publish path checks: publish.ts sendItems), or undefined for anything else (the caller answers
 * LAB_ERR_BAD_FRAME).
 */
export function parsePublishFrame(frame: unknown): PublishFrame | BatchPublishFrame | undefined {
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) return undefined;
  const f = frame as Partial<Record<keyof PublishFrame | 'batch', unknown>>;
  if (f.type !== 'publish' || 'data' in f === 'batch' in f) return undefined;
  return f as PublishFrame | BatchPublishFrame;
}

/** The `ref` of any parsed frame, to echo in an error answer (undefined when it has none). */
export const refOf = (frame: unknown): unknown =>
  frame !== null && typeof frame === 'object' ? (frame as { ref?: unknown }).ref : undefined;

// ---- Encoders -----------------------------------------------------------------------------------

export const messageJson = (m: Message): string => JSON.stringify({ id: m.id, ts: m.ts, data: m.data });

// Server-Sent Events. WHATWG HTML §9.2.6 "Interpreting an event stream": fields are `name: value`
// lines, an event ends at a blank line, `id:` sets the last event ID the browser sends back as
// `Last-Event-ID` on reconnect, and a line starting with `:` is a comment (our heartbeat).
// JSON.stringify never emits a raw CR or LF, so one `data:` line always carries the whole frame.

/** `id: 7\ndata: {"id":7,…}\n\n` — no `event:` line, so it fires EventSource's `message` event. */
export const sseMessage = (m: Message): string => `id: ${m.id}\ndata: ${messageJson(m)}\n\n`;

export const sseBatch = (messages: readonly Message[]): Buffer => {
  let s = '';
  for (const m of messages) s += sseMessage(m);
  return Buffer.from(s);
};

/** The control frames SSE carries (acks and errors answer WebSocket frames only). */
export type SseControl = Hello | Announcement;

/**
 * A control frame as a named event (`event: <type>`). Its `id:` moves the client's last event ID so
 * that a reconnect does not ask for what was already announced: after a gap, the id before the first
 * retained message; after a reset, 0 (the start of the new epoch). The others leave it where it is.
 */
export function sseControl(c: SseControl): string {
  const event = (id?: number) =>
    `event: ${c.type}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(c)}\n\n`;
  switch (c.type) {
    case 'gap':
      return event(c.firstId - 1);
    case 'reset':
      return event(0);
    case 'hello':
    case 'feed-down':
    case 'feed-up':
      return event();
    default:
      return c satisfies never;
  }
}

/**
 * The `retry:` of one connection: uniform in [baseMs, baseMs + jitterMs] (`random` in [0, 1)), so that
 * streams dropped together do not all come back in the same instant. jitterMs 0: exactly baseMs.
 */
export const jitteredRetryMs = (baseMs: number, jitterMs: number, random: () => number = Math.random): number =>
  jitterMs > 0 ? baseMs + Math.floor(random() * (jitterMs + 1)) : baseMs;
/** `retry:` alone in a block sets the reconnection time and dispatches nothing (§9.2.6). */
export const sseRetry = (ms: number): string => `retry: ${ms}\n\n`;

export const SSE_HEARTBEAT = ': heartbeat\n\n';

/** Response headers of GET /events over HTTP/2, where `Connection` is forbidden and a stream ends alone. */
export const SSE_HEADERS_H2 = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  // Tells nginx not to buffer the stream.
  'x-accel-buffering': 'no',
});

/**
 * The headers of every poll answer but its length, as a flat list in the order the lab sends them (its
 * own node:http path and Fastify's send alike): what a client may cache, what it parses. The reference
 * servers answer with the same list.
 */
export const POLL_HEAD: readonly string[] = Object.freeze([
  'cache-control',
  'no-store',
  'content-type',
  'application/json; charset=utf-8',
]);

/** Response headers of GET /events over HTTP/1.1: the socket closes with the stream. */
export const SSE_HEADERS = Object.freeze({ ...SSE_HEADERS_H2, connection: 'close' });

/**
 * An SSE batch as one HTTP/1.1 chunk (RFC 9112 §7.1: size in hex, CRLF, data, CRLF) — the bytes
 * Node's `res.write(body)` puts on a chunked response, built once per batch so that the same Buffer
 * can be written to every stream's socket (server/transports/shared-write.ts).
 */
export function httpChunk(body: Buffer): Buffer {
  const size = `${body.length.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(size.length + body.length + 2);
  out.write(size, 0, 'latin1');
  body.copy(out, size.length);
  out[out.length - 2] = 0x0d;
  out[out.length - 1] = 0x0a;
  return out;
}

// WebSocket.

/** Each message's text-frame payload, for ws' own `send` (the fallback of shared-write.ts; wsWire below is the shared path). */
export const wsFrames = (messages: readonly Message[]): Buffer[] => messages.map((m) => Buffer.from(messageJson(m)));

/** RFC 6455 §5.2: bytes of the header of an unmasked frame carrying `length` payload bytes. */
const wsHeaderLength = (length: number): number => (length < 126 ? 2 : length < 65536 ? 4 : 10);

/**
 * Every message of a batch as whole WebSocket frames, headers included, in ONE Buffer: final, text
 * (opcode 1), unmasked (a server never masks, §5.1), no extension bits — the bytes `ws` writes for
 * `send(payload, { binary: false })` with permessage-deflate off (test/server/transports/shared-write.test.ts compares
 * them with ws's own `Sender.frame`). Built once per batch and written as is to every socket that can
 * take it (server/transports/shared-write.ts); one allocation, no per-socket framing.
 */
export function wsWire(messages: readonly Message[]): Buffer {
  const texts = messages.map(messageJson);
  let total = 0;
  const lengths = texts.map((t) => {
    const n = Buffer.byteLength(t);
    total += wsHeaderLength(n) + n;
    return n;
  });
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (let i = 0; i < texts.length; i++) {
    const n = lengths[i]!;
    out[o++] = 0x81; // FIN + text
    if (n < 126) out[o++] = n;
    else if (n < 65536) {
      out[o++] = 126;
      out.writeUInt16BE(n, o);
      o += 2;
    } else {
      out[o++] = 127;
      out.writeUInt32BE(Math.floor(n / 2 ** 32), o);
      out.writeUInt32BE(n >>> 0, o + 4);
      o += 8;
    }
    o += out.write(texts[i]!, o);
  }
  return out;
}

/** A control frame as the text of one WebSocket frame. */
export const wsControl = (c: Control): string => JSON.stringify(c);

// Long polling.

/** The body of a poll answer; every poller waiting at the same cursor gets the same bytes. */
export const pollBody = (answer: PollAnswer): string => JSON.stringify(answer);

// ---- WebSocket close codes ----------------------------------------------------------------------

/**
 * RFC 6455 §7.4.1. 1001 "going away" for shutdown and a store outage, 1008 "policy violation" for too
 * many refused frames, 1011 "internal error" for a failure of the server's own, 1013 "try again later"
 * for a slow consumer it had to drop. `ws` itself sends 1007 (a text frame that is not UTF-8) and 1009
 * (a frame over maxPayloadBytes). 1006 is never sent (§7.4.1: "MUST NOT be set as a status code in a
 * Close control frame"): it is what a peer reports when the connection ended without a close frame.
 */
export const WS_CLOSE = Object.freeze({
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  POLICY_VIOLATION: 1008,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
});

/**
 * How the server ends a WebSocket it decided to end: a close frame with a code and a catalogue code as
 * its reason, or (`frame: false`) a cut with no close frame, which the peer sees as 1006.
 */
export type WsEnd =
  | { readonly frame: true; readonly code: number; readonly reason: ErrorCode }
  | { readonly frame: false; readonly code: typeof WS_CLOSE.ABNORMAL; readonly reason: ErrorCode };

/**
 * Close reasons must fit in 123 bytes (RFC 6455 §5.5: a control frame payload is at most 125 bytes, 2
 * of them the code); catalogue codes do. A peer that missed its pong is presumed dead: a close frame
 * would only wait on it, so it is cut.
 */
export const WS_END: Readonly<Record<Exclude<DisconnectReason, 'client'>, WsEnd>> = Object.freeze({
  'slow-consumer': { frame: true, code: WS_CLOSE.TRY_AGAIN_LATER, reason: ERRORS.SLOW_CONSUMER.code },
  shutdown: { frame: true, code: WS_CLOSE.GOING_AWAY, reason: ERRORS.SHUTTING_DOWN.code },
  'pong-timeout': { frame: false, code: WS_CLOSE.ABNORMAL, reason: ERRORS.PONG_TIMEOUT.code },
  'too-many-errors': { frame: true, code: WS_CLOSE.POLICY_VIOLATION, reason: ERRORS.TOO_MANY_ERRORS.code },
  'feed-down': { frame: true, code: WS_CLOSE.GOING_AWAY, reason: ERRORS.FEED_UNAVAILABLE.code },
  error: { frame: true, code: WS_CLOSE.INTERNAL_ERROR, reason: ERRORS.INTERNAL.code },
});

// HTTP.

/**
 * What a server speaks on its port: cleartext HTTP/1.1, HTTP/1.1 over TLS, or HTTP/2 over TLS (with
 * HTTP/1.1 on the same port, by ALPN, for WebSocket and clients without h2).
 */
export const HTTP_PROTOCOLS = ['http/1.1', 'https/1.1', 'h2'] as const;
export type HttpProtocol = (typeof HTTP_PROTOCOLS)[number];
