/**
 * The lab under test, in its own process (started by the runner with --expose-gc): the same buildApp
 * as `npm start`, demo publisher off, logging off. With `workers > 1` (Redis feed) this process is a
 * node:cluster primary running that many lab workers on one port, as `npm start -- --workers N` does;
 * GC and memory then cover every worker. See bench/servers/protocol.ts for the IPC contract.
 */
import cluster from 'node:cluster';
import { buildApp } from '../../server/app.js';
import { serveStatsGather } from '../../server/cluster.js';
import type { ConfigInput } from '../../server/config.js';
import { serveIpc, type Memory } from './protocol.js';

const opts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as { config?: ConfigInput };
const config: ConfigInput = { demo: false, logLevel: 'silent', ...opts.config };
const workers = config.workers ?? 1;

const collectGarbage = (): Memory => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the server with --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  const mem = process.memoryUsage();
  return { heapUsedBytes: mem.heapUsed, rssBytes: mem.rss };
};

if (workers > 1 && cluster.isPrimary) {
  cluster.setupPrimary({ execArgv: process.execArgv });
  const forked = Array.from({ length: workers }, () => cluster.fork({ BENCH_SERVER_OPTS: JSON.stringify(opts) }));
  forked.forEach(serveStatsGather);
  const ports = await Promise.all(forked.map((w) => new Promise<number>((resolve) => w.once('listening', (a) => resolve(a.port)))));
  const gcAll = async (): Promise<Memory> => {
    const parts = await Promise.all(
      forked.map(
        (w) =>
          new Promise<Memory>((resolve) => {
            const onMessage = (m: unknown) => {
              if (typeof m === 'object' && m !== null && 'heapUsedBytes' in m) {
                w.off('message', onMessage);
                resolve(m as Memory);
              }
            };
            w.on('message', onMessage);
            w.send('gc');
          }),
      ),
    );
    return parts.reduce((a, b) => ({ heapUsedBytes: a.heapUsedBytes + b.heapUsedBytes, rssBytes: a.rssBytes + b.rssBytes }));
  };
  const stop = async () => {
    await Promise.all(forked.map((w) => new Promise((resolve) => (w.once('exit', resolve), w.process.kill('SIGTERM')))));
  };
  serveIpc({ port: ports[0]!, controlPort: ports[0]!, stop, gc: gcAll });
} else {
  const app = await buildApp({ config: workers > 1 ? { ...config, workers } : config });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(address).port);
  if (cluster.isWorker) {
    process.on('message', (m) => {
      if (m === 'gc') process.send!(collectGarbage());
    });
    process.once('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  } else {
    serveIpc({ port, controlPort: port, stop: () => app.close(), gc: async () => collectGarbage() });
  }
}
