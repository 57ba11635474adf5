import { randomBytes } from 'node:crypto';
import type { AppendOnce, Feed, FeedEvent, FeedInfo, Message, ReadResult } from './types.js';
import { publishTime } from './time.js';

/**
 * The embedded feed: a ring buffer of the last `retentionMessages` messages. Ids are contiguous, so
 * the message with id `n` lives at slot `(n - 1) % retention` and every read is a slice, not a search.
 */
export class MemoryFeed implements Feed {
  readonly kind = 'memory' as const;
  readonly epoch: string;
  readonly #ring: (Message | undefined)[];
  readonly #retention: number;
  #lastId = 0;
  /** Idempotency keys of recent sends, oldest first (appendOnce); at most `retention` of them. */
  readonly #keys = new Map<string, { message: Message; expiresAt: number }>();
  readonly #listeners = new Set<(lastId: number) => void>();

  constructor(options: { retentionMessages: number; epoch?: string }) {
    this.#retention = options.retentionMessages;
    this.#ring = new Array<Message | undefined>(this.#retention);
    // Fixed at start-up, different on every start: a client holding a cursor from a previous run
    // can tell the feed restarted.
    this.epoch = options.epoch ?? `mem-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  }

  info(): FeedInfo {
    const firstId = Math.max(1, this.#lastId - this.#retention + 1);
    return { epoch: this.epoch, lastId: this.#lastId, firstId, retained: this.#lastId - firstId + 1 };
  }

  read(cursor: number, limit: number, epoch?: string): Promise<ReadResult> {
    return Promise.resolve(this.readNow(cursor, limit, epoch));
  }

  readNow(cursor: number, limit: number, epoch?: string): ReadResult {
    if (epoch !== undefined && epoch !== this.epoch) return { kind: 'reset', reason: 'epoch-mismatch' };
    if (cursor > this.#lastId) return { kind: 'reset', reason: 'future-cursor' };
    const { firstId } = this.info();
    const start = Math.max(cursor + 1, firstId);
    const end = Math.min(this.#lastId, start + limit - 1);
    const messages: Message[] = [];
    for (let id = start; id <= end; id++) messages.push(this.#ring[(id - 1) % this.#retention]!);
    return cursor + 1 < firstId ? { kind: 'gap', firstId, messages } : { kind: 'messages', messages };
  }

  append(data: unknown): Promise<Message> {
    return Promise.resolve(this.#append(data));
  }

  appendOnce(key: string, data: unknown, ttlMs: number): Promise<AppendOnce> {
    const now = performance.now();
    // Keys go in in time order with one TTL: the expired ones are the first.
    for (const [k, seen] of this.#keys) {
      if (seen.expiresAt > now) break;
      this.#keys.delete(k);
    }
    const seen = this.#keys.get(key);
    if (seen !== undefined) return Promise.resolve({ message: seen.message, duplicate: true });
    const message = this.#append(data);
    this.#keys.set(key, { message, expiresAt: now + ttlMs });
    if (this.#keys.size > this.#retention) this.#keys.delete(this.#keys.keys().next().value!);
    return Promise.resolve({ message, duplicate: false });
  }

  #append(data: unknown): Message {
    const message: Message = { id: this.#lastId + 1, ts: publishTime(), data };
    this.#ring[(message.id - 1) % this.#retention] = message;
    this.#lastId = message.id;
    for (const listener of this.#listeners) listener(message.id);
    return message;
  }

  subscribe(listener: (lastId: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** An in-process ring never goes down and never changes epoch. */
  watch(_listener: (event: FeedEvent) => void): () => void {
    return () => {};
  }

  close(): Promise<void> {
    this.#listeners.clear();
    return Promise.resolve();
  }
}
