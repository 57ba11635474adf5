/**
 * buildApp(options) → a Fastify instance, not listening. main.ts alone parses settings, listens, and
 * wires signals; tests and the bench import buildApp.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
} from 'fastify';
import { mistakeLogger, type MistakeLogger } from './client-log.js';
import { isLoopback, resolveConfig, TIMING, type Config, type ConfigInput } from './config.js';
import { clusterSnapshots } from './cluster.js';
import { controlRoutes } from './control.js';
import labCors from './cors.js';
import { ERRORS, HttpErrors, type ErrorBody } from './errors.js';
import type { HttpProtocol } from './protocol.js';
import { MemoryFeed } from './feed/memory.js';
import { type NetworkLink, networkRoutes } from './network/route.js';
import { RedisFeed } from './feed/redis.js';
import type { Feed } from './feed/types.js';
import { Generator } from './generator.js';
import { publishRoutes } from './publish.js';
import { answerAndClose, clientErrorHandler, errorAnswer, format, hostAllowedFor, rawErrorAnswer } from './refusals.js';
import { type ReportModelOf, reportRoutes } from './reports.js';
import { ConnectionBudgets } from './send-budget.js';
import statsRoutes, { settleEveryRoute, Stats } from './stats.js';
import { loadCredentials } from './tls.js';
import pollTransport from './transports/poll.js';
import sseTransport from './transports/sse.js';
import { isHttp2, type ExtraWork } from './transports/params.js';
import { FeedTail } from './transports/tail.js';
import wsTransport from './transports/ws.js';
import { webRoutes } from './web.js';

export interface AppOptions {
  /** Settings over DEFAULTS (validated; a bad one throws ConfigError). */
  config?: ConfigInput;
  /** The feed to serve; by default a new in-memory feed, closed with the app. */
  feed?: Feed;
  logger?: FastifyServerOptions['logger'];
  /**
   * The relays in front of this server (`--network`), for GET /network. A function, read on every
   * request: relays start after listen (they need its port), so main.ts fills the list later.
   * @default no relays
   */
  networks?: () => readonly NetworkLink[];
  /**
   * Start a relay for any network profile on POST /network/<name> (server/network/route.ts): main.ts sets
   * it for a single process; a cluster worker cannot (a relay would live in one worker only).
   * @default false
   */
  networksOnDemand?: boolean;
  /**
   * Test only: extra work per delivered message on the named transports, called with each batch a
   * client is given. The CI gate's positive control (bench/servers/doctor.ts); never set by `npm start`.
   */
  extraWork?: ExtraWork;
  /**
   * The dashboard's report model (report/model.ts `reportModel`) for GET /reports/<name>/model, handed
   * in by main.ts so that the server never imports the report package above it.
   * @default none: that route answers 404
   */
  reportModel?: ReportModelOf;
}

export type { HttpProtocol };

export interface Lab {
  readonly config: Readonly<Config>;
  /** `h2` also answers HTTP/1.1 on the same port (ALPN), for clients without h2 and for WebSocket. */
  readonly protocol: HttpProtocol;
  /** Which certificate TLS serves (undefined for cleartext). */
  readonly certificate: string | undefined;
  readonly feed: Feed;
  readonly stats: Stats;
  readonly generator: Generator;
}

declare module 'fastify' {
  interface FastifyInstance {
    lab: Lab;
  }
}

