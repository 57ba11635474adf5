/**
 * The fan-out engine every transport adapter sits on. It keeps no messages: each subscriber has a
 * cursor, and the hub answers "what came after cursor X" from the feed.
 *
 * - Catch-up: a new subscriber reads from its cursor in batches (respecting backpressure) until it is
 *   level with the hub, then goes live.
 * - Live: the process's one FeedTail (tail.ts) reads the new messages once per event-loop turn for
 *   every transport and hands each hub the batch; the hub encodes it once and hands every level
 *   subscriber the whole batch in one write. Measured here, one write per message per socket at
 *   2,000 msg/s × 100 sockets fell ~30% behind schedule; one corked write per tick kept up at a third
 *   of the CPU.
 * - A live subscriber whose queue passes `maxBufferedBytes` is dropped as a slow consumer; the others
 *   never wait for it. A catching-up one is written in slices that fit under `maxBufferedBytes`, and
 *   is dropped as a slow consumer if its queue does not drain within `drainTimeoutMs`.
 * - A failure to read is a store outage (the next append retries); a failure to encode or deliver is a
 *   bug, reported through `onError`, and ends only the subscribers it touched, never the fan-out.
 */
import type { EventEmitter } from 'node:events';
import { FeedUnavailableError, type Feed, type FeedEvent, type Message, type ReadResult } from '../feed/types.js';
import type { Announcement } from '../protocol.js';
import type { DisconnectReason } from '../stats.js';
import type { FeedTail } from './tail.js';

export interface Subscriber<E> {
  /** Id of the last message this subscriber has been given. */
  cursor: number;
  readonly closed: boolean;
  /** Writes `messages` (all with id > cursor). `encoded` is the batch pre-encoded, when it fits whole. */
  deliver(messages: readonly Message[], encoded: E | undefined): void;
  announce(event: Announcement): void;
  /** Bytes queued in user land for this peer (not yet handed to the kernel); none when absent (a poll is answered once). */
  bufferedBytes?(): number;
  /** Resolves when the queue has drained (or the subscriber closed). */
  drained?(): Promise<void>;
  /** Ends the connection for `reason`; must make `closed` true. */
  kill(reason: DisconnectReason): void;
}

export interface HubOptions<E> {
  encode(messages: readonly Message[]): E;
  batchMax: number;
  maxBufferedBytes: number;
  /** Bytes an encoded batch puts on the wire (to slice catch-up under maxBufferedBytes); needed when it is finite. */
  sizeOf?(encoded: E): number;
  /** How long a catching-up subscriber over `maxBufferedBytes` may take to drain before it is cut. */
  drainTimeoutMs: number;
  /** An encoder or a subscriber threw (a bug, not a store outage). */
  onError(err: unknown): void;
}

export class Hub<E> {
  readonly #feed: Feed;
  readonly #opts: HubOptions<E>;
  readonly #live = new Set<Subscriber<E>>();
  readonly #joining = new Set<Subscriber<E>>();
  /** Last id fanned out to live subscribers. */
  #cursor: number;
  readonly #detach: () => void;
  readonly #unwatch: () => void;

  constructor(feed: Feed, tail: FeedTail, opts: HubOptions<E>) {
    this.#feed = feed;
    this.#opts = opts;
    this.#cursor = tail.cursor;
    this.#detach = tail.attach((batch) => this.#fanOut(batch));
    this.#unwatch = feed.watch((e) => this.#onFeedEvent(e));
  }

  #onFeedEvent(e: FeedEvent): void {
    switch (e.type) {
      case 'down':
        for (const sub of this.subscribers())
          sub.announce({ type: 'feed-down', code: 'LAB_ERR_FEED_UNAVAILABLE', message: e.reason });
        break;
      case 'up':
        // The tail reads again on `up` by itself.
        for (const sub of this.subscribers()) sub.announce({ type: 'feed-up' });
        break;
      case 'epoch':
        // Every cursor belongs to the old history: each live subscriber catches up again, and its
        // first read answers `reset` (its cursor is now in the future, or of another epoch).
        this.#cursor = this.#feed.info().lastId;
        for (const sub of [...this.#live]) {
          this.#live.delete(sub);
          void this.join(sub).catch((err: unknown) => sub.kill(isFeedError(err) ? 'feed-down' : 'error'));
        }
        break;
      default:
        e satisfies never;
    }
  }

