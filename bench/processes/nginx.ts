/**
 * nginx as a real part of the lab: a child process on 127.0.0.1 in front of lab instances, run from the
 * shipped deploy/nginx.conf (one source: what users copy is what the tests run).
 *
 * Rendering: a line of the template that ends in `# @lab:<name>` is replaced by what `<name>` means here
 * (the port, paths inside a temp prefix, the upstream ports, a setting a scenario varies); every other
 * line is kept as it is. A setting a scenario does not set keeps the template's line, so the shipped
 * values are the defaults. Each nginx gets a prefix directory of its own (config, logs, pid, temp
 * files), so it runs as any user and never touches the system nginx or its files; it is started with
 * `-g 'daemon off;'` and stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** The nginx binary: $NGINX_BIN, else /usr/sbin/nginx (Debian's; not on a non-root PATH), else `nginx` on PATH. */
export const NGINX_BIN: string =
  process.env.NGINX_BIN ||
  [
    '/usr/sbin/nginx',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'nginx')),
  ].find(executable) ||
  '/usr/sbin/nginx';

export const haveNginx = (): boolean => executable(NGINX_BIN);

/** The shipped config users copy; the template every rendered config comes from. */
export const DEPLOY_CONF = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url));

export const readTemplate = (): string => readFileSync(DEPLOY_CONF, 'utf8');

/** What a scenario may vary; anything it leaves out keeps deploy/nginx.conf's value. */
export interface ProxySettings {
  /** /events: `proxy_buffering on|off` (shipped: off). */
  buffering: boolean;
  /** /events: `proxy_ignore_headers X-Accel-Buffering;`, so the lab's `X-Accel-Buffering: no` has no effect (shipped: not ignored). */
  ignoreAccelBuffering: boolean;
  /** /events: `gzip on; gzip_types text/event-stream;` (shipped: `gzip off`). */
  gzip: boolean;
  /** `proxy_read_timeout` of /events, in seconds (shipped: 60). */
  sseReadTimeoutSec: number;
  /** `proxy_read_timeout` of /poll, in seconds (shipped: 130). */
  pollReadTimeoutSec: number;
  /** `proxy_read_timeout` of /ws, in seconds (shipped: 60). */
  wsReadTimeoutSec: number;
  /**
   * /ws: forward the client's `Upgrade` and `Connection: upgrade` (shipped), or strip both as some
   * corporate proxies do, so the handshake reaches the server as a plain GET.
   */
  stripUpgrade: boolean;
  /** The upstream's balancing: round robin (nginx's default, shipped), `ip_hash` (sticky by client address) or `least_conn`. */
  balance: 'round-robin' | 'ip-hash' | 'least-conn';
}

export interface NginxOptions {
  /** Ports of the lab instances on 127.0.0.1, in `upstream lab` order. */
  upstreams: readonly number[];
  settings?: Partial<ProxySettings>;
  /** The config template; deploy/nginx.conf by default. */
  template?: string;
}

export interface RenderOptions extends NginxOptions {
  /** The port to listen on (127.0.0.1). */
  listen: number;
  /** The prefix directory: logs, pid and temp files go inside it. */
  prefix: string;
}

/** Every marker deploy/nginx.conf must have (a renamed or lost marker fails loudly, not silently). */
const MARKERS = [
  'worker-processes',
  'error-log',
  'pid',
  'temp-paths',
  'access-log',
  'balance',
  'upstream',
  'listen',
  'sse-buffering',
  'sse-accel',
  'sse-read-timeout',
  'sse-gzip',
  'poll-read-timeout',
  'ws-read-timeout',
  'ws-upgrade',
] as const;
type Marker = (typeof MARKERS)[number];

const MARKED = /^(\s*)(.*?)\s*#\s*@lab:([\w-]+)\s*$/;
/** The parameters of the template's first upstream `server` line (deploy/nginx.conf: `max_fails=0`), kept for every port. */
const upstreamParams = (template: string): string =>
  /^\s*server\s+\S+((?:\s+[^;\s]+)*)\s*;\s*#\s*@lab:upstream\s*$/m.exec(template)?.[1] ?? '';

