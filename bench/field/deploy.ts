/**
 * Field failure 5, rolling deploy: two lab instances (Redis feed, one prefix) behind nginx round robin;
 * instance A is stopped gracefully (its clients reconnect through nginx to B), started again on its
 * port, then the same for B. `naive`: shutdownSpreadMs 0, every stream and socket of the instance closed
 * at once, so the survivor takes all of them in one burst; `lab`: the closes spread over a window.
 * Both rows: the lab's fixed `retry: 1000`, clients reconnecting after a fixed 100 ms (bench/clients),
 * SSE clients reopening a closed EventSource (bench/field/storm.ts).
 *
 * Between the two drains the scenario waits out nginx's fail_timeout (10 s, with max_fails 1): a
 * connect refused by the stopped instance marks it unavailable that long, and B's clients would then
 * have nowhere to go but B.
 */
import type { FieldResult } from '../../report/types.js';
import { publishInWorker } from '../measure/publisher.js';
import { nowMs } from '../measure/recorder.js';
import type { ServerStats } from '../processes/server-process.js';
import { type FieldEnv, type LabProcess, sleep } from './env.js';
import { clientLoop, drainFleet, Fleet, type FleetCounts, publisherProblem, RateSampler } from './storm.js';

export interface DeployOptions {
  counts?: FleetCounts;
  /** The lab row's shutdownSpreadMs. @default 2000 */
  spreadMs?: number;
  ratePerSec?: number;
  settings?: readonly ('naive' | 'lab')[];
  /** Wait between the two drains (nginx's fail_timeout). @default 10500 */
  settleMs?: number;
}

const DEFAULT_COUNTS: FleetCounts = { sse: 250, ws: 250, poll: 0 };
const streams = (s: ServerStats) => s.transports.sse.requests + s.transports.ws.requests;
const open = (s: ServerStats) => s.transports.sse.connections + s.transports.ws.connections;

export const DEPLOY = Object.freeze({
  peak: 'peak reconnects/s at the surviving instance',
  moved: 'slowest drain: until every client is on the other instance ms',
  stop: 'slowest graceful stop ms',
  errors: 'client errors',
  lost: 'lost',
  duplicated: 'duplicated',
  reordered: 'reordered',
  resets: 'resets',
});

export async function measureDeploy(env: FieldEnv, opts: DeployOptions = {}): Promise<FieldResult[]> {
  const counts = opts.counts ?? DEFAULT_COUNTS;
  const spreadMs = opts.spreadMs ?? 2_000;
  const ratePerSec = opts.ratePerSec ?? 2;
  const settleMs = opts.settleMs ?? 10_500;
  const total = counts.sse + counts.ws + counts.poll;
  const cases = [
    {
      setting: 'naive' as const,
      what: 'shutdownSpreadMs 0: a stopping instance closes every SSE stream and WebSocket at once',
      spread: 0,
    },
    {
      setting: 'lab' as const,
      what: `shutdownSpreadMs ${spreadMs}: the closes spread evenly over ${spreadMs / 1000} s`,
      spread: spreadMs,
    },
  ].filter((c) => !opts.settings || opts.settings.includes(c.setting));
  const rows: FieldResult[] = [];
  for (const c of cases) {
    env.log.step(`field rolling-deploy: ${c.setting}, ${total} clients, two labs drained one after the other`, 40);
    const config = {
      feed: env.redisUrl,
      redisKeyPrefix: env.prefix(`deploy-${c.setting}`),
      shutdownSpreadMs: c.spread,
    };
    const a = await env.lab(config);
    const b = await env.lab(config);
    const publisherLab = await env.lab(config);
    const proxy = await env.nginx({ upstreams: [a.port, b.port] });
    const since = (await publisherLab.handle.stats()).feed.lastId;
    const publishSec = 1 + 2 * (spreadMs / 1000 + 4) + settleMs / 1000 + 2;
    const fleet = new Fleet(
      proxy.url,
      { protocol: 'http/1.1', headers: env.headers, cookieBytes: 0 },
      counts,
      since,
      Math.ceil(ratePerSec * publishSec) + 16,
      'immediate',
    );
    const s: Record<string, number | null> = Object.fromEntries(Object.values(DEPLOY).map((k) => [k, null]));
    let problem: string | undefined;
    let fails = true;
    try {
      await Promise.race([
        fleet.ready,
        sleep(60_000).then(() => Promise.reject(new Error('clients not connected after 60 s'))),
      ]);
      const both = async () => open(await a.handle.stats()) + open(await b.handle.stats());
      for (const deadline = performance.now() + 30_000; (await both()) < total; await sleep(100)) {
        if (performance.now() > deadline) throw new Error('clients not all connected after 30 s');
      }
      const publishing = publishInWorker({
        controlUrl: publisherLab.handle.controlUrl,
        ratePerSec,
        payloadBytes: 100,
        durationSec: publishSec,
      });
      await sleep(1_000);
      const loop = clientLoop();
      const errorsBefore = fleet.recorder.errors;
      let peak = 0;
      let moved = 0;
      let stopMs = 0;
      const drain = async (gone: LabProcess, survivor: LabProcess) => {
        const sampler = new RateSampler(async () => streams(await survivor.handle.stats()));
        const start = nowMs();
        await gone.handle.stop();
        stopMs = Math.max(stopMs, nowMs() - start);
        for (
          const deadline = performance.now() + 15_000;
          open(await survivor.handle.stats()) < total && performance.now() < deadline;
        )
          await sleep(50);
        moved = Math.max(moved, nowMs() - start);
        await sleep(500);
        peak = Math.max(peak, await sampler.stop());
        await gone.restart();
      };
      await drain(a, b);
      await sleep(settleMs);
      await drain(b, a);
      const clientLoopP99 = loop.stop();
      s[DEPLOY.peak] = Math.round(peak);
      s[DEPLOY.moved] = Math.round(moved);
      s[DEPLOY.stop] = Math.round(stopMs);
      s[DEPLOY.errors] = fleet.recorder.errors - errorsBefore;
      const pub = await publishing;
      const counted = await drainFleet(fleet, pub);
      s[DEPLOY.lost] = counted.lost;
      s[DEPLOY.duplicated] = counted.duplicated;
      s[DEPLOY.reordered] = counted.reordered;
      s[DEPLOY.resets] = counted.resets;
      fails = counted.lost + counted.duplicated + counted.reordered + counted.resets > 0;
      problem =
        publisherProblem(pub, env.limits) ??
        (clientLoopP99 > env.limits.clientLoopDelayMs
          ? `the client process fell behind (its event-loop delay p99 ${clientLoopP99.toFixed(1)} ms > ${env.limits.clientLoopDelayMs} ms)`
          : undefined);
    } catch (err) {
      problem = `run failed: ${(err as Error).message}`;
    } finally {
      await fleet.close();
      await proxy.stop();
      await Promise.all([a.stop(), b.stop(), publisherLab.stop()]);
    }
    const base = {
      scenario: 'rolling-deploy',
      title: `Rolling deploy: ${counts.sse} SSE + ${counts.ws} WebSocket${counts.poll ? ` + ${counts.poll} long-poll` : ''} clients through nginx round robin to two labs (Redis feed), each drained and restarted in turn, ${ratePerSec} msg/s`,
      setting: c.setting,
      what: c.what,
      transport: counts.poll ? 'sse+ws+poll' : 'sse+ws',
      symptoms: s,
    };
    rows.push(
      problem
        ? { ...base, status: 'invalid', reason: problem, verdict: 'invalid' }
        : { ...base, status: 'ok', verdict: fails ? 'fails' : 'works' },
    );
  }
  return rows;
}
