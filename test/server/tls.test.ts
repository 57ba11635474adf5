/**
 * --tls (HTTPS) and --http2 (HTTP/2 over TLS, HTTP/1.1 on the same port): every transport works, and
 * /stats counts what crosses the network — the encrypted bytes on the TCP socket, to the byte, per
 * HTTP/2 session to the transport of its streams, or `mixed` when its streams belong to several.
 *
 * The clients connect through a raw TCP socket of their own (net.connect, then TLS over it), so that
 * the test knows exactly how many bytes went each way and can hold /stats to them.
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import http2, { type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../server/errors.js';
import { resolveConfig } from '../../server/config.js';
import type { StatsSnapshot } from '../../server/stats.js';
import { selfSignedCredentials } from '../../server/tls.js';
import { SseClient, startLab, until, WsClient, type RunningLab } from '../helpers/lab.js';

const INSECURE = { rejectUnauthorized: false } as const;
const insecure = new Agent({ connect: INSECURE });

/** /stats over the lab's own state (no request of ours on any counted connection). */
const snapshot = (lab: RunningLab): StatsSnapshot => lab.app.lab.stats.snapshot(lab.app.lab.feed);

/** A TCP socket to `url` whose byte counts are the encrypted stream, and TLS over it with `alpn`. */
async function tlsOverTcp(url: string, alpn: string[]): Promise<{ tcp: Socket; tls: TLSSocket }> {
  const { hostname, port } = new URL(url);
  const tcp = netConnect({ host: hostname, port: Number(port) });
  await once(tcp, 'connect');
  const tls = tlsConnect({ socket: tcp, ALPNProtocols: alpn, servername: 'localhost', ...INSECURE });
  await once(tls, 'secureConnect');
  return { tcp, tls };
}

/** An HTTP/2 session over a TCP socket of the test's own. */
async function h2Session(url: string): Promise<{ tcp: Socket; session: ClientHttp2Session }> {
  const { tcp, tls } = await tlsOverTcp(url, ['h2']);
  expect(tls.alpnProtocol).toBe('h2');
  const session = http2.connect(url, { createConnection: () => tls });
  return { tcp, session };
}

/** A GET on an HTTP/2 session; resolves with status and body once the stream ended. */
function h2Get(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let body = '';
    stream.on('response', (h) => (head = h));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => resolve({ status: Number(head[':status']), body, headers: head }));
    stream.on('error', reject);
  });
}

const closed = (s: Socket) => (s.destroyed ? Promise.resolve() : once(s, 'close').then(() => {}));

