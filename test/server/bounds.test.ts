/**
 * One bad client must never hurt the others: what a hostile or broken client can make the server hold
 * or do is bounded, and one message the encoder could not handle never stalls the feed. Every scenario
 * here is a real client on a real socket doing what a hostile one would.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { ERRORS } from '../../server/errors.js';
import type { StatsSnapshot } from '../../server/stats.js';
import { SseClient, WsClient, captureLog, poll, publish, startLab, until, type RunningLab } from '../helpers/lab.js';

/** `[[[…0…]]]` as JSON text: JSON.stringify itself cannot write it past a few thousand levels. */
const nestedJson = (depth: number): string => `${'['.repeat(depth)}0${']'.repeat(depth)}`;

const nested = (depth: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};

const stats = async (lab: RunningLab): Promise<StatsSnapshot> =>
  (await (await fetch(`${lab.url}/stats`)).json()) as StatsSnapshot;

async function post(url: string, body: string | Blob): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(`${url}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: json.error?.code };
}

/** Fills the feed with `count` messages of about `bytes` each through the built-in publisher. */
async function fill(lab: RunningLab, count: number, bytes: number): Promise<void> {
  const put = await fetch(`${lab.url}/control`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ payloadBytes: bytes }),
  });
  expect(put.status).toBe(200);
  const burst = await fetch(`${lab.url}/control/burst`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ count }),
  });
  expect(burst.status).toBe(201);
}

/** A raw HTTP client that sends one request and then never reads: a stalled reader. */
function stalledRequest(lab: RunningLab, path: string, headers = ''): Socket {
  const { port } = new URL(lab.url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}\r\n`);
  socket.pause();
  onTestFinished(() => {
    socket.destroy();
  });
  return socket;
}

