/**
 * The Redis feed (issue 6): several labs on one Redis serve one feed — the same ids, order and epoch on
 * every instance and transport; a client resumes on another instance, or after every instance
 * restarted, without loss, duplicates or reset; retention is Redis's; a Redis outage is announced
 * (feed-down / 503 LAB_ERR_FEED_UNAVAILABLE) and service resumes when Redis returns.
 *
 * The shared Redis at 127.0.0.1:6379 is used with a unique key prefix per test (keys deleted at the
 * end). Outages are played on a redis-server of our own, on a free port, killed and restarted by PID.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FetchLike } from 'eventsource';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Message } from '../../../server/feed/types.js';
import {
  SseClient,
  WsClient,
  poll,
  pollUntil,
  publish,
  publishMany,
  range,
  startLab,
  until,
  wsOrder,
  type Control,
  type RunningLab,
  type Seen,
} from '../../helpers/lab.js';
import { OwnRedis, SHARED_REDIS, freePort, usePrefix, withRedis } from '../../helpers/redis.js';

// ---- helpers local to this file --------------------------------------------------------------------

/** Two (or more) labs on the shared Redis with the same prefix: one feed. */
async function labsOn(prefix: string, n: number, extra: Parameters<typeof startLab>[0] = {}): Promise<RunningLab[]> {
  const labs: RunningLab[] = [];
  for (let i = 0; i < n; i++) labs.push(await startLab({ feed: SHARED_REDIS, redisKeyPrefix: prefix, ...extra }));
  return labs;
}

const SSE_NAMED = ['hello', 'gap', 'reset', 'feed-down', 'feed-up'] as const;

/** An SseClient that also records feed-down / feed-up, and the order of everything. */
function sseClient(lab: RunningLab, url: string, init?: ConstructorParameters<typeof SseClient>[1]) {
  const client = new SseClient(url, init);
  // Close the lab before the EventSource when the test ends (hooks run in reverse order): an aborted
  // fetch makes undici open a spare connection that would keep app.close() waiting.
  onTestFinished(() => lab.app.close());
  const seen: Seen = [];
  const named: { type: string; data: Control }[] = [];
  /** The last event id the stream set (what EventSource sends back as Last-Event-ID). */
  const state = { lastEventId: '' };
  client.es.addEventListener('message', (e) => {
    seen.push((JSON.parse(e.data) as Message).id);
    state.lastEventId = e.lastEventId;
  });
  for (const type of SSE_NAMED) {
    client.es.addEventListener(type, (e) => {
      seen.push(type);
      named.push({ type, data: JSON.parse(e.data) as Control });
      state.lastEventId = e.lastEventId;
    });
  }
  return { client, seen, named, state, of: (type: string) => named.filter((n) => n.type === type).map((n) => n.data) };
}

/** A `fetch` for EventSource that adds headers (for a first connect with Last-Event-ID). */
const fetchWithHeaders =
  (extra: Record<string, string>): FetchLike =>
  (url, init) =>
    fetch(url, { ...init, headers: { ...extra, ...init.headers } } as RequestInit);

const ids = (messages: readonly Message[]): number[] => messages.map((m) => m.id);
const epochOf = (lab: RunningLab) => lab.app.lab.feed.info().epoch;

/** Sends a WebSocket publish frame and waits for its ack (or error) by `ref`. */
async function wsPublish(client: WsClient, data: unknown, ref: string): Promise<Control> {
  client.ws.send(JSON.stringify({ type: 'publish', data, ref }));
  await until(() => client.controls.some((c) => c.ref === ref));
  return client.controls.find((c) => c.ref === ref)!;
}

/** POST /publish that never waits forever: a hang fails the test with a clear message. */
async function tryPublish(
  url: string,
  data: unknown,
): Promise<{ status: number; body: { id?: number; error?: { code: string } } }> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data }),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: (await res.json()) as { id?: number; error?: { code: string } } };
}

