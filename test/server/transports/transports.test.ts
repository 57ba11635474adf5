/**
 * The three transports over one feed: the same ids in the same order on each; resuming, gaps, resets,
 * held polls, batching, keep-alives, slow consumers and shutdown — across the three transports. Real server on port 0, real clients (fetch, eventsource, ws); no fixed sleeps.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { FetchLike } from 'eventsource';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { buildApp } from '../../../server/app.js';
import type { ConfigInput } from '../../../server/config.js';
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
  type RunningLab,
  type Seen,
} from '../../helpers/lab.js';

// ---- small helpers local to this file ------------------------------------------------------------

/** Records every SSE event in order: named events by name, messages by id. */
function sseOrder(client: SseClient): Seen {
  const seen: Seen = [];
  client.es.addEventListener('message', (e) => seen.push((JSON.parse(e.data) as Message).id));
  for (const type of ['hello', 'gap', 'reset']) client.es.addEventListener(type, () => seen.push(type));
  return seen;
}

/** A `fetch` for EventSource that adds headers the caller chose (the client's own headers win). */
const fetchWithHeaders =
  (extra: Record<string, string>): FetchLike =>
  (url, init) =>
    fetch(url, { ...init, headers: { ...extra, ...init.headers } } as RequestInit);

/**
 * An SseClient whose lab is closed BEFORE the client when the test ends (onTestFinished hooks run in
 * reverse order; a second app.close() is harmless). Closing an EventSource first aborts its fetch, after
 * which Node's fetch (undici) opens a spare connection that never sends a request — and such a connection
 * keeps app.close() waiting (see the shutdown scenarios below).
 */
function sseClient(lab: RunningLab, url: string, init?: ConstructorParameters<typeof SseClient>[1]): SseClient {
  const client = new SseClient(url, init);
  onTestFinished(() => lab.app.close());
  return client;
}

/** A raw SSE stream read with fetch, so the bytes on the wire can be checked (or left unread). */
class RawSse {
  text = '';
  done = false;
  readonly #ac = new AbortController();
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #decoder = new TextDecoder();
  response!: Response;

