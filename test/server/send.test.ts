/**
 * Client sends (server/publish.ts POST /send, transports/ws.ts publish frames): a message any client
 * sends reaches every client once on every transport; bad sends get the same LAB_ERR_* answers as
 * /publish; past a connection's budget (server/send-budget.ts) a send is refused with its code and
 * appends nothing, and one client flooding cannot take the others' messages; a send retried after a
 * drop with the same idempotency key is appended once, on the memory feed and across two labs on one
 * Redis feed. Real sockets: undici with one connection where the budget is per connection, `ws`,
 * `eventsource`, and raw sockets where the drop matters.
 */
import net from 'node:net';
import { Client } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MemoryFeed } from '../../server/feed/memory.js';
import type { Message } from '../../server/feed/types.js';
import { SendBudget } from '../../server/send-budget.js';
import { poll, pollUntil, SseClient, startLab, until, WsClient, type RunningLab } from '../helpers/lab.js';
import { SHARED_REDIS, usePrefix } from '../helpers/redis.js';

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { id?: number; duplicate?: boolean; error?: { code: string } };
}

/** One keep-alive connection to the lab, as a page's fetch would reuse it. */
function connection(lab: RunningLab): Client {
  const c = new Client(lab.url, { pipelining: 1 });
  onTestFinished(() => c.destroy());
  return c;
}

async function send(c: Client, data: unknown, headers: Record<string, string> = {}, path = '/send'): Promise<Sent> {
  const res = await c.request({
    path,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ data }),
  });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Sent['body'] };
}

const dataOf = (ms: readonly Message[]) => ms.map((m) => m.data);

describe('client sends', () => {
  it('a message any client sends reaches every client exactly once, on every transport', async () => {
    const lab = await startLab();
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await until(() => lab.app.lab.stats.transports.sse.connections === 1);
    // WebSocket: a frame on its socket; SSE, long and short polling: POST /send, as their pages would.
    ws.ws.send(JSON.stringify({ type: 'publish', data: { from: 'ws' }, ref: 'w1' }));
    await until(() => ws.controlsOf('ack').length === 1);
    const page = connection(lab);
    for (const from of ['sse', 'poll', 'short-poll']) expect((await send(page, { from })).status).toBe(201);
    const all = [{ from: 'ws' }, { from: 'sse' }, { from: 'poll' }, { from: 'short-poll' }];
    await until(() => ws.messages.length === 4 && sse.messages.length === 4);
    const long = await pollUntil(lab.url, 0, 4);
    const short = (await poll(lab.url, 'since=0&timeout=0')).body.messages;
    for (const got of [ws.messages, sse.messages, long, short]) {
      expect(got.map((m) => m.id)).toEqual([1, 2, 3, 4]);
      expect(dataOf(got)).toEqual(all);
    }
    expect(ws.controlsOf('ack')[0]).toEqual({ type: 'ack', id: 1, ref: 'w1' });
  });

  it('POST /send refuses bad input with the same codes as /publish and appends nothing', async () => {
    const lab = await startLab({ maxPayloadBytes: 1024 });
    for (const path of ['/publish', '/send']) {
      const post = (body: string, type = 'application/json', extra: Record<string, string> = {}) =>
        fetch(`${lab.url}${path}`, { method: 'POST', headers: { 'content-type': type, ...extra }, body });
      const cases: [Response, number, string][] = [
        [await post('{nope'), 400, 'LAB_ERR_INVALID_JSON'],
        [await post('{}'), 400, 'LAB_ERR_MISSING_DATA'],
        [await post('x', 'text/plain'), 415, 'LAB_ERR_UNSUPPORTED_MEDIA_TYPE'],
        [await post(JSON.stringify({ data: 'x'.repeat(2000) })), 413, 'LAB_ERR_PAYLOAD_TOO_LARGE'],
        [
          await post('{"data":1}', 'application/json', { 'idempotency-key': 'has space' }),
          400,
          'LAB_ERR_BAD_IDEMPOTENCY_KEY',
        ],
        [
          await post('{"data":1}', 'application/json', { 'idempotency-key': 'k'.repeat(129) }),
          400,
          'LAB_ERR_BAD_IDEMPOTENCY_KEY',
        ],
      ];
      for (const [res, status, code] of cases) {
        expect.soft(res.status, `${path} ${code}`).toBe(status);
        expect.soft(((await res.json()) as Sent['body']).error?.code, path).toBe(code);
      }
    }
    expect(lab.app.lab.feed.info().lastId).toBe(0);
  });
});

