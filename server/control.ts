/**
 * The control endpoints the dashboard (and scripts) use to drive the built-in publisher, plus a time
 * endpoint for clock-offset estimation. Changing anything follows the publish token rule.
 *
 * GET  /control        → { ratePerSec, payloadBytes, published, failed }
 * PUT  /control        { ratePerSec?: 0 or 0.01..1000, payloadBytes?: 0..maxPayloadBytes } → the new state
 * POST /control/burst  { count: 1..10000 } → 201 { firstId, lastId }
 * GET  /time           → { now }: server clock, epoch ms with a sub-ms fraction
 */
import type { FastifyInstance } from 'fastify';
import { HttpErrors } from './errors.js';
import { publishTime } from './feed/time.js';
import type { Generator } from './generator.js';
import { jsonOnly } from './publish.js';
import { checkToken, mayPublish } from './token.js';

/**
 * `ratePerSec` is 0 (stopped) or from minRatePerSec: one message every 100 s at the slowest. Slower
 * rates buy nothing, and a delay past Node's timer limit (2^31 − 1 ms, ~24.8 days) fires every 1 ms.
 */
export const CONTROL_LIMITS = Object.freeze({ minRatePerSec: 0.01, maxRatePerSec: 1_000, maxBurst: 10_000 });

function numberField(
  body: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  integer: boolean,
): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new HttpErrors.BAD_CONTROL(
      `${key} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function objectBody(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpErrors.BAD_CONTROL('the body must be a JSON object');
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      throw new HttpErrors.BAD_CONTROL(`unknown field ${JSON.stringify(key)} (expected ${allowed.join(', ')})`);
  }
  return body as Record<string, unknown>;
}

export async function controlRoutes(
  app: FastifyInstance,
  opts: { generator: Generator; token: string; maxPayloadBytes: number },
) {
  const { generator, token, maxPayloadBytes } = opts;
  jsonOnly(app, 4096);
  app.addHook('onRequest', async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD' && !mayPublish(checkToken(token, request))) {
      throw new HttpErrors.UNAUTHORIZED();
    }
  });

  app.get('/time', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { now: publishTime() };
  });

  app.get('/control', async () => generator.state);

  app.put('/control', async (request) => {
    const body = objectBody(request.body, ['ratePerSec', 'payloadBytes']);
    const ratePerSec =
      body.ratePerSec === 0
        ? 0
        : numberField(body, 'ratePerSec', CONTROL_LIMITS.minRatePerSec, CONTROL_LIMITS.maxRatePerSec, false);
    const payloadBytes = numberField(body, 'payloadBytes', 0, maxPayloadBytes, true);
    generator.set({
      ...(ratePerSec === undefined ? {} : { ratePerSec }),
      ...(payloadBytes === undefined ? {} : { payloadBytes }),
    });
    return generator.state;
  });

  app.post('/control/burst', async (request, reply) => {
    const body = objectBody(request.body, ['count']);
    const count = numberField(body, 'count', 1, CONTROL_LIMITS.maxBurst, true);
    if (count === undefined) throw new HttpErrors.BAD_CONTROL('count is required');
    reply.code(201);
    return generator.burst(count);
  });
}
