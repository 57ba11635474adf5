/**
 * Compression (config wsDeflate, httpGzip; server/transports/compression.ts): permessage-deflate as
 * negotiated by a real `ws` client, with and without context takeover; SSE streams gzip'd and flushed per
 * event (each event decodable as soon as it is published); poll answers gzip'd, byte for byte the
 * uncompressed answer once decoded. Real sockets and clients: ws, eventsource over undici's fetch, undici.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createGunzip, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { resolveConfig } from '../../server/config.js';
import { ConfigError } from '../../server/errors.js';
import { acceptsGzip } from '../../server/transports/compression.js';
import { publish, SseClient, startLab, until, WsClient } from '../helpers/lab.js';

/** A chat-like message: the JSON a real feed carries, repetitive enough that compression shows. */
const chat = (i: number) => ({ room: 'general', user: `user-${i % 7}`, text: `héllo ✓ number ${i} — 🚀`, n: i });

describe('compression settings', () => {
  it('reads wsDeflate and httpGzip, and refuses anything else', () => {
    expect(resolveConfig({}).wsDeflate).toBe('off');
    expect(resolveConfig({}).httpGzip).toBe(false);
    expect(resolveConfig({ wsDeflate: 'no-context-takeover' }).wsDeflate).toBe('no-context-takeover');
    expect(() => resolveConfig({ wsDeflate: 'gzip' as never })).toThrow(ConfigError);
  });

  it('takes gzip only when Accept-Encoding lists it (or *) without q=0', () => {
    expect(acceptsGzip('gzip, deflate, br, zstd')).toBe(true);
    expect(acceptsGzip('br;q=1, GZIP;q=0.5')).toBe(true);
    expect(acceptsGzip('*')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('br, identity')).toBe(false);
    expect(acceptsGzip(undefined)).toBe(false);
  });
});