describe('send budget', () => {
  it('refills continuously, holds one second, and a refused send costs nothing', () => {
    const b = new SendBudget(2, 1000, 0);
    expect(b.take(100, 1, 0)).toBe(0);
    expect(b.take(100, 1, 0)).toBe(0);
    // Empty: the next message is due in half a second.
    expect(b.take(100, 1, 0)).toBe(500);
    expect(b.take(100, 1, 250)).toBe(250);
    expect(b.take(100, 1, 500)).toBe(0);
    // Bytes: 800 of 1000 left after a second idle (full again), one 900-byte send then needs 0.8 s more.
    expect(b.take(900, 1, 5_000)).toBe(0);
    expect(b.take(900, 1, 5_000)).toBe(800);
    // Idle for long: never more than one second's worth.
    expect(b.take(10, 1, 100_000)).toBe(0);
    expect(b.take(10, 1, 100_000)).toBe(0);
    expect(b.take(10, 1, 100_000)).toBeGreaterThan(0);
    // Larger than the bucket: goes when it is full, and the bucket owes the rest (2000 − 1000 bytes: 1 s).
    expect(b.take(2000, 1, 200_000)).toBe(0);
    expect(b.take(1, 1, 200_000)).toBe(1001);
    expect(b.take(1, 1, 201_002)).toBe(0);
  });

  it('POST /send past the budget: 429 LAB_ERR_SEND_RATE with Retry-After, nothing appended; per connection, /publish unbounded', async () => {
    const lab = await startLab({ sendMessagesPerSec: 2 });
    const page = connection(lab);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(page, { i })));
    const accepted = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201);
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(r.body.error?.code).toBe('LAB_ERR_SEND_RATE');
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    // Exactly the accepted sends are in the feed.
    expect(lab.app.lab.feed.info().lastId).toBe(accepted.length);
    expect(accepted.map((a) => a.body.id).sort((x, y) => x! - y!)).toEqual(
      Array.from({ length: accepted.length }, (_, i) => i + 1),
    );
    // Another connection has a budget of its own; the application's /publish has none.
    expect((await send(connection(lab), { other: true })).status).toBe(201);
    for (let i = 0; i < 5; i++) expect((await send(page, { pub: i }, {}, '/publish')).status).toBe(201);
  });

  it('bytes count too: a page sending large messages is held to sendBytesPerSec', async () => {
    const lab = await startLab({ sendMessagesPerSec: 1000, sendBytesPerSec: 64 * 1024 });
    const page = connection(lab);
    const big = 'x'.repeat(40 * 1024);
    const answers = await Promise.all(Array.from({ length: 6 }, () => send(page, big)));
    expect(answers.filter((a) => a.status === 429).length).toBeGreaterThan(0);
    expect(lab.app.lab.feed.info().lastId).toBe(answers.filter((a) => a.status === 201).length);
  });

  it('a WebSocket past the budget gets error frames LAB_ERR_SEND_RATE with its ref and stays open; flooding on, it is closed 1008', async () => {
    const lab = await startLab({ sendMessagesPerSec: 2, wsErrorRepliesPerSec: 5 });
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    for (let i = 0; i < 6; i++) ws.ws.send(JSON.stringify({ type: 'publish', data: { i }, ref: i }));
    await until(() => ws.controlsOf('ack').length + ws.controlsOf('error').length === 6);
    const acks = ws.controlsOf('ack');
    const errors = ws.controlsOf('error');
    expect(acks.length).toBeGreaterThanOrEqual(2);
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e.code).toBe('LAB_ERR_SEND_RATE');
    // Every frame answered once, by its own ref.
    expect([...acks, ...errors].map((c) => c.ref).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(lab.app.lab.feed.info().lastId).toBe(acks.length);
    expect(ws.closeCode).toBeUndefined();
    // A flood: past wsErrorRepliesPerSec refusals a second, the socket is closed with the code as reason.
    for (let i = 0; i < 100; i++) ws.ws.send(JSON.stringify({ type: 'publish', data: { flood: i } }));
    await ws.closed;
    expect(ws.closeCode).toBe(1008);
    expect(ws.closeReason).toBe('LAB_ERR_TOO_MANY_ERRORS');
    // What was accepted is in the feed, and nothing else.
    const delivered = ws.messages.map((m) => m.id);
    expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => i + 1));
    expect(lab.app.lab.feed.info().lastId).toBeGreaterThanOrEqual(delivered.length);
  });

  it("one client flooding does not cost the others a message: each gets every publish once, in order, and the flood's own within its budget", async () => {
    const lab = await startLab({ sendMessagesPerSec: 20 });
    const readers = [
      new WsClient(`${lab.wsUrl}/ws?since=0`),
      new WsClient(`${lab.wsUrl}/ws?since=0`),
      new WsClient(`${lab.wsUrl}/ws?since=0`),
    ];
    await Promise.all(readers.map((r) => r.opened));
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await until(() => lab.app.lab.stats.transports.sse.connections === 1);
    const flooder = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await flooder.opened;
    const started = performance.now();
    // The flood: 400 frames as fast as the socket takes them, while the application publishes 30.
    for (let i = 0; i < 400; i++) flooder.ws.send(JSON.stringify({ type: 'publish', data: { flood: i } }));
    const app = connection(lab);
    for (let i = 0; i < 30; i++) expect((await send(app, { app: i }, {}, '/publish')).status).toBe(201);
    await until(() => flooder.closeCode !== undefined || flooder.controls.length >= 401);
    const elapsedSec = (performance.now() - started) / 1000;
    const total = lab.app.lab.feed.info().lastId;
    // The flood got at most its budget: one second's worth plus the refill over the time it ran.
    const floodAccepted = total - 30;
    expect(floodAccepted).toBeLessThanOrEqual(20 + Math.ceil(20 * elapsedSec));
    await until(() => readers.every((r) => r.messages.length === total) && sse.messages.length === total);
    for (const got of [...readers.map((r) => r.messages), sse.messages]) {
      expect(got.map((m) => m.id)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(dataOf(got).filter((d) => (d as { app?: number }).app !== undefined)).toEqual(
        Array.from({ length: 30 }, (_, i) => ({ app: i })),
      );
    }
    for (const r of readers) expect(r.closeCode).toBeUndefined();
  });
});

