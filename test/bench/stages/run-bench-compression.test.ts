/**
 * Compression through the real harness: the lab in processes of its own, uncompressed and compressed
 * (permessage-deflate with context takeover, gzip), realistic chat messages (bench/measure/payloads.ts);
 * the clients offer and decode compression as browsers do. Assertions are counts: every message
 * delivered once, and fewer bytes on the wire where a connection keeps its compression context.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { payloadData } from '../../../bench/measure/payloads.js';
import { Progress } from '../../../bench/plan/progress.js';
import { ServerPool } from '../../../bench/processes/server-process.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { validateReport } from '../../../report/schema.js';
import type { ScenarioResult } from '../../../report/types.js';

const pool = new ServerPool();
afterAll(() => pool.stop());

describe('compression in the bench', () => {
  it('realistic messages: each payload kind carries its schedule and differs per message', () => {
    for (const kind of ['chat', 'tick', 'patch'] as const) {
      const a = payloadData(kind, 1000, 1);
      const b = payloadData(kind, 1000, 2);
      expect(a.t).toBe(1000);
      expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
      // The same message for the same index, on every server.
      expect(payloadData(kind, 1000, 1)).toEqual(a);
    }
  });

  it('the same chat feed uncompressed and compressed: all delivered, fewer bytes per message over WebSocket and SSE', async () => {
    const opts = parseBenchArgs([
      ...['--compare-compression', '--repeats', '1', '--max-publisher-lag-ms', '2000', '--no-memory'],
      ...['--transports', 'ws,sse,poll'],
    ]);
    const base = {
      clients: 4,
      ratePerSec: 50,
      payloadBytes: 100,
      durationSec: 0.6,
      payload: 'chat' as const,
      servers: ['lab' as const],
    };
    opts.scenarios = [
      { ...base, name: 'plain' },
      { ...base, name: 'deflate', compression: 'on' },
    ];
    const report = await runBench(opts, new Progress(process.stderr, true), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    expect(report.scenarios).toHaveLength(6);
    const row = (name: string, t: string): ScenarioResult =>
      report.scenarios.find((s) => s.name === name && s.transport === t)!;
    for (const s of report.scenarios) {
      expect(s.status, `${s.name} ${s.transport}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.delivered).toBe(s.expected);
      expect(s.payload).toBe('chat');
    }
    expect(row('deflate', 'ws').compression).toBe('on');
    expect(row('plain', 'ws').compression).toBeUndefined();
    for (const t of ['ws', 'sse']) {
      const plain = row('plain', t).wire.bytesOutPerMsg.median!;
      const deflated = row('deflate', t).wire.bytesOutPerMsg.median!;
      expect(deflated, t).toBeLessThan(plain * 0.8);
    }
  });

  it('memory per connection with each compression setting, idle and after one message to every client', async () => {
    const opts = parseBenchArgs([
      ...['--compare-compression', '--repeats', '1', '--memory-connections', '20'],
      ...['--transports', 'ws'],
    ]);
    opts.scenarios = [];
    const report = await runBench(opts, new Progress(process.stderr, true), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    // Plain (idle), then each compression idle and active (each of the 20 clients received its message).
    expect(report.memory.map((m) => [m.compression ?? 'plain', m.active ?? false])).toEqual([
      ['plain', false],
      ['on', false],
      ['on', true],
      ['no-context-takeover', false],
      ['no-context-takeover', true],
    ]);
    for (const m of report.memory) {
      expect(m.status, `${m.compression} ${m.active}: ${m.reason ?? ''}`).toBe('ok');
      expect(m.connections).toBe(20);
      expect(m.heapBytesPerConn.median).not.toBeNull();
    }
  });
});
