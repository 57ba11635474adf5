/**
 * GET /stats and GET /metrics: the shape, and that the per-transport counters (requests, messagesOut,
 * bytesIn/bytesOut counted from the sockets, connections) move exactly as the traffic does.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { StatsSnapshot, TransportCounters } from '../../server/stats.js';
import {
  SseClient,
  WsClient,
  poll,
  publish,
  publishMany,
  range,
  startLab,
  until,
  type RunningLab,
} from '../helpers/lab.js';

const KEYS = ['poll', 'short-poll', 'sse', 'ws'] as const;
const REASONS = ['client', 'slow-consumer', 'pong-timeout', 'too-many-errors', 'shutdown', 'feed-down', 'error'];

async function stats(lab: RunningLab): Promise<StatsSnapshot> {
  const res = await fetch(`${lab.url}/stats`);
  expect(res.status).toBe(200);
  return (await res.json()) as StatsSnapshot;
}

/** The live counters (no HTTP round trip; for waiting on a count). */
const live = (lab: RunningLab): Record<(typeof KEYS)[number], TransportCounters> => lab.app.lab.stats.transports;

/** One HTTP/1.1 exchange over a raw TCP socket: returns exactly the bytes sent and received. */
function rawExchange(url: string, request: string): Promise<{ sent: number; received: Buffer }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.end(request));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve({ sent: Buffer.byteLength(request), received: Buffer.concat(chunks) }));
  });
}

describe('GET /stats', () => {
  it('has all four transports, the feed and the process fields, as numbers', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 3);
    const res = await fetch(`${lab.url}/stats`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const s = (await res.json()) as StatsSnapshot;

    expect(Object.keys(s).sort()).toEqual(['feed', 'mixed', 'process', 'transports']);
    expect(Object.keys(s.transports).sort()).toEqual([...KEYS].sort());
    for (const key of KEYS) {
      const t = s.transports[key];
      expect(Object.keys(t).sort(), key).toEqual([
        'bytesIn',
        'bytesOut',
        'connections',
        'cut',
        'disconnects',
        'messagesOut',
        'requests',
      ]);
      for (const f of ['connections', 'requests', 'messagesOut', 'bytesOut', 'bytesIn', 'cut'] as const) {
        expect(Number.isInteger(t[f]), `${key}.${f}`).toBe(true);
        expect(t[f], `${key}.${f}`).toBe(0);
      }
      expect(Object.keys(t.disconnects).sort(), key).toEqual([...REASONS].sort());
      for (const r of REASONS) expect(t.disconnects[r as keyof typeof t.disconnects], `${key}.${r}`).toBe(0);
    }

    const info = lab.app.lab.feed.info();
    expect(s.feed).toEqual({ kind: 'memory', epoch: info.epoch, lastId: 3, firstId: 1, retained: 3 });
    expect(typeof s.feed.epoch).toBe('string');

    const p = s.process;
    expect(p.pid).toBe(process.pid);
    expect(p.uptimeSec).toBeGreaterThan(0);
    expect(p.cpu.userUs).toBeGreaterThan(0);
    expect(p.cpu.systemUs).toBeGreaterThanOrEqual(0);
    for (const k of ['rssBytes', 'heapUsedBytes', 'heapTotalBytes', 'externalBytes'] as const) {
      expect(typeof p.memory[k], k).toBe('number');
      expect(p.memory[k], k).toBeGreaterThan(0);
    }
    for (const k of ['p50', 'p99', 'max', 'windowMs'] as const) {
      expect(typeof p.eventLoopDelayMs[k], k).toBe('number');
      expect(Number.isFinite(p.eventLoopDelayMs[k]), k).toBe(true);
    }
    expect(p.eventLoopDelayMs.windowMs).toBeGreaterThan(0);
  });

  it('reports retention in feed.firstId/retained', async () => {
    const lab = await startLab({ retentionMessages: 3 });
    await publishMany(lab.url, 5);
    const s = await stats(lab);
    expect(s.feed).toMatchObject({ lastId: 5, firstId: 3, retained: 3 });
  });
});

