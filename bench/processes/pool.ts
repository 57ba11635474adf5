/**
 * Every child process of one bench run, owned in one place: one server process per server
 * configuration (targets that share a configuration share it), one relay process for every network
 * that is not direct, one nginx per server a proxied scenario needs, and any other process a stage
 * starts (the counted servers under callgrind). `stop()` stops them all; a run's stages never stop one.
 */
import { join } from 'node:path';
import type { NetworkProfile } from '../../server/network/profiles.js';
import type { LabSetup, Target } from '../plan/targets.js';
import { processKey } from '../plan/targets.js';
import { Nginx } from './nginx.js';
import { type RelayLink, type RelayProcess, startRelayProcess } from './relay-process.js';
import { type ServerHandle, type ServerPool, startServer } from './server-process.js';

/** The network a run's clients reach a server over, and its relay (none when the profile is direct). */
export interface NetworkRoute {
  profile: NetworkProfile;
  relay: RelayLink | undefined;
}

export interface ProcessesOptions {
  lab: LabSetup;
  /** --profile: each server process writes its CPU profile into a folder of its own under this one. */
  profileRoot?: string | undefined;
  /**
   * Test hook: server processes shared with other runs (ServerPool); never with --profile (a profiled
   * process is the run's own), nor for the lab on Redis (the run drops its keys).
   */
  serverPool?: ServerPool | undefined;
  /** Test hook: the relays forward without delay (the sanity check must call every run over them INVALID). */
  brokenRelay?: boolean | undefined;
}

export class Processes {
  readonly #opts: ProcessesOptions;
  readonly #servers = new Map<string, Promise<ServerHandle>>();
  readonly #pooled = new Set<string>();
  #relays: Promise<RelayProcess> | undefined;
  readonly #proxies = new Map<string, Promise<Nginx>>();
  readonly #others: Promise<{ stop(): Promise<unknown> }>[] = [];

  constructor(opts: ProcessesOptions) {
    this.#opts = opts;
  }

  /** The server process of `t`, started on first use. */
  server(t: Target): Promise<ServerHandle> {
    const key = processKey(t);
    let started = this.#servers.get(key);
    if (!started) {
      const { profileRoot, serverPool, lab } = this.#opts;
      const dir = profileRoot
        ? join(profileRoot, `${t.server}-${t.protocol.replace('/', '')}-${this.#servers.size + 1}`)
        : undefined;
      const start = () => startServer(t.process.script, t.process.options, dir ? { profileDir: dir } : {});
      const pool =
        dir === undefined && t.server !== 'lab-redis' && !(t.server === 'lab' && lab.feed !== 'memory')
          ? serverPool
          : undefined;
      if (pool) this.#pooled.add(key);
      started = pool ? pool.get(key, start) : start();
      this.#servers.set(key, started);
    }
    return started;
  }

  /** The relay process, started on first use (one for the whole run; it answers in order). */
  relays(): Promise<RelayProcess> {
    if (!this.#relays) {
      this.#relays = startRelayProcess({ delay: !this.#opts.brokenRelay });
      this.#relays.catch(() => {}); // awaited where used (or in stop): a failed start is reported there
    }
    return this.#relays;
  }

  /** How `t`'s clients reach it over `profile`: directly, or through a relay opened once per pair. */
  async network(t: Target, profile: NetworkProfile): Promise<NetworkRoute> {
    if (profile.direct) return { profile, relay: undefined };
    const relays = this.relays();
    const server = await this.server(t);
    return {
      profile,
      relay: await (await relays).open(
        server.port,
        profile,
        new URL(server.baseUrl).protocol === 'https:' ? 'https' : 'http',
      ),
    };
  }

  /** nginx in front of `t`'s server process (one per process), for proxied scenarios. */
  async proxy(t: Target): Promise<{ baseUrl: string }> {
    const key = processKey(t);
    let proxy = this.#proxies.get(key);
    if (!proxy) {
      proxy = this.server(t).then((s) => Nginx.start({ upstreams: [s.port] }));
      this.#proxies.set(key, proxy);
    }
    return { baseUrl: (await proxy).url };
  }

  /** A process a stage started itself, stopped with the others. */
  own<P extends { stop(): Promise<unknown> }>(started: Promise<P>): Promise<P> {
    this.#others.push(started);
    return started;
  }

  /** Stops every process of the run (pooled servers stay with their pool). */
  async stop(): Promise<void> {
    const stop = async (p: Promise<{ stop(): Promise<unknown> }> | undefined) =>
      void (await (await p?.catch(() => undefined))?.stop());
    await Promise.all([...this.#proxies.values()].map(stop));
    await Promise.all([...this.#servers].map(([key, h]) => (this.#pooled.has(key) ? undefined : stop(h))));
    await stop(this.#relays);
    await Promise.all(this.#others.map(stop));
  }
}
