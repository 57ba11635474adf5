/**
 * The network emulator: the pure schedule checked exactly, then the relay with real sockets (a TCP
 * server of the test's own on port 0 behind it). Timing is asserted only as lower bounds, which the
 * model guarantees however loaded the machine is (a timer never releases early); everything else is
 * waited for by event.
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { Ajv } from 'ajv';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { ConfigError } from '../../../server/errors.js';
import {
  type CustomProfileInput,
  customProfile,
  defaultRetransmitMs,
  describeProfile,
  type NetworkProfile,
  PROFILES,
  parseNetworkList,
} from '../../../server/network/profiles.js';
import { NetworkProfileSchema } from '../../../server/network/profile-schema.js';
import {
  mulberry32,
  RELAY_DEFAULTS,
  Relay,
  ReleaseSchedule,
  type ScheduleOptions,
  SEGMENT_BYTES,
} from '../../../server/network/relay.js';

/** A scripted [0, 1) source: the given values, over and over. */
const script = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

const schedule = (o: Partial<ScheduleOptions>) =>
  new ReleaseSchedule({
    delayMs: 0,
    jitterMs: 0,
    kbps: null,
    loss: 0,
    retransmitMs: 200,
    notBeforeMs: 0,
    jitterRandom: script(0),
    lossRandom: script(0.99),
    ...o,
  });

const releases = (s: ReleaseSchedule, at: number, bytes: number) => s.plan(at, bytes).map((seg) => seg.releaseAtMs);

