/**
 * Field failure 1, proxy buffering: SSE through nginx with its default `proxy_buffering on`, from a
 * server that does not send `X-Accel-Buffering: no` (emulated with `proxy_ignore_headers
 * X-Accel-Buffering`), and the same with `gzip on` covering `text/event-stream`; then the lab, which
 * sends the header, behind the same nginx. Measured, not assumed: nginx 1.22 passes each chunk of a
 * buffered response on as it reads it to a client that keeps reading (buffering alone does not delay
 * events here), while gzip on a buffered stream holds everything, the response headers included, so
 * EventSource never even opens. Streams that did not open within CONNECT_MS are the symptom then.
 */
import type { FieldResult } from '../../report/types.js';
import { ClientsNotConnected, type RunResult } from '../measure/run-scenario.js';
import { type FieldEnv, type FieldLoad, fieldRow, inLanes, type LabProcess } from './env.js';

/** A stream of small events at a chat-like rate: a few hundred bytes a second, far below nginx's buffers. */
const LOAD: FieldLoad = { clients: 20, ratePerSec: 10, payloadBytes: 100, durationSec: 4 };
/** Deliveries later than this are "late": a user sees a stall. */
const LATE_MS = 500;
/** A stream whose headers have not arrived after this long is stalled (EventSource stays CONNECTING). */
const CONNECT_MS = 5_000;

const symptoms = (r: RunResult | undefined) => ({
  'latency p50 ms': r?.latencyMs.p50 ?? null,
  'latency p99 ms': r?.latencyMs.p99 ?? null,
  'latency max ms': r?.latencyMs.max ?? null,
  lost: r ? r.lost : null,
  'client errors': r ? r.clientErrors : null,
});
const stalledSymptoms = (clients: number) => ({
  'latency p50 ms': null,
  'latency p99 ms': null,
  'latency max ms': null,
  lost: null,
  'client errors': null,
  [`streams not open after ${CONNECT_MS / 1000} s`]: clients,
});

export interface BufferingOptions {
  /**
   * The tests: the naive cases one after the other on one lab, beside the lab cases on another (the
   * same settings; inLanes). Default: one case after the other, on one lab.
   */
  paired?: boolean;
}

const CASES = [
  {
    setting: 'naive',
    what: 'nginx default proxy_buffering on; the server sends no X-Accel-Buffering (proxy_ignore_headers)',
    settings: { buffering: true, ignoreAccelBuffering: true },
  },
  {
    setting: 'lab',
    what: 'the same nginx (proxy_buffering on); the lab sends X-Accel-Buffering: no',
    settings: { buffering: true, ignoreAccelBuffering: false },
  },
  {
    setting: 'naive',
    what: 'nginx gzip on with gzip_types text/event-stream, proxy_buffering on, no X-Accel-Buffering',
    settings: { buffering: true, ignoreAccelBuffering: true, gzip: true },
  },
  {
    setting: 'lab',
    what: 'the same gzip on; the lab sends X-Accel-Buffering: no',
    settings: { buffering: true, ignoreAccelBuffering: false, gzip: true },
  },
] as const;
type Case = (typeof CASES)[number];

const step = (env: FieldEnv, c: Case, load: FieldLoad) =>
  env.log.step(`field proxy-buffering: ${c.setting}, ${c.what}`, load.durationSec + 4);

/** One case through a fresh nginx in front of `lab`, as a row. */
async function measureCase(env: FieldEnv, c: Case, lab: LabProcess, load: FieldLoad): Promise<FieldResult> {
  const proxy = await env.nginx({ upstreams: [lab.port], settings: c.settings });
  let r: RunResult | undefined;
  let problem: string | undefined;
  let stalled = false;
  try {
    r = await env.run(lab, 'sse', proxy, { ...load, connectTimeoutMs: CONNECT_MS });
  } catch (err) {
    if (err instanceof ClientsNotConnected) stalled = true;
    else problem = `run failed: ${(err as Error).message}`;
  } finally {
    await proxy.stop();
  }
  const p99 = r?.latencyMs.p99 ?? null;
  const base = {
    scenario: 'proxy-buffering',
    title: `Proxy buffering: SSE through nginx, ${load.clients} clients × ${load.ratePerSec} msg/s × ${load.payloadBytes} B × ${load.durationSec} s; late = later than ${LATE_MS} ms`,
    setting: c.setting,
    what: c.what,
    transport: 'sse',
  };
  if (stalled) return { ...base, status: 'ok', symptoms: stalledSymptoms(load.clients), verdict: 'fails' };
  return fieldRow(
    { ...base, symptoms: { ...symptoms(r), [`streams not open after ${CONNECT_MS / 1000} s`]: 0 } },
    r,
    p99 === null || p99 > LATE_MS || (r?.lost ?? 0) > 0,
    problem,
    env.limits,
  );
}

/** `load`: smaller runs for the tests (default LOAD). */
export async function measureBuffering(
  env: FieldEnv,
  load: FieldLoad = LOAD,
  opts: BufferingOptions = {},
): Promise<FieldResult[]> {
  const rows: FieldResult[] = [];
  if (!opts.paired) {
    const lab = await env.lab();
    for (const c of CASES) {
      step(env, c, load);
      rows.push(await measureCase(env, c, lab, load));
    }
    await lab.stop();
    return rows;
  }
  const [naive, lab] = await Promise.all([env.lab(), env.lab()]);
  try {
    rows.push(
      ...(await inLanes(CASES, { naive, lab }, (c, on) => {
        step(env, c, load);
        return measureCase(env, c, on, load);
      })),
    );
  } finally {
    await Promise.all([naive.stop(), lab.stop()]);
  }
  return rows;
}
