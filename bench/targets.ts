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

export interface Target {
  server: ServerName;
  transport: TransportName;
  /** Server process: script under bench/servers and its options. Pairs with equal `process` share one. */
  process: { script: 'lab' | 'bare' | 'socketio'; options: Record<string, unknown> };
  clients: ClientFactory;
  /** Whether the server's `connections` for this transport (its /stats key is the transport's name) counts each idle client (for readiness and memory). */
  holdsConnections: boolean;
}

const LAB_CLIENTS: Record<TransportName, ClientFactory> = {
  poll: longPollClients,
  'short-poll': shortPollClients,
  sse: sseClients,
  ws: wsClients,
};

/** How the lab servers run: the `lab` server's feed, the Redis URL for `lab-redis`, workers per lab server. */
export interface LabSetup {
  /** `memory` or a Redis URL, for the `lab` server. */
  feed: string;
  /** The Redis URL `lab-redis` uses. */
  redisUrl: string;
  /** Key prefix for this bench run, so runs never share or pollute a feed. */
  redisKeyPrefix: string;
  workers: number;
}

export const DEFAULT_LAB_SETUP: LabSetup = { feed: 'memory', redisUrl: 'redis://127.0.0.1:6379/0', redisKeyPrefix: 'transport-lab-bench', workers: 1 };

export function target(server: ServerName, transport: TransportName, setup: LabSetup = DEFAULT_LAB_SETUP): Target | undefined {
  const labConfig = (feed: string) => ({
    config: { feed, workers: setup.workers, ...(feed === 'memory' ? {} : { redisKeyPrefix: `${setup.redisKeyPrefix}-${server}` }) },
  });
  switch (server) {
    case 'lab':
    case 'lab-redis':
    case 'bare':
      return {
        server,
        transport,
        process: server === 'bare' ? { script: 'bare', options: {} } : { script: 'lab', options: labConfig(server === 'lab' ? setup.feed : setup.redisUrl) },
        clients: LAB_CLIENTS[transport],
        holdsConnections: transport !== 'short-poll',
      };
    case 'socketio':
      // Socket.IO has no SSE and no short polling; its polling transport is long polling.
      if (transport === 'ws') {
        return {
          server,
          transport,
          process: { script: 'socketio', options: { transport: 'websocket' } },
          clients: socketioWebsocketClients,
          holdsConnections: true,
        };
      }
      if (transport === 'poll') {
        return {
          server,
          transport,
          process: { script: 'socketio', options: { transport: 'polling' } },
          clients: socketioPollingClients,
          holdsConnections: false,
        };
      }
      return undefined;
    default:
      return server satisfies never;
  }
}

export const processKey = (t: Target): string => `${t.process.script}:${JSON.stringify(t.process.options)}`;
