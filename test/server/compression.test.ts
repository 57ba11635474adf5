/**
 * Compression (config wsDeflate, httpGzip; server/transports/compression.ts): permessage-deflate as
 * negotiated by a real `ws` client, with and without context takeover; SSE streams gzip'd and flushed per
 * event (each event decodable as soon as it is published); poll answers gzip'd, byte for byte the
 * uncompressed answer once decoded; and the same per connection with `?compress=` (config compressionOptIn),
 * a deflating WebSocket next to a plain one on one server. Real sockets and clients: ws, eventsource over
 * undici's fetch, undici.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createGunzip, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import type { Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { resolveConfig } from '../../server/config.js';
import { ConfigError } from '../../server/errors.js';
import { acceptsGzip } from '../../server/transports/compression.js';
import { canShareWsFrames } from '../../server/transports/shared-write.js';
import { publish, refusedUpgrade, SseClient, startLab, until, WsClient, type RunningLab } from '../helpers/lab.js';

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

/** Every frame a WebSocket client receives, as the text it decoded: what byte-exact means for a deflated socket. */
function frameTexts(client: WsClient): string[] {
  const texts: string[] = [];
  client.ws.on('message', (raw) => texts.push(raw.toString()));
  return texts;
}

/** The `Sec-WebSocket-Extensions` the server answered an upgrade offering permessage-deflate with ('' for none). */
async function negotiated(url: string): Promise<string> {
  const ws = new WebSocket(url, { perMessageDeflate: true });
  const [res] = (await once(ws, 'upgrade')) as [{ headers: Record<string, string | undefined> }];
  ws.terminate();
  return res.headers['sec-websocket-extensions'] ?? '';
}

/** An SSE stream read raw (undici), decoded from gzip when the server gzip'd it: its text so far, and its headers. */
async function rawSse(url: string, acceptGzip: boolean) {
  const res = await request(url, { headers: acceptGzip ? { 'accept-encoding': 'gzip' } : {} });
  const out = { text: '', headers: res.headers, status: res.statusCode };
  const body = res.headers['content-encoding'] === 'gzip' ? res.body.pipe(createGunzip()) : res.body;
  body.setEncoding('utf8');
  body.on('data', (d: string) => (out.text += d));
  onTestFinished(() => {
    res.body.destroy();
  });
  return out;
}

