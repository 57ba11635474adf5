/**
 * The control port of the reference servers (bare, floor, socketio): `POST /publish` and `GET /stats`, on an
 * http server apart from the transports so that every byte on the transport port is transport traffic.
 * Same bodies and error codes as the lab: they come from its catalogue (server/errors.ts), and /stats
 * has the lab's StatsSnapshot type.
 */
import { createServer, STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { DEFAULTS, TIMING } from '../../server/config.js';
import { HttpErrors, type ErrorBody, type ErrorName } from '../../server/errors.js';
import { LastWindow } from '../../server/event-loop.js';
import { isErrorCode, SSE_HEARTBEAT } from '../../server/protocol.js';
import type { StatsSnapshot, TransportCounters } from '../../server/stats.js';
import { serveIpc } from './ipc.js';

/**
 * Fastify's default keep-alive timeout (the framework's, not the lab's: there is nothing to import
 * without loading Fastify); Node then writes the same `Keep-Alive: timeout=72` header as the lab, which
 * the wire test compares.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000;

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
}

export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
}

/** A catalogue error thrown by the lab's own code (HttpErrors.X, e.g. from params.ts) as its answer; undefined for anything else. */
export function thrownAnswer(err: unknown): ErrorAnswer | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown } | null;
  if (!isErrorCode(e?.code) || typeof e.statusCode !== 'number' || typeof e.message !== 'string') return undefined;
  return { status: e.statusCode, body: { error: { code: e.code, message: e.message } } };
}

/** The catalogue's answer for `name`, its `%s` slots filled with `args` exactly as the lab fills them. */
export const catalogueAnswer = (name: ErrorName, ...args: string[]): ErrorAnswer =>
  thrownAnswer(new HttpErrors[name](...args))!;

export function sendError(res: ServerResponse, answer: ErrorAnswer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * A refused WebSocket upgrade, answered on the raw socket (Node hands 'upgrade' no ServerResponse):
 * the catalogue error `err` was thrown as (LAB_ERR_INTERNAL for anything else), as the lab answers it.
 */
export function refuseUpgrade(socket: Socket, err: unknown): void {
  const { status, body } = thrownAnswer(err) ?? thrownAnswer(new HttpErrors.INTERNAL())!;
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

export function controlServer(opts: { publish: (data: unknown) => number; stats: () => StatsSnapshot }): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/stats') return json(res, 200, opts.stats());
    if (req.method !== 'POST' || path !== '/publish')
      return sendError(res, catalogueAnswer('NOT_FOUND', req.method ?? 'GET', path));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return sendError(res, catalogueAnswer('INVALID_JSON'));
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body) || !('data' in body)) {
        return sendError(res, catalogueAnswer('MISSING_DATA'));
      }
      json(res, 201, { id: opts.publish((body as { data: unknown }).data) });
    });
  });
}

/** Listens on 127.0.0.1, any free port; resolves with the port. */
export const listenAnyPort = (s: NetServer): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

/**
 * The `process` block of /stats, as the lab reports it: CPU, memory, and event-loop delay over the
 * last complete TIMING.eventLoopWindowMs window (the same LastWindow as the lab's /stats). The bench
 * reads the delay over its own measured window through IPC instead (bench/servers/ipc.ts).
 */
export function processMeter(): () => StatsSnapshot['process'] {
  const eventLoop = new LastWindow(TIMING.eventLoopWindowMs);
  return () => {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      pid: process.pid,
      uptimeSec: process.uptime(),
      cpu: { userUs: cpu.user, systemUs: cpu.system },
      memory: {
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        heapTotalBytes: mem.heapTotal,
        externalBytes: mem.external,
      },
      eventLoopDelayMs: eventLoop.read(),
    };
  };
}

/** A query parameter as Fastify's query parser gives it to the lab: absent, one string, or all of a repeated one. */
export function param(q: URLSearchParams, name: string): string | string[] | undefined {
  const all = q.getAll(name);
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : all;
}

/** A request target as path and query. */
export function route(url: string | undefined): [string, URLSearchParams] {
  const s = url ?? '/';
  const i = s.indexOf('?');
  return i < 0 ? [s, new URLSearchParams()] : [s.slice(0, i), new URLSearchParams(s.slice(i + 1))];
}

/** A WebSocket client as the keep-alive sees it. */
export interface PingedClient {
  ws: WebSocket;
  /** Answered the last ping. */
  alive: boolean;
  /** Dropped by the server (slow consumer, no pong), so its close is not the client's doing. */
  dropped: boolean;
}

/**
 * The lab's keep-alives at its intervals (server/config.ts DEFAULTS), so that idle traffic weighs the
 * same as the lab's: an SSE heartbeat comment to every stream, a WebSocket ping to every socket, and a
 * socket that did not answer the last ping cut (counted as the lab counts it). Returns the stop.
 */
export function keepAlives(
  sse: Iterable<{ res: ServerResponse }>,
  ws: Set<PingedClient>,
  counters: TransportCounters,
): () => void {
  const heartbeat = setInterval(() => {
    for (const c of sse) c.res.write(SSE_HEARTBEAT);
  }, DEFAULTS.sseHeartbeatMs).unref();
  const ping = setInterval(() => {
    for (const c of ws) {
      if (!c.alive) {
        counters.disconnects['pong-timeout']++;
        c.dropped = true;
        ws.delete(c);
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }, DEFAULTS.wsPingIntervalMs).unref();
  return () => {
    clearInterval(heartbeat);
    clearInterval(ping);
  };
}

/**
 * Serves a reference server: its transport `server` (listened on here on 127.0.0.1, any port, unless
 * it listens already), the control port beside it (POST /publish, GET /stats: controlServer) and the
 * runner's IPC (bench/servers/ipc.ts). On the runner's stop: `stop` ends the server's own clients,
 * then every remaining connection of both servers is cut and both close.
 */
export async function serveReference(opts: {
  server: NetServer & { closeAllConnections?: () => void };
  publish: (data: unknown) => number;
  stats: () => StatsSnapshot;
  stop?: () => unknown;
  tls?: boolean;
}): Promise<void> {
  const { server } = opts;
  const control = controlServer(opts);
  const port = server.listening ? (server.address() as AddressInfo).port : await listenAnyPort(server);
  const controlPort = await listenAnyPort(control);
  serveIpc({
    port,
    controlPort,
    ...(opts.tls ? { tls: true } : {}),
    async stop() {
      await opts.stop?.();
      server.closeAllConnections?.();
      control.closeAllConnections();
      // Resolves whether or not it was still listening (a library may have closed it in `stop`).
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => control.close(r))]);
    },
  });
}
