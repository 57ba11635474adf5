/**
 * What an open WebSocket keeps alive: its socket and peer, not the upgrade request. @fastify/websocket
 * leaves its routing ServerResponse on the socket and an 'error' listener holding the request and
 * reply; server/transports/ws.ts lets both go (3 KiB per idle connection in the bench). Real lab, real
 * ws client, real garbage collection.
 */
import type { IncomingMessage } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { publish, startLab, until, WsClient } from '../../helpers/lab.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 10 && ref.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return ref.deref() === undefined;
}

describe('an open WebSocket', () => {
  it('does not keep its upgrade request alive, and still serves, publishes and ends as before', async () => {
    const lab = await startLab();
    let request: WeakRef<IncomingMessage> | undefined;
    lab.app.server.on('upgrade', (req: IncomingMessage) => {
      request = new WeakRef(req);
    });
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await until(() => ws.controlsOf('hello').length === 1);
    expect(request).toBeDefined();
    expect(await collected(request!)).toBe(true);
    await publish(lab.url, { n: 1 });
    await until(() => ws.messages.length === 1);
    // A protocol error is still the client's mistake, handled by the lab: the socket is closed.
    ws.ws.send(Buffer.alloc(2 * 1024 * 1024));
    await ws.closed;
    expect(ws.closeCode).toBe(1009);
  });
});