describe('a message is checked before it is accepted, so whatever is in the feed can be delivered', () => {
  it('refuses data nested deeper than maxNestingDepth (HTTP and WebSocket); delivery goes on for everyone', async () => {
    const lab = await startLab();
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await ws.opened;
    const body = `{"data":${nestedJson(5_000)}}`;
    expect(await post(lab.url, body)).toEqual({ status: 400, code: ERRORS.DATA_TOO_DEEP.code });
    // At the limit is fine; one deeper is not.
    expect((await post(lab.url, JSON.stringify({ data: nested(64) }))).status).toBe(201);
    expect(await post(lab.url, JSON.stringify({ data: nested(65) }))).toEqual({
      status: 400,
      code: ERRORS.DATA_TOO_DEEP.code,
    });
    ws.ws.send(`{"type":"publish","ref":"deep","data":${nestedJson(5_000)}}`);
    await until(() => ws.controlsOf('error').length === 1);
    expect(ws.controlsOf('error')[0]).toMatchObject({ code: ERRORS.DATA_TOO_DEEP.code, ref: 'deep' });

    const id = await publish(lab.url, { after: 'deep' });
    await until(() => ws.ids().includes(id));
    const { status, body: answer } = await poll(lab.url, 'since=0&timeout=0');
    expect(status).toBe(200);
    expect(answer.messages.map((m) => m.id)).toEqual([1, id]);
  });

  it('refuses non-finite numbers and invalid UTF-8 instead of storing something else', async () => {
    const lab = await startLab();
    expect(await post(lab.url, '{"data":1e400}')).toEqual({ status: 400, code: ERRORS.NUMBER_NOT_FINITE.code });
    expect(await post(lab.url, '{"data":{"x":[-1e999]}}')).toEqual({
      status: 400,
      code: ERRORS.NUMBER_NOT_FINITE.code,
    });
    const bad = Buffer.concat([Buffer.from('{"data":"caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(await post(lab.url, new Blob([bad]))).toEqual({ status: 400, code: ERRORS.INVALID_UTF8.code });
    // Valid UTF-8 passes unchanged.
    const id = await publish(lab.url, { s: 'café ☕' });
    const { body } = await poll(lab.url, 'since=0&timeout=0');
    expect(body.messages).toEqual([expect.objectContaining({ id, data: { s: 'café ☕' } })]);

    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await ws.opened;
    ws.ws.send('{"type":"publish","data":1e400,"ref":1}');
    await until(() => ws.controlsOf('error').length === 1);
    expect(ws.controlsOf('error')[0]).toMatchObject({ code: ERRORS.NUMBER_NOT_FINITE.code, ref: 1 });
  });

  it('a message the encoder cannot handle ends the subscribers it reached (1011, not a store outage) and the feed goes on', async () => {
    const lab = await startLab();
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await ws.opened;
    // Straight into the feed, past the publish check: what the check exists to prevent.
    await lab.app.lab.feed.append(nested(20_000));
    await ws.closed;
    expect(ws.closeCode).toBe(1011);
    expect(ws.closeReason).toBe(ERRORS.INTERNAL.code);
    expect(ws.controlsOf('feed-down')).toEqual([]);
    // Not stalled: publishing works, and subscribers from a later cursor get what comes next.
    const next = new WsClient(`${lab.wsUrl}/ws`);
    const sse = new SseClient(`${lab.url}/events`);
    await next.opened;
    await until(() => sse.eventsOf('hello').length === 1);
    const id = await publish(lab.url, { fine: true });
    await until(() => next.ids().includes(id) && sse.ids().includes(id));
    expect((await poll(lab.url, `since=${id - 1}&timeout=0`)).body.messages.map((m) => m.id)).toEqual([id]);
  });
});

describe('catching-up readers respect maxBufferedBytes', () => {
  /**
   * A stalled reader is only over the bound once the loopback kernel buffers are full (about 4 MB
   * here), so it joins behind 600 × 16 KiB. The bound is the default 1 MiB: each catch-up slice
   * encodes the rest of the read first (server/transports/hub.ts), so a smaller bound costs seconds
   * of encoding. The drain bound and the WebSocket close grace are short: a stalled reader never
   * drains, nor answers a close frame, and the test waits for it to be gone.
   */
  const config = { maxBufferedBytes: 1024 * 1024, catchUpDrainMs: 100, wsCloseGraceMs: 100 };

  it('an SSE reader that joins behind large messages and does not read is cut as a slow consumer', async () => {
    const lab = await startLab(config);
    await fill(lab, 600, 16 * 1024);
    stalledRequest(lab, '/events?since=0');
    await waitStats(
      lab,
      (s) => s.transports.sse.disconnects['slow-consumer'] === 1 && s.transports.sse.connections === 0,
    );
  });

  it('a WebSocket reader that joins behind large messages and does not read is cut as a slow consumer', async () => {
    const lab = await startLab(config);
    await fill(lab, 600, 16 * 1024);
    stalledRequest(
      lab,
      '/ws?since=0',
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
    );
    await waitStats(
      lab,
      (s) => s.transports.ws.disconnects['slow-consumer'] === 1 && s.transports.ws.connections === 0,
    );
  });

  it('a reader that keeps reading gets every message, in order, in slices under the bound', async () => {
    // 200 × 16 KiB is a dozen slices of 256 KiB; no kernel buffer to fill, as the reader reads. The
    // default drain bound: a busy test machine may take a while to parse it; being slow is not being stalled.
    const lab = await startLab({ maxBufferedBytes: 256 * 1024 });
    await fill(lab, 200, 16 * 1024);
    const sse = new SseClient(`${lab.url}/events?since=0`);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`);
    await until(() => sse.messages.length === 200 && ws.messages.length === 200, 20_000);
    const ids = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(sse.ids()).toEqual(ids);
    expect(ws.ids()).toEqual(ids);
    const s = await stats(lab);
    expect(s.transports.sse.disconnects['slow-consumer'] + s.transports.ws.disconnects['slow-consumer']).toBe(0);
  });
});

async function waitStats(
  lab: RunningLab,
  ok: (s: StatsSnapshot) => boolean,
  timeoutMs = 15_000,
): Promise<StatsSnapshot> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await stats(lab);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`stats never matched: ${JSON.stringify(s.transports)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('every write to a WebSocket peer is bounded', () => {
  it('a peer sending frames that need an error answer is closed 1008 past its budget', async () => {
    const lab = await startLab({ wsErrorRepliesPerSec: 20 });
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await ws.opened;
    for (let i = 0; i < 500; i++) ws.ws.send('not json');
    await ws.closed;
    expect(ws.closeCode).toBe(1008);
    expect(ws.closeReason).toBe(ERRORS.TOO_MANY_ERRORS.code);
    // The budget (a burst of 20, refilling at 20/s) bounds what was answered.
    expect(ws.controlsOf('error').length).toBeGreaterThanOrEqual(20);
    expect(ws.controlsOf('error').length).toBeLessThan(100);
    const s = await waitStats(lab, (x) => x.transports.ws.connections === 0);
    expect(s.transports.ws.disconnects['too-many-errors']).toBe(1);
  });

  it('error answers count against maxBufferedBytes: a peer that sends but never reads is cut as a slow consumer', async () => {
    const lab = await startLab({ wsErrorRepliesPerSec: 100_000, maxBufferedBytes: 16 * 1024 });
    const ws = new WebSocket(`${lab.wsUrl}/ws`);
    ws.on('error', () => {});
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    ws.pause();
    // Each refusal echoes its 8 KiB ref: 12 MiB of answers, far beyond what the kernel buffers hold.
    const frame = JSON.stringify({ type: 'nope', ref: 'x'.repeat(8 * 1024) });
    for (let i = 0; i < 1_500; i++) ws.send(frame);
    const s = await waitStats(lab, (x) => x.transports.ws.disconnects['slow-consumer'] === 1);
    expect(s.transports.ws.disconnects['too-many-errors']).toBe(0);
    // Other clients are served all along.
    const other = new WsClient(`${lab.wsUrl}/ws`);
    await other.opened;
    const id = await publish(lab.url, { still: 'here' });
    await until(() => other.ids().includes(id));
  });

  it('a stalled reader dropped as a slow consumer is counted as cut: its close frame waits behind the backlog', async () => {
    const lab = await startLab({ maxBufferedBytes: 64 * 1024, wsCloseGraceMs: 100 });
    const ws = new WebSocket(`${lab.wsUrl}/ws`);
    ws.on('error', () => {});
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    ws.pause();
    await fill(lab, 600, 16 * 1024);
    const s = await waitStats(
      lab,
      (x) => x.transports.ws.disconnects['slow-consumer'] === 1 && x.transports.ws.connections === 0,
    );
    expect(s.transports.ws.cut).toBe(1);
    const metrics = await (await fetch(`${lab.url}/metrics`)).text();
    expect(metrics).toMatch(/lab_connections_cut_total\{transport="ws"\} 1/);
  });
});

describe('the WebSocket endpoint refuses bad handshakes with a code', () => {
  it('GET /ws without Upgrade is 426 with LAB_ERR_UPGRADE_REQUIRED; HEAD too, without a body', async () => {
    const lab = await startLab();
    const res = await fetch(`${lab.url}/ws`);
    expect(res.status).toBe(426);
    expect(res.headers.get('upgrade')).toBe('websocket');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ERRORS.UPGRADE_REQUIRED.code);
    const head = await fetch(`${lab.url}/ws`, { method: 'HEAD' });
    expect(head.status).toBe(426);
    expect(await head.text()).toBe('');
  });

  it('an upgrade without a valid Sec-WebSocket-Key or version is 400 LAB_ERR_BAD_UPGRADE, as JSON', async () => {
    const lab = await startLab();
    const { port } = new URL(lab.url);
    const raw = (headers: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        let text = '';
        socket.on('data', (c) => (text += c.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
        socket.write(
          `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`,
        );
        setTimeout(() => socket.end(), 2_000).unref();
      });
    for (const headers of [
      'Sec-WebSocket-Version: 13\r\n',
      'Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n',
    ]) {
      const answer = await raw(headers);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain(ERRORS.BAD_UPGRADE.code);
    }
  });
});

describe('client mistakes are logged as one info line, without a stack, rate-limited', () => {
  it('fifty bad WebSocket frames make a handful of info lines, none at error level', async () => {
    const { stream, lines } = captureLog();
    const lab = await startLab({}, { logger: { level: 'info', stream } });
    const clients = Array.from({ length: 50 }, () => new WsClient(`${lab.wsUrl}/ws`));
    await Promise.all(clients.map((c) => c.opened));
    // A text frame that is not UTF-8: ws closes with 1007 and reports the protocol error.
    for (const c of clients) c.ws.send(Buffer.from([0xff, 0xfe]), { binary: false });
    await Promise.all(clients.map((c) => c.closed));
    expect(clients.every((c) => c.closeCode === 1007)).toBe(true);
    await until(() => lines.some((l) => l.msg.startsWith('client mistake')));
    const mistakes = lines.filter((l) => l.msg.startsWith('client mistake'));
    expect(mistakes.length).toBeLessThan(50);
    expect(mistakes.every((l) => l.level === 30 && l.err === undefined && l.stack === undefined)).toBe(true);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe('PUT /control refuses a rate too small for a timer', () => {
  it('0 stops the publisher, 0.01 msg/s is the slowest rate, 1e-7 is LAB_ERR_BAD_CONTROL', async () => {
    const lab = await startLab();
    const put = async (ratePerSec: number) =>
      fetch(`${lab.url}/control`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ratePerSec }),
      });
    const tiny = await put(0.0000001);
    expect(tiny.status).toBe(400);
    expect(((await tiny.json()) as { error: { code: string } }).error.code).toBe(ERRORS.BAD_CONTROL.code);
    expect((await put(0.01)).status).toBe(200);
    expect((await put(0)).status).toBe(200);
  });
});
