/**
 * The SSE peer reference servers (bench/servers/better-sse.ts, bench/servers/fastify-sse.ts) serve the
 * lab's feed through a library a user would otherwise install. Each runs exactly as the bench runs it:
 * bench/processes/server-process.ts startServer (fork, --expose-gc, --import tsx, BENCH_SERVER_OPTS), driven
 * through its IPC and its control port, with real sockets only.
 *
 * - A real EventSource (the `eventsource` package) gets the messages published through POST /publish
 *   live, in order, as `message` events whose last event ID is the message id and whose data is the
 *   lab's message JSON, encoded once; /stats counts the stream, the messages and the bytes under `sse`.
 * - Replay: `since` on the first connect, then a real EventSource reconnect (its connection cut under
 *   it) with its own Last-Event-ID, which wins over the `since` still in its URL: exactly the messages
 *   after it, none twice, then live ones.
 * - The bench's own SSE client on a tiny runScenario: nothing lost, duplicated or out of order.
 * Waits are for events and counts (polling /stats), never for fixed times.
 */
import { EventSource } from 'eventsource';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { runScenario } from '../../../bench/measure/run-scenario.js';
import { ServerPool, startServer, type ServerHandle } from '../../../bench/processes/server-process.js';
import { target } from '../../../bench/plan/targets.js';
import type { Message } from '../../../server/protocol.js';
import type { TransportCounters } from '../../../server/stats.js';
import { publish, range, until } from '../../helpers/lab.js';

/** A forked server compiles its TypeScript on start; two cores shared with other suites. */
const START_TIMEOUT_MS = 60_000;
/** Covers an EventSource reconnect: its wait is the server's `retry:` (better-sse 2 s) or its own default (3 s). */
const WAIT_MS = 15_000;

const eventually = (check: () => unknown) => vi.waitFor(check, { timeout: WAIT_MS, interval: 20 });

interface Received {
  type: string;
  lastEventId: string;
  text: string;
  message: Message;
}

/**
 * An EventSource on its own undici Agent (a fresh one per request it makes), recording every
 * `message` event and the Last-Event-ID of every request; `cut()` destroys the current connection
 * under it, which EventSource answers with its own reconnect.
 */
class Source {
  readonly received: Received[] = [];
  readonly lastEventIds: (string | null)[] = [];
  opens = 0;
  readonly es: EventSource;
  #agent: Agent | undefined;

  constructor(url: string) {
    this.es = new EventSource(url, {
      fetch: (input, init) => {
        this.#agent = new Agent();
        const headers = new Headers(init?.headers as Record<string, string>);
        this.lastEventIds.push(headers.get('last-event-id'));
        return undiciFetch(input as string, {
          ...(init as object),
          dispatcher: this.#agent,
        }) as unknown as Promise<Response>;
      },
    });
    this.es.onopen = () => this.opens++;
    this.es.onmessage = (e) =>
      this.received.push({
        type: e.type,
        lastEventId: e.lastEventId,
        text: e.data,
        message: JSON.parse(e.data) as Message,
      });
    onTestFinished(() => this.close());
  }

  ids(): number[] {
    return this.received.map((r) => r.message.id);
  }

  async cut(): Promise<void> {
    await this.#agent?.destroy();
  }

  async close(): Promise<void> {
    this.es.close();
    await this.#agent?.destroy();
  }
}

const published = new Map<number, unknown>();
async function send(server: ServerHandle, p: string): Promise<number> {
  const data = { t: Date.now(), p };
  const id = await publish(server.controlUrl, data);
  published.set(id, data);
  return id;
}

/** Every event is the message `id` as the lab encodes it: `message` type, `id:` = its id, data = `{"id","ts","data"}` once. */
function expectMessages(received: readonly Received[], ids: readonly number[]): void {
  expect(received.map((r) => r.message.id)).toEqual(ids);
  for (const r of received) {
    expect(r.type).toBe('message');
    expect(r.lastEventId).toBe(String(r.message.id));
    expect(Object.keys(r.message)).toEqual(['id', 'ts', 'data']);
    expect(typeof r.message.ts).toBe('number');
    expect(r.message.data).toEqual(published.get(r.message.id));
    // Not encoded twice: the data field is the JSON object itself, exactly as messageJson writes it.
    expect(r.text).toBe(JSON.stringify({ id: r.message.id, ts: r.message.ts, data: r.message.data }));
  }
}

const delta = (
  after: TransportCounters,
  before: TransportCounters,
  f: 'requests' | 'messagesOut' | 'bytesOut' | 'bytesIn',
) => after[f] - before[f];

const SCRIPTS = ['better-sse', 'fastify-sse'] as const;
/** Both servers asked for as the file starts (a pool starts one per core at a time); each block awaits its own. */
const pool = new ServerPool();
const started = (script: (typeof SCRIPTS)[number]) => pool.get(script, () => startServer(script));
beforeAll(() => {
  for (const script of SCRIPTS) started(script).catch(() => {}); // its block's beforeAll reports a failed start
});
// Each block stops its own; this covers a block that did not run (a -t filter).
afterAll(() => pool.stop());

