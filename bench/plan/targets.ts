/**
 * Which server process and which kind of client (bench/clients/index.ts) serve each (server, transport) pair, and under which
 * /stats key the server counts it. One record per pair; the runner is generic over them.
 */
import type { HttpProtocol } from './http-setup.js';
import type { COMPRESSIONS, ServerName, TransportName } from '../../report/types.js';

export interface Target {
  server: ServerName;
  transport: TransportName;
  /** What the clients speak to this server process (bench/clients/http.ts). */
  protocol: HttpProtocol;
  /** Server process: script under bench/servers and its options. Pairs with equal `process` share one. */
  /** Every server but `lab-redis` is a script of its own name (`lab-redis` is the lab on another feed). */
  process: { script: Exclude<ServerName, 'lab-redis'>; options: Record<string, unknown> };
  /** Which client module speaks to it (bench/clients/index.ts maps the kind to the module). */
  clients: ClientKind;
  /** Whether the server's `connections` for this transport (its /stats key is the transport's name) counts each idle client (for readiness and memory). */
  holdsConnections: boolean;
  /** The lab compresses (wsDeflate, with httpGzip) and the clients accept it; absent: no compression. */
  compression?: Compression;
  /** The clients' pages are on this origin (fromOtherOrigin); absent: the lab's own. */
  pageOrigin?: string;
}

export type Compression = (typeof COMPRESSIONS)[number];

/** The origin a cross-origin scenario's pages are served from: listed in the lab's ALLOWED_ORIGINS for it. */
export const PAGE_ORIGIN = 'https://app.example';

/** `t` with its clients' pages on PAGE_ORIGIN, which the lab allows (CORS); the lab only (the others have no CORS). */
export function fromOtherOrigin(t: Target): Target | undefined {
  if (t.server !== 'lab') return undefined;
  const options = t.process.options as { config?: Record<string, unknown> };
  return {
    ...t,
    pageOrigin: PAGE_ORIGIN,
    process: { ...t.process, options: { ...options, config: { ...options.config, allowedOrigins: [PAGE_ORIGIN] } } },
  };
}

/**
 * `t` with the lab compressing its traffic: permessage-deflate (with or without context takeover) and
 * gzip, in a process of its own (its options differ); undefined for any other server, which has no such
 * setting.
 */
export function compressed(t: Target, compression: Compression | undefined): Target | undefined {
  if (compression === undefined) return t;
  if (t.server !== 'lab') return undefined;
  const options = t.process.options as { config?: Record<string, unknown> };
  return {
    ...t,
    compression,
    process: {
      ...t.process,
      options: { ...options, config: { ...options.config, wsDeflate: compression, httpGzip: true } },
    },
  };
}

/** The bench's client modules, by what they speak. */
export const CLIENT_KINDS = ['long-poll', 'short-poll', 'sse', 'ws', 'socketio-polling', 'socketio-websocket'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

const LAB_CLIENTS: Record<TransportName, ClientKind> = {
  poll: 'long-poll',
  'short-poll': 'short-poll',
  sse: 'sse',
  ws: 'ws',
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
  /** The transports on which the `lab` server does extra work per delivered message (bench/servers/doctor.ts): `bench:check --doctor`. */
  doctor?: readonly TransportName[];
  /**
   * PEM files every TLS server of the run serves (one self-signed certificate, so that the lab and
   * bare shake hands with the same bytes); set by the runner when a scenario runs over TLS.
   */
  certificate?: { cert: string; key: string };
}

export const DEFAULT_LAB_SETUP: LabSetup = {
  feed: 'memory',
  redisUrl: 'redis://127.0.0.1:6379/0',
  redisKeyPrefix: 'transport-lab-bench',
  workers: 1,
};

/** The lab's settings for `protocol` (server/config.ts), with the run's certificate. */
function tlsConfig(protocol: HttpProtocol, setup: LabSetup): Record<string, unknown> {
  if (protocol === 'http/1.1') return {};
  // Without the run's certificate (plans, tests) each server makes its own self-signed one.
  const files = setup.certificate ? { tlsCert: setup.certificate.cert, tlsKey: setup.certificate.key } : {};
  return { [protocol === 'h2' ? 'http2' : 'tls']: true, ...files };
}

export function target(
  server: ServerName,
  transport: TransportName,
  setup: LabSetup = DEFAULT_LAB_SETUP,
  protocol: HttpProtocol = 'http/1.1',
): Target | undefined {
  const labConfig = (feed: string) => ({
    config: {
      feed,
      workers: setup.workers,
      ...(feed === 'memory' ? {} : { redisKeyPrefix: `${setup.redisKeyPrefix}-${server}` }),
      ...tlsConfig(protocol, setup),
    },
  });
  switch (server) {
    case 'lab':
    case 'lab-redis':
    case 'bare':
      return {
        server,
        transport,
        protocol,
        process:
          server === 'bare'
            ? { script: 'bare', options: protocol === 'http/1.1' ? {} : { config: tlsConfig(protocol, setup) } }
            : {
                script: 'lab',
                options: {
                  ...labConfig(server === 'lab' ? setup.feed : setup.redisUrl),
                  ...(server === 'lab' && setup.doctor ? { doctor: setup.doctor } : {}),
                },
              },
        clients: LAB_CLIENTS[transport],
        holdsConnections: transport !== 'short-poll',
      };
    case 'socketio':
      // Socket.IO has no SSE and no short polling; its polling transport is long polling. Measured
      // over cleartext HTTP/1.1 only.
      if (protocol !== 'http/1.1') return undefined;
      if (transport === 'ws') {
        return {
          server,
          transport,
          protocol,
          process: { script: 'socketio', options: { transport: 'websocket' } },
          clients: 'socketio-websocket',
          holdsConnections: true,
        };
      }
      if (transport === 'poll') {
        return {
          server,
          transport,
          protocol,
          process: { script: 'socketio', options: { transport: 'polling' } },
          clients: 'socketio-polling',
          holdsConnections: false,
        };
      }
      return undefined;
    case 'floor':
      // The floor serves every transport of the lab, cleartext HTTP/1.1 only.
      if (protocol !== 'http/1.1') return undefined;
      return {
        server,
        transport,
        protocol,
        process: { script: 'floor', options: {} },
        clients: LAB_CLIENTS[transport],
        holdsConnections: transport !== 'short-poll',
      };
    case 'better-sse':
    case 'fastify-sse':
      // SSE libraries: SSE only, cleartext HTTP/1.1, the lab's own SSE clients (same URL and format).
      if (transport !== 'sse' || protocol !== 'http/1.1') return undefined;
      return {
        server,
        transport,
        protocol,
        process: { script: server, options: {} },
        clients: 'sse',
        holdsConnections: true,
      };
    case 'shift':
      // The tutorial's snippet serves short polling only, cleartext.
      if (transport !== 'short-poll' || protocol !== 'http/1.1') return undefined;
      return {
        server,
        transport,
        protocol,
        process: { script: 'shift', options: {} },
        clients: 'short-poll',
        holdsConnections: false,
      };
    default:
      return server satisfies never;
  }
}

export const processKey = (t: Target): string => `${t.process.script}:${JSON.stringify(t.process.options)}`;
