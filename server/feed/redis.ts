/**
 * The Redis feed: the log is a Redis Stream, so every lab instance — worker processes of one machine,
 * or instances on several machines — serves the same messages with the same ids.
 *
 * - Ids: one counter (`<prefix>:seq`, INCR) shared by all instances; message n is stream entry `n-0`,
 *   so "what came after cursor X" is `XRANGE (X-0 +`. Appending is one Lua script: INCR, Redis TIME for
 *   `ts` (one clock for every instance), XADD with an exact MAXLEN for retention — atomic, so ids are
 *   strictly increasing in the stream whoever appends.
 * - Idempotent sends (appendOnce): the same script, unless `<prefix>:send:<key>` holds the message a
 *   send with that key made; set with the append, atomically, and expiring after its TTL.
 * - Epoch: `<prefix>:epoch`, created once (SET NX). Restarting instances keeps it, and the ids; only
 *   a Redis that lost its data (a new epoch is then created) makes clients `reset`.
 * - One blocking tail per process (XREAD BLOCK on its own connection) keeps a window of recent messages
 *   and wakes the local subscribers; clients never get a Redis connection of their own, and the
 *   transports' reads of recent messages are served from that window without a round trip.
 * - Redis going away: commands fail at once (no offline queue) with LAB_ERR_FEED_UNAVAILABLE, watchers
 *   are told `down`, and `up` when it is back; the tail resumes from the last id it saw.
 * - Back means healthy, not just connected: after a reconnect the epoch is checked (a write, SET NX),
 *   and the feed stays down until that check passes. A Redis that accepts the connection but refuses
 *   or holds writes for a while (`CLIENT PAUSE … WRITE`, `maxmemory` reached) fails the check; it is
 *   then retried with a bounded exponential backoff (RECHECK_*) for as long as the connection stays up
 *   — a new connection starts over — and `up` is emitted once it passes.
 * - While down, reads the window can answer (a cursor from window[0].id - 1 up to lastId - 1) are
 *   still answered from it: those messages are in the log whatever Redis does meanwhile. Anything else
 *   — a cursor before the window, at the head or in the future, or another epoch (possibly a newer
 *   one this process has not seen yet) — needs Redis and fails with LAB_ERR_FEED_UNAVAILABLE, never
 *   with a guessed gap, reset or empty answer.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { redactUrl } from '../config.js';
import type { AppendOnce, Feed, FeedEvent, FeedInfo, Message, ReadResult } from './types.js';

export interface RedisFeedOptions {
  /** redis://host:port/db */
  url: string;
  /** Prefix of the keys this feed uses: `:seq`, `:stream`, `:epoch`, and `:send:<key>` per idempotent send (expiring). */
  keyPrefix: string;
  retentionMessages: number;
  /** Recent messages kept in process for reads and fan-out. @default 2000 */
  windowMessages?: number;
  /** A command that takes longer fails (the store is then treated as unavailable). @default 2000 */
  commandTimeoutMs?: number;
}

/** INCR, Redis TIME, XADD: sets `msg`, the message's JSON (KEYS[1] seq, KEYS[2] stream; ARGV[1] data, ARGV[2] MAXLEN). */
const APPEND_BODY = `
local id = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local ts = string.format('%d.%03d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2]) % 1000)
local msg = '{"id":' .. id .. ',"ts":' .. ts .. ',"data":' .. ARGV[1] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], id .. '-0', 'm', msg)`;

const APPEND = `${APPEND_BODY}
return msg`;

/** APPEND unless KEYS[3] (the send's idempotency key) holds a message already: {1, that message} or {0, the new one}, kept ARGV[3] ms. */
const APPEND_ONCE = `
local prev = redis.call('GET', KEYS[3])
if prev then return {1, prev} end
${APPEND_BODY}
redis.call('SET', KEYS[3], msg, 'PX', ARGV[3])
return {0, msg}`;

const READ = `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
return {last, entries}`;

type Entry = [id: string, fields: string[]];

