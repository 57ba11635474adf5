/**
 * Several worker processes on one port (node:cluster), all serving the one Redis feed. Each worker
 * runs the whole app; clients need no sticky sessions, because every transport resumes from a cursor
 * that any worker can serve.
 *
 * The primary only supervises: it forks `workers` processes, replaces one that dies (clients of a dead
 * worker reconnect to another and resume from their cursor), answers SIGINT/SIGTERM by shutting the
 * workers down gracefully, and sums the workers' /stats so that any worker can answer for all.
 */
import cluster, { type Worker } from 'node:cluster';
import type { StatsSnapshot } from './stats.js';

/** A worker asks; the primary gathers every worker's snapshot and answers with all of them. */
type ToPrimary =
  | { type: 'lab:stats-request'; id: number }
  | { type: 'lab:stats-part'; id: number; snapshot: StatsSnapshot };
type ToWorker =
  | { type: 'lab:stats-collect'; id: number }
  | { type: 'lab:stats-result'; id: number; snapshots: StatsSnapshot[] };

/** How long the primary waits for every worker's snapshot before answering with those it has. */
const COLLECT_TIMEOUT_MS = 1_000;

/** Per primary: the gathers of worker snapshots in progress. */
const gathers = new Map<
  number,
  { from: Worker; replyId: number; parts: StatsSnapshot[]; expected: number; timer: NodeJS.Timeout }
>();
let nextGatherId = 1;
const liveWorkers = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w?.isConnected() === true);

function finishGather(id: number): void {
  const g = gathers.get(id);
  if (!g) return;
  clearTimeout(g.timer);
  gathers.delete(id);
  if (g.from.isConnected())
    g.from.send({ type: 'lab:stats-result', id: g.replyId, snapshots: g.parts } satisfies ToWorker);
}

/** In a primary: lets `worker` (and every other) answer /stats for the whole cluster. */
export function serveStatsGather(worker: Worker): void {
  worker.on('message', (m: ToPrimary | unknown) => {
    const msg = m as ToPrimary;
    switch (msg?.type) {
      case 'lab:stats-request': {
        const id = nextGatherId++;
        const workers = liveWorkers();
        gathers.set(id, {
          from: worker,
          replyId: msg.id,
          parts: [],
          expected: workers.length,
          timer: setTimeout(() => finishGather(id), COLLECT_TIMEOUT_MS),
        });
        for (const w of workers) w.send({ type: 'lab:stats-collect', id } satisfies ToWorker);
        break;
      }
      case 'lab:stats-part': {
        const g = gathers.get(msg.id);
        if (!g) return;
        g.parts.push(msg.snapshot);
        if (g.parts.length >= g.expected) finishGather(msg.id);
        break;
      }
      default:
      // Not ours.
    }
  });
}

export function runPrimary(opts: {
  workers: number;
  shutdownTimeoutMs: number;
  /** `https` when the workers serve TLS. */
  scheme?: 'http' | 'https';
  onListening: (address: string, workers: number) => void;
}): void {
  let closing = false;
  let announced = false;
  const listening = new Set<number>();

  const fork = () => {
    const w = cluster.fork();
    serveStatsGather(w);
    w.on('listening', (address) => {
      listening.add(w.id);
      if (!announced && listening.size === opts.workers) {
        announced = true;
        const host = address.address ?? '127.0.0.1';
        opts.onListening(
          `${opts.scheme ?? 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
          opts.workers,
        );
      }
    });
  };

  cluster.on('exit', (w, code, signal) => {
    listening.delete(w.id);
    if (closing) return;
    console.error(
      `worker ${w.process.pid} died (${signal ?? code}); starting another: its clients reconnect and resume from their cursors`,
    );
    fork();
  });

  const shutdown = (signal: string) => {
    if (closing) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    closing = true;
    console.log(`${signal}: closing ${liveWorkers().length} workers`);
    const check = () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    };
    cluster.on('exit', check);
    for (const w of liveWorkers()) w.process.kill('SIGTERM');
    setTimeout(() => {
      console.error(`workers still open after ${opts.shutdownTimeoutMs} ms: exiting anyway`);
      process.exit(1);
    }, opts.shutdownTimeoutMs + 1_000).unref();
    check();
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));

  for (let i = 0; i < opts.workers; i++) fork();
}

/**
 * In a worker: answers the primary's collect requests with `local()`, and returns a function that gets
 * every worker's snapshot through the primary. Outside a cluster: undefined.
 */
export function clusterSnapshots(local: () => StatsSnapshot): (() => Promise<StatsSnapshot[]>) | undefined {
  if (!cluster.isWorker || !process.send) return undefined;
  const waiting = new Map<number, (s: StatsSnapshot[]) => void>();
  let nextId = 1;
  process.on('message', (m: ToWorker) => {
    if (m?.type === 'lab:stats-collect')
      process.send!({ type: 'lab:stats-part', id: m.id, snapshot: local() } satisfies ToPrimary);
    else if (m?.type === 'lab:stats-result') {
      waiting.get(m.id)?.(m.snapshots);
      waiting.delete(m.id);
    }
  });
  return () =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve([local()]);
      }, COLLECT_TIMEOUT_MS * 2);
      waiting.set(id, (s) => {
        clearTimeout(timer);
        resolve(s.length > 0 ? s : [local()]);
      });
      process.send!({ type: 'lab:stats-request', id } satisfies ToPrimary);
    });
}
