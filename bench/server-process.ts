/**
 * Starts a bench server (lab, bare, socketio) in its own process, waits until it is ready, and gives
 * the runner its ports, GC + memory, /stats, the event-loop window, and stop. Each server gets its own
 * process so the load generator's CPU and heap never mix with the server's.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { EventLoopDelay } from '../server/event-loop.js';
import type { StatsSnapshot } from '../server/stats.js';
import type { FromChild, ToChild } from './servers/protocol.js';

/** GET /stats of every bench server: the lab's snapshot (the reference servers build the same type). */
export type ServerStats = StatsSnapshot;

export interface ServerHandle {
  readonly name: string;
  readonly port: number;
  readonly controlPort: number;
  readonly baseUrl: string;
  readonly controlUrl: string;
  readonly pid: number;
  stats(): Promise<ServerStats>;
  gc(): Promise<{ heapUsedBytes: number; rssBytes: number }>;
  /**
   * The server's event-loop delay over one window (bench/servers/protocol.ts): `open` when the
   * measured window opens, `close` when it ends; null if none was open.
   */
  loopWindow: { open(): Promise<void>; close(): Promise<EventLoopDelay | null> };
  /** Asks the server to stop (SIGKILL after 5 s); resolves with its exit code (null when killed). */
  stop(): Promise<number | null>;
}

const READY_TIMEOUT_MS = 30_000;

export async function startServer(script: string, options: Record<string, unknown> = {}): Promise<ServerHandle> {
  const file = fileURLToPath(new URL(`./servers/${script}.ts`, import.meta.url));
  const child: ChildProcess = fork(file, [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, BENCH_SERVER_OPTS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench server ${script} exited (code ${String(code)}) before it was ready`);
  });
  const ready = new Promise<Extract<FromChild, { type: 'ready' }>>((resolve) => {
    const onMessage = (m: FromChild) => {
      if (m.type === 'ready') {
        child.off('message', onMessage);
        resolve(m);
      }
    };
    child.on('message', onMessage);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench server ${script} not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
  });
  let m;
  try {
    m = await Promise.race([ready, exited, timeout]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => {}); // after ready, an exit is seen by the next request failing
  const baseUrl = `http://127.0.0.1:${m.port}`;
  const controlUrl = `http://127.0.0.1:${m.controlPort}`;
  const send = (msg: ToChild) => child.send(msg);
  /** Sends `msg` and resolves with the child's next answer of type `answer`. */
  const ask = <T extends FromChild['type']>(msg: ToChild, answer: T): Promise<Extract<FromChild, { type: T }>> => {
    const answered = new Promise<Extract<FromChild, { type: T }>>((resolve) => {
      const onMessage = (m: FromChild) => {
        if (m.type === answer) {
          child.off('message', onMessage);
          resolve(m as Extract<FromChild, { type: T }>);
        }
      };
      child.on('message', onMessage);
    });
    send(msg);
    return answered;
  };
  return {
    name: script,
    port: m.port,
    controlPort: m.controlPort,
    baseUrl,
    controlUrl,
    pid: child.pid!,
    async stats() {
      const res = await fetch(`${controlUrl}/stats`);
      if (!res.ok) throw new Error(`${script} /stats answered ${res.status}`);
      return (await res.json()) as ServerStats;
    },
    async gc() {
      const { heapUsedBytes, rssBytes } = await ask({ type: 'gc' }, 'memory');
      return { heapUsedBytes, rssBytes };
    },
    loopWindow: {
      async open() {
        await ask({ type: 'loop-open' }, 'loop-opened');
      },
      async close() {
        return (await ask({ type: 'loop-close' }, 'loop-delay')).delayMs;
      },
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const gone = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      send({ type: 'stop' });
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const [code] = await gone;
      clearTimeout(kill);
      return code;
    },
  };
}
