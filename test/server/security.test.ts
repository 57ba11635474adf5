/**
 * Who may publish and connect: the publish token (HTTP and WebSocket) and the WebSocket Origin check.
 * (Configuration and the CLI: config.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { WsClient, publish, refusedUpgrade, startLab, until, type RunningLab } from '../helpers/lab.js';

// A set PUBLISH_TOKEN must have MIN_PUBLISH_TOKEN_LENGTH (16) characters or more.
const TOKEN = 's3cret-s3cret-s3cret';

async function post(lab: RunningLab, headers: Record<string, string>, body = '{"data":1}', path = '/publish') {
  const res = await fetch(`${lab.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json };
}

const lastId = (lab: RunningLab): number => lab.app.lab.feed.info().lastId;

/** Publishes over `c` and waits for the answer (ack or error) to that ref. */
async function wsPublish(c: WsClient, data: unknown, ref: string) {
  c.ws.send(JSON.stringify({ type: 'publish', data, ref }));
  await until(() => c.controls.some((f) => f.ref === ref));
  return c.controls.find((f) => f.ref === ref)!;
}

describe('publish token', () => {
  it('POST /publish: no token → 401, wrong token → 401, right token → 201', async () => {
    const lab = await startLab({ publishToken: TOKEN });
    const cases: [Record<string, string>, string][] = [
      [{}, 'none'],
      [{ authorization: 'Bearer wrong' }, 'wrong'],
      [{ authorization: `Bearer ${TOKEN}x` }, 'longer'],
      [{ authorization: `Bearer ${TOKEN.slice(0, -1)}` }, 'prefix'],
      [{ authorization: TOKEN }, 'no scheme'],
      [{ authorization: `Basic ${TOKEN}` }, 'basic'],
      [{ authorization: 'Bearer ' }, 'empty'],
    ];
    for (const [headers, name] of cases) {
      const r = await post(lab, headers);
      expect.soft(r.status, name).toBe(401);
      expect.soft(r.body, name).toMatchObject({ error: { code: 'LAB_ERR_UNAUTHORIZED' } });
    }
    // The query-string token is for WebSocket upgrades only.
    const q = await post(lab, {}, '{"data":1}', `/publish?token=${TOKEN}`);
    expect(q.status).toBe(401);
    expect(q.body).toMatchObject({ error: { code: 'LAB_ERR_UNAUTHORIZED' } });
    expect(lastId(lab)).toBe(0);

    const ok = await post(lab, { authorization: `Bearer ${TOKEN}` });
    expect(ok).toEqual({ status: 201, body: { id: 1 } });
    const lower = await post(lab, { authorization: `bearer ${TOKEN}` });
    expect(lower).toEqual({ status: 201, body: { id: 2 } });
    expect(lastId(lab)).toBe(2);
  });

  it('checks the token before the body: an unauthorised oversize or invalid body is 401, not 413/400', async () => {
    const lab = await startLab({ publishToken: TOKEN, maxPayloadBytes: 1024 });
    const big = await post(lab, {}, JSON.stringify({ data: 'x'.repeat(5000) }));
    expect(big.status).toBe(401);
    expect(big.body).toMatchObject({ error: { code: 'LAB_ERR_UNAUTHORIZED' } });
    const bad = await post(lab, {}, '{not json');
    expect(bad.status).toBe(401);
    expect(bad.body).toMatchObject({ error: { code: 'LAB_ERR_UNAUTHORIZED' } });
    expect(lastId(lab)).toBe(0);
  });

  it('reading needs no token: /poll, /events, /stats stay open', async () => {
    const lab = await startLab({ publishToken: TOKEN });
    await publish(lab.url, 'x', TOKEN);
    const p = await fetch(`${lab.url}/poll?since=0&timeout=0`);
    expect(p.status).toBe(200);
    expect(((await p.json()) as { messages: unknown[] }).messages).toHaveLength(1);
    expect((await fetch(`${lab.url}/stats`)).status).toBe(200);
  });

  it('WS: a token in ?token= or in the Authorization header can publish', async () => {
    const lab = await startLab({ publishToken: TOKEN });
    const viaQuery = new WsClient(`${lab.wsUrl}/ws?token=${TOKEN}`);
    const viaHeader = new WsClient(`${lab.wsUrl}/ws`, { headers: { authorization: `Bearer ${TOKEN}` } });
    await Promise.all([viaQuery.opened, viaHeader.opened]);
    expect(await wsPublish(viaQuery, 'q', 'a')).toEqual({ type: 'ack', id: 1, ref: 'a' });
    expect(await wsPublish(viaHeader, 'h', 'b')).toEqual({ type: 'ack', id: 2, ref: 'b' });
    await until(() => viaQuery.messages.length === 2 && viaHeader.messages.length === 2);
    expect(viaHeader.messages.map((m) => m.data)).toEqual(['q', 'h']);
    expect(lastId(lab)).toBe(2);
  });

  it('WS without a token connects read-only: receives messages, publishing gets LAB_ERR_UNAUTHORIZED', async () => {
    const lab = await startLab({ publishToken: TOKEN });
    const c = new WsClient(`${lab.wsUrl}/ws`);
    await c.opened;
    await until(() => c.controlsOf('hello').length === 1);
    await publish(lab.url, { from: 'http' }, TOKEN);
    await until(() => c.messages.length === 1);
    expect(c.messages[0]).toMatchObject({ id: 1, data: { from: 'http' } });

    expect(await wsPublish(c, 'nope', 'r1')).toMatchObject({ type: 'error', code: 'LAB_ERR_UNAUTHORIZED', ref: 'r1' });
    expect(lastId(lab)).toBe(1);
    expect(c.controlsOf('ack')).toEqual([]);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    // Still receiving.
    await publish(lab.url, 2, TOKEN);
    await until(() => c.messages.length === 2);
    expect(c.ids()).toEqual([1, 2]);
  });

  it('WS with a wrong token is refused with 401 LAB_ERR_UNAUTHORIZED', async () => {
    const lab = await startLab({ publishToken: TOKEN });
    for (const [url, opts] of [
      [`${lab.wsUrl}/ws?token=wrong`, {}],
      [`${lab.wsUrl}/ws`, { headers: { authorization: 'Bearer wrong' } }],
      [`${lab.wsUrl}/ws?token=`, {}],
    ] as const) {
      const r = await refusedUpgrade(url, opts);
      expect.soft(r.status, url).toBe(401);
      expect.soft(r.body, url).toMatchObject({ error: { code: 'LAB_ERR_UNAUTHORIZED' } });
    }
    expect(lab.app.lab.stats.transports.ws.requests).toBe(0);
  });

  it('WS without a configured token: anybody may publish', async () => {
    const lab = await startLab();
    const c = new WsClient(`${lab.wsUrl}/ws?token=whatever`);
    await c.opened;
    expect(await wsPublish(c, 1, 'r')).toEqual({ type: 'ack', id: 1, ref: 'r' });
  });
});