  /** With `lab`, the lab is closed before the stream is aborted when the test ends (see sseClient). */
  constructor(
    readonly url: string,
    lab?: RunningLab,
  ) {
    onTestFinished(() => this.#ac.abort());
    if (lab) onTestFinished(() => lab.app.close());
  }

  async open(): Promise<this> {
    this.response = await fetch(this.url, { signal: this.#ac.signal, headers: { accept: 'text/event-stream' } });
    this.#reader = this.response.body!.getReader();
    return this;
  }

  /** Reads until `predicate(text)` holds or the stream ends; returns whether it held. */
  async readUntil(predicate: (text: string) => boolean): Promise<boolean> {
    while (!predicate(this.text)) {
      const { done, value } = await this.#reader!.read();
      if (done) {
        this.done = true;
        return predicate(this.text);
      }
      this.text += this.#decoder.decode(value, { stream: true });
    }
    return true;
  }

  /** Reads to the end of the stream (resolves when the server ended it cleanly). */
  async readToEnd(): Promise<void> {
    await this.readUntil(() => false);
  }
}

const ids = (messages: readonly Message[]): number[] => messages.map((m) => m.id);
const statsOf = (lab: RunningLab) => lab.app.lab.stats.transports;
const epochOf = (lab: RunningLab) => lab.app.lab.feed.info().epoch;

// ---- 1. resume without loss or duplicates ------------------------------------------------------------

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

describe('a client that disconnects and resumes from its cursor gets every message exactly once', () => {
  it('poll: resuming with since=<last lastId> after messages were published in between', async () => {
    const lab = await startLab();
    expect(await publishMany(lab.url, 5)).toEqual(range(1, 5));
    const first = await poll(lab.url, 'since=0&timeout=5000');
    expect(first.status).toBe(200);
    expect(ids(first.body.messages)).toEqual(range(1, 5));
    expect(first.body.lastId).toBe(5);

    // Not polling now: 6..10 are published meanwhile.
    expect(await publishMany(lab.url, 5)).toEqual(range(6, 10));
    const second = await poll(lab.url, `since=${first.body.lastId}&timeout=5000`);
    expect(second.body.gap).toBeUndefined();
    expect(second.body.reset).toBeUndefined();
    expect(ids(second.body.messages)).toEqual(range(6, 10));
    expect(second.body.lastId).toBe(10);

    // And live again: a held poll from the new cursor gets 11.
    const third = poll(lab.url, `since=${second.body.lastId}&timeout=5000`);
    await until(() => statsOf(lab).poll.connections === 1);
    await publish(lab.url, { n: 11 });
    const r3 = await third;
    expect(ids(r3.body.messages)).toEqual([11]);
    expect(r3.body.lastId).toBe(11);

    expect([...first.body.messages, ...second.body.messages, ...r3.body.messages].map((m) => m.id)).toEqual(
      range(1, 11),
    );
  });

  it('SSE: a fresh EventSource sending Last-Event-ID (which wins over ?since) resumes after the last seen id', async () => {
    const lab = await startLab();
    const before = sseClient(lab, `${lab.url}/events?since=0`);
    await until(() => before.eventsOf('hello').length === 1);
    await publishMany(lab.url, 5);
    await until(() => before.messages.at(-1)?.id === 5);
    before.es.close();
    const lastSeen = before.messages.at(-1)!.id;

    await publishMany(lab.url, 5); // 6..10 while nobody listens

    // The URL still says since=0: the header must win, or 1..5 would come again.
    const after = sseClient(lab, `${lab.url}/events?since=0`, {
      fetch: fetchWithHeaders({ 'Last-Event-ID': String(lastSeen) }),
    });
    const order = sseOrder(after);
    await until(() => after.messages.at(-1)?.id === 10);
    await publishMany(lab.url, 2); // 11, 12 live
    await until(() => after.messages.at(-1)?.id === 12);

    expect(order).toEqual(['hello', ...range(6, 12)]);
    expect([...before.ids(), ...after.ids()]).toEqual(range(1, 12));
    expect(after.eventsOf('gap')).toEqual([]);
    expect(after.eventsOf('reset')).toEqual([]);
  });

  it('SSE: when the server drops the stream, EventSource reconnects by itself with Last-Event-ID and misses nothing', async () => {
    // Reconnects after 10 ms (no jitter: the default adds up to 2 s).
    const lab = await startLab({ sseRetryMs: 10, sseRetryJitterMs: 0 });
    // Record the headers of every connect, and hold the reconnect until messages were published.
    const connects: Record<string, string>[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const gated: FetchLike = async (url, init) => {
      connects.push({ ...init.headers });
      if (connects.length === 2) await gate;
      return fetch(url, init as RequestInit);
    };
    const sse = sseClient(lab, `${lab.url}/events?since=0`, { fetch: gated });
    const order = sseOrder(sse);
    await until(() => sse.opens === 1 && sse.eventsOf('hello').length === 1);
    await publishMany(lab.url, 5);
    await until(() => sse.messages.at(-1)?.id === 5);

    // Server-side drop: every HTTP connection of the server is destroyed (the SSE stream among them).
    lab.app.server.closeAllConnections();
    await until(() => connects.length === 2);
    // Published while the client is disconnected.
    for (let i = 6; i <= 10; i++) await lab.app.lab.feed.append({ n: i });
    release();
    await until(() => sse.messages.at(-1)?.id === 10);
    await publishMany(lab.url, 2); // 11, 12 live on the new stream
    await until(() => sse.messages.at(-1)?.id === 12);

    expect(connects[0]?.['Last-Event-ID']).toBeUndefined();
    expect(connects[1]?.['Last-Event-ID']).toBe('5');
    expect(sse.opens).toBe(2);
    expect(sse.ids()).toEqual(range(1, 12));
    expect(order).toEqual(['hello', ...range(1, 5), 'hello', ...range(6, 12)]);
  });

  it('WebSocket: reconnecting with since=<last id seen> after messages were published in between', async () => {
    const lab = await startLab();
    const a = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await until(() => a.controlsOf('hello').length === 1);
    await publishMany(lab.url, 5); // live
    await until(() => a.messages.at(-1)?.id === 5);
    a.ws.close();
    await a.closed;
    await until(() => statsOf(lab).ws.connections === 0);

    await publishMany(lab.url, 5); // 6..10 while disconnected

    const b = new WsClient(`${lab.wsUrl}/ws?since=${a.messages.at(-1)!.id}`);
    const order = wsOrder(b);
    await until(() => b.messages.at(-1)?.id === 10);
    await publishMany(lab.url, 5); // 11..15 live
    await until(() => b.messages.at(-1)?.id === 15);

    expect(order).toEqual(['hello', ...range(6, 15)]);
    expect([...a.ids(), ...b.ids()]).toEqual(range(1, 15));
  });
});

// ---- 2. gap ----------------------------------------------------------------------------------------

describe('a cursor older than retention gets a gap announcement, then exactly the retained messages', () => {
  // retentionMessages 5 and 12 messages: 8..12 are retained; a client at 2 missed 3..7 (5 messages).
  const GAP = { type: 'gap', since: 2, firstId: 8, missed: 5 };

  async function labWithTwelve(): Promise<RunningLab> {
    const lab = await startLab({ retentionMessages: 5 });
    await publishMany(lab.url, 12);
    expect(lab.app.lab.feed.info()).toMatchObject({ lastId: 12, firstId: 8, retained: 5 });
    return lab;
  }

  it('poll: body.gap tells since/firstId/missed and the messages start at firstId', async () => {
    const lab = await labWithTwelve();
    const { status, body } = await poll(lab.url, 'since=2&timeout=5000');
    expect(status).toBe(200);
    expect(body.gap).toEqual(GAP);
    expect(body.reset).toBeUndefined();
    expect(ids(body.messages)).toEqual(range(8, 12));
    expect(body.lastId).toBe(12);

    // From 0: the whole lost prefix is counted.
    const fromZero = await poll(lab.url, 'since=0&timeout=5000');
    expect(fromZero.body.gap).toEqual({ type: 'gap', since: 0, firstId: 8, missed: 7 });
    expect(ids(fromZero.body.messages)).toEqual(range(8, 12));

    // Boundary: a cursor just before the first retained message has lost nothing.
    const edge = await poll(lab.url, 'since=7&timeout=5000');
    expect(edge.body.gap).toBeUndefined();
    expect(ids(edge.body.messages)).toEqual(range(8, 12));
  });

  it('SSE: a `gap` event whose id is firstId-1, then the retained messages', async () => {
    const lab = await labWithTwelve();
    const sse = sseClient(lab, `${lab.url}/events?since=2`);
    const order = sseOrder(sse);
    await until(() => sse.messages.at(-1)?.id === 12);
    expect(order).toEqual(['hello', 'gap', ...range(8, 12)]);
    const [gap] = sse.eventsOf('gap');
    expect(gap?.data).toEqual(GAP);
    expect(gap?.lastEventId).toBe('7');

    // The same cursor given as Last-Event-ID (a reconnect) gets the same announcement.
    const viaHeader = sseClient(lab, `${lab.url}/events`, { fetch: fetchWithHeaders({ 'Last-Event-ID': '2' }) });
    const order2 = sseOrder(viaHeader);
    await until(() => viaHeader.messages.at(-1)?.id === 12);
    expect(order2).toEqual(['hello', 'gap', ...range(8, 12)]);
    expect(viaHeader.eventsOf('gap')[0]?.data).toEqual(GAP);
  });

  it('WebSocket: a gap frame, then the retained messages', async () => {
    const lab = await labWithTwelve();
    const ws = new WsClient(`${lab.wsUrl}/ws?since=2`);
    const order = wsOrder(ws);
    await until(() => ws.messages.at(-1)?.id === 12);
    expect(order).toEqual(['hello', 'gap', ...range(8, 12)]);
    expect(ws.controlsOf('gap')).toEqual([GAP]);
  });
});

// ---- 3. reset --------------------------------------------------------------------------------------

describe('a cursor from the future or from another epoch gets a reset, then the epoch from its start', () => {
  async function labWithFive(config: ConfigInput = {}): Promise<{ lab: RunningLab; epoch: string }> {
    const lab = await startLab(config);
    await publishMany(lab.url, 5);
    return { lab, epoch: epochOf(lab) };
  }

  it('poll: since=999 → reset future-cursor with the current epoch, and messages 1..5', async () => {
    const { lab, epoch } = await labWithFive();
    const { status, body } = await poll(lab.url, 'since=999&timeout=5000');
    expect(status).toBe(200);
    expect(body.reset).toEqual({ type: 'reset', reason: 'future-cursor', epoch, lastId: 5 });
    expect(body.gap).toBeUndefined();
    expect(ids(body.messages)).toEqual(range(1, 5));
    expect(body.lastId).toBe(5);
    expect(body.epoch).toBe(epoch);
  });

  it('poll: a mismatched epoch → reset epoch-mismatch and the epoch from its start; the right epoch → no reset', async () => {
    const { lab, epoch } = await labWithFive();
    const { body } = await poll(lab.url, 'since=3&epoch=some-other-epoch&timeout=5000');
    expect(body.reset).toEqual({ type: 'reset', reason: 'epoch-mismatch', epoch, lastId: 5 });
    expect(ids(body.messages)).toEqual(range(1, 5));
    expect(body.lastId).toBe(5);

    const same = await poll(lab.url, `since=3&epoch=${encodeURIComponent(epoch)}&timeout=5000`);
    expect(same.body.reset).toBeUndefined();
    expect(ids(same.body.messages)).toEqual([4, 5]);
  });

  it('poll: a reset into a feed that lost its start is followed by a gap from 0', async () => {
    const lab = await startLab({ retentionMessages: 5 });
    await publishMany(lab.url, 12);
    const { body } = await poll(lab.url, 'since=999&timeout=5000');
    expect(body.reset).toEqual({ type: 'reset', reason: 'future-cursor', epoch: epochOf(lab), lastId: 12 });
    expect(body.gap).toEqual({ type: 'gap', since: 0, firstId: 8, missed: 7 });
    expect(ids(body.messages)).toEqual(range(8, 12));
  });

  it('SSE: since=999 and a mismatched epoch → a `reset` event (id 0) with the current epoch, then 1..5', async () => {
    const { lab, epoch } = await labWithFive();
    const cases = [
      ['since=999', 'future-cursor'],
      ['since=3&epoch=some-other-epoch', 'epoch-mismatch'],
    ] as const;
    const clients = cases.map(([query]) => {
      const sse = sseClient(lab, `${lab.url}/events?${query}`);
      return { sse, order: sseOrder(sse) };
    });
    await until(() => clients.every(({ sse }) => sse.messages.at(-1)?.id === 5));
    cases.forEach(([query, reason], i) => {
      const { sse, order } = clients[i]!;
      expect(order, query).toEqual(['hello', 'reset', ...range(1, 5)]);
      const [reset] = sse.eventsOf('reset');
      expect(reset?.data, query).toEqual({ type: 'reset', reason, epoch, lastId: 5 });
      expect(reset?.lastEventId, query).toBe('0');
      expect(sse.eventsOf('hello')[0]?.data, query).toEqual({ type: 'hello', epoch, lastId: 5 });
    });
  });

  it('SSE: an EventSource opened with a stale epoch resets once; its automatic reconnect resumes without a second reset', async () => {
    // EventSource reconnects after the stream's retry: 10 ms, not the default 1–3 s.
    const { lab, epoch } = await labWithFive({ sseRetryMs: 10, sseRetryJitterMs: 0 });
    const sse = sseClient(lab, `${lab.url}/events?since=3&epoch=stale-epoch`);
    const order = sseOrder(sse);
    await until(() => sse.messages.at(-1)?.id === 5);
    lab.app.server.closeAllConnections(); // drop the stream; EventSource reconnects with Last-Event-ID: 5
    await until(() => sse.opens === 2 && sse.eventsOf('hello').length === 2);
    await publishMany(lab.url, 2);
    await until(() => sse.messages.at(-1)?.id === 7);
    expect(sse.eventsOf('reset')).toHaveLength(1);
    expect(sse.eventsOf('reset')[0]?.data).toMatchObject({ reason: 'epoch-mismatch', epoch });
    expect(order).toEqual(['hello', 'reset', ...range(1, 5), 'hello', 6, 7]);
  });

  it('WebSocket: since=999 and a mismatched epoch → a reset frame with the current epoch, then 1..5', async () => {
    const { lab, epoch } = await labWithFive();
    for (const [query, reason] of [
      ['since=999', 'future-cursor'],
      ['since=3&epoch=some-other-epoch', 'epoch-mismatch'],
    ] as const) {
      const ws = new WsClient(`${lab.wsUrl}/ws?${query}`);
      const order = wsOrder(ws);
      await until(() => ws.messages.at(-1)?.id === 5);
      expect(order, query).toEqual(['hello', 'reset', ...range(1, 5)]);
      expect(ws.controlsOf('reset'), query).toEqual([{ type: 'reset', reason, epoch, lastId: 5 }]);
      ws.ws.close();
      await ws.closed;
    }
  });
});

// ---- 4. held polls and "since absent" ----------------------------------------------------------------

describe('long polling holds the request until something happens', () => {
  it('a held poll wakes on publish and answers with exactly that message', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 3);
    const held = poll(lab.url, 'since=3&timeout=10000');
    await until(() => statsOf(lab).poll.connections === 1);
    const id = await publish(lab.url, { wake: true });
    expect(id).toBe(4);
    const { status, body } = await held;
    expect(status).toBe(200);
    expect(body.messages).toHaveLength(1);
    expect(body.messages[0]).toMatchObject({ id: 4, data: { wake: true } });
    expect(body.lastId).toBe(4);
    expect(body.epoch).toBe(epochOf(lab));
    await until(() => statsOf(lab).poll.connections === 0);
    expect(statsOf(lab).poll.messagesOut).toBe(1);
  });

  it('a held poll that times out answers empty with lastId equal to since', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 4);
    const { status, body } = await poll(lab.url, 'since=4&timeout=50');
    expect(status).toBe(200);
    expect(body).toEqual({ messages: [], lastId: 4, epoch: epochOf(lab) });
    expect(statsOf(lab).poll.requests).toBe(1);
    expect(statsOf(lab)['short-poll'].requests).toBe(0);
  });

  it('without since, a poll gets only what is published next', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 3);
    const held = poll(lab.url, 'timeout=10000');
    await until(() => statsOf(lab).poll.connections === 1);
    await publish(lab.url, { next: true });
    const { body } = await held;
    expect(ids(body.messages)).toEqual([4]);
    expect(body.lastId).toBe(4);

    // And a poll without since that times out reports the feed's last id as the cursor.
    const empty = await poll(lab.url, 'timeout=50');
    expect(empty.body).toEqual({ messages: [], lastId: 4, epoch: epochOf(lab) });
  });

  it('without since, SSE and WebSocket also start with what comes next', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 3);
    const sse = sseClient(lab, `${lab.url}/events`);
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    const sseSeen = sseOrder(sse);
    const wsSeen = wsOrder(ws);
    await until(() => sse.eventsOf('hello').length === 1 && ws.controlsOf('hello').length === 1);
    expect(sse.eventsOf('hello')[0]?.data).toEqual({ type: 'hello', epoch: epochOf(lab), lastId: 3 });
    expect(ws.controlsOf('hello')).toEqual([{ type: 'hello', epoch: epochOf(lab), lastId: 3 }]);
    await publish(lab.url, { next: 4 });
    await until(() => sse.messages.at(-1)?.id === 4 && ws.messages.at(-1)?.id === 4);
    expect(sseSeen).toEqual(['hello', 4]);
    expect(wsSeen).toEqual(['hello', 4]);
  });
});

