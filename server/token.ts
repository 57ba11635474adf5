/**
 * The publish token rule, shared by POST /publish, WebSocket publishes and the control endpoints. Open
 * on loopback; with PUBLISH_TOKEN set, every publish needs `Authorization: Bearer <token>` (WebSocket:
 * on the upgrade, or `?token=` since browsers cannot set headers on a WebSocket).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

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
