/**
 * The shared-write path (server/transports/shared-write.ts): a batch's WebSocket frames and SSE chunk
 * are built once and written as is to every socket that can take them. These tests hold the
 * encoders to the libraries' own bytes, and hold each fallback (permessage-deflate on, ws' sender
 * busy, a closing socket, an SSE response whose headers are not out yet, HTTP/1.0) to its promise:
 * no frame reordered, lost, or written after close. Real servers, real clients, raw sockets where
 * the bytes themselves are the point.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { httpChunk, messageJson, sseBatch, wsWire, type Message } from '../../../server/protocol.js';
import {
  canShareWsFrames,
  sendWsBatch,
  SseEncoded,
  writeSseBatch,
  type WritePath,
} from '../../../server/transports/shared-write.js';
import { until } from '../../helpers/lab.js';

type Frame = (data: Buffer, options: Record<string, unknown>) => Buffer[];
// ws' own framing (ws exports its Sender class on the CommonJS entry point).
const Sender = (createRequire(import.meta.url)('ws') as { Sender: { frame: Frame } }).Sender;

const msg = (id: number, data: unknown = { n: id }): Message => ({ id, ts: 1_700_000_000_000 + id, data });
const batch = (from: number, to: number): Message[] => Array.from({ length: to - from + 1 }, (_, i) => msg(from + i));

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const listen = async (server: Server): Promise<number> => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
};

describe('encoders', () => {
  it('wsWire is the bytes ws frames for each payload (7-bit, 16-bit and 64-bit lengths)', () => {
    const messages = [msg(1), msg(2, 'x'.repeat(200)), msg(3, 'y'.repeat(70_000)), msg(4, 'é€😀')];
    const expected = Buffer.concat(
      messages.flatMap((m) =>
        Sender.frame(Buffer.from(messageJson(m)), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }),
      ),
    );
    expect(wsWire(messages).equals(expected)).toBe(true);
  });

  it("httpChunk is the bytes Node's res.write puts on a chunked response", async () => {
    const body = sseBatch(batch(1, 3));
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('first');
      res.write(body);
      res.end();
    });
    const port = await listen(server);
    const raw = await rawHttp(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const wire = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    expect(
      wire.equals(Buffer.concat([httpChunk(Buffer.from('first')), httpChunk(body), Buffer.from('0\r\n\r\n')])),
    ).toBe(true);
  });
});

/** A ws server; `onConnection` gets each server-side socket with its TCP socket. */
async function wsServer(
  options: ConstructorParameters<typeof WebSocketServer>[0] = {},
): Promise<{ url: string; next: () => Promise<[WebSocket, Socket]> }> {
  const server = createServer();
  const wss = new WebSocketServer({ server, ...options });
  const waiting: ((c: [WebSocket, Socket]) => void)[] = [];
  wss.on('connection', (ws, req: IncomingMessage) => waiting.shift()?.([ws, req.socket]));
  const port = await listen(server);
  cleanups.push(() => wss.close());
  return { url: `ws://127.0.0.1:${port}`, next: () => new Promise((r) => waiting.push(r)) };
}

/** A client that keeps every text message it receives, in order. */
async function textClient(
  url: string,
  options: WebSocket.ClientOptions = {},
): Promise<{ ws: WebSocket; seen: string[] }> {
  const ws = new WebSocket(url, options);
  const seen: string[] = [];
  ws.on('message', (d, binary) => seen.push(binary ? `binary:${(d as Buffer).toString()}` : (d as Buffer).toString()));
  cleanups.push(() => ws.terminate());
  await once(ws, 'open');
  return { ws, seen };
}

