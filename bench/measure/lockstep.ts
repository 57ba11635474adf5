/**
 * Lockstep publishing: one message at a time, the next only once every client has it. A timed, open-loop
 * run lets the client's timers fall anywhere against the publisher's schedule, so an answer may carry
 * zero, one or two messages and a poll's requests and bytes *per message* move with machine load. In
 * lockstep every poll answer and every stream write carries exactly one message, so bytes and requests
 * per message are what the server controls and nothing else: the CI gate's `wire` rows use it.
 *
 * Per message:
 * - long polling, SSE, WebSocket: publish, then wait until every client received it;
 * - short polling (clients in `stepped` mode): publish, then one poll per client (it carries the message)
 *   and a second one (it comes back empty), so the figures price a full and an empty answer per message.
 * Messages are never due before `start + k / rate`, so a lockstep run is no faster than its timed twin.
 */
import type { ClientGroup } from '../clients/types.js';
import { makeData, publishOutcome, Publisher, type PublishJob, type PublishOutcome } from './publisher.js';
import { newHistogram, nowMs } from './recorder.js';

/** A round whose message has not reached every client by then stops the run (what is missing is lost). */
export const LOCKSTEP_ROUND_TIMEOUT_MS = 5_000;

export interface LockstepJob extends PublishJob {
  clients: number;
  group: ClientGroup;
  /** Deliveries so far, all ids (the recorder's `received`). */
  received: () => number;
}

export type LockstepOutcome = PublishOutcome & {
  /** Set when a round did not complete: which, and how far it got. */
  stall?: string;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
  return true;
}

export async function publishLockstep(job: LockstepJob): Promise<LockstepOutcome> {
  const total = Math.round(job.ratePerSec * job.durationSec);
  const intervalMs = 1000 / job.ratePerSec;
  const publisher = new Publisher(job.controlUrl);
  const lag = newHistogram();
  const ids: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let stall: string | undefined;
  const start = nowMs() + 5;
  try {
    for (let k = 0; k < total && !stall; k++) {
      const due = Math.max(start + k * intervalMs, nowMs());
      await sleep(due - nowMs());
      lag.recordValue(Math.max(1, Math.round((nowMs() - due) * 1000)));
      const target = job.received() + job.clients;
      let id: number;
      try {
        id = await publisher.send(makeData(due, job.payloadBytes));
      } catch (err) {
        failures++;
        firstFailure ??= (err as Error).message;
        continue;
      }
      ids.push(id);
      if (job.group.step) {
        await job.group.step(); // carries message `id`
        await job.group.step(); // comes back empty
      }
      if (!(await until(() => job.received() >= target, LOCKSTEP_ROUND_TIMEOUT_MS))) {
        stall = `lockstep round ${k + 1}: message ${id} reached ${job.clients - (target - job.received())} of ${job.clients} clients within ${LOCKSTEP_ROUND_TIMEOUT_MS} ms`;
      }
    }
  } finally {
    await publisher.close();
  }
  return { ...publishOutcome(ids, failures, firstFailure, lag), ...(stall ? { stall } : {}) };
}
