/**
 * The gate's positive control (bench/servers/doctor.ts) rests on AppOptions.extraWork being called with every
 * batch each client is given, on each transport, and on nothing else: here with real clients of each
 * transport, counting the messages the hook saw against the messages the clients received.
 */
import { describe, expect, it } from 'vitest';
import type { Message } from '../../../server/feed/types.js';
import type { ExtraWork } from '../../../server/transports/params.js';
import { DOCTOR_UNITS, doctorWork } from '../../../bench/servers/doctor.js';
import { TRANSPORT_NAMES, type TransportName } from '../../../report/types.js';
import { poll, pollUntil, publishMany, SseClient, startLab, until, WsClient } from '../../helpers/lab.js';

describe('extraWork: the doctored lab', () => {
  it('is called with every message delivered to each client, per transport, and only for the transports named', async () => {
    const seen: Record<TransportName, number[]> = { poll: [], 'short-poll': [], sse: [], ws: [] };
    const extraWork: ExtraWork = Object.fromEntries(
      TRANSPORT_NAMES.map((t) => [t, (ms: readonly Message[]) => seen[t].push(...ms.map((m) => m.id))]),
    );
    const lab = await startLab({}, { extraWork });
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await ws.opened;
    await until(() => sse.opens === 1);
    const held = pollUntil(lab.url, 0, 3);
    const ids = await publishMany(lab.url, 3);
    await until(() => ws.ids().length === 3 && sse.ids().length === 3);
    expect((await held).map((m) => m.id)).toEqual(ids);
    const short = await poll(lab.url, 'since=0&timeout=0');
    expect(short.body.messages.map((m) => m.id)).toEqual(ids);

    expect(seen.ws).toEqual(ids);
    expect(seen.sse).toEqual(ids);
    expect(seen.poll).toEqual(ids);
    expect(seen['short-poll']).toEqual(ids);

    // Only the transports named: a lab doctored on WebSocket does nothing more on the others.
    expect(Object.keys(doctorWork(['ws']))).toEqual(['ws']);
  });

  it('does whole re-encodings on average: a fractional unit carries over to the next message', () => {
    const calls: number[] = [];
    const original = JSON.stringify;
    let n = 0;
    JSON.stringify = ((...args: Parameters<typeof JSON.stringify>) => {
      n++;
      return original(...args);
    }) as typeof JSON.stringify;
    try {
      const work = doctorWork(['sse']).sse!;
      const message: Message = { id: 1, ts: 0, data: { p: 'x' } };
      for (let i = 0; i < 10; i++) {
        n = 0;
        work([message]);
        calls.push(n);
      }
    } finally {
      JSON.stringify = original;
    }
    // 2.7 per message (SSE): 2 or 3 each time, 27 in ten messages.
    expect(DOCTOR_UNITS.sse).toBe(2.7);
    expect(calls.every((c) => c === 2 || c === 3)).toBe(true);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(27);
  });
});
