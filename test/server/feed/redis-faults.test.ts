/**
 * Faults of the Redis feed (issue 10): Redis refusing writes right after a reconnect must not leave the
 * feed down for good (#4), and what a poll gets while Redis is away must be what the README says (#13).
 *
 * Every test runs a redis-server of its own, on a free port, so it can pause, fill, kill and restart
 * it. Nothing sleeps for a fixed time: each step waits for what the clients (or Redis's own counters)
 * show.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Message } from '../../../server/feed/types.js';
import {
  SseClient,
  WsClient,
  publish,
  range,
  startLab,
  until,
  wsOrder,
  type PollAnswer,
  type RunningLab,
  type Seen,
} from '../../helpers/lab.js';
import { OwnRedis, freePort, withRedis } from '../../helpers/redis.js';

// ---- helpers local to this file --------------------------------------------------------------------

const ids = (messages: readonly Message[]): number[] => messages.map((m) => m.id);
const epochOf = (lab: RunningLab) => lab.app.lab.feed.info().epoch;

/** A lab on `redis` with a key prefix of its own (the Redis is the test's own: no cleanup needed). */
async function labOn(
  redis: OwnRedis,
  redisKeyPrefix = `lab-faults-${randomBytes(4).toString('hex')}`,
): Promise<RunningLab> {
  return startLab({ feed: redis.url, redisKeyPrefix, sseRetryMs: 50 });
}

/** An SSE client that records messages (by id) and the named events, feed-down / feed-up included, in order. */
function sseClient(lab: RunningLab, url: string) {
  const client = new SseClient(url);
  // Close the lab before the EventSource when the test ends (hooks run in reverse order).
  onTestFinished(() => lab.app.close());
  const seen: Seen = [];
  client.es.addEventListener('message', (e) => seen.push((JSON.parse(e.data) as Message).id));
  for (const type of ['hello', 'gap', 'reset', 'feed-down', 'feed-up'])
    client.es.addEventListener(type, () => seen.push(type));
  return { client, seen, count: (type: string) => seen.filter((x) => x === type).length };
}

type ErrorBody = { id?: number; error?: { code: string } };

/** POST /publish that never waits forever. */
async function tryPublish(url: string, data: unknown): Promise<{ status: number; body: ErrorBody }> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data }),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: (await res.json()) as ErrorBody };
}

type PollBody = PollAnswer & ErrorBody;

/** GET /poll that never waits forever (every poll here is answered at once). */
async function tryPoll(url: string, query: string): Promise<{ status: number; body: PollBody }> {
  const res = await fetch(`${url}/poll?${query}`, { signal: AbortSignal.timeout(8_000) });
  return { status: res.status, body: (await res.json()) as PollBody };
}

/** One admin command on the test's own Redis (a connection of its own, closed at once). */
const admin = (redis: OwnRedis, ...args: (string | number)[]) =>
  withRedis(redis.url, (r) => r.call(String(args[0]), ...args.slice(1)));

/** A counter from Redis's INFO, e.g. ('errorstats', 'errorstat_OOM', 'count'); 0 when absent. */
async function infoCount(redis: OwnRedis, section: string, line: string, field: string): Promise<number> {
  const text = await withRedis(redis.url, (r) => r.info(section));
  const found = text.split('\r\n').find((l) => l.startsWith(`${line}:`));
  const value = found
    ?.slice(line.length + 1)
    .split(',')
    .find((kv) => kv.startsWith(`${field}=`));
  return value === undefined ? 0 : Number(value.slice(field.length + 1));
}

