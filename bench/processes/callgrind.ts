/**
 * Counting instructions instead of timing them: a bench server under valgrind's callgrind, with
 * instrumentation off until the runner switches it on around a measured window.
 *
 * Why: CPU time on a shared 2-core VM moved the gate's lab ÷ bare ratios by ±50 % between two runs of
 * the same tree, and this machine has no hardware counters ("PMU not available due to virtualization").
 * An instruction count is the same for the same code, inputs and environment, whatever else the machine
 * does — the way CodSpeed and iai run CI benchmarks. What keeps it stable here:
 * - `--single-threaded --jitless`: V8 collects garbage on the main thread, not on helper threads whose
 *   share of the work depends on scheduling, and interprets instead of compiling at moments that vary
 *   (measured: WebSocket windows 62k–128k instructions per message with the JIT, 46k–48k without);
 * - `--instr-atstart=no` and `callgrind_control -i on|off` around the window: start-up, connecting and
 *   warm-up are not counted (and run several times faster uninstrumented);
 * - a full GC before each window (the runner asks over IPC), so each window starts with an empty young
 *   generation and its own collections fall at the same allocations.
 * What it does not see: time in the kernel (syscalls are counted as the user-space code around them),
 * and waiting. It is the gate's CPU figure, not a time: see bench/stages/instructions.ts.
 *
 * The server runs as a bundle (esbuild, packages left external) instead of through tsx: tsx's loader
 * thread under valgrind doubles the start-up (~55 s against ~25 s here). The bundle is written one
 * folder below the repository root, so that the server's `import.meta.url`-relative paths (../web/,
 * ../results/) and its packages resolve exactly as from server/.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const run = promisify(execFile);

/** Where server bundles are written (git-ignored). */
export const BUILD_DIR = fileURLToPath(new URL('../../.bench-build/', import.meta.url));

/**
 * valgrind's control pipes are named after a prefix, the user and `$HOST`: one prefix for this process's
 * servers, and `callgrind_control` always run with the environment its server was started with.
 */
const VGDB_PREFIX = join(mkdtempSync(join(tmpdir(), 'transport-lab-vgdb-')), 'vgdb');

/** Bundles bench/servers/<script>.ts to BUILD_DIR/<script>.mjs and returns its path. */
export async function bundle(script: string): Promise<string> {
  const outfile = join(BUILD_DIR, `${script}.mjs`);
  await build({
    entryPoints: [fileURLToPath(new URL(`../servers/${script}.ts`, import.meta.url))],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * How to start a server under callgrind: `fork(file, [], { execPath, execArgv })`. Each window's counts
 * are dumped (`callgrind_control --dump`) to a file of its own in `outDir`, read, and removed.
 */
export function callgrindLaunch(outDir: string): { execPath: string; execArgv: string[] } {
  return {
    execPath: 'valgrind',
    execArgv: [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${join(outDir, 'callgrind.out')}`,
      `--vgdb-prefix=${VGDB_PREFIX}`,
      '--quiet',
      process.execPath,
      '--single-threaded',
      // V8's interpreter only: with the JIT on, when a function gets compiled (counted, on the main
      // thread) moved single windows by up to 2×; jitless windows repeat within a few percent.
      '--jitless',
      '--no-expose-wasm',
      // V8's memory reducer collects garbage on timers (seconds after a full GC): windows that met one
      // counted 2× the others. Every window starts after a full GC of the runner's anyway.
      '--no-memory-reducer',
      '--expose-gc',
      '--import',
      QUIET_EVENT_LOOP_MONITOR,
    ],
  };
}

/**
 * Every server measures its event-loop delay with perf_hooks.monitorEventLoopDelay at 10 ms (server/
 * event-loop.ts): a timer that ticks on wall time, ~250k instructions a second under callgrind — all
 * of a server's idle count — which a window stretched by a busy machine counted again. Under callgrind
 * the monitor samples once a minute instead; the count is of the messages' work, and the bench's
 * event-loop figures come from the uninstrumented runs.
 */
const QUIET_EVENT_LOOP_MONITOR = `data:text/javascript,${encodeURIComponent(
  [
    "import perf from 'node:perf_hooks';",
    "import { syncBuiltinESMExports } from 'node:module';",
    'const monitor = perf.monitorEventLoopDelay;',
    'perf.monitorEventLoopDelay = (options) => monitor({ ...options, resolution: 60000 });',
    'syncBuiltinESMExports();',
  ].join(' '),
)}`;

/**
 * The instruction count of one callgrind dump (every thread, since the last zero or dump): the sum of
 * its self-cost lines — every cost line but the one after a `calls=` line, which repeats the callee's
 * inclusive cost. Not its `summary:` line, nor `callgrind_control -e`: with instrumentation switched
 * on and off, the summary came out negative (wrapped around 2^64) and -e near 0 for one window in
 * thirty, while the self costs add up (callgrind's format: valgrind docs, "Callgrind Format").
 */
export function parseDump(text: string): number {
  let total = 0;
  let afterCalls = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('calls=')) {
      afterCalls = true;
      continue;
    }
    // A cost line: a position (a number, +N, -N or *), then the Ir count (the only event collected).
    if (/^[\d+*-]/.test(line)) {
      if (!afterCalls) total += Number(line.slice(line.lastIndexOf(' ') + 1));
      afterCalls = false;
    }
  }
  if (!Number.isSafeInteger(total)) throw new Error(`callgrind dump did not add up (${total})`);
  return total;
}

/** A fresh folder for one server's dumps. */
export const dumpDir = (): string => mkdtempSync(join(tmpdir(), 'transport-lab-callgrind-'));

/** callgrind_control answers in well under a second; a hung one fails the window instead of the run. */
const CONTROL_TIMEOUT_MS = 60_000;

/** Switches the instrumentation of one callgrind process on and off and reads its instruction count. */
export class Callgrind {
  constructor(
    readonly pid: number,
    readonly env: NodeJS.ProcessEnv,
    readonly outDir: string,
  ) {}

  async #control(...args: string[]): Promise<string> {
    const { stdout } = await run('callgrind_control', [`--vgdb-prefix=${VGDB_PREFIX}`, ...args, String(this.pid)], {
      env: this.env,
      encoding: 'utf8',
      timeout: CONTROL_TIMEOUT_MS,
    });
    return stdout;
  }

  /** Instrumentation on, counters at zero. */
  async start(): Promise<void> {
    await this.#control('--instr=on');
    await this.#control('--zero');
  }

  /** Instrumentation off; the instructions executed since start() (every thread), from a dump. */
  async stop(): Promise<number> {
    await this.#control('--instr=off');
    await this.#control('--dump=window');
    const dumps = (await readdir(this.outDir)).filter((f) => /^callgrind\.out\.\d+$/.test(f));
    if (dumps.length !== 1) throw new Error(`expected one callgrind dump in ${this.outDir}, found ${dumps.length}`);
    const file = join(this.outDir, dumps[0]!);
    const total = parseDump(await readFile(file, 'utf8'));
    await rm(file);
    return total;
  }

  /** Removes the dump folder (the final dump at exit lands there too). */
  async cleanUp(): Promise<void> {
    await rm(this.outDir, { recursive: true, force: true });
  }
}
