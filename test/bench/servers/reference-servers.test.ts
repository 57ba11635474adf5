/**
 * The bench's reference servers (bare, floor, Socket.IO) must serve the same feed as the lab, and bare
 * and the floor must put the same bytes on the wire, or every vsBare ratio and every CPU figure over
 * the floor is meaningless. Every server here runs exactly
 * as the bench runs it: bench/processes/server-process.ts startServer (fork, --expose-gc, --import tsx,
 * BENCH_SERVER_OPTS), driven through its IPC and its control port.
 *
 * - Delivery, per server and transport, with the bench's own client modules: clients live from now
 *   and clients catching up from CATCH_UP messages back; MESSAGES publishes (half one by one, half in
 *   one burst, so one flush carries several); every client gets exactly the expected ids, in order, and
 *   /stats counts the traffic under that transport's key and nowhere else. Then IPC gc answers memory
 *   and IPC stop exits 0.
 * - The wire: bare, the floor and the lab are asked the same things over raw sockets and their answers
 *   compared after blanking what legitimately differs (Date, ts, epoch, and the lengths that follow
 *   from them): polls (short, timed out, refused, held, from now) and streams alike.
 * - The floor's 404s and its /stats counts, on real sockets.
 * - The event-loop window the runner opens and closes: every server reports the delay over exactly
 *   that interval.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { longPollClients, shortPollClients } from '../../../bench/clients/poll.js';
import { socketioPollingClients, socketioWebsocketClients } from '../../../bench/clients/socketio.js';
import { sseClients } from '../../../bench/clients/sse.js';
import type { ClientFactory, ClientGroupOptions, ClientSink } from '../../../bench/clients/types.js';
import { wsClients } from '../../../bench/clients/ws.js';
import {
  ServerPool,
  startServer,
  type ServerHandle,
  type ServerStats,
} from '../../../bench/processes/server-process.js';
import { catalogueAnswer } from '../../../bench/servers/control.js';
import { TRANSPORT_KEYS, type TransportCounters, type TransportKey } from '../../../server/stats.js';
import { publish, range, until } from '../../helpers/lab.js';
import { DEFAULT_HTTP } from '../../../bench/plan/http-setup.js';

const MESSAGES = 20;
const CATCH_UP = 3;
/** A forked server compiles its TypeScript on start; two cores shared with other suites. */
const START_TIMEOUT_MS = 60_000;
const WAIT_MS = 15_000;

/** Waits until `check` passes (it may be async: a /stats round trip). */
const eventually = (check: () => unknown, timeout = WAIT_MS) => vi.waitFor(check, { timeout, interval: 20 });

/** Records every delivery per client; gaps, resets and errors are failures here. */
class Sink implements ClientSink {
  readonly ids = new Map<number, number[]>();
  readonly errors: string[] = [];
  message(client: number, id: number, scheduledMs: number): void {
    if (!Number.isFinite(scheduledMs)) this.errors.push(`client ${client}: id ${id} without data.t`);
    const list = this.ids.get(client) ?? [];
    this.ids.set(client, list);
    list.push(id);
  }
  gap(client: number): void {
    this.errors.push(`client ${client}: unexpected gap`);
  }
  reset(client: number): void {
    this.errors.push(`client ${client}: unexpected reset`);
  }
  error(client: number, err: Error): void {
    this.errors.push(`client ${client}: ${err.message}`);
  }
  /** Whether each of the first `clients` clients has `lastId` as its latest id. */
  reached(clients: number, lastId: number): boolean {
    return range(0, clients - 1).every((i) => this.ids.get(i)?.at(-1) === lastId);
  }
}

interface TransportCase {
  name: string;
  clients: ClientFactory;
  key: TransportKey;
  /** Whether /stats `connections` counts each idle client (not for short polls, nor Socket.IO polling sessions). */
  countsConnections: boolean;
  options?: Partial<Omit<ClientGroupOptions, 'http'>>;
}

type ServerScript = 'lab' | 'bare' | 'floor' | 'socketio';

interface ServerCase {
  script: Exclude<ServerScript, 'lab'>;
  options: Record<string, unknown>;
  transports: TransportCase[];
}