/** Waits until an asynchronous condition holds (for conditions read from Redis). */
const untilAsync = (predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> =>
  vi.waitFor(
    async () => {
      if (!(await predicate())) throw new Error('condition not met yet');
    },
    { timeout: timeoutMs, interval: 20 },
  );

// ---- #4: the check after a reconnect fails once -----------------------------------------------------

describe('the Redis feed recovers when the check after a reconnect fails (issue 10, #4)', () => {
  it('writes paused right after a reconnect (CLIENT PAUSE WRITE, then CLIENT KILL): feed-down, the check is retried with backoff, feed-up; publishes work again and nothing is lost', async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start();
    const lab = await labOn(redis);
    const epoch = epochOf(lab);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    const wsSeen = wsOrder(ws);
    const sse = sseClient(lab, `${lab.url}/events?since=0`);
    await ws.opened;
    await until(() => sse.count('hello') === 1);
    expect(await publish(lab.url, { n: 1 })).toBe(1);
    expect(await publish(lab.url, { n: 2 })).toBe(2);
    await until(() => ws.messages.length === 2 && sse.client.messages.length === 2);
    const setsBefore = await infoCount(redis, 'commandstats', 'cmdstat_set', 'calls');

    // Writes are held for 4 s — longer than the feed's 2 s command timeout — and the lab's connections
    // are dropped: the lab reconnects at once (the connection is fine, reads work), and its check after
    // the reconnect, which writes (SET NX of the epoch), times out.
    await admin(redis, 'CLIENT', 'PAUSE', 4000, 'WRITE');
    await admin(redis, 'CLIENT', 'KILL', 'TYPE', 'normal');
    await until(() => ws.controlsOf('feed-down').length === 1 && sse.count('feed-down') === 1);
    expect(ws.controlsOf('feed-down')[0]).toMatchObject({ type: 'feed-down', code: 'LAB_ERR_FEED_UNAVAILABLE' });
    // Still down while the check cannot pass: publishing is refused at once, with the code.
    const refused = await tryPublish(lab.url, { lost: true });
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('LAB_ERR_FEED_UNAVAILABLE');

    // The pause ends by itself; the feed comes back without any other reconnect.
    await until(() => ws.controlsOf('feed-up').length === 1 && sse.count('feed-up') === 1);
    // The check did fail, and ran again: the timed-out SET and the retried one both reached Redis.
    expect(await infoCount(redis, 'commandstats', 'cmdstat_set', 'calls')).toBeGreaterThanOrEqual(setsBefore + 2);

    const after = await tryPublish(lab.url, { n: 3 });
    expect(after.status).toBe(201);
    expect(after.body.id).toBe(3);
    await until(() => ws.messages.length === 3 && sse.client.messages.length === 3);
    expect(wsSeen).toEqual(['hello', 1, 2, 'feed-down', 'feed-up', 3]);
    expect(sse.seen).toEqual(['hello', 1, 2, 'feed-down', 'feed-up', 3]);
    expect(ws.messages.map((m) => m.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(ws.closeCode).toBeUndefined();
    expect(sse.client.opens).toBe(1);
    // Same history, same epoch: a poll from 0 gets all three.
    const polled = await tryPoll(lab.url, 'since=0&timeout=0');
    expect(polled.status).toBe(200);
    expect(polled.body.epoch).toBe(epoch);
    expect(polled.body.messages).toEqual(ws.messages);
  }, 30_000);

  it('maxmemory reached right after a reconnect (every write refused with OOM): the check keeps being retried while memory is short, then feed-up and publishes work again', async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start();
    const lab = await labOn(redis);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    const wsSeen = wsOrder(ws);
    await ws.opened;
    expect(await publish(lab.url, { n: 1 })).toBe(1);
    await until(() => ws.messages.length === 1);
    const oomBefore = await infoCount(redis, 'errorstats', 'errorstat_OOM', 'count');

    await admin(redis, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await admin(redis, 'CONFIG', 'SET', 'maxmemory', 1);
    await admin(redis, 'CLIENT', 'KILL', 'TYPE', 'normal');
    await until(() => ws.controlsOf('feed-down').length === 1);
    // Refused twice: the check failed and was tried again (the old code tried once and gave up).
    await untilAsync(async () => (await infoCount(redis, 'errorstats', 'errorstat_OOM', 'count')) >= oomBefore + 2);
    const refused = await tryPublish(lab.url, { lost: true });
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('LAB_ERR_FEED_UNAVAILABLE');
    expect(ws.controlsOf('feed-up')).toEqual([]);

    await admin(redis, 'CONFIG', 'SET', 'maxmemory', 0);
    await until(() => ws.controlsOf('feed-up').length === 1);
    const after = await tryPublish(lab.url, { n: 2 });
    expect(after.status).toBe(201);
    expect(after.body.id).toBe(2);
    await until(() => ws.messages.length === 2);
    expect(wsSeen).toEqual(['hello', 1, 'feed-down', 'feed-up', 2]);
    expect(ws.closeCode).toBeUndefined();
  }, 30_000);

  it('closing the lab while the check is being retried: close() resolves and leaves no connection behind', async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start();
    const lab = await labOn(redis);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    const oomBefore = await infoCount(redis, 'errorstats', 'errorstat_OOM', 'count');
    await admin(redis, 'CONFIG', 'SET', 'maxmemory', 1);
    await admin(redis, 'CLIENT', 'KILL', 'TYPE', 'normal');
    await until(() => ws.controlsOf('feed-down').length === 1);
    await untilAsync(async () => (await infoCount(redis, 'errorstats', 'errorstat_OOM', 'count')) >= oomBefore + 2);

    // close() while a retry is pending: it resolves (the retry timer is cleared with it), and the lab
    // holds no Redis connection any more — only the one asking is left.
    await lab.app.close();
    await until(() => ws.closeCode !== undefined);
    await untilAsync(async () => (await connectedClients(redis)) === 1);
  }, 30_000);

  it('closing a lab while Redis is down resolves: the read its tail queued while reconnecting does not hold it', async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start();
    const lab = await labOn(redis);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    await redis.kill();
    await until(() => ws.controlsOf('feed-down').length >= 1);
    // Without the fix this never resolved (the test times out).
    await lab.app.close();
    await until(() => ws.closeCode !== undefined);
  }, 30_000);
});

