/**
 * Open-loop publisher. Message k is due at `start + k / rate`, whatever happened to message k-1, and
 * carries that *scheduled* time in `data.t`. Receivers measure `received − scheduled`, so a stall
 * anywhere (publisher, server, client) shows up as latency instead of quietly lowering the rate —
 * the coordinated-omission trap of closed-loop load generators.
 */
import type { Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { ACCEPT_SELF_SIGNED } from './self-signed.js';
import { newHistogram, nowMs, type Histogram } from './recorder.js';

/** One publish run: `ratePerSec × durationSec` messages of `payloadBytes` to the server at `controlUrl`. */
export interface PublishJob {
  controlUrl: string;
  ratePerSec: number;
  durationSec: number;
  payloadBytes: number;
}

export interface PublishOutcome {
  /** Ids the server assigned, ascending. */
  ids: number[];
  failures: number;
  firstFailure?: string;
  /** How late sends were against their schedule. */
  lagP99Ms: number;
  lagMaxMs: number;
}

/** The outcome of a run (open loop or lockstep) from its ids, failures and lag histogram (µs). */
export const publishOutcome = (ids: number[], failures: number, firstFailure: string | undefined, lag: Histogram): PublishOutcome => ({
  ids,
  failures,
  ...(firstFailure ? { firstFailure } : {}),
  lagP99Ms: lag.getValueAtPercentile(99) / 1000,
  lagMaxMs: lag.maxValue / 1000,
});

/** Connections the publisher keeps to /publish; enough that a request never waits for a free one at 2,000 msg/s. */
const PUBLISH_CONNECTIONS = 32;

/** `{"t":<ms>,"p":"xxx…"}` padded so that the JSON of `data` is `payloadBytes` long (at least the bare object). */
export function makeData(scheduledMs: number, payloadBytes: number): { t: number; p: string } {
  const bare = JSON.stringify({ t: scheduledMs, p: '' }).length;
  return { t: scheduledMs, p: 'x'.repeat(Math.max(0, payloadBytes - bare)) };
}

export class Publisher {
  readonly #pool: Pool;
  constructor(controlUrl: string) {
    // Over TLS the lab's control port is its transport port, with the run's self-signed certificate.
    this.#pool = new Pool(controlUrl, { connections: PUBLISH_CONNECTIONS, pipelining: 1, connect: ACCEPT_SELF_SIGNED });
  }

  /** Publishes one message; resolves with the id the server assigned once it is in the feed. */
  async send(data: unknown): Promise<number> {
    const res = await this.#pool.request({
      path: '/publish',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`publish answered ${res.statusCode}: ${text.slice(0, 200)}`);
    return (JSON.parse(text) as { id: number }).id;
  }

  /** Publishes `ratePerSec × durationSec` messages on schedule; resolves when all have been answered. */
  async run(ratePerSec: number, durationSec: number, payloadBytes: number): Promise<PublishOutcome> {
    const total = Math.round(ratePerSec * durationSec);
    const intervalMs = 1000 / ratePerSec;
    const lag = newHistogram();
    const ids: number[] = new Array<number>(total);
    let failures = 0;
    let firstFailure: string | undefined;
    const pending: Promise<void>[] = [];
    const start = nowMs() + 5;
    let k = 0;
    await new Promise<void>((done) => {
      const tick = () => {
        const now = nowMs();
        while (k < total) {
          const due = start + k * intervalMs;
          if (due > now) break;
          lag.recordValue(Math.max(1, Math.round((now - due) * 1000)));
          const index = k++;
          pending.push(
            this.send(makeData(due, payloadBytes)).then(
              (id) => {
                ids[index] = id;
              },
              (err: Error) => {
                failures++;
                firstFailure ??= err.message;
              },
            ),
          );
        }
        if (k >= total) return done();
        // Sleep until the next message is due; timers are ~1 ms grained, so several may go at once.
        setTimeout(tick, Math.max(0, start + k * intervalMs - nowMs()));
      };
      tick();
    });
    await Promise.all(pending);
    return publishOutcome(
      ids.filter((id) => id !== undefined).sort((a, b) => a - b),
      failures,
      firstFailure,
      lag,
    );
  }

  /** Publishes `n` messages back to back (fills a feed for catch-up benchmarks). */
  async fill(n: number, payloadBytes: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.send(makeData(nowMs(), payloadBytes));
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/**
 * Publisher threads with no job, kept for the next one: starting a thread (tsx, undici) costs about
 * half a second of CPU, twice per run otherwise. Unreferenced while idle, so they never keep the
 * process alive; one thread per job at a time (concurrent jobs get threads of their own).
 */
const idle = new Set<Worker>();

/** Runs one open-loop publish in a worker thread of its own (see publisher-worker.ts). */
export async function publishInWorker(job: PublishJob): Promise<PublishOutcome> {
  const { Worker } = await import('node:worker_threads');
  const reused = idle.values().next().value;
  const worker =
    reused ?? new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: { entry: new URL('./publisher-worker.ts', import.meta.url).href } });
  if (reused) idle.delete(reused);
  else worker.on('exit', () => idle.delete(worker));
  worker.ref();
  let onMessage!: (outcome: PublishOutcome) => void;
  let onError!: (err: Error) => void;
  let onExit!: (code: number) => void;
  try {
    return await new Promise<PublishOutcome>((resolve, reject) => {
      onMessage = resolve;
      onError = reject;
      onExit = (code) => reject(new Error(`publisher worker exited with code ${code}`));
      worker.once('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.postMessage(job);
    });
  } finally {
    worker.off('message', onMessage);
    worker.off('error', onError);
    worker.off('exit', onExit);
    if (worker.threadId !== -1) {
      worker.unref();
      idle.add(worker);
    }
  }
}
