/**
 * The bench's reference servers (bare, Socket.IO) must serve the same feed as the lab, and bare must
 * put the same bytes on the wire, or every vsBare ratio is meaningless. Every server here runs exactly
 * as the bench runs it: bench/server-process.ts startServer (fork, --expose-gc, --import tsx,
 * BENCH_SERVER_OPTS), driven through its IPC and its control port.
 *
 * - Delivery, per server and transport, with the bench's own client modules: clients live from now
 *   and clients catching up from CATCH_UP messages back; MESSAGES publishes (half one by one, half in
 *   one burst, so one flush carries several); every client gets exactly the expected ids, in order, and
 *   /stats counts the traffic under that transport's key and nowhere else. Then IPC gc answers memory
 *   and IPC stop exits 0.
 * - The wire: bare and the lab are asked the same things over raw sockets and their answers compared
 *   after blanking what legitimately differs (Date, ts, epoch, and the lengths that follow from them).
 * - The event-loop window the runner opens and closes: every server reports the delay over exactly
 *   that interval.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { longPollClients, shortPollClients } from '../bench/clients/poll.js';
import { socketioPollingClients, socketioWebsocketClients } from '../bench/clients/socketio.js';
import { sseClients } from '../bench/clients/sse.js';
import type { ClientFactory, ClientGroupOptions, ClientSink } from '../bench/clients/types.js';
import { wsClients } from '../bench/clients/ws.js';
import { DEFAULT_HTTP } from '../bench/http.js';
import { startServer, type ServerHandle, type ServerStats } from '../bench/server-process.js';
import { TRANSPORT_KEYS, type TransportCounters, type TransportKey } from '../server/stats.js';
import { publish, range, until } from './helpers.js';

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

interface ServerCase {
  script: 'bare' | 'socketio';
  options: Record<string, unknown>;
  transports: TransportCase[];
}

const SERVERS: ServerCase[] = [
  {
    script: 'bare',
    options: {},
    transports: [
      { name: 'poll', clients: longPollClients, key: 'poll', countsConnections: true },
      { name: 'short-poll', clients: shortPollClients, key: 'short-poll', countsConnections: false, options: { shortPollIntervalMs: 50 } },
      { name: 'sse', clients: sseClients, key: 'sse', countsConnections: true },
      { name: 'ws', clients: wsClients, key: 'ws', countsConnections: true },
    ],
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

async function checkDelivery(server: ServerHandle, t: TransportCase): Promise<void> {
  const before = await server.stats();
  let lastId = 0;
  for (let k = 0; k < CATCH_UP; k++) lastId = await send(server, 'warm-up');
  const start = lastId;
  const live = new Sink();
  const behind = new Sink();
  const groups = [
    t.clients({ baseUrl: server.baseUrl, http: DEFAULT_HTTP, count: 3, since: start, sink: live, ...t.options }),
    t.clients({ baseUrl: server.baseUrl, http: DEFAULT_HTTP, count: 2, since: start - CATCH_UP, sink: behind, ...t.options }),
  ];
  try {
    await Promise.all(groups.map((g) => g.ready));
    for (let k = 0; k < MESSAGES / 2; k++) lastId = await send(server, `m${k}`);
    const burst = await Promise.all(range(1, MESSAGES / 2).map((k) => send(server, `b${k}`)));
    lastId = Math.max(...burst);
    await until(() => live.reached(3, lastId) && behind.reached(2, lastId), WAIT_MS);
    for (const i of [0, 1, 2]) expect(live.ids.get(i), `live client ${i}`).toEqual(range(start + 1, lastId));
    for (const i of [0, 1]) expect(behind.ids.get(i), `catching-up client ${i}`).toEqual(range(start - CATCH_UP + 1, lastId));
    expect([...live.errors, ...behind.errors]).toEqual([]);
    for (const g of groups) expect(g.requests()).toBeGreaterThan(0);
    if (t.countsConnections) await eventually(async () => expect((await server.stats()).transports[t.key].connections).toBe(5));
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
  const after = await server.stats();
  const d = (f: 'requests' | 'messagesOut' | 'bytesOut' | 'bytesIn') => after.transports[t.key][f] - before.transports[t.key][f];
  expect(d('messagesOut')).toBe(3 * MESSAGES + 2 * (MESSAGES + CATCH_UP));
  expect(d('requests')).toBeGreaterThan(0);
  expect(d('bytesOut')).toBeGreaterThan(0);
  expect(d('bytesIn')).toBeGreaterThan(0);
  const others = TRANSPORT_KEYS.filter((k) => k !== t.key);
  const untouched: Partial<Record<TransportKey, TransportCounters>> = {};
  for (const k of others) untouched[k] = before.transports[k];
  expect(Object.fromEntries(others.map((k) => [k, after.transports[k]]))).toEqual(untouched);
}

describe.each(SERVERS)('the $script reference server $options', ({ script, options, transports }) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await startServer(script, options);
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
    for (const k of ['p50', 'p99', 'max', 'windowMs'] as const) expect(Number.isFinite(p.eventLoopDelayMs[k]), k).toBe(true);
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

// ---- The event-loop window of the bench -----------------------------------------------------------

describe.each([
  { script: 'lab', options: {} },
  { script: 'bare', options: {} },
  { script: 'socketio', options: { transport: 'websocket' } },
])('$script: the event-loop window the runner opens and closes', ({ script, options }) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await startServer(script, options);
  }, START_TIMEOUT_MS);
  afterAll(() => server?.stop());

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

// ---- Wire comparison, bare vs lab -------------------------------------------------------------------

interface Wire {
  head: string[];
  parts: string[];
}

/** Sends `request` on a fresh socket; `done` resolves once `complete(bytes)` holds, `bytes()` is what came so far. */
function raw(port: number, request: string, complete: (b: Buffer) => boolean): { done: Promise<Buffer>; bytes: () => Buffer } {
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

const normalise = (s: string): string => s.replace(/"ts":[0-9.]+/g, '"ts":T').replace(/"epoch":"[^"]*"/g, '"epoch":"E"');

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
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
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
const UPGRADE = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/** The same questions to one server; the answers as heads and body parts. */
async function ask(server: ServerHandle): Promise<Record<string, Wire>> {
  // Fixed data: only ts and epoch may differ between the two servers.
  await publish(server.controlUrl, { t: 1, p: 'first' });
  await publish(server.controlUrl, { t: 2, p: 'sécond ✓' });
  const before: ServerStats = await server.stats();
  const shortPoll = raw(server.port, GET('/poll?since=0&timeout=0'), httpDone);
  const timedOut = raw(server.port, GET('/poll?since=2&timeout=1'), httpDone);
  const badCursor = raw(server.port, GET('/poll?since=x'), httpDone);
  const sse = raw(server.port, GET('/events?since=0'), (b) => count(b, 'id: ') === 3);
  const sseResume = raw(server.port, GET('/events?since=0', 'Last-Event-ID: 1\r\n'), (b) => count(b, 'id: ') === 2);
  const ws = raw(server.port, GET('/ws?since=0', UPGRADE), (b) => wsFrameCount(b) === 4);
  const held = raw(server.port, GET('/poll?since=2'), httpDone);
  const heldFromNow = raw(server.port, GET('/poll'), httpDone);
  // Everything caught up and both polls held before the third publish, which only they and the streams wait for.
  await timedOut.done;
  await until(() => count(sse.bytes(), 'id: ') === 2 && count(sseResume.bytes(), 'id: ') === 1 && wsFrameCount(ws.bytes()) === 3, WAIT_MS);
  // Three long polls arrived (bad cursors are refused before they count), the timed-out one is answered, two are held.
  await eventually(async () => {
    const now = (await server.stats()).transports.poll;
    expect({ requests: now.requests - before.transports.poll.requests, connections: now.connections - before.transports.poll.connections }).toEqual({
      requests: 3,
      connections: 2,
    });
  });
  await publish(server.controlUrl, { t: 3, p: 'third' });
  return {
    'short-poll': parse(await shortPoll.done, 'fixed'),
    timedOut: parse(await timedOut.done, 'fixed'),
    badCursor: parse(await badCursor.done, 'fixed'),
    held: parse(await held.done, 'fixed'),
    heldFromNow: parse(await heldFromNow.done, 'fixed'),
    sse: parse(await sse.done, 'chunked'),
    sseResume: parse(await sseResume.done, 'chunked'),
    ws: parse(await ws.done, 'ws'),
  };
}

describe('the wire: bare vs the lab', () => {
  let lab: ServerHandle;
  let bare: ServerHandle;
  let answers: [Record<string, Wire>, Record<string, Wire>] | undefined;
  beforeAll(
    async () => {
      // One fixed retry on both (the default is jittered, a different number on every stream).
      const fixedRetry = { config: { sseRetryJitterMs: 0 } };
      [lab, bare] = await Promise.all([startServer('lab', fixedRetry), startServer('bare', fixedRetry)]);
      answers = (await Promise.all([ask(lab), ask(bare)])) as [Record<string, Wire>, Record<string, Wire>];
    },
    START_TIMEOUT_MS + 2 * WAIT_MS,
  );
  afterAll(() => Promise.all([lab?.stop(), bare?.stop()]));

  it.each(['short-poll', 'timedOut', 'badCursor', 'held', 'heldFromNow', 'sse', 'sseResume', 'ws'])('%s: the same head and body parts', (k) => {
    const [l, b] = answers!;
    expect(l[k]).toBeDefined();
    expect(b[k]).toEqual(l[k]);
  });
});
