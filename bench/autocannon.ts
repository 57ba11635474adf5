/**
 * Request overhead with autocannon: `GET /poll` catch-up (answers at once with the retained messages)
 * and `POST /publish`. Both servers are filled with the same messages first so answers are the same size.
 */
import autocannon from 'autocannon';
import type { ServerHandle } from './server-process.js';

export interface CannonSpec {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

export interface CannonRun {
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  bytesPerRequest: number;
  errors: number;
  non2xx: number;
}

export async function runCannon(server: ServerHandle, spec: CannonSpec, connections: number, durationSec: number): Promise<CannonRun> {
  const base = spec.method === 'POST' ? server.controlUrl : server.baseUrl;
  const result = await autocannon({
    url: `${base}${spec.path}`,
    method: spec.method,
    connections,
    duration: durationSec,
    ...(spec.body ? { body: spec.body, headers: { 'content-type': 'application/json' } } : {}),
  });
  return {
    requestsPerSec: result.requests.average,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    // autocannon's throughput counts response bytes read from the socket, headers included.
    bytesPerRequest: result.requests.total > 0 ? result.throughput.total / result.requests.total : 0,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
