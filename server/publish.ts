/**
 * Publishing: POST /publish, and the token rule shared with WebSocket publishes (and, later, the
 * control endpoint). Open on loopback; with PUBLISH_TOKEN set, every publish needs
 * `Authorization: Bearer <token>` (WebSocket: on the upgrade, or `?token=` since browsers cannot set
 * headers on a WebSocket).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpErrors } from './errors.js';
import type { Feed } from './feed/types.js';

export type TokenCheck = 'open' | 'valid' | 'missing' | 'invalid';

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * What a request proves about the publish token. `open`: no token is configured. A token may come in
 * `Authorization: Bearer …` or, for WebSocket upgrades, in the `token` query parameter.
 */
export function checkToken(token: string, request: FastifyRequest, allowQuery = false): TokenCheck {
  if (token === '') return 'open';
  const header = request.headers.authorization;
  let given: string | undefined;
  if (header !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(header);
    given = m?.[1]?.trim() ?? '';
  } else if (allowQuery) {
    const q = (request.query as Record<string, unknown>).token;
    if (typeof q === 'string') given = q;
  }
  if (given === undefined) return 'missing';
  return sameSecret(given, token) ? 'valid' : 'invalid';
}

export const mayPublish = (check: TokenCheck): boolean => check === 'open' || check === 'valid';

/** Appends, turning a store failure into LAB_ERR_FEED_UNAVAILABLE so nobody sees a bare 500. */
export async function appendOrFail(feed: Feed, data: unknown) {
  try {
    return await feed.append(data);
  } catch (err) {
    throw new HttpErrors.FEED_UNAVAILABLE((err as Error).message);
  }
}

/** Fastify's `parseAs: 'string'` JSON parser with our error codes; not wrapped in fastify-plugin on purpose:
 * the parser stays inside routes that publish. */
export function jsonOnly(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new HttpErrors.INVALID_JSON(), undefined);
    }
  });
  // Anything else is rejected by Fastify as FST_ERR_CTP_INVALID_MEDIA_TYPE (415), which the error
  // handler maps to LAB_ERR_UNSUPPORTED_MEDIA_TYPE.
}

export async function publishRoutes(app: FastifyInstance, opts: { feed: Feed; token: string; maxPayloadBytes: number }) {
  const { feed, token, maxPayloadBytes } = opts;
  jsonOnly(app, maxPayloadBytes);
  // Checked in onRequest, before the body is read: an unauthorised client cannot make us parse 64 KiB.
  app.addHook('onRequest', async (request) => {
    if (!mayPublish(checkToken(token, request))) throw new HttpErrors.UNAUTHORIZED();
  });
  app.post('/publish', async (request, reply) => {
    if (request.headers['content-type'] === undefined) throw new HttpErrors.UNSUPPORTED_MEDIA_TYPE();
    const body = request.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body) || !('data' in body)) {
      throw new HttpErrors.MISSING_DATA();
    }
    const message = await appendOrFail(feed, (body as { data: unknown }).data);
    reply.code(201);
    return { id: message.id };
  });
}
