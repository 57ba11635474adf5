/**
 * The per-transport counters every server under test reports in /stats — the lab (stats.ts) and the
 * bench's reference servers alike. Kept apart from stats.ts so that a framework-free server can use
 * them without loading Fastify or prom-client.
 */

/** `short-poll`: polls with `timeout=0`, counted apart from long polls (the same spelling as the bench's transport names). */
export const TRANSPORT_KEYS = ['poll', 'short-poll', 'sse', 'ws'] as const;
export type TransportKey = (typeof TRANSPORT_KEYS)[number];

/**
 * Why a connection ended. `client`: the peer went away; the others are the server's decision.
 * `feed-down`: the store could not be read; `error`: a failure of the server's own (a bug).
 */
export type DisconnectReason =
  | 'client'
  | 'slow-consumer'
  | 'pong-timeout'
  | 'too-many-errors'
  | 'shutdown'
  | 'feed-down'
  | 'error';

export interface TransportCounters {
  /** Open now: held polls, SSE streams, WebSockets. */
  connections: number;
  /** HTTP requests, upgrade requests included. */
  requests: number;
  /** Feed messages delivered (control frames not included). */
  messagesOut: number;
  /** Bytes written to sockets, server → client, everything on the wire above TCP. */
  bytesOut: number;
  /** Bytes read from sockets, client → server. */
  bytesIn: number;
  disconnects: Record<DisconnectReason, number>;
  /**
   * Of the connections the server ended, those whose peer never saw the end: a WebSocket that did not
   * finish the closing handshake within wsCloseGraceMs (a stalled reader: the close frame waits behind
   * its backlog, so it only sees the TCP connection cut), an SSE stream destroyed as a slow consumer.
   */
  cut: number;
}

/** A transport's counters at zero. */
export const newCounters = (): TransportCounters => ({
  connections: 0,
  requests: 0,
  messagesOut: 0,
  bytesOut: 0,
  bytesIn: 0,
  disconnects: {
    client: 0,
    'slow-consumer': 0,
    'pong-timeout': 0,
    'too-many-errors': 0,
    shutdown: 0,
    'feed-down': 0,
    error: 0,
  },
  cut: 0,
});
