/**
 * The chat workload's senders: every client sends `ratePerSec` messages a second and receives every
 * client's. The group's sends keep one open-loop schedule (schedule.ts): client c's k-th send is due at
 * start + (k × clients + c) / (clients × ratePerSec) s, so they are spread evenly. Each carries its
 * scheduled time in `t` as the publisher's messages do (latency is delivery − t, one clock), its sender
 * `c` and sequence `s`, and an idempotency key. A send whose connection failed before it was answered is
 * sent again with the same key, after SEND_RETRY_MS, until it is answered or SEND_DEADLINE_MS has passed
 * since it was due: the key makes a retry of a send that had counted come back `duplicate`, never twice.
 *
 * Batched (`batchMs` > 0), a client queues what falls due within `batchMs` of its first queued send and
 * sends it as one batch (`{batch}`: one request or frame, each item keyed), as a page that coalesces its
 * sends in a timer would; a queue of one goes as a plain send. Latency still counts from each message's
 * own due time, so the wait in the queue is part of it.
 *
 * With a flooder (`flood`), one more client sends `ratePerSec` on a schedule of its own, far past its send
 * budget, as a hostile page would: never retrying, never backing off. Its refusals (LAB_ERR_SEND_RATE) and
 * sends cut with its connection (a WebSocket closed 1008 for too many refused frames) are counted, not
 * held against the run; what it got through is delivered to everyone like any send.
 */
import type { SendAnswer, Sending } from '../clients/senders.js';
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
  /** Queue each client's sends for this long and send them as one batch; 0 or absent: one send per message. */
  batchMs?: number;
  /** One more client flooding: its own connection (`sending`, client 0 of it) and rate. */
  flood?: { sending: Sending; ratePerSec: number };
}

/** What the flooder did: sends made, accepted (delivered to everyone), refused with a code, cut with its connection. */
export interface FloodOutcome {
  sent: number;
  accepted: number;
  refused: number;
  cut: number;
  firstRefusal?: string;
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
  /** Requests or frames the sends went in (first attempts): `sent` when unbatched. */
  batches: number;
  /** The flooder's sends; absent without one. */
  flood?: FloodOutcome;
  /** Due → acknowledged, µs. */
  ack: Histogram;
}

/** `{t, c, s, p}` with `p` padding the JSON of the whole to `payloadBytes` (at least the bare object). */
export function chatData(dueMs: number, client: number, seq: number, payloadBytes: number) {
  const bare = JSON.stringify({ t: dueMs, c: client, s: seq, p: '' }).length;
  return { t: dueMs, c: client, s: seq, p: 'x'.repeat(Math.max(0, payloadBytes - bare)) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A queued send: its sequence number and due time (performance.now ms). */
interface Due {
  seq: number;
  due: number;
}

/** Runs the sends of one window; resolves once every send is answered, refused or past its deadline. */
export async function sendFromClients(job: ChatJob): Promise<ChatOutcome> {
  const perClient = Math.max(1, Math.round(job.ratePerSec * job.durationSec));
  const total = perClient * job.clients;
  const lag = newHistogram();
  const ack = newHistogram();
  const ids: number[] = [];
  const out = { refused: 0, duplicates: 0, retries: 0, failures: 0, batches: 0 };
  let firstRefusal: string | undefined;
  let firstFailure: string | undefined;
  const pending: Promise<void>[] = [];
  const batchMs = job.batchMs ?? 0;
  const { sending } = job;
  if (batchMs > 0 && !sending.sendBatch) throw new Error('batched sends: this server has no batch form');

  /** One request or frame with `queued`'s sends, answered item by item. */
  const attempt = (client: number, queued: Due[]): Promise<SendAnswer[]> => {
    const items = queued.map((q) => ({
      data: chatData(q.due, client, q.seq, job.payloadBytes),
      key: `${job.runId}:${client}:${q.seq}`,
    }));
    if (items.length > 1) return sending.sendBatch!(client, items);
    return sending.send(client, items[0]!.data, items[0]!.key).then((a) => [a]);
  };

  const sendQueued = async (client: number, queued: Due[]): Promise<void> => {
    out.batches++;
    for (let tries = 0; ; tries++) {
      try {
        const answers = await attempt(client, queued);
        const at = nowMs();
        answers.forEach((answer, i) => {
          if (!answer.ok) {
            out.refused++;
            firstRefusal ??= answer.code;
            return;
          }
          ack.recordValue(Math.max(1, Math.round((at - queued[i]!.due) * 1000)));
          if (answer.duplicate) out.duplicates++;
          ids.push(answer.id);
        });
        return;
      } catch (err) {
        if (nowMs() - queued[0]!.due + SEND_RETRY_MS > SEND_DEADLINE_MS) {
          out.failures += queued.length;
          firstFailure ??= `client ${client}'s send of ${queued.length} unanswered after ${tries + 1} attempts: ${(err as Error).message}`;
          return;
        }
        out.retries++;
        await sleep(SEND_RETRY_MS);
      }
    }
  };

  /** Per client, the sends waiting for its batch timer. */
  const queues = new Map<number, Due[]>();
  const enqueue = (client: number, next: Due) => {
    let queued = queues.get(client);
    if (queued === undefined) {
      const q: Due[] = [];
      queued = q;
      queues.set(client, q);
      pending.push(
        sleep(batchMs).then(() => {
          queues.delete(client);
          return sendQueued(client, q);
        }),
      );
    }
    queued.push(next);
  };

  const flooding = job.flood ? floodFrom(job.flood, job, ids) : undefined;
  await openLoop(total, 1000 / (job.ratePerSec * job.clients), lag, (j, due) => {
    const client = j % job.clients;
    const next = { seq: Math.floor(j / job.clients), due };
    if (batchMs > 0) enqueue(client, next);
    else pending.push(sendQueued(client, [next]));
  });
  await Promise.all(pending);
  const flood = await flooding;
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
    batches: out.batches,
    ...(flood ? { flood } : {}),
    ack,
  };
}

/**
 * The flooder: `ratePerSec` sends for the job's duration on an open-loop schedule of its own, each sent
 * once; accepted ids join `ids` (every client must receive them). Its schedule's lag is its own affair: a
 * hostile client is not part of the harness.
 */
async function floodFrom(flood: NonNullable<ChatJob['flood']>, job: ChatJob, ids: number[]): Promise<FloodOutcome> {
  const total = Math.max(1, Math.round(flood.ratePerSec * job.durationSec));
  const out: FloodOutcome = { sent: total, accepted: 0, refused: 0, cut: 0 };
  const pending: Promise<void>[] = [];
  const one = async (seq: number, due: number) => {
    try {
      const answer = await flood.sending.send(0, chatData(due, -1, seq, job.payloadBytes), `${job.runId}:flood:${seq}`);
      if (answer.ok) {
        out.accepted++;
        if (!answer.duplicate) ids.push(answer.id);
      } else {
        out.refused++;
        out.firstRefusal ??= answer.code;
      }
    } catch {
      out.cut++;
    }
  };
  await openLoop(total, 1000 / flood.ratePerSec, newHistogram(), (seq, due) => {
    pending.push(one(seq, due));
  });
  await Promise.all(pending);
  return out;
}
