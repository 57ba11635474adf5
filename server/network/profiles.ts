/**
 * Network profiles for the user-space network emulator (relay.ts): one frozen table, units in the
 * names, each row with the public source its numbers come from. A profile is plain JSON so that a
 * bench report can embed it as it was run (`NetworkProfile`, a TypeBox schema and its type, one source).
 *
 * Units: `rttMs` is the base round-trip time (each direction gets half); `jitterMs` the most a
 * segment's one-way delay may exceed its base (uniform, never below it, see relay.ts); `downKbps` /
 * `upKbps` the link rate in kbit/s (1 kbps = 1,000 bit/s, as WebPageTest and DevTools count), `null` =
 * unlimited; `loss` the probability (0–1, 1 % = 0.01) that a segment must be retransmitted;
 * `retransmitMs` how long such a segment is held. Down = server → client, up = client → server.
 */
import { ConfigError } from '../errors.js';
import type { NetworkProfile } from './profile-schema.js';

export type { NetworkProfile };

/**
 * How long a lost segment holds its direction when the caller does not say: Linux's minimum
 * retransmission timeout (`TCP_RTO_MIN`, 200 ms; RFC 6298 §2.4 asks for 1 s, Linux deliberately uses
 * less) or two round trips on long paths, where the RTO estimate (SRTT + 4·RTTVAR) is above that floor.
 * Fast retransmit can recover in about one RTT when enough data follows the loss; a request–response
 * feed often has nothing behind the lost segment, so the timeout is the honest default.
 */
export const RETRANSMIT_MIN_MS = 200;
export const defaultRetransmitMs = (rttMs: number): number => Math.max(RETRANSMIT_MIN_MS, 2 * rttMs);

type Row = Omit<NetworkProfile, 'name' | 'retransmitMs' | 'direct'> & { direct?: true };

const row = (name: string, r: Row): NetworkProfile =>
  Object.freeze({
    name,
    direct: r.direct ?? false,
    rttMs: r.rttMs,
    jitterMs: r.jitterMs,
    downKbps: r.downKbps,
    upKbps: r.upKbps,
    loss: r.loss,
    retransmitMs: defaultRetransmitMs(r.rttMs),
    source: r.source,
  });

const WPT = 'WebPageTest connectivity presets (www/settings/connectivity.ini.sample)';

/** The named profiles, in the order `all` runs them (fastest first). */
export const PROFILES = Object.freeze({
  loopback: row('loopback', {
    direct: true,
    rttMs: 0,
    jitterMs: 0,
    downKbps: null,
    upKbps: null,
    loss: 0,
    source: 'No relay: straight to the server over 127.0.0.1 (the kernel loopback, RTT of tens of µs)',
  }),
  lan: row('lan', {
    rttMs: 1,
    jitterMs: 0,
    downKbps: 1_000_000,
    upKbps: 1_000_000,
    loss: 0,
    source:
      'Gigabit Ethernet through one switch (IEEE 802.3ab); ping RTT 0.1–1 ms, rounded up to 1 ms, the relay timer resolution',
  }),
  broadband: row('broadband', {
    rttMs: 28,
    jitterMs: 0,
    downKbps: 5_000,
    upKbps: 1_000,
    loss: 0,
    source: `${WPT}: "Cable", 5 Mbps down, 1 Mbps up, 28 ms RTT`,
  }),
  '4g': row('4g', {
    rttMs: 170,
    jitterMs: 0,
    downKbps: 9_000,
    upKbps: 9_000,
    loss: 0,
    source: `${WPT}: "4G", 9 Mbps down, 9 Mbps up, 170 ms RTT`,
  }),
  '3g': row('3g', {
    rttMs: 300,
    jitterMs: 0,
    downKbps: 1_600,
    upKbps: 768,
    loss: 0,
    source: `${WPT}: "3G", 1.6 Mbps down, 768 kbps up, 300 ms RTT`,
  }),
  intercontinental: row('intercontinental', {
    rttMs: 180,
    jitterMs: 5,
    downKbps: null,
    upKbps: null,
    loss: 0,
    source:
      'WonderProxy city-to-city pings (wonderproxy.com/blog/miles-per-milisecond; live: wondernetwork.com/pings): Paris–Fremont 175–176 ms, ' +
      'Milan–Fremont 171 ms; 5 ms jitter for queueing on the way; rate unlimited: this profile isolates distance, the last mile is the others',
  }),
  'lossy-wifi': row('lossy-wifi', {
    rttMs: 20,
    jitterMs: 10,
    downKbps: 20_000,
    upKbps: 10_000,
    loss: 0.01,
    source:
      'Illustrative, not a published preset (issue 12): a busy 2.4 GHz Wi-Fi, 20 ms RTT, 10 ms jitter, 1 % segment loss, 20/10 Mbps',
  }),
} satisfies Record<string, NetworkProfile>);

export type ProfileName = keyof typeof PROFILES;
const NAMES = Object.keys(PROFILES) as ProfileName[];

