/**
 * The control port of the reference servers (bare, floor, socketio): `POST /publish` and `GET /stats`, on an
 * http server apart from the transports so that every byte on the transport port is transport traffic.
 * Same bodies and error codes as the lab: they come from its catalogue (server/errors.ts), and /stats
 * has the lab's StatsSnapshot type.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { TIMING } from '../../server/config.js';
import { HttpErrors, type ErrorBody, type ErrorName } from '../../server/errors.js';
import { LastWindow } from '../../server/event-loop.js';
import { isErrorCode } from '../../server/protocol.js';
import type { StatsSnapshot } from '../../server/stats.js';

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
export const catalogueAnswer = (name: ErrorName, ...args: string[]): ErrorAnswer => thrownAnswer(new HttpErrors[name](...args))!;

export function sendError(res: ServerResponse, answer: ErrorAnswer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function controlServer(opts: { publish: (data: unknown) => number; stats: () => StatsSnapshot }): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/stats') return json(res, 200, opts.stats());
    if (req.method !== 'POST' || path !== '/publish') return sendError(res, catalogueAnswer('NOT_FOUND', req.method ?? 'GET', path));
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
 * reads the delay over its own measured window through IPC instead (bench/servers/protocol.ts).
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
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external },
      eventLoopDelayMs: eventLoop.read(),
    };
  };
}