describe('WebSocket permessage-deflate', () => {
  async function bytesOut(wsDeflate: 'off' | 'on' | 'no-context-takeover') {
    const lab = await startLab({ wsDeflate });
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`, { perMessageDeflate: true });
    await ws.opened;
    const extensions = ws.ws.extensions;
    for (let i = 0; i < 30; i++) await publish(lab.url, chat(i));
    await until(() => ws.messages.length === 30);
    expect(ws.messages.map((m) => m.data)).toEqual(Array.from({ length: 30 }, (_, i) => chat(i)));
    ws.ws.close();
    await ws.closed;
    await until(() => lab.app.lab.stats.transports.ws.connections === 0);
    return { extensions, bytes: lab.app.lab.stats.transports.ws.bytesOut };
  }

  it('off: not negotiated even when offered; on and without context takeover: negotiated, the same messages; on: fewer bytes', async () => {
    const off = await bytesOut('off');
    const on = await bytesOut('on');
    const alone = await bytesOut('no-context-takeover');
    expect(off.extensions).toBe('');
    expect(on.extensions).toBe('permessage-deflate');
    expect(alone.extensions).toBe('permessage-deflate');
    // Context takeover compresses each message against the ones before: far fewer bytes. Compressed
    // alone, a chat-sized message does not shrink (measured: ~1 % more bytes than uncompressed).
    expect(on.bytes).toBeLessThan(off.bytes / 2);
    expect(on.bytes).toBeLessThan(alone.bytes / 2);
  });

  it('no-context-takeover is what the server answers the offer with', async () => {
    const lab = await startLab({ wsDeflate: 'no-context-takeover' });
    const ws = new WebSocket(`${lab.wsUrl}/ws?since=0`, { perMessageDeflate: true });
    const [res] = (await once(ws, 'upgrade')) as [{ headers: Record<string, string> }];
    expect(res.headers['sec-websocket-extensions']).toContain('server_no_context_takeover');
    expect(res.headers['sec-websocket-extensions']).toContain('client_no_context_takeover');
    ws.terminate();
  });
});

describe('HTTP gzip', () => {
  it('SSE: gzip for a client that takes it, each event decodable as soon as it is published; EventSource gets every message', async () => {
    const lab = await startLab({ httpGzip: true });
    const res = await request(`${lab.url}/events?since=0`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers.vary).toBe('accept-encoding');
    let text = '';
    const gunzip = createGunzip();
    gunzip.setEncoding('utf8');
    gunzip.on('data', (d: string) => (text += d));
    res.body.pipe(gunzip);
    await until(() => text.includes('event: hello'));
    // One at a time: each must be readable before the next is published (Z_SYNC_FLUSH per write).
    for (let i = 1; i <= 3; i++) {
      await publish(lab.url, chat(i));
      await until(() => text.includes(`id: ${i}\n`));
    }
    res.body.destroy();
    // A spec EventSource over undici's fetch (which asks for gzip and decodes it) gets the same messages.
    const es = new SseClient(`${lab.url}/events?since=0`);
    await until(() => es.messages.length === 3);
    expect(es.messages.map((m) => m.data)).toEqual([chat(1), chat(2), chat(3)]);
    // Without Accept-Encoding: identity, as before.
    const plain = await request(`${lab.url}/events?since=0`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    plain.body.destroy();
  });

  it('SSE: a gzip stream nobody reads is still cut as a slow consumer; the reader next to it gets every message', async () => {
    const lab = await startLab({ httpGzip: true, maxBufferedBytes: 64 * 1024, maxPayloadBytes: 16 * 1024 });
    const stalled = await request(`${lab.url}/events?since=0`, { headers: { 'accept-encoding': 'gzip' } });
    expect(stalled.headers['content-encoding']).toBe('gzip');
    // …never read.
    const reader = new SseClient(`${lab.url}/events?since=0`);
    await until(() => lab.app.lab.stats.transports.sse.connections === 2);
    const sse = lab.app.lab.stats.transports.sse;
    let n = 0;
    // Random text (base64 of random bytes) compresses little: the queue fills at about the rate it would unzipped.
    while (sse.disconnects['slow-consumer'] === 0 && n < 3000) {
      n++;
      await lab.app.lab.feed.append({ n, noise: randomBytes(10 * 1024).toString('base64') });
      await until(() => reader.messages.length === n);
    }
    expect(sse.disconnects['slow-consumer']).toBe(1);
    expect(n).toBeLessThan(3000);
    expect(reader.messages.map((m) => m.id)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    stalled.body.destroy();
  });

  it('poll: a gzip answer is the identity answer byte for byte once decoded; held and at once; identity without Accept-Encoding', async () => {
    const lab = await startLab({ httpGzip: true });
    for (let i = 0; i < 20; i++) await publish(lab.url, chat(i));
    const gz = await request(`${lab.url}/poll?since=0&timeout=0`, { headers: { 'accept-encoding': 'gzip' } });
    const raw = Buffer.from(await gz.body.arrayBuffer());
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(Number(gz.headers['content-length'])).toBe(raw.length);
    const identity = await request(`${lab.url}/poll?since=0&timeout=0`);
    const plain = Buffer.from(await identity.body.arrayBuffer());
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(gunzipSync(raw).equals(plain)).toBe(true);
    expect(raw.length).toBeLessThan(plain.length / 2);
    // A held poll answered by the next publish, compressed too.
    const held = request(`${lab.url}/poll?since=20&timeout=10000`, { headers: { 'accept-encoding': 'gzip' } });
    await until(() => lab.app.lab.stats.transports.poll.connections === 1);
    await publish(lab.url, chat(21));
    const answer = await held;
    expect(answer.headers['content-encoding']).toBe('gzip');
    const body = JSON.parse(gunzipSync(Buffer.from(await answer.body.arrayBuffer())).toString('utf8'));
    expect(body.messages.map((m: { data: unknown }) => m.data)).toEqual([chat(21)]);
    // fetch asks for gzip and decodes it.
    const fetched = (await (await fetch(`${lab.url}/poll?since=0&timeout=0`)).json()) as { messages: unknown[] };
    expect(fetched.messages).toHaveLength(21);
  });
});
