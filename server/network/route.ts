/**
 * The lab over emulated networks (`--network 4g,3g`): main.ts starts one relay (server/network/relay.ts)
 * per profile in front of this server, and GET /network tells the dashboard which one a request came
 * through and where the others are.
 *
 * GET /network → { current: NetworkProfile | null, available: [{ name, url, profile }] }
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
import { type NetworkProfile, PROFILES, parseNetworkList } from './profiles.js';

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
  /** The direct server first, then every relay in the order of `--network`. */
  available: NetworkChoice[];
}

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
  return { current, available };
}

export async function networkRoutes(app: FastifyInstance, opts: { links: () => readonly NetworkLink[]; host: string }) {
  app.get('/network', async (request, reply): Promise<NetworkAnswer> => {
    reply.header('cache-control', 'no-store');
    const address = app.server.address();
    return networkAnswer({
      host: request.headers.host,
      protocol: request.protocol === 'https' ? 'https' : 'http',
      directPort: address !== null && typeof address === 'object' ? address.port : undefined,
      fallbackHost: opts.host,
      links: opts.links(),
    });
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