/** How long one XREAD of the tail blocks before it asks again. */
const TAIL_BLOCK_MS = 1_000;
/** How long the tail waits after a failed XREAD before it tries again (its connection is reconnecting). */
const TAIL_RETRY_MS = 100;
/**
 * The post-reconnect check, when it fails on a connection that is up, is tried again after
 * RECHECK_MIN_MS, then twice as long each time, at most RECHECK_MAX_MS apart: quick to notice a pause
 * of a few hundred ms, and at most one SET NX every 2 s against a Redis that stays out of memory. (The
 * command timeout, 2 s by default, bounds each attempt; attempts never overlap.)
 */
const RECHECK_MIN_MS = 50;
const RECHECK_MAX_MS = 2_000;

const entryMessage = ([, fields]: Entry): Message => JSON.parse(fields[1]!) as Message;

export class RedisFeed implements Feed {
  readonly kind = 'redis' as const;
  #epoch = '';
  #lastId = 0;
  /** Contiguous recent messages, oldest first: window[0].id … window[n-1].id === #lastId. */
  #window: Message[] = [];
  readonly #cmd: Redis;
  readonly #tail: Redis;
  readonly #keys: { seq: string; stream: string; epoch: string };
  readonly #opts: Required<RedisFeedOptions>;
  readonly #listeners = new Set<(lastId: number) => void>();
  readonly #watchers = new Set<(e: FeedEvent) => void>();
  #closed = false;
  /** Ends the tail's current wait (its XREAD, or its pause after a failed one) at once; set by #untilClosed. */
  #interruptTail: (() => void) | undefined;
  #down: string | undefined;
  #tailLoop: Promise<void> | undefined;
  /**
   * Bumped by every 'ready' and 'close' of the command connection: a recovery check (or its retry
   * timer) started for an older connection gives up instead of acting on a newer one.
   */
  #connection = 0;
  #recheckTimer: NodeJS.Timeout | undefined;

