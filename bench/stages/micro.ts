/**
 * tinybench micro-benchmarks of the per-message encoding of each transport, using the server's own
 * encoders: an SSE event, a WebSocket frame (payload encode + ws framing), a poll batch body.
 */
import { Bench } from 'tinybench';
import * as ws from 'ws';
import { pollAnswer, pollBody, sseBatch, wsFrames, type Message } from '../../server/protocol.js';
import type { Progress } from '../plan/progress.js';
import { makeData } from '../measure/publisher.js';
import type { MicroResult, TransportName } from '../../report/types.js';
import { STEP_SEC, type BenchOptions } from '../plan/plan.js';
import type { Stage } from './stage.js';

// ws's frame builder (public on the Sender class, not in @types/ws).
const Sender = (ws as unknown as { Sender: { frame(data: Buffer, o: object): Buffer[] } }).Sender;

/** The micro stage, at the first scenario's payload size. */
export async function runMicro(opts: BenchOptions, log: Progress): Promise<MicroResult[]> {
  log.step('tinybench: per-message encoding', STEP_SEC.micro(opts.microTimeMs));
  const payloadBytes = opts.scenarios[0]?.payloadBytes ?? 100;
  const timeMs = opts.microTimeMs;
  const msg = (id: number): Message => ({
    id,
    ts: 1_795_000_000_000.123,
    data: makeData(1_795_000_000_000.5, payloadBytes),
  });
  const one = [msg(1)];
  const ten = Array.from({ length: 10 }, (_, i) => msg(i + 1));
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs / 2) });
  const cases: [string, TransportName, () => unknown][] = [
    ['sse event (1 message)', 'sse', () => sseBatch(one)],
    [
      'ws frame (1 message, payload + header)',
      'ws',
      () => Sender.frame(wsFrames(one)[0]!, { fin: true, opcode: 1, mask: false, readOnly: true, rsv1: false }),
    ],
    ['poll batch (10 messages)', 'poll', () => pollBody(pollAnswer(ten, 10, 'mem-bench'))],
  ];
  for (const [name, , fn] of cases) bench.add(name, fn);
  await bench.run();
  return cases.map(([name, transport]) => {
    const task = bench.getTask(name);
    const r = task?.result as
      | {
          state?: string;
          latency?: { mean: number; p99?: number; rme: number; samplesCount?: number };
          throughput?: { mean: number };
        }
      | undefined;
    if (!r?.latency || !r.throughput) throw new Error(`micro-benchmark "${name}" did not complete`);
    return {
      name,
      transport,
      opsPerSec: r.throughput.mean,
      meanNs: r.latency.mean * 1e6,
      p99Ns: (r.latency.p99 ?? NaN) * 1e6,
      rme: r.latency.rme,
      samples: r.latency.samplesCount ?? 0,
    };
  });
}

/** tinybench over the server's encoders, in this process: once the servers are stopped. */
export const microStage: Stage = {
  name: 'micro',
  runs: (opts) => opts.micro,
  estimateSec: (opts) => (opts.micro ? STEP_SEC.micro(opts.microTimeMs) : 0),
  afterProcesses: true,
  run: async ({ opts, log }) => ({ micro: await runMicro(opts, log) }),
};
