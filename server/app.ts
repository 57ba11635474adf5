/**
 * buildApp(options) → a Fastify instance, not listening. main.ts alone parses settings, listens, and
 * wires signals; tests and the bench import buildApp.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { resolveConfig, TIMING, type Config, type ConfigInput } from './config.js';
import { controlRoutes } from './control.js';
import { ERRORS, FASTIFY_CODE_MAP, type ErrorBody, type ErrorCode } from './errors.js';
import { MemoryFeed } from './feed/memory.js';
import { RedisFeed } from './feed/redis.js';
import type { Feed } from './feed/types.js';
import { Generator } from './generator.js';
import { publishRoutes } from './publish.js';
import { reportRoutes } from './reports.js';
import statsRoutes, { Stats } from './stats.js';
import pollTransport from './transports/poll.js';
import sseTransport from './transports/sse.js';
import wsTransport from './transports/ws.js';
import { webRoutes } from './web.js';

export interface AppOptions {
  /** Settings over DEFAULTS (validated; a bad one throws ConfigError). */
  config?: ConfigInput;
  /** The feed to serve; by default a new in-memory feed, closed with the app. */
  feed?: Feed;
  logger?: FastifyServerOptions['logger'];
}

export interface Lab {
  readonly config: Readonly<Config>;
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
  return RedisFeed.connect({ url: config.feed, keyPrefix: config.redisKeyPrefix, retentionMessages: config.retentionMessages });
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const config = resolveConfig(options.config);
  const ownFeed = options.feed === undefined;
  const feed = options.feed ?? (await createFeed(config));
  const stats = new Stats(TIMING.eventLoopWindowMs);

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.maxPayloadBytes,
    // Answers new requests with 503 + Connection: close while closing; idle keep-alive sockets are
    // closed at once. Streams and held polls are ended by their transports' preClose hooks.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  const generator = new Generator(feed, { ratePerSec: config.demo ? config.demoRatePerSec : 0, payloadBytes: config.demoPayloadBytes });
  app.decorate('lab', { config, feed, stats, generator });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const mapped = err.code ? FASTIFY_CODE_MAP[err.code] : undefined;
    let code: ErrorCode;
    let status: number;
    let message: string;
    if (mapped === 'PAYLOAD_TOO_LARGE') {
      ({ code, statusCode: status } = ERRORS.PAYLOAD_TOO_LARGE);
      message = ERRORS.PAYLOAD_TOO_LARGE.message.replace('%s', String(config.maxPayloadBytes));
    } else if (mapped) {
      ({ code, statusCode: status, message } = ERRORS[mapped]);
      if (mapped === 'BAD_CONTROL') message = err.message;
    } else if (err.code?.startsWith('LAB_ERR_')) {
      code = err.code as ErrorCode;
      status = err.statusCode ?? 500;
      message = err.message;
    } else {
      request.log.error(err);
      ({ code, statusCode: status, message } = ERRORS.INTERNAL);
    }
    const body: ErrorBody = { error: { code, message } };
    reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      error: { code: ERRORS.NOT_FOUND.code, message: `no route ${request.method} ${request.url.split('?')[0]}` },
    };
    reply.code(404).send(body);
  });

  const transportOptions = { feed, config, stats };
  await app.register(statsRoutes, { stats, feed });
  await app.register(publishRoutes, { feed, token: config.publishToken, maxPayloadBytes: config.maxPayloadBytes });
  await app.register(pollTransport, transportOptions);
  await app.register(sseTransport, transportOptions);
  await app.register(wsTransport, transportOptions);
  await app.register(controlRoutes, { generator, token: config.publishToken, maxPayloadBytes: config.maxPayloadBytes });
  await app.register(reportRoutes, { resultsDir: config.resultsDir });
  await app.register(webRoutes);

  // Registered after the transports, so it runs after they answered polls and ended streams. Node's
  // server.close() waits for connections that never sent a request (browsers pre-connect; undici
  // opens a spare socket after an abort): give in-flight exchanges a moment, then cut the rest.
  let cutTimer: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    app.server.closeIdleConnections();
    cutTimer = setTimeout(() => app.server.closeAllConnections(), TIMING.closeGraceMs).unref();
  });

  app.addHook('onClose', async () => {
    clearTimeout(cutTimer);
    generator.stop();
    stats.close();
    if (ownFeed) await feed.close();
  });
  return app;
}
