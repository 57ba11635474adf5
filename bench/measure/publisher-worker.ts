/**
 * The publisher runs in its own worker thread, so that the clients' parsing on the main thread cannot
 * delay its schedule: its lag then measures only itself, and a stalled client thread shows up as
 * delivery latency, where it belongs. Times are `performance.timeOrigin + performance.now()`, which is
 * wall-clock based in every thread, so main-thread receivers compare against the same clock.
 *
 * One job per message (publishInWorker), each with a publisher of its own; the thread waits for the
 * next job between them.
 */
import { parentPort } from 'node:worker_threads';
import { Publisher, type PublishAnswer, type PublishJob } from './publisher.js';

// One job at a time (publishInWorker waits for the answer before it sends the next); the thread stays
// up between jobs. The pool is closed before the answer, as when the thread exited after each job.
parentPort!.on('message', async (job: PublishJob) => {
  const publisher = new Publisher(job.controlUrl);
  let answer: PublishAnswer;
  try {
    answer = { outcome: await publisher.run(job.ratePerSec, job.durationSec, job.payloadBytes, job.payload) };
  } catch (err) {
    answer = { error: (err as Error).message };
  }
  await publisher.close();
  parentPort!.postMessage(answer);
});
