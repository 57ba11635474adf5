/**
 * Idle memory per connection: heap and RSS after GC with N idle clients connected, minus the same
 * before they connected (after one unmeasured pass of the same clients); then again after they all
 * disconnected, which must come back.
 */
import { clientsOf } from '../clients/index.js';
import { figure } from '../../report/figures.js';
import type { Progress } from '../plan/progress.js';
import { Publisher } from '../measure/publisher.js';
import { Recorder } from '../measure/recorder.js';
import type { MemoryResult } from '../../report/types.js';
import type { ServerHandle } from '../processes/server-process.js';
import type { Target } from '../plan/targets.js';
import { memoryTargets, STEP_SEC, type BenchOptions } from '../plan/plan.js';
import type { HttpSetup } from '../plan/http-setup.js';
import type { Stage } from './stage.js';

/**
 * After every client has gone, the heap may keep this much of what the connections took (caches,
 * pooled buffers) before we call it a leak: a tenth of the connected delta, and at least 1 MiB.
 */
const RETAINED_FRACTION = 0.1;
const RETAINED_FLOOR_BYTES = 1024 * 1024;

async function waitConnections(server: ServerHandle, t: Target, n: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await server.stats()).transports[t.transport].connections === n) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** `connections` idle clients held while `held()` runs; then whether they all connected, and all closed again. */
async function holding<T>(
  server: ServerHandle,
  t: Target,
  connections: number,
  since: number,
  http: HttpSetup,
  held: () => Promise<T>,
  active = false,
) {
  const sink = new Recorder({ clients: connections });
  const group = clientsOf(t)({
    baseUrl: server.baseUrl,
    http,
    count: connections,
    since,
    sink,
    ...(t.compression ? { compression: true } : {}),
  });
  let connected = false;
  let value: T;
  try {
    await group.ready;
    connected = await waitConnections(server, t, connections, 30_000);
    if (active) {
      // One realistic message to every client: a compressor that allocates on first use has now.
      const before = sink.received;
      const publisher = new Publisher(server.controlUrl);
      await publisher.fill(1, 100).finally(() => publisher.close());
      const deadline = performance.now() + 15_000;
      while (sink.received < before + connections && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      connected &&= sink.received >= before + connections;
    }
    value = await held();
  } finally {
    await group.close();
  }
  return { value, connected, closed: await waitConnections(server, t, 0, 15_000) };
}

async function measure(server: ServerHandle, t: Target, connections: number, http: HttpSetup, active = false) {
  const since = (await server.stats()).feed.lastId;
  // The first time a server holds many connections of a transport it pays one-time costs that are not
  // per connection (code compiled again after GC flushed it, feedback vectors, pools, table growth):
  // measured here, the first of five measurements read up to 25% high and the others within ±5%. So the
  // same clients connect and leave once, unmeasured, before the measured pass.
  await holding(server, t, connections, since, http, async () => {}, active);
  const base = await server.gc();
  const held = await holding(server, t, connections, since, http, () => server.gc(), active);
  const after = await server.gc();
  let problem = !held.connected
    ? `only some of ${connections} clients connected${active ? ' (or received their message)' : ''}`
    : !held.closed
      ? 'connections did not close'
      : undefined;
  const heapDelta = held.value.heapUsedBytes - base.heapUsedBytes;
  const retained = after.heapUsedBytes - base.heapUsedBytes;
  if (retained > Math.max(RETAINED_FLOOR_BYTES, RETAINED_FRACTION * heapDelta)) {
    problem ??= `heap did not come back after disconnect: ${(retained / 1024).toFixed(0)} KiB retained of ${(heapDelta / 1024).toFixed(0)} KiB`;
  }
  return { heap: heapDelta / connections, rss: (held.value.rssBytes - base.rssBytes) / connections, retained, problem };
}

/** The memory stage: `memoryRepeats` measurements per target in memoryTargets() (the figure is their median); a failed one is INVALID with the reason. */
export async function runMemory(
  opts: BenchOptions,
  serverOf: (t: Target) => Promise<ServerHandle>,
  log: Progress,
): Promise<MemoryResult[]> {
  const out: MemoryResult[] = [];
  const connections = opts.memoryConnections;
  // Compressed targets are measured idle and active (after one message each); the others idle.
  const passes = memoryTargets(opts).flatMap((t) =>
    t.compression
      ? [
          { t, active: false },
          { t, active: true },
        ]
      : [{ t, active: false }],
  );
  for (const { t, active } of passes) {
    const what = `${t.server}/${t.transport}${t.compression ? ` compressed (${t.compression})` : ''}`;
    log.step(
      `${active ? 'active' : 'idle'} memory: ${what} with ${connections} connections`,
      STEP_SEC.memory(connections),
    );
    const ms: Awaited<ReturnType<typeof measure>>[] = [];
    let problem: string | undefined;
    try {
      for (let i = 0; i < opts.memoryRepeats && !problem; i++) {
        const m = await measure(
          await serverOf(t),
          t,
          connections,
          { protocol: t.protocol, headers: opts.headers, cookieBytes: opts.cookieBytes },
          active,
        );
        ms.push(m);
        problem = m.problem;
      }
    } catch (err) {
      problem = (err as Error).message;
    }
    out.push({
      server: t.server,
      transport: t.transport,
      connections,
      status: problem ? 'invalid' : 'ok',
      ...(problem ? { reason: problem } : {}),
      heapBytesPerConn: figure(ms.map((m) => m.heap)),
      rssBytesPerConn: figure(ms.map((m) => m.rss)),
      heapRetainedAfterCloseBytes: figure(ms.map((m) => m.retained)),
      ...(t.compression ? { compression: t.compression } : {}),
      ...(active ? { active: true as const } : {}),
    });
  }
  return out;
}

/** Idle memory, on memoryTargets(): heap is counted after a full GC, so load elsewhere does not move it. */
export const memoryStage: Stage = {
  name: 'memory',
  runs: (opts) => memoryTargets(opts).length > 0,
  targets: memoryTargets,
  estimateSec: (opts) =>
    memoryTargets(opts).reduce((n, t) => n + (t.compression ? 2 : 1), 0) *
    opts.memoryRepeats *
    STEP_SEC.memory(opts.memoryConnections),
  run: async ({ opts, log, processes }) => ({ memory: await runMemory(opts, (t) => processes.server(t), log) }),
};