async function tryPoll(
  url: string,
  query: string,
): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }> {
  const res = await fetch(`${url}/poll?${query}`, { signal: AbortSignal.timeout(8_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
}

// ---- 1. one feed across instances ---------------------------------------------------------------------

describe('several labs on one Redis serve one feed', () => {
  it('two labs serve the same messages (smoke)', async () => {
    const redisKeyPrefix = usePrefix();
    const [a, b] = (await labsOn(redisKeyPrefix, 2)) as [RunningLab, RunningLab];
    const ws = new WsClient(`${b.wsUrl}/ws?since=0`);
    const sse = sseClient(b, `${b.url}/events?since=0`).client;
    await ws.opened;
    for (let i = 0; i < 10; i++) await publish(i % 2 ? a.url : b.url, { i });
    await until(() => ws.messages.length === 10 && sse.messages.length === 10);
    expect(ws.ids()).toEqual(range(1, 10));
    expect(sse.ids()).toEqual(range(1, 10));
    expect((await pollUntil(a.url, 0, 10)).map((m) => m.id)).toEqual(range(1, 10));
    expect(epochOf(a)).toBe(epochOf(b));
  });

  it('a message published through any instance reaches poll, SSE and WS clients of every instance: same ids, order, epoch', async () => {
    const redisKeyPrefix = usePrefix();
    const labs = await labsOn(redisKeyPrefix, 3);
    const [a, b, c] = labs as [RunningLab, RunningLab, RunningLab];
    const epoch = epochOf(a);
    expect(epoch).not.toBe('');
    expect(labs.map(epochOf)).toEqual([epoch, epoch, epoch]);

    const wss = labs.map((l) => new WsClient(`${l.wsUrl}/ws?since=0`));
    const sses = labs.map((l) => sseClient(l, `${l.url}/events?since=0`).client);
    await Promise.all(wss.map((w) => w.opened));
    await until(
      () => sses.every((s) => s.eventsOf('hello').length === 1) && wss.every((w) => w.controlsOf('hello').length === 1),
    );
    const polled = labs.map((l) => pollUntil(l.url, 0, 30));

    // 30 messages: HTTP through a, b, c in turn, and every third one as a WebSocket publish frame on c's client.
    const published: number[] = [];
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 2) {
        const ack = await wsPublish(wss[2]!, { i }, `r${i}`);
        expect(ack.type).toBe('ack');
        published.push(ack.id as number);
      } else {
        published.push(await publish(labs[i % 3]!.url, { i }));
      }
    }
    expect(published).toEqual(range(1, 30));

    await until(() => wss.every((w) => w.messages.length >= 30) && sses.every((s) => s.messages.length >= 30));
    const reference = wss[0]!.messages;
    expect(ids(reference)).toEqual(range(1, 30));
    expect(reference.map((m) => m.data)).toEqual(range(0, 29).map((i) => ({ i })));
    for (const w of wss) expect(w.messages).toEqual(reference);
    for (const s of sses) expect(s.messages).toEqual(reference);
    for (const p of polled) expect(await p).toEqual(reference);

    // Same epoch everywhere: hello frames, hello events, poll answers, /stats.
    for (const w of wss) expect(w.controlsOf('hello')[0]).toMatchObject({ epoch });
    for (const s of sses) expect(s.eventsOf('hello')[0]?.data).toMatchObject({ epoch });
    for (const l of labs) {
      const { status, body } = await poll(l.url, 'since=29&timeout=0');
      expect(status).toBe(200);
      expect(body.epoch).toBe(epoch);
      expect(ids(body.messages)).toEqual([30]);
      const stats = (await (await fetch(`${l.url}/stats`)).json()) as {
        feed: { kind: string; epoch: string; lastId: number };
      };
      expect(stats.feed).toMatchObject({ kind: 'redis', epoch, lastId: 30 });
    }
    // No client saw a control it should not have.
    for (const w of wss)
      expect(w.controls.filter((x) => x.type !== 'hello' && x.type !== 'ack').map((x) => x.type)).toEqual([]);
    for (const s of sses) expect(s.events.map((e) => e.type)).toEqual(['hello']);
    void b;
    void c;
  });
});

// ---- 2. resume on another instance ---------------------------------------------------------------------

describe('a client that leaves one instance and resumes on another gets every message exactly once, in order', () => {
  it('poll: since=<lastId from instance a> on instance b', async () => {
    const redisKeyPrefix = usePrefix();
    const [a, b] = (await labsOn(redisKeyPrefix, 2)) as [RunningLab, RunningLab];
    expect(await publishMany(a.url, 3)).toEqual(range(1, 3));
    const first = await poll(a.url, 'since=0&timeout=5000');
    expect(ids(first.body.messages)).toEqual(range(1, 3));
    const { lastId, epoch } = first.body;
    expect(lastId).toBe(3);

    // Published while the client is away, through both instances.
    await publish(a.url, { n: 4 });
    await publish(b.url, { n: 5 });
    await publish(a.url, { n: 6 });

    const second = await poll(b.url, `since=${lastId}&epoch=${epoch}&timeout=5000`);
    expect(second.status).toBe(200);
    expect(second.body.reset).toBeUndefined();
    expect(second.body.gap).toBeUndefined();
    expect(second.body.epoch).toBe(epoch);
    expect(ids(second.body.messages)).toEqual([4, 5, 6]);
    expect(second.body.lastId).toBe(6);

    // A held poll on b is answered by a publish through a.
    const held = poll(b.url, `since=6&epoch=${epoch}&timeout=10000`);
    await until(() => b.app.lab.stats.transports.poll.connections === 1);
    await publish(a.url, { n: 7 });
    const third = await held;
    expect(third.status).toBe(200);
    expect(ids(third.body.messages)).toEqual([7]);
    expect([...first.body.messages, ...second.body.messages, ...third.body.messages].map((m) => m.data)).toEqual(
      range(0, 2)
        .map((n) => ({ n }))
        .concat([4, 5, 6, 7].map((n) => ({ n }))),
    );
  });

  it('SSE: Last-Event-ID on instance b after a stream on instance a (the header wins over since)', async () => {
    const redisKeyPrefix = usePrefix();
    const [a, b] = (await labsOn(redisKeyPrefix, 2)) as [RunningLab, RunningLab];
    const before = sseClient(a, `${a.url}/events?since=0`);
    await until(() => before.client.eventsOf('hello').length === 1);
    await publishMany(b.url, 3);
    await until(() => before.client.messages.length === 3);
    const lastSeen = before.state.lastEventId;
    expect(lastSeen).toBe('3');
    before.client.es.close();

    await publish(a.url, { n: 4 });
    await publish(b.url, { n: 5 });

    const after = sseClient(b, `${b.url}/events?since=0`, { fetch: fetchWithHeaders({ 'Last-Event-ID': lastSeen }) });
    await until(() => after.client.messages.length >= 2);
    await publish(a.url, { n: 6 });
    await until(() => after.client.messages.length >= 3);
    const all = [...before.client.messages, ...after.client.messages];
    expect(ids(all)).toEqual(range(1, 6));
    expect(after.seen).toEqual(['hello', 4, 5, 6]);
    expect(after.client.eventsOf('hello')[0]?.data).toMatchObject({ epoch: epochOf(a) });
  });

  it('WS: since=<last id> (and the epoch) on instance b after a socket on instance a', async () => {
    const redisKeyPrefix = usePrefix();
    const [a, b] = (await labsOn(redisKeyPrefix, 2)) as [RunningLab, RunningLab];
    const before = new WsClient(`${a.wsUrl}/ws?since=0`);
    await before.opened;
    await publishMany(a.url, 3);
    await until(() => before.messages.length === 3);
    const epoch = before.controlsOf('hello')[0]!.epoch as string;
    const last = before.messages[before.messages.length - 1]!.id;
    before.ws.close();
    await before.closed;

    await publish(b.url, { n: 4 });
    await publish(a.url, { n: 5 });

    const after = new WsClient(`${b.wsUrl}/ws?since=${last}&epoch=${encodeURIComponent(epoch)}`);
    const seen = wsOrder(after);
    await after.opened;
    await until(() => after.messages.length >= 2);
    await publish(a.url, { n: 6 });
    await until(() => after.messages.length >= 3);
    expect(ids([...before.messages, ...after.messages])).toEqual(range(1, 6));
    expect(seen).toEqual(['hello', 4, 5, 6]);
    expect(after.controlsOf('hello')[0]).toMatchObject({ epoch, lastId: expect.any(Number) });
  });
});

// ---- 3. restarting every instance -------------------------------------------------------------------------

describe('restarting every instance keeps ids, history and epoch', () => {
  it('old cursors resume without reset on new instances; new publishes continue the ids', async () => {
    const redisKeyPrefix = usePrefix();
    const old = await labsOn(redisKeyPrefix, 2);
    expect(await publishMany(old[0]!.url, 3)).toEqual(range(1, 3));
    expect(await publishMany(old[1]!.url, 2)).toEqual([4, 5]);
    const epoch = epochOf(old[0]!);
    const history = await pollUntil(old[1]!.url, 0, 5);
    expect(ids(history)).toEqual(range(1, 5));
    await Promise.all(old.map((l) => l.app.close()));

    const [c, d] = (await labsOn(redisKeyPrefix, 2)) as [RunningLab, RunningLab];
    expect(c.app.lab.feed.info()).toMatchObject({ epoch, lastId: 5 });
    expect(d.app.lab.feed.info()).toMatchObject({ epoch, lastId: 5 });

    // Poll with the old cursor and epoch: exactly the missed ones, no reset.
    const polled = await poll(c.url, `since=3&epoch=${encodeURIComponent(epoch)}&timeout=5000`);
    expect(polled.status).toBe(200);
    expect(polled.body.reset).toBeUndefined();
    expect(polled.body.gap).toBeUndefined();
    expect(polled.body.epoch).toBe(epoch);
    expect(polled.body.messages).toEqual(history.slice(3));

    // WS and SSE with old cursors and epoch.
    const ws = new WsClient(`${d.wsUrl}/ws?since=2&epoch=${encodeURIComponent(epoch)}`);
    const wsSeen = wsOrder(ws);
    const sse = sseClient(c, `${c.url}/events?since=4&epoch=${encodeURIComponent(epoch)}`);
    await ws.opened;
    await until(() => ws.messages.length === 3 && sse.client.messages.length === 1);

    expect(await publish(d.url, { n: 6 })).toBe(6);
    expect(await publish(c.url, { n: 7 })).toBe(7);
    await until(() => ws.messages.length === 5 && sse.client.messages.length === 3);
    expect(wsSeen).toEqual(['hello', 3, 4, 5, 6, 7]);
    expect(sse.seen).toEqual(['hello', 5, 6, 7]);
    expect(ws.messages.slice(0, 3)).toEqual(history.slice(2));
    expect(ws.controlsOf('hello')[0]).toMatchObject({ epoch, lastId: 5 });
    expect(sse.client.eventsOf('hello')[0]?.data).toMatchObject({ epoch, lastId: 5 });
  });
});

// ---- 4. retention on Redis ---------------------------------------------------------------------------------

describe('retention on Redis', () => {
  /** Checks that every transport of `lab` answers a stale cursor with a gap to firstId 8 (12 messages, retention 5). */
  async function expectGaps(lab: RunningLab): Promise<void> {
    expect(lab.app.lab.feed.info()).toMatchObject({ lastId: 12, firstId: 8, retained: 5 });
    const stale = await poll(lab.url, 'since=2&timeout=0');
    expect(stale.status).toBe(200);
    expect(stale.body.gap).toEqual({ type: 'gap', since: 2, firstId: 8, missed: 5 });
    expect(ids(stale.body.messages)).toEqual(range(8, 12));
    const zero = await poll(lab.url, 'since=0&timeout=0');
    expect(zero.body.gap).toEqual({ type: 'gap', since: 0, firstId: 8, missed: 7 });
    expect(ids(zero.body.messages)).toEqual(range(8, 12));
    // A cursor just inside retention: no gap.
    const fresh = await poll(lab.url, 'since=7&timeout=0');
    expect(fresh.body.gap).toBeUndefined();
    expect(ids(fresh.body.messages)).toEqual(range(8, 12));

    const ws = new WsClient(`${lab.wsUrl}/ws?since=3`);
    const wsSeen = wsOrder(ws);
    const sse = sseClient(lab, `${lab.url}/events?since=3`);
    await until(() => ws.messages.length >= 5 && sse.client.messages.length >= 5);
    expect(wsSeen).toEqual(['hello', 'gap', 8, 9, 10, 11, 12]);
    expect(ws.controlsOf('gap')[0]).toEqual({ type: 'gap', since: 3, firstId: 8, missed: 4 });
    expect(sse.seen).toEqual(['hello', 'gap', 8, 9, 10, 11, 12]);
    expect(sse.of('gap')[0]).toEqual({ type: 'gap', since: 3, firstId: 8, missed: 4 });
    expect(sse.client.eventsOf('gap')[0]?.lastEventId).toBe('7');
  }

  it('retentionMessages 5: the stream keeps 5 entries; a lab started after the publishes answers a stale cursor with a gap to the right firstId', async () => {
    const redisKeyPrefix = usePrefix();
    const [a] = (await labsOn(redisKeyPrefix, 1, { retentionMessages: 5 })) as [RunningLab];
    expect(await publishMany(a.url, 12)).toEqual(range(1, 12));
    expect(await withRedis(SHARED_REDIS, (r) => r.xlen(`${redisKeyPrefix}:stream`))).toBe(5);
    const [b] = (await labsOn(redisKeyPrefix, 1, { retentionMessages: 5 })) as [RunningLab];
    await expectGaps(b);
  });

  it('retentionMessages 5: a lab that was running while the messages were published answers the same gap (not messages older than retention)', async () => {
    const redisKeyPrefix = usePrefix();
    const [a] = (await labsOn(redisKeyPrefix, 1, { retentionMessages: 5 })) as [RunningLab];
    expect(await publishMany(a.url, 12)).toEqual(range(1, 12));
    await until(() => a.app.lab.feed.info().lastId === 12);
    expect(await withRedis(SHARED_REDIS, (r) => r.xlen(`${redisKeyPrefix}:stream`))).toBe(5);
    await expectGaps(a);
  });
});

// ---- 5. Redis going away ------------------------------------------------------------------------------------

/**
 * Our own Redis, two labs on it, clients on both; Redis is killed, then restarted on the same port.
 * Returns what the scenarios below share.
 */
async function outageSetup(redis: OwnRedis) {
  await redis.start();
  const redisKeyPrefix = `lab-outage-${randomBytes(4).toString('hex')}`;
  const cfg = { feed: redis.url, redisKeyPrefix, sseRetryMs: 50 };
  const a = await startLab(cfg);
  const b = await startLab(cfg);
  const epoch = epochOf(a);
  expect(epochOf(b)).toBe(epoch);

  const ws = new WsClient(`${a.wsUrl}/ws?since=0`);
  const wsSeen = wsOrder(ws);
  const sse = sseClient(b, `${b.url}/events?since=0`);
  await ws.opened;
  expect(await publishMany(a.url, 2)).toEqual([1, 2]);
  expect(await publish(b.url, { n: 2 })).toBe(3);
  await until(() => ws.messages.length === 3 && sse.client.messages.length === 3);

  // A poll held on a (nothing after 3 yet).
  const held = tryPoll(a.url, `since=3&epoch=${encodeURIComponent(epoch)}&timeout=20000`);
  await until(() => a.app.lab.stats.transports.poll.connections === 1);

  await redis.kill();

  // Clients are told.
  await until(() => ws.controlsOf('feed-down').length === 1 && sse.of('feed-down').length === 1);
  expect(ws.controlsOf('feed-down')[0]).toMatchObject({ type: 'feed-down', code: 'LAB_ERR_FEED_UNAVAILABLE' });
  expect(sse.of('feed-down')[0]).toMatchObject({ type: 'feed-down', code: 'LAB_ERR_FEED_UNAVAILABLE' });
  const heldAnswer = await held;
  expect(heldAnswer.status).toBe(503);
  expect(heldAnswer.body.error?.code).toBe('LAB_ERR_FEED_UNAVAILABLE');

  // Publishes fail at once, with the code; nothing is appended.
  for (const lab of [a, b]) {
    const res = await tryPublish(lab.url, { lost: true });
    expect(res.status).toBe(503);
    expect(res.body.error?.code).toBe('LAB_ERR_FEED_UNAVAILABLE');
  }
  const wsAck = await wsPublish(ws, { lost: true }, 'down-1');
  expect(wsAck).toMatchObject({ type: 'error', code: 'LAB_ERR_FEED_UNAVAILABLE', ref: 'down-1' });
  // New polls (at the head, and "from now") are refused the same way.
  for (const query of [`since=3&timeout=5000`, 'timeout=5000', 'since=3&timeout=0']) {
    const res = await tryPoll(b.url, query);
    expect(res.status, query).toBe(503);
    expect(res.body.error?.code, query).toBe('LAB_ERR_FEED_UNAVAILABLE');
  }
  // The connections stay open while Redis is away.
  expect(ws.closeCode).toBeUndefined();
  expect(ws.messages.length).toBe(3);
  return { a, b, epoch, ws, wsSeen, sse };
}

describe('Redis going away and coming back', () => {
  it('data kept (AOF, appendfsync always): 503s and feed-down, then feed-up, no reset, ids continue, clients get the new messages', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-redis-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
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
    const { a, b, epoch, ws, wsSeen, sse } = await outageSetup(redis);

    await redis.start();
    await until(() => ws.controlsOf('feed-up').length === 1 && sse.of('feed-up').length === 1);
    // The data survived: same epoch, same last id.
    expect(await withRedis(redis.url, (r) => r.get(`${a.app.lab.config.redisKeyPrefix}:seq`))).toBe('3');
    expect(epochOf(a)).toBe(epoch);
    expect(epochOf(b)).toBe(epoch);

    expect(await publish(b.url, { n: 4 })).toBe(4);
    expect(await publish(a.url, { n: 5 })).toBe(5);
    const ack = await wsPublish(ws, { n: 6 }, 'up-1');
    expect(ack).toMatchObject({ type: 'ack', id: 6 });
    await until(() => ws.messages.length === 6 && sse.client.messages.length === 6);
    expect(wsSeen.filter((x) => x !== 'ack')).toEqual(['hello', 1, 2, 3, 'feed-down', 'error', 'feed-up', 4, 5, 6]);
    expect(sse.seen).toEqual(['hello', 1, 2, 3, 'feed-down', 'feed-up', 4, 5, 6]);
    expect(ws.closeCode).toBeUndefined();
    expect(sse.client.opens).toBe(1);

    // A poller resuming with its old cursor and epoch: exactly the new ones, no reset.
    const resumed = await poll(a.url, `since=3&epoch=${encodeURIComponent(epoch)}&timeout=5000`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.reset).toBeUndefined();
    expect(ids(resumed.body.messages)).toEqual([4, 5, 6]);
    expect(resumed.body.messages).toEqual(ws.messages.slice(3));
  });

  it('data lost (no persistence): after Redis returns, a NEW epoch — every client is told with a reset, never silence', async () => {
    const redis = new OwnRedis(await freePort(), ['--save', '', '--appendonly', 'no']);
    const { a, b, epoch, ws, wsSeen, sse } = await outageSetup(redis);

    await redis.start();
    await until(() => ws.controlsOf('feed-up').length === 1 && sse.of('feed-up').length === 1);
    const newEpoch = epochOf(a);
    expect(newEpoch).not.toBe(epoch);
    await until(() => epochOf(b) === newEpoch);

    // Ids start over in the new epoch.
    expect(await publish(b.url, { e: 2, n: 1 })).toBe(1);
    expect(await publish(a.url, { e: 2, n: 2 })).toBe(2);

    // The WebSocket stays open and is told: reset to the new epoch, then the new messages. (Soft
    // assertions: the SSE and poll checks below still run when this part fails.)
    await until(() => (ws.controlsOf('reset').length === 1 && ws.messages.length === 5) || ws.closeCode !== undefined);
    expect
      .soft({ closeCode: ws.closeCode, closeReason: ws.closeReason })
      .toEqual({ closeCode: undefined, closeReason: '' });
    expect.soft(ws.controlsOf('reset')[0]).toMatchObject({ type: 'reset', epoch: newEpoch });
    // In order (feed-up may come before or after the reset): nothing but the reset and the new epoch's
    // messages after the outage — in particular no second feed-down once Redis is back.
    expect.soft(wsSeen.filter((x) => x !== 'feed-up')).toEqual(['hello', 1, 2, 3, 'feed-down', 'error', 'reset', 1, 2]);
    expect.soft(wsSeen.indexOf('feed-up')).toBeGreaterThan(wsSeen.indexOf('feed-down'));
    expect.soft(ws.messages.slice(3).map((m) => m.data)).toEqual([
      { e: 2, n: 1 },
      { e: 2, n: 2 },
    ]);

    // SSE: a reset event to the new epoch, then the new messages; no feed-down after feed-up.
    await until(() => sse.of('reset').length >= 1 && sse.client.messages.length >= 5);
    expect(sse.of('reset').at(-1)).toMatchObject({ type: 'reset', epoch: newEpoch });
    expect(sse.seen.slice(sse.seen.lastIndexOf('reset'))).toEqual(['reset', 1, 2]);
    expect(sse.seen.slice(sse.seen.indexOf('feed-up'))).not.toContain('feed-down');

    // A poller with its old cursor and epoch gets a reset, then the new epoch's messages.
    const resumed = await poll(a.url, `since=3&epoch=${encodeURIComponent(epoch)}&timeout=5000`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.reset).toMatchObject({ type: 'reset', reason: 'epoch-mismatch', epoch: newEpoch });
    expect(resumed.body.epoch).toBe(newEpoch);
    expect(ids(resumed.body.messages)).toEqual([1, 2]);
    // Without the epoch, the old cursor is in the future of the new history: also a reset.
    const future = await poll(b.url, 'since=3&timeout=0');
    expect(future.body.reset).toMatchObject({ type: 'reset', reason: 'future-cursor', epoch: newEpoch });
    expect(ids(future.body.messages)).toEqual([1, 2]);
  });
});