const quote = (path: string): string => {
  if (/["$\\\n]/.test(path)) throw new Error(`nginx: cannot use the path ${JSON.stringify(path)} in a config`);
  return `"${path}"`;
};

const seconds = (name: string, v: number): string => {
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`nginx: ${name} must be a positive whole number of seconds, got ${v}`);
  return `${v}s`;
};

/**
 * The template with its marked lines replaced: `undefined` keeps the template's line (a setting left
 * out), `[]` drops it, otherwise its lines, at the first line with that marker (later ones are dropped:
 * the template lists two upstream servers, the lab may run any number).
 */
function replacements(opts: RenderOptions, template: string): Record<Marker, readonly string[] | undefined> {
  const { upstreams, settings = {}, listen, prefix } = opts;
  if (upstreams.length === 0) throw new Error('nginx: at least one upstream port is needed');
  for (const p of [...upstreams, listen]) {
    if (!Number.isInteger(p) || p < 1 || p > 65_535) throw new Error(`nginx: bad port ${p}`);
  }
  const at = (name: string) => quote(join(prefix, name));
  const on = (v: boolean) => (v ? 'on' : 'off');
  const {
    buffering,
    ignoreAccelBuffering,
    gzip,
    sseReadTimeoutSec,
    pollReadTimeoutSec,
    wsReadTimeoutSec,
    balance,
    stripUpgrade,
  } = settings;
  return {
    'worker-processes': ['worker_processes 1;'],
    'error-log': [`error_log ${at('error.log')} notice;`],
    pid: [`pid ${at('nginx.pid')};`],
    'temp-paths': ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
      (kind) => `${kind}_temp_path ${at(`tmp-${kind}`)};`,
    ),
    'access-log': [`access_log ${at('access.log')} lab;`],
    balance:
      balance === undefined
        ? undefined
        : { 'round-robin': [], 'ip-hash': ['ip_hash;'], 'least-conn': ['least_conn;'] }[balance],
    // The shipped line's parameters (max_fails=0) stay; only the address changes.
    upstream: upstreams.map((p) => `server 127.0.0.1:${p}${upstreamParams(template)};`),
    listen: [`listen 127.0.0.1:${listen};`],
    'sse-buffering': buffering === undefined ? undefined : [`proxy_buffering ${on(buffering)};`],
    'sse-accel':
      ignoreAccelBuffering === undefined
        ? undefined
        : ignoreAccelBuffering
          ? ['proxy_ignore_headers X-Accel-Buffering;']
          : [],
    'sse-read-timeout':
      sseReadTimeoutSec === undefined
        ? undefined
        : [`proxy_read_timeout ${seconds('sseReadTimeoutSec', sseReadTimeoutSec)};`],
    'sse-gzip': gzip === undefined ? undefined : gzip ? ['gzip on;', 'gzip_types text/event-stream;'] : ['gzip off;'],
    'poll-read-timeout':
      pollReadTimeoutSec === undefined
        ? undefined
        : [`proxy_read_timeout ${seconds('pollReadTimeoutSec', pollReadTimeoutSec)};`],
    'ws-read-timeout':
      wsReadTimeoutSec === undefined
        ? undefined
        : [`proxy_read_timeout ${seconds('wsReadTimeoutSec', wsReadTimeoutSec)};`],
    // An empty value: nginx sends no such header upstream.
    'ws-upgrade': stripUpgrade ? ['proxy_set_header Upgrade "";', 'proxy_set_header Connection "";'] : undefined,
  };
}

/** Renders `template` (deploy/nginx.conf) for an nginx of the lab's own; see the file comment. */
export function renderConfig(template: string, opts: RenderOptions): string {
  const table = replacements(opts, template);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of template.split('\n')) {
    const m = MARKED.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const [, indent, kept, name] = m as unknown as [string, string, string, string];
    if (!(MARKERS as readonly string[]).includes(name))
      throw new Error(`nginx template: unknown marker @lab:${name} in ${JSON.stringify(line.trim())}`);
    const first = !seen.has(name);
    seen.add(name);
    const lines = table[name as Marker];
    if (lines === undefined) out.push(`${indent}${kept}`);
    else if (first) out.push(...lines.map((l) => `${indent}${l}`));
  }
  const missing = MARKERS.filter((name) => !seen.has(name));
  if (missing.length > 0)
    throw new Error(`nginx template: no line marked ${missing.map((n) => `# @lab:${n}`).join(', ')}`);
  return out.join('\n');
}

/** Whether something accepts TCP connections on 127.0.0.1:port right now. */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Checks `condition` every 20 ms until it is true; throws `failure()` when it throws or after `timeoutMs`. */
async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  failure: (why: string) => Promise<Error> | Error,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw await failure(`not ready after ${timeoutMs} ms`);
    await tick(20);
  }
}

async function makePrefix(): Promise<string> {
  const prefix = await mkdtemp(join(tmpdir(), 'lab-nginx-'));
  // Run as root, nginx's workers run as `nobody`: they must reach their temp directories in here.
  await chmod(prefix, 0o755);
  return prefix;
}

