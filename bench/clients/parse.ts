/** Hands one received message JSON (or control frame) to the sink. Shared by the lab-protocol clients. */
import type { ClientSink } from './types.js';

interface Frame {
  type?: string;
  id?: number;
  data?: { t?: number };
  since?: number;
  firstId?: number;
}

/** `text`: the message JSON as it came off the wire, when the transport carries each message whole. */
export function dispatch(sink: ClientSink, client: number, text: string): number | undefined {
  const frame = JSON.parse(text) as Frame;
  return dispatchFrame(sink, client, frame, text.length);
}

/** For transports that carry several messages per body (polling): no per-message wire text. */
export function dispatchFrame(sink: ClientSink, client: number, frame: Frame, jsonBytes?: number): number | undefined {
  switch (frame.type) {
    case undefined:
      sink.message(client, frame.id!, frame.data?.t ?? NaN, jsonBytes);
      return frame.id;
    case 'gap':
      sink.gap(client, frame.since!, frame.firstId!);
      return undefined;
    case 'reset':
      sink.reset(client);
      return undefined;
    default:
      return undefined; // hello, ack
  }
}
