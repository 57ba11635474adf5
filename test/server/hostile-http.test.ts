/**
 * Hostile and odd HTTP: HEAD on every route, malformed requests that Node's parser refuses, router
 * refusals (bad URL encoding, over-long parameters, unserved methods), the Host check against DNS
 * rebinding on a loopback bind, and the PUBLISH_TOKEN rule. Requests are written byte for byte on raw
 * `net` sockets and the answers parsed; every refusal must carry a LAB_ERR_* code in the JSON body.
 */
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildApp } from '../../server/app.js';
import { MIN_PUBLISH_TOKEN_LENGTH, readSettings, resolveConfig } from '../../server/config.js';
import { ConfigError } from '../../server/errors.js';
import { WsClient, captureLog, refusedUpgrade, startLab, until, type RunningLab } from '../helpers/lab.js';

const TOKEN = 'hostile-http-test-token';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  /** Everything after the header block (for HEAD: must be empty). */
  body: string;
  /** Every byte received, as latin1. */
  raw: string;
}

function parseAnswer(raw: string): RawAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete answer: ${JSON.stringify(raw)}`);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body: raw.slice(end + 4), raw };
}

/** Port of a running lab. */
const portOf = (lab: RunningLab): number => Number(new URL(lab.url).port);

/**
 * Writes `request` (latin1, byte for byte) on a fresh connection and resolves with the parsed answer
 * once the server closes the connection (every request here asks for, or causes, a close).
 */
function rawExchange(port: number, request: string | string[]): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (raw += chunk));
    socket.on('error', () => {}); // a reset after the answer still leaves the answer to parse
    socket.on('close', () => {
      try {
        resolve(parseAnswer(raw));
      } catch (err) {
        reject(err as Error);
      }
    });
    for (const part of Array.isArray(request) ? request : [request]) socket.write(part, 'latin1');
  });
}

const json = (a: RawAnswer): unknown => JSON.parse(a.body);

/** An answer that refuses with `status` and `code`, JSON body, and closes the connection. */
function expectRefusal(a: RawAnswer, status: number, code: string, label: string): void {
  expect.soft(a.status, label).toBe(status);
  expect.soft(a.headers['content-type'], label).toMatch(/^application\/json/);
  expect.soft(json(a), label).toMatchObject({ error: { code } });
}

describe('HEAD', () => {
  it('HEAD /events answers 200 with the SSE headers and no body, and opens no stream', async () => {
    const lab = await startLab();
    const a = await rawExchange(portOf(lab), 'HEAD /events HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(a.headers['cache-control']).toBe('no-cache');
    expect(a.headers['x-accel-buffering']).toBe('no');
    expect(a.body).toBe('');
    const sse = lab.app.lab.stats.transports.sse;
    expect(sse.connections).toBe(0);
    expect(sse.requests).toBe(0);
    // Checked like GET: a bad cursor is refused (HEAD: status only).
    const bad = await rawExchange(
      portOf(lab),
      'HEAD /events?since=x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(bad.status).toBe(400);
    expect(bad.body).toBe('');
  });

  it('HEAD /poll answers at once with the headers of an empty answer: nothing held, no body', async () => {
    // The default hold is 25 s: an answer before it means HEAD was not held.
    const lab = await startLab();
    const get = await fetch(`${lab.url}/poll?since=0&timeout=0`);
    const empty = await get.text();
    const a = await rawExchange(
      portOf(lab),
      'HEAD /poll?since=0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe(get.headers.get('content-type'));
    expect(a.headers['cache-control']).toBe('no-store');
    expect(a.headers['content-length']).toBe(String(Buffer.byteLength(empty)));
    expect(a.body).toBe('');
    expect(lab.app.lab.stats.transports.poll.connections).toBe(0);
    const bad = await rawExchange(
      portOf(lab),
      'HEAD /poll?timeout=-1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(bad.status).toBe(400);
    expect(bad.body).toBe('');
  });

  it('HEAD on the other GET routes answers like GET without the body', async () => {
    const lab = await startLab();
    for (const path of ['/stats', '/time', '/control', '/reports', '/']) {
      const a = await rawExchange(portOf(lab), `HEAD ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      expect.soft(a.status, path).toBe(200);
      expect.soft(a.headers['content-length'], path).toMatch(/^\d+$/);
      expect.soft(a.body, path).toBe('');
    }
  });
});