const runConfigTest = (conf: string, prefix: string) =>
  // `-e stderr`: the messages of the test itself come back on stderr, not into the running nginx's log.
  spawnSync(NGINX_BIN, ['-t', '-q', '-p', prefix, '-c', conf, '-e', 'stderr'], { encoding: 'utf8', timeout: 10_000 });

/**
 * `nginx -t -p <prefix> -c <conf>` on the rendered config, in a prefix of its own; resolves with
 * nginx's output, or throws it when nginx refuses the config.
 */
export async function checkConfig(opts: NginxOptions): Promise<string> {
  const prefix = await makePrefix();
  try {
    const conf = join(prefix, 'nginx.conf');
    await writeFile(conf, renderConfig(opts.template ?? readTemplate(), { ...opts, listen: await freePort(), prefix }));
    const r = runConfigTest(conf, prefix);
    const output = `${r.stdout}${r.stderr}`.trim();
    if (r.status !== 0) throw new Error(`nginx -t refused the config (exit ${r.status ?? r.signal}):\n${output}`);
    return output;
  } finally {
    await rm(prefix, { recursive: true, force: true });
  }
}

const START_TIMEOUT_MS = 10_000;
const RELOAD_TIMEOUT_MS = 10_000;
/** How long stop() waits after SIGQUIT (graceful: open requests finish), then after SIGTERM, before SIGKILL. */
const QUIT_TIMEOUT_MS = 5_000;
const TERM_TIMEOUT_MS = 3_000;
const START_ATTEMPTS = 5;
/** The master's line for each worker it starts (after "start worker processes"). */
const WORKER_STARTED = /start worker process (\d+)/;

/** `process.kill` that ignores a process which has exited already (ESRCH). */
function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** How stop() ended nginx: which signal it took. */
export type StopSignal = 'SIGQUIT' | 'SIGTERM' | 'SIGKILL';

/** One nginx master (1 worker) on 127.0.0.1:<port>, with its own prefix directory. */
export class Nginx {
  readonly #proc: ChildProcess;
  readonly #exited: Promise<void>;
  #gone = false;
  #spawnError: Error | undefined;
  #stderr = '';
  #stopped: Promise<StopSignal> | undefined;
  readonly #onExit = () => this.#killNow();

