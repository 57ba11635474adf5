/** Every client module of the bench, by the kind a target names (bench/plan/targets.ts). */
import type { ClientKind, Target } from '../plan/targets.js';
import { longPollClients, shortPollClients } from './poll.js';
import { socketioPollingClients, socketioWebsocketClients } from './socketio.js';
import { sseClients } from './sse.js';
import type { ClientFactory } from './types.js';
import { wsClients } from './ws.js';

const CLIENTS: Readonly<Record<ClientKind, ClientFactory>> = Object.freeze({
  'long-poll': longPollClients,
  'short-poll': shortPollClients,
  sse: sseClients,
  ws: wsClients,
  'socketio-polling': socketioPollingClients,
  'socketio-websocket': socketioWebsocketClients,
});

/** The client module that speaks to `t`. */
export const clientsOf = (t: Pick<Target, 'clients'>): ClientFactory => CLIENTS[t.clients];