describe('malformed requests get a LAB_ERR_* answer', () => {
  const H = 'Host: localhost\r\n';
  const CT = 'Content-Type: application/json\r\n';
  const cases: [string, string][] = [
    [
      'bad chunk size',
      `POST /publish HTTP/1.1\r\n${H}${CT}Transfer-Encoding: chunked\r\n\r\nzz\r\n{"data":1}\r\n0\r\n\r\n`,
    ],
    [
      'Transfer-Encoding and Content-Length',
      `POST /publish HTTP/1.1\r\n${H}${CT}Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      'two Content-Lengths',
      `POST /publish HTTP/1.1\r\n${H}${CT}Content-Length: 10\r\nContent-Length: 11\r\n\r\n{"data":1}`,
    ],
    ['NUL in a header value', `GET /stats HTTP/1.1\r\n${H}X-Odd: a\x00b\r\n\r\n`],
    ['space before the colon', `GET /stats HTTP/1.1\r\n${H}X-Odd : 1\r\n\r\n`],
    ['unknown method', `FOO /stats HTTP/1.1\r\n${H}\r\n`],
    ['bad HTTP version', `GET /stats HTTP/9.Z\r\n${H}\r\n`],
    ['not HTTP at all', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n'],
  ];
  for (const [name, request] of cases) {
    it(`${name} → 400 LAB_ERR_BAD_REQUEST, Connection: close`, async () => {
      const lab = await startLab();
      const a = await rawExchange(portOf(lab), request);
      expectRefusal(a, 400, 'LAB_ERR_BAD_REQUEST', name);
      expect(a.headers.connection).toBe('close');
      expect(lab.app.lab.feed.info().lastId).toBe(0);
    });
  }

  it('headers larger than Node accepts → 431 LAB_ERR_HEADERS_TOO_LARGE', async () => {
    const lab = await startLab();
    const a = await rawExchange(
      portOf(lab),
      `GET /stats HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expectRefusal(a, 431, 'LAB_ERR_HEADERS_TOO_LARGE', '431');
    expect(a.headers.connection).toBe('close');
  });

  it('headers that do not arrive in time → 408 LAB_ERR_REQUEST_TIMEOUT', async () => {
    const app = await buildApp({ config: { demo: false } });
    onTestFinished(() => app.close());
    // Node checks for expired requests every connectionsCheckingInterval, set up on 'listening'.
    app.server.headersTimeout = 200;
    (app.server as typeof app.server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 50;
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const a = await rawExchange(Number(new URL(address).port), 'GET /stats HTTP/1.1\r\nHost: localhost\r\n');
    expectRefusal(a, 408, 'LAB_ERR_REQUEST_TIMEOUT', '408');
    expect(a.headers.connection).toBe('close');
  });

  it('HTTP/1.1 without Host → 400 LAB_ERR_BAD_REQUEST', async () => {
    const lab = await startLab();
    const a = await rawExchange(portOf(lab), 'GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n');
    expectRefusal(a, 400, 'LAB_ERR_BAD_REQUEST', 'no Host');
  });

  it('garbage after a held poll on the same connection: the poll is refused with 400 LAB_ERR_BAD_REQUEST', async () => {
    const lab = await startLab();
    const a = await rawExchange(
      portOf(lab),
      'GET /poll HTTP/1.1\r\nHost: localhost\r\n\r\nGARBAGE\x00 / HTTP/1.1\r\n\r\n',
    );
    expectRefusal(a, 400, 'LAB_ERR_BAD_REQUEST', 'pipelined');
    expect(a.raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('garbage after a started SSE stream: nothing is written into the stream, the connection is cut', async () => {
    const lab = await startLab();
    const socket = net.connect(portOf(lab), '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let raw = '';
    let closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (raw += c));
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    socket.write('GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await until(() => raw.includes('event: hello'));
    socket.write('GARBAGE\x00 / HTTP/1.1\r\n\r\n');
    await until(() => closed);
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    await until(() => lab.app.lab.stats.transports.sse.connections === 0);
  });
});

describe('router refusals get a LAB_ERR_* answer', () => {
  it('a bad percent-encoding in a path parameter → 400 LAB_ERR_BAD_REQUEST', async () => {
    const lab = await startLab();
    const a = await rawExchange(
      portOf(lab),
      'GET /reports/%FF HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expectRefusal(a, 400, 'LAB_ERR_BAD_REQUEST', '%FF');
  });

  it('a path parameter longer than the router accepts → 414 LAB_ERR_URI_TOO_LONG', async () => {
    const lab = await startLab();
    const a = await rawExchange(
      portOf(lab),
      `GET /reports/${'a'.repeat(500)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
    );
    expectRefusal(a, 414, 'LAB_ERR_URI_TOO_LONG', 'long param');
  });

  it('a method no route serves → 405 LAB_ERR_METHOD_NOT_ALLOWED with Allow on a known path, 404 LAB_ERR_NOT_FOUND elsewhere', async () => {
    const lab = await startLab();
    const ask = (line: string) =>
      rawExchange(portOf(lab), `${line} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    for (const line of ['DELETE /stats', 'PROPFIND /stats', 'OPTIONS /stats', 'PUT /poll', 'PURGE /events']) {
      const a = await ask(line);
      expectRefusal(a, 405, 'LAB_ERR_METHOD_NOT_ALLOWED', line);
      expect.soft(a.headers.allow, line).toBe('GET, HEAD');
    }
    const p = await ask('GET /publish');
    expectRefusal(p, 405, 'LAB_ERR_METHOD_NOT_ALLOWED', 'GET /publish');
    expect(p.headers.allow).toBe('POST');
    const r = await ask('PATCH /reports/x');
    expectRefusal(r, 405, 'LAB_ERR_METHOD_NOT_ALLOWED', 'PATCH /reports/x');
    for (const line of ['PROPFIND /nowhere', 'GET /nowhere', 'DELETE /reports/x/y/z/w'])
      expectRefusal(await ask(line), 404, 'LAB_ERR_NOT_FOUND', line);
  });

  it('CONNECT → 405 LAB_ERR_METHOD_NOT_ALLOWED, Connection: close', async () => {
    const lab = await startLab();
    const a = await rawExchange(portOf(lab), 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectRefusal(a, 405, 'LAB_ERR_METHOD_NOT_ALLOWED', 'CONNECT');
    expect(a.headers.connection).toBe('close');
  });
});

describe('Host check on a loopback bind (DNS rebinding)', () => {
  const request = (method: string, path: string, host: string, body = '') =>
    `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

  it('refuses a foreign Host with 403 LAB_ERR_HOST_FORBIDDEN on every route', async () => {
    const lab = await startLab();
    const port = portOf(lab);
    const routes: [string, string, string?][] = [
      ['GET', '/stats'],
      ['GET', '/poll?since=0&timeout=0'],
      ['GET', '/events'],
      ['POST', '/publish', '{"data":1}'],
      ['POST', '/control/burst', '{"count":1}'],
      ['GET', '/'],
      ['GET', '/reports'],
      ['GET', '/nowhere'],
      ['DELETE', '/stats'],
    ];
    for (const host of [
      'evil.example',
      `evil.example:${port}`,
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      '',
      'local host',
    ]) {
      for (const [method, path, body] of routes) {
        const label = `${method} ${path} Host: ${host}`;
        expectRefusal(await rawExchange(port, request(method, path, host, body)), 403, 'LAB_ERR_HOST_FORBIDDEN', label);
      }
    }
    expect(lab.app.lab.feed.info().lastId).toBe(0);
    expect(lab.app.lab.stats.transports.sse.requests).toBe(0);
  });

  it('accepts loopback names with any port, and ALLOWED_HOSTS entries (with their port, if given)', async () => {
    const lab = await startLab({ allowedHosts: ['lab.test', 'Other.Test:8080', '[fd00::1]'] });
    const port = portOf(lab);
    const loopback = [
      'localhost',
      `localhost:${port}`,
      'LOCALHOST:1',
      `127.0.0.1:${port}`,
      '127.0.0.1',
      `[::1]:${port}`,
      '[::1]',
    ];
    for (const host of [...loopback, 'lab.test', 'lab.test:9', 'other.test:8080', '[fd00::1]:80']) {
      const a = await rawExchange(port, request('GET', '/stats', host));
      expect.soft(a.status, host).toBe(200);
    }
    for (const host of ['other.test', 'other.test:8081', 'sub.lab.test', 'lab.test.evil.example', '[fd00::2]']) {
      expectRefusal(await rawExchange(port, request('GET', '/stats', host)), 403, 'LAB_ERR_HOST_FORBIDDEN', host);
    }
  });

  it('refuses a WebSocket upgrade with a foreign Host with 403 LAB_ERR_HOST_FORBIDDEN, accepts localhost', async () => {
    // The refused upgrade's socket must be closed too: otherwise the lab's close() never finishes.
    const lab = await startLab();
    const r = await refusedUpgrade(`${lab.wsUrl}/ws`, { headers: { host: 'evil.example' } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: { code: 'LAB_ERR_HOST_FORBIDDEN' } });
    expect(lab.app.lab.stats.transports.ws.requests).toBe(0);
    const ok = new WsClient(`${lab.wsUrl}/ws`, { headers: { host: `localhost:${portOf(lab)}` } });
    await ok.opened;
    await until(() => ok.controlsOf('hello').length === 1);
  });

  it('is not checked on a non-loopback bind', async () => {
    const lab = await startLab({ host: '0.0.0.0', publishToken: TOKEN });
    const a = await rawExchange(portOf(lab), request('GET', '/stats', 'evil.example'));
    expect(a.status).toBe(200);
  });
});

/** Runs `fn`, expecting a ConfigError; returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('configuration: allowedHosts and PUBLISH_TOKEN', () => {
  it('resolveConfig accepts host names with an optional port and refuses anything else, naming allowedHosts', () => {
    const good = [
      'lab.test',
      'lab.test:8080',
      'LAB.example.com',
      '192.168.1.5',
      '192.168.1.5:3000',
      '[fd00::1]',
      '[fd00::1]:3000',
      'my_box',
    ];
    expect(resolveConfig({ allowedHosts: good }).allowedHosts).toEqual(good);
    const bad = [
      'http://lab.test',
      'lab.test/path',
      'lab.test:0',
      'lab.test:65536',
      'lab.test:',
      'lab .test',
      '',
      'user@lab.test',
    ];
    bad.push('*.lab.test', '[fd00::1', '[not-ip]', 'fd00::1', '-lab.test', 'lab..test', 'lab.test?x');
    for (const entry of bad) {
      expect.soft(configError(() => resolveConfig({ allowedHosts: [entry] })).setting, entry).toBe('allowedHosts');
    }
    expect(configError(() => resolveConfig({ allowedHosts: 'lab.test' as unknown as string[] })).setting).toBe(
      'allowedHosts',
    );
  });

  it('ALLOWED_HOSTS and --allowed-hosts are read as lists', () => {
    expect(readSettings({ ALLOWED_HOSTS: 'a.test, b.test:81,,' }, [])).toEqual({
      allowedHosts: ['a.test', 'b.test:81'],
    });
    expect(readSettings({ ALLOWED_HOSTS: 'a.test' }, ['--allowed-hosts', 'c.test'])).toEqual({
      allowedHosts: ['c.test'],
    });
  });

  it(`a set PUBLISH_TOKEN needs ${MIN_PUBLISH_TOKEN_LENGTH}+ characters and no surrounding whitespace; the error names it and hides it`, () => {
    const ok = 'k'.repeat(MIN_PUBLISH_TOKEN_LENGTH);
    for (const host of ['127.0.0.1', '0.0.0.0']) {
      for (const token of [
        ' ',
        '   \t ',
        ' '.repeat(MIN_PUBLISH_TOKEN_LENGTH + 4),
        'short',
        ok.slice(1),
        ` ${ok}`,
        `${ok}\n`,
        `\t${ok}`,
      ]) {
        const e = configError(() => resolveConfig({ host, publishToken: token }));
        expect.soft(e.setting, `${host} ${JSON.stringify(token)}`).toBe('PUBLISH_TOKEN');
        if (token.trim() !== '') expect.soft(e.message).not.toContain(token.trim());
      }
      expect(resolveConfig({ host, publishToken: ok }).publishToken).toBe(ok);
    }
    // Still required on a non-loopback bind; optional on loopback.
    expect(configError(() => resolveConfig({ host: '0.0.0.0' })).setting).toBe('PUBLISH_TOKEN');
    expect(resolveConfig({ host: '127.0.0.1' }).publishToken).toBe('');
  });
});

describe('refusals outside the routes carry a code too', () => {
  it('the dashboard files: a range outside the file → 416, a failed If-Match → 412, each with its code (never a 500)', async () => {
    const lab = await startLab();
    const range = await fetch(`${lab.url}/app.js`, { headers: { range: 'bytes=99999999-' } });
    expect(range.status).toBe(416);
    expect(await range.json()).toMatchObject({ error: { code: 'LAB_ERR_RANGE_NOT_SATISFIABLE' } });
    const ifMatch = await fetch(`${lab.url}/app.js`, { headers: { 'if-match': '"not-this-one"' } });
    expect(ifMatch.status).toBe(412);
    expect(await ifMatch.json()).toMatchObject({ error: { code: 'LAB_ERR_PRECONDITION_FAILED' } });
    expect((await fetch(`${lab.url}/app.js`, { headers: { range: 'bytes=0-3' } })).status).toBe(206);
  });

  it('Expect other than 100-continue → 417 LAB_ERR_EXPECTATION_FAILED', async () => {
    const lab = await startLab();
    const a = await rawExchange(portOf(lab), 'GET /time HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\n\r\n');
    expectRefusal(a, 417, 'LAB_ERR_EXPECTATION_FAILED', 'Expect');
  });
});

describe('client mistakes are logged once, at info, without a stack', () => {
  it('an aborted upload is an info line (no error-level line, no 500)', async () => {
    const { stream, lines } = captureLog();
    const lab = await startLab({}, { logger: { level: 'info', stream } });
    const socket = net.connect(portOf(lab), '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      'POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"data":',
    );
    await until(() => lines.some((l) => /incoming request/.test(l.msg)));
    socket.destroy();
    await until(() => lines.some((l) => l.msg.startsWith('client mistake')));
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    // One line for the one mistake: the parser's end-of-stream error for the same hang-up is not another.
    const mistakes = lines.filter((l) => l.msg.startsWith('client mistake'));
    expect(mistakes).toEqual([
      expect.objectContaining({ level: 30, msg: 'client mistake: request aborted by the client' }),
    ]);
  });
});
