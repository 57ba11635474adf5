/**
 * Idle memory per connection: heap and RSS after GC with N idle clients connected, minus the same
 * before they connected (after one unmeasured pass of the same clients); then again after they all
 * disconnected, which must come back.
 */
import { Recorder } from './recorder.js';
import type { ServerHandle } from './server-process.js';
import type { Target } from './targets.js';

export interface MemoryRun {
  heapBytesPerConn: number;
  rssBytesPerConn: number;
  heapRetainedAfterCloseBytes: number;
  problem?: string;
}

/**
 * After every client has gone, the heap may keep this much of what the connections took (caches,
 * pooled buffers) before we call it a leak: a tenth of the connected delta, and at least 1 MiB.
 */
const RETAINED_FRACTION = 0.1;
const RETAINED_FLOOR_BYTES = 1024 * 1024;

async function waitConnections(server: ServerHandle, t: Target, n: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await server.stats()).transports[t.statsKey].connections === n) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/**
 * The first time a server holds many connections of a transport it pays one-time costs that are not per
 * connection (code compiled again after GC flushed it, feedback vectors, pools, table growth): measured
 * here, the first of five measurements read up to 25% high and the others within ±5%. So the same
 * clients connect and leave once, unmeasured, before the measured pass.
 */
async function warmUp(server: ServerHandle, t: Target, connections: number, since: number): Promise<void> {
  const group = t.clients({ baseUrl: server.baseUrl, count: connections, since, sink: new Recorder({ clients: connections }) });
  try {
    await group.ready;
    await waitConnections(server, t, connections, 30_000);
  } finally {
    await group.close();
  }
  await waitConnections(server, t, 0, 15_000);
}

export async function measureIdleMemory(server: ServerHandle, t: Target, connections: number): Promise<MemoryRun> {
  const since = (await server.stats()).feed.lastId;
  await warmUp(server, t, connections, since);
  const base = await server.gc();
  const group = t.clients({ baseUrl: server.baseUrl, count: connections, since, sink: new Recorder({ clients: connections }) });
  let problem: string | undefined;
  let held = base;
  try {
    await group.ready;
    if (!(await waitConnections(server, t, connections, 30_000))) problem = `only some of ${connections} clients connected`;
    held = await server.gc();
  } finally {
    await group.close();
  }
  if (!(await waitConnections(server, t, 0, 15_000))) problem ??= 'connections did not close';
  const after = await server.gc();
  const heapDelta = held.heapUsedBytes - base.heapUsedBytes;
  const retained = after.heapUsedBytes - base.heapUsedBytes;
  if (retained > Math.max(RETAINED_FLOOR_BYTES, RETAINED_FRACTION * heapDelta)) {
    problem ??= `heap did not come back after disconnect: ${(retained / 1024).toFixed(0)} KiB retained of ${(heapDelta / 1024).toFixed(0)} KiB`;
  }
  return {
    heapBytesPerConn: heapDelta / connections,
    rssBytesPerConn: (held.rssBytes - base.rssBytes) / connections,
    heapRetainedAfterCloseBytes: retained,
    ...(problem ? { problem } : {}),
  };
}