describe('per-transport counters', () => {
  it('counts long polls under `poll` and timeout=0 polls under `short-poll`, with their messages', async () => {
    const lab = await startLab();
    // 3 long polls held on an empty feed, released by one publish.
    const held = [0, 1, 2].map(() => poll(lab.url, 'since=0&timeout=10000'));
    await until(() => live(lab).poll.connections === 3);
    expect(live(lab).poll.requests).toBe(3);
    expect(live(lab).poll.messagesOut).toBe(0);
    await publish(lab.url, 'one');
    const answers = await Promise.all(held);
    for (const a of answers) expect(a.body.messages.map((m) => m.id)).toEqual([1]);
    await until(() => live(lab).poll.connections === 0);

    await publish(lab.url, 'two');
    // 4 short polls from 0: each gets both messages.
    for (let i = 0; i < 4; i++) {
      const a = await poll(lab.url, 'since=0&timeout=0');
      expect(a.body.messages.map((m) => m.id)).toEqual([1, 2]);
    }
    // 1 short poll with nothing new.
    expect((await poll(lab.url, 'since=2&timeout=0')).body.messages).toEqual([]);
    // 2 long polls answered at once (messages waiting), 1 with the default timeout.
    expect((await poll(lab.url, 'since=1&timeout=5000')).body.messages.map((m) => m.id)).toEqual([2]);
    expect((await poll(lab.url, 'since=0')).body.messages.map((m) => m.id)).toEqual([1, 2]);

    const s = await stats(lab);
    expect(s.transports.poll).toMatchObject({ requests: 5, messagesOut: 3 + 1 + 2, connections: 0 });
    expect(s.transports['short-poll']).toMatchObject({ requests: 5, messagesOut: 8, connections: 0 });
    expect(s.transports.sse.requests).toBe(0);
    expect(s.transports.ws.requests).toBe(0);
    expect(s.transports.poll.bytesOut).toBeGreaterThan(0);
    expect(s.transports['short-poll'].bytesOut).toBeGreaterThan(0);
    expect(s.transports.poll.bytesIn).toBeGreaterThan(0);
  });

  it('counts messagesOut per transport (control frames and events not included)', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 2); // history: 1, 2
    const sse = new SseClient(`${lab.url}/events?since=0`);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=1`);
    await ws.opened;
    await until(() => sse.messages.length === 2 && ws.messages.length === 1);
    await publishMany(lab.url, 5); // live: 3..7
    await until(() => sse.messages.length === 7 && ws.messages.length === 6);
    expect(sse.ids()).toEqual(range(1, 7));
    expect(ws.ids()).toEqual(range(2, 7));
    const polled = await poll(lab.url, 'since=4&timeout=0');
    expect(polled.body.messages).toHaveLength(3);

    const s = await stats(lab);
    expect(s.transports.sse.messagesOut).toBe(7);
    expect(s.transports.ws.messagesOut).toBe(6);
    expect(s.transports['short-poll'].messagesOut).toBe(3);
    expect(s.transports.poll.messagesOut).toBe(0);
    expect(s.transports.sse.requests).toBe(1);
    expect(s.transports.ws.requests).toBe(1);
  });

  it('counts a short poll made on a raw socket: bytesIn and bytesOut equal the bytes on the wire exactly', async () => {
    const lab = await startLab();
    await publish(lab.url, { text: 'héllo ✓' });
    const host = new URL(lab.url).host;
    const request = `GET /poll?since=0&timeout=0 HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: raw-test\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
    const { sent, received } = await rawExchange(lab.url, request);

    const text = received.toString('utf8');
    expect(text.startsWith('HTTP/1.1 200 ')).toBe(true);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { messages: { id: number }[] };
    expect(body.messages.map((m) => m.id)).toEqual([1]);

    await until(() => live(lab)['short-poll'].bytesOut > 0);
    const s = await stats(lab);
    expect(s.transports['short-poll'].requests).toBe(1);
    expect(s.transports['short-poll'].bytesIn).toBe(sent);
    expect(s.transports['short-poll'].bytesOut).toBe(received.length);
    // The publish and this /stats request are nobody's bytes.
    expect(s.transports.poll.bytesIn).toBe(0);
    expect(s.transports.poll.bytesOut).toBe(0);
  });

  it('counts a short poll on a keep-alive socket that first carried a publish: only the poll bytes', async () => {
    const lab = await startLab();
    const host = new URL(lab.url).host;
    const pub = `POST /publish HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"data":1}`;
    const get = `GET /poll?since=0&timeout=0 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const { hostname, port } = new URL(lab.url);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let sentGet = false;
      const socket = connect({ host: hostname, port: Number(port) }, () => socket.write(pub));
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        // Send the poll only once the publish's answer has fully arrived.
        if (!sentGet && Buffer.concat(chunks).toString().includes('{"id":1}')) {
          sentGet = true;
          socket.end(get);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    const all = received.toString('utf8');
    const second = all.indexOf('HTTP/1.1 200');
    expect(all.startsWith('HTTP/1.1 201')).toBe(true);
    expect(second).toBeGreaterThan(0);
    const pollBytes = received.length - Buffer.byteLength(all.slice(0, second));

    await until(() => live(lab)['short-poll'].bytesOut > 0);
    const s = await stats(lab);
    expect(s.transports['short-poll'].bytesIn).toBe(Buffer.byteLength(get));
    expect(s.transports['short-poll'].bytesOut).toBe(pollBytes);
  });

  it('counts WebSocket bytesOut from the socket: at least payload + 2 bytes of frame header per frame', async () => {
    const lab = await startLab();
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    const sizes: number[] = [];
    await ws.opened;
    await until(() => ws.controlsOf('hello').length === 1);
    const before = (await stats(lab)).transports.ws;
    // Includes the upgrade exchange and the hello frame.
    expect(before.bytesIn).toBeGreaterThan(0);
    expect(before.bytesOut).toBeGreaterThan(0);

    ws.ws.on('message', (raw: Buffer) => sizes.push(raw.length));
    const K = 6;
    await publishMany(lab.url, K, (i) => ({ i, pad: 'p'.repeat(i * 50) })); // up to 250 bytes: both header sizes
    await until(() => ws.messages.length === K && sizes.length === K);
    const after = (await stats(lab)).transports.ws;
    const payload = sizes.reduce((a, b) => a + b, 0);
    expect(after.bytesOut - before.bytesOut).toBeGreaterThanOrEqual(payload + 2 * K);
    expect(after.messagesOut).toBe(K);

    // Client → server frames are counted in bytesIn (masked: payload + 6 bytes of header at least).
    const frame = JSON.stringify({ type: 'publish', data: 'in', ref: 'r' });
    ws.ws.send(frame);
    await until(() => ws.controlsOf('ack').length === 1);
    const afterIn = (await stats(lab)).transports.ws;
    expect(afterIn.bytesIn - after.bytesIn).toBeGreaterThanOrEqual(Buffer.byteLength(frame) + 6);
  });

  it('counts open SSE streams and WebSockets in `connections`, back to 0 after they close', async () => {
    const lab = await startLab();
    const sse = new SseClient(`${lab.url}/events`);
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await ws.opened;
    await until(() => sse.eventsOf('hello').length === 1);
    let s = await stats(lab);
    expect(s.transports.sse.connections).toBe(1);
    expect(s.transports.ws.connections).toBe(1);
    expect(s.transports.poll.connections).toBe(0);

    const sse2 = new SseClient(`${lab.url}/events`);
    await until(() => sse2.eventsOf('hello').length === 1);
    expect((await stats(lab)).transports.sse.connections).toBe(2);

    sse.es.close();
    sse2.es.close();
    ws.ws.close();
    await ws.closed;
    await until(() => live(lab).sse.connections === 0 && live(lab).ws.connections === 0);
    s = await stats(lab);
    expect(s.transports.sse.connections).toBe(0);
    expect(s.transports.ws.connections).toBe(0);
    expect(s.transports.sse.disconnects.client).toBe(2);
    expect(s.transports.ws.disconnects.client).toBe(1);
    expect(s.transports.sse.requests).toBe(2);
    expect(s.transports.sse.bytesOut).toBeGreaterThan(0);
  });
});

describe('GET /metrics', () => {
  it('is Prometheus text with per-transport counters matching /stats', async () => {
    const lab = await startLab();
    const sse = new SseClient(`${lab.url}/events?since=0`);
    await until(() => sse.eventsOf('hello').length === 1);
    await publishMany(lab.url, 4);
    await until(() => sse.messages.length === 4);
    await poll(lab.url, 'since=0&timeout=0');

    const res = await fetch(`${lab.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const value = (series: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('lab_messages_out_total{transport="sse"}')).toBe(4);
    expect(value('lab_messages_out_total{transport="short-poll"}')).toBe(4);
    expect(value('lab_messages_out_total{transport="ws"}')).toBe(0);
    expect(value('lab_requests_total{transport="sse"}')).toBe(1);
    expect(value('lab_connections{transport="sse"}')).toBe(1);
    expect(value('lab_feed_last_id')).toBe(4);
    for (const key of KEYS) expect(value(`lab_bytes_out_total{transport="${key}"}`), key).toBeTypeOf('number');
    expect(value('lab_bytes_out_total{transport="sse"}')).toBeGreaterThan(0);
    expect(value('lab_bytes_out_total{transport="short-poll"}')).toBe(live(lab)['short-poll'].bytesOut);
    expect(value('lab_disconnects_total{transport="sse",reason="client"}')).toBe(0);
    expect(text).toContain('# TYPE lab_messages_out_total counter');
    expect(text).toContain('# TYPE lab_connections gauge');
  });
});
