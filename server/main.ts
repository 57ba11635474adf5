/**
 * The CLI: read settings (env vars and flags), build the app, listen, print the URL and the active
 * configuration, and close gracefully on SIGINT/SIGTERM. With `--workers N` (Redis feed only) the
 * process becomes a node:cluster primary that runs N such workers on one port.
 */
import cluster from 'node:cluster';
import { buildApp } from './app.js';
import { runPrimary } from './cluster.js';
import { describeConfig, readSettings, resolveConfig } from './config.js';
import { ConfigError } from './errors.js';

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
  if (clustered && cluster.isPrimary) {
    runPrimary({
      workers: config.workers,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      onListening: (url, workers) => {
        console.log(`Transport Lab listening on ${url}  (dashboard ${url}/, stats ${url}/stats), ${workers} workers`);
        console.log(`configuration: ${JSON.stringify(describeConfig(config))}`);
      },
    });
    return;
  }
  let app;
  try {
    app = await buildApp({ config, logger: config.logLevel === 'silent' ? false : { level: config.logLevel } });
  } catch (err) {
    // A Redis feed that cannot be reached: say which and why, and stop.
    console.error(`transport-lab: ${(err as Error).message}`);
    process.exit(1);
  }
  const address = await app.listen({ host: config.host, port: config.port });
  if (!clustered) {
    const url = address.replace('://[::1]', '://localhost');
    console.log(`Transport Lab listening on ${url}  (dashboard ${url}/, stats ${url}/stats)`);
    console.log(`feed: ${app.lab.feed.kind} (epoch ${app.lab.feed.info().epoch}); configuration: ${JSON.stringify(describeConfig(config))}`);
  }

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    if (!clustered) console.log(`${signal}: closing (answering polls, ending streams, closing WebSockets with 1001)`);
    const force = setTimeout(() => {
      console.error(`still open after ${config.shutdownTimeoutMs} ms: exiting anyway`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    app.close().then(
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