describe('the schedule (pure)', () => {
  it('FIFO: one-way delay after arrival, chunks cut into ≤ 1,448 B segments', () => {
    const s = schedule({ delayMs: 50 });
    expect(s.plan(0, 100)).toEqual([{ bytes: 100, releaseAtMs: 50, held: false }]);
    expect(s.plan(10, 3000).map((seg) => seg.bytes)).toEqual([SEGMENT_BYTES, SEGMENT_BYTES, 3000 - 2 * SEGMENT_BYTES]);
    expect(releases(s, 20, 3000)).toEqual([70, 70, 70]);
  });

  it('jitter never reorders: a later segment with less jitter waits for the one before it', () => {
    const s = schedule({ delayMs: 50, jitterMs: 100, jitterRandom: script(0.9, 0, 0.5) });
    expect(releases(s, 0, 10)).toEqual([140]); // 0 + 50 + 90
    expect(releases(s, 10, 10)).toEqual([140]); // would be 10 + 50 + 0 = 60: queued behind
    expect(releases(s, 200, 10)).toEqual([300]); // 200 + 50 + 50
  });

  it('serialisation delay = bytes ÷ rate; a busy link queues the next chunk; an idle one does not', () => {
    // 8,000 kbit/s = 1,000 B/ms.
    const s = schedule({ kbps: 8000 });
    const r = releases(s, 0, 3000);
    expect(r[0]).toBeCloseTo(1.448, 9);
    expect(r[1]).toBeCloseTo(2.896, 9);
    expect(r[2]).toBeCloseTo(3.0, 9);
    expect(releases(s, 1, 1000)[0]).toBeCloseTo(4.0, 9); // waits for the link: 3 + 1
    expect(releases(s, 10, 1000)[0]).toBeCloseTo(11.0, 9); // idle link: 10 + 1
  });

  it('loss holds the segment retransmitMs and everything behind it (head-of-line blocking)', () => {
    const s = schedule({ delayMs: 10, loss: 0.5, retransmitMs: 200, lossRandom: script(0.1, 0.9, 0.9, 0.9) });
    const planned = s.plan(0, 3000);
    expect(planned.map((seg) => seg.held)).toEqual([true, false, false]);
    expect(planned.map((seg) => seg.releaseAtMs)).toEqual([210, 210, 210]);
    expect(releases(s, 300, 10)).toEqual([310]);
  });

  it('connection setup: nothing leaves before the handshake (accept + 1 RTT)', () => {
    const s = schedule({ delayMs: 50, notBeforeMs: 100 });
    expect(releases(s, 0, 10)).toEqual([150]);
    expect(releases(s, 120, 10)).toEqual([170]);
  });

  it('an end (FIN) is due after the data before it, one delay after it was read', () => {
    const s = schedule({ delayMs: 50, jitterMs: 100, jitterRandom: script(0.9) });
    expect(releases(s, 0, 10)).toEqual([140]);
    expect(s.planEnd(1)).toBe(140);
    expect(s.planEnd(200)).toBe(250);
  });

  it('mulberry32 is seeded: the same seed gives the same samples, in [0, 1)', () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const c = mulberry32(8);
    const xs = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(xs);
    expect(Array.from({ length: 1000 }, c)).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('profiles', () => {
  const validate = new Ajv({ strictNumbers: true }).compile(NetworkProfileSchema);

  it('every profile is frozen plain JSON that a report can embed, with its source', () => {
    const names = Object.keys(PROFILES);
    for (const name of ['loopback', 'lan', 'broadband', '4g', '3g', 'intercontinental', 'lossy-wifi'])
      expect(names).toContain(name);
    for (const p of Object.values(PROFILES)) {
      expect(validate(p), JSON.stringify(validate.errors)).toBe(true);
      expect(Object.isFrozen(p)).toBe(true);
      expect(JSON.parse(JSON.stringify(p))).toEqual(p);
      expect(p.retransmitMs).toBe(defaultRetransmitMs(p.rttMs));
    }
    expect(PROFILES.loopback.direct).toBe(true);
    expect(Object.values(PROFILES).filter((p) => p.direct)).toHaveLength(1);
  });

  it('parseNetworkList: names in order, repeats dropped, `all`, and errors naming the flag', () => {
    expect(parseNetworkList('loopback, broadband,4g,4g').map((p) => p.name)).toEqual(['loopback', 'broadband', '4g']);
    expect(parseNetworkList('all')).toEqual(Object.values(PROFILES));
    for (const raw of ['4g,5g', '4g,,3g', '']) {
      const err = catchConfigError(() => parseNetworkList(raw));
      expect(err.setting).toBe('--network');
      expect(err.value).toBe(raw);
    }
    expect(catchConfigError(() => parseNetworkList('nope', '--net')).setting).toBe('--net');
  });

  it('customProfile: defaults, strings from flags, and one error per flag naming it', () => {
    expect(customProfile({ rttMs: '100', downKbps: '8000', upKbps: 'unlimited', loss: '0.01' })).toEqual({
      name: 'custom',
      direct: false,
      rttMs: 100,
      jitterMs: 0,
      downKbps: 8000,
      upKbps: null,
      loss: 0.01,
      retransmitMs: 200,
      source: 'command line',
    });
    expect(customProfile({ rttMs: 300 }).retransmitMs).toBe(600);
    expect(validate(customProfile({ rttMs: 5, retransmitMs: 50 }))).toBe(true);
    const bad: [CustomProfileInput, string][] = [
      [{ rttMs: -1 }, '--rtt-ms'],
      [{ rttMs: '0x10' }, '--rtt-ms'],
      [{ jitterMs: 'abc' }, '--jitter-ms'],
      [{ jitterMs: Number.NaN }, '--jitter-ms'],
      [{ downKbps: 0 }, '--down-kbps'],
      [{ upKbps: '-5' }, '--up-kbps'],
      [{ loss: 2 }, '--loss'],
      [{ loss: '1%' }, '--loss'],
      [{ retransmitMs: 0 }, '--retransmit-ms'],
    ];
    for (const [input, flag] of bad) expect(catchConfigError(() => customProfile(input)).setting).toBe(flag);
  });

  it('describeProfile: one line with the figures', () => {
    expect(describeProfile(PROFILES['4g'])).toBe('4g: RTT 170 ms, jitter 0 ms, down 9 Mbps, up 9 Mbps, loss 0 %');
    expect(describeProfile(PROFILES['lossy-wifi'])).toContain('loss 1 % (held 200 ms)');
    expect(describeProfile(PROFILES.loopback)).toBe('loopback: direct, no relay');
    expect(describeProfile(PROFILES['3g'])).toContain('up 768 kbps');
  });
});

function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

// ---- Real sockets -------------------------------------------------------------------------------

interface Target {
  server: Server;
  port: number;
  /** Sockets the target accepted, in order. */
  sockets: Socket[];
}

/** A TCP server of the test's own on 127.0.0.1:0, closed (with every socket) when the test ends. */
async function startTarget(onSocket: (s: Socket) => void, allowHalfOpen = false): Promise<Target> {
  const sockets: Socket[] = [];
  const server = net.createServer({ allowHalfOpen }, (s) => {
    sockets.push(s);
    s.on('error', () => {});
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

const echo = (s: Socket) => s.pipe(s);

async function startRelay(
  target: Target,
  profile: NetworkProfile,
  extra: { seed?: number; queueBytes?: number } = {},
): Promise<Relay> {
  const relay = await Relay.start({ target: { host: '127.0.0.1', port: target.port }, profile, ...extra });
  onTestFinished(() => relay.close());
  return relay;
}

/** A client to the relay with its listeners attached at once; destroyed when the test ends. */
function connect(port: number): { socket: Socket; received: () => Buffer; errors: Error[] } {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const errors: Error[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e) => errors.push(e));
  onTestFinished(() => {
    socket.destroy();
  });
  return { socket, received: () => Buffer.concat(chunks), errors };
}

/** Resolves when the socket has closed (events.once would reject on the 'error' before it). */
const closed = (s: Socket): Promise<void> =>
  s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));

const until = (predicate: () => boolean, timeoutMs = 10_000) =>
  vi.waitFor(
    () => {
      if (!predicate()) throw new Error('condition not met yet');
    },
    { timeout: timeoutMs, interval: 5 },
  );

/** A custom profile for one test (validated as flags would be). */
const emulate = (o: CustomProfileInput) => customProfile(o);

describe('relay (real sockets)', () => {
  it('a new connection pays the handshake: first response ≥ 2 × RTT, the next round trip ≥ RTT', async () => {
    const rttMs = 100;
    const relay = await startRelay(await startTarget(echo), emulate({ rttMs }));
    const t0 = performance.now();
    const c = connect(relay.port);
    c.socket.write('ping');
    await until(() => c.received().length === 4);
    const first = performance.now() - t0;
    const t1 = performance.now();
    c.socket.write('pong');
    await until(() => c.received().length === 8);
    const second = performance.now() - t1;
    expect(c.received().toString()).toBe('pingpong');
    expect(first).toBeGreaterThanOrEqual(2 * rttMs);
    expect(second).toBeGreaterThanOrEqual(rttMs);
  });

  it('1 MB through 8,000 kbit/s (1 MB/s) takes ≥ 1 s, byte-exact, with a bounded queue', async () => {
    const payload = Buffer.alloc(1_000_000, 7);
    const target = await startTarget((s) => s.end(payload));
    const relay = await startRelay(target, emulate({ rttMs: 10, downKbps: 8000 }));
    const t0 = performance.now();
    const c = connect(relay.port);
    await once(c.socket, 'end');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(c.received().equals(payload)).toBe(true);
    const counters = relay.counters();
    expect(counters.bytesDown).toBe(payload.length);
    expect(counters.peakQueuedBytes).toBeLessThanOrEqual(RELAY_DEFAULTS.queueBytes);
  });

  it('heavy jitter (50 ms on 20 ms RTT): 10,000 numbered chunks arrive in order, byte-exact', async () => {
    const relay = await startRelay(await startTarget(echo), emulate({ rttMs: 20, jitterMs: 50 }), { seed: 42 });
    const c = connect(relay.port);
    const sent: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const chunk = Buffer.alloc(4 + (i % 37), i & 0xff);
      chunk.writeUInt32BE(i, 0);
      sent.push(chunk);
      c.socket.write(chunk);
      // Let the relay read between writes, so that it sees many chunks, not one.
      if (i % 10 === 9) await new Promise(setImmediate);
    }
    const all = Buffer.concat(sent);
    await until(() => c.received().length >= all.length);
    expect(c.received().equals(all)).toBe(true);
    expect(relay.counters().segmentsReleased).toBeGreaterThan(2);
  });

  it('FIN passes after the data, both ways: each peer reads everything, then end', async () => {
    let targetGotAtEnd = -1;
    const target = await startTarget((s) => {
      let n = 0;
      s.on('data', (d: Buffer) => {
        n += d.length;
      });
      s.on('end', () => {
        targetGotAtEnd = n;
      });
      echo(s);
    }, true);
    const relay = await startRelay(target, emulate({ rttMs: 40, downKbps: 16_000, upKbps: 16_000 }));
    const payload = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
    const c = connect(relay.port);
    c.socket.end(payload);
    await once(c.socket, 'end');
    expect(targetGotAtEnd).toBe(payload.length);
    expect(c.received().equals(payload)).toBe(true);
    await until(() => relay.counters().connectionsOpen === 0);
    expect(relay.counters().resets).toBe(0);
  });

  it('a reset on the server leg passes at once: the client sees ECONNRESET, queued data is dropped', async () => {
    const target = await startTarget((s) => s.write('held by the handshake, then dropped'));
    const relay = await startRelay(target, emulate({ rttMs: 5_000 }));
    const c = connect(relay.port);
    // Reset only once the relay holds the bytes: Linux reads an RST that finds unread data as data + EOF.
    await until(() => relay.counters().queuedBytes > 0);
    target.sockets[0]!.resetAndDestroy();
    await closed(c.socket);
    expect(c.errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ECONNRESET']);
    expect(c.received().length).toBe(0);
    await until(() => relay.counters().connectionsOpen === 0);
    expect(relay.counters()).toMatchObject({ resets: 1, queuedBytes: 0, bytesDown: 0 });
  });

  it('a reset on the client leg passes at once: the server sees it, and none of the queued bytes', async () => {
    let got = 0;
    const target = await startTarget((s) => {
      s.on('data', (d: Buffer) => {
        got += d.length;
      });
    });
    const relay = await startRelay(target, emulate({ rttMs: 5_000 }));
    const c = connect(relay.port);
    await until(() => target.sockets.length === 1);
    c.socket.write('queued behind the handshake');
    await until(() => relay.counters().queuedBytes > 0);
    c.socket.resetAndDestroy();
    const server = target.sockets[0]!;
    const serverErrors: Error[] = [];
    server.on('error', (e) => serverErrors.push(e));
    await closed(server);
    expect(serverErrors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ECONNRESET']);
    expect(got).toBe(0);
    await until(() => relay.counters().connectionsOpen === 0);
    expect(relay.counters().resets).toBe(1);
  });

  it('a receiver that stops reading pauses the sender: its write() returns false, the relay queue stays bounded', async () => {
    const queueBytes = 64 * 1024;
    let received = 0;
    const target = await startTarget((s) => {
      s.pause();
      s.on('data', (d: Buffer) => {
        received += d.length;
      });
    });
    const relay = await startRelay(target, emulate({ rttMs: 2 }), { queueBytes });
    const c = connect(relay.port);
    await once(c.socket, 'connect');
    const chunk = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    let accepted = true;
    while (accepted) {
      accepted = c.socket.write(chunk);
      written += chunk.length;
      if (written > 512 * 1024 * 1024) throw new Error('the sender never saw backpressure');
      await new Promise(setImmediate);
    }
    await until(() => relay.counters().readPauses > 0);
    expect(c.socket.writableLength).toBeGreaterThan(0);
    expect(relay.counters().peakQueuedBytes).toBeLessThanOrEqual(queueBytes + SEGMENT_BYTES);
    // The reader comes back: everything arrives, and the sender drains.
    const drained = once(c.socket, 'drain');
    target.sockets[0]!.resume();
    await drained;
    await until(() => received === written);
    expect(relay.counters().peakQueuedBytes).toBeLessThanOrEqual(queueBytes + SEGMENT_BYTES);
  });

  it('loss 1: every segment is held ≥ retransmitMs, and the hold is counted', async () => {
    const rttMs = 20;
    const retransmitMs = 200;
    const relay = await startRelay(await startTarget(echo), emulate({ rttMs, loss: 1, retransmitMs }), { seed: 7 });
    const t0 = performance.now();
    const c = connect(relay.port);
    c.socket.write('x');
    await until(() => c.received().length === 1);
    // Handshake + round trip + one hold in each direction.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * rttMs + 2 * retransmitMs);
    expect(relay.counters().segmentsHeld).toBe(2);
  });

  it('lateness has one sample per release, and resets', async () => {
    const relay = await startRelay(await startTarget(echo), emulate({ rttMs: 10, jitterMs: 5 }));
    expect(relay.lateness()).toEqual({ count: 0, p50Ms: null, p99Ms: null, maxMs: null });
    const c = connect(relay.port);
    for (let i = 0; i < 20; i++) {
      c.socket.write(Buffer.alloc(3000, i));
      await until(() => c.received().length === (i + 1) * 3000);
    }
    const l = relay.lateness();
    expect(l.count).toBe(relay.counters().segmentsReleased);
    expect(l.count).toBeGreaterThanOrEqual(2 * 20 * 3); // 3,000 B = 3 segments, each way
    expect(l.p50Ms).toBeGreaterThanOrEqual(0);
    expect(l.p99Ms).toBeGreaterThanOrEqual(l.p50Ms!);
    expect(l.maxMs).toBeGreaterThanOrEqual(l.p99Ms!);
    relay.resetLateness();
    expect(relay.lateness().count).toBe(0);
  });

  it('close() resets every connection, stops listening, and resolves when no socket is left', async () => {
    const target = await startTarget(echo);
    const relay = await Relay.start({
      target: { host: '127.0.0.1', port: target.port },
      profile: emulate({ rttMs: 5_000 }),
    });
    const clients = [connect(relay.port), connect(relay.port), connect(relay.port)];
    for (const c of clients) c.socket.write('held');
    await until(() => target.sockets.length === 3 && relay.counters().queuedBytes === 12);
    const closes = [...clients.map((c) => closed(c.socket)), ...target.sockets.map(closed)];
    const { port } = relay;
    await relay.close();
    expect(relay.counters()).toMatchObject({ connectionsOpened: 3, connectionsOpen: 0, queuedBytes: 0, resets: 0 });
    await Promise.all(closes);
    const late = connect(port);
    await closed(late.socket);
    expect(late.errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ECONNREFUSED']);
  });

  it('refuses a queue smaller than one segment (naming the option) and a port in use', async () => {
    const err = await Relay.start({
      target: { host: '127.0.0.1', port: 1 },
      profile: PROFILES.lan,
      queueBytes: 100,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe('queueBytes');
    const target = await startTarget(echo);
    const inUse = await Relay.start({
      target: { host: '127.0.0.1', port: target.port },
      profile: PROFILES.lan,
      listenPort: target.port,
    }).catch((e: unknown) => e);
    expect((inUse as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
  });
});
