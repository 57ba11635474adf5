/**
 * The lab over emulated networks (`--network 4g,3g`): main.ts starts one relay (server/network/relay.ts)
 * per profile in front of this server, and GET /network tells the dashboard which one a request came
 * through and where the others are.
 *
 * GET  /network       → { current: NetworkProfile | null, available: [{ name, url, profile }], onDemand: [profile] }
 * POST /network/<name> → 201 { name, url, profile }: a relay for that profile, started now (200: it ran already)
 *
 * Relays on demand: a single-process lab (plain `npm start`) starts the relay of a profile the first time
 * someone asks for it, on port + 1 + the profile's place in PROFILES when the port is fixed (any free port
 * when that one is taken, or the port is 0), and closes it when the server closes. Starting one follows
 * the publish token rule, as changing the publisher does. A lab with workers cannot: a relay in one worker
 * would be unknown to the others, so its relays are the ones `--network` started (409
 * LAB_ERR_NETWORK_FIXED).
 *
 * The relay forwards bytes unchanged, so a browser that opened `http://127.0.0.1:3001/` sends
 * `Host: 127.0.0.1:3001` to this server: the Host header's port names the relay (RFC 9110 §7.2: Host
 * is the authority the client connected to). Any other port, the server's own included, is the direct
 * server (`current: null`). Links keep the name the browser used (localhost, 127.0.0.1) and change the port.
 *
 * With `--workers N` only the primary runs relays; it tells every worker which ports they listen on
 * (one IPC message, again to every replacement worker once it listens).
 */
import type { Worker } from 'node:cluster';
import type { FastifyInstance } from 'fastify';
import { parseHostPort } from '../config.js';
import { HttpErrors } from '../errors.js';
import { checkToken, mayPublish } from '../token.js';
import { type NetworkProfile, PROFILES, parseNetworkList } from './profiles.js';
import { Relay } from './relay.js';

/** One relay in front of this server: the profile it emulates and the port it listens on. */
export interface NetworkLink {
  readonly profile: NetworkProfile;
  readonly port: number;
}

/** One way to reach the lab: the direct server (the `loopback` profile) or one relay. */
export interface NetworkChoice {
  name: string;
  /** The dashboard through it, e.g. `http://127.0.0.1:3001/`. */
  url: string;
  profile: NetworkProfile;
}

export interface NetworkAnswer {
  /** The profile of the relay this request came through; null: straight to the server. */
  current: NetworkProfile | null;
  /** The direct server first, then every relay in the order of `--network`, then those started on demand. */
  available: NetworkChoice[];
  /** Profiles without a relay yet that POST /network/<name> would start; empty when this server cannot. */
  onDemand: NetworkProfile[];
}

/** Every profile a relay can emulate, in PROFILES order: what on-demand relays are numbered by. */
const RELAYABLE: readonly NetworkProfile[] = Object.freeze(Object.values(PROFILES).filter((p) => !p.direct));

/** The profiles that need a relay, in order: `loopback` is the server itself. */
export function relayProfiles(names: readonly string[]): NetworkProfile[] {
  return names.length === 0 ? [] : parseNetworkList(names.join(','), 'network').filter((p) => !p.direct);
}

/** Where to connect to a server listening on `host`: the loopback address when it listens on every address. */
export const connectHost = (host: string): string => (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host);

/** `4g` → "a 4G-like link", `intercontinental` → "an intercontinental-like link". */
export function linkPhrase(profile: NetworkProfile): string {
  const label = /^(\d+g|lan)$/i.test(profile.name) ? profile.name.toUpperCase() : profile.name;
  return `${/^[aeiou]/i.test(label) ? 'an' : 'a'} ${label}-like link`;
}

export interface AnswerInput {
  /** The request's Host header, if any. */
  host: string | undefined;
  protocol: 'http' | 'https';
  /** The port the server itself listens on; undefined when it does not (inject). */
  directPort: number | undefined;
  /** The name to use when the Host header gives none: the server's own address. */
  fallbackHost: string;
  links: readonly NetworkLink[];
  /** Whether this server starts relays on demand (a single process). */
  onDemand?: boolean;
}

/** The /network answer for one request. */
export function networkAnswer(input: AnswerInput): NetworkAnswer {
  const parsed = input.host === undefined ? undefined : parseHostPort(input.host);
  const defaultPort = input.protocol === 'https' ? 443 : 80;
  const port = parsed === undefined ? undefined : parsed.port === undefined ? defaultPort : Number(parsed.port);
  const fallback = connectHost(input.fallbackHost);
  const name = parsed?.name ?? (fallback.includes(':') ? `[${fallback}]` : fallback);
  const url = (p: number) => `${input.protocol}://${name}:${p}/`;
  const current = input.links.find((l) => l.port === port)?.profile ?? null;
  // Inject (no socket): the direct port is the one this request came to, when it came to no relay.
  const directPort = input.directPort ?? (current === null ? port : undefined);
  const available: NetworkChoice[] = [];
  if (directPort !== undefined)
    available.push({ name: PROFILES.loopback.name, url: url(directPort), profile: PROFILES.loopback });
  for (const l of input.links) available.push({ name: l.profile.name, url: url(l.port), profile: l.profile });
  const onDemand = input.onDemand ? RELAYABLE.filter((p) => !input.links.some((l) => l.profile.name === p.name)) : [];
  return { current, available, onDemand };
}