/** Clients connected to `redis`, counting the one that asks. */
async function connectedClients(redis: OwnRedis): Promise<number> {
  const text = await withRedis(redis.url, (r) => r.info('clients'));
  return Number(/connected_clients:(\d+)/.exec(text)?.[1] ?? NaN);
}

// ---- #13: polls while Redis is down -----------------------------------------------------------------

describe('polls while Redis is down (issue 10, #13)', () => {
  it('a cursor inside the in-process window is answered 200 from it; a cursor the window cannot serve gets 503 LAB_ERR_FEED_UNAVAILABLE; once Redis is back both are served from Redis', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-redis-faults-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    // Data kept across the restart (AOF, fsync always): recovery continues the same history.
    const redis = new OwnRedis(await freePort(), [
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--dir',
      dir,
    ]);
    await redis.start();
    const redisKeyPrefix = `lab-faults-${randomBytes(4).toString('hex')}`;
    const a = await labOn(redis, redisKeyPrefix);
    for (let n = 1; n <= 5; n++) expect(await publish(a.url, { n })).toBe(n);
    // b starts after message 5: its window holds only what its tail sees from now on (6, 7, 8).
    const b = await labOn(redis, redisKeyPrefix);
    const epoch = epochOf(b);
    const ws = new WsClient(`${b.wsUrl}/ws?since=0`);
    const wsSeen = wsOrder(ws);
    await ws.opened;
    for (let n = 6; n <= 8; n++) expect(await publish(a.url, { n })).toBe(n);
    await until(() => ws.messages.length === 8 && a.app.lab.feed.info().lastId === 8);
    const history = [...ws.messages];

    await redis.kill();
    await until(() => ws.controlsOf('feed-down').length === 1);

    // Inside b's window (cursor 5 … 7): 200 with the messages, as if Redis were there — no gap, no reset.
    for (const [query, expected] of [
      ['since=5&timeout=5000', [6, 7, 8]],
      [`since=6&epoch=${encodeURIComponent(epoch)}&timeout=0`, [7, 8]],
      ['since=7&timeout=0', [8]],
    ] as const) {
      const res = await tryPoll(b.url, query);
      expect(res.status, query).toBe(200);
      expect(res.body.gap, query).toBeUndefined();
      expect(res.body.reset, query).toBeUndefined();
      expect(res.body.epoch, query).toBe(epoch);
      expect(ids(res.body.messages), query).toEqual(expected);
      expect(res.body.messages, query).toEqual(history.slice(expected[0] - 1));
      expect(res.body.lastId, query).toBe(8);
    }
    // The window is per process: a, which saw every message, serves a cursor b cannot.
    const fromA = await tryPoll(a.url, 'since=2&timeout=0');
    expect(fromA.status).toBe(200);
    expect(ids(fromA.body.messages)).toEqual(range(3, 8));

    // Anything the window cannot answer needs Redis: 503 with the code, never an empty answer, a gap or a reset.
    for (const query of [
      'since=4&timeout=0', // before the window, within retention
      'since=0&timeout=5000',
      'since=8&timeout=0', // at the head: whether something newer exists is Redis's to say
      'since=8&timeout=5000',
      'timeout=5000', // "from now"
      'since=100&timeout=0', // a future cursor: a reset only Redis can confirm
      'since=6&epoch=redis-someone-else&timeout=0', // another epoch: maybe a newer one this lab has not seen yet
    ]) {
      const res = await tryPoll(b.url, query);
      expect(res.status, query).toBe(503);
      expect(res.body.error?.code, query).toBe('LAB_ERR_FEED_UNAVAILABLE');
    }
    // Even on a, whose window reaches back to 1: another epoch is not answered with a reset while Redis
    // is away (it may be a newer epoch this lab has not seen yet).
    const otherEpoch = await tryPoll(a.url, 'since=6&epoch=redis-someone-else&timeout=0');
    expect(otherEpoch.status).toBe(503);
    expect(otherEpoch.body.error?.code).toBe('LAB_ERR_FEED_UNAVAILABLE');
    // A new WebSocket from inside the window gets what the window holds, then feed-down, and is closed.
    const late = new WsClient(`${b.wsUrl}/ws?since=5`);
    const lateSeen = wsOrder(late);
    await late.closed;
    expect(lateSeen).toEqual(['hello', 6, 7, 8, 'feed-down']);
    expect(late.closeCode).toBe(1001);
    expect(late.closeReason).toBe('LAB_ERR_FEED_UNAVAILABLE');

    // Redis back on the same port, with its data.
    await redis.start();
    await until(() => ws.controlsOf('feed-up').length === 1);
    expect(epochOf(b)).toBe(epoch);
    const before = await tryPoll(b.url, `since=4&epoch=${encodeURIComponent(epoch)}&timeout=0`);
    expect(before.status).toBe(200);
    expect(before.body.gap).toBeUndefined();
    expect(before.body.messages).toEqual(history.slice(4));
    const head = await tryPoll(b.url, 'since=8&timeout=0');
    expect(head.status).toBe(200);
    expect(head.body.messages).toEqual([]);
    expect(head.body.lastId).toBe(8);

    const published = await tryPublish(b.url, { n: 9 });
    expect(published.status).toBe(201);
    expect(published.body.id).toBe(9);
    await until(() => ws.messages.length === 9);
    expect(wsSeen).toEqual(['hello', ...range(1, 8), 'feed-down', 'feed-up', 9]);
    const resumed = await tryPoll(b.url, `since=5&epoch=${encodeURIComponent(epoch)}&timeout=5000`);
    expect(ids(resumed.body.messages)).toEqual([6, 7, 8, 9]);
  }, 30_000);
});
