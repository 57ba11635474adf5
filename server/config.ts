/**
 * All settings in one place: one frozen object of defaults with units in the names, merged with the
 * environment and command-line flags, then one check per field. A bad value throws a ConfigError that
 * names the setting and shows the value, so start-up fails with a message a person can act on.
 *
 * Every setting `fooBarMs` is read from the env var `FOO_BAR_MS` and the flag `--foo-bar-ms`
 * (flags win over env vars).
 */
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';

/**
 * Timing constants, named and explained once; tests import them instead of repeating numbers.
 */
export const TIMING = Object.freeze({
  /**
   * How long a long poll is held when nothing arrives. 25 s stays under the 30–60 s idle timeouts of
   * common proxies and load balancers (nginx `proxy_read_timeout` 60 s, AWS ALB 60 s, Heroku 30 s).
   */
  pollTimeoutMs: 25_000,
  /** The largest `timeout` a client may ask for; longer holds only meet proxy timeouts. */
  pollMaxTimeoutMs: 120_000,
  /**
   * SSE comment heartbeat. 15 s is what the WHATWG spec suggests ("every 15 seconds or so") so that
   * proxies do not drop an idle stream and clients can tell a dead connection from a quiet feed.
   */
  sseHeartbeatMs: 15_000,
  /** The `retry:` sent on every SSE connect: how soon EventSource reconnects after a drop. */
  sseRetryMs: 1_000,
  /** WebSocket ping interval; a peer that has not answered the previous ping by then is terminated. */
  wsPingIntervalMs: 30_000,
  /** After a close frame, how long a peer gets to finish the closing handshake before we terminate it. */
  wsCloseGraceMs: 1_000,
  /**
   * On close, after polls are answered and streams ended, how long in-flight HTTP exchanges get before
   * every remaining connection is cut (a browser's pre-connected socket never sends a request).
   */
  closeGraceMs: 200,
  /** Window over which /stats reports event-loop delay percentiles. */
  eventLoopWindowMs: 5_000,
});

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 3000,
  /** Start the built-in publisher at `demoRatePerSec` (off: it starts at 0; /control changes it). */
  demo: true,
  /** Demo rate: one message per second, so a fresh user sees traffic at once. */
  demoRatePerSec: 1,
  /** Size of the built-in publisher's `data` JSON, bytes. */
  demoPayloadBytes: 48,
  /**
   * The feed: `memory` (in this process) or `redis://host:port/db` (a Redis Stream shared by every
   * instance pointed at it). Env var FEED_URL, flag --feed.
   */
  feed: 'memory',
  /** Prefix of the Redis keys (`<prefix>:stream`, `:seq`, `:epoch`); instances sharing it share the feed. */
  redisKeyPrefix: 'transport-lab',
  /** Worker processes (node:cluster) on one port; more than 1 needs the Redis feed. */
  workers: 1,
  /** Where bench reports are read from for the dashboard's Reports view. */
  resultsDir: fileURLToPath(new URL('../results/', import.meta.url)),
  /** Bearer token for publishing; required when `host` is not a loopback address. */
  publishToken: '',
  /** Extra origins allowed to open WebSockets (the server's own origin always is). */
  allowedOrigins: [] as readonly string[],
  /** How many messages the feed keeps; a cursor older than that gets a `gap`. */
  retentionMessages: 10_000,
  /** Largest publish body (HTTP) or WebSocket frame, in bytes. */
  maxPayloadBytes: 64 * 1024,
  /** Most messages in one poll answer or one catch-up read. */
  pollBatchMax: 1_000,
  pollTimeoutMs: TIMING.pollTimeoutMs,
  pollMaxTimeoutMs: TIMING.pollMaxTimeoutMs,
  sseHeartbeatMs: TIMING.sseHeartbeatMs,
  sseRetryMs: TIMING.sseRetryMs,
  wsPingIntervalMs: TIMING.wsPingIntervalMs,
  wsCloseGraceMs: TIMING.wsCloseGraceMs,
  /** What one SSE or WebSocket connection may have queued before it is dropped as a slow consumer. */
  maxBufferedBytes: 1024 * 1024,
  /** After SIGINT/SIGTERM, how long to wait for clients before exiting anyway. */
  shutdownTimeoutMs: 5_000,
  logLevel: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
});

type Widen<T> = T extends boolean ? boolean : T extends number ? number : T extends string ? string : T;
export type Config = { -readonly [K in keyof typeof DEFAULTS]: Widen<(typeof DEFAULTS)[K]> };
export type ConfigInput = Partial<Config>;

type Kind = 'int' | 'bool' | 'string' | 'list';
const KINDS: { [K in keyof Config]: Kind } = {
  host: 'string',
  port: 'int',
  demo: 'bool',
  demoRatePerSec: 'int',
  demoPayloadBytes: 'int',
  resultsDir: 'string',
  feed: 'string',
  redisKeyPrefix: 'string',
  workers: 'int',
  publishToken: 'string',
  allowedOrigins: 'list',
  retentionMessages: 'int',
  maxPayloadBytes: 'int',
  pollBatchMax: 'int',
  pollTimeoutMs: 'int',
  pollMaxTimeoutMs: 'int',
  sseHeartbeatMs: 'int',
  sseRetryMs: 'int',
  wsPingIntervalMs: 'int',
  wsCloseGraceMs: 'int',
  maxBufferedBytes: 'int',
  shutdownTimeoutMs: 'int',
  logLevel: 'string',
};

/** Env var names that do not follow the rule (FEED_URL reads better than FEED for a URL). */
const ENV_NAMES: Readonly<Record<string, string>> = Object.freeze({ feed: 'FEED_URL' });