/** A poll answer's raw bytes and headers. */
async function rawPoll(url: string, acceptGzip = true) {
  const res = await request(url, { headers: acceptGzip ? { 'accept-encoding': 'gzip' } : {} });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/**
 * `%61=1` (an escaped name) makes poll.ts' fast path leave the request to Fastify's route: both places that
 * decide gzip are exercised.
 */
const VIA_FASTIFY = '&%61=1';

/** A 400 refusal's code from a JSON body. */
const codeOf = (body: unknown) => (body as { error?: { code?: string } }).error?.code;

describe('compression per connection (?compress=)', () => {
  it('WebSocket: compress=deflate and deflate-alone negotiate permessage-deflate on a server without it; compress=off refuses it on a server with it', async () => {
    const plain = await startLab();
    expect(await negotiated(`${plain.wsUrl}/ws?since=0`)).toBe('');
    const deflate = await negotiated(`${plain.wsUrl}/ws?since=0&compress=deflate`);
    expect(deflate).toMatch(/^permessage-deflate/);
    expect(deflate).not.toContain('no_context_takeover');
    const alone = await negotiated(`${plain.wsUrl}/ws?since=0&compress=deflate-alone`);
    expect(alone).toContain('server_no_context_takeover');
    expect(alone).toContain('client_no_context_takeover');
    const on = await startLab({ wsDeflate: 'on' });
    expect(await negotiated(`${on.wsUrl}/ws?since=0`)).toMatch(/^permessage-deflate/);
    expect(await negotiated(`${on.wsUrl}/ws?since=0&compress=off`)).toBe('');
    // A client that does not offer the extension gets none, whatever it asked for.
    const bare = new WsClient(`${plain.wsUrl}/ws?since=0&compress=deflate`, { perMessageDeflate: false });
    await bare.opened;
    expect(bare.ws.extensions).toBe('');
  });

  it('SSE: compress=gzip gzips a stream on a server without httpGzip, byte for byte what a plain stream gets; compress=off wins over httpGzip', async () => {
    // A fixed retry: so that the two streams' bytes can be the same.
    const lab = await startLab({ sseRetryJitterMs: 0 });
    for (let i = 1; i <= 5; i++) await publish(lab.url, chat(i));
    const gz = await rawSse(`${lab.url}/events?since=0&compress=gzip`, true);
    const plain = await rawSse(`${lab.url}/events?since=0`, true);
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toBe('accept-encoding');
    expect(plain.headers['content-encoding']).toBeUndefined();
    // Live events too: each decodable as soon as it is published.
    await publish(lab.url, chat(6));
    const done = (t: string) => t.includes('id: 6\n') && t.endsWith('\n\n');
    await until(() => done(gz.text) && done(plain.text));
    expect(gz.text).toBe(plain.text);
    expect(gz.text).toContain('"text":"héllo ✓ number 6 — 🚀"');
    // Without Accept-Encoding gzip: identity, whatever `compress` says.
    const refused = await rawSse(`${lab.url}/events?since=0&compress=gzip`, false);
    expect(refused.headers['content-encoding']).toBeUndefined();

    const server = await startLab({ httpGzip: true });
    expect((await rawSse(`${server.url}/events?since=0`, true)).headers['content-encoding']).toBe('gzip');
    expect(
      (await rawSse(`${server.url}/events?since=0&compress=off`, true)).headers['content-encoding'],
    ).toBeUndefined();
  });

  it('poll: compress=gzip gzips answers at once and held, on both paths, byte for byte the plain answer once decoded; compress=off wins over httpGzip', async () => {
    const lab = await startLab();
    for (let i = 0; i < 20; i++) await publish(lab.url, chat(i));
    const plain = await rawPoll(`${lab.url}/poll?since=0&timeout=0`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    for (const path of ['', VIA_FASTIFY]) {
      const gz = await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=gzip${path}`);
      expect(gz.status, path).toBe(200);
      expect(gz.headers['content-encoding'], path).toBe('gzip');
      expect(Number(gz.headers['content-length']), path).toBe(gz.body.length);
      expect(gunzipSync(gz.body).equals(plain.body), path).toBe(true);
      expect(gz.body.length, path).toBeLessThan(plain.body.length / 2);
      // Without Accept-Encoding gzip: identity.
      const identity = await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=gzip${path}`, false);
      expect(identity.headers['content-encoding'], path).toBeUndefined();
      expect(identity.body.equals(plain.body), path).toBe(true);
    }
    // Held, then answered by the next publish: compressed too, on both paths.
    const held = [
      rawPoll(`${lab.url}/poll?since=20&timeout=10000&compress=gzip`),
      rawPoll(`${lab.url}/poll?since=20&timeout=10000&compress=gzip${VIA_FASTIFY}`),
    ];
    await until(() => lab.app.lab.stats.transports.poll.connections === 2);
    await publish(lab.url, chat(21));
    for (const answer of await Promise.all(held)) {
      expect(answer.headers['content-encoding']).toBe('gzip');
      const body = JSON.parse(gunzipSync(answer.body).toString('utf8'));
      expect(body.messages.map((m: { data: unknown }) => m.data)).toEqual([chat(21)]);
    }

    const server = await startLab({ httpGzip: true });
    for (const path of ['', VIA_FASTIFY]) {
      expect((await rawPoll(`${server.url}/poll?since=0&timeout=0${path}`)).headers['content-encoding']).toBe('gzip');
      const off = await rawPoll(`${server.url}/poll?since=0&timeout=0&compress=off${path}`);
      expect(off.headers['content-encoding'], path).toBeUndefined();
    }
  });

  /** Every endpoint refuses `bad` for `compress` with 400 LAB_ERR_BAD_COMPRESSION, the upgrade before it happens. */
  async function refusesEverywhere(lab: RunningLab, http: string, ws: string) {
    for (const path of ['', VIA_FASTIFY]) {
      const res = await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=${http}${path}`);
      expect(res.status, `poll ${http}${path}`).toBe(400);
      expect(codeOf(JSON.parse(res.body.toString())), `poll ${http}${path}`).toBe('LAB_ERR_BAD_COMPRESSION');
    }
    const sse = await request(`${lab.url}/events?since=0&compress=${http}`);
    expect(sse.statusCode).toBe(400);
    expect(codeOf(await sse.body.json())).toBe('LAB_ERR_BAD_COMPRESSION');
    const upgrade = await refusedUpgrade(`${lab.wsUrl}/ws?since=0&compress=${ws}`, { perMessageDeflate: true });
    expect(upgrade.status).toBe(400);
    expect(codeOf(upgrade.body)).toBe('LAB_ERR_BAD_COMPRESSION');
    expect(lab.app.lab.stats.transports.ws.requests).toBe(0);
  }

  it('a value the endpoint does not take is refused with 400 LAB_ERR_BAD_COMPRESSION (a WebSocket before its upgrade)', async () => {
    const lab = await startLab();
    await refusesEverywhere(lab, 'br', 'gzip');
    await refusesEverywhere(lab, 'deflate', 'GZIP');
    // Given twice: refused too (Fastify's query parser makes it a list).
    const twice = await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=gzip&compress=gzip`);
    expect(codeOf(JSON.parse(twice.body.toString()))).toBe('LAB_ERR_BAD_COMPRESSION');
  });

  it('compressionOptIn off: asking for compression is refused with LAB_ERR_BAD_COMPRESSION, compress=off is taken', async () => {
    expect(resolveConfig({}).compressionOptIn).toBe(true);
    const lab = await startLab({ compressionOptIn: false });
    await refusesEverywhere(lab, 'gzip', 'deflate');
    const body = JSON.parse((await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=gzip`)).body.toString());
    expect(body.error.message).toContain('COMPRESSION_OPT_IN');
    const upgrade = await refusedUpgrade(`${lab.wsUrl}/ws?since=0&compress=deflate-alone`, { perMessageDeflate: true });
    expect(codeOf(upgrade.body)).toBe('LAB_ERR_BAD_COMPRESSION');
    expect((await rawPoll(`${lab.url}/poll?since=0&timeout=0&compress=off`)).status).toBe(200);
    const sse = await rawSse(`${lab.url}/events?since=0&compress=off`, true);
    expect(sse.status).toBe(200);
    expect(await negotiated(`${lab.wsUrl}/ws?since=0&compress=off`)).toBe('');
  });

  it('a deflating WebSocket, one compressing each message alone and a plain one on one server: every message byte for byte; the plain one still takes the shared frames; all closed 1001 on shutdown', async () => {
    const lab = await startLab();
    const deflating = new WsClient(`${lab.wsUrl}/ws?since=0&compress=deflate`, { perMessageDeflate: true });
    const alone = new WsClient(`${lab.wsUrl}/ws?since=0&compress=deflate-alone`, { perMessageDeflate: true });
    const plain = new WsClient(`${lab.wsUrl}/ws?since=0`, { perMessageDeflate: true });
    const texts = [deflating, alone, plain].map(frameTexts);
    await Promise.all([deflating.opened, alone.opened, plain.opened]);
    expect([deflating.ws.extensions, alone.ws.extensions, plain.ws.extensions]).toEqual([
      'permessage-deflate',
      'permessage-deflate',
      '',
    ]);
    // The plain socket is the only one the plugin's own server upgraded, and frames built once may go to it as they are.
    const serverSide = [...lab.app.websocketServer.clients];
    expect(serverSide).toHaveLength(1);
    const [own] = serverSide as [WebSocket];
    expect(own.extensions).toBe('');
    await until(() => canShareWsFrames(own, (own as unknown as { _socket: Socket })._socket));
    // One by one and in bursts, so that batches of one and of several are framed.
    for (let i = 0; i < 10; i++) await publish(lab.url, chat(i));
    await Promise.all(Array.from({ length: 20 }, (_, i) => publish(lab.url, chat(10 + i))));
    await until(() => [deflating, alone, plain].every((c) => c.messages.length === 30));
    expect(deflating.ids()).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(texts[0]).toEqual(texts[2]);
    expect(texts[1]).toEqual(texts[2]);
    expect(plain.messages.slice(0, 10).map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, i) => chat(i)));
    await lab.app.close();
    await Promise.all([deflating.closed, alone.closed, plain.closed]);
    expect([deflating.closeCode, alone.closeCode, plain.closeCode]).toEqual([1001, 1001, 1001]);
  });
});