// ---- 5. batch cap ------------------------------------------------------------------------------------

describe('pollBatchMax caps one answer; the client follows lastId', () => {
  it('with pollBatchMax 10 and 25 messages, since=0 answers 10, then 10, then 5', async () => {
    const lab = await startLab({ pollBatchMax: 10 });
    for (let i = 1; i <= 25; i++) await lab.app.lab.feed.append({ i });

    const a = await poll(lab.url, 'since=0&timeout=5000');
    expect(ids(a.body.messages)).toEqual(range(1, 10));
    expect(a.body.lastId).toBe(10);
    const b = await poll(lab.url, `since=${a.body.lastId}&timeout=5000`);
    expect(ids(b.body.messages)).toEqual(range(11, 20));
    expect(b.body.lastId).toBe(20);
    const c = await poll(lab.url, `since=${b.body.lastId}&timeout=5000`);
    expect(ids(c.body.messages)).toEqual(range(21, 25));
    expect(c.body.lastId).toBe(25);
    const d = await poll(lab.url, `since=${c.body.lastId}&timeout=0`);
    expect(d.body).toEqual({ messages: [], lastId: 25, epoch: epochOf(lab) });
  });

  it('SSE and WebSocket catch up from 0 through several batches of 10, in order', async () => {
    const lab = await startLab({ pollBatchMax: 10 });
    for (let i = 1; i <= 25; i++) await lab.app.lab.feed.append({ i });
    const sse = sseClient(lab, `${lab.url}/events?since=0`);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await until(() => sse.messages.at(-1)?.id === 25 && ws.messages.at(-1)?.id === 25);
    expect(sse.ids()).toEqual(range(1, 25));
    expect(ws.ids()).toEqual(range(1, 25));
  });
});

