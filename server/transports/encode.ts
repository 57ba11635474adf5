/**
 * Wire encodings, one function per transport, shared by the server and the bench's micro-benchmarks.
 * A message is always the JSON `{"id","ts","data"}`; control frames carry a top-level `"type"`, which
 * a message never has, so a client tells them apart by that one field.
 */
import type { Message } from '../feed/types.js';
import type { Announcement } from './hub.js';

export const messageJson = (m: Message): string => JSON.stringify({ id: m.id, ts: m.ts, data: m.data });

// ---- Server-Sent Events -------------------------------------------------------------------------
// WHATWG HTML §9.2.6 "Interpreting an event stream": fields are `name: value` lines, an event ends at a
// blank line, `id:` sets the last event ID the browser sends back as `Last-Event-ID` on reconnect, and
// a line starting with `:` is a comment (our heartbeat). JSON.stringify never emits a raw CR or LF, so
// one `data:` line always carries the whole message.

/** `id: 7\ndata: {"id":7,…}\n\n` — no `event:` line, so it fires EventSource's `message` event. */
export const sseMessage = (m: Message): string => `id: ${m.id}\ndata: ${messageJson(m)}\n\n`;

export const sseBatch = (messages: readonly Message[]): Buffer => {
  let s = '';
  for (const m of messages) s += sseMessage(m);
  return Buffer.from(s);
};

/**
 * A named event. `id`, when given, moves the client's last event ID so that a reconnect does not ask
 * for what was already announced (after a gap: the id before the first retained message; after a
 * reset: 0, the start of the new epoch).
 */
export const sseEvent = (event: string, payload: unknown, id?: number): string =>
  `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(payload)}\n\n`;

export function sseAnnouncement(a: Announcement): string {
  switch (a.type) {
    case 'gap':
      return sseEvent(a.type, a, a.firstId - 1);
    case 'reset':
      return sseEvent(a.type, a, 0);
    case 'feed-down':
    case 'feed-up':
      // No id: the client's place in the feed does not move.
      return sseEvent(a.type, a);
    default:
      return a satisfies never;
  }
}

/** `retry:` alone in a block sets the reconnection time and dispatches nothing (§9.2.6). */
export const sseRetry = (ms: number): string => `retry: ${ms}\n\n`;

export const SSE_HEARTBEAT = ': heartbeat\n\n';

// ---- WebSocket ----------------------------------------------------------------------------------

/** One text frame per message; the payloads are encoded once per batch and shared by every socket. */
export const wsFrames = (messages: readonly Message[]): Buffer[] => messages.map((m) => Buffer.from(messageJson(m)));

// ---- Long polling -------------------------------------------------------------------------------

export interface PollBody {
  messages: Message[];
  /** Pass this as `since` in the next poll. */
  lastId: number;
  epoch: string;
  gap?: Extract<Announcement, { type: 'gap' }>;
  reset?: Extract<Announcement, { type: 'reset' }>;
}

/** The body of a poll answer; every poller waiting at the same cursor gets the same bytes. */
export const pollBody = (body: PollBody): string => JSON.stringify(body);
