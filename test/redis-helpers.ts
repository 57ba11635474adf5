/** Helpers for the suites that use the shared Redis at 127.0.0.1:6379 (redis.test.ts, cluster.test.ts). */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';

export const SHARED_REDIS = 'redis://127.0.0.1:6379/0';

/** Runs `fn` with a short-lived connection to `url` (no retries: a Redis that is down fails at once). */
export async function withRedis<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => {});
  await r.connect();
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

async function deleteKeys(url: string, prefix: string): Promise<void> {
  await withRedis(url, async (r) => {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await r.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  });
}

/**
 * A key prefix of its own for this test; its keys are deleted when the test ends. Call it FIRST in a
 * test: onTestFinished hooks run in reverse order, so the keys go after the labs have closed.
 */
export function usePrefix(): string {
  const prefix = `lab-test-${randomBytes(6).toString('hex')}`;
  onTestFinished(() => deleteKeys(SHARED_REDIS, prefix));
  return prefix;
}
