/**
 * Bad input on every entry point is answered with its LAB_ERR_* code and changes nothing in the feed;
 * good input (any JSON value) is appended and delivered. HTTP publish, poll/SSE/WS query checks, and
 * WebSocket publish frames (ack, bad frames, oversize frames).
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Message } from '../../server/feed/types.js';
import { WsClient, poll, refusedUpgrade, startLab, until, type RunningLab } from '../helpers/lab.js';

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body };
}

async function post(
  lab: RunningLab,
  body: string | Uint8Array<ArrayBuffer> | undefined,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return answer(
    await fetch(`${lab.url}/publish`, { method: 'POST', headers, ...(body === undefined ? {} : { body }) }),
  );
}

const JSON_CT = { 'content-type': 'application/json' };

function expectError(a: Answer, status: number, code: string): void {
  expect(a.status).toBe(status);
  expect(a.body).toMatchObject({ error: { code } });
  expect(typeof (a.body as { error: { message: unknown } }).error.message).toBe('string');
}

const lastId = (lab: RunningLab): number => lab.app.lab.feed.info().lastId;

/** Runs `act` and checks the feed did not move. */
async function unchanged(lab: RunningLab, act: () => Promise<void>): Promise<void> {
  const before = lastId(lab);
  await act();
  expect(lastId(lab)).toBe(before);
}

/** Reads back message `id` through the feed's own read path (a short poll). */
async function readBack(lab: RunningLab, id: number): Promise<Message> {
  const { status, body } = await poll(lab.url, `since=${id - 1}&timeout=0`);
  expect(status).toBe(200);
  expect(body.messages[0]?.id).toBe(id);
  return body.messages[0]!;
}

describe('POST /publish: bad input', () => {
  it('answers 413 LAB_ERR_PAYLOAD_TOO_LARGE for a body over maxPayloadBytes and appends nothing', async () => {
    const lab = await startLab({ maxPayloadBytes: 1024 });
    await unchanged(lab, async () => {
      // {"data":"xxx…"} is 11 bytes of framing plus the string.
      expectError(
        await post(lab, JSON.stringify({ data: 'x'.repeat(1024 - 11 + 1) }), JSON_CT),
        413,
        'LAB_ERR_PAYLOAD_TOO_LARGE',
      );
      expectError(
        await post(lab, JSON.stringify({ data: 'x'.repeat(10_000) }), JSON_CT),
        413,
        'LAB_ERR_PAYLOAD_TOO_LARGE',
      );
    });
    // Exactly maxPayloadBytes is allowed.
    const exact = JSON.stringify({ data: 'y'.repeat(1024 - 11) });
    expect(Buffer.byteLength(exact)).toBe(1024);
    const ok = await post(lab, exact, JSON_CT);
    expect(ok.status).toBe(201);
    expect(ok.body).toEqual({ id: 1 });
  });

  it('answers 400 LAB_ERR_INVALID_JSON for bodies that are not JSON', async () => {
    const lab = await startLab();
    await unchanged(lab, async () => {
      for (const body of ['{', '{"data":}', 'data=1', "{'data':1}", '{"data":1}x', '']) {
        const a = await post(lab, body, JSON_CT);
        expect.soft(a.status, `body ${JSON.stringify(body)}`).toBe(400);
        expect.soft(a.body, `body ${JSON.stringify(body)}`).toMatchObject({
          error: {
            code: body === '' ? expect.stringMatching(/^LAB_ERR_(INVALID_JSON|MISSING_DATA)$/) : 'LAB_ERR_INVALID_JSON',
          },
        });
      }
    });
  });

  it('answers 415 LAB_ERR_UNSUPPORTED_MEDIA_TYPE for text/plain and for a missing content-type', async () => {
    const lab = await startLab();
    await unchanged(lab, async () => {
      expectError(
        await post(lab, '{"data":1}', { 'content-type': 'text/plain' }),
        415,
        'LAB_ERR_UNSUPPORTED_MEDIA_TYPE',
      );
      expectError(
        await post(lab, '{"data":1}', { 'content-type': 'application/x-www-form-urlencoded' }),
        415,
        'LAB_ERR_UNSUPPORTED_MEDIA_TYPE',
      );
      // A Uint8Array body makes fetch send no content-type at all.
      expectError(await post(lab, new TextEncoder().encode('{"data":1}')), 415, 'LAB_ERR_UNSUPPORTED_MEDIA_TYPE');
      // No body and no content-type.
      expectError(await post(lab, undefined), 415, 'LAB_ERR_UNSUPPORTED_MEDIA_TYPE');
    });
  });

  it('answers 400 LAB_ERR_MISSING_DATA for JSON that is not an object with `data`', async () => {
    const lab = await startLab();
    await unchanged(lab, async () => {
      for (const body of ['{}', '{"date":1}', '[]', '[{"data":1}]', 'null', '1', '"data"', 'true']) {
        const a = await post(lab, body, JSON_CT);
        expect.soft(a.status, `body ${body}`).toBe(400);
        expect.soft(a.body, `body ${body}`).toMatchObject({ error: { code: 'LAB_ERR_MISSING_DATA' } });
      }
    });
  });
});

