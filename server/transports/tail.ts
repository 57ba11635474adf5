/**
 * The process's one reader of new messages: on every append it schedules ONE read per event-loop turn
 * (setImmediate) and hands each batch to every transport's hub (hub.ts), which encodes it once for its
 * own subscribers. Without it each transport read the feed on every publish: three reads of the same
 * messages (three XRANGEs on the Redis feed) where one does.
 *
 * A failed read is a store outage: the tail stays where it is, and the next append (or the feed's
 * `up`) reads again from there. After an epoch change the tail follows the new history from its
 * current last id, as each hub does.
 */
import type { Feed, Message } from '../feed/types.js';

export type BatchListener = (batch: readonly Message[]) => void;

export class FeedTail {
  readonly #feed: Feed;
  readonly #batchMax: number;
  readonly #listeners = new Set<BatchListener>();
  /** Last id handed to the listeners. */
  #cursor: number;
  #scheduled = false;
  #flushing = false;
  /** An append arrived while a read was in flight: read again when it ends. */
  #again = false;
  readonly #unsubscribe: () => void;
  readonly #unwatch: () => void;

  constructor(feed: Feed, batchMax: number) {
    this.#feed = feed;
    this.#batchMax = batchMax;
    this.#cursor = feed.info().lastId;
    this.#unsubscribe = feed.subscribe(() => this.#schedule());
    this.#unwatch = feed.watch((e) => {
      if (e.type === 'epoch') this.#cursor = feed.info().lastId;
      else if (e.type === 'up') this.#schedule();
    });
  }

  /** Last id handed to the listeners. */
  get cursor(): number {
    return this.#cursor;
  }

  /** Calls `listener` with every batch from now on; returns the detach function. */
  attach(listener: BatchListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = true;
    try {
      for (;;) {
        let result;
        try {
          result = await this.#feed.read(this.#cursor, this.#batchMax);
        } catch {
          return;
        }
        if (result.kind === 'reset') return; // cannot happen for the tail's own cursor
        const batch = result.messages;
        if (batch.length === 0) return;
        this.#cursor = batch[batch.length - 1]!.id;
        // Each hub catches its own errors: one transport's bug never stops another's delivery.
        for (const listener of this.#listeners) listener(batch);
      }
    } finally {
      this.#flushing = false;
      if (this.#again) {
        this.#again = false;
        this.#schedule();
      }
    }
  }

  close(): void {
    this.#unsubscribe();
    this.#unwatch();
    this.#listeners.clear();
  }
}
