/** Every client module of the bench, by the kind a target names (bench/plan/targets.ts). */
import type { ClientKind, Target } from '../plan/targets.js';
import { longPollClients, shortPollClients } from './poll.js';
import { socketioPollingClients, socketioWebsocketClients } from './socketio.js';
import { sseClients } from './sse.js';
import { httpSending, type Sending } from './senders.js';
import type { ClientFactory, ClientGroup, ClientGroupOptions } from './types.js';
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

/** A client group whose clients also send (the chat workload): every transport but Socket.IO's. */
export type SendingGroup = ClientGroup & { sending: Sending };

/**
 * The clients of `t` that send as well: WebSocket clients publish on their socket, Socket.IO clients emit
 * with acknowledgement on their connection; SSE, long and short polling clients send with POST /send
 * beside their transport (senders.ts).
 */
export function sendingClientsOf(t: Pick<Target, 'clients'>): (o: ClientGroupOptions) => SendingGroup {
  if (t.clients === 'ws') return wsClients;
  if (t.clients === 'socketio-polling') return socketioPollingClients;
  if (t.clients === 'socketio-websocket') return socketioWebsocketClients;
  const receive = CLIENTS[t.clients];
  return (o) => {
    const group = receive(o);
    const sending = httpSending(o.baseUrl, o.http, o.count, o.pageOrigin);
    return {
      ...group,
      sending,
      async close() {
        await Promise.all([group.close(), sending.close()]);
      },
    };
  };
}