describe('HTTPS (--tls)', () => {
  it('serves every transport over TLS, HTTP/1.1 only', async () => {
    const lab = await startLab({ tls: true });
    expect(lab.app.lab.protocol).toBe('https/1.1');
    expect(lab.url).toMatch(/^https:/);
    expect(lab.app.lab.certificate).toMatch(/^self-signed for localhost, 127\.0\.0\.1 and ::1/);
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`, INSECURE);
    await ws.opened;
    const sse = new SseClient(`${lab.url}/events?since=0`, {
      fetch: (input, init) =>
        undiciFetch(input as string, { ...(init as object), dispatcher: insecure }) as unknown as Promise<Response>,
    });
    await until(() => sse.opens === 1);
    await lab.app.lab.feed.append({ n: 1 });
    const polled = await undiciFetch(`${lab.url}/poll?since=0&timeout=0`, { dispatcher: insecure });
    expect(((await polled.json()) as { messages: unknown[] }).messages).toHaveLength(1);
    await until(() => ws.messages.length === 1 && sse.messages.length === 1);
    sse.es.close();
    // No h2 on an HTTPS/1.1 server: ALPN picks http/1.1.
    const { tls, tcp } = await tlsOverTcp(lab.url, ['h2', 'http/1.1']);
    expect(tls.alpnProtocol).toBe('http/1.1');
    tcp.destroy();
  });

  it('counts the encrypted bytes, handshake included, to the byte', async () => {
    const lab = await startLab({ tls: true });
    await lab.app.lab.feed.append({ n: 1 });
    const { tcp, tls } = await tlsOverTcp(lab.url, ['http/1.1']);
    let plain = 0;
    tls.on('data', (d: Buffer) => (plain += d.length));
    tls.end('GET /poll?since=0&timeout=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await closed(tcp);
    // The server's side closes a moment after ours: its close_notify is counted then.
    await until(() => snapshot(lab).transports['short-poll'].bytesOut === tcp.bytesRead);
    const t = snapshot(lab).transports['short-poll'];
    expect(t.bytesIn).toBe(tcp.bytesWritten);
    expect(t.bytesOut).toBe(tcp.bytesRead);
    // What crossed the network is more than the HTTP exchange: TLS records and the handshake.
    expect(t.bytesOut).toBeGreaterThan(plain + 300);
    expect(t.requests).toBe(1);
  });

  it('serves TLS_CERT/TLS_KEY when they are set', async () => {
    const own = await selfSignedCredentials();
    const dir = tmpdir();
    const cert = join(dir, `lab-test-cert-${process.pid}.pem`);
    const key = join(dir, `lab-test-key-${process.pid}.pem`);
    await writeFile(cert, own.cert);
    await writeFile(key, own.key);
    const lab = await startLab({ tls: true, tlsCert: cert, tlsKey: key });
    expect(lab.app.lab.certificate).toBe(`TLS_CERT=${cert}, TLS_KEY=${key}`);
    const { tls, tcp } = await tlsOverTcp(lab.url, ['http/1.1']);
    expect(tls.getPeerX509Certificate()?.toString()).toBe(
      new (await import('node:crypto')).X509Certificate(own.cert).toString(),
    );
    tcp.destroy();
  });

  it('refuses a certificate without its key, a missing file, and a certificate on a cleartext server', async () => {
    expect(() => resolveConfig({ tls: true, tlsCert: '/x.pem' })).toThrow(/TLS_CERT and TLS_KEY go together/);
    expect(() => resolveConfig({ tlsCert: '/x.pem', tlsKey: '/y.pem' })).toThrow(/would serve cleartext: add --tls/);
    await expect(
      startLab({ tls: true, tlsCert: '/nonexistent/cert.pem', tlsKey: '/nonexistent/key.pem' }),
    ).rejects.toThrow(ConfigError);
  });
});

describe('HTTP/2 (--http2)', () => {
  it('serves poll, short-poll and SSE over h2, and WebSocket over HTTP/1.1 on the same port', async () => {
    const lab = await startLab({ http2: true });
    expect(lab.app.lab.protocol).toBe('h2');
    const { session, tcp } = await h2Session(lab.url);
    await lab.app.lab.feed.append({ n: 1 });
    const short = await h2Get(session, '/poll?since=0&timeout=0');
    expect(short.status).toBe(200);
    expect(JSON.parse(short.body).messages).toHaveLength(1);
    const held = h2Get(session, '/poll?since=1&timeout=5000');
    const ws = new WsClient(`${lab.wsUrl}/ws?since=0`, INSECURE);
    await ws.opened;
    await until(() => lab.app.lab.stats.transports.poll.connections === 1);
    await lab.app.lab.feed.append({ n: 2 });
    expect(JSON.parse((await held).body).messages.map((m: { id: number }) => m.id)).toEqual([2]);
    await until(() => ws.messages.length === 2);
    // SSE: the stream's headers carry no Connection (forbidden in HTTP/2).
    const events = session.request({ ':path': '/events?since=0' });
    const [headers] = (await once(events, 'response')) as [http2.IncomingHttpHeaders];
    expect(headers[':status']).toBe(200);
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(headers.connection).toBeUndefined();
    let text = '';
    events.setEncoding('utf8');
    events.on('data', (d: string) => (text += d));
    await until(() => text.includes('id: 2\n'));
    events.close();
    session.close();
    await closed(tcp);
  });

  it('counts one session under its transport, to the byte, and each stream as a request', async () => {
    const lab = await startLab({ http2: true });
    await lab.app.lab.feed.append({ n: 1 });
    const { session, tcp } = await h2Session(lab.url);
    for (let i = 0; i < 3; i++) expect((await h2Get(session, '/poll?since=0&timeout=0')).status).toBe(200);
    session.close();
    await closed(tcp);
    await until(() => snapshot(lab).transports['short-poll'].bytesOut === tcp.bytesRead);
    const s = snapshot(lab);
    expect(s.transports['short-poll'].requests).toBe(3);
    expect(s.transports['short-poll'].bytesIn).toBe(tcp.bytesWritten);
    expect(s.mixed).toEqual({ sessions: 0, bytesIn: 0, bytesOut: 0 });
  });

  it('counts a session that carried two transports (or a transport and another route) as mixed, never split', async () => {
    const lab = await startLab({ http2: true });
    await lab.app.lab.feed.append({ n: 1 });
    const { session, tcp } = await h2Session(lab.url);
    await h2Get(session, '/poll?since=0&timeout=0');
    const events = session.request({ ':path': '/events?since=0' });
    await once(events, 'response');
    await until(() => lab.app.lab.stats.transports.sse.connections === 1);
    events.close();
    // A route that is no transport, on the same session.
    expect((await h2Get(session, '/stats')).status).toBe(200);
    session.close();
    await closed(tcp);
    await until(() => {
      const s = snapshot(lab);
      return s.transports['short-poll'].bytesIn + s.mixed.bytesIn === tcp.bytesWritten;
    });
    const s = snapshot(lab);
    expect(s.mixed.sessions).toBe(1);
    // Once mixed, nothing more goes to a transport: the SSE stream's bytes are all in `mixed`.
    expect(s.transports.sse.bytesOut).toBe(0);
    expect(s.transports.sse.requests).toBe(1);
    expect(s.mixed.bytesOut).toBeGreaterThan(0);
    expect(s.transports['short-poll'].bytesOut + s.mixed.bytesOut).toBe(tcp.bytesRead);
    const metrics = await h2Metrics(lab);
    expect(metrics).toContain(`lab_bytes_out_total{transport="mixed"} ${s.mixed.bytesOut}`);
  });

  it('does not count a session that only carried other routes', async () => {
    const lab = await startLab({ http2: true });
    const { session, tcp } = await h2Session(lab.url);
    expect((await h2Get(session, '/stats')).status).toBe(200);
    session.close();
    await closed(tcp);
    const s = snapshot(lab);
    for (const t of Object.values(s.transports)) expect(t.bytesIn + t.bytesOut).toBe(0);
    expect(s.mixed).toEqual({ sessions: 0, bytesIn: 0, bytesOut: 0 });
  });

  it('answers polls with the same headers on its own path and through Fastify; a held one at shutdown without Connection', async () => {
    const lab = await startLab({ http2: true });
    await lab.app.lab.feed.append({ n: 1 });
    const { session, tcp } = await h2Session(lab.url);
    const names = (h: http2.IncomingHttpHeaders) =>
      Object.keys(h)
        .filter((k) => k !== 'date')
        .sort();
    // The usual poll (the lab's own path) and one Fastify serves (a HEAD is never taken past it).
    const usual = await h2Get(session, '/poll?since=0&timeout=0');
    const viaFastify = await h2Get(session, '/poll?since=0&timeout=0', { ':method': 'HEAD' });
    expect(usual.status).toBe(200);
    expect(viaFastify.status).toBe(200);
    expect(names(usual.headers)).toEqual(names(viaFastify.headers));
    expect(usual.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(usual.headers['cache-control']).toBe('no-store');
    expect(usual.headers['content-length']).toBe(String(Buffer.byteLength(usual.body)));
    // Held, then the lab closes: answered (no messages) on the same session, no Connection header (which
    // node:http2 would drop with an UnsupportedWarning).
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const held = h2Get(session, '/poll?since=1&timeout=30000');
    await until(() => lab.app.lab.stats.transports.poll.connections === 1);
    const closing = lab.app.close();
    const answer = await held;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).messages).toEqual([]);
    expect(answer.headers.connection).toBeUndefined();
    expect(lab.app.lab.stats.transports.poll.disconnects.shutdown).toBe(1);
    session.close();
    await closing;
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
    await closed(tcp);
  });

  it('checks :authority like Host on a loopback bind (DNS rebinding)', async () => {
    const lab = await startLab({ http2: true });
    const { session, tcp } = await h2Session(lab.url);
    const refused = await h2Get(session, '/poll?since=0&timeout=0', { ':authority': 'evil.example' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error.code).toBe('LAB_ERR_HOST_FORBIDDEN');
    session.close();
    await closed(tcp);
  });
});

/** GET /metrics on a session of its own (its bytes count nowhere: only another route). */
async function h2Metrics(lab: RunningLab): Promise<string> {
  const { session, tcp } = await h2Session(lab.url);
  const { body } = await h2Get(session, '/metrics');
  session.close();
  await closed(tcp);
  return body;
}