/** The feed the configuration names: in-process memory, or a Redis Stream shared by every instance. */
export async function createFeed(config: Readonly<Config>): Promise<Feed> {
  if (config.feed === 'memory') return new MemoryFeed({ retentionMessages: config.retentionMessages });
  return RedisFeed.connect({
    url: config.feed,
    keyPrefix: config.redisKeyPrefix,
    retentionMessages: config.retentionMessages,
  });
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const config = resolveConfig(options.config);
  const ownFeed = options.feed === undefined;
  const feed = options.feed ?? (await createFeed(config));
  const stats = new Stats(TIMING.eventLoopWindowMs);
  const credentials = await loadCredentials(config);
  const protocol: HttpProtocol = credentials === undefined ? 'http/1.1' : config.http2 ? 'h2' : 'https/1.1';
  // Node answers HTTP/1.1 without Host with a bare 400; the onRequest hook below answers it with ours.
  const serverOptions =
    credentials === undefined
      ? { http: { requireHostHeader: false } }
      : config.http2
        ? { http2: true as const, https: { key: credentials.key, cert: credentials.cert, allowHTTP1: true } }
        : { https: { key: credentials.key, cert: credentials.cert, requireHostHeader: false } };

  // Client mistakes are logged through this once the app (and its logger) exists.
  let mistake: MistakeLogger = () => {};
  const app = Fastify({
    ...serverOptions,
    logger: options.logger ?? false,
    bodyLimit: config.maxPayloadBytes,
    // Idle keep-alive sockets are closed at once on close; streams and held polls are ended by their
    // transports' preClose hooks. New requests while closing get our 503 (the onRequest hook below).
    return503OnClosing: false,
    // A plugin that has not started in Fastify's default 10 s is not hung on a 2-core machine saturated by
    // other suites (a CI run saw one start past it); one that is still hangs the start, just later.
    pluginTimeout: 30_000,
    forceCloseConnections: 'idle',
    clientErrorHandler: clientErrorHandler((what, fields) => mistake(what, fields)),
    // Bad percent-encoding and over-long path parameters are refused by the router before any hook.
    frameworkErrors: (err, request, reply) => {
      const { status, body } = errorAnswer(err, request, request.log, mistake, config.maxPayloadBytes);
      (reply as FastifyReply).code(status).send(body);
    },
  } as FastifyServerOptions) as unknown as FastifyInstance;
  mistake = mistakeLogger(app.log);
  // Over TLS, bytes are counted on the TCP sockets under the TLS ones (stats.ts).
  if (credentials !== undefined) stats.watch(app.server);
  const generator = new Generator(feed, {
    ratePerSec: config.demo ? config.demoRatePerSec : 0,
    payloadBytes: config.demoPayloadBytes,
  });
  app.decorate('lab', { config, protocol, certificate: credentials?.source, feed, stats, generator });

  // CONNECT is served nowhere; without a listener Node would drop the connection without a word.
  app.server.on('connect', (request: IncomingMessage, socket: Socket) => {
    answerAndClose(
      socket,
      rawErrorAnswer(
        'METHOD_NOT_ALLOWED',
        format(ERRORS.METHOD_NOT_ALLOWED.message, request.method ?? 'CONNECT'),
        'Allow: \r\n',
      ),
    );
  });
  // `Expect` other than 100-continue: Node's default is a bare 417; ours carries the code.
  app.server.on('checkExpectation', (request: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({
      error: {
        code: ERRORS.EXPECTATION_FAILED.code,
        message: format(ERRORS.EXPECTATION_FAILED.message, String(request.headers.expect)),
      },
    } satisfies ErrorBody);
    res
      .writeHead(417, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        connection: 'close',
      })
      .end(body);
  });

  // Before any route is added: every route but GET /poll settles its bytes at the end of its responses.
  settleEveryRoute(app, stats);

  // CORS for /poll, /events and /publish (cors.ts): first of the onRequest hooks, so that the refusals
  // below carry Access-Control-Allow-Origin to a listed origin too.
  await app.register(labCors, { config });

  // Before every route, the 404 handler and WebSocket upgrades: no new requests while closing;
  // HTTP/1.1 needs a Host, and on a loopback bind it must be a loopback name or an ALLOWED_HOSTS entry
  // (DNS rebinding).
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const hostAllowed = isLoopback(config.host) ? hostAllowedFor(config.allowedHosts) : undefined;
  app.addHook('onRequest', (request, reply, done) => {
    // HTTP/2 carries the host in :authority (RFC 9113 §8.3.1), checked like Host.
    const host = request.headers.host ?? (request.headers[':authority'] as string | undefined);
    let refusal: Error | undefined;
    if (closing) {
      if (!isHttp2(request)) reply.header('connection', 'close');
      refusal = new HttpErrors.SHUTTING_DOWN();
    } else if (host === undefined) {
      if (request.raw.httpVersion === '1.1')
        refusal = new HttpErrors.BAD_REQUEST('HTTP/1.1 requests need a Host header');
    } else if (hostAllowed !== undefined && !hostAllowed(host)) {
      refusal = new HttpErrors.HOST_FORBIDDEN(JSON.stringify(host));
    }
    // A refused WebSocket upgrade: @fastify/websocket's own onRequest hook, which has its socket
    // destroyed after the answer, runs after this one and so never ran. Close it here.
    if (refusal && (request.raw as IncomingMessage & { upgrade?: boolean }).upgrade) {
      reply.header('connection', 'close');
      reply.raw.once('finish', () => request.raw.socket.destroy());
    }
    done(refusal);
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, body } = errorAnswer(err, request, request.log, mistake, config.maxPayloadBytes);
    reply.code(status).send(body);
  });
  const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
  app.setNotFoundHandler((request, reply) => {
    // No route, so no route-level hook (stats.ts settleEveryRoute): the answer settles its own bytes.
    reply.raw.once('close', () => stats.settle(request.raw, true));
    const path = request.url.split('?')[0]!;
    // RFC 9110 §15.5.6: a path that exists under other methods is 405, with the methods it has.
    const allow = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
    if (allow.length > 0) {
      const body: ErrorBody = {
        error: {
          code: ERRORS.METHOD_NOT_ALLOWED.code,
          message: format(ERRORS.METHOD_NOT_ALLOWED.message, request.method),
        },
      };
      reply.code(405).header('allow', allow.join(', ')).send(body);
      return;
    }
    const body: ErrorBody = { error: { code: ERRORS.NOT_FOUND.code, message: `no route ${request.method} ${path}` } };
    reply.code(404).send(body);
  });

  // One reader of new messages for the three transports (transports/tail.ts).
  const tail = new FeedTail(feed, config.pollBatchMax);
  const transportOptions = { feed, tail, config, stats, extraWork: options.extraWork };
  // With several workers, any worker answers /stats for all of them (gathered through the primary).
  await app.register(statsRoutes, { stats, feed, gather: clusterSnapshots });
  await app.register(publishRoutes, {
    feed,
    token: config.publishToken,
    maxPayloadBytes: config.maxPayloadBytes,
    maxNestingDepth: config.maxNestingDepth,
    sendBudgets: new ConnectionBudgets(config.sendMessagesPerSec, config.sendBytesPerSec),
    sendKeyTtlMs: config.sendKeyTtlMs,
    sendBatchMax: config.sendBatchMax,
  });
  await app.register(pollTransport, transportOptions);
  await app.register(sseTransport, transportOptions);
  await app.register(wsTransport, transportOptions);
  // The usual long poll skips Fastify: every HTTP/1.1 or HTTP/2 request from an allowed Host (HTTP/2's
  // :authority) while the lab is not closing is first offered to transports/poll.ts's node:http path (a
  // plain GET /poll: no Origin, no Upgrade, a query it reads as Fastify would); whatever it leaves — and
  // every other request, HTTP/1.0 included — goes through Fastify as before, with its hooks and its
  // LAB_ERR_* answers.
  type Listener = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;
  const viaFastify = app.server.listeners('request')[0] as Listener;
  app.server.removeListener('request', viaFastify);
  app.server.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    const host = req.headers.host ?? (req.headers[':authority'] as string | undefined);
    const plain = !closing && host !== undefined && (hostAllowed === undefined || hostAllowed(host));
    if (!plain || (req.httpVersion !== '1.1' && req.httpVersion !== '2.0') || !app.pollRaw(req, res))
      viaFastify(req, res);
  });
  await app.register(controlRoutes, { generator, token: config.publishToken, maxPayloadBytes: config.maxPayloadBytes });
  await app.register(reportRoutes, { resultsDir: config.resultsDir, model: options.reportModel });
  await app.register(networkRoutes, {
    links: options.networks ?? (() => []),
    host: config.host,
    port: config.port,
    token: config.publishToken,
    onDemand: options.networksOnDemand ?? false,
  });
  await app.register(webRoutes);

  // Registered after the transports, so it runs after they answered polls and ended streams. Node's
  // server.close() waits for connections that never sent a request (browsers pre-connect; undici
  // opens a spare socket after an abort): give in-flight exchanges a moment, then cut the rest.
  let cutTimer: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    // HTTP/2 sessions are closed by Fastify itself. Node's HTTP/2 server has closeIdleConnections (its
    // HTTP/1.1 fallback) but no closeAllConnections: the cut timer threw there when a close took longer
    // than closeGraceMs (seen under load in the test suite as an unhandled TypeError).
    if (typeof app.server.closeIdleConnections !== 'function') return;
    app.server.closeIdleConnections();
    if (typeof app.server.closeAllConnections !== 'function') return;
    cutTimer = setTimeout(() => app.server.closeAllConnections(), TIMING.closeGraceMs).unref();
  });

  app.addHook('onClose', async () => {
    clearTimeout(cutTimer);
    generator.stop();
    tail.close();
    stats.close();
    if (ownFeed) await feed.close();
  });
  return app;
}
