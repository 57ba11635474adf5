/**
 * Starts a bench server (lab, bare, socketio) in its own process, waits until it is ready, and gives
 * the runner its ports, GC + memory, /stats, the event-loop window, and stop. Each server gets its own
 * process so the load generator's CPU and heap never mix with the server's.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import type { EventLoopDelay } from '../../server/event-loop.js';
import type { StatsSnapshot } from '../../server/stats.js';
import type { FromChild, ToChild } from '../servers/ipc.js';
import { bundle, Callgrind, callgrindLaunch, dumpDir } from './callgrind.js';
import { ACCEPT_SELF_SIGNED } from '../clients/http.js';

/** The runner's own requests (/stats) to servers that may serve TLS with the run's self-signed certificate. */
const controlAgent = new Agent({ connect: ACCEPT_SELF_SIGNED });

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
   * The server's event-loop delay over one window (bench/servers/ipc.ts): `open` when the
   * measured window opens, `close` when it ends; null if none was open.
   */
  loopWindow: { open(): Promise<void>; close(): Promise<EventLoopDelay | null> };
  /** Asks the server to stop (SIGKILL after 5 s); resolves with its exit code (null when killed). */
  stop(): Promise<number | null>;
  /** Its instruction counter, when started under callgrind (bench/processes/callgrind.ts). */
  readonly callgrind?: Callgrind;
}

/** How long a child may take to say it is ready; under callgrind (bench/processes/callgrind.ts) start-up is ~10× slower. */
const READY_TIMEOUT_MS = 30_000;
const CALLGRIND_READY_TIMEOUT_MS = 180_000;

/** How to run a child: through tsx (the default), or a bundle under another program (callgrind). */
export interface Launch {
  /** The program that runs `file` (fork's execPath). @default node */
  execPath?: string;
  /** Its arguments before `file`. */
  execArgv: string[];
  /** Whether `file` is TypeScript, run through tsx. @default true */
  tsx?: boolean;
  readyTimeoutMs?: number;
}

/** A bench child process (a server under test, the relay) over IPC: its ready message, requests, stop. */
export interface Child<To, From extends { type: string }> {
  readonly pid: number;
  /** Sends `msg` and resolves with the child's next answer of type `answer`. */
  ask<T extends From['type']>(msg: To, answer: T): Promise<Extract<From, { type: T }>>;
  /** Sends `stop` (SIGKILL after 5 s); resolves with the exit code (null when killed). */
  stop(stop: To): Promise<number | null>;
}

/**
 * Forks `file` (TypeScript, through tsx, unless `launch` says otherwise) with `env`, and waits for its
 * `{ type: 'ready' }` message (READY_TIMEOUT_MS at most; an exit before it is an error naming `name`).
 */
export async function forkChild<To, From extends { type: string }>(
  file: string,
  name: string,
  env: Record<string, string>,
  launch: Launch = { execArgv: [] },
): Promise<{ child: Child<To, From>; ready: Extract<From, { type: 'ready' }>; env: NodeJS.ProcessEnv }> {
  const childEnv = { ...process.env, ...env };
  const readyTimeoutMs = launch.readyTimeoutMs ?? READY_TIMEOUT_MS;
  const proc: ChildProcess = fork(file, [], {
    ...(launch.execPath ? { execPath: launch.execPath } : {}),
    execArgv: [...launch.execArgv, ...(launch.tsx === false ? [] : ['--import', 'tsx'])],
    env: childEnv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(proc, 'exit').then(([code]) => {
    throw new Error(`${name} exited (code ${String(code)}) before it was ready`);
  });
  const next = <T extends From['type']>(answer: T) =>
    new Promise<Extract<From, { type: T }>>((resolve) => {
      const onMessage = (m: From) => {
        if (m.type === answer) {
          proc.off('message', onMessage);
          resolve(m as Extract<From, { type: T }>);
        }
      };
      proc.on('message', onMessage);
    });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
  });
  let ready;
  try {
    ready = await Promise.race([next('ready'), exited, timeout]);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => {}); // after ready, an exit is seen by the next request failing
  const child: Child<To, From> = {
    pid: proc.pid!,
    ask(msg, answer) {
      const answered = next(answer);
      proc.send(msg as object);
      return answered;
    },
    async stop(stop) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const gone = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      proc.send(stop as object);
      const kill = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      const [code] = await gone;
      clearTimeout(kill);
      return code;
    },
  };
  return { child, ready, env: childEnv };
}

