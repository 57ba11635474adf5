/**
 * What every reference server (bare, floor, socketio, better-sse, fastify-sse, shift) reports on
 * /stats, in the lab's shape (StatsSnapshot): its own counters per transport, and the bytes of its
 * transport port's TCP sockets, each socket charged to the transport it served and folded into the
 * counters when it closes — the same rule as the lab's /stats for a connection that serves one kind
 * of request, which is what the bench's clients do.
 */
import type { Socket } from 'node:net';
import { newCounters, TRANSPORT_KEYS } from '../../server/counters.js';
import type { StatsSnapshot, TransportCounters, TransportKey } from '../../server/stats.js';
import { processMeter } from './control.js';

export class Ledger {
  readonly counters = Object.fromEntries(TRANSPORT_KEYS.map((k) => [k, newCounters()])) as Record<
    TransportKey,
    TransportCounters
  >;
  /** Open transport-port sockets and the transport each is charged to (undefined: none yet, not counted). */
  readonly #sockets = new Map<Socket, TransportKey | undefined>();
  readonly #process = processMeter();

  /** A new transport-port socket, charged to `key` when that is known from the start. */
  track(socket: Socket, key?: TransportKey): void {
    this.#sockets.set(socket, key);
    socket.once('close', () => {
      const k = this.#sockets.get(socket);
      this.#sockets.delete(socket);
      if (k === undefined) return;
      this.counters[k].bytesIn += socket.bytesRead;
      this.counters[k].bytesOut += socket.bytesWritten;
    });
  }

  /** `socket` serves `key` from now on; all its bytes, those so far included, are charged to it. */
  claim(socket: Socket, key: TransportKey): void {
    if (this.#sockets.has(socket)) this.#sockets.set(socket, key);
  }

  /** The counters with the open sockets' bytes added, and the process figures. */
  snapshot(feed: StatsSnapshot['feed']): StatsSnapshot {
    const transports = structuredClone(this.counters);
    for (const [socket, key] of this.#sockets) {
      if (key === undefined) continue;
      transports[key].bytesIn += socket.bytesRead;
      transports[key].bytesOut += socket.bytesWritten;
    }
    return { transports, mixed: { sessions: 0, bytesOut: 0, bytesIn: 0 }, feed, process: this.#process() };
  }
}
