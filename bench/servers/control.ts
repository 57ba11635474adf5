/**
 * The control port of the reference servers (bare, socketio): `POST /publish` and `GET /stats`, on an
 * http server apart from the transports so that every byte on the transport port is transport traffic.
 * Same bodies and error codes as the lab.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

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

/**
 * The `process` block of /stats, as the lab reports it: CPU, memory, and event-loop delay over the
 * window since the previous call (the runner reads /stats at the start and end of each window).
 */
export function processMeter() {
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let windowStart = performance.now();
  return () => {
    const now = performance.now();
    const windowMs = now - windowStart;
    const h = loopDelay;
    const eventLoopDelayMs =
      h.count === 0 ? { p50: 0, p99: 0, max: 0, windowMs } : { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, windowMs };
    h.reset();
    windowStart = now;
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      pid: process.pid,
      uptimeSec: process.uptime(),
      cpu: { userUs: cpu.user, systemUs: cpu.system },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external },
      eventLoopDelayMs,
    };
  };
}
