/**
 * The CLI: read settings (env vars and flags), build the app, listen, print the URL and the active
 * configuration, and close gracefully on SIGINT/SIGTERM. With `--workers N` (Redis feed only) the
 * process becomes a node:cluster primary that runs N such workers on one port.
 *
 * With `--network 4g,3g` the process that listens (the primary, with workers) also starts one relay
 * per profile after listen, prints each one's URL, and closes them first on shutdown.
 */
import cluster from 'node:cluster';
import { buildApp, type HttpProtocol } from './app.js';
import { runPrimary } from './cluster.js';
import { type Config, describeConfig, readSettings, resolveConfig } from './config.js';
import { ConfigError } from './errors.js';
import { describeProfile } from './network/profiles.js';
import { Relay } from './network/relay.js';
import { writeSelfSigned } from './tls.js';
import {
  connectHost,
  linkPhrase,
  linksFromPrimary,
  type NetworkLink,
  relayProfiles,
  sendLinks,
} from './network/route.js';

/** The dashboard's report model (report/model.ts), loaded on the first request for one: start-up stays light. */
const loadedReportModel = async (report: never): Promise<unknown> =>
  (await import('../report/model.js')).reportModel(report);

/**
 * One relay per profile of `--network` in front of the server at `labUrl`: on port + 1, + 2, … when
 * the port is fixed, on any free port when it is 0. Prints each URL. All or none: a relay that cannot
 * listen closes the ones already started and throws, naming the profile and the port.
 */
async function startRelays(config: Readonly<Config>, labUrl: string): Promise<Relay[]> {
  const lab = new URL(labUrl);
  const relays: Relay[] = [];
  for (const [i, profile] of relayProfiles(config.network).entries()) {
    const listenPort = config.port === 0 ? 0 : config.port + 1 + i;
    try {
      relays.push(
        await Relay.start({
          target: { host: connectHost(config.host), port: Number(lab.port) },
          profile,
          listenHost: config.host,
          listenPort,
        }),
      );
    } catch (err) {
      await Promise.all(relays.map((r) => r.close()));
      throw new Error(`cannot start the ${profile.name} relay on port ${listenPort}: ${(err as Error).message}`);
    }
    const url = new URL(lab);
    url.port = String(relays[i]!.port);
    console.log(`the dashboard over ${linkPhrase(profile)}: ${url.href}  (${describeProfile(profile)})`);
  }
  return relays;
}

const PROTOCOL_PHRASES: Record<HttpProtocol, string> = {
  'http/1.1': 'HTTP/1.1, cleartext',
  'https/1.1': 'HTTPS: HTTP/1.1 over TLS',
  h2: 'HTTP/2 over TLS, HTTP/1.1 on the same port for WebSocket and clients without h2',
};
const protocolPhrase = (p: HttpProtocol): string => PROTOCOL_PHRASES[p];

/** The whole configuration, one JSON line, at LOG_LEVEL debug or trace only: the start-up line says what a user needs. */
function printConfiguration(config: Readonly<Config>): void {
  if (config.logLevel === 'debug' || config.logLevel === 'trace')
    console.log(`configuration: ${JSON.stringify(describeConfig(config))}`);
}

const linksOf = (relays: readonly Relay[]): NetworkLink[] => relays.map((r) => ({ profile: r.profile, port: r.port }));

async function main(): Promise<void> {
  let config;
  try {
    config = resolveConfig(readSettings(process.env, process.argv.slice(2)));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`transport-lab: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  const clustered = config.workers > 1;
  if (clustered && cluster.isPrimary && (config.tls || config.http2) && config.tlsCert === '') {
    // Every worker must serve the same certificate: the primary makes the self-signed one and hands
    // it to the workers as TLS_CERT/TLS_KEY files of its own, removed when it exits.
    const files = await writeSelfSigned();
    process.env.TLS_CERT = files.cert;
    process.env.TLS_KEY = files.key;
    console.log(`TLS certificate: ${files.source}`);
  }
  if (clustered && cluster.isPrimary) {
    // The relays live here, not in the workers. Registered before runPrimary's own handlers, so on
    // SIGINT/SIGTERM they stop listening and reset their connections before the workers are told to close.
    let relays: Relay[] = [];
    let links: NetworkLink[] = [];
    const closeRelays = () => void Promise.all(relays.map((r) => r.close()));
    process.once('SIGINT', closeRelays);
    process.once('SIGTERM', closeRelays);
    // A replacement worker learns the relays once it listens (by then it has its IPC listener).
    cluster.on('listening', (w) => {
      if (links.length > 0) sendLinks(w, links);
    });
    runPrimary({
      workers: config.workers,
      scheme: config.tls || config.http2 ? 'https' : 'http',
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      onListening: (url, workers) => {
        console.log(
          `Transport Lab listening on ${url}  (${config.feed === 'memory' ? 'memory' : 'Redis'} feed, ${workers} workers; dashboard ${url}/, stats ${url}/stats)`,
        );
        printConfiguration(config);
        startRelays(config, url).then(
          (started) => {
            relays = started;
            links = linksOf(started);
            for (const w of Object.values(cluster.workers ?? {})) if (w) sendLinks(w, links);
          },
          (err: unknown) => {
            console.error(`transport-lab: ${(err as Error).message}`);
            // runPrimary closes the workers gracefully and exits 0; this start-up failed, so exit 1.
            process.on('exit', () => {
              process.exitCode = 1;
            });
            process.kill(process.pid, 'SIGTERM');
          },
        );
      },
    });
    return;
  }
  // A worker hears of the primary's relays over IPC; a single process fills the list itself.
  let links: readonly NetworkLink[] = [];
  const networks = clustered ? linksFromPrimary() : () => links;
  let app;
  try {
    app = await buildApp({
      config,
      networks,
      // A single process starts a relay for any profile the dashboard asks for (plain `npm start`).
      networksOnDemand: !clustered,
      reportModel: loadedReportModel,
      logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    });
  } catch (err) {
    // A Redis feed that cannot be reached: say which and why, and stop.
    console.error(`transport-lab: ${(err as Error).message}`);
    process.exit(1);
  }
  const address = await app.listen({ host: config.host, port: config.port });
  const url = address.replace('://[::1]', '://localhost');
  if (!clustered) {
    const certificate = app.lab.certificate ? `; certificate: ${app.lab.certificate}` : '';
    console.log(
      `Transport Lab listening on ${url}  (${protocolPhrase(app.lab.protocol)}; ${app.lab.feed.kind} feed${certificate}; dashboard ${url}/, stats ${url}/stats)`,
    );
    printConfiguration(config);
  }
  let relays: Relay[] = [];
  if (!clustered) {
    try {
      relays = await startRelays(config, url);
    } catch (err) {
      console.error(`transport-lab: ${(err as Error).message}`);
      await app.close();
      process.exit(1);
    }
    links = linksOf(relays);
  }

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    if (!clustered) {
      const first = relays.length > 0 ? `the ${relays.length === 1 ? 'relay' : `${relays.length} relays`}, then ` : '';
      console.log(`${signal}: closing (${first}answering polls, ending streams, closing WebSockets with 1001)`);
    }
    const force = setTimeout(() => {
      console.error(`still open after ${config.shutdownTimeoutMs} ms: exiting anyway`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    // Relays first: they stop accepting and reset their connections, so no client reaches the app
    // through them while it closes.
    Promise.all(relays.map((r) => r.close()))
      .then(() => app.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

await main();
