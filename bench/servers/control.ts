/**
 * The control port of the reference servers (bare, socketio): `POST /publish` and `GET /stats`, on an
 * http server apart from the transports so that every byte on the transport port is transport traffic.
 * Same bodies and error codes as the lab.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
}

export function controlServer(opts: { publish: (data: unknown) => number; stats: () => unknown }): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/stats') return json(res, 200, opts.stats());
    if (req.method !== 'POST' || path !== '/publish') {
      return json(res, 404, { error: { code: 'LAB_ERR_NOT_FOUND', message: `no route ${req.method ?? 'GET'} ${path}` } });
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return json(res, 400, { error: { code: 'LAB_ERR_INVALID_JSON', message: 'the body is not valid JSON' } });
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body) || !('data' in body)) {
        return json(res, 400, { error: { code: 'LAB_ERR_MISSING_DATA', message: 'the body must be a JSON object with a "data" field' } });
      }
      json(res, 201, { id: opts.publish((body as { data: unknown }).data) });
    });
  });
}

/** Listens on 127.0.0.1, any free port; resolves with the port. */
export const listenAnyPort = (s: Server): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