/** The lab's four transports with the lab's own clients: what bare and the floor both serve. */
const LAB_TRANSPORTS: TransportCase[] = [
  { name: 'poll', clients: longPollClients, key: 'poll', countsConnections: true },
  {
    name: 'short-poll',
    clients: shortPollClients,
    key: 'short-poll',
    countsConnections: false,
    options: { shortPollIntervalMs: 50 },
  },
  { name: 'sse', clients: sseClients, key: 'sse', countsConnections: true },
  { name: 'ws', clients: wsClients, key: 'ws', countsConnections: true },
];

const SERVERS: ServerCase[] = [
  {
    script: 'bare',
    options: {},
    transports: LAB_TRANSPORTS,
  },
  {
    script: 'floor',
    options: {},
    transports: LAB_TRANSPORTS,
  },
  {
    script: 'socketio',
    options: { transport: 'websocket' },
    transports: [{ name: 'ws', clients: socketioWebsocketClients, key: 'ws', countsConnections: true }],
  },
  {
    script: 'socketio',
    options: { transport: 'polling' },
    transports: [{ name: 'poll', clients: socketioPollingClients, key: 'poll', countsConnections: false }],
  },
];

const send = (server: ServerHandle, p: string): Promise<number> => publish(server.controlUrl, { t: Date.now(), p });

/**
 * The servers the event-loop, floor and delivery blocks use: one process per script and options, all
 * asked for as the file starts (a pool starts one per core at a time), shared by the blocks in file
 * order. The delivery blocks come last: each ends by stopping its server over IPC. The wire comparison
 * starts servers of its own (it needs empty feeds).
 */
const SHARED: { script: ServerScript; options: Record<string, unknown> }[] = [
  { script: 'lab', options: {} },
  ...SERVERS.map(({ script, options }) => ({ script, options })),
];
const pool = new ServerPool();
const shared = (script: ServerScript, options: Record<string, unknown>): Promise<ServerHandle> =>
  pool.get(`${script} ${JSON.stringify(options)}`, () => startServer(script, options));
beforeAll(() => {
  // Each block awaits its own and reports a failed start.
  for (const { script, options } of SHARED) shared(script, options).catch(() => {});
});
afterAll(() => pool.stop());

async function checkDelivery(server: ServerHandle, t: TransportCase): Promise<void> {
  const before = await server.stats();
  let lastId = 0;
  for (let k = 0; k < CATCH_UP; k++) lastId = await send(server, 'warm-up');
  const start = lastId;
  const live = new Sink();
  const behind = new Sink();
  const groups = [
    t.clients({ baseUrl: server.baseUrl, http: DEFAULT_HTTP, count: 3, since: start, sink: live, ...t.options }),
    t.clients({
      baseUrl: server.baseUrl,
      http: DEFAULT_HTTP,
      count: 2,
      since: start - CATCH_UP,
      sink: behind,
      ...t.options,
    }),
  ];
  try {
    await Promise.all(groups.map((g) => g.ready));
    for (let k = 0; k < MESSAGES / 2; k++) lastId = await send(server, `m${k}`);
    const burst = await Promise.all(range(1, MESSAGES / 2).map((k) => send(server, `b${k}`)));
    lastId = Math.max(...burst);
    await until(() => live.reached(3, lastId) && behind.reached(2, lastId), WAIT_MS);
    for (const i of [0, 1, 2]) expect(live.ids.get(i), `live client ${i}`).toEqual(range(start + 1, lastId));
    for (const i of [0, 1])
      expect(behind.ids.get(i), `catching-up client ${i}`).toEqual(range(start - CATCH_UP + 1, lastId));
    expect([...live.errors, ...behind.errors]).toEqual([]);
    for (const g of groups) expect(g.requests()).toBeGreaterThan(0);
    if (t.countsConnections)
      await eventually(async () => expect((await server.stats()).transports[t.key].connections).toBe(5));
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
  const after = await server.stats();
  const d = (f: 'requests' | 'messagesOut' | 'bytesOut' | 'bytesIn') =>
    after.transports[t.key][f] - before.transports[t.key][f];
  expect(d('messagesOut')).toBe(3 * MESSAGES + 2 * (MESSAGES + CATCH_UP));
  expect(d('requests')).toBeGreaterThan(0);
  expect(d('bytesOut')).toBeGreaterThan(0);
  expect(d('bytesIn')).toBeGreaterThan(0);
  const others = TRANSPORT_KEYS.filter((k) => k !== t.key);
  const untouched: Partial<Record<TransportKey, TransportCounters>> = {};
  for (const k of others) untouched[k] = before.transports[k];
  expect(Object.fromEntries(others.map((k) => [k, after.transports[k]]))).toEqual(untouched);
}

// ---- The event-loop window of the bench -----------------------------------------------------------

describe.each<{ script: ServerScript; options: Record<string, unknown> }>([
  { script: 'lab', options: {} },
  { script: 'bare', options: {} },
  { script: 'floor', options: {} },
  { script: 'socketio', options: { transport: 'websocket' } },
])('$script: the event-loop window the runner opens and closes', ({ script, options }) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await shared(script, options);
  }, START_TIMEOUT_MS);

  it('covers exactly the measured interval, not the /stats window', async () => {
    expect(await server.loopWindow.close()).toBeNull(); // none open yet
    const opening = performance.now();
    await server.loopWindow.open();
    const opened = performance.now();
    for (let k = 0; k < 20; k++) await send(server, `w${k}`);
    // Served while the bench window is open: /stats keeps its own fixed window.
    expect((await server.stats()).process.eventLoopDelayMs.windowMs).toBeGreaterThan(0);
    const closing = performance.now();
    const delay = await server.loopWindow.close();
    const closed = performance.now();
    // The child opened its window between `opening` and `opened`, and read it between `closing` and `closed`.
    if (!delay) throw new Error('the window was not open');
    expect(delay.windowMs).toBeGreaterThanOrEqual(closing - opened);
    expect(delay.windowMs).toBeLessThanOrEqual(closed - opening);
    expect(delay.max).toBeGreaterThanOrEqual(delay.p99);
    expect(delay.p99).toBeGreaterThanOrEqual(delay.p50);
    expect(await server.loopWindow.close()).toBeNull(); // closing ends it
  });

  it('opening again starts the window over', async () => {
    await server.loopWindow.open();
    for (let k = 0; k < 5; k++) await send(server, `a${k}`);
    const reopening = performance.now();
    await server.loopWindow.open();
    const closed = await server.loopWindow.close();
    expect(closed?.windowMs).toBeLessThanOrEqual(performance.now() - reopening);
  });
});

