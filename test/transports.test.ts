import { describe, expect, it } from 'vitest';
import { SseClient, WsClient, pollUntil, publishMany, range, startLab, until } from './helpers.js';

describe('one feed, three transports', () => {
  it('delivers the same ids in the same order on poll, SSE and WebSocket', async () => {
    const lab = await startLab();
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await ws.opened;
    await until(() => sse.opens === 1 && sse.eventsOf('hello').length === 1);
    const polled = pollUntil(lab.url, 0, 50);
    const ids = await publishMany(lab.url, 50, (i) => ({ i, text: `héllo ✓ ${i}\n` }));
    expect(ids).toEqual(range(1, 50));
    await until(() => ws.messages.length === 50 && sse.messages.length === 50);
    expect(ws.ids()).toEqual(ids);
    expect(sse.ids()).toEqual(ids);
    expect((await polled).map((m) => m.id)).toEqual(ids);
    expect(sse.messages[3]?.data).toEqual({ i: 3, text: 'héllo ✓ 3\n' });
    expect(ws.messages).toEqual(sse.messages);
  });
});
