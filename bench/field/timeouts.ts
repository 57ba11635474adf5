/**
 * Field failure 2, idle timeouts: nginx's `proxy_read_timeout` shorter than the silence on a
 * connection. An SSE stream without heartbeats is cut (EventSource reconnects and resumes, but every
 * cut is a reconnect and a late message), a long poll held longer than the timeout gets a 504, a
 * WebSocket without pings is cut. The lab's settings keep each under the timeout: a heartbeat, a hold
 * shorter than the proxy's timeout, pings.
 *
 * Scaled to run in seconds: nginx's read timeout 60 s → 2 s (×1/30); the feed is quiet for 2.5 s
 * between messages (0.4 msg/s), longer than the timeout; the lab's SSE heartbeat (15 s in production,
 * a quarter of the 60 s timeout) and WebSocket ping (30 s) → 1 s, and its long-poll hold (25 s) → 1.5 s;
 * the naive server sends no heartbeat, no ping, and holds polls 5 s.
 */
import type { ConfigInput } from '../../server/config.js';
import type { FieldResult, TransportName } from '../../report/types.js';
import type { RunResult } from '../measure/run-scenario.js';
import { type FieldEnv, type FieldLoad, fieldRow, inLanes, type LabProcess } from './env.js';

const READ_TIMEOUT_SEC = 2;
/** Two and a half seconds of silence between messages, longer than the proxy's read timeout. */
const LOAD: FieldLoad = { clients: 10, ratePerSec: 0.4, payloadBytes: 100, durationSec: 10 };
const SCALING =
  'nginx proxy_read_timeout 60 s → 2 s; 2.5 s of silence between messages; the lab’s SSE heartbeat (15 s) and WebSocket ping (30 s) → 1 s, its long-poll hold (25 s) → 1.5 s; the naive server: no heartbeat, no ping, a 5 s hold';
const NEVER_MS = 3_600_000;

interface Case {
  transport: TransportName;
  setting: 'naive' | 'lab';
  what: string;
  config: ConfigInput;
  longPollTimeoutMs?: number;
}

const CASES: Case[] = [
  {
    transport: 'sse',
    setting: 'naive',
    what: 'no heartbeat: the stream is silent between messages',
    config: { sseHeartbeatMs: NEVER_MS },
  },
  {
    transport: 'sse',
    setting: 'lab',
    what: 'a comment heartbeat every 1 s, under the 2 s timeout',
    config: { sseHeartbeatMs: 1_000 },
  },
  {
    transport: 'poll',
    setting: 'naive',
    what: 'polls held 5 s, longer than the 2 s timeout',
    config: { pollTimeoutMs: 5_000 },
    longPollTimeoutMs: 5_000,
  },
  {
    transport: 'poll',
    setting: 'lab',
    what: 'polls held 1.5 s, under the 2 s timeout',
    config: { pollTimeoutMs: 1_500 },
    longPollTimeoutMs: 1_500,
  },
  {
    transport: 'ws',
    setting: 'naive',
    what: 'no pings: the connection is silent between messages',
    config: { wsPingIntervalMs: NEVER_MS },
  },
  {
    transport: 'ws',
    setting: 'lab',
    what: 'a ping every 1 s, under the 2 s timeout',
    config: { wsPingIntervalMs: 1_000 },
  },
];

/**
 * Connections the proxy cut, as the clients saw them: an EventSource fires one error per lost stream at
 * once (its reconnect waits for `retry:`, 1–3 s, and may fall after the window); a WebSocket client
 * reconnects 100 ms after a close, one request per cut. Polls are not cut: their symptom is the 504.
 */
const cuts = (t: TransportName, r: RunResult | undefined): number | null =>
  r === undefined || t === 'poll' ? null : t === 'sse' ? r.clientErrors : r.requests;

export interface TimeoutsOptions {
  /**
   * The tests: the naive cases one after the other on a lab with every naive setting, beside the lab
   * cases on a lab with every lab setting (inLanes; a setting acts on its own transport only: the
   * heartbeat on SSE, the hold on polls, the ping on WebSocket). Default: one case after the other,
   * each on a lab of its own with only its setting.
   */
  paired?: boolean;
}

const step = (env: FieldEnv, c: Case, load: FieldLoad) =>
  env.log.step(`field idle-timeouts: ${c.transport} ${c.setting}, ${c.what}`, load.durationSec + 5);

/** One case through a fresh nginx in front of `lab`, as a row. */
async function measureCase(env: FieldEnv, c: Case, lab: LabProcess, load: FieldLoad): Promise<FieldResult> {
  const proxy = await env.nginx({
    upstreams: [lab.port],
    settings: {
      sseReadTimeoutSec: READ_TIMEOUT_SEC,
      pollReadTimeoutSec: READ_TIMEOUT_SEC,
      wsReadTimeoutSec: READ_TIMEOUT_SEC,
    },
  });
  let r: RunResult | undefined;
  let problem: string | undefined;
  try {
    r = await env.run(lab, c.transport, proxy, {
      ...load,
      ...(c.longPollTimeoutMs ? { longPollTimeoutMs: c.longPollTimeoutMs } : {}),
    });
  } catch (err) {
    problem = `run failed: ${(err as Error).message}`;
  } finally {
    await proxy.stop();
  }
  const cut = cuts(c.transport, r);
  const errors = r?.clientErrors ?? 0;
  return fieldRow(
    {
      scenario: 'idle-timeouts',
      title: `Idle timeouts: nginx proxy_read_timeout ${READ_TIMEOUT_SEC} s, ${load.clients} clients, a message every 2.5 s for ${load.durationSec} s`,
      setting: c.setting,
      what: c.what,
      transport: c.transport,
      symptoms: {
        'connections cut': cut,
        'client errors (504s, stream errors)': r ? errors : null,
        lost: r ? r.lost : null,
        'latency max ms': r?.latencyMs.max ?? null,
      },
      scaling: SCALING,
    },
    r,
    (cut ?? 0) > 0 || errors > 0 || (r?.lost ?? 0) > 0,
    problem,
    env.limits,
  );
}

/** `load`: smaller runs for the tests (default LOAD: a message every 2.5 s, longer than the timeout). */
export async function measureTimeouts(
  env: FieldEnv,
  load: FieldLoad = LOAD,
  opts: TimeoutsOptions = {},
): Promise<FieldResult[]> {
  const rows: FieldResult[] = [];
  if (!opts.paired) {
    for (const c of CASES) {
      step(env, c, load);
      const lab = await env.lab(c.config);
      try {
        rows.push(await measureCase(env, c, lab, load));
      } finally {
        await lab.stop();
      }
    }
    return rows;
  }
  const settingsOf = (setting: Case['setting']): ConfigInput =>
    Object.assign({}, ...CASES.filter((c) => c.setting === setting).map((c) => c.config));
  const [naive, lab] = await Promise.all([env.lab(settingsOf('naive')), env.lab(settingsOf('lab'))]);
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