  subscribers(): Subscriber<E>[] {
    return [...this.#live, ...this.#joining];
  }

  /**
   * Catches `sub` up from its cursor, then makes it live. `epoch`, when the client sent one, is checked
   * on the first read only. Rejects if the feed cannot be read (the caller ends the connection).
   */
  async join(sub: Subscriber<E>, epoch?: string): Promise<void> {
    this.#joining.add(sub);
    try {
      let checkEpoch = epoch;
      for (;;) {
        if (sub.closed) return;
        const read = await readAfter(this.#feed, sub.cursor, this.#opts.batchMax, checkEpoch);
        checkEpoch = undefined;
        if (sub.closed) return;
        for (const a of read.announcements) sub.announce(a);
        if (sub.closed) return;
        sub.cursor = read.cursor;
        if (read.messages.length > 0) {
          if (!(await this.#catchUp(sub, read.messages))) return;
          continue;
        }
        // Level with the feed as of that read. Go live only if no flush has moved past us since;
        // otherwise read again (this can only happen when reads are truly asynchronous).
        if (sub.cursor >= this.#cursor) {
          this.#live.add(sub);
          return;
        }
      }
    } finally {
      this.#joining.delete(sub);
    }
  }

  /**
   * `sub` has just read everything after its cursor and found nothing (a long poll on its way in): live
   * at once when no batch has been fanned out past that cursor since (undefined: nothing to wait for),
   * else the usual catch-up (join's promise). Saves the second read of the same empty range.
   */
  joinLevel(sub: Subscriber<E>): Promise<void> | undefined {
    if (!sub.closed && sub.cursor >= this.#cursor) {
      this.#live.add(sub);
      return undefined;
    }
    return this.join(sub);
  }

  /**
   * Writes one catch-up read in slices that keep the subscriber's queue under `maxBufferedBytes`: the
   * whole read in one write when it fits (the usual case), else the longest prefix that fits (at least
   * one message), measured on its encoding. Over the bound, it waits for a drain, at most
   * `drainTimeoutMs`; a reader that does not drain by then is cut as a slow consumer. False when the
   * subscriber is gone.
   */
  async #catchUp(sub: Subscriber<E>, messages: readonly Message[]): Promise<boolean> {
    const { maxBufferedBytes: max, encode, sizeOf } = this.#opts;
    if (!Number.isFinite(max) || !sizeOf) {
      sub.deliver(messages, undefined);
      sub.cursor = messages[messages.length - 1]!.id;
      return true;
    }
    for (let i = 0; i < messages.length; ) {
      if (queued(sub) > max) {
        if (!(await this.#drainWithin(sub))) {
          sub.kill('slow-consumer');
          return false;
        }
        if (sub.closed) return false;
      }
      const room = max - queued(sub);
      let slice = i === 0 ? messages : messages.slice(i);
      let encoded = encode(slice);
      let size = sizeOf(encoded);
      while (size > room && slice.length > 1) {
        const n = Math.max(1, Math.min(slice.length - 1, Math.floor((slice.length * room) / size)));
        slice = slice.slice(0, n);
        encoded = encode(slice);
        size = sizeOf(encoded);
      }
      sub.deliver(slice, encoded);
      sub.cursor = slice[slice.length - 1]!.id;
      i += slice.length;
      if (sub.closed) return false;
    }
    return true;
  }

  async #drainWithin(sub: Subscriber<E>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#opts.drainTimeoutMs);
    });
    try {
      return await Promise.race([(sub.drained?.() ?? Promise.resolve()).then(() => true as const), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  leave(sub: Subscriber<E>): void {
    this.#live.delete(sub);
    this.#joining.delete(sub);
  }

  /** One batch from the tail, in id order after the previous one: encoded once, written to every live subscriber. */
  #fanOut(batch: readonly Message[]): void {
    const first = batch[0]!.id;
    const last = batch[batch.length - 1]!.id;
    this.#cursor = last;
    if (this.#live.size === 0) return;
    let encoded: E | undefined;
    try {
      encoded = this.#opts.encode(batch);
    } catch (err) {
      // Each subscriber then encodes for itself, and the ones that fail are ended (below).
      this.#opts.onError(err);
    }
    for (const sub of this.#live) {
      try {
        this.#deliverLive(sub, batch, first, last, encoded);
      } catch (err) {
        this.#opts.onError(err);
        this.#live.delete(sub);
        sub.kill('error');
      }
    }
  }

  #deliverLive(
    sub: Subscriber<E>,
    batch: readonly Message[],
    first: number,
    last: number,
    encoded: E | undefined,
  ): void {
    if (sub.closed) {
      this.#live.delete(sub);
      return;
    }
    if (sub.cursor >= last) return;
    if (sub.cursor < first - 1) {
      // Behind the batch (it was waiting on a drain, or the hub jumped a gap): back to catch-up,
      // which reads from its own cursor and announces any gap.
      this.#live.delete(sub);
      void this.join(sub).catch((err: unknown) => sub.kill(isFeedError(err) ? 'feed-down' : 'error'));
      return;
    }
    if (sub.cursor === first - 1) sub.deliver(batch, encoded);
    else sub.deliver(batch.slice(sub.cursor - first + 1), undefined);
    sub.cursor = last;
    if (queued(sub) > this.#opts.maxBufferedBytes) {
      this.#live.delete(sub);
      sub.kill('slow-consumer');
    }
  }

  close(): void {
    this.#detach();
    this.#unwatch();
    this.#live.clear();
    this.#joining.clear();
  }
}

export interface ReadAfter {
  /** The cursor the messages follow: the asked one, or where a reset/gap moved it. */
  readonly cursor: number;
  readonly messages: readonly Message[];
  /** What the client must be told before the messages, in order (a reset, then possibly a gap). */
  readonly announcements: readonly Announcement[];
}

/**
 * "What came after `cursor`", with reset and gap turned into announcements: after a reset the read
 * starts over at cursor 0 of the current epoch (which may itself be a gap). Rejects with
 * FeedUnavailableError when the store cannot be read.
 */
export async function readAfter(feed: Feed, cursor: number, limit: number, epoch?: string): Promise<ReadAfter> {
  const first = await readOrFail(feed, cursor, limit, epoch);
  return first.kind === 'reset'
    ? afterRead(feed, 0, await readOrFail(feed, 0, limit), first)
    : afterRead(feed, cursor, first);
}

/** readAfter on a feed that reads at once (Feed.readNow: the memory feed), without a promise. */
export function readAfterNow(
  feed: Feed & Required<Pick<Feed, 'readNow'>>,
  cursor: number,
  limit: number,
  epoch?: string,
): ReadAfter {
  const first = feed.readNow(cursor, limit, epoch);
  return first.kind === 'reset' ? afterRead(feed, 0, feed.readNow(0, limit), first) : afterRead(feed, cursor, first);
}

/** A read from `cursor` as readAfter answers it: after `reset` (the first read's), announced first. */
function afterRead(
  feed: Feed,
  cursor: number,
  result: ReadResult,
  reset?: Extract<ReadResult, { kind: 'reset' }>,
): ReadAfter {
  const announcements: Announcement[] = [];
  if (reset) {
    const { epoch, lastId } = feed.info();
    announcements.push({ type: 'reset', reason: reset.reason, epoch, lastId });
  }
  if (result.kind === 'reset') throw new Error('feed answered reset for cursor 0');
  if (result.kind === 'gap') {
    announcements.push({ type: 'gap', since: cursor, firstId: result.firstId, missed: result.firstId - 1 - cursor });
    cursor = result.firstId - 1;
  }
  return { cursor, messages: result.messages, announcements };
}

/**
 * Resolves on the first of `drain` on `writable` or `close` on `closer`, and removes both listeners
 * then: catch-up may wait many times on one connection, and `events.once` in a race would leave the
 * loser's listeners behind each time.
 */
export function drainedOrClosed(writable: EventEmitter, closer: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      writable.off('drain', done);
      closer.off('close', done);
      resolve();
    };
    writable.on('drain', done);
    closer.on('close', done);
  });
}

/** Whether `err` is the store failure readAfter raises (as opposed to a bug in an encoder or a subscriber). */
export const isFeedError = (err: unknown): err is FeedUnavailableError => err instanceof FeedUnavailableError;

const queued = (sub: Subscriber<unknown>): number => sub.bufferedBytes?.() ?? 0;

/** A store failure becomes a FeedUnavailableError, which each transport maps to its own answer. */
async function readOrFail(feed: Feed, cursor: number, limit: number, epoch?: string) {
  try {
    return await feed.read(cursor, limit, epoch);
  } catch (err) {
    throw new FeedUnavailableError((err as Error).message);
  }
}
