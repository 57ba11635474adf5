/**
 * Self-check for the reference servers (bare, socketio) and the Socket.IO client module — a script,
 * not a test: `npx tsx bench/servers/selfcheck.ts`, exit code 0 when everything passed.
 *
 * For each server process (started exactly as the runner starts it: fork, --expose-gc, --import tsx,
 * BENCH_SERVER_OPTS) and each transport it serves: clients live from now and clients catching up from
 * 3 messages back; 20 publishes (10 one by one, 10 in one burst, so one flush carries several); every
 * client must get exactly the expected ids in order. Then /stats must show the traffic under the right
 * key, IPC gc must answer memory, and IPC stop must exit 0.
 *
 * Then the wire check: the bare server and the lab (in this process, via buildApp) are asked the same
 * things over raw sockets and their answers compared after normalising what legitimately differs
 * (Date, ts, epoch, and the lengths that follow from them).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { buildApp } from '../../server/app.js';
import { longPollClients, shortPollClients } from '../clients/poll.js';
import { socketioPollingClients, socketioWebsocketClients } from '../clients/socketio.js';
import { sseClients } from '../clients/sse.js';
import type { ClientFactory, ClientSink } from '../clients/types.js';
import { wsClients } from '../clients/ws.js';
import type { FromChild, ToChild } from './protocol.js';

const WAIT_MS = 15_000;
const MESSAGES = 20;
const CATCH_UP = 3;

type Key = 'poll' | 'shortPoll' | 'sse' | 'ws';
interface Counters {
  connections: number;
  requests: number;
  messagesOut: number;
  bytesOut: number;
  bytesIn: number;
}
interface Stats {
  transports: Record<Key, Counters>;
  process: { cpu: { userUs: number; systemUs: number }; eventLoopDelayMs: { p99: number } };
}

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

// ---- Server process -----------------------------------------------------------------------------
interface Child {
  child: ChildProcess;
  baseUrl: string;
  controlUrl: string;
  port: number;
}

async function start(script: string, options: Record<string, unknown>): Promise<Child> {
  const child = fork(fileURLToPath(new URL(`./${script}.ts`, import.meta.url)), [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, BENCH_SERVER_OPTS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await within(
    new Promise<Extract<FromChild, { type: 'ready' }>>((resolve, reject) => {
      child.on('message', (m: FromChild) => m.type === 'ready' && resolve(m));
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before ready`)));
    }),
    `${script} ready`,
  );
  return {
    child,
    port: ready.port,
    baseUrl: `http://127.0.0.1:${ready.port}`,
    controlUrl: `http://127.0.0.1:${ready.controlPort}`,
  };
}

async function publish(controlUrl: string, data: unknown): Promise<number> {
  const res = await fetch(`${controlUrl}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data }),
  });
  if (res.status !== 201) throw new Error(`publish answered ${res.status}`);
  return ((await res.json()) as { id: number }).id;
}

const stats = async (controlUrl: string): Promise<Stats> => (await (await fetch(`${controlUrl}/stats`)).json()) as Stats;

// ---- Delivery check -----------------------------------------------------------------------------
class Sink implements ClientSink {
  readonly ids = new Map<number, number[]>();
  readonly errors: string[] = [];
  #waiters: (() => void)[] = [];
  message(client: number, id: number, scheduledMs: number): void {
    if (!Number.isFinite(scheduledMs)) this.errors.push(`client ${client}: id ${id} without data.t`);
    let list = this.ids.get(client);
    if (!list) this.ids.set(client, (list = []));
    list.push(id);
    for (const w of this.#waiters) w();
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
  /** Resolves once every client's last id is `lastId`. */
  until(clients: number, lastId: number): Promise<void> {
    return new Promise((resolve) => {
      const test = () => {
        for (let i = 0; i < clients; i++) if (this.ids.get(i)?.at(-1) !== lastId) return;
        this.#waiters = this.#waiters.filter((w) => w !== test);
        resolve();
      };
      this.#waiters.push(test);
      test();
    });
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

async function checkTransport(server: Child, name: string, clients: ClientFactory, key: Key, opts: { shortPollIntervalMs?: number } = {}) {
  console.log(`${name}`);
  const before = await stats(server.controlUrl);
  let lastId = 0;
  for (let k = 0; k < CATCH_UP; k++) lastId = await publish(server.controlUrl, { t: Date.now(), p: 'warm-up' });
  const live = new Sink();
  const behind = new Sink();
  const groups = [
    clients({ baseUrl: server.baseUrl, count: 3, since: lastId, sink: live, ...opts }),
    clients({ baseUrl: server.baseUrl, count: 2, since: lastId - CATCH_UP, sink: behind, ...opts }),
  ];
  const start = lastId;
  try {
    await within(Promise.all(groups.map((g) => g.ready)), `${name} clients ready`);
    for (let k = 0; k < MESSAGES / 2; k++) lastId = await publish(server.controlUrl, { t: Date.now(), p: `m${k}` });
    const burst = await Promise.all(range(1, MESSAGES / 2).map((k) => publish(server.controlUrl, { t: Date.now(), p: `b${k}` })));
    lastId = Math.max(...burst);
    await within(Promise.all([live.until(3, lastId), behind.until(2, lastId)]), `${name} deliveries`);
    const want = range(start + 1, lastId);
    const wantBehind = range(start - CATCH_UP + 1, lastId);
    check([0, 1, 2].every((i) => isDeepStrictEqual(live.ids.get(i), want)), `live clients got ids ${want[0]}…${lastId} once, in order`);
    check([0, 1].every((i) => isDeepStrictEqual(behind.ids.get(i), wantBehind)), `catching-up clients got ids ${wantBehind[0]}…${lastId} once, in order`);
    check(live.errors.length + behind.errors.length === 0, `no client errors ${JSON.stringify([...live.errors, ...behind.errors])}`);
    check(groups.every((g) => g.requests() > 0), `client request counts ${groups.map((g) => g.requests()).join(', ')}`);
  } catch (err) {
    check(false, `${name}: ${(err as Error).message} (live ${JSON.stringify([...live.ids])}, behind ${JSON.stringify([...behind.ids])})`);
  }
  const open = await stats(server.controlUrl);
  await within(Promise.all(groups.map((g) => g.close())), `${name} clients closed`);
  const after = await stats(server.controlUrl);
  const d = (f: keyof Counters) => after.transports[key][f] - before.transports[key][f];
  check(d('messagesOut') === 3 * MESSAGES + 2 * (MESSAGES + CATCH_UP), `stats.${key}.messagesOut +${d('messagesOut')} (want ${3 * MESSAGES + 2 * (MESSAGES + CATCH_UP)})`);
  check(d('requests') > 0 && d('bytesOut') > 0 && d('bytesIn') > 0, `stats.${key} requests +${d('requests')}, bytesOut +${d('bytesOut')}, bytesIn +${d('bytesIn')}`);
  if (key !== 'shortPoll' && !(name.startsWith('socketio') && key === 'poll')) {
    check(open.transports[key].connections === 5, `stats.${key}.connections = ${open.transports[key].connections} with 5 clients open`);
  }
  const others = (Object.keys(after.transports) as Key[]).filter((k) => k !== key);
  check(others.every((k) => isDeepStrictEqual(after.transports[k], before.transports[k])), `nothing counted under ${others.join('/')}`);
}

async function checkServer(script: string, options: Record<string, unknown>, transports: [string, ClientFactory, Key, { shortPollIntervalMs?: number }?][]) {
  console.log(`\n== ${script} ${JSON.stringify(options)}`);
  const server = await start(script, options);
  try {
    for (const [name, clients, key, opts] of transports) await checkTransport(server, `${script}/${name}`, clients, key, opts);
    const s = await stats(server.controlUrl);
    check(s.process.cpu.userUs > 0 && typeof s.process.eventLoopDelayMs.p99 === 'number', `stats.process cpu ${s.process.cpu.userUs} µs, loop p99 ${s.process.eventLoopDelayMs.p99} ms`);
    const memory = new Promise<FromChild>((resolve) => server.child.on('message', (m: FromChild) => m.type === 'memory' && resolve(m)));
    server.child.send({ type: 'gc' } satisfies ToChild);
    const m = await within(memory, 'gc → memory');
    check(m.type === 'memory' && m.heapUsedBytes > 0 && m.rssBytes > 0, `gc → memory ${JSON.stringify(m)}`);
  } finally {
    const exited = once(server.child, 'exit');
    server.child.send({ type: 'stop' } satisfies ToChild);
    const [code] = (await within(exited, 'stop → exit')) as [number | null];
    check(code === 0, `stop → exit code ${code}`);
  }
}

// ---- Wire comparison, bare vs lab ---------------------------------------------------------------
interface Wire {
  head: string[];
  parts: string[];
}

/** Sends `request` on a fresh socket and collects bytes until `done(bytes)`. */
function raw(port: number, request: string, done: (b: Buffer) => boolean): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (done(buf)) {
          socket.destroy();
          resolve(buf);
        }
      });
      socket.on('error', reject);
      socket.write(request);
    }),
    `raw ${request.split('\r\n')[0]}`,
  );
}

