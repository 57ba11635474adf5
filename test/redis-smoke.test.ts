import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { WsClient, SseClient, pollUntil, publish, range, startLab, until } from './helpers.js';

it('two labs on one Redis feed serve the same messages', async () => {
  const redisKeyPrefix = `lab-test-${randomBytes(4).toString('hex')}`;
  const cfg = { feed: 'redis://127.0.0.1:6379/0', redisKeyPrefix };
  const a = await startLab(cfg);
  const b = await startLab(cfg);
  const ws = new WsClient(`${b.wsUrl}/ws?since=0`);
  const sse = new SseClient(`${b.url}/events?since=0`);
  await ws.opened;
  for (let i = 0; i < 10; i++) await publish(i % 2 ? a.url : b.url, { i });
  await until(() => ws.messages.length === 10 && sse.messages.length === 10);
  expect(ws.ids()).toEqual(range(1, 10));
  expect(sse.ids()).toEqual(range(1, 10));
  expect((await pollUntil(a.url, 0, 10)).map((m) => m.id)).toEqual(range(1, 10));
  expect(a.app.lab.feed.info().epoch).toBe(b.app.lab.feed.info().epoch);
});