describe('POST /publish: good input', () => {
  it('answers 201 {id} and stores any JSON value as `data`, exactly', async () => {
    const lab = await startLab();
    const values: unknown[] = [
      'hello',
      '',
      0,
      -1.5e300,
      42,
      null,
      false,
      true,
      [],
      {},
      [1, 'two', null, { three: [3] }],
      { a: { b: { c: { d: { e: [{ f: 'deep' }] } } } } },
      'héllo ✓ 日本語 🚀 \n\t"quoted" \\ back',
      '\u0000\uFFFD',
      '\u0000\u0001\u001f\u007f\u2028\u2029',
      { '': 'empty key', 'k\u0000': '\uFEFF' },
    ];
    for (const [i, data] of values.entries()) {
      const a = await post(lab, JSON.stringify({ data }), JSON_CT);
      expect(a.status).toBe(201);
      expect(a.body).toEqual({ id: i + 1 });
    }
    expect(lastId(lab)).toBe(values.length);
    for (const [i, data] of values.entries()) {
      const m = await readBack(lab, i + 1);
      expect(m.data).toEqual(data);
    }
  });

  it('accepts application/json with a charset parameter, and extra top-level fields are ignored', async () => {
    const lab = await startLab();
    const a = await post(lab, '{"data":{"x":1},"extra":true}', { 'content-type': 'application/json; charset=utf-8' });
    expect(a.status).toBe(201);
    expect(a.body).toEqual({ id: 1 });
    expect((await readBack(lab, 1)).data).toEqual({ x: 1 });
  });
});

