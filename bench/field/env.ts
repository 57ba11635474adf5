/**
 * What every field-failure scenario (bench/field/*.ts) is given: real lab processes (bench/servers/lab.ts,
 * restartable on the same port), real nginx (bench/processes/nginx.ts, the shipped deploy/nginx.conf rendered with
 * the scenario's settings), and the bench's audited run (bench/measure/run-scenario.ts: every delivery checked
 * per client, the publisher's schedule checked). Everything a scenario starts is stopped by `close()`.
 */
import type { ConfigInput } from '../../server/config.js';
import type { HeaderMode } from '../clients/browser-headers.js';
import { Nginx, type NginxOptions } from '../processes/nginx.js';
import type { Progress } from '../plan/progress.js';
import type { FieldResult, TransportName } from '../../report/types.js';
import { runScenario, type RunResult } from '../measure/run-scenario.js';
import { startServer, type ServerHandle } from '../processes/server-process.js';
import { target } from '../plan/targets.js';

export interface FieldLoad {
  clients: number;
  ratePerSec: number;
  payloadBytes: number;
  durationSec: number;
  /** The hold long-polling clients ask for (default the lab's 25 s). */
  longPollTimeoutMs?: number;
  /** How long the clients get to connect (default 30 s); past it the run throws ClientsNotConnected. */
  connectTimeoutMs?: number;
}

/** A lab process that can be restarted on its port (what a deploy does behind a proxy). */
export interface LabProcess {
  readonly handle: ServerHandle;
  readonly port: number;
  /** Stops the process and starts a new one with the same settings on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface FieldEnv {
  readonly log: Progress;
  /** Past these a row is INVALID: the harness set the pace (HARNESS_LIMITS unless the env was given others). */
  readonly limits: Readonly<HarnessLimits>;
  readonly redisUrl: string;
  readonly headers: HeaderMode;
  /** A Redis key prefix of the run's own for `name` (the feed instances of one scenario share it). */
  prefix(name: string): string;
  /** A lab in a process of its own (demo off, logging off) with `config` over the defaults. */
  lab(config?: ConfigInput, port?: number): Promise<LabProcess>;
  /** nginx in front of `upstreams`. */
  nginx(opts: NginxOptions): Promise<Nginx>;
  /** One audited run of `transport` clients through `proxy` against `lab`. */
  run(lab: LabProcess, transport: TransportName, proxy: Nginx | undefined, load: FieldLoad): Promise<RunResult>;
}

/**
 * Past these the harness, not the proxy or the lab, set the pace and a field row is INVALID: the
 * publisher's lag p99 against its schedule, and the client process's own event-loop delay p99.
 */
export interface HarnessLimits {
  publisherLagMs: number;
  clientLoopDelayMs: number;
}
export const HARNESS_LIMITS: Readonly<HarnessLimits> = Object.freeze({ publisherLagMs: 100, clientLoopDelayMs: 100 });

/** A scenario's own schedule (drains a given time apart, a settle period), never a test's wait for an event. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * What makes a field run INVALID: the harness could not keep its schedule, or nothing was measured.
 * Lost messages, client errors and cut connections are the symptoms the scenario looks for, not a
 * broken harness: they are reported as measured.
 */
export function harnessProblem(r: RunResult, limits: Readonly<HarnessLimits>): string | undefined {
  if (r.outcome.status === 'invalid' && r.published === 0) return r.outcome.reason;
  if (r.publisherLagMs.p99 > limits.publisherLagMs)
    return `publisher fell behind its schedule (lag p99 ${r.publisherLagMs.p99.toFixed(1)} ms)`;
  if (r.delivered === 0) return 'nothing was delivered';
  return undefined;
}

/** A row from a run: `symptoms` as measured, `fails` decided by the scenario, INVALID only for the harness. */
export function fieldRow(
  base: Omit<FieldResult, 'status' | 'reason' | 'verdict'>,
  r: RunResult | undefined,
  fails: boolean,
  problem: string | undefined,
  limits: Readonly<HarnessLimits>,
): FieldResult {
  const why = problem ?? (r ? harnessProblem(r, limits) : 'not run');
  return why
    ? { ...base, status: 'invalid', reason: why, verdict: 'invalid' }
    : { ...base, status: 'ok', verdict: fails ? 'fails' : 'works' };
}

/**
 * The tests' shorter way through a scenario's cases: the naive cases in their order on `labs.naive`,
 * the lab cases in theirs on `labs.lab`, the two lanes at once; the rows come back in the cases' order.
 */
export async function inLanes<C extends { setting: 'naive' | 'lab' }>(
  cases: readonly C[],
  labs: Readonly<Record<'naive' | 'lab', LabProcess>>,
  measure: (c: C, lab: LabProcess) => Promise<FieldResult>,
): Promise<FieldResult[]> {
  const rows: FieldResult[] = [];
  await Promise.all(
    (['naive', 'lab'] as const).map(async (setting) => {
      for (const [i, c] of cases.entries()) if (c.setting === setting) rows[i] = await measure(c, labs[setting]);
    }),
  );
  return rows;
}

export async function fieldEnv(opts: {
  log: Progress;
  redisUrl: string;
  keyPrefix: string;
  headers: HeaderMode;
  /**
   * Other harness limits than HARNESS_LIMITS: the tests, beside other suites on two cores, allow more —
   * their assertions are counts (lost, duplicated, clients back, refusals), which a late harness does not
   * change; the committed field report keeps the bench's.
   */
  limits?: Partial<HarnessLimits>;
}): Promise<FieldEnv & { close(): Promise<void> }> {
  const labs = new Set<LabProcess>();
  const proxies = new Set<Nginx>();
  const env: FieldEnv & { close(): Promise<void> } = {
    log: opts.log,
    limits: Object.freeze({ ...HARNESS_LIMITS, ...opts.limits }),
    redisUrl: opts.redisUrl,
    headers: opts.headers,
    prefix: (name) => `${opts.keyPrefix}-${name}`,
    async lab(config = {}, port?: number) {
      let handle = await startServer('lab', { config, ...(port ? { port } : {}) });
      const fixed = handle.port;
      const lab: LabProcess = {
        get handle() {
          return handle;
        },
        port: fixed,
        async restart() {
          await handle.stop();
          handle = await startServer('lab', { config, port: fixed });
        },
        async stop() {
          labs.delete(lab);
          await handle.stop();
        },
      };
      labs.add(lab);
      return lab;
    },
    async nginx(o) {
      const n = await Nginx.start(o);
      proxies.add(n);
      return n;
    },
    async run(lab, transport, proxy, load) {
      const t = target('lab', transport)!;
      return runScenario(lab.handle, t, {
        ...load,
        maxPublisherLagMs: env.limits.publisherLagMs,
        headers: opts.headers,
        cookieBytes: 0,
        ...(proxy ? { proxy: { baseUrl: proxy.url } } : {}),
      });
    },
    async close() {
      await Promise.all([...proxies].map((p) => p.stop().catch(() => {})));
      await Promise.all([...labs].map((l) => l.stop().catch(() => {})));
    },
  };
  return env;
}
