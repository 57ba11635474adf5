/**
 * The publisher runs in its own worker thread, so that the clients' parsing on the main thread cannot
 * delay its schedule: its lag then measures only itself, and a stalled client thread shows up as
 * delivery latency, where it belongs. Times are `performance.timeOrigin + performance.now()`, which is
 * wall-clock based in every thread, so main-thread receivers compare against the same clock.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Publisher } from './publisher.js';

export interface PublishJob {
  controlUrl: string;
  ratePerSec: number;
  durationSec: number;
  payloadBytes: number;
}

export interface PublishOutcome {
  ids: number[];
  failures: number;
  firstFailure?: string;
  lagP99Ms: number;
  lagMaxMs: number;
}

const job = workerData as PublishJob;
const publisher = new Publisher(job.controlUrl);
const run = await publisher.run(job.ratePerSec, job.durationSec, job.payloadBytes);
await publisher.close();
const outcome: PublishOutcome = {
  ids: run.ids,
  failures: run.failures,
  ...(run.firstFailure ? { firstFailure: run.firstFailure } : {}),
  lagP99Ms: run.lag.getValueAtPercentile(99) / 1000,
  lagMaxMs: run.lag.maxValue / 1000,
};
parentPort!.postMessage(outcome);