  private constructor(opts: RedisFeedOptions) {
    this.#opts = { windowMessages: 2000, commandTimeoutMs: 2000, ...opts };
    // The window never holds what retention has dropped: a read from it must answer as Redis would.
    this.#opts.windowMessages = Math.min(this.#opts.windowMessages, opts.retentionMessages);
    const p = opts.keyPrefix;
    this.#keys = { seq: `${p}:seq`, stream: `${p}:stream`, epoch: `${p}:epoch` };
    const common = { lazyConnect: true, retryStrategy: (n: number) => Math.min(50 * n, 1000) };
    // No offline queue: while Redis is away a publish must fail now with a clear 503, not hang.
    this.#cmd = new Redis(opts.url, {
      ...common,
      enableOfflineQueue: false,
      commandTimeout: this.#opts.commandTimeoutMs,
      maxRetriesPerRequest: 0,
    });
    // The tail blocks in XREAD: no command timeout there.
    this.#tail = new Redis(opts.url, { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.#cmd.defineCommand('labAppend', { numberOfKeys: 2, lua: APPEND });
    this.#cmd.defineCommand('labAppendOnce', { numberOfKeys: 3, lua: APPEND_ONCE });
    this.#cmd.defineCommand('labRead', { numberOfKeys: 2, lua: READ });
    this.#cmd.on('error', () => {}); // reported through 'close' → down
    this.#tail.on('error', () => {});
    this.#cmd.on('close', () => {
      this.#connection++;
      this.#cancelRecheck();
      this.#setDown('connection to Redis lost');
    });
    this.#cmd.on('ready', () => {
      this.#connection++;
      this.#cancelRecheck();
      void this.#recover(this.#connection, RECHECK_MIN_MS);
    });
  }

  /** Connects, creates or adopts the epoch, and starts the tail. Rejects if Redis cannot be reached. */
  static async connect(opts: RedisFeedOptions): Promise<RedisFeed> {
    const feed = new RedisFeed(opts);
    try {
      await Promise.all([feed.#cmd.connect(), feed.#tail.connect()]);
      await feed.#adoptEpoch();
    } catch (err) {
      feed.#cmd.disconnect();
      feed.#tail.disconnect();
      throw new Error(`cannot use the Redis feed at ${redactUrl(opts.url)}: ${(err as Error).message}`);
    }
    feed.#tailLoop = feed.#runTail();
    return feed;
  }

  info(): FeedInfo {
    const firstId = Math.max(1, this.#lastId - this.#opts.retentionMessages + 1);
    return { epoch: this.#epoch, lastId: this.#lastId, firstId, retained: this.#lastId - firstId + 1 };
  }

  async read(cursor: number, limit: number, epoch?: string): Promise<ReadResult> {
    if (epoch !== undefined && epoch !== this.#epoch) {
      // While Redis is away the epoch may have moved on without us: only Redis can say it is a reset.
      this.#assertUp();
      return { kind: 'reset', reason: 'epoch-mismatch' };
    }
    const first = this.#window[0]?.id;
    // Served from the window when the cursor falls inside it (the common case: live fan-out).
    if (first !== undefined && cursor >= first - 1 && cursor < this.#lastId) {
      const start = cursor + 1 - first;
      return { kind: 'messages', messages: this.#window.slice(start, start + limit) };
    }
    this.#assertUp();
    const [last, entries] = (await (
      this.#cmd as unknown as { labRead(...a: unknown[]): Promise<[number, Entry[]]> }
    ).labRead(this.#keys.seq, this.#keys.stream, cursor, limit)) as [number, Entry[]];
    if (cursor > last) return { kind: 'reset', reason: 'future-cursor' };
    const messages = entries.map(entryMessage);
    const firstId = messages[0]?.id;
    return firstId !== undefined && firstId > cursor + 1
      ? { kind: 'gap', firstId, messages }
      : { kind: 'messages', messages };
  }

  async append(data: unknown): Promise<Message> {
    this.#assertUp();
    const json = JSON.stringify(data === undefined ? null : data);
    const text = await (this.#cmd as unknown as { labAppend(...a: unknown[]): Promise<string> }).labAppend(
      this.#keys.seq,
      this.#keys.stream,
      json,
      this.#opts.retentionMessages,
    );
    return JSON.parse(text) as Message;
  }

  async appendOnce(key: string, data: unknown, ttlMs: number): Promise<AppendOnce> {
    this.#assertUp();
    const json = JSON.stringify(data === undefined ? null : data);
    const [duplicate, text] = await (
      this.#cmd as unknown as { labAppendOnce(...a: unknown[]): Promise<[number, string]> }
    ).labAppendOnce(
      this.#keys.seq,
      this.#keys.stream,
      `${this.#opts.keyPrefix}:send:${key}`,
      json,
      this.#opts.retentionMessages,
      ttlMs,
    );
    return { message: JSON.parse(text) as Message, duplicate: duplicate === 1 };
  }

  subscribe(listener: (lastId: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  watch(listener: (e: FeedEvent) => void): () => void {
    this.#watchers.add(listener);
    return () => this.#watchers.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#interruptTail?.();
    this.#cancelRecheck();
    this.#listeners.clear();
    this.#watchers.clear();
    this.#tail.disconnect();
    this.#cmd.disconnect();
    // Does not hang when Redis is down: the tail's pending XREAD (queued while reconnecting, and
    // disconnect() then never rejects it) was interrupted above.
    await this.#tailLoop?.catch(() => {});
  }

  #assertUp(): void {
    if (this.#down !== undefined || this.#cmd.status !== 'ready')
      throw new Error(this.#down ?? 'not connected to Redis');
  }

  #emit(e: FeedEvent): void {
    for (const w of this.#watchers) w(e);
  }

  #setDown(reason: string): void {
    if (this.#closed || this.#down !== undefined) return;
    this.#down = reason;
    this.#emit({ type: 'down', reason });
  }

  #cancelRecheck(): void {
    clearTimeout(this.#recheckTimer);
    this.#recheckTimer = undefined;
  }

  /**
   * After a reconnect (`connection` is that connection's number): checks the epoch, and only then
   * says `up`. A failed check on a connection still up is retried after `delayMs`, doubling up to
   * RECHECK_MAX_MS; a connection that closes meanwhile stops it (its next 'ready' starts over).
   */
  async #recover(connection: number, delayMs: number): Promise<void> {
    this.#recheckTimer = undefined;
    const current = () => !this.#closed && connection === this.#connection && this.#down !== undefined;
    if (!current()) return;
    let changed: boolean;
    try {
      changed = await this.#adoptEpoch();
    } catch {
      if (!current() || this.#cmd.status !== 'ready') return;
      this.#recheckTimer = setTimeout(
        () => void this.#recover(connection, Math.min(delayMs * 2, RECHECK_MAX_MS)),
        delayMs,
      );
      return;
    }
    if (!current()) return;
    // Up first: watchers react to a new epoch by reading again, which needs the feed up.
    this.#down = undefined;
    this.#emit({ type: 'up' });
    if (changed) this.#emit({ type: 'epoch', epoch: this.#epoch });
  }

  /**
   * `p`, or undefined at once when the feed closes. For the tail only (one wait at a time); a fresh
   * promise per wait, so nothing accumulates over a long-running tail.
   */
  #untilClosed<T>(p: Promise<T>): Promise<T | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      this.#interruptTail = () => resolve(undefined);
      p.then(resolve, reject); // a late rejection after close is handled here, never unhandled
    }).finally(() => (this.#interruptTail = undefined));
  }

  /** Waits `ms`, or less when the feed closes (the timer is cleared either way). */
  async #pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await this.#untilClosed(new Promise<void>((r) => (timer = setTimeout(r, ms))));
    clearTimeout(timer);
  }

  /**
   * Reads (or creates) the epoch. When it differs from the one this process knew — Redis lost its
   * data and the ids start over — the window is dropped and watchers are told, so every transport
   * sends its clients a `reset`.
   */
  async #adoptEpoch(): Promise<boolean> {
    const fresh = `redis-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    await this.#cmd.set(this.#keys.epoch, fresh, 'NX');
    const [epoch, seq] = await Promise.all([this.#cmd.get(this.#keys.epoch), this.#cmd.get(this.#keys.seq)]);
    const changed = this.#epoch !== '' && epoch !== this.#epoch;
    this.#epoch = epoch ?? fresh;
    if (this.#epoch === '' || changed || this.#lastId === 0) {
      this.#window = [];
      this.#lastId = Number(seq ?? 0);
    }
    return changed;
  }

  async #runTail(): Promise<void> {
    while (!this.#closed) {
      try {
        // A bounded block: after a new epoch moved lastId back, the next read starts from it within TAIL_BLOCK_MS.
        const res = (await this.#untilClosed(
          this.#tail.xread('COUNT', 1000, 'BLOCK', TAIL_BLOCK_MS, 'STREAMS', this.#keys.stream, `${this.#lastId}-0`),
        )) as [string, Entry[]][] | null | undefined;
        if (!res || this.#closed) continue;
        const entries = res[0]?.[1] ?? [];
        if (entries.length === 0) continue;
        const messages = entries.map(entryMessage);
        // The window stays contiguous: after a hole (the tail fell behind retention) it restarts.
        if (messages[0]!.id !== this.#lastId + 1) this.#window = [];
        this.#window.push(...messages);
        if (this.#window.length > this.#opts.windowMessages)
          this.#window.splice(0, this.#window.length - this.#opts.windowMessages);
        this.#lastId = messages[messages.length - 1]!.id;
        for (const l of this.#listeners) l(this.#lastId);
      } catch {
        if (this.#closed) return;
        // Connection lost: wait for the command connection to be back (it re-checks the epoch, which
        // may move lastId), then resume from the last id seen.
        await this.#pause(TAIL_RETRY_MS);
      }
    }
  }
}