/** `pollTimeoutMs` → `POLL_TIMEOUT_MS`. */
export const envName = (key: string): string => ENV_NAMES[key] ?? key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
/** `pollTimeoutMs` → `poll-timeout-ms`. */
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function parseValue(key: keyof Config, raw: string, source: string): unknown {
  switch (KINDS[key]) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(source, raw, 'expected an integer');
      return Number(raw);
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(source, raw, 'expected 1/0, true/false, yes/no or on/off');
    }
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'string':
      return raw;
  }
}

/** Reads settings from env vars and flags (flags win). Unknown flags are an error. */
export function readSettings(env: NodeJS.ProcessEnv, argv: readonly string[]): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(KINDS) as (keyof Config)[]) {
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== '') out[key] = parseValue(key, raw, envName(key));
  }
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const key of Object.keys(KINDS) as (keyof Config)[]) {
    options[flagName(key)] = { type: KINDS[key] === 'bool' ? 'boolean' : 'string' };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowNegative: true, strict: true });
  } catch (err) {
    throw new ConfigError('command line', argv.join(' '), (err as Error).message);
  }
  for (const key of Object.keys(KINDS) as (keyof Config)[]) {
    const v = parsed.values[flagName(key)];
    if (v === undefined) continue;
    out[key] = typeof v === 'boolean' ? v : parseValue(key, v, `--${flagName(key)}`);
  }
  return out as ConfigInput;
}

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

function intIn(c: Config, key: keyof Config, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, v, `expected an integer from ${min} to ${max}`);
  }
}

/** Merges `input` over DEFAULTS and checks every field. Throws ConfigError on the first bad one. */
export function resolveConfig(input: ConfigInput = {}): Readonly<Config> {
  for (const key of Object.keys(input)) {
    if (!(key in DEFAULTS)) throw new ConfigError(key, (input as Record<string, unknown>)[key], 'unknown setting');
  }
  const c = { ...DEFAULTS, ...input } as Config;
  if (typeof c.host !== 'string' || c.host === '') throw new ConfigError('host', c.host, 'expected a host name or address');
  intIn(c, 'port', 0, 65_535);
  if (typeof c.demo !== 'boolean') throw new ConfigError('demo', c.demo, 'expected true or false');
  if (typeof c.resultsDir !== 'string' || c.resultsDir === '') throw new ConfigError('resultsDir', c.resultsDir, 'expected a folder path');
  intIn(c, 'retentionMessages', 1, 10_000_000);
  intIn(c, 'maxPayloadBytes', 16, 100 * 1024 * 1024);
  intIn(c, 'demoRatePerSec', 0, 1_000);
  intIn(c, 'demoPayloadBytes', 0, c.maxPayloadBytes);
  intIn(c, 'pollBatchMax', 1, 100_000);
  intIn(c, 'pollMaxTimeoutMs', 0, 3_600_000);
  intIn(c, 'pollTimeoutMs', 0, c.pollMaxTimeoutMs);
  intIn(c, 'sseHeartbeatMs', 1);
  intIn(c, 'sseRetryMs', 0);
  intIn(c, 'wsPingIntervalMs', 1);
  intIn(c, 'wsCloseGraceMs', 0);
  intIn(c, 'maxBufferedBytes', 1024);
  intIn(c, 'shutdownTimeoutMs', 0);
  if (!Array.isArray(c.allowedOrigins)) throw new ConfigError('allowedOrigins', c.allowedOrigins, 'expected a list of origins');
  for (const o of c.allowedOrigins) {
    let ok = false;
    try {
      ok = new URL(o).origin === o;
    } catch {}
    if (!ok) throw new ConfigError('allowedOrigins', o, 'expected an origin like https://example.com (scheme, host, optional port; no path)');
  }
  if (c.feed !== 'memory') {
    let ok = false;
    try {
      const u = new URL(c.feed);
      ok = (u.protocol === 'redis:' || u.protocol === 'rediss:') && /^\/?\d*$/.test(u.pathname);
    } catch {}
    if (!ok) throw new ConfigError('feed', c.feed, 'expected "memory" or a Redis URL like redis://127.0.0.1:6379/0');
  }
  if (typeof c.redisKeyPrefix !== 'string' || !/^[\w:.-]{1,100}$/.test(c.redisKeyPrefix)) {
    throw new ConfigError('redisKeyPrefix', c.redisKeyPrefix, 'expected 1–100 letters, digits, _ : . -');
  }
  intIn(c, 'workers', 1, 64);
  if (c.workers > 1 && c.feed === 'memory') {
    throw new ConfigError('workers', c.workers, 'several workers need the Redis feed (FEED_URL=redis://127.0.0.1:6379/0 or --feed): the memory feed lives in one process, so each worker would serve a different history');
  }
  if (typeof c.publishToken !== 'string') throw new ConfigError('publishToken', c.publishToken, 'expected a string');
  if (!isLoopback(c.host) && c.publishToken === '') {
    throw new ConfigError('PUBLISH_TOKEN', '', `HOST=${c.host} is not a loopback address: set PUBLISH_TOKEN so that only holders of the token can publish`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(c.logLevel)) {
    throw new ConfigError('logLevel', c.logLevel, 'expected fatal, error, warn, info, debug, trace or silent');
  }
  return Object.freeze({ ...c, allowedOrigins: Object.freeze([...c.allowedOrigins]) });
}

/** A URL for printing: credentials masked. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^@/]*)@/, '//***@');

/** The configuration for printing: the token and any Redis credentials are masked. */
export function describeConfig(c: Readonly<Config>): Record<string, unknown> {
  return { ...c, publishToken: c.publishToken ? '***' : '', feed: redactUrl(c.feed) };
}
