/** Hands one received message JSON (or control frame) to the sink. Shared by the lab-protocol clients. */
import type { ClientSink } from './types.js';

interface Frame {
  type?: string;
  id?: number;
  data?: { t?: number };
  since?: number;
  firstId?: number;
}

export function dispatch(sink: ClientSink, client: number, frame: Frame): number | undefined {
  switch (frame.type) {
    case undefined:
      sink.message(client, frame.id!, frame.data?.t ?? NaN);
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
