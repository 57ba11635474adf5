/**
 * The built-in publisher: `ratePerSec` messages per second of `payloadBytes` each, on an open-loop
 * schedule (message k is due at start + k/rate, so a slow tick publishes what is due instead of
 * drifting). With the demo on it starts at one small message per second, so a fresh `npm start` shows
 * traffic at once; the dashboard's rate control drives it through /control.
 */
import type { Feed, Message } from './feed/types.js';
import { appendOrFail } from './publish.js';

/** Timers fire no more often than this; higher rates publish several messages per tick. */
const TICK_MS = 10;

/**
 * `{"seq":n,"text":"demo message n","pad":"xxx…"}`, padded so its JSON is `payloadBytes` long (never
 * shorter than the message without padding).
 */
export function generatorData(seq: number, payloadBytes: number): { seq: number; text: string; pad?: string } {
  const base = { seq, text: `demo message ${seq}` };
  const room = payloadBytes - JSON.stringify(base).length - ',"pad":""'.length;
  return room >= 0 ? { ...base, pad: 'x'.repeat(room) } : base;
}

export class Generator {
  #ratePerSec = 0;
  #payloadBytes: number;
  #published = 0;
  #failed = 0;
  #start = 0;
  #due = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly feed: Feed,
    options: { ratePerSec: number; payloadBytes: number },
  ) {
    this.#payloadBytes = options.payloadBytes;
    this.set(options);
  }

  get state() {
    return {
      ratePerSec: this.#ratePerSec,
      payloadBytes: this.#payloadBytes,
      published: this.#published,
      failed: this.#failed,
    };
  }

  /** Changes rate and/or payload; the schedule restarts from now. */
  set(options: { ratePerSec?: number; payloadBytes?: number }): void {
    if (options.payloadBytes !== undefined) this.#payloadBytes = options.payloadBytes;
    if (options.ratePerSec !== undefined) this.#ratePerSec = options.ratePerSec;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#start = performance.now();
    this.#due = 0;
    if (this.#ratePerSec > 0) this.#schedule();
  }

  /** Publishes `count` messages now, in order; resolves with the first and last ids. */
  async burst(count: number): Promise<{ firstId: number; lastId: number }> {
    let first: Message | undefined;
    let last: Message | undefined;
    for (let i = 0; i < count; i++) {
      last = await this.#publishOne();
      first ??= last;
    }
    return { firstId: first!.id, lastId: last!.id };
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#ratePerSec = 0;
  }

  #publishOne(): Promise<Message> {
    this.#published++;
    return appendOrFail(this.feed, generatorData(this.#published, this.#payloadBytes));
  }

  #schedule(): void {
    const intervalMs = 1000 / this.#ratePerSec;
    const nextDue = this.#start + this.#due * intervalMs;
    this.#timer = setTimeout(() => this.#tick(), Math.max(TICK_MS, nextDue - performance.now()));
    this.#timer.unref();
  }

  #tick(): void {
    const shouldHave = Math.floor(((performance.now() - this.#start) * this.#ratePerSec) / 1000) + 1;
    while (this.#due < shouldHave) {
      this.#due++;
      this.#publishOne().catch(() => {
        // The store is down: counted; the transports tell their clients.
        this.#failed++;
      });
    }
    if (this.#ratePerSec > 0) this.#schedule();
  }
}
