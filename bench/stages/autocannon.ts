/**
 * Request overhead with autocannon: `GET /poll` catch-up (answers at once with the retained messages)
 * and `POST /publish`. Every server is filled with the same messages first so answers are the same size.
 */
import autocannon from 'autocannon';
import { figure } from '../../report/figures.js';
import type { Progress } from '../plan/progress.js';
import { makeData, Publisher } from '../measure/publisher.js';
import type { AutocannonResult } from '../../report/types.js';
import type { ServerHandle } from '../processes/server-process.js';
import { target, type Target } from '../plan/targets.js';
import { cannonServers, STEP_SEC, type BenchOptions } from '../plan/plan.js';
import type { Stage } from './stage.js';

/** Messages (of PAYLOAD_BYTES) each server retains before the catch-up poll: the size of its answer. */
const CATCH_UP_MESSAGES = 10;
const PAYLOAD_BYTES = 100;
const CONNECTIONS = 10;

/** The requests measured; `since` is the feed's last id before the catch-up messages were published. */
const REQUESTS: { name: string; method: 'GET' | 'POST'; path: (since: number) => string; body?: string }[] = [
  {
    name: `poll catch-up (${CATCH_UP_MESSAGES} messages)`,
    method: 'GET',
    path: (since) => `/poll?since=${since}&timeout=0`,
  },
  {
    name: 'publish',
    method: 'POST',
    path: () => '/publish',
    body: JSON.stringify({ data: makeData(0, PAYLOAD_BYTES) }),
  },
];

/** The autocannon stage, on each server of cannonServers(); a run with errors or non-2xx answers is INVALID. */
export async function runAutocannon(
  opts: BenchOptions,
  serverOf: (t: Target) => Promise<ServerHandle>,
  log: Progress,
): Promise<AutocannonResult[]> {
  const out: AutocannonResult[] = [];
  const durationSec = opts.autocannonDurationSec;
  for (const s of cannonServers(opts)) {
    const server = await serverOf(target(s, 'poll', opts.lab)!);
    // Same retained content on every server (the publishes measured below add more after it).
    const since = (await server.stats()).feed.lastId;
    const pub = new Publisher(server.controlUrl);
    await pub.fill(CATCH_UP_MESSAGES, PAYLOAD_BYTES);
    await pub.close();
    for (const req of REQUESTS) {
      const path = req.path(since);
      log.step(`autocannon: ${s} ${req.method} ${path}`, STEP_SEC.cannon(durationSec));
      try {
        const r = await autocannon({
          url: `${req.method === 'POST' ? server.controlUrl : server.baseUrl}${path}`,
          method: req.method,
          connections: CONNECTIONS,
          duration: durationSec,
          ...(req.body ? { body: req.body, headers: { 'content-type': 'application/json' } } : {}),
        });
        const errors = r.errors + r.timeouts;
        const problem = errors > 0 || r.non2xx > 0 ? `${errors} errors, ${r.non2xx} non-2xx answers` : undefined;
        out.push({
          name: req.name,
          server: s,
          method: req.method,
          path,
          connections: CONNECTIONS,
          durationSec,
          status: problem ? 'invalid' : 'ok',
          ...(problem ? { reason: problem } : {}),
          requestsPerSec: figure([r.requests.average]),
          latencyMs: { p50: figure([r.latency.p50]), p99: figure([r.latency.p99]) },
          // autocannon's throughput counts response bytes read from the socket, headers included.
          bytesPerRequest: figure([r.requests.total > 0 ? r.throughput.total / r.requests.total : 0]),
          errors,
          non2xx: r.non2xx,
        });
      } catch (err) {
        log.note(`  autocannon failed: ${(err as Error).message}`);
      }
    }
  }
  return out;
}

/** autocannon against the lab's HTTP endpoints (cleartext), on cannonServers(). */
export const autocannonStage: Stage = {
  name: 'autocannon',
  runs: (opts) => cannonServers(opts).length > 0,
  targets: (opts) => cannonServers(opts).map((s) => target(s, 'poll', opts.lab)!),
  // Poll catch-up and publish on each server.
  estimateSec: (opts) => cannonServers(opts).length * 2 * STEP_SEC.cannon(opts.autocannonDurationSec),
  run: async ({ opts, log, processes }) => ({ autocannon: await runAutocannon(opts, (t) => processes.server(t), log) }),
};