// ---- Wire comparison, bare and floor vs lab -----------------------------------------------------------

interface Wire {
  head: string[];
  parts: string[];
}

/** Sends `request` on a fresh socket; `done` resolves once `complete(bytes)` holds, `bytes()` is what came so far. */
function raw(
  port: number,
  request: string,
  complete: (b: Buffer) => boolean,
): { done: Promise<Buffer>; bytes: () => Buffer } {
  let buf = Buffer.alloc(0);
  const done = new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (complete(buf)) {
        socket.destroy();
        resolve(buf);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before complete: ${request.split('\r\n')[0]}`)));
    socket.write(request);
  });
  done.catch(() => {}); // awaited below; an early rejection must not count as unhandled
  return { done, bytes: () => buf };
}

const normalise = (s: string): string =>
  s.replace(/"ts":[0-9.]+/g, '"ts":T').replace(/"epoch":"[^"]*"/g, '"epoch":"E"');

/** RFC 6455 §5.2 server frames (unmasked, payloads < 64 KiB here): opcode byte and payload text. */
function readWsFrames(b: Buffer): { opcode: number; payload: string }[] {
  const frames: { opcode: number; payload: string }[] = [];
  let o = 0;
  while (o + 2 <= b.length) {
    let len = b[o + 1]! & 0x7f;
    let h = 2;
    if (len === 126) {
      len = b.readUInt16BE(o + 2);
      h = 4;
    }
    if (o + h + len > b.length) break;
    frames.push({ opcode: b[o]!, payload: b.subarray(o + h, o + h + len).toString('utf8') });
    o += h + len;
  }
  return frames;
}

/** Splits an HTTP/1.1 response or upgrade into its head (Date and lengths blanked) and its body parts. */
function parse(b: Buffer, kind: 'fixed' | 'chunked' | 'ws'): Wire {
  const end = b.indexOf('\r\n\r\n');
  const head = b
    .subarray(0, end)
    .toString('latin1')
    .split('\r\n')
    .map((l) => l.replace(/^(Date|content-length): .*/i, '$1: X'));
  let rest = b.subarray(end + 4);
  const parts: string[] = [];
  if (kind === 'fixed') parts.push(normalise(rest.toString('utf8')));
  else if (kind === 'chunked') {
    while (rest.length > 0) {
      const nl = rest.indexOf('\r\n');
      const size = nl < 0 ? Number.NaN : parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (Number.isNaN(size)) {
        // Not chunked framing: kept whole, so the comparison fails on it instead of looping.
        parts.push(`not a chunk: ${normalise(rest.toString('utf8'))}`);
        break;
      }
      parts.push(normalise(rest.subarray(nl + 2, nl + 2 + size).toString('utf8')));
      rest = rest.subarray(nl + 2 + size + 2);
    }
  } else {
    for (const f of readWsFrames(rest)) parts.push(`${f.opcode} ${normalise(f.payload)}`);
  }
  return { head, parts };
}

const httpDone = (b: Buffer): boolean => {
  const end = b.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const m = /content-length: (\d+)/i.exec(b.subarray(0, end).toString('latin1'));
  return m !== null && b.length >= end + 4 + Number(m[1]);
};
const count = (b: Buffer, s: string): number => b.toString('latin1').split(s).length - 1;
const wsFrameCount = (b: Buffer): number => {
  const end = b.indexOf('\r\n\r\n');
  return end < 0 ? 0 : readWsFrames(b.subarray(end + 4)).length;
};
const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const UPGRADE =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/**
 * Published once the streams have caught up, one at a time, each delivered before the next (so each is
 * one chunk and one frame on every server): the first answers the held polls, the second needs a
 * 16-bit WebSocket length.
 */
const LIVE = [
  { t: 3, p: 'third' },
  { t: 4, p: 'x'.repeat(200) },
  { t: 5, p: 'fifth' },
];
/** Fields of the stream answers; the floor serves only these. */
const STREAMS = ['sse', 'sseResume', 'ws'];

/** The same questions to one server (`polls: false`: the streams only); the answers as heads and body parts. */
async function ask(server: ServerHandle, polls = true): Promise<Record<string, Wire>> {
  // Fixed data: only ts and epoch may differ between the servers.
  await publish(server.controlUrl, { t: 1, p: 'first' });
  await publish(server.controlUrl, { t: 2, p: 'sécond ✓' });
  const before: ServerStats = await server.stats();
  // After `live` of the LIVE messages: 2 catch-up + live ids on each stream (from 0, or resumed from 1), plus the WebSocket hello.
  const delivered = (live: number): boolean =>
    count(sse.bytes(), 'id: ') === 2 + live &&
    count(sseResume.bytes(), 'id: ') === 1 + live &&
    wsFrameCount(ws.bytes()) === 3 + live;
  const sse = raw(server.port, GET('/events?since=0'), (b) => count(b, 'id: ') === 2 + LIVE.length);
  const sseResume = raw(
    server.port,
    GET('/events?since=0', 'Last-Event-ID: 1\r\n'),
    (b) => count(b, 'id: ') === 1 + LIVE.length,
  );
  const ws = raw(server.port, GET('/ws?since=0', UPGRADE), (b) => wsFrameCount(b) === 3 + LIVE.length);
  const answers: Record<string, Promise<Wire>> = {};
  if (polls) {
    const shortPoll = raw(server.port, GET('/poll?since=0&timeout=0'), httpDone);
    const timedOut = raw(server.port, GET('/poll?since=2&timeout=1'), httpDone);
    const badCursor = raw(server.port, GET('/poll?since=x'), httpDone);
    const held = raw(server.port, GET('/poll?since=2'), httpDone);
    const heldFromNow = raw(server.port, GET('/poll'), httpDone);
    // Both polls held before the first live publish, which only they and the streams wait for.
    await timedOut.done;
    // Three long polls arrived (bad cursors are refused before they count), the timed-out one is answered, two are held.
    await eventually(async () => {
      const now = (await server.stats()).transports.poll;
      expect({
        requests: now.requests - before.transports.poll.requests,
        connections: now.connections - before.transports.poll.connections,
      }).toEqual({
        requests: 3,
        connections: 2,
      });
    });
    for (const [k, r] of Object.entries({ 'short-poll': shortPoll, timedOut, badCursor, held, heldFromNow }))
      answers[k] = r.done.then((b) => parse(b, 'fixed'));
  }
  // Everything caught up before the first live publish.
  await until(() => delivered(0), WAIT_MS);
  for (const [i, data] of LIVE.entries()) {
    await publish(server.controlUrl, data);
    await until(() => delivered(i + 1), WAIT_MS);
  }
  answers.sse = sse.done.then((b) => parse(b, 'chunked'));
  answers.sseResume = sseResume.done.then((b) => parse(b, 'chunked'));
  answers.ws = ws.done.then((b) => parse(b, 'ws'));
  const keys = Object.keys(answers);
  const wires = await Promise.all(Object.values(answers));
  return Object.fromEntries(keys.map((k, i) => [k, wires[i]!]));
}

describe('the wire: bare and the floor vs the lab', () => {
  let lab: ServerHandle;
  let bare: ServerHandle;
  let floor: ServerHandle;
  let answers: { lab: Record<string, Wire>; bare: Record<string, Wire>; floor: Record<string, Wire> } | undefined;
  const wirePool = new ServerPool();
  beforeAll(
    async () => {
      // One fixed retry on all (the default is jittered, a different number on every stream).
      const fixedRetry = { config: { sseRetryJitterMs: 0 } };
      const start = (script: ServerScript) => wirePool.get(script, () => startServer(script, fixedRetry));
      [lab, bare, floor] = await Promise.all([start('lab'), start('bare'), start('floor')]);
      const [l, b, f] = await Promise.all([ask(lab), ask(bare), ask(floor)]);
      answers = { lab: l, bare: b, floor: f };
    },
    START_TIMEOUT_MS + 2 * WAIT_MS,
  );
  afterAll(() => wirePool.stop());

  it.each(['short-poll', 'timedOut', 'badCursor', 'held', 'heldFromNow', ...STREAMS])(
    'bare and the floor, %s: the same head and body parts',
    (k) => {
      expect(answers!.lab[k]).toBeDefined();
      expect(answers!.bare[k]).toEqual(answers!.lab[k]);
      expect(answers!.floor[k]).toEqual(answers!.lab[k]);
    },
  );

  it('the streams carried the catch-up and every live message, one part each', () => {
    const { sse, sseResume, ws } = answers!.lab;
    // retry + hello, the catch-up batch, then one chunk per live message.
    expect(sse!.parts).toHaveLength(2 + LIVE.length);
    expect(sseResume!.parts).toHaveLength(2 + LIVE.length);
    // hello, one frame per caught-up message, one per live message.
    expect(ws!.parts).toHaveLength(3 + LIVE.length);
  });
});

// ---- The floor: what it does not serve, and its /stats ----------------------------------------------

/** A socket that stays open: every byte it has received so far, and a way to close it. */
function stream(port: number, request: string): { bytes: () => Buffer; close: () => void } {
  let buf = Buffer.alloc(0);
  const socket = net.connect(port, '127.0.0.1');
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
  });
  socket.on('error', () => {}); // a failure shows as missing bytes
  socket.write(request);
  return { bytes: () => buf, close: () => socket.destroy() };
}

const sseIds = (b: Buffer): number[] => [...b.toString('utf8').matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
const wsIds = (b: Buffer): number[] =>
  readWsFrames(b.subarray(b.indexOf('\r\n\r\n') + 4))
    .map((f) => JSON.parse(f.payload) as { id?: number; type?: string })
    .flatMap((f) => (f.type === undefined && f.id !== undefined ? [f.id] : []));

describe('the floor reference server', () => {
  let floor: ServerHandle;
  beforeAll(async () => {
    floor = await shared('floor', {});
  }, START_TIMEOUT_MS);

  it("answers unknown paths with 404 and the catalogue's LAB_ERR_NOT_FOUND body, counted nowhere", async () => {
    const before = await floor.stats();
    const asks = [
      { request: GET('/nope'), path: '/nope' },
      // An upgrade anywhere but /ws.
      { request: GET('/poll', UPGRADE), path: '/poll' },
    ];
    for (const { request, path } of asks) {
      const b = await raw(floor.port, request, httpDone).done;
      const end = b.indexOf('\r\n\r\n');
      const head = b.subarray(0, end).toString('latin1');
      expect(head.split('\r\n')[0], request).toBe('HTTP/1.1 404 Not Found');
      expect(head.toLowerCase()).toContain('content-type: application/json; charset=utf-8');
      const body = JSON.parse(b.subarray(end + 4).toString('utf8')) as unknown;
      expect(body).toEqual(catalogueAnswer('NOT_FOUND', 'GET', path).body);
      expect(body).toMatchObject({ error: { code: 'LAB_ERR_NOT_FOUND' } });
    }
    expect((await floor.stats()).transports).toEqual(before.transports);
  });

  it('/stats counts messagesOut, bytesOut and bytesIn under sse and ws', async () => {
    const before = await floor.stats();
    const base = before.feed.lastId;
    await publish(floor.controlUrl, { p: 'a' });
    await publish(floor.controlUrl, { p: 'b' });
    // The SSE stream catches up one message, the WebSocket two.
    const sseRequest = GET(`/events?since=${base + 1}`);
    const wsRequest = GET(`/ws?since=${base}`, UPGRADE);
    const sse = stream(floor.port, sseRequest);
    const ws = stream(floor.port, wsRequest);
    try {
      await until(() => sseIds(sse.bytes()).length === 1 && wsIds(ws.bytes()).length === 2, WAIT_MS);
      // A burst: one flush may carry several messages.
      await Promise.all(range(1, 3).map((k) => publish(floor.controlUrl, { p: `live${k}` })));
      await until(() => sseIds(sse.bytes()).length === 4 && wsIds(ws.bytes()).length === 5, WAIT_MS);
      expect(sseIds(sse.bytes())).toEqual(range(base + 2, base + 5));
      expect(wsIds(ws.bytes())).toEqual(range(base + 1, base + 5));
      // Open sockets count as they go: every byte the clients received, every byte they sent.
      await eventually(async () => {
        const now = (await floor.stats()).transports;
        const d = (k: 'sse' | 'ws') => ({
          connections: now[k].connections - before.transports[k].connections,
          requests: now[k].requests - before.transports[k].requests,
          messagesOut: now[k].messagesOut - before.transports[k].messagesOut,
          bytesOut: now[k].bytesOut - before.transports[k].bytesOut,
          bytesIn: now[k].bytesIn - before.transports[k].bytesIn,
        });
        expect({ sse: d('sse'), ws: d('ws') }).toEqual({
          sse: {
            connections: 1,
            requests: 1,
            messagesOut: 4,
            bytesOut: sse.bytes().length,
            bytesIn: Buffer.byteLength(sseRequest),
          },
          ws: {
            connections: 1,
            requests: 1,
            messagesOut: 5,
            bytesOut: ws.bytes().length,
            bytesIn: Buffer.byteLength(wsRequest),
          },
        });
      });
    } finally {
      sse.close();
      ws.close();
    }
    // Closed sockets are folded in: nothing counted is lost, and both ends were the client's.
    const received = { sse: sse.bytes().length, ws: ws.bytes().length };
    await eventually(async () => {
      const now = (await floor.stats()).transports;
      for (const k of ['sse', 'ws'] as const) {
        expect(now[k].connections, k).toBe(before.transports[k].connections);
        expect(now[k].disconnects.client - before.transports[k].disconnects.client, k).toBe(1);
        expect(now[k].bytesOut - before.transports[k].bytesOut, k).toBeGreaterThanOrEqual(received[k]);
        expect(now[k].bytesIn - before.transports[k].bytesIn, k).toBe(
          Buffer.byteLength(k === 'sse' ? sseRequest : wsRequest),
        );
      }
    });
  });
});

// ---- Delivery, /stats, IPC (last: each block ends by stopping its server) ------------------------------

describe.each(SERVERS)('the $script reference server $options', ({ script, options, transports }) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await shared(script, options);
  }, START_TIMEOUT_MS);
  afterAll(() => server?.stop());

  it.each(transports)(
    '$name: live and catching-up clients get every id once, in order, counted under its /stats key',
    (t) => checkDelivery(server, t),
    4 * WAIT_MS,
  );

  it('/stats has the process block the lab reports', async () => {
    const { process: p } = await server.stats();
    expect(p.cpu.userUs).toBeGreaterThan(0);
    expect(p.memory.heapUsedBytes).toBeGreaterThan(0);
    for (const k of ['p50', 'p99', 'max', 'windowMs'] as const)
      expect(Number.isFinite(p.eventLoopDelayMs[k]), k).toBe(true);
  });

  it('IPC gc answers memory', async () => {
    const m = await server.gc();
    expect(m.heapUsedBytes).toBeGreaterThan(0);
    expect(m.rssBytes).toBeGreaterThan(0);
  });

  it('IPC stop exits 0', async () => {
    expect(await server.stop()).toBe(0);
  });
});
