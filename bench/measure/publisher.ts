/**
 * Open-loop publisher. Message k is due at `start + k / rate`, whatever happened to message k-1, and
 * carries that *scheduled* time in `data.t`. Receivers measure `received − scheduled`, so a stall
 * anywhere (publisher, server, client) shows up as latency instead of quietly lowering the rate —
 * the coordinated-omission trap of closed-loop load generators.
 */
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { ACCEPT_SELF_SIGNED } from '../clients/self-signed.js';
import { newHistogram, nowMs, type Histogram } from './recorder.js';
import { type PayloadKind, payloadData } from './payloads.js';
import { openLoop } from './schedule.js';

/** One publish run: `ratePerSec × durationSec` messages of `payloadBytes` to the server at `controlUrl`. */
export interface PublishJob {
  controlUrl: string;
  ratePerSec: number;
  durationSec: number;
  payloadBytes: number;
  /** Realistic messages instead of padding (payloads.ts); `payloadBytes` is then ignored. */
  payload?: PayloadKind;
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
export const publishOutcome = (
  ids: number[],
  failures: number,
  firstFailure: string | undefined,
  lag: Histogram,
): PublishOutcome => ({
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
  async run(
    ratePerSec: number,
    durationSec: number,
    payloadBytes: number,
    payload?: PayloadKind,
  ): Promise<PublishOutcome> {
    const total = Math.round(ratePerSec * durationSec);
    const intervalMs = 1000 / ratePerSec;
    const lag = newHistogram();
    const ids: number[] = new Array<number>(total);
    let failures = 0;
    let firstFailure: string | undefined;
    const pending: Promise<void>[] = [];
    await openLoop(total, intervalMs, lag, (index, due) => {
      pending.push(
        this.send(payload ? payloadData(payload, due, index) : makeData(due, payloadBytes)).then(
          (id) => {
            ids[index] = id;
          },
          (err: Error) => {
            failures++;
            firstFailure ??= err.message;
          },
        ),
      );
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
 * Publisher worker threads, idle between jobs. Starting one costs 1–3 s on a busy 2-core machine (a
 * fresh tsx loader, undici, the bench's modules: more than a short run's warm-up and window together),
 * so a thread is started once and reused for every later job, one job at a time per thread; concurrent
 * jobs each get a thread of their own, as before. Idle threads are unref'd: they never keep the process alive.
 */
const idleWorkers: Worker[] = [];

/** What publisher-worker.ts answers a job with. */
export type PublishAnswer = { outcome: PublishOutcome } | { error: string };

const startWorker = (): Worker =>
  new Worker(new URL('./worker-entry.mjs', import.meta.url), {
    workerData: { entry: new URL('./publisher-worker.ts', import.meta.url).href },
  });

/** Starts a publisher thread now (when none is idle), so that its start-up overlaps the servers'. */
export function preparePublisher(): void {
  if (idleWorkers.length > 0) return;
  const worker = startWorker();
  worker.unref();
  idleWorkers.push(worker);
}

/** Runs one open-loop publish in a worker thread (see publisher-worker.ts). */
export async function publishInWorker(job: PublishJob): Promise<PublishOutcome> {
  const worker = idleWorkers.pop() ?? startWorker();
  worker.ref();
  let detach = () => {};
  try {
    const answer = await new Promise<PublishAnswer>((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`publisher worker exited with code ${code}`));
      // Only these listeners: a Worker keeps listeners of its own (it refs its port by them).
      detach = () => worker.off('message', resolve).off('error', reject).off('exit', onExit);
      worker.once('message', resolve).once('error', reject).once('exit', onExit);
      worker.postMessage(job);
    });
    worker.unref();
    idleWorkers.push(worker);
    if ('error' in answer) throw new Error(answer.error);
    return answer.outcome;
  } catch (err) {
    // The thread died ('error', 'exit'); a failed job (`answer.error`) has left it idle and reusable.
    if (!idleWorkers.includes(worker)) void worker.terminate();
    throw err;
  } finally {
    detach();
  }
}
