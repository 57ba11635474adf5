/**
 * Starts a bench server (lab, bare, socketio) in its own process, waits until it is ready, and gives
 * the runner its ports, GC + memory, /stats, and stop. Each server gets its own process so the load
 * generator's CPU and heap never mix with the server's.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { FromChild, ToChild } from './servers/protocol.js';

/** The subset of /stats the runner reads; every bench server answers it. */
export interface ServerStats {
  transports: Record<'poll' | 'shortPoll' | 'sse' | 'ws', { connections: number; requests: number; messagesOut: number; bytesOut: number; bytesIn: number }>;
  feed: { lastId: number };
  process: { cpu: { userUs: number; systemUs: number }; eventLoopDelayMs: { p99: number } };
}

export interface ServerHandle {
  readonly name: string;
  readonly port: number;
  readonly controlPort: number;
  readonly baseUrl: string;
  readonly controlUrl: string;
  readonly pid: number;
  stats(): Promise<ServerStats>;
  gc(): Promise<{ heapUsedBytes: number; rssBytes: number }>;
  stop(): Promise<void>;
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
      const answer = new Promise<Extract<FromChild, { type: 'memory' }>>((resolve) => {
        const onMessage = (msg: FromChild) => {
          if (msg.type === 'memory') {
            child.off('message', onMessage);
            resolve(msg);
          }
        };
        child.on('message', onMessage);
      });
      send({ type: 'gc' });
      const { heapUsedBytes, rssBytes } = await answer;
      return { heapUsedBytes, rssBytes };
    },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = once(child, 'exit');
      send({ type: 'stop' });
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(kill);
    },
  };
}