describe('query validation', () => {
  it('GET /poll: bad since → 400 LAB_ERR_BAD_CURSOR, bad timeout → 400 LAB_ERR_BAD_TIMEOUT', async () => {
    const lab = await startLab({ pollMaxTimeoutMs: 1000, pollTimeoutMs: 500 });
    await unchanged(lab, async () => {
      for (const since of ['-1', '1.5', 'abc', '99999999999999999999', '', '1e3', ' 1', '0x10']) {
        const a = await answer(await fetch(`${lab.url}/poll?since=${encodeURIComponent(since)}&timeout=0`));
        expect.soft(a.status, `since=${since}`).toBe(400);
        expect.soft(a.body, `since=${since}`).toMatchObject({ error: { code: 'LAB_ERR_BAD_CURSOR' } });
      }
      for (const timeout of ['-1', 'abc', '1001', '1.5', '']) {
        const a = await answer(await fetch(`${lab.url}/poll?since=0&timeout=${encodeURIComponent(timeout)}`));
        expect.soft(a.status, `timeout=${timeout}`).toBe(400);
        expect.soft(a.body, `timeout=${timeout}`).toMatchObject({ error: { code: 'LAB_ERR_BAD_TIMEOUT' } });
      }
    });
    // The boundary itself is fine (answered at once because a message is waiting).
    await post(lab, '{"data":1}', JSON_CT);
    const ok = await poll(lab.url, 'since=0&timeout=1000');
    expect(ok.status).toBe(200);
    expect(ok.body.messages.map((m) => m.id)).toEqual([1]);
  });

  it('GET /events: bad since and bad Last-Event-ID → 400 LAB_ERR_BAD_CURSOR', async () => {
    const lab = await startLab();
    for (const since of ['-1', '1.5', 'abc', '99999999999999999999']) {
      const a = await answer(await fetch(`${lab.url}/events?since=${encodeURIComponent(since)}`));
      expect.soft(a.status, `since=${since}`).toBe(400);
      expect.soft(a.body, `since=${since}`).toMatchObject({ error: { code: 'LAB_ERR_BAD_CURSOR' } });
    }
    for (const id of ['-1', '1.5', 'abc', '99999999999999999999', '']) {
      // A bad header is refused even when `since` is good: the header wins.
      const a = await answer(await fetch(`${lab.url}/events?since=0`, { headers: { 'last-event-id': id } }));
      expect.soft(a.status, `Last-Event-ID ${JSON.stringify(id)}`).toBe(400);
      expect
        .soft(a.body, `Last-Event-ID ${JSON.stringify(id)}`)
        .toMatchObject({ error: { code: 'LAB_ERR_BAD_CURSOR' } });
    }
    expect(lab.app.lab.stats.transports.sse.connections).toBe(0);
  });

  it('WS upgrade with a bad since is refused with 400 LAB_ERR_BAD_CURSOR', async () => {
    const lab = await startLab();
    for (const since of ['-1', '1.5', 'abc', '99999999999999999999']) {
      const r = await refusedUpgrade(`${lab.wsUrl}/ws?since=${encodeURIComponent(since)}`);
      expect.soft(r.status, `since=${since}`).toBe(400);
      expect.soft(r.body, `since=${since}`).toMatchObject({ error: { code: 'LAB_ERR_BAD_CURSOR' } });
    }
    expect(lab.app.lab.stats.transports.ws.connections).toBe(0);
    expect(lab.app.lab.stats.transports.ws.requests).toBe(0);
  });

  it('an unknown route answers 404 LAB_ERR_NOT_FOUND; a known path under another method 405', async () => {
    const lab = await startLab();
    expectError(await answer(await fetch(`${lab.url}/nope`)), 404, 'LAB_ERR_NOT_FOUND');
    expectError(
      await answer(await fetch(`${lab.url}/publish/extra`, { method: 'POST', headers: JSON_CT, body: '{"data":1}' })),
      404,
      'LAB_ERR_NOT_FOUND',
    );
    expectError(await answer(await fetch(`${lab.url}/poll`, { method: 'DELETE' })), 405, 'LAB_ERR_METHOD_NOT_ALLOWED');
    expect(lastId(lab)).toBe(0);
  });
});