const isProfileName = (s: string): s is ProfileName => Object.hasOwn(PROFILES, s);

/**
 * `loopback,broadband,4g` → those profiles in that order (repeats dropped); `all` → every profile.
 * @param flag the option the list came from, named in the error.
 */
export function parseNetworkList(raw: string, flag = '--network'): NetworkProfile[] {
  const names = raw.split(',').map((s) => s.trim().toLowerCase());
  if (names.length === 1 && names[0] === 'all') return NAMES.map((n) => PROFILES[n]);
  const out: NetworkProfile[] = [];
  for (const name of names) {
    if (name === '') throw new ConfigError(flag, raw, `expected a comma-separated list of ${NAMES.join(', ')}, or all`);
    if (!isProfileName(name))
      throw new ConfigError(flag, raw, `unknown network "${name}"; expected ${NAMES.join(', ')}, or all`);
    if (!out.includes(PROFILES[name])) out.push(PROFILES[name]);
  }
  return out;
}

/** A value from a flag (string) or from code (number); kbps also take null / `unlimited`. */
type Raw = number | string | undefined;

export interface CustomProfileInput {
  /** @default 0 */
  rttMs?: Raw;
  /** @default 0 */
  jitterMs?: Raw;
  /** kbit/s; null or `unlimited` = no rate limit. @default null */
  downKbps?: Raw | null;
  /** @default null */
  upKbps?: Raw | null;
  /** Fraction 0–1 (1 % = 0.01). @default 0 */
  loss?: Raw;
  /** @default max(200 ms, 2 × rttMs) */
  retransmitMs?: Raw;
  /** @default 'custom' */
  name?: string | undefined;
}

/** The most any delay may be: a minute is already no network a transport can be measured on. */
const MAX_MS = 60_000;
/** 10 Gbit/s: beyond it the relay itself, not the profile, is the bottleneck. */
const MAX_KBPS = 10_000_000;

function num(flag: string, v: Raw, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return v;
  const s = v.trim();
  // Number('') is 0 and Number('0x10') is 16: accept plain decimals only.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) throw new ConfigError(flag, v, 'expected a number');
  return Number(s);
}

function ms(flag: string, v: Raw, fallback: number, min: number): number {
  const n = num(flag, v, fallback);
  if (!Number.isFinite(n) || n < min || n > MAX_MS)
    throw new ConfigError(flag, v, `expected milliseconds from ${min} to ${MAX_MS}`);
  return n;
}

function kbps(flag: string, v: Raw | null): number | null {
  if (v === null || v === undefined || (typeof v === 'string' && v.trim().toLowerCase() === 'unlimited')) return null;
  const n = num(flag, v, 0);
  if (!Number.isFinite(n) || n < 1 || n > MAX_KBPS)
    throw new ConfigError(flag, v, `expected kbit/s from 1 to ${MAX_KBPS}, or unlimited`);
  return n;
}

/**
 * A profile from flags (`--rtt-ms --jitter-ms --down-kbps --up-kbps --loss --retransmit-ms`); each
 * bad value throws a ConfigError naming its flag and showing the value.
 */
export function customProfile(input: CustomProfileInput): NetworkProfile {
  const rttMs = ms('--rtt-ms', input.rttMs, 0, 0);
  const jitterMs = ms('--jitter-ms', input.jitterMs, 0, 0);
  const downKbps = kbps('--down-kbps', input.downKbps);
  const upKbps = kbps('--up-kbps', input.upKbps);
  const loss = num('--loss', input.loss, 0);
  if (!Number.isFinite(loss) || loss < 0 || loss > 1)
    throw new ConfigError('--loss', input.loss, 'expected a fraction from 0 to 1 (1 % = 0.01)');
  const retransmitMs = ms('--retransmit-ms', input.retransmitMs, defaultRetransmitMs(rttMs), 1);
  return Object.freeze({
    name: input.name ?? 'custom',
    direct: false,
    rttMs,
    jitterMs,
    downKbps,
    upKbps,
    loss,
    retransmitMs,
    source: 'command line',
  });
}

const rate = (kbps: number | null): string =>
  kbps === null
    ? 'unlimited'
    : kbps >= 1000
      ? `${Number((kbps / 1000).toPrecision(4))} Mbps`
      : `${Number(kbps.toPrecision(4))} kbps`;

/** One line for logs and reports: `4g: RTT 170 ms, jitter 0 ms, down 9 Mbps, up 9 Mbps, loss 0 %`. */
export function describeProfile(p: NetworkProfile): string {
  if (p.direct) return `${p.name}: direct, no relay`;
  const loss =
    p.loss === 0 ? 'loss 0 %' : `loss ${Number((p.loss * 100).toPrecision(3))} % (held ${p.retransmitMs} ms)`;
  return `${p.name}: RTT ${p.rttMs} ms, jitter ${p.jitterMs} ms, down ${rate(p.downKbps)}, up ${rate(p.upKbps)}, ${loss}`;
}