describe('WebSocket: shared frames and their fallbacks', () => {
  it('writes the shared frames when ws has nothing in flight, and the client reads them as ws would send them', async () => {
    const srv = await wsServer({ perMessageDeflate: false });
    const pending = srv.next();
    const client = await textClient(srv.url);
    const [ws, socket] = await pending;
    const paths: WritePath[] = [];
    ws.send('hello');
    paths.push(sendWsBatch(ws, socket, batch(1, 3), wsWire(batch(1, 3))));
    paths.push(sendWsBatch(ws, socket, batch(4, 4), undefined));
    await until(() => client.seen.length === 5);
    expect(paths).toEqual(['shared', 'shared']);
    expect(client.seen).toEqual(['hello', ...batch(1, 4).map(messageJson)]);
  });

  it('permessage-deflate on: never shared; every message arrives, compressed by ws, in order', async () => {
    const srv = await wsServer({ perMessageDeflate: { threshold: 0 } });
    const pending = srv.next();
    const client = await textClient(srv.url, { perMessageDeflate: true });
    const [ws, socket] = await pending;
    expect(ws.extensions).toContain('permessage-deflate');
    expect(canShareWsFrames(ws, socket)).toBe(false);
    const paths: WritePath[] = [];
    for (let i = 0; i < 20; i += 4)
      paths.push(sendWsBatch(ws, socket, batch(i + 1, i + 4), wsWire(batch(i + 1, i + 4))));
    await until(() => client.seen.length === 20);
    expect(new Set(paths)).toEqual(new Set(['library']));
    expect(client.seen).toEqual(batch(1, 20).map(messageJson));
  });

  it("ws' sender busy (a Blob being read): the batch queues behind it instead of overtaking it", async () => {
    const srv = await wsServer({ perMessageDeflate: false });
    const pending = srv.next();
    const client = await textClient(srv.url);
    const [ws, socket] = await pending;
    // ws reads a Blob asynchronously and holds later frames in its queue meanwhile.
    ws.send(new Blob(['before']));
    const busy = sendWsBatch(ws, socket, batch(1, 2), wsWire(batch(1, 2)));
    await until(() => client.seen.length === 3);
    const after = sendWsBatch(ws, socket, batch(3, 3), wsWire(batch(3, 3)));
    await until(() => client.seen.length === 4);
    expect([busy, after]).toEqual(['library', 'shared']);
    expect(client.seen).toEqual(['binary:before', ...batch(1, 3).map(messageJson)]);
  });

  it('a closing socket: nothing is written after the close frame, and nothing before it is lost', async () => {
    const srv = await wsServer({ perMessageDeflate: false });
    const { url } = srv;
    const pending = srv.next();
    const raw = rawWsClient(url);
    const [ws, socket] = await pending;
    const paths: WritePath[] = [];
    paths.push(sendWsBatch(ws, socket, batch(1, 2), wsWire(batch(1, 2))));
    ws.close(1001, 'bye');
    paths.push(sendWsBatch(ws, socket, batch(3, 4), wsWire(batch(3, 4))));
    const frames = await raw;
    expect(paths).toEqual(['shared', 'library']);
    expect(frames.map((f) => (f.opcode === 1 ? f.payload.toString() : `op${f.opcode}`))).toEqual([
      ...batch(1, 2).map(messageJson),
      'op8',
    ]);
    expect(frames.at(-1)!.payload.readUInt16BE(0)).toBe(1001);
  });
});

