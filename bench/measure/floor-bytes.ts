/**
 * The protocol floor: the fewest bytes a transport must put around one message JSON of `jsonBytes`
 * characters (ASCII) with id `id`. Measured bytes per message minus the JSON, minus this, is what the
 * server adds beyond its protocol; a server change that adds bytes shows up there first.
 */
import type { TransportName } from '../../report/types.js';

/** RFC 6455 §5.2: 2-byte header, +2 for a 16-bit length (126–65535), +8 for a 64-bit one; server frames are unmasked. */
export const wsHeaderBytes = (payloadBytes: number): number =>
  payloadBytes <= 125 ? 2 : payloadBytes <= 0xffff ? 4 : 10;

/**
 * SSE (WHATWG §9.2.6): `id: <id>\ndata: <json>\n\n`, sent as one HTTP/1.1 chunk
 * (RFC 9112 §7.1: `<hex size>\r\n<data>\r\n`).
 */
export function sseFloorBytes(id: number, jsonBytes: number): number {
  const event = 'id: \n'.length + String(id).length + 'data: \n\n'.length;
  const size = event + jsonBytes;
  return event + size.toString(16).length + 4;
}

/** Floor overhead per message for transports that frame each message alone; undefined for polling. */
export function floorFor(transport: TransportName): ((id: number, jsonBytes: number) => number) | undefined {
  switch (transport) {
    case 'ws':
      return (_id, jsonBytes) => wsHeaderBytes(jsonBytes);
    case 'sse':
      return sseFloorBytes;
    case 'poll':
    case 'short-poll':
      return undefined;
    default:
      return transport satisfies never;
  }
}
