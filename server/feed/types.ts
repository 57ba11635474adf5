/**
 * The feed: the single source of truth. An append-only log of messages with strictly increasing
 * integer ids (starting at 1) within an `epoch`. Transports only ever ask "what came after cursor X";
 * none keeps its own copy of messages.
 */

export interface Message {
  /** Strictly increasing within an epoch, starting at 1. */
  readonly id: number;
  /** Server publish time, epoch milliseconds with a sub-millisecond fraction. */
  readonly ts: number;
  /** Any JSON value. */
  readonly data: unknown;
}

/**
 * The answer to "what came after cursor X". A cursor that cannot be served is said explicitly:
 * - `gap`: the cursor is older than retention; `messages` start at `firstId`, and the ids between the
 *   cursor and `firstId` are gone for good.
 * - `reset`: the cursor belongs to no history of this feed (a future id, or another epoch). The client
 *   must start over from cursor 0 of `epoch`.
 */
export type ReadResult =
  | { readonly kind: 'messages'; readonly messages: readonly Message[] }
  | { readonly kind: 'gap'; readonly firstId: number; readonly messages: readonly Message[] }
  | { readonly kind: 'reset'; readonly reason: ResetReason };

export type ResetReason = 'future-cursor' | 'epoch-mismatch';

export interface FeedInfo {
  readonly epoch: string;
  /** Id of the newest message, 0 when the feed is empty. */
  readonly lastId: number;
  /** Id of the oldest retained message; `lastId + 1` when nothing is retained. */
  readonly firstId: number;
  readonly retained: number;
}

/**
 * What a feed tells its watchers besides new messages: its store became unreachable (`down`) or
 * reachable again (`up`), or it started a new epoch (the store lost its data; every cursor is void).
 */
export type FeedEvent =
  | { readonly type: 'down'; readonly reason: string }
  | { readonly type: 'up' }
  | { readonly type: 'epoch'; readonly epoch: string };

/** What appendOnce did: appended `message`, or found its key already sent and answers with that message. */
export interface AppendOnce {
  readonly message: Message;
  readonly duplicate: boolean;
}

export interface Feed {
  readonly kind: 'memory' | 'redis';
  info(): FeedInfo;
  /**
   * Messages with id > `cursor`, at most `limit` of them, oldest first. When `epoch` is given and is
   * not this feed's epoch the answer is a `reset`.
   */
  read(cursor: number, limit: number, epoch?: string): Promise<ReadResult>;
  /** read(), answered at once: the memory feed, whose reads neither wait nor fail, has it (a poll's hot path). */
  readNow?(cursor: number, limit: number, epoch?: string): ReadResult;
  /**
   * Appends one message; resolves once it is in the log (for Redis: in the stream, so every instance
   * will serve it). This process's subscribers are told synchronously on the memory feed; on Redis,
   * every process (this one too) hears of it through its tail, a moment later. Rejects when the store
   * cannot take it.
   */
  append(data: unknown): Promise<Message>;
  /**
   * append(), unless a send with the same idempotency `key` was appended within the last `ttlMs`: then
   * nothing is appended and the answer is that send's message, `duplicate: true` (a client retrying a
   * send whose acknowledgement it never got). Atomic on Redis, whichever instance each attempt reaches.
   */
  appendOnce(key: string, data: unknown, ttlMs: number): Promise<AppendOnce>;
  /**
   * Calls `listener` with the new last id after every append (synchronously, in order). Subscribers
   * read what they need with `read()`; returns the unsubscribe function.
   */
  subscribe(listener: (lastId: number) => void): () => void;
  /** Store events (see FeedEvent); returns the unsubscribe function. */
  watch(listener: (event: FeedEvent) => void): () => void;
  close(): Promise<void>;
}

/**
 * The store behind the feed could not be read: transport-neutral; each transport says it its own way
 * (poll: 503 LAB_ERR_FEED_UNAVAILABLE; SSE and WebSocket: a `feed-down` control, then the close).
 */
export class FeedUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'FeedUnavailableError';
  }
}
