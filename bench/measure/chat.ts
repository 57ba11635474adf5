/**
 * The chat workload's senders: every client sends `ratePerSec` messages a second and receives every
 * client's. The group's sends keep one open-loop schedule (schedule.ts): client c's k-th send is due at
 * start + (k × clients + c) / (clients × ratePerSec) s, so they are spread evenly. Each carries its
 * scheduled time in `t` as the publisher's messages do (latency is delivery − t, one clock), its sender
 * `c` and sequence `s`, and an idempotency key. A send whose connection failed before it was answered is
 * sent again with the same key, after SEND_RETRY_MS, until it is answered or SEND_DEADLINE_MS has passed
 * since it was due: the key makes a retry of a send that had counted come back `duplicate`, never twice.
 */
import type { Sending } from '../clients/senders.js';
import { type PublishOutcome, publishOutcome } from './publisher.js';
import { type Histogram, newHistogram, nowMs } from './recorder.js';
import { openLoop } from './schedule.js';

/** Wait before a send whose connection failed is sent again (the client reconnects meanwhile). */
export const SEND_RETRY_MS = 200;
/** A send not answered this long after it was due counts as failed (the run is then INVALID). */
export const SEND_DEADLINE_MS = 15_000;

export interface ChatJob {
  sending: Sending;
  clients: number;
  /** Sends per client per second. */
  ratePerSec: number;
  durationSec: number;
  payloadBytes: number;
  /** Distinguishes this run's keys from any other's on the same feed (warm-up, repeats). */
  runId: string;
}

export interface ChatOutcome extends PublishOutcome {
  /** Sends made: clients × each client's count. */
  sent: number;
  /** Sends the server refused with a LAB_ERR_* code (the send budget, a bad send), and the first code. */
  refused: number;
  firstRefusal?: string;
  /** Sends answered `duplicate`: a retry whose first attempt had counted. */
  duplicates: number;
  /** Attempts made again after a failed connection. */
  retries: number;
  /** Due → acknowledged, µs. */
  ack: Histogram;
}

/** `{t, c, s, p}` with `p` padding the JSON of the whole to `payloadBytes` (at least the bare object). */
export function chatData(dueMs: number, client: number, seq: number, payloadBytes: number) {
  const bare = JSON.stringify({ t: dueMs, c: client, s: seq, p: '' }).length;
  return { t: dueMs, c: client, s: seq, p: 'x'.repeat(Math.max(0, payloadBytes - bare)) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the sends of one window; resolves once every send is answered, refused or past its deadline. */
export async function sendFromClients(job: ChatJob): Promise<ChatOutcome> {
  const perClient = Math.max(1, Math.round(job.ratePerSec * job.durationSec));
  const total = perClient * job.clients;
  const lag = newHistogram();
  const ack = newHistogram();
  const ids: number[] = [];
  const out = { refused: 0, duplicates: 0, retries: 0, failures: 0 };
  let firstRefusal: string | undefined;
  let firstFailure: string | undefined;
  const pending: Promise<void>[] = [];

  const sendOne = async (client: number, seq: number, due: number): Promise<void> => {
    const key = `${job.runId}:${client}:${seq}`;
    const data = chatData(due, client, seq, job.payloadBytes);
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await job.sending.send(client, data, key);
        if (!answer.ok) {
          out.refused++;
          firstRefusal ??= answer.code;
          return;
        }
        ack.recordValue(Math.max(1, Math.round((nowMs() - due) * 1000)));
        if (answer.duplicate) out.duplicates++;
        ids.push(answer.id);
        return;
      } catch (err) {
        if (nowMs() - due + SEND_RETRY_MS > SEND_DEADLINE_MS) {
          out.failures++;
          firstFailure ??= `send ${key} unanswered after ${attempt + 1} attempts: ${(err as Error).message}`;
          return;
        }
        out.retries++;
        await sleep(SEND_RETRY_MS);
      }
    }
  };

  await openLoop(total, 1000 / (job.ratePerSec * job.clients), lag, (j, due) => {
    pending.push(sendOne(j % job.clients, Math.floor(j / job.clients), due));
  });
  await Promise.all(pending);
  return {
    ...publishOutcome(
      ids.sort((a, b) => a - b),
      out.failures,
      firstFailure,
      lag,
    ),
    sent: total,
    refused: out.refused,
    ...(firstRefusal ? { firstRefusal } : {}),
    duplicates: out.duplicates,
    retries: out.retries,
    ack,
  };
}