describe.each(SCRIPTS)('the %s peer server', (script) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await started(script);
  }, START_TIMEOUT_MS);
  afterAll(() => server?.stop());

  it('a real EventSource gets live messages in order with the lab ids and JSON; /stats counts the stream, messagesOut and bytesOut', async () => {
    const before = (await server.stats()).transports.sse;
    const source = new Source(`${server.baseUrl}/events`);
    await until(() => source.opens === 1, WAIT_MS);
    // Joined the broadcast: counted as an open stream.
    await eventually(async () =>
      expect((await server.stats()).transports.sse.connections).toBe(before.connections + 1),
    );
    const ids: number[] = [];
    for (let k = 0; k < 5; k++) ids.push(await send(server, `live-${k}`));
    ids.push(...(await Promise.all(range(1, 5).map((k) => send(server, `burst-${k}`)))));
    ids.sort((a, b) => a - b);
    await until(() => source.received.length >= ids.length, WAIT_MS);
    expectMessages(source.received, ids);

    const open = (await server.stats()).transports.sse;
    expect(open.connections).toBe(before.connections + 1);
    expect(delta(open, before, 'requests')).toBe(1);
    expect(delta(open, before, 'messagesOut')).toBe(ids.length);
    // The open stream's socket is counted live: at least every event's JSON went out.
    const jsonBytes = source.received.reduce((n, r) => n + r.text.length, 0);
    expect(delta(open, before, 'bytesOut')).toBeGreaterThan(jsonBytes);
    expect(delta(open, before, 'bytesIn')).toBeGreaterThan(0);

    await source.close();
    await eventually(async () => expect((await server.stats()).transports.sse.connections).toBe(before.connections));
    const closed = (await server.stats()).transports.sse;
    expect(closed.disconnects.client - before.disconnects.client).toBe(1);
    // Folded in on close, not lost.
    expect(delta(closed, before, 'bytesOut')).toBeGreaterThanOrEqual(delta(open, before, 'bytesOut'));
  });

  it('replays after `since`, and a real reconnect with Last-Event-ID (over the `since` in its URL) gets exactly the messages after it, none twice', async () => {
    const before = (await server.stats()).transports.sse;
    const early = [await send(server, 'early-1'), await send(server, 'early-2'), await send(server, 'early-3')];
    const since = early[0]!;
    const source = new Source(`${server.baseUrl}/events?since=${since}`);
    // The first connect replays what followed `since`.
    await until(() => source.received.length >= 2, WAIT_MS);
    await eventually(async () =>
      expect((await server.stats()).transports.sse.connections).toBe(before.connections + 1),
    );
    const live = [await send(server, 'live-1'), await send(server, 'live-2')];
    await until(() => source.received.length >= 4, WAIT_MS);
    expect(source.lastEventIds).toEqual([null]);

    // Cut under it; published while it is away, so only a replay can bring these.
    await source.cut();
    await eventually(async () => expect((await server.stats()).transports.sse.connections).toBe(before.connections));
    const missed = [await send(server, 'missed-1'), await send(server, 'missed-2')];
    await until(() => source.opens === 2 && source.received.length >= 6, WAIT_MS);
    expect(source.lastEventIds).toEqual([null, String(live[1])]);
    await eventually(async () =>
      expect((await server.stats()).transports.sse.connections).toBe(before.connections + 1),
    );
    const after = [await send(server, 'after-1')];
    await until(() => source.received.length >= 7, WAIT_MS);

    const expected = [...early.slice(1), ...live, ...missed, ...after];
    expectMessages(source.received, expected);
    const stats = (await server.stats()).transports.sse;
    expect(delta(stats, before, 'requests')).toBe(2);
    expect(delta(stats, before, 'messagesOut')).toBe(expected.length);
  });

  it("the bench's own SSE client on a tiny scenario: every message delivered once, in order", async () => {
    const t = target(script, 'sse')!;
    expect(t.process.script).toBe(script);
    const r = await runScenario(server, t, {
      clients: 3,
      ratePerSec: 50,
      payloadBytes: 100,
      durationSec: 0.5,
      headers: 'browser',
      cookieBytes: 0,
      // A correctness test, run beside other suites: a busy machine may delay the publisher; loss may not.
      maxPublisherLagMs: 2_000,
    });
    expect(r.outcome).toEqual({ status: 'ok' });
    expect(r.published).toBeGreaterThan(0);
    expect(r.delivered).toBe(r.published * 3);
    expect({ lost: r.lost, duplicated: r.duplicated, reordered: r.reordered, clientErrors: r.clientErrors }).toEqual({
      lost: 0,
      duplicated: 0,
      reordered: 0,
      clientErrors: 0,
    });
    expect(r.wire.bytesOutPerMsg).toBeGreaterThan(100);
  }, 60_000);

  it('unknown paths are 404; IPC stop exits 0', async () => {
    expect((await fetch(`${server.baseUrl}/nope`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/events/nope`)).status).toBe(404);
    expect(await server.stop()).toBe(0);
  });
});
