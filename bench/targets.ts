/**
 * Which server process and which client module serve each (server, transport) pair, and under which
 * /stats key the server counts it. One record per pair; the runner is generic over them.
 */
import { longPollClients, shortPollClients } from './clients/poll.js';
import { socketioPollingClients, socketioWebsocketClients } from './clients/socketio.js';
import { sseClients } from './clients/sse.js';
import type { ClientFactory } from './clients/types.js';
import { wsClients } from './clients/ws.js';
import type { ServerName, TransportName } from './report/types.js';
import type { ServerStats } from './server-process.js';

export type StatsKey = keyof ServerStats['transports'];

export interface Target {
  server: ServerName;
  transport: TransportName;
  /** Server process: script under bench/servers and its options. Pairs with equal `process` share one. */
  process: { script: 'lab' | 'bare' | 'socketio'; options: Record<string, unknown> };
  clients: ClientFactory;
  statsKey: StatsKey;
  /** Whether the server's `connections` for this key counts each idle client (for readiness and memory). */
  holdsConnections: boolean;
}

const STATS_KEY: Record<TransportName, StatsKey> = { poll: 'poll', 'short-poll': 'shortPoll', sse: 'sse', ws: 'ws' };
const LAB_CLIENTS: Record<TransportName, ClientFactory> = {
  poll: longPollClients,
  'short-poll': shortPollClients,
  sse: sseClients,
  ws: wsClients,
};

export function target(server: ServerName, transport: TransportName, serverOptions: Record<string, unknown> = {}): Target | undefined {
  switch (server) {
    case 'lab':
    case 'bare':
      return {
        server,
        transport,
        process: { script: server, options: serverOptions },
        clients: LAB_CLIENTS[transport],
        statsKey: STATS_KEY[transport],
        holdsConnections: transport !== 'short-poll',
      };
    case 'socketio':
      // Socket.IO has no SSE and no short polling; its polling transport is long polling.
      if (transport === 'ws') {
        return { server, transport, process: { script: 'socketio', options: { transport: 'websocket' } }, clients: socketioWebsocketClients, statsKey: 'ws', holdsConnections: true };
      }
      if (transport === 'poll') {
        return { server, transport, process: { script: 'socketio', options: { transport: 'polling' } }, clients: socketioPollingClients, statsKey: 'poll', holdsConnections: false };
      }
      return undefined;
    default:
      return server satisfies never;
  }
}

export const processKey = (t: Target): string => `${t.process.script}:${JSON.stringify(t.process.options)}`;