// ---- 6. SSE wire format and heartbeat ----------------------------------------------------------------

describe('an idle SSE stream', () => {
  it('has the event-stream headers, starts with retry:, and gets ": heartbeat" comments', async () => {
    const lab = await startLab({ sseHeartbeatMs: 30, sseRetryMs: 1234, sseRetryJitterMs: 0 });
    const raw = await new RawSse(`${lab.url}/events`, lab).open();
    expect(raw.response.status).toBe(200);
    expect(raw.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(raw.response.headers.get('cache-control')).toBe('no-cache');
    expect(raw.response.headers.get('x-accel-buffering')).toBe('no');

    expect(await raw.readUntil((t) => t.includes(': heartbeat\n'))).toBe(true);
    expect(raw.text.startsWith('retry: 1234\n\n')).toBe(true);
    // By default each stream's retry is jittered: within [sseRetryMs, sseRetryMs + sseRetryJitterMs].
    const jittered = await startLab({ sseRetryMs: 1000, sseRetryJitterMs: 2000 });
    const other = await new RawSse(`${jittered.url}/events`, jittered).open();
    expect(await other.readUntil((t) => /^retry: \d+\n\n/.test(t))).toBe(true);
    const retry = Number(/^retry: (\d+)/.exec(other.text)![1]);
    expect(retry).toBeGreaterThanOrEqual(1000);
    expect(retry).toBeLessThanOrEqual(3000);
    // hello comes before any heartbeat, and a heartbeat is a comment line of its own.
    expect(raw.text.indexOf('event: hello\n')).toBeGreaterThan(0);
    expect(raw.text.indexOf('event: hello\n')).toBeLessThan(raw.text.indexOf(': heartbeat'));
    expect(raw.text).toMatch(/(^|\n): heartbeat\n\n/);
    // And heartbeats keep coming.
    const seen = raw.text.split(': heartbeat').length - 1;
    expect(await raw.readUntil((t) => t.split(': heartbeat').length - 1 >= seen + 2)).toBe(true);
  });
});

// ---- 7. WebSocket ping / pong ------------------------------------------------------------------------

describe('WebSocket keep-alive', () => {
  it('a client that answers pings stays open; one that never pongs is terminated as pong-timeout', async () => {
    // A pong is read one loop turn after its ping; a peer is cut when the next ping finds no pong. At
    // 30 ms, a stall of the (shared, loaded) test process in between could cut the answering client.
    const lab = await startLab({ wsPingIntervalMs: 100 });
    const good = new WebSocket(`${lab.wsUrl}/ws`);
    const mute = new WebSocket(`${lab.wsUrl}/ws`, { autoPong: false });
    onTestFinished(() => {
      good.terminate();
      mute.terminate();
    });
    let goodPings = 0;
    let mutePings = 0;
    good.on('ping', () => goodPings++);
    mute.on('ping', () => mutePings++);
    const muteClosed = once(mute, 'close') as Promise<[number, Buffer]>;
    await Promise.all([once(good, 'open'), once(mute, 'open')]);

    const [code] = await muteClosed;
    expect(code).toBe(1006); // terminated: no close frame
    expect(mutePings).toBeGreaterThanOrEqual(1);
    await until(() => statsOf(lab).ws.disconnects['pong-timeout'] === 1 && statsOf(lab).ws.connections === 1);

    await until(() => goodPings >= 2);
    const now = goodPings;
    await until(() => goodPings >= now + 2);
    expect(good.readyState).toBe(WebSocket.OPEN);
    expect(statsOf(lab).ws.disconnects['pong-timeout']).toBe(1);
    expect(statsOf(lab).ws.connections).toBe(1);
  });
});

// ---- 8. slow consumers --------------------------------------------------------------------------------

describe('a client that stops reading is dropped as a slow consumer; the others get everything', () => {
  const BIG = 'x'.repeat(60 * 1024);
  /** Enough to fill loopback kernel buffers (several MB) many times over; hitting it means no drop happened. */
  const MAX_MESSAGES = 600;
  const config = { maxBufferedBytes: 64 * 1024, maxPayloadBytes: 1024 * 1024, wsCloseGraceMs: 20 };

  /**
   * Appends 60 KB messages one at a time, each delivered to the reading client before the next, until
   * `dropped()` or MAX_MESSAGES. Returns how many were published.
   */
  async function publishUntil(
    lab: RunningLab,
    delivered: () => Promise<unknown>,
    dropped: () => boolean,
  ): Promise<number> {
    let n = 0;
    while (!dropped() && n < MAX_MESSAGES) {
      n++;
      const arrived = delivered();
      await lab.app.lab.feed.append({ n, big: BIG });
      await arrived;
    }
    return n;
  }

  it('WebSocket: the paused client is closed (slow-consumer) while the reading client receives every message in order', async () => {
    const lab = await startLab(config);
    const stalled = new WsClient(`${lab.wsUrl}/ws`);
    const normal = new WsClient(`${lab.wsUrl}/ws`);
    await until(() => stalled.controlsOf('hello').length === 1 && normal.controlsOf('hello').length === 1);
    (stalled.ws as unknown as { _socket: Socket })._socket.pause();

    const n = await publishUntil(
      lab,
      () => once(normal.ws, 'message'),
      () => statsOf(lab).ws.disconnects['slow-consumer'] > 0,
    );
    expect(n).toBeLessThan(MAX_MESSAGES);
    expect(statsOf(lab).ws.disconnects['slow-consumer']).toBe(1);
    // The stalled one is cut (terminated after the close grace); the reader stays.
    await until(() => statsOf(lab).ws.connections === 1);

    // The reader keeps receiving after the drop.
    await lab.app.lab.feed.append({ n: n + 1, after: true });
    await until(() => normal.messages.at(-1)?.id === n + 1);
    expect(normal.ids()).toEqual(range(1, n + 1));
    expect(normal.ws.readyState).toBe(WebSocket.OPEN);
    expect(stalled.messages.length).toBeLessThan(n);
    expect(statsOf(lab).ws.disconnects['slow-consumer']).toBe(1);
  });

  it('SSE: the stream nobody reads is destroyed (slow-consumer) while the EventSource receives every message in order', async () => {
    const lab = await startLab(config);
    const stalled = await new RawSse(`${lab.url}/events`, lab).open();
    expect(await stalled.readUntil((t) => t.includes('event: hello'))).toBe(true);
    // …and never reads again.
    const normal = sseClient(lab, `${lab.url}/events`);
    await until(() => normal.eventsOf('hello').length === 1 && statsOf(lab).sse.connections === 2);

    const n = await publishUntil(
      lab,
      () => once(normal.es, 'message'),
      () => statsOf(lab).sse.disconnects['slow-consumer'] > 0,
    );
    expect(n).toBeLessThan(MAX_MESSAGES);
    expect(statsOf(lab).sse.disconnects['slow-consumer']).toBe(1);
    await until(() => statsOf(lab).sse.connections === 1);

    await lab.app.lab.feed.append({ n: n + 1, after: true });
    await until(() => normal.messages.at(-1)?.id === n + 1);
    expect(normal.ids()).toEqual(range(1, n + 1));
    expect(normal.opens).toBe(1);
    expect(statsOf(lab).sse.disconnects['slow-consumer']).toBe(1);
  });
});

// ---- 9. shutdown ---------------------------------------------------------------------------------------

describe('shutting down with clients still connected', () => {
  it('app.close() completes: the held poll is answered, WebSocket gets 1001, SSE streams end, all counted', async () => {
    // Built here (not startLab) because this test closes the app itself.
    const app = await buildApp({ config: { demo: false } });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const wsUrl = url.replace(/^http/, 'ws');
    let closed = false;
    onTestFinished(async () => {
      if (!closed) await app.close();
    });
    const stats = app.lab.stats.transports;
    await publishMany(url, 2);

    const held = poll(url, 'since=2&timeout=15000');
    const sse = new SseClient(`${url}/events`);
    let sseErrors = 0;
    sse.es.addEventListener('error', () => sseErrors++);
    const raw = await new RawSse(`${url}/events`).open();
    const rawEnded = raw.readToEnd();
    const ws = new WsClient(`${wsUrl}/ws`);
    await ws.opened;
    await until(
      () =>
        stats.poll.connections === 1 &&
        stats.sse.connections === 2 &&
        stats.ws.connections === 1 &&
        sse.eventsOf('hello').length === 1 &&
        ws.controlsOf('hello').length === 1,
    );

    await app.close();
    closed = true;

    const answer = await held;
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ messages: [], lastId: 2, epoch: app.lab.feed.info().epoch });

    await ws.closed;
    expect(ws.closeCode).toBe(1001);
    expect(ws.closeReason).toBe('LAB_ERR_SHUTTING_DOWN');

    await rawEnded;
    expect(raw.done).toBe(true);
    await until(() => sseErrors >= 1); // EventSource saw its stream end
    sse.es.close();

    expect(stats.poll.disconnects.shutdown).toBe(1);
    expect(stats.sse.disconnects.shutdown).toBe(2);
    expect(stats.ws.disconnects.shutdown).toBe(1);
    expect(stats.poll.connections).toBe(0);
    expect(stats.sse.connections).toBe(0);
    expect(stats.ws.connections).toBe(0);
    expect(stats.sse.disconnects.client + stats.ws.disconnects.client + stats.poll.disconnects.client).toBe(0);
  });

  // Browsers pre-connect speculatively, and Node's own fetch (undici) opens a spare connection after an
  // aborted request: a connected socket that has not sent a request yet is an open client too.
  it('app.close() completes while a client holds a connection on which it has not sent a request yet', async () => {
    const lab = await startLab();
    const accepted = once(lab.app.server, 'connection');
    const idle = connect(Number(new URL(lab.url).port), '127.0.0.1');
    // Registered after startLab, so it runs first when the test ends: lets the teardown close finish.
    onTestFinished(() => void idle.destroy());
    const idleClosed = once(idle, 'close');
    await Promise.all([once(idle, 'connect'), accepted]);

    await lab.app.close(); // hangs here (bounded by this test's timeout) if the socket keeps the server open
    await idleClosed;
    expect(idle.destroyed).toBe(true);
  }, 3_000);

  // Hundreds, not a thousand: the same shutdown of every peer at once, at a third of the CPU (client
  // and server share this process), and under the listen backlog (511), so no connect waits out a
  // dropped SYN's one-second retry.
  it('app.close() completes with three hundred WebSockets and fifty held polls open, each answered or closed with 1001', async () => {
    const lab = await startLab();
    const sockets = Array.from({ length: 300 }, () => new WsClient(`${lab.wsUrl}/ws`));
    await Promise.all(sockets.map((s) => s.opened));
    const polls = Array.from({ length: 50 }, () => poll(lab.url, 'timeout=20000'));
    const stats = statsOf(lab);
    await until(() => stats.ws.connections === 300 && stats.poll.connections === 50);

    await lab.app.close();

    const answers = await Promise.all(polls);
    expect(answers.every((a) => a.status === 200 && a.body.messages.length === 0)).toBe(true);
    await Promise.all(sockets.map((s) => s.closed));
    expect(new Set(sockets.map((s) => s.closeCode))).toEqual(new Set([1001]));
    expect(stats.ws.disconnects.shutdown).toBe(300);
    expect(stats.poll.disconnects.shutdown).toBe(50);
  });
});
