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
import { parseNetworkList } from './network/profiles.js';

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
  /**
   * A catching-up SSE or WebSocket reader whose queue is over maxBufferedBytes gets this long to drain
   * it before it is cut as a slow consumer (live readers are cut at once: the others must not wait).
   * 10 s covers a slow mobile link reading 1 MiB; a reader that stopped reading never drains.
   */
  catchUpDrainMs: 10_000,
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
  /** Prefix of the Redis keys (`<prefix>:stream`, `:seq`, `:epoch`, `:send:*`); instances sharing it share the feed. */
  redisKeyPrefix: 'transport-lab',
  /** Worker processes (node:cluster) on one port; more than 1 needs the Redis feed. */
  workers: 1,
  /**
   * Network profiles (server/network/profiles.ts) to serve the lab through as well: one relay per
   * profile, on port + 1, + 2, … (any free port when `port` is 0). `loopback` is the server itself and
   * adds no relay; `all` is every profile. Env var NETWORK, flag --network (`--network 4g,3g`).
   */
  network: [] as readonly string[],
  /** Serve HTTPS (HTTP/1.1 over TLS) instead of cleartext HTTP. Flag --tls. */
  tls: false,
  /**
   * Serve HTTP/2 over TLS, with HTTP/1.1 on the same port for clients that do not offer h2 in ALPN:
   * WebSocket upgrades keep working over HTTP/1.1 (`ws` has no RFC 8441 WebSocket-over-HTTP/2). Flag --http2.
   */
  http2: false,
  /** PEM certificate file for --tls/--http2 (with tlsKey); unset: a self-signed one is made at start. */
  tlsCert: '',
  /** PEM private key file matching tlsCert. */
  tlsKey: '',
  /** Where bench reports are read from for the dashboard's Reports view. */
  resultsDir: fileURLToPath(new URL('../results/', import.meta.url)),
  /** Bearer token for publishing; required when `host` is not a loopback address. */
  publishToken: '',
  /**
   * Extra origins allowed to open WebSockets (the server's own origin always is), and the origins
   * served CORS headers on /poll, /events and /publish (server/cors.ts).
   */
  allowedOrigins: [] as readonly string[],
  /**
   * CORS answers to ALLOWED_ORIGINS also carry `Access-Control-Allow-Credentials: true`, so pages may
   * send cookies or HTTP auth (`credentials: 'include'`, `withCredentials`). Off: the lab's own auth is
   * the bearer token, which needs no credentials mode. Env var CORS_CREDENTIALS, flag --cors-credentials.
   */
  corsCredentials: false,
  /**
   * Extra `Host` names accepted on a loopback bind (localhost, 127.0.0.1 and [::1] always are): a web
   * page whose name was rebound to 127.0.0.1 (DNS rebinding) is refused. Not checked on other binds.
   */
  allowedHosts: [] as readonly string[],
  /** How many messages the feed keeps; a cursor older than that gets a `gap`. */
  retentionMessages: 10_000,
  /** Largest publish body (HTTP) or WebSocket frame, in bytes. */
  maxPayloadBytes: 64 * 1024,
  /**
   * Deepest nesting of arrays and objects a published `data` may have. Encoding walks it recursively:
   * 64 is far beyond any real message and far below what overflows the stack (thousands).
   */
  maxNestingDepth: 64,
  /**
   * Frames per second, per WebSocket, that may need an error answer (bad JSON, wrong type, refused
   * publish); past it the peer is closed with 1008 LAB_ERR_TOO_MANY_ERRORS. Replies are then bounded
   * by this rate as well as by maxBufferedBytes.
   */
  wsErrorRepliesPerSec: 100,
  /**
   * Client sends — a WebSocket's publish frames, and POST /send (what an SSE or polling page sends
   * with) — per connection and second: a token bucket per WebSocket, HTTP/1.1 connection or HTTP/2
   * session that holds one second's worth. Past it a send is refused and nothing is appended: 429
   * LAB_ERR_SEND_RATE with Retry-After, or an `error` frame with that code (which counts against
   * wsErrorRepliesPerSec, so a WebSocket that keeps flooding is closed 1008). So one client cannot
   * flood every other: what it may send is fanned out to all of them. 50 a second is far above what
   * a person types and covers 30 Hz cursor or game updates; Ably's default limit per connection is
   * 50 messages a second, Pusher's client events 10. POST /publish (the application's own publisher,
   * behind PUBLISH_TOKEN) has no such budget.
   */
  sendMessagesPerSec: 50,
  /**
   * The same bucket in bytes (of the body, or of the frame) per connection and second: 50 chat-sized
   * sends, or four of the largest (maxPayloadBytes); a larger send goes when the bucket is full and the
   * next waits until it has refilled past zero.
   */
  sendBytesPerSec: 256 * 1024,
  /**
   * How long a send's idempotency key (the `Idempotency-Key` header of POST /send and /publish, the `key`
   * of a WebSocket publish frame) is remembered: a retry with the same key within it gets the first
   * send's id back and appends nothing. 10 minutes outlasts any reconnect backoff; the memory feed also
   * forgets the oldest keys past retentionMessages of them.
   */
  sendKeyTtlMs: 600_000,
  /**
   * Most messages in one batch send (`{"batch": […]}` to POST /send or /publish, or a batch publish
   * frame): what a client queues within a few ms before sending them together. 50 is one second of
   * sendMessagesPerSec, so a full batch fits a full budget; a batch spends one message of the budget per
   * item and its whole size in bytes. Env SEND_BATCH_MAX.
   */
  sendBatchMax: 50,
  /**
   * WebSocket permessage-deflate (RFC 7692): `off` (the default: every frame is built once and shared
   * by all sockets, and no socket holds a zlib context — ws' own docs warn of its memory cost), `on`
   * (each socket keeps its deflate window between messages: smaller frames, a zlib context per socket
   * for its whole life), or `no-context-takeover` (each message compressed alone: no window kept).
   * Env var WS_DEFLATE, flag --ws-deflate.
   */
  wsDeflate: 'off' as 'off' | 'on' | 'no-context-takeover',
  /**
   * gzip SSE streams and poll answers for clients that send `Accept-Encoding: gzip`. An SSE stream gets
   * a gzip context of its own, flushed (Z_SYNC_FLUSH) after every write so that no event waits in it; a
   * batch's poll answer is compressed once for every poll it answers. Off by default: per-stream zlib
   * memory, and the bench's figures are uncompressed unless a scenario says so. Env HTTP_GZIP.
   */
  httpGzip: false,
  /**
   * Whether a client may ask for compression on its own connection with `?compress=` (`gzip` on /events and
   * /poll, `deflate` or `deflate-alone` on /ws), whatever wsDeflate and httpGzip say: the dashboard's
   * compression toggles use it to show what compression does to the bytes. On by default so that they work
   * with plain `npm start`; the price is that any client can make the server hold a zlib context for its
   * connection (ws' deflater, an SSE stream's gzip: about 256 KiB each by zlib's own sizing formula at its
   * default window and memLevel, native memory), so a server facing clients it does not trust sets it off.
   * Off: `compress` asking for compression is refused with 400 LAB_ERR_BAD_COMPRESSION (`compress=off` is
   * always taken: it costs nothing). Env COMPRESSION_OPT_IN.
   */
  compressionOptIn: true,
  /** Most messages in one poll answer or one catch-up read. */
  pollBatchMax: 1_000,
  pollTimeoutMs: TIMING.pollTimeoutMs,
  pollMaxTimeoutMs: TIMING.pollMaxTimeoutMs,
  sseHeartbeatMs: TIMING.sseHeartbeatMs,
  sseRetryMs: TIMING.sseRetryMs,
  /**
   * Each SSE connection gets a `retry:` drawn uniformly from [sseRetryMs, sseRetryMs + this], so that
   * the streams a restart dropped do not all reconnect in the same instant (a reconnect storm). 0: every
   * connection gets exactly sseRetryMs. 2 s: measured behind nginx with 2,000 clients and the lab
   * restarted (npm run bench -- --field reconnect-storm), it lowered the peak of new connections and
   * nothing was lost, where the fixed retry lost messages (results/field.md).
   */
  sseRetryJitterMs: 2_000,
  wsPingIntervalMs: TIMING.wsPingIntervalMs,
  wsCloseGraceMs: TIMING.wsCloseGraceMs,
  /**
   * What one SSE or WebSocket connection may have queued before it is dropped as a slow consumer: every
   * write counts (messages, catch-up, acks, errors, announcements).
   */
  maxBufferedBytes: 1024 * 1024,
  catchUpDrainMs: TIMING.catchUpDrainMs,
  /** After SIGINT/SIGTERM, how long to wait for clients before exiting anyway. */
  shutdownTimeoutMs: 5_000,
  /**
   * On close, SSE streams and WebSockets are ended spread evenly over this window instead of all at
   * once, so their clients reconnect (to another instance, behind a proxy) spread too. 0: all at once.
   * Must stay under shutdownTimeoutMs.
   */
  shutdownSpreadMs: 0,
  /**
   * pino's level. `warn` by default: warnings and errors only, so `npm start` prints its start-up line and
   * what needs attention, not a line per request (the dashboard polls /stats every second). `info` logs
   * every request; `debug` also prints the whole configuration at start.
   */
  logLevel: 'warn' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
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
  tls: 'bool',
  http2: 'bool',
  tlsCert: 'string',
  tlsKey: 'string',
  feed: 'string',
  redisKeyPrefix: 'string',
  workers: 'int',
  network: 'list',
  publishToken: 'string',
  allowedOrigins: 'list',
  corsCredentials: 'bool',
  allowedHosts: 'list',
  retentionMessages: 'int',
  maxPayloadBytes: 'int',
  maxNestingDepth: 'int',
  wsErrorRepliesPerSec: 'int',
  sendMessagesPerSec: 'int',
  sendBytesPerSec: 'int',
  sendKeyTtlMs: 'int',
  sendBatchMax: 'int',
  wsDeflate: 'string',
  httpGzip: 'bool',
  compressionOptIn: 'bool',
  pollBatchMax: 'int',
  pollTimeoutMs: 'int',
  pollMaxTimeoutMs: 'int',
  sseHeartbeatMs: 'int',
  sseRetryMs: 'int',
  sseRetryJitterMs: 'int',
  wsPingIntervalMs: 'int',
  wsCloseGraceMs: 'int',
  maxBufferedBytes: 'int',
  catchUpDrainMs: 'int',
  shutdownTimeoutMs: 'int',
  shutdownSpreadMs: 'int',
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
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
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