export interface NetworkRouteOptions {
  /** The relays `--network` started (main.ts). */
  links: () => readonly NetworkLink[];
  /** The address the server listens on (config.host): relays on demand listen there too. */
  host: string;
  /** config.port: when fixed, relays on demand take the ports after the server's; 0 gives them any free port. */
  port: number;
  /** The publish token (config.publishToken): starting a relay follows its rule. */
  token: string;
  /** Start relays on POST /network/<name> (a single process); false: 409 LAB_ERR_NETWORK_FIXED. */
  onDemand: boolean;
}

export async function networkRoutes(app: FastifyInstance, opts: NetworkRouteOptions) {
  /** Relays started on demand, by profile name (a promise while one starts, so two requests start one). */
  const started = new Map<string, Promise<Relay>>();
  const running: Relay[] = [];
  const links = (): NetworkLink[] => [...opts.links(), ...running.map((r) => ({ profile: r.profile, port: r.port }))];
  const listeningPort = (): number | undefined => {
    const address = app.server.address();
    return address !== null && typeof address === 'object' ? address.port : undefined;
  };
  const answer = (request: import('fastify').FastifyRequest): NetworkAnswer =>
    networkAnswer({
      host: request.headers.host,
      protocol: request.protocol === 'https' ? 'https' : 'http',
      directPort: listeningPort(),
      fallbackHost: opts.host,
      links: links(),
      onDemand: opts.onDemand,
    });
  // Before the server closes its connections: a relay resets the ones it carries and stops listening.
  app.addHook('preClose', async () => {
    await Promise.allSettled([...started.values()].map(async (r) => (await r).close()));
  });

  async function startRelay(profile: NetworkProfile, target: number): Promise<Relay> {
    const start = (listenPort: number) =>
      Relay.start({
        target: { host: connectHost(opts.host), port: target },
        profile,
        listenHost: opts.host,
        listenPort,
      });
    const fixed = opts.port === 0 ? 0 : target + 1 + RELAYABLE.indexOf(profile);
    const relay = await start(fixed).catch((err: NodeJS.ErrnoException) => {
      if (fixed !== 0 && err.code === 'EADDRINUSE') return start(0);
      throw err;
    });
    running.push(relay);
    app.log.info(`the dashboard over ${linkPhrase(profile)}: port ${relay.port} (started on request)`);
    return relay;
  }

  app.get('/network', async (request, reply): Promise<NetworkAnswer> => {
    reply.header('cache-control', 'no-store');
    return answer(request);
  });

  app.post('/network/:name', async (request, reply): Promise<NetworkChoice> => {
    reply.header('cache-control', 'no-store');
    if (!mayPublish(checkToken(opts.token, request))) throw new HttpErrors.UNAUTHORIZED();
    const { name } = request.params as { name: string };
    const profile = Object.hasOwn(PROFILES, name) ? PROFILES[name as keyof typeof PROFILES] : undefined;
    if (profile === undefined)
      throw new HttpErrors.UNKNOWN_NETWORK(JSON.stringify(name), Object.keys(PROFILES).join(', '));
    const has = (a: NetworkAnswer) => a.available.find((c) => c.name === profile.name);
    const before = has(answer(request));
    if (before) return before;
    const target = listeningPort();
    if (!opts.onDemand || target === undefined) {
      const names = opts.links().map((l) => l.profile.name);
      throw new HttpErrors.NETWORK_FIXED(names.join(', ') || 'none', [...names, profile.name].join(','));
    }
    let relay = started.get(profile.name);
    if (!relay) {
      relay = startRelay(profile, target);
      started.set(profile.name, relay);
      relay.catch(() => started.delete(profile.name));
    }
    await relay;
    reply.code(201);
    return has(answer(request))!;
  });
}

/** The IPC message a cluster primary sends its workers. */
interface LinksMessage {
  type: 'lab:network-links';
  links: NetworkLink[];
}

/** In a primary: tells `worker` which relays run (a plain JSON copy crosses the IPC channel). */
export function sendLinks(worker: Worker, links: readonly NetworkLink[]): void {
  if (worker.isConnected()) worker.send({ type: 'lab:network-links', links: [...links] } satisfies LinksMessage);
}

/** In a worker: the relays the primary announced so far (none until it does). */
export function linksFromPrimary(): () => readonly NetworkLink[] {
  let links: readonly NetworkLink[] = [];
  process.on('message', (m: LinksMessage | undefined) => {
    if (m?.type === 'lab:network-links') links = Object.freeze(m.links);
  });
  return () => links;
}
