/**
 * The lab under test, in its own process (started by the runner with --expose-gc). Same buildApp as
 * `npm start`, demo publisher off, logging off. See bench/servers/protocol.ts for the IPC contract.
 */
import { buildApp } from '../../server/app.js';
import type { ConfigInput } from '../../server/config.js';
import { serveIpc } from './protocol.js';

const opts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { config?: ConfigInput };
const app = await buildApp({ config: { demo: false, logLevel: 'silent', ...opts.config } });
const address = await app.listen({ host: '127.0.0.1', port: 0 });
const port = Number(new URL(address).port);
serveIpc({ port, controlPort: port, stop: () => app.close() });