/** POST /send with `key` on a socket of its own, closed as soon as the request is written: the answer is never read. */
function sendAndDrop(lab: RunningLab, data: unknown, key: string): Promise<void> {
  const { port } = new URL(lab.url);
  const body = JSON.stringify({ data });
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => {
      socket.write(
        `POST /send HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nIdempotency-Key: ${key}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        () => {
          socket.destroy();
          resolve();
        },
      );
    });
    socket.on('error', reject);
  });
}

describe('idempotent sends', () => {
  it('POST /send: a send retried after a drop with the same Idempotency-Key is appended once and answered with its id', async () => {
    const lab = await startLab();
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await sendAndDrop(lab, { text: 'hello' }, 'chat-42');
    await until(() => lab.app.lab.feed.info().lastId === 1);
    // The page never saw the answer: it sends again, same key, on a new connection.
    const retry = await send(connection(lab), { text: 'hello' }, { 'idempotency-key': 'chat-42' });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ id: 1, duplicate: true });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    // A new key is a new message.
    const next = await send(connection(lab), { text: 'again' }, { 'idempotency-key': 'chat-43' });
    expect(next).toMatchObject({ status: 201, body: { id: 2 } });
    await until(() => sse.messages.length === 2);
    expect(dataOf(sse.messages)).toEqual([{ text: 'hello' }, { text: 'again' }]);
    expect(lab.app.lab.feed.info().lastId).toBe(2);
  });

  it('WebSocket: a publish frame resent with its `key` after a reconnect is acked with the first id, duplicate, and not appended again', async () => {
    const lab = await startLab();
    const first = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await first.opened;
    first.ws.send(JSON.stringify({ type: 'publish', data: { move: 'e4' }, key: 'game-7:1', ref: 1 }));
    first.ws.terminate();
    await until(() => lab.app.lab.feed.info().lastId === 1);
    const again = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await again.opened;
    again.ws.send(JSON.stringify({ type: 'publish', data: { move: 'e4' }, key: 'game-7:1', ref: 2 }));
    again.ws.send(JSON.stringify({ type: 'publish', data: 1, key: 'bad key', ref: 3 }));
    await until(() => again.controls.filter((c) => c.type !== 'hello').length === 2);
    expect(again.controlsOf('ack')).toEqual([{ type: 'ack', id: 1, ref: 2, duplicate: true }]);
    expect(again.controlsOf('error')).toMatchObject([{ code: 'LAB_ERR_BAD_IDEMPOTENCY_KEY', ref: 3 }]);
    expect(again.ids()).toEqual([1]);
    expect(lab.app.lab.feed.info().lastId).toBe(1);
  });

  it('Redis feed: the key holds across two labs on one feed, and each first send is appended once', async () => {
    const prefix = usePrefix();
    const config = { feed: SHARED_REDIS, redisKeyPrefix: prefix };
    const a = await startLab(config);
    const b = await startLab(config);
    await sendAndDrop(a, { n: 1 }, 'k-1');
    await until(() => a.app.lab.feed.info().lastId === 1);
    const retry = await send(connection(b), { n: 1 }, { 'idempotency-key': 'k-1' });
    expect(retry).toMatchObject({ status: 200, body: { id: 1, duplicate: true } });
    // Concurrent first sends of one key on both labs: one appended, the other its duplicate.
    const both = await Promise.all([a, b].map((lab) => send(connection(lab), { n: 2 }, { 'idempotency-key': 'k-2' })));
    expect(both.map((s) => s.status).sort()).toEqual([200, 201]);
    expect(new Set(both.map((s) => s.body.id))).toEqual(new Set([2]));
    await until(() => b.app.lab.feed.info().lastId === 2);
    const read = await b.app.lab.feed.read(0, 10);
    expect(read.kind === 'messages' && dataOf(read.messages)).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('the memory feed forgets a key after its TTL, and the oldest keys past retentionMessages of them', async () => {
    const feed = new MemoryFeed({ retentionMessages: 3 });
    onTestFinished(() => feed.close());
    const t0 = performance.now();
    expect((await feed.appendOnce('a', 1, 5)).duplicate).toBe(false);
    expect(await feed.appendOnce('a', 1, 5)).toMatchObject({ duplicate: true, message: { id: 1 } });
    await until(() => performance.now() > t0 + 10);
    expect(await feed.appendOnce('a', 1, 5)).toMatchObject({ duplicate: false, message: { id: 2 } });
    // Long TTL: only the bound forgets. b, c, d; then e pushes b out.
    for (const k of ['b', 'c', 'd']) await feed.appendOnce(k, k, 60_000);
    expect((await feed.appendOnce('b', 'b', 60_000)).duplicate).toBe(true);
    await feed.appendOnce('e', 'e', 60_000);
    await feed.appendOnce('f', 'f', 60_000);
    expect((await feed.appendOnce('b', 'b', 60_000)).duplicate).toBe(false);
  });
});

describe('batched sends', () => {
  /** POST `body` as JSON to `path` on `c`. */
  async function postJson(c: Client, body: unknown, headers: Record<string, string> = {}, path = '/send') {
    const res = await c.request({
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: (await res.body.json()) as { batch?: { id: number; duplicate?: true }[]; error?: { code: string } },
    };
  }

  it('POST /send {batch}: every item appended in order and answered item by item; a retry with the keys appends nothing', async () => {
    const lab = await startLab();
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await until(() => lab.app.lab.stats.transports.sse.connections === 1);
    const page = connection(lab);
    const batch = [{ data: { n: 1 }, key: 'b:1' }, { data: { n: 2 }, key: 'b:2' }, { data: { n: 3 } }];
    const first = await postJson(page, { batch });
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ batch: [{ id: 1 }, { id: 2 }, { id: 3 }] });
    // The answer was lost: the page sends the keyed items again, with one more.
    const again = await postJson(page, { batch: [batch[0], batch[1], { data: { n: 4 }, key: 'b:4' }] });
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ batch: [{ id: 1, duplicate: true }, { id: 2, duplicate: true }, { id: 4 }] });
    // Every item a duplicate: 200 and Idempotent-Replayed, as a single replayed send.
    const replay = await postJson(page, { batch: [batch[1]] }, {}, '/publish');
    expect([replay.status, replay.headers['idempotent-replayed']]).toEqual([200, 'true']);
    expect(replay.body).toEqual({ batch: [{ id: 2, duplicate: true }] });
    await until(() => sse.messages.length === 4);
    expect(dataOf(sse.messages)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(lab.app.lab.feed.info().lastId).toBe(4);
  });

  it('a bad batch is refused whole, LAB_ERR_BAD_BATCH or the item’s own code, and appends nothing', async () => {
    const lab = await startLab({ sendBatchMax: 3, maxNestingDepth: 4 });
    const page = connection(lab);
    const deep = { a: { b: { c: { d: { e: 1 } } } } };
    const cases: [unknown, Record<string, string>, number, string][] = [
      [{ batch: [] }, {}, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: {} }, {}, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: [{ data: 1 }, { data: 2 }, { data: 3 }, { data: 4 }] }, {}, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: [{ data: 1 }, { nodata: 2 }] }, {}, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: [{ data: 1 }, 7] }, {}, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: [{ data: 1 }] }, { 'idempotency-key': 'k1' }, 400, 'LAB_ERR_BAD_BATCH'],
      [{ batch: [{ data: 1 }, { data: 2, key: 'has space' }] }, {}, 400, 'LAB_ERR_BAD_IDEMPOTENCY_KEY'],
      // The bad item is the last: the first two are not appended either.
      [{ batch: [{ data: 1 }, { data: 2 }, { data: deep }] }, {}, 400, 'LAB_ERR_DATA_TOO_DEEP'],
    ];
    for (const [body, headers, status, code] of cases) {
      const res = await postJson(page, body, headers);
      expect.soft([res.status, res.body.error?.code], JSON.stringify(body)).toEqual([status, code]);
    }
    expect(lab.app.lab.feed.info().lastId).toBe(0);
  });

  it('a batch spends one message of the budget per item, over HTTP and WebSocket', async () => {
    const lab = await startLab({ sendMessagesPerSec: 3 });
    const page = connection(lab);
    const three = [{ data: 1 }, { data: 2 }, { data: 3 }];
    expect((await postJson(page, { batch: three })).status).toBe(201);
    const over = await postJson(page, { batch: [{ data: 4 }] });
    expect([over.status, over.body.error?.code]).toEqual([429, 'LAB_ERR_SEND_RATE']);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    ws.ws.send(JSON.stringify({ type: 'publish', batch: three, ref: 'b' }));
    ws.ws.send(JSON.stringify({ type: 'publish', batch: [{ data: 5 }], ref: 'c' }));
    await until(() => ws.controlsOf('ack').length === 1 && ws.controlsOf('error').length === 1);
    expect(ws.controlsOf('ack')[0]).toEqual({ type: 'ack', batch: [{ id: 4 }, { id: 5 }, { id: 6 }], ref: 'b' });
    expect(ws.controlsOf('error')[0]).toMatchObject({ type: 'error', code: 'LAB_ERR_SEND_RATE', ref: 'c' });
    expect(lab.app.lab.feed.info().lastId).toBe(6);
  });

  it('WebSocket batch frame: one ack with every id in order, duplicates marked; a bad batch an error frame with its ref', async () => {
    const lab = await startLab({ sendBatchMax: 4 });
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await ws.opened;
    const batch = [
      { data: 'a', key: 'w:a' },
      { data: 'b', key: 'w:b' },
    ];
    ws.ws.send(JSON.stringify({ type: 'publish', batch, ref: 1 }));
    ws.ws.send(JSON.stringify({ type: 'publish', batch: [batch[1], { data: 'c' }], ref: 2 }));
    ws.ws.send(JSON.stringify({ type: 'publish', batch: [{ data: 'd' }, { nodata: 1 }], ref: 3 }));
    ws.ws.send(JSON.stringify({ type: 'publish', batch: [], data: 1, ref: 4 }));
    await until(() => ws.controlsOf('ack').length === 2 && ws.controlsOf('error').length === 2);
    expect(ws.controlsOf('ack')).toEqual([
      { type: 'ack', batch: [{ id: 1 }, { id: 2 }], ref: 1 },
      { type: 'ack', batch: [{ id: 2, duplicate: true }, { id: 3 }], ref: 2 },
    ]);
    expect(ws.controlsOf('error').map((e) => [e.code, e.ref])).toEqual([
      ['LAB_ERR_BAD_BATCH', 3],
      ['LAB_ERR_BAD_FRAME', 4],
    ]);
    await until(() => ws.messages.length === 3);
    expect(dataOf(ws.messages)).toEqual(['a', 'b', 'c']);
    expect(lab.app.lab.feed.info().lastId).toBe(3);
  });
});