describe('SSE: the shared chunk and its fallbacks', () => {
  /** One response per request: `handle` writes it; the raw answer comes back. */
  async function sse(
    request: string,
    handle: (res: ServerResponse) => WritePath[],
  ): Promise<{ raw: Buffer; paths: WritePath[] }> {
    let paths: WritePath[] = [];
    const server = createServer((_req, res) => {
      paths = handle(res);
      res.end();
    });
    const port = await listen(server);
    const raw = await rawHttp(port, request);
    return { raw, paths };
  }
  const enc = (from: number, to: number) => new SseEncoded(sseBatch(batch(from, to)));

  it('HTTP/1.1 after the first write: the shared chunk, the same bytes res.write would make', async () => {
    const { raw, paths } = await sse('GET / HTTP/1.1\r\nHost: x\r\n\r\n', (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      return [writeSseBatch(res, batch(1, 2), enc(1, 2)), writeSseBatch(res, batch(3, 3), undefined)];
    });
    expect(paths).toEqual(['shared', 'library']);
    const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    const expected = [': open\n\n', sseBatch(batch(1, 2)), sseBatch(batch(3, 3))].map((b) => httpChunk(Buffer.from(b)));
    expect(body.equals(Buffer.concat([...expected, Buffer.from('0\r\n\r\n')]))).toBe(true);
  });

  it('headers not on the socket yet: res.write, so the headers come first', async () => {
    const { raw, paths } = await sse('GET / HTTP/1.1\r\nHost: x\r\n\r\n', (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      return [writeSseBatch(res, batch(1, 2), enc(1, 2)), writeSseBatch(res, batch(3, 4), enc(3, 4))];
    });
    expect(paths).toEqual(['library', 'shared']);
    expect(raw.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    expect(
      body.equals(
        Buffer.concat([httpChunk(sseBatch(batch(1, 2))), httpChunk(sseBatch(batch(3, 4))), Buffer.from('0\r\n\r\n')]),
      ),
    ).toBe(true);
  });

  it('HTTP/1.0 (no chunked encoding): never shared; the body is the events as they are', async () => {
    const { raw, paths } = await sse('GET / HTTP/1.0\r\nHost: x\r\n\r\n', (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      return [writeSseBatch(res, batch(1, 2), enc(1, 2))];
    });
    expect(paths).toEqual(['library']);
    expect(raw.subarray(raw.indexOf('\r\n\r\n') + 4).toString()).toBe(`: open\n\n${sseBatch(batch(1, 2)).toString()}`);
  });

  it('an ended response: nothing more is written', async () => {
    const { raw, paths } = await sse('GET / HTTP/1.1\r\nHost: x\r\n\r\n', (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      res.end();
      // res.write after end is refused by Node (an 'error' event), as it would be without sharing.
      res.on('error', () => {});
      return [writeSseBatch(res, batch(1, 1), enc(1, 1))];
    });
    expect(paths).toEqual(['library']);
    expect(
      raw
        .subarray(raw.indexOf('\r\n\r\n') + 4)
        .equals(Buffer.concat([httpChunk(Buffer.from(': open\n\n')), Buffer.from('0\r\n\r\n')])),
    ).toBe(true);
  });
});

/** Sends `request` on a raw socket and resolves with every byte until the server closes (Connection: close or HTTP/1.0). */
async function rawHttp(port: number, request: string): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    // The last chunk of a chunked body: this test's servers end every response.
    if (Buffer.concat(chunks).includes('0\r\n\r\n')) socket.end();
  });
  socket.write(request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

/** A WebSocket client on a raw socket: handshakes, then resolves with every frame the server sent until the close frame (inclusive) and the end of the TCP stream. */
async function rawWsClient(url: string): Promise<{ opcode: number; payload: Buffer }[]> {
  const { port } = new URL(url);
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const socket = connect(Number(port), '127.0.0.1');
  socket.write(
    `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    // Answer the close handshake so the server ends the TCP connection.
    const all = Buffer.concat(chunks);
    const frames = parseFrames(all.subarray(all.indexOf('\r\n\r\n') + 4));
    if (frames.at(-1)?.opcode === 8) socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
  });
  socket.on('error', () => {});
  await once(socket, 'close');
  const all = Buffer.concat(chunks);
  const head = all.subarray(0, all.indexOf('\r\n\r\n')).toString();
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  expect(head).toContain(`Sec-WebSocket-Accept: ${accept}`);
  return parseFrames(all.subarray(all.indexOf('\r\n\r\n') + 4));
}

/** Unmasked server frames, whole ones only. */
function parseFrames(b: Buffer): { opcode: number; payload: Buffer }[] {
  const out: { opcode: number; payload: Buffer }[] = [];
  let o = 0;
  while (o + 2 <= b.length) {
    let len = b[o + 1]! & 0x7f;
    let at = o + 2;
    if (len === 126) {
      len = b.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      len = Number(b.readBigUInt64BE(at));
      at += 8;
    }
    if (at + len > b.length) break;
    out.push({ opcode: b[o]! & 0x0f, payload: b.subarray(at, at + len) });
    o = at + len;
  }
  return out;
}
