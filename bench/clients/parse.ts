/** Hands one received message (or control frame) to the sink. Shared by the lab-protocol clients. */
import type { ServerFrame } from '../../server/protocol.js';
import type { ClientSink } from './types.js';

/** `data.t` of a bench message (its scheduled send time, see types.ts); NaN when it has none. */
export function scheduledMs(data: unknown): number {
  const t = data !== null && typeof data === 'object' ? (data as { t?: unknown }).t : undefined;
  return typeof t === 'number' ? t : NaN;
}

/** `text`: the frame JSON as it came off the wire, when the transport carries each message whole. */
export function dispatch(sink: ClientSink, client: number, text: string): number | undefined {
  return dispatchFrame(sink, client, JSON.parse(text) as ServerFrame, text.length);
}

/** For transports that carry several messages per body (polling): no per-message wire text. Returns a message's id. */
export function dispatchFrame(
  sink: ClientSink,
  client: number,
  frame: ServerFrame,
  jsonBytes?: number,
): number | undefined {
  // A message never has a top-level `type`; every control frame has one.
  if (!('type' in frame)) {
    sink.message(client, frame.id, scheduledMs(frame.data), jsonBytes);
    return frame.id;
  }
  switch (frame.type) {
    case 'gap':
      sink.gap(client, frame.since, frame.firstId);
      return undefined;
    case 'reset':
      sink.reset(client);
      return undefined;
    case 'hello':
    case 'ack':
    case 'error':
    case 'feed-down':
    case 'feed-up':
      return undefined;
    default:
      return frame satisfies never;
  }
}
