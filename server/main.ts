/**
 * The CLI: read settings (env vars and flags), build the app, listen, print the URL and the active
 * configuration, and close gracefully on SIGINT/SIGTERM.
 */
import { buildApp } from './app.js';
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
  const app = await buildApp({ config, logger: config.logLevel === 'silent' ? false : { level: config.logLevel } });
  const address = await app.listen({ host: config.host, port: config.port });
  const url = address.replace('://[::1]', '://localhost');
  console.log(`Transport Lab listening on ${url}  (dashboard ${url}/, stats ${url}/stats)`);
  console.log(`feed: ${app.lab.feed.kind} (epoch ${app.lab.feed.info().epoch}); configuration: ${JSON.stringify(describeConfig(config))}`);

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    console.log(`${signal}: closing (answering polls, ending streams, closing WebSockets with 1001)`);
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