describe('WebSocket publish', () => {
  it('acks a publish frame with and without ref, and delivers it as a message frame to the publisher and to another client', async () => {
    const lab = await startLab();
    const a = new WsClient(`${lab.wsUrl}/ws`);
    const b = new WsClient(`${lab.wsUrl}/ws`);
    await Promise.all([a.opened, b.opened]);
    await until(() => a.controlsOf('hello').length === 1 && b.controlsOf('hello').length === 1);

    a.ws.send(JSON.stringify({ type: 'publish', data: { text: 'héllo ✓' }, ref: 'r-1' }));
    await until(() => a.controlsOf('ack').length === 1);
    expect(a.controlsOf('ack')[0]).toEqual({ type: 'ack', id: 1, ref: 'r-1' });

    a.ws.send(JSON.stringify({ type: 'publish', data: [1, null, '\u0000\uFFFD'] }));
    await until(() => a.controlsOf('ack').length === 2);
    expect(a.controlsOf('ack')[1]).toEqual({ type: 'ack', id: 2 });

    a.ws.send(JSON.stringify({ type: 'publish', data: null, ref: { n: 7 } }));
    await until(() => a.controlsOf('ack').length === 3);
    expect(a.controlsOf('ack')[2]).toEqual({ type: 'ack', id: 3, ref: { n: 7 } });

    await until(() => a.messages.length === 3 && b.messages.length === 3);
    for (const c of [a, b]) {
      expect(c.ids()).toEqual([1, 2, 3]);
      expect(c.messages.map((m) => m.data)).toEqual([{ text: 'héllo ✓' }, [1, null, '\u0000\uFFFD'], null]);
      for (const m of c.messages) {
        expect(Object.keys(m).sort()).toEqual(['data', 'id', 'ts']);
        expect(typeof m.ts).toBe('number');
      }
      expect(c.controlsOf('error')).toEqual([]);
    }
    expect(lastId(lab)).toBe(3);
  });

  it('answers each bad frame with error LAB_ERR_BAD_FRAME, appends nothing and keeps the socket open', async () => {
    const lab = await startLab();
    const c = new WsClient(`${lab.wsUrl}/ws`);
    await c.opened;
    await until(() => c.controlsOf('hello').length === 1);
    const bad: { name: string; send: () => void }[] = [
      { name: 'non-JSON text', send: () => c.ws.send('not json {') },
      {
        name: 'binary frame',
        send: () => c.ws.send(Buffer.from(JSON.stringify({ type: 'publish', data: 1 })), { binary: true }),
      },
      { name: 'wrong type', send: () => c.ws.send(JSON.stringify({ type: 'nope', data: 1 })) },
      { name: 'publish without data', send: () => c.ws.send(JSON.stringify({ type: 'publish' })) },
      { name: 'JSON array', send: () => c.ws.send(JSON.stringify([{ type: 'publish', data: 1 }])) },
      { name: 'JSON null', send: () => c.ws.send('null') },
      { name: 'JSON string', send: () => c.ws.send('"publish"') },
      { name: 'empty text', send: () => c.ws.send('') },
    ];
    for (const [i, frame] of bad.entries()) {
      frame.send();
      await until(() => c.controlsOf('error').length === i + 1);
      expect(c.controlsOf('error')[i], frame.name).toMatchObject({ type: 'error', code: 'LAB_ERR_BAD_FRAME' });
      expect(c.ws.readyState, frame.name).toBe(WebSocket.OPEN);
    }
    expect(lastId(lab)).toBe(0);
    expect(c.controlsOf('ack')).toEqual([]);
    expect(c.messages).toEqual([]);

    // A bad frame with a ref gets the ref back.
    c.ws.send(JSON.stringify({ type: 'nope', ref: 'x9' }));
    await until(() => c.controlsOf('error').length === bad.length + 1);
    expect(c.controlsOf('error')[bad.length]).toMatchObject({ type: 'error', code: 'LAB_ERR_BAD_FRAME', ref: 'x9' });

    // Still open and working.
    c.ws.send(JSON.stringify({ type: 'publish', data: 'after', ref: 1 }));
    await until(() => c.controlsOf('ack').length === 1 && c.messages.length === 1);
    expect(c.controlsOf('ack')[0]).toEqual({ type: 'ack', id: 1, ref: 1 });
    expect(c.messages[0]).toMatchObject({ id: 1, data: 'after' });
    expect(c.closeCode).toBeUndefined();
  });

  it('closes with 1009 on a frame over maxPayloadBytes and appends nothing; a frame of exactly the limit is fine', async () => {
    const lab = await startLab({ maxPayloadBytes: 1024 });
    const ok = new WsClient(`${lab.wsUrl}/ws`);
    await ok.opened;
    // {"type":"publish","data":"…"} is 28 bytes of framing plus the string.
    const exact = JSON.stringify({ type: 'publish', data: 'e'.repeat(1024 - 28) });
    expect(Buffer.byteLength(exact)).toBe(1024);
    ok.ws.send(exact);
    await until(() => ok.controlsOf('ack').length === 1);
    expect(ok.controlsOf('ack')[0]).toEqual({ type: 'ack', id: 1 });

    const big = new WsClient(`${lab.wsUrl}/ws`);
    await big.opened;
    await until(() => big.controlsOf('hello').length === 1);
    big.ws.send(JSON.stringify({ type: 'publish', data: 'x'.repeat(1024 - 28 + 1) }));
    await big.closed;
    expect(big.closeCode).toBe(1009);
    expect(big.controlsOf('ack')).toEqual([]);
    expect(lastId(lab)).toBe(1);
    // The other client is unaffected.
    expect(ok.ws.readyState).toBe(WebSocket.OPEN);
    await until(() => lab.app.lab.stats.transports.ws.connections === 1);
  });
});
