/**
 * Publishing: what a client may publish (checkData), the append that turns a store failure into
 * LAB_ERR_FEED_UNAVAILABLE, the strict JSON body parser, and POST /publish. Who may publish is
 * token.ts's rule.
 */
import type { FastifyInstance } from 'fastify';
import { HttpErrors } from './errors.js';
import type { Feed } from './feed/types.js';
import { checkToken, mayPublish } from './token.js';

/**
 * Checks that `data` can always be encoded and delivered, before it is accepted: arrays and objects
 * nest at most `maxDepth` levels (encoding recurses, and one message the encoder cannot stringify
 * would stall every transport), and every number is finite (JSON has no Infinity: `1e400` would
 * silently arrive as `null`). Iterative, so a hostile depth cannot overflow the stack here either.
 * Throws LAB_ERR_DATA_TOO_DEEP or LAB_ERR_NUMBER_NOT_FINITE.
 */
export function checkData(data: unknown, maxDepth: number): void {
  const stack: [unknown, number][] = [[data, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new HttpErrors.NUMBER_NOT_FINITE(String(value));
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= maxDepth) throw new HttpErrors.DATA_TOO_DEEP(maxDepth);
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push([child, depth + 1]);
  }
}

/** Appends, turning a store failure into LAB_ERR_FEED_UNAVAILABLE so nobody sees a bare 500. */
export async function appendOrFail(feed: Feed, data: unknown) {
  try {
    return await feed.append(data);
  } catch (err) {
    throw new HttpErrors.FEED_UNAVAILABLE((err as Error).message);
  }
}

/** What a client publishes goes through here: checked first (a 400, never a store error), then appended. */
export async function publishChecked(feed: Feed, data: unknown, maxDepth: number) {
  checkData(data, maxDepth);
  return appendOrFail(feed, data);
}

/** Bodies are decoded strictly: invalid UTF-8 is refused instead of being stored with U+FFFD in it. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A strict UTF-8 JSON parser with our error codes; not wrapped in fastify-plugin on purpose:
 * the parser stays inside routes that publish. */
export function jsonOnly(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    let text: string;
    try {
      text = UTF8.decode(body as Buffer);
    } catch {
      done(new HttpErrors.INVALID_UTF8(), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new HttpErrors.INVALID_JSON(), undefined);
    }
  });
  // Anything else is rejected by Fastify as FST_ERR_CTP_INVALID_MEDIA_TYPE (415), which the error
  // handler maps to LAB_ERR_UNSUPPORTED_MEDIA_TYPE.
}

export async function publishRoutes(
  app: FastifyInstance,
  opts: { feed: Feed; token: string; maxPayloadBytes: number; maxNestingDepth: number },
) {
  const { feed, token, maxPayloadBytes, maxNestingDepth } = opts;
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
    const message = await publishChecked(feed, (body as { data: unknown }).data, maxNestingDepth);
    reply.code(201);
    return { id: message.id };
  });
}
