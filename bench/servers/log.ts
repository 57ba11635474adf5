/**
 * The reference servers' feed: an in-memory log of the lab's message shape with the lab's retention
 * (DEFAULTS.retentionMessages) and contiguous ids, so that what they replay and announce weighs what
 * the lab's memory feed does. One per server process.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DEFAULTS } from '../../server/config.js';
import type { Message } from '../../server/protocol.js';
import type { StatsSnapshot } from '../../server/stats.js';

const RETENTION = DEFAULTS.retentionMessages;

export class RetainedLog {
  /** Same shape and length as the lab's memory-feed epoch, so hello frames weigh the same. */
  readonly epoch: string;
  #messages: Message[] = [];
  #lastId = 0;

  constructor(epoch = `mem-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`) {
    this.epoch = epoch;
  }

  get lastId(): number {
    return this.#lastId;
  }

  get firstId(): number {
    return this.#messages[0]?.id ?? this.#lastId + 1;
  }

  append(data: unknown): Message {
    const m: Message = { id: ++this.#lastId, ts: performance.timeOrigin + performance.now(), data };
    this.#messages.push(m);
    // Trimmed in bulk, not per message: one copy every RETENTION appends.
    if (this.#messages.length >= 2 * RETENTION) this.#messages = this.#messages.slice(-RETENTION);
    return m;
  }

  /** Messages with id > cursor, at most `limit`: ids are contiguous, so it is one slice. */
  after(cursor: number, limit = Number.POSITIVE_INFINITY): Message[] {
    const start = Math.max(0, cursor + 1 - this.firstId);
    return this.#messages.slice(start, start + limit);
  }

  /** Where a subscription starts: the cursor; absent = from now; a future one is treated as now. */
  start(since: number | undefined): number {
    return since === undefined || since > this.#lastId ? this.#lastId : since;
  }

  /** The `feed` block of /stats. */
  info(): StatsSnapshot['feed'] {
    const firstId = this.firstId;
    return { kind: 'memory', epoch: this.epoch, lastId: this.#lastId, firstId, retained: this.#lastId - firstId + 1 };
  }
}
