/**
 * The lab under test, in its own process (started by the runner with --expose-gc): the same buildApp
 * as `npm start`, demo publisher off, logging off. With `workers > 1` (Redis feed) this process is a
 * node:cluster primary running that many lab workers on one port, as `npm start -- --workers N` does;
 * GC, memory and the bench's event-loop window then cover every worker. See bench/servers/ipc.ts
 * for the IPC contract.
 */
import cluster, { type Worker } from 'node:cluster';
import { serveStatsGather } from '../../server/cluster.js';
import type { ConfigInput } from '../../server/config.js';
import type { EventLoopDelay } from '../../server/event-loop.js';
import { doctorWork } from './doctor.js';
import type { TransportName } from '../../report/types.js';
import { collectGarbage, localLoopWindow, serveIpc, type Memory } from './ipc.js';

// `port`: a fixed port (the field scenarios restart a lab behind nginx on the same one); default any free port.
// `doctor`: the transports made to do extra work per delivered message (bench/servers/doctor.ts, the gate's positive control).
const opts = JSON.parse(process.env.BENCH_SERVER_OPTS ?? '{}') as {
  config?: ConfigInput;
  port?: number;
  doctor?: TransportName[];
};
const config: ConfigInput = { demo: false, logLevel: 'silent', ...opts.config };
const workers = config.workers ?? 1;

/** Primary ↔ worker messages (the primary relays the runner's requests; each worker answers for itself). */
type ToWorker = 'bench:gc' | 'bench:loop-open' | 'bench:loop-close';
type FromWorker =
  | { type: 'bench:memory'; memory: Memory }
  | { type: 'bench:loop-opened' }
  | { type: 'bench:loop-delay'; delayMs: EventLoopDelay | null };

/** Sends `request` to every worker and resolves with each one's answer of type `answer`. */
function askAll<T extends FromWorker['type']>(
  forked: Worker[],
  request: ToWorker,
  answer: T,
): Promise<Extract<FromWorker, { type: T }>[]> {
  return Promise.all(
    forked.map(
      (w) =>
        new Promise<Extract<FromWorker, { type: T }>>((resolve) => {
          const onMessage = (m: unknown) => {
            if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === answer) {
              w.off('message', onMessage);
              resolve(m as Extract<FromWorker, { type: T }>);
            }
          };
          w.on('message', onMessage);
          w.send(request);
        }),
    ),
  );
}

/** Several workers' windows as one, the way /stats sums workers: the worst worker's delay. */
function worstOf(parts: (EventLoopDelay | null)[]): EventLoopDelay | null {
  const open = parts.filter((p): p is EventLoopDelay => p !== null);
  if (open.length === 0) return null;
  return {
    p50: Math.max(...open.map((p) => p.p50)),
    p99: Math.max(...open.map((p) => p.p99)),
    max: Math.max(...open.map((p) => p.max)),
    windowMs: Math.max(...open.map((p) => p.windowMs)),
  };
}

if (workers > 1 && cluster.isPrimary) {
  cluster.setupPrimary({ execArgv: process.execArgv });
  const forked = Array.from({ length: workers }, () => cluster.fork({ BENCH_SERVER_OPTS: JSON.stringify(opts) }));
  forked.forEach(serveStatsGather);
  const ports = await Promise.all(
    forked.map((w) => new Promise<number>((resolve) => w.once('listening', (a) => resolve(a.port)))),
  );
  const gcAll = async (): Promise<Memory> => {
    const parts = await askAll(forked, 'bench:gc', 'bench:memory');
    return parts
      .map((p) => p.memory)
      .reduce((a, b) => ({ heapUsedBytes: a.heapUsedBytes + b.heapUsedBytes, rssBytes: a.rssBytes + b.rssBytes }));
  };
  const stop = async () => {
    await Promise.all(
      forked.map(
        (w) =>
          new Promise((resolve) => {
            w.once('exit', resolve);
            w.process.kill('SIGTERM');
          }),
      ),
    );
  };
  serveIpc({
    port: ports[0]!,
    controlPort: ports[0]!,
    tls: Boolean(config.tls || config.http2),
    stop,
    gc: gcAll,
    loop: {
      open: async () => void (await askAll(forked, 'bench:loop-open', 'bench:loop-opened')),
      close: async () => worstOf((await askAll(forked, 'bench:loop-close', 'bench:loop-delay')).map((p) => p.delayMs)),
    },
  });
} else {
  // Imported here, not above: a cluster primary only supervises, and loading the app there cost a
  // third of a two-worker cluster's start-up CPU.
  const { buildApp } = await import('../../server/app.js');
  const app = await buildApp({
    config: workers > 1 ? { ...config, workers } : config,
    ...(opts.doctor ? { extraWork: doctorWork(opts.doctor) } : {}),
  });
  const address = await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const port = Number(new URL(address).port);
  if (cluster.isWorker) {
    const loop = localLoopWindow();
    const reply = (m: FromWorker) => process.send!(m);
    process.on('message', (m: unknown) => {
      if (m === 'bench:gc') reply({ type: 'bench:memory', memory: collectGarbage() });
      else if (m === 'bench:loop-open') void loop.open().then(() => reply({ type: 'bench:loop-opened' }));
      else if (m === 'bench:loop-close')
        void loop.close().then((delayMs) => reply({ type: 'bench:loop-delay', delayMs }));
    });
    process.once('SIGTERM', () => void app.close().finally(() => process.exit(0)));
  } else {
    serveIpc({
      port,
      controlPort: port,
      tls: app.lab.protocol !== 'http/1.1',
      stop: () => app.close(),
      gc: async () => collectGarbage(),
    });
  }
}