/**
 * Shortest PUBLISH_TOKEN accepted when one is set: 16 characters is out of reach of guessing over the
 * network even when drawn from letters alone (`openssl rand -base64 24` gives 32).
 */
export const MIN_PUBLISH_TOKEN_LENGTH = 16;

/** One DNS label: letters, digits, `-` and `_`, not starting or ending with `-`, at most 63. */
const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/**
 * `name[:port]` as in a `Host` header or an ALLOWED_HOSTS entry (a host name, an IPv4 address or a
 * bracketed IPv6 address; port 1–65535), lower-cased; undefined when it is anything else (a scheme,
 * a path, user info, a wildcard, spaces).
 */
export function parseHostPort(value: string): { name: string; port: string | undefined } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(value);
  if (!m) return undefined;
  const name = m[1]!.toLowerCase();
  // Ports compare as numbers: `:080` is `:80`.
  const port = m[2] === undefined ? undefined : String(Number(m[2]));
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) return undefined;
  if (name.startsWith('[')) return isIP(name.slice(1, -1)) === 6 ? { name, port } : undefined;
  if (name.length > 253 || !name.split('.').every((label) => HOST_LABEL.test(label))) return undefined;
  return { name, port };
}

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
  if (typeof c.host !== 'string' || c.host === '')
    throw new ConfigError('host', c.host, 'expected a host name or address');
  intIn(c, 'port', 0, 65_535);
  if (typeof c.demo !== 'boolean') throw new ConfigError('demo', c.demo, 'expected true or false');
  if (typeof c.tls !== 'boolean') throw new ConfigError('tls', c.tls, 'expected true or false');
  if (typeof c.http2 !== 'boolean') throw new ConfigError('http2', c.http2, 'expected true or false');
  if (typeof c.tlsCert !== 'string' || typeof c.tlsKey !== 'string' || (c.tlsCert === '') !== (c.tlsKey === '')) {
    throw new ConfigError(
      c.tlsCert ? 'tlsKey' : 'tlsCert',
      c.tlsCert ? c.tlsKey : c.tlsCert,
      'TLS_CERT and TLS_KEY go together: set both PEM files, or neither for a self-signed certificate',
    );
  }
  if (c.tlsCert !== '' && !c.tls && !c.http2) {
    throw new ConfigError(
      'tlsCert',
      c.tlsCert,
      'a certificate is set but the server would serve cleartext: add --tls (HTTPS) or --http2',
    );
  }
  if (typeof c.resultsDir !== 'string' || c.resultsDir === '')
    throw new ConfigError('resultsDir', c.resultsDir, 'expected a folder path');
  intIn(c, 'retentionMessages', 1, 10_000_000);
  intIn(c, 'maxPayloadBytes', 16, 100 * 1024 * 1024);
  intIn(c, 'maxNestingDepth', 1, 1_000);
  intIn(c, 'wsErrorRepliesPerSec', 1, 100_000);
  intIn(c, 'sendMessagesPerSec', 1, 1_000_000);
  intIn(c, 'sendBytesPerSec', 1);
  intIn(c, 'sendKeyTtlMs', 1_000, 7 * 24 * 3_600_000);
  intIn(c, 'sendBatchMax', 1, 10_000);
  if (!['off', 'on', 'no-context-takeover'].includes(c.wsDeflate))
    throw new ConfigError('wsDeflate', c.wsDeflate, 'expected off, on or no-context-takeover');
  if (typeof c.httpGzip !== 'boolean') throw new ConfigError('httpGzip', c.httpGzip, 'expected true or false');
  if (typeof c.compressionOptIn !== 'boolean')
    throw new ConfigError('compressionOptIn', c.compressionOptIn, 'expected true or false');
  intIn(c, 'demoRatePerSec', 0, 1_000);
  intIn(c, 'demoPayloadBytes', 0, c.maxPayloadBytes);
  intIn(c, 'pollBatchMax', 1, 100_000);
  intIn(c, 'pollMaxTimeoutMs', 0, 3_600_000);
  intIn(c, 'pollTimeoutMs', 0, c.pollMaxTimeoutMs);
  intIn(c, 'sseHeartbeatMs', 1);
  intIn(c, 'sseRetryMs', 0);
  intIn(c, 'sseRetryJitterMs', 0, 3_600_000);
  intIn(c, 'wsPingIntervalMs', 1);
  intIn(c, 'wsCloseGraceMs', 0);
  intIn(c, 'maxBufferedBytes', 1024);
  intIn(c, 'catchUpDrainMs', 0, 3_600_000);
  intIn(c, 'shutdownTimeoutMs', 0);
  intIn(c, 'shutdownSpreadMs', 0, 3_600_000);
  if (c.shutdownSpreadMs > 0 && c.shutdownSpreadMs >= c.shutdownTimeoutMs) {
    throw new ConfigError(
      'shutdownSpreadMs',
      c.shutdownSpreadMs,
      `must be under shutdownTimeoutMs (${c.shutdownTimeoutMs} ms): closes spread over the window would be cut by the shutdown timeout`,
    );
  }
  if (!Array.isArray(c.allowedOrigins))
    throw new ConfigError('allowedOrigins', c.allowedOrigins, 'expected a list of origins');
  for (const o of c.allowedOrigins) {
    let ok = false;
    try {
      ok = new URL(o).origin === o;
    } catch {}
    if (!ok)
      throw new ConfigError(
        'allowedOrigins',
        o,
        'expected an origin like https://example.com (scheme, host, optional port; no path)',
      );
  }
  if (typeof c.corsCredentials !== 'boolean')
    throw new ConfigError('corsCredentials', c.corsCredentials, 'expected true or false');
  if (!Array.isArray(c.allowedHosts))
    throw new ConfigError('allowedHosts', c.allowedHosts, 'expected a list of host names');
  for (const h of c.allowedHosts) {
    if (typeof h !== 'string' || parseHostPort(h) === undefined) {
      throw new ConfigError(
        'allowedHosts',
        h,
        'expected a host name with an optional port, like lab.example or lab.example:8080 (no scheme, no path)',
      );
    }
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
    throw new ConfigError(
      'workers',
      c.workers,
      'several workers need the Redis feed (FEED_URL=redis://127.0.0.1:6379/0 or --feed): the memory feed lives in one process, so each worker would serve a different history',
    );
  }
  if (!Array.isArray(c.network) || !c.network.every((n) => typeof n === 'string')) {
    throw new ConfigError('network', c.network, 'expected a list of network profile names');
  }
  // Names as the profiles module spells them (lower case, repeats dropped, `all` expanded).
  const profiles = c.network.length === 0 ? [] : parseNetworkList(c.network.join(','), 'network');
  const network = profiles.map((p) => p.name);
  const relays = profiles.filter((p) => !p.direct).length;
  if (c.port !== 0 && c.port + relays > 65_535) {
    throw new ConfigError(
      'network',
      network.join(','),
      `${relays} relays on port ${c.port} + 1 and up go past 65535: use a lower PORT, or PORT=0`,
    );
  }
  if (typeof c.publishToken !== 'string') throw new ConfigError('publishToken', c.publishToken, 'expected a string');
  // A set token is checked on every bind. It is a secret: errors show its length, never the token.
  if (c.publishToken !== '' && c.publishToken.trim() !== c.publishToken) {
    const why =
      c.publishToken.trim() === ''
        ? 'is only whitespace: set a real token or leave it unset'
        : 'has leading or trailing whitespace (a copy-paste slip?): remove it';
    throw new ConfigError('PUBLISH_TOKEN', '***', why);
  }
  if (c.publishToken !== '' && c.publishToken.length < MIN_PUBLISH_TOKEN_LENGTH) {
    const why = `is ${c.publishToken.length} characters; use at least ${MIN_PUBLISH_TOKEN_LENGTH} (e.g. openssl rand -base64 24)`;
    throw new ConfigError('PUBLISH_TOKEN', '***', why);
  }
  if (!isLoopback(c.host) && c.publishToken === '') {
    throw new ConfigError(
      'PUBLISH_TOKEN',
      '',
      `HOST=${c.host} is not a loopback address: set PUBLISH_TOKEN so that only holders of the token can publish`,
    );
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(c.logLevel)) {
    throw new ConfigError('logLevel', c.logLevel, 'expected fatal, error, warn, info, debug, trace or silent');
  }
  return Object.freeze({
    ...c,
    allowedOrigins: Object.freeze([...c.allowedOrigins]),
    allowedHosts: Object.freeze([...c.allowedHosts]),
    network: Object.freeze(network),
  });
}

/** A URL for printing: credentials masked. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^@/]*)@/, '//***@');

/** The configuration for printing: the token and any Redis credentials are masked. */
export function describeConfig(c: Readonly<Config>): Record<string, unknown> {
  return { ...c, publishToken: c.publishToken ? '***' : '', feed: redactUrl(c.feed) };
}
