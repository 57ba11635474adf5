/** Ports on 127.0.0.1 for processes the bench and the tests start themselves (nginx, a redis-server). */
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';

/** A TCP port nobody listens on right now (it may be taken before it is used: callers retry). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  srv.close();
  await once(srv, 'close');
  return port;
}
