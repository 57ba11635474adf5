/**
 * Publishing: what a client may publish (checkData), the append that turns a store failure into
 * LAB_ERR_FEED_UNAVAILABLE, the strict JSON body parser, POST /publish (the application's publisher)
 * and POST /send (what a page on SSE or polling sends with: the same, within the connection's send
 * budget). Either takes an `Idempotency-Key`, or a `{batch}` of several sends (sendItems,
 * publishBatch) whose items carry keys of their own. Who may publish is token.ts's rule.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpErrors } from './errors.js';
import type { AppendOnce, Feed } from './feed/types.js';
import { type BatchAckItem, batchAck, type SendItem } from './protocol.js';
import { type ConnectionBudgets, isIdempotencyKey } from './send-budget.js';
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

/** An idempotent send: its key and how long the feed remembers it (config sendKeyTtlMs). */
export interface SendKey {
  key: string;
  ttlMs: number;
}

/**
 * What a client publishes goes through here: checked first (a 400, never a store error), then appended
 * — once per idempotency key, when it has one: a retry of a send that was appended gets that send's
 * message back, `duplicate: true`.
 */
export async function publishChecked(
  feed: Feed,
  data: unknown,
  maxDepth: number,
  sendKey?: SendKey,
): Promise<AppendOnce> {
  checkData(data, maxDepth);
  if (sendKey === undefined) return { message: await appendOrFail(feed, data), duplicate: false };
  try {
    return await feed.appendOnce(sendKey.key, data, sendKey.ttlMs);
  } catch (err) {
    throw new HttpErrors.FEED_UNAVAILABLE((err as Error).message);
  }
}

/** Refuses a send's idempotency key (header, frame or batch item) that is given but not one: LAB_ERR_BAD_IDEMPOTENCY_KEY. */
export function checkSendKey(key: unknown): asserts key is string | undefined {
  if (key !== undefined && !isIdempotencyKey(key))
    throw new HttpErrors.BAD_IDEMPOTENCY_KEY(JSON.stringify(String(key).slice(0, 40)));
}

/**
 * A batch's items, checked for shape: 1 to `max` of them, each an object with `data` and, when given, a
 * valid `key`. Throws LAB_ERR_BAD_BATCH (a bad key: LAB_ERR_BAD_IDEMPOTENCY_KEY) naming the first bad item.
 */
export function sendItems(batch: unknown, max: number): SendItem[] {
  const bad = (why: string) => new HttpErrors.BAD_BATCH(String(max), why);
  if (!Array.isArray(batch)) throw bad('"batch" is not an array');
  if (batch.length === 0 || batch.length > max) throw bad(`got ${batch.length} items`);
  batch.forEach((item: unknown, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item) || !('data' in item))
      throw bad(`item ${i} is not {"data": …}`);
    checkSendKey((item as { key?: unknown }).key);
  });
  return batch as SendItem[];
}

/**
 * A batch, appended in order once every item's data has passed checkData (a bad item refuses the whole
 * batch and nothing is appended). Each item with a key is appended once per key, as publishChecked. A
 * store failure part way leaves the items before it appended: a retry of the whole batch with the same
 * keys gets those back `duplicate` and appends the rest — the reason to key every item.
 */
export async function publishBatch(
  feed: Feed,
  items: readonly SendItem[],
  maxDepth: number,
  ttlMs: number,
): Promise<{ id: number; duplicate: boolean }[]> {
  for (const item of items) checkData(item.data, maxDepth);
  const out: { id: number; duplicate: boolean }[] = [];
  for (const item of items) {
    const sent = await publishChecked(
      feed,
      item.data,
      maxDepth,
      item.key === undefined ? undefined : { key: item.key, ttlMs },
    );
    out.push({ id: sent.message.id, duplicate: sent.duplicate });
  }
  return out;
}

/** A request's connection, whose send budget it spends: the HTTP/2 session all of a page's streams share, or the socket. */
const connectionOf = (raw: IncomingMessage | Http2ServerRequest): object =>
  (raw as Http2ServerRequest).stream?.session ?? raw.socket;

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

/**
 * The answer to a publish or send: 201 `{id}`, or for a retried key 200 `{id, duplicate: true}` with
 * `Idempotent-Replayed: true`; to a batch, `{batch}` (protocol.ts BatchAckItem per item), 200 and
 * replayed only when every item was a duplicate.
 */
export type PublishAnswer = { id: number } | { id: number; duplicate: true } | { batch: readonly BatchAckItem[] };

export async function publishRoutes(
  app: FastifyInstance,
  opts: {
    feed: Feed;
    token: string;
    maxPayloadBytes: number;
    maxNestingDepth: number;
    /** Client sends' budgets per connection (POST /send). */
    sendBudgets: ConnectionBudgets;
    sendKeyTtlMs: number;
    sendBatchMax: number;
  },
) {
  const { feed, token, maxPayloadBytes, maxNestingDepth, sendBudgets, sendKeyTtlMs, sendBatchMax } = opts;
  jsonOnly(app, maxPayloadBytes);
  // Checked in onRequest, before the body is read: an unauthorised client cannot make us parse 64 KiB.
  app.addHook('onRequest', async (request) => {
    if (!mayPublish(checkToken(token, request))) throw new HttpErrors.UNAUTHORIZED();
  });
  async function accept(request: FastifyRequest, reply: FastifyReply, budgeted: boolean): Promise<PublishAnswer> {
    if (request.headers['content-type'] === undefined) throw new HttpErrors.UNSUPPORTED_MEDIA_TYPE();
    const body = request.body;
    const isBatch = body !== null && typeof body === 'object' && !Array.isArray(body) && 'batch' in body;
    if (!isBatch && (body === null || typeof body !== 'object' || Array.isArray(body) || !('data' in body))) {
      throw new HttpErrors.MISSING_DATA();
    }
    const key = request.headers['idempotency-key'];
    if (isBatch && key !== undefined)
      throw new HttpErrors.BAD_BATCH(
        String(sendBatchMax),
        'a batch takes no Idempotency-Key: each item has its own "key"',
      );
    const items = isBatch ? sendItems((body as { batch: unknown }).batch, sendBatchMax) : undefined;
    checkSendKey(key);
    if (budgeted) {
      const bytes = Number(request.headers['content-length']) || Buffer.byteLength(JSON.stringify(body));
      const waitMs = sendBudgets.of(connectionOf(request.raw)).take(bytes, items?.length ?? 1);
      if (waitMs > 0) {
        reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
        throw new HttpErrors.SEND_RATE(String(waitMs));
      }
    }
    if (items !== undefined) {
      const sent = await publishBatch(feed, items, maxNestingDepth, sendKeyTtlMs);
      if (sent.every((i) => i.duplicate)) reply.code(200).header('idempotent-replayed', 'true');
      else reply.code(201);
      return { batch: batchAck(sent, undefined).batch };
    }
    const data = (body as { data: unknown }).data;
    const sent = await publishChecked(
      feed,
      data,
      maxNestingDepth,
      key === undefined ? undefined : { key, ttlMs: sendKeyTtlMs },
    );
    if (sent.duplicate) {
      reply.code(200).header('idempotent-replayed', 'true');
      return { id: sent.message.id, duplicate: true };
    }
    reply.code(201);
    return { id: sent.message.id };
  }
  app.post('/publish', (request, reply) => accept(request, reply, false));
  app.post('/send', (request, reply) => accept(request, reply, true));
}