describe('WebSocket Origin check', () => {
  it('refuses a foreign Origin with 403 LAB_ERR_ORIGIN_FORBIDDEN (no upgrade)', async () => {
    const lab = await startLab();
    const port = new URL(lab.url).port;
    for (const origin of [
      'http://evil.example',
      `http://evil.example:${port}`,
      'null',
      'http://localhost',
      `http://127.0.0.2:${port}`,
    ]) {
      const r = await refusedUpgrade(`${lab.wsUrl}/ws`, { origin });
      expect.soft(r.status, origin).toBe(403);
      expect.soft(r.body, origin).toMatchObject({ error: { code: 'LAB_ERR_ORIGIN_FORBIDDEN' } });
    }
    expect(lab.app.lab.stats.transports.ws.requests).toBe(0);
  });

  it("accepts the server's own origin, a listed origin, and no Origin", async () => {
    const lab = await startLab({ allowedOrigins: ['https://app.example'] });
    const own = new URL(lab.url).origin;
    expect(own).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const clients = [
      new WsClient(`${lab.wsUrl}/ws`, { origin: own }),
      new WsClient(`${lab.wsUrl}/ws`, { origin: 'https://app.example' }),
      new WsClient(`${lab.wsUrl}/ws`),
    ];
    await Promise.all(clients.map((c) => c.opened));
    await until(() => clients.every((c) => c.controlsOf('hello').length === 1));
    await until(() => lab.app.lab.stats.transports.ws.connections === 3);
    // A listed origin is matched exactly: another port of it is still foreign.
    const r = await refusedUpgrade(`${lab.wsUrl}/ws`, { origin: 'https://app.example:8443' });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: { code: 'LAB_ERR_ORIGIN_FORBIDDEN' } });
  });
});

/** Runs `fn`, expecting a ConfigError; returns it. */