/**
 * `profileDir`: the server runs under V8's CPU profiler (`--cpu-prof`) and writes its profile there
 * when it exits (each worker of a cluster its own), for `npm run bench -- --profile`.
 * `callgrind`: the server runs under callgrind, instrumentation off until `handle.callgrind` switches it
 * on (bench/processes/callgrind.ts). `env`: extra environment for the server.
 */
export async function startServer(
  script: string,
  options: Record<string, unknown> = {},
  how: { profileDir?: string; callgrind?: boolean; env?: Record<string, string> } = {},
): Promise<ServerHandle> {
  const { profileDir } = how;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const file = how.callgrind
    ? await bundle(script)
    : fileURLToPath(new URL(`../servers/${script}.ts`, import.meta.url));
  const outDir = how.callgrind ? dumpDir() : undefined;
  const launch: Launch = outDir
    ? { ...callgrindLaunch(outDir), tsx: false, readyTimeoutMs: CALLGRIND_READY_TIMEOUT_MS }
    : { execArgv: ['--expose-gc', ...profile] };
  const {
    child,
    ready: m,
    env,
  } = await forkChild<ToChild, FromChild>(
    file,
    `bench server ${script}`,
    { ...how.env, BENCH_SERVER_OPTS: JSON.stringify(options) },
    launch,
  );
  const callgrind = outDir ? new Callgrind(child.pid, env, outDir) : undefined;
  const scheme = m.tls ? 'https' : 'http';
  const baseUrl = `${scheme}://127.0.0.1:${m.port}`;
  const controlUrl = `${m.tls && m.controlPort === m.port ? 'https' : 'http'}://127.0.0.1:${m.controlPort}`;
  return {
    name: script,
    port: m.port,
    controlPort: m.controlPort,
    baseUrl,
    controlUrl,
    pid: child.pid,
    async stats() {
      const res = await request(`${controlUrl}/stats`, { dispatcher: controlAgent });
      if (res.statusCode !== 200) throw new Error(`${script} /stats answered ${res.statusCode}`);
      return (await res.body.json()) as ServerStats;
    },
    async gc() {
      const { heapUsedBytes, rssBytes } = await child.ask({ type: 'gc' }, 'memory');
      return { heapUsedBytes, rssBytes };
    },
    loopWindow: {
      async open() {
        await child.ask({ type: 'loop-open' }, 'loop-opened');
      },
      async close() {
        return (await child.ask({ type: 'loop-close' }, 'loop-delay')).delayMs;
      },
    },
    stop: async () => {
      const code = await child.stop({ type: 'stop' });
      await callgrind?.cleanUp();
      return code;
    },
    ...(callgrind ? { callgrind } : {}),
  };
}

/**
 * Test hook (runBench's `serverPool`): server processes kept across runs. A run takes the process of a
 * target from here when one with the same script and options is running, starts it here when none is,
 * and leaves it running at its end; `stop()` is the owner's. Runs on one pool must not overlap.
 *
 * At most one start per core at a time: a start is module loading, all CPU, so more side by side only
 * stretch each (six at once took over 30 s, READY_TIMEOUT_MS, on this 2-core machine under load).
 */
export class ServerPool {
  readonly #processes = new Map<string, Promise<ServerHandle>>();
  readonly #maxStarting = availableParallelism();
  #starting = 0;
  readonly #waiting: (() => void)[] = [];

  /** The process for `key` (see targets.ts processKey), started with `start` on first use. */
  get(key: string, start: () => Promise<ServerHandle>): Promise<ServerHandle> {
    let started = this.#processes.get(key);
    if (!started) {
      started = this.#inTurn(start);
      this.#processes.set(key, started);
      // A start that failed is tried again by the next run that needs it.
      started.catch(() => this.#processes.delete(key));
    }
    return started;
  }

  async #inTurn(start: () => Promise<ServerHandle>): Promise<ServerHandle> {
    while (this.#starting >= this.#maxStarting) await new Promise<void>((r) => this.#waiting.push(r));
    this.#starting++;
    try {
      return await start();
    } finally {
      this.#starting--;
      this.#waiting.shift()?.();
    }
  }

  async stop(): Promise<void> {
    const all = [...this.#processes.values()];
    this.#processes.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.stop()));
  }
}
