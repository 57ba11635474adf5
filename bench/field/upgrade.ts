/**
 * Field failure: a proxy that strips the `Upgrade` header, as some corporate proxies and old load
 * balancers do. The WebSocket handshake then reaches the lab as a plain GET /ws, which it answers
 * `426 Upgrade Required` (LAB_ERR_UPGRADE_REQUIRED): measured here is what fails (every handshake), how
 * fast a client learns it (from `new WebSocket()` to the refused answer), and what still works through
 * the same proxy (SSE and long polling, audited runs). The shipped deploy/nginx.conf, which forwards
 * `Upgrade` and `Connection: upgrade`, is the lab's setting: the same WebSocket probe opens there.
 *
 * The stripping proxy is nginx rendered from deploy/nginx.conf with `/ws`'s `proxy_set_header Upgrade ""`
 * and `Connection ""` (bench/processes/nginx.ts `stripUpgrade`); nothing else changes.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { FieldResult, TransportName } from '../../report/types.js';
import { figure } from '../../report/figures.js';
import type { RunResult } from '../measure/run-scenario.js';
import type { Nginx } from '../processes/nginx.js';
import { type FieldEnv, type FieldLoad, fieldRow, type LabProcess } from './env.js';

const LOAD: FieldLoad = { clients: 10, ratePerSec: 10, payloadBytes: 100, durationSec: 5 };
/** WebSocket handshakes the probe makes, one after the other. */
const HANDSHAKES = 10;
/** A handshake that neither opens nor fails within this long counts as hung (the probe's own deadline). */
const HANDSHAKE_DEADLINE_MS = 10_000;
const TITLE = 'A proxy that strips the Upgrade header: nginx forwarding /ws without Upgrade and Connection';

/** What one handshake came to: opened, or refused with an HTTP status, or failed otherwise, and when. */
interface Handshake {
  outcome: 'open' | 'refused' | 'error' | 'hung';
  status: number | null;
  ms: number;
}

/** One WebSocket handshake through `proxy`, timed from the constructor to its first outcome. */
function handshake(proxy: Nginx): Promise<Handshake> {
  return new Promise((resolve) => {
    const url = `${proxy.url.replace(/^http/, 'ws')}/ws?since=0`;
    const t0 = performance.now();
    const socket = new WebSocket(url);
    const done = (outcome: Handshake['outcome'], status: number | null) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.terminate();
      resolve({ outcome, status, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => done('hung', null), HANDSHAKE_DEADLINE_MS);
    socket.once('open', () => done('open', 101));
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      done('refused', res.statusCode ?? null);
    });
    socket.once('error', () => done('error', null));
  });
}

async function probe(proxy: Nginx, count: number): Promise<Handshake[]> {
  const out: Handshake[] = [];
  for (let i = 0; i < count; i++) out.push(await handshake(proxy));
  return out;
}

/** The probe's symptoms: how many handshakes opened, were refused (and with which status), how long each took. */
function handshakeSymptoms(hs: readonly Handshake[]): Record<string, number | null> {
  const ms = figure(hs.map((h) => h.ms));
  const statuses = [...new Set(hs.filter((h) => h.status !== null && h.status !== 101).map((h) => h.status))];
  return {
    'handshakes tried': hs.length,
    'handshakes open': hs.filter((h) => h.outcome === 'open').length,
    'handshakes refused': hs.filter((h) => h.outcome === 'refused').length,
    'handshakes hung': hs.filter((h) => h.outcome === 'hung').length,
    'refusal HTTP status': statuses.length === 1 ? statuses[0]! : null,
    'time until the client knows ms (median)': ms.median,
    'time until the client knows ms (max)': ms.max,
  };
}

const runSymptoms = (r: RunResult | undefined): Record<string, number | null> => ({
  'latency p50 ms': r?.latencyMs.p50 ?? null,
  'latency p99 ms': r?.latencyMs.p99 ?? null,
  lost: r ? r.lost : null,
  'client errors': r ? r.clientErrors : null,
});

/** An audited run of `transport` through `proxy`; a run that threw is a problem of the row, not a crash of the stage. */
async function audited(
  env: FieldEnv,
  lab: LabProcess,
  transport: TransportName,
  proxy: Nginx,
  load: FieldLoad,
): Promise<{ r?: RunResult; problem?: string }> {
  try {
    return { r: await env.run(lab, transport, proxy, load) };
  } catch (err) {
    return { problem: `run failed: ${(err as Error).message}` };
  }
}

/** `load`: smaller runs for the tests. */
export async function measureUpgrade(env: FieldEnv, load: FieldLoad = LOAD): Promise<FieldResult[]> {
  const lab = await env.lab();
  const rows: FieldResult[] = [];
  const base = { scenario: 'upgrade-stripped', title: TITLE };
  try {
    const stripping = await env.nginx({ upstreams: [lab.port], settings: { stripUpgrade: true } });
    try {
      env.log.step('field upgrade-stripped: WebSocket handshakes through a proxy that strips Upgrade', 5);
      const hs = await probe(stripping, HANDSHAKES);
      const refused = hs.filter((h) => h.outcome !== 'open').length;
      const unreached = hs.every((h) => h.outcome === 'error');
      rows.push({
        ...base,
        setting: 'naive',
        what: 'the proxy strips Upgrade and Connection: every WebSocket handshake reaches the lab as a plain GET',
        transport: 'ws',
        symptoms: handshakeSymptoms(hs),
        ...(unreached
          ? { status: 'invalid', reason: 'no handshake got an answer: the proxy was not reached', verdict: 'invalid' }
          : { status: 'ok', verdict: refused > 0 ? 'fails' : 'works' }),
      });
      for (const transport of ['sse', 'poll'] as const) {
        env.log.step(`field upgrade-stripped: ${transport} through the same proxy`, load.durationSec + 3);
        const { r, problem } = await audited(env, lab, transport, stripping, load);
        rows.push(
          fieldRow(
            {
              ...base,
              setting: 'naive',
              what: 'through the same proxy: plain HTTP requests need no Upgrade',
              transport,
              symptoms: runSymptoms(r),
            },
            r,
            (r?.lost ?? 0) > 0 || (r?.clientErrors ?? 0) > 0,
            problem,
            env.limits,
          ),
        );
      }
    } finally {
      await stripping.stop();
    }
    const shipped = await env.nginx({ upstreams: [lab.port] });
    try {
      env.log.step('field upgrade-stripped: WebSocket through the shipped config', load.durationSec + 5);
      const hs = await probe(shipped, HANDSHAKES);
      const { r, problem } = await audited(env, lab, 'ws', shipped, load);
      const notOpen = hs.filter((h) => h.outcome !== 'open').length;
      rows.push(
        fieldRow(
          {
            ...base,
            setting: 'lab',
            what: 'the shipped deploy/nginx.conf forwards Upgrade and Connection: upgrade',
            transport: 'ws',
            symptoms: { ...handshakeSymptoms(hs), ...runSymptoms(r) },
          },
          r,
          notOpen > 0 || (r?.lost ?? 0) > 0 || (r?.clientErrors ?? 0) > 0,
          problem,
          env.limits,
        ),
      );
    } finally {
      await shipped.stop();
    }
  } finally {
    await lab.stop();
  }
  return rows;
}
