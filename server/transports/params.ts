/**
 * Query parsing shared by the three transports, so that `since`, `epoch` and `timeout` mean the same
 * everywhere, and by the bench's bare reference server, so that it refuses what the lab refuses with
 * the same codes and messages. Framework-free on purpose (bare imports it): a bad value throws the
 * catalogue's error.
 */
import type { Config } from '../config.js';
import { HttpErrors } from '../errors.js';
import type { TransportKey } from '../counters.js';
import type { Feed, Message } from '../feed/types.js';
import type { Stats } from '../stats.js';
import type { FeedTail } from './tail.js';

/** What every transport plugin is given. */
export interface TransportOptions {
  feed: Feed;
  /** The process's one reader of new messages, shared by the transports' hubs. */
  tail: FeedTail;
  config: Readonly<Config>;
  stats: Stats;
  /** Test only (AppOptions.extraWork): called with every batch of messages delivered to one client. */
  extraWork?: ExtraWork | undefined;
}

/**
 * Test only: per transport, real work done for each batch delivered to one client, so that the CI gate
 * can prove it sees a lab that costs more per message (bench/servers/doctor.ts). Never set by `npm start`.
 */
export type ExtraWork = Partial<Record<TransportKey, (messages: readonly Message[]) => void>>;

const DIGITS = /^\d{1,16}$/;

/** A cursor: a non-negative safe integer, or undefined when absent (meaning "from now"). */
export function parseCursor(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !DIGITS.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new HttpErrors.BAD_CURSOR(JSON.stringify(raw));
  }
  return Number(raw);
}

export function parseEpoch(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 128) throw new HttpErrors.BAD_EPOCH();
  return raw;
}

/**
 * A poll's hold, in ms: `def` when absent, else an integer from 0 (short polling: answer at once) to
 * `max`.
 */
export function parseTimeout(raw: unknown, def: number, max: number): number {
  if (raw === undefined) return def;
  const n = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= max)) throw new HttpErrors.BAD_TIMEOUT(max, JSON.stringify(raw));
  return n;
}

/**
 * What `compress` may ask for on each kind of endpoint: gzip on the HTTP transports (/events, /poll),
 * permessage-deflate on /ws with (`deflate`) or without (`deflate-alone`) context takeover, `off` on any.
 */
export const COMPRESS_VALUES = Object.freeze({
  http: Object.freeze(['off', 'gzip'] as const),
  ws: Object.freeze(['off', 'deflate', 'deflate-alone'] as const),
});
export type CompressKind = keyof typeof COMPRESS_VALUES;
export type Compress<K extends CompressKind> = (typeof COMPRESS_VALUES)[K][number];

/**
 * A connection's own compression choice (`compress`), or undefined when absent: the server's setting
 * (httpGzip, wsDeflate) then applies. `off` is always taken (it costs the server nothing); a value that turns
 * compression on only when `optIn` (config.compressionOptIn) lets clients make the server hold a zlib
 * context for them. Anything else is refused with the values this server takes here.
 */
export function parseCompress<K extends CompressKind>(raw: unknown, kind: K, optIn: boolean): Compress<K> | undefined {
  if (raw === undefined) return undefined;
  const allowed: readonly string[] = optIn ? COMPRESS_VALUES[kind] : ['off'];
  if (typeof raw !== 'string' || !allowed.includes(raw)) {
    const why = optIn ? '' : ' (COMPRESSION_OPT_IN is off: clients may not turn compression on)';
    throw new HttpErrors.BAD_COMPRESSION(allowed.join(', '), why, JSON.stringify(raw).slice(0, 40));
  }
  return raw as Compress<K>;
}

/** Where a subscription starts: the given cursor, or the feed's last id ("only what comes next"). */
export const startCursor = (feed: Feed, since: number | undefined): number => since ?? feed.info().lastId;

export type Query = Record<string, unknown>;

/** Whether `request` came over HTTP/2, where connection-specific headers such as `Connection` are forbidden (RFC 9113 §8.2.2). */
export const isHttp2 = (request: { raw: { httpVersionMajor: number } }): boolean => request.raw.httpVersionMajor === 2;
