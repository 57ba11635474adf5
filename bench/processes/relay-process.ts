/**
 * The network emulator on the subscriber path: the bench's clients connect to a relay
 * (server/network/relay.ts) in front of the server under test; the publisher and /stats go straight to
 * the server, as a publisher inside the data centre would. The relays run in a child process of their
 * own (this file, forked like the servers: server-process.ts `forkChild`), so the relay's timers never
 * share an event loop with the clients it delays. One process holds one relay per (server, network).
 *
 * IPC, runner → child: `{type:'open', key, port, profile, delay}` → `{type:'opened', key, port}` (or
 * `error`); `{type:'reset', key}` → `{type:'reset-done'}` (lateness restarts: the measured window opens);
 * `{type:'lateness', key}` → `{type:'lateness', lateness}`; `{type:'stop'}` closes every relay and exits.
 *
 * The relay measures itself (`lateness`: actual − intended release of every segment), and two pure rules
 * below turn a relay that did not do its job into an INVALID run.
 */
import { fileURLToPath } from 'node:url';
import type { NetworkProfile } from '../../server/network/profiles.js';
import { Relay, type LatenessSummary } from '../../server/network/relay.js';
import { forkChild } from './server-process.js';

type ToRelay =
  | { type: 'open'; key: string; port: number; profile: NetworkProfile; delay: boolean }
  | { type: 'reset'; key: string }
  | { type: 'lateness'; key: string }
  | { type: 'stop' };
type FromRelay =
  | { type: 'ready' }
  | { type: 'opened'; key: string; port: number; error?: string }
  | { type: 'reset-done' }
  | { type: 'lateness'; lateness: LatenessSummary };

/**
 * Relay lateness p99 above which a run is INVALID: max(5 ms, 10 % of the one-way delay). 5 ms is a few
 * of the relay's 1 ms timer ticks plus a busy core's scheduling; beyond 10 % of the delay it emulates,
 * the relay, not the profile, sets the latency.
 */
export const RELAY_LATENESS_LIMIT = Object.freeze({ floorMs: 5, oneWayFraction: 0.1 });

export const oneWayMs = (p: NetworkProfile): number => p.rttMs / 2;

export const relayLatenessLimitMs = (p: NetworkProfile): number =>
  Math.max(RELAY_LATENESS_LIMIT.floorMs, RELAY_LATENESS_LIMIT.oneWayFraction * oneWayMs(p));

/** Why a run over `p` is INVALID by the relay's own lateness, or undefined. */
export function relayLatenessProblem(p: NetworkProfile, lateness: LatenessSummary | undefined): string | undefined {
  if (p.direct || lateness?.p99Ms === null || lateness === undefined) return undefined;
  const limit = relayLatenessLimitMs(p);
  return lateness.p99Ms > limit
    ? `the relay fell behind its schedule (lateness p99 ${lateness.p99Ms.toFixed(1)} ms > ${limit.toFixed(1)} ms): the emulator, not the network, set the latency`
    : undefined;
}

/**
 * Why a run over `p` is INVALID because it was faster than the network allows, or undefined. Every
 * delivery crosses the relay server → client at least once, after the message was published (never
 * before its schedule): latency ≥ the one-way delay, for every transport. A p50 below it means the
 * relay was bypassed or did not delay, and a broken relay must never produce a fast number.
 */
export function belowOneWayProblem(p: NetworkProfile, p50Ms: number | null): string | undefined {
  if (p.direct || p50Ms === null || p50Ms >= oneWayMs(p)) return undefined;
  return `latency p50 ${p50Ms.toFixed(2)} ms is below the one-way delay of ${p.name} (${oneWayMs(p)} ms): the relay was bypassed or did not delay`;
}

/** One relay as the runner sees it: where clients connect, and its lateness over the measured window. */
export interface RelayLink {
  readonly baseUrl: string;
  resetLateness(): Promise<void>;
  lateness(): Promise<LatenessSummary>;
}

export interface RelayProcess {
  /** A relay in front of 127.0.0.1:`port` under `profile` (opened once per pair, then reused). */
  /** `scheme`: what the server speaks (the relay forwards TCP, TLS included, untouched). */
  open(port: number, profile: NetworkProfile, scheme?: 'http' | 'https'): Promise<RelayLink>;
  stop(): Promise<void>;
}

/**
 * Forks the relay process. `delay: false` is a test hook: every relay forwards without delay while the
 * runner believes the profile, so that the sanity check (belowOneWayProblem) can be seen to catch it.
 */
export async function startRelayProcess(opts: { delay?: boolean } = {}): Promise<RelayProcess> {
  const { child } = await forkChild<ToRelay, FromRelay>(fileURLToPath(import.meta.url), 'bench relay', {
    BENCH_RELAY: '1',
  });
  const links = new Map<string, Promise<RelayLink>>();
  const open = async (
    key: string,
    port: number,
    profile: NetworkProfile,
    scheme: 'http' | 'https',
  ): Promise<RelayLink> => {
    const m = await child.ask({ type: 'open', key, port, profile, delay: opts.delay ?? true }, 'opened');
    if (m.error) throw new Error(`relay for ${key}: ${m.error}`);
    return {
      baseUrl: `${scheme}://127.0.0.1:${m.port}`,
      resetLateness: async () => void (await child.ask({ type: 'reset', key }, 'reset-done')),
      lateness: async () => (await child.ask({ type: 'lateness', key }, 'lateness')).lateness,
    };
  };
  return {
    open(port, profile, scheme = 'http') {
      const key = `${port}|${JSON.stringify(profile)}`;
      if (!links.has(key)) links.set(key, open(key, port, profile, scheme));
      return links.get(key)!;
    },
    stop: async () => void (await child.stop({ type: 'stop' })),
  };
}

if (process.env.BENCH_RELAY === '1' && import.meta.url === `file://${process.argv[1]}`) {
  const relays = new Map<string, Relay>();
  const send = (m: FromRelay) => process.send?.(m);
  const need = (key: string): Relay => {
    const r = relays.get(key);
    if (!r) throw new Error(`no relay ${key}`);
    return r;
  };
  process.on('message', (m: ToRelay) => {
    switch (m.type) {
      case 'open': {
        // The test hook's relay: same process, same sockets, no delay.
        const profile = m.delay
          ? m.profile
          : { ...m.profile, rttMs: 0, jitterMs: 0, downKbps: null, upKbps: null, loss: 0 };
        Relay.start({ target: { host: '127.0.0.1', port: m.port }, profile }).then(
          (r) => {
            relays.set(m.key, r);
            send({ type: 'opened', key: m.key, port: r.port });
          },
          (err: unknown) => send({ type: 'opened', key: m.key, port: 0, error: (err as Error).message }),
        );
        break;
      }
      case 'reset':
        need(m.key).resetLateness();
        send({ type: 'reset-done' });
        break;
      case 'lateness':
        send({ type: 'lateness', lateness: need(m.key).lateness() });
        break;
      case 'stop':
        void Promise.all([...relays.values()].map((r) => r.close())).finally(() => process.exit(0));
        break;
      default:
        m satisfies never;
    }
  });
  // The runner going away must not leave a relay behind.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}