  private constructor(
    readonly port: number,
    readonly prefix: string,
    proc: ChildProcess,
  ) {
    this.#proc = proc;
    // 'error' alone (no 'exit') when the binary cannot be run at all.
    this.#exited = new Promise((resolve) => {
      const done = () => {
        this.#gone = true;
        resolve();
      };
      proc.once('exit', done);
      proc.once('error', (err) => {
        this.#spawnError = err;
        done();
      });
    });
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
      if (this.#stderr.length < 64 * 1024) this.#stderr += s;
    });
    // If the test process exits without stop(), the master (and with it its workers) still goes.
    process.once('exit', this.#onExit);
  }

  /** http://127.0.0.1:<port> */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** ws://127.0.0.1:<port> */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** The master's PID. */
  get pid(): number {
    return this.#proc.pid!;
  }

  get confPath(): string {
    return join(this.prefix, 'nginx.conf');
  }

  get errorLogPath(): string {
    return join(this.prefix, 'error.log');
  }

  /** The error log so far (empty when there is none yet). */
  async errorLog(): Promise<string> {
    return readFile(this.errorLogPath, 'utf8').catch(() => '');
  }

  /** The PIDs of every worker this master started (from the error log's "start worker process N"). */
  async workerPids(): Promise<number[]> {
    return [...(await this.errorLog()).matchAll(new RegExp(WORKER_STARTED, 'g'))].map((m) => Number(m[1]));
  }

  get running(): boolean {
    return !this.#gone && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /**
   * Renders the config, starts nginx on a free port, and resolves once it accepts connections and its
   * worker is up. A port taken in between (EADDRINUSE) is retried on another one.
   */
  static async start(opts: NginxOptions): Promise<Nginx> {
    const template = opts.template ?? readTemplate();
    for (let attempt = 1; ; attempt++) {
      const prefix = await makePrefix();
      const port = await freePort();
      const nginx = await Nginx.#spawn(prefix, port, renderConfig(template, { ...opts, listen: port, prefix }));
      try {
        await waitFor(
          async () => {
            if (!nginx.running) throw new Error('exited');
            return WORKER_STARTED.test(await nginx.errorLog()) && (await accepts(port));
          },
          START_TIMEOUT_MS,
          (why) => nginx.#failure(`nginx did not start on 127.0.0.1:${port} (${why})`),
        ).catch(async (err: unknown) => {
          if ((err as Error).message === 'exited')
            throw await nginx.#failure(`nginx exited (${nginx.#exitStatus()}) before it was ready`);
          throw err;
        });
        return nginx;
      } catch (err) {
        const log = `${await nginx.errorLog()}${nginx.#stderr}`;
        await nginx.stop();
        if (attempt < START_ATTEMPTS && /Address already in use/.test(log)) continue;
        throw err;
      }
    }
  }

  static async #spawn(prefix: string, port: number, conf: string): Promise<Nginx> {
    const path = join(prefix, 'nginx.conf');
    await writeFile(path, conf);
    // `-e`: nginx's messages from before it has read the config go to the same log, not to its
    // compiled-in path. `daemon off`: the master stays this child, so its PID is ours to signal.
    const proc = spawn(NGINX_BIN, ['-p', prefix, '-c', path, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new Nginx(port, prefix, proc);
  }

  /**
   * Writes the new config, checks it (`nginx -t`), sends SIGHUP to the master, and resolves once a new
   * worker is up and the old one is shutting down (the error log says both), so new connections get
   * the new settings. The upstream ports may change too. A config nginx refuses throws, and the
   * running nginx keeps its old config (as nginx itself does).
   */
  async reload(opts: NginxOptions): Promise<void> {
    if (!this.running) throw new Error('nginx: reload() after it exited');
    const next = join(this.prefix, 'nginx.next.conf');
    await writeFile(
      next,
      renderConfig(opts.template ?? readTemplate(), { ...opts, listen: this.port, prefix: this.prefix }),
    );
    const check = runConfigTest(next, this.prefix);
    if (check.status !== 0)
      throw new Error(
        `nginx -t refused the new config; the old one stays:\n${`${check.stdout}${check.stderr}`.trim()}`,
      );
    await rename(next, this.confPath);
    const from = (await stat(this.errorLogPath)).size;
    const since = async () => (await this.errorLog()).slice(from);
    process.kill(this.pid, 'SIGHUP');
    await waitFor(
      async () => {
        const log = await since();
        if (/\[(emerg|alert|crit)\]/.test(log)) throw await this.#failure('nginx refused the reload');
        return WORKER_STARTED.test(log) && log.includes('gracefully shutting down') && (await accepts(this.port));
      },
      RELOAD_TIMEOUT_MS,
      (why) => this.#failure(`nginx reload not done (${why})`),
    );
  }

  /**
   * Stops nginx by its PID: SIGQUIT (graceful: requests in progress finish), SIGTERM if it is still up
   * after QUIT_TIMEOUT_MS, SIGKILL (of the master and its workers) after TERM_TIMEOUT_MS more. Then
   * removes the prefix. Resolves with the signal that ended it; calling it again gives the same answer.
   */
  stop(): Promise<StopSignal> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<StopSignal> {
    let signal: StopSignal = 'SIGQUIT';
    if (this.running) {
      const gone = (ms: number) => Promise.race([this.#exited.then(() => true), tick(ms).then(() => false)]);
      signalPid(this.pid, 'SIGQUIT');
      if (!(await gone(QUIT_TIMEOUT_MS))) {
        signal = 'SIGTERM';
        signalPid(this.pid, 'SIGTERM');
        if (!(await gone(TERM_TIMEOUT_MS))) {
          signal = 'SIGKILL';
          // Workers outlive a killed master: kill them first, by the PIDs the log named.
          for (const pid of await this.workerPids()) signalPid(pid, 'SIGKILL');
          signalPid(this.pid, 'SIGKILL');
          await this.#exited;
        }
      }
    }
    await this.#exited;
    process.off('exit', this.#onExit);
    await rm(this.prefix, { recursive: true, force: true });
    return signal;
  }

  /** On process exit without stop(): SIGTERM to the master (it ends its workers), and the prefix goes. */
  #killNow(): void {
    if (this.running) this.#proc.kill('SIGTERM');
    rmSync(this.prefix, { recursive: true, force: true });
  }

  #exitStatus(): string {
    return this.#spawnError?.message ?? this.#proc.signalCode ?? String(this.#proc.exitCode);
  }

  async #failure(what: string): Promise<Error> {
    const log = (await this.errorLog()).trim() || '(empty)';
    const stderr = this.#stderr.trim();
    return new Error(
      `${what}; ${NGINX_BIN}, prefix ${this.prefix}\nerror log:\n${log}${stderr ? `\nstderr:\n${stderr}` : ''}`,
    );
  }
}
