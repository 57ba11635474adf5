/**
 * Helpers for the suites that use the shared Redis at 127.0.0.1:6379 (redis.test.ts, cluster.test.ts),
 * or a redis-server of their own (redis-faults.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';
import { freePort } from '../../bench/processes/ports.js';

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

/** A port for a redis-server of a test's own. */
export { freePort };

/**
 * A redis-server of the test's own on `port` (nothing else connects to it, so it can be paused,
 * filled, killed and restarted freely); stopped by PID when the test ends.
 */
export class OwnRedis {
  #proc: ChildProcess | undefined;
  readonly url: string;

  constructor(
    readonly port: number,
    readonly args: readonly string[] = ['--save', '', '--appendonly', 'no'],
  ) {
    this.url = `redis://127.0.0.1:${port}/0`;
    onTestFinished(() => this.kill());
  }

  /** Starts it; resolves once it accepts connections. */
  async start(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#proc = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) {
          proc.stdout!.off('data', onData);
          proc.off('exit', onExit);
          resolve();
        }
      };
      const onExit = (code: number | null) =>
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`));
      proc.stdout!.on('data', onData);
      proc.once('exit', onExit);
    });
    proc.stdout!.resume();
    proc.stderr!.resume();
  }

  /** SIGKILL to its PID; resolves once it has exited. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    process.kill(proc.pid!, 'SIGKILL');
    await exited;
  }
}