const normalise = (s: string): string =>
  s.replace(/"ts":[0-9.]+/g, '"ts":T').replace(/"epoch":"[^"]*"/g, '"epoch":"E"');

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
    for (const f of wsFrames(rest)) parts.push(`${f.opcode} ${normalise(f.payload)}`);
  }
  return { head, parts };
}

function wsFrames(b: Buffer): { opcode: number; payload: string }[] {
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

const httpDone = (b: Buffer) => {
  const end = b.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const m = /content-length: (\d+)/i.exec(b.subarray(0, end).toString('latin1'));
  return m !== null && b.length >= end + 4 + Number(m[1]);
};
const count = (b: Buffer, s: string) => b.toString('latin1').split(s).length - 1;
const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const UPGRADE = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

async function wireCompare(): Promise<void> {
  console.log('\n== wire: bare vs lab');
  const lab = await buildApp({ config: { demo: false, logLevel: 'silent' } });
  await lab.listen({ host: '127.0.0.1', port: 0 });
  const labPort = (lab.server.address() as net.AddressInfo).port;
  const bare = await start('bare', {});
  const servers = [
    { name: 'lab', port: labPort, publish: (data: unknown) => lab.lab.feed.append(data) },
    { name: 'bare', port: bare.port, publish: (data: unknown) => publish(bare.controlUrl, data) },
  ];
  try {
    const answers = await Promise.all(
      servers.map(async (s) => {
        await s.publish({ t: 1, p: 'first' });
        await s.publish({ t: 2, p: 'sécond ✓' });
        const shortPoll = raw(s.port, GET('/poll?since=0&timeout=0'), httpDone);
        const timedOut = raw(s.port, GET('/poll?since=2&timeout=1'), httpDone);
        const badCursor = raw(s.port, GET('/poll?since=x'), httpDone);
        const sse = raw(s.port, GET('/events?since=0'), (b) => count(b, 'id: ') === 3);
        const sseResume = raw(s.port, GET('/events?since=0', 'Last-Event-ID: 1\r\n'), (b) => count(b, 'id: ') === 2);
        const ws = raw(s.port, GET('/ws?since=0', UPGRADE), (b) => {
          const end = b.indexOf('\r\n\r\n');
          return end >= 0 && wsFrames(b.subarray(end + 4)).length === 4;
        });
        const held = raw(s.port, GET('/poll?since=2'), httpDone);
        const heldFromNow = raw(s.port, GET('/poll'), httpDone);
        // Let the requests reach the server before the third publish, which the held ones wait for.
        await new Promise((r) => setTimeout(r, 200));
        await s.publish({ t: 3, p: 'third' });
        return {
          shortPoll: parse(await shortPoll, 'fixed'),
          timedOut: parse(await timedOut, 'fixed'),
          badCursor: parse(await badCursor, 'fixed'),
          held: parse(await held, 'fixed'),
          heldFromNow: parse(await heldFromNow, 'fixed'),
          sse: parse(await sse, 'chunked'),
          sseResume: parse(await sseResume, 'chunked'),
          ws: parse(await ws, 'ws'),
        };
      }),
    );
    const [l, b] = answers as [(typeof answers)[0], (typeof answers)[0]];
    for (const k of Object.keys(l) as (keyof typeof l)[]) {
      const same = isDeepStrictEqual(l[k], b[k]);
      check(same, `${k}: same head and body parts`);
      if (!same) console.log(`    lab  ${JSON.stringify(l[k])}\n    bare ${JSON.stringify(b[k])}`);
    }
  } finally {
    await lab.close();
    const exited = once(bare.child, 'exit');
    bare.child.send({ type: 'stop' } satisfies ToChild);
    await within(exited, 'bare stop');
  }
}

await checkServer('bare', {}, [
  ['poll', longPollClients, 'poll'],
  ['short-poll', shortPollClients, 'shortPoll', { shortPollIntervalMs: 50 }],
  ['sse', sseClients, 'sse'],
  ['ws', wsClients, 'ws'],
]);
await checkServer('socketio', { transport: 'websocket' }, [['ws', socketioWebsocketClients, 'ws']]);
await checkServer('socketio', { transport: 'polling' }, [['poll', socketioPollingClients, 'poll']]);
await wireCompare();

console.log(failures.length === 0 ? '\nall checks passed' : `\n${failures.length} check(s) FAILED:\n  ${failures.join('\n  ')}`);
process.exit(failures.length === 0 ? 0 : 1);
