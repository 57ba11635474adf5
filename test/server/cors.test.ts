/**
 * CORS for /poll, /events, /publish and /send (server/cors.ts): ALLOWED_ORIGINS get preflights answered and
 * Access-Control-Allow-Origin on every answer, errors included; anyone else — other origins, the
 * server's own, clients without Origin — gets the answers of before, byte for byte.
 *
 * First over HTTP (raw sockets where bytes are compared, fetch elsewhere, node:http2 for HTTP/2), then
 * in Chromium: a page served from another port long-polls, streams and publishes against a lab that
 * lists its origin, and is refused by one that does not. Waits are for conditions, never sleeps.
 * Chromium missing: its suite fails under CI and is skipped elsewhere (as in dashboard.test.ts).
 */
import { once } from 'node:events';
import http, { type Server } from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULTS, readSettings, resolveConfig } from '../../server/config.js';
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECONDS, CORS_METHODS } from '../../server/cors.js';
import { ConfigError } from '../../server/errors.js';
import { MemoryFeed } from '../../server/feed/memory.js';
import { publish, startLab, type RunningLab } from '../helpers/lab.js';
import { CHROMIUM, HAVE_CHROMIUM, pageErrors, requirePart } from '../helpers/real-parts.js';

const PAGE = 'https://app.example';
const OTHER = 'https://evil.example';
const TOKEN = 's3cret-s3cret-s3cret';
const CORS_PATHS = ['/poll', '/events', '/publish', '/send'] as const;

/** What a listed origin's preflight must be answered with (credentials off). */
const PREFLIGHT_HEADERS = {
  'access-control-allow-origin': PAGE,
  'access-control-allow-methods': 'GET, HEAD, POST',
  'access-control-allow-headers': 'Content-Type, Authorization, Last-Event-ID, Cache-Control, Idempotency-Key',
  'access-control-max-age': '600',
  vary: 'Origin',
};

/** The CORS headers of an answer (and Vary, which only CORS adds here). */
function corsHeaders(
  headers: Headers | Record<string, string | string[] | number | undefined>,
): Record<string, string> {
  const entries = headers instanceof Headers ? [...headers] : Object.entries(headers).map(([k, v]) => [k, String(v)]);
  return Object.fromEntries(entries.filter(([k]) => k!.startsWith('access-control-') || k === 'vary')) as Record<
    string,
    string
  >;
}

const preflight = (url: string, path: string, origin: string, method = 'POST', headers = 'content-type') =>
  fetch(`${url}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });

/** A GET of the stream's headers only (the stream is dropped at once). */
async function eventsHeaders(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers }> {
  const abort = new AbortController();
  const res = await fetch(`${url}/events`, { headers, signal: abort.signal });
  abort.abort();
  await res.body?.cancel().catch(() => {});
  return { status: res.status, headers: res.headers };
}

/** One HTTP/1.1 exchange on a raw socket (Connection: close): the answer's bytes, with its Date line blanked. */
function rawAnswer(lab: RunningLab, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const { port } = new URL(lab.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (raw += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(raw.replace(/^Date: .*\r\n/im, 'Date: -\r\n')));
    socket.write(`${[...lines, `Host: 127.0.0.1:${port}`, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1');
  });
}

describe('CORS preflight', () => {
  it('answers a listed origin 204 on /poll, /events and /publish, with the methods, headers and max age', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE] });
    for (const path of CORS_PATHS) {
      for (const [method, requested] of [
        ['POST', 'content-type'],
        ['GET', 'last-event-id'],
        ['POST', 'authorization, content-type'],
      ] as const) {
        const res = await preflight(lab.url, path, PAGE, method, requested);
        const label = `${path} ${method} ${requested}`;
        expect.soft(res.status, label).toBe(204);
        expect.soft(corsHeaders(res.headers), label).toEqual(PREFLIGHT_HEADERS);
        expect.soft(res.headers.get('content-length'), label).toBe('0');
        expect.soft(await res.text(), label).toBe('');
      }
    }
    // The constants the README quotes are the ones on the wire.
    expect(PREFLIGHT_HEADERS['access-control-allow-methods']).toBe(CORS_METHODS.join(', '));
    expect(PREFLIGHT_HEADERS['access-control-allow-headers']).toBe(CORS_ALLOWED_HEADERS.join(', '));
    expect(PREFLIGHT_HEADERS['access-control-max-age']).toBe(String(CORS_MAX_AGE_SECONDS));
  });

  it('answers anyone else as before CORS: 405 LAB_ERR_METHOD_NOT_ALLOWED (404 off the routes), no CORS header', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE] });
    const cases: [string, string, number, string | null][] = [
      // An origin not listed, on each CORS path.
      ['/poll', OTHER, 405, 'GET, HEAD'],
      ['/events', OTHER, 405, 'GET, HEAD'],
      ['/publish', OTHER, 405, 'POST'],
      // A listed origin, off the CORS paths.
      ['/stats', PAGE, 405, 'GET, HEAD'],
      ['/', PAGE, 405, 'GET, HEAD'],
      ['/nowhere', PAGE, 404, null],
      ['/poll/', PAGE, 404, null],
    ];
    for (const [path, origin, status, allow] of cases) {
      const res = await preflight(lab.url, path, origin);
      const label = `${origin} ${path}`;
      expect.soft(res.status, label).toBe(status);
      expect.soft(res.headers.get('allow'), label).toBe(allow);
      expect.soft(corsHeaders(res.headers), label).toEqual({});
      expect
        .soft(await res.json(), label)
        .toMatchObject({ error: { code: status === 405 ? 'LAB_ERR_METHOD_NOT_ALLOWED' : 'LAB_ERR_NOT_FOUND' } });
    }
    // No ALLOWED_ORIGINS at all: the same.
    const plain = await startLab();
    const res = await preflight(plain.url, '/publish', PAGE);
    expect(res.status).toBe(405);
    expect(corsHeaders(res.headers)).toEqual({});
  });

  it("a listed origin's OPTIONS without Access-Control-Request-Method is no preflight: 405 as before, with ACAO", async () => {
    const lab = await startLab({ allowedOrigins: [PAGE] });
    const res = await fetch(`${lab.url}/poll`, { method: 'OPTIONS', headers: { origin: PAGE } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(corsHeaders(res.headers)).toEqual({ 'access-control-allow-origin': PAGE, vary: 'Origin' });
    expect(await res.json()).toMatchObject({ error: { code: 'LAB_ERR_METHOD_NOT_ALLOWED' } });
  });
});

describe('CORS on answers', () => {
  it('a listed origin gets ACAO (its own origin, never *) and Vary: Origin on /poll, HEAD /poll, /events, HEAD /events and /publish', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE, 'http://localhost:8080'] });
    const expected = { 'access-control-allow-origin': PAGE, vary: 'Origin' };
    const poll = await fetch(`${lab.url}/poll?since=0&timeout=0`, { headers: { origin: PAGE } });
    expect(poll.status).toBe(200);
    expect(corsHeaders(poll.headers)).toEqual(expected);
    const head = await fetch(`${lab.url}/poll?since=0`, { method: 'HEAD', headers: { origin: PAGE } });
    expect(corsHeaders(head.headers)).toEqual(expected);
    // SSE hijacks its reply: the headers must still reach the stream's own writeHead.
    const events = await eventsHeaders(lab.url, { origin: PAGE });
    expect(events.status).toBe(200);
    expect(events.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(corsHeaders(events.headers)).toEqual(expected);
    const eventsHead = await fetch(`${lab.url}/events`, { method: 'HEAD', headers: { origin: PAGE } });
    expect(corsHeaders(eventsHead.headers)).toEqual(expected);
    const pub = await fetch(`${lab.url}/publish`, {
      method: 'POST',
      headers: { origin: PAGE, 'content-type': 'application/json' },
      body: '{"data":1}',
    });
    expect(pub.status).toBe(201);
    // A publish's or send's answer also shows the page Retry-After and Idempotent-Replayed.
    const exposed = { ...expected, 'access-control-expose-headers': CORS_EXPOSED_HEADERS.join(', ') };
    expect(corsHeaders(pub.headers)).toEqual(exposed);
    const sent = await fetch(`${lab.url}/send`, {
      method: 'POST',
      headers: { origin: PAGE, 'content-type': 'application/json', 'idempotency-key': 'k1' },
      body: '{"data":1}',
    });
    expect(sent.status).toBe(201);
    expect(corsHeaders(sent.headers)).toEqual(exposed);
    // The other listed origin gets its own.
    const other = await fetch(`${lab.url}/poll?since=0&timeout=0`, { headers: { origin: 'http://localhost:8080' } });
    expect(other.headers.get('access-control-allow-origin')).toBe('http://localhost:8080');
  });

  it("an origin not listed, the server's own, no Origin, and a listed origin off the CORS routes get no CORS header", async () => {
    const lab = await startLab({ allowedOrigins: [PAGE], corsCredentials: true });
    const own = new URL(lab.url).origin;
    for (const headers of [
      { origin: OTHER },
      { origin: own },
      {},
      { origin: `${PAGE}:443` },
      { origin: 'null' },
      { origin: `${PAGE}, ${PAGE}` },
    ]) {
      const label = JSON.stringify(headers);
      const poll = await fetch(`${lab.url}/poll?since=0&timeout=0`, { headers });
      expect.soft(corsHeaders(poll.headers), label).toEqual({});
      expect.soft(corsHeaders((await eventsHeaders(lab.url, headers)).headers), label).toEqual({});
      const pub = await fetch(`${lab.url}/publish`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{"data":1}',
      });
      expect.soft(pub.status, label).toBe(201);
      expect.soft(corsHeaders(pub.headers), label).toEqual({});
    }
    for (const path of ['/stats', '/', '/nowhere']) {
      const res = await fetch(`${lab.url}${path}`, { headers: { origin: PAGE } });
      expect.soft(corsHeaders(res.headers), path).toEqual({});
    }
  });

  it('same-origin and Origin-less answers are byte-identical to those of a lab without CORS settings', async () => {
    // One feed under both labs: the same epoch and ids, so the bodies can match too.
    const feed = new MemoryFeed({ retentionMessages: 100 });
    onTestFinished(() => feed.close());
    await feed.append({ n: 1 });
    const before = await startLab({}, { feed });
    const after = await startLab({ allowedOrigins: [PAGE], corsCredentials: true }, { feed });
    const requests = (lab: RunningLab): [string, string[]][] => {
      const own = `Origin: ${new URL(lab.url).origin}`;
      return [
        ['poll', ['GET /poll?since=0&timeout=0 HTTP/1.1']],
        ['poll, own origin', ['GET /poll?since=0&timeout=0 HTTP/1.1', own]],
        ['poll, other origin', ['GET /poll?since=0&timeout=0 HTTP/1.1', `Origin: ${OTHER}`]],
        ['HEAD poll', ['HEAD /poll?since=0 HTTP/1.1']],
        ['HEAD events', ['HEAD /events?since=0 HTTP/1.1']],
        ['HEAD events, own origin', ['HEAD /events?since=0 HTTP/1.1', own]],
        ['bad cursor', ['GET /poll?since=x HTTP/1.1', own]],
        [
          'preflight, other origin',
          ['OPTIONS /publish HTTP/1.1', `Origin: ${OTHER}`, 'Access-Control-Request-Method: POST'],
        ],
      ];
    };
    const a = requests(before);
    const b = requests(after);
    for (let i = 0; i < a.length; i++) {
      const [label] = a[i]!;
      const was = await rawAnswer(before, a[i]![1]);
      const is = await rawAnswer(after, b[i]![1]);
      expect.soft(is, label).toBe(was);
      expect.soft(was.toLowerCase(), label).not.toMatch(/access-control-|vary/);
    }
    // And what that is, for poll: the header set of before CORS.
    const poll = await rawAnswer(after, ['GET /poll?since=0&timeout=0 HTTP/1.1']);
    const names = poll
      .split('\r\n\r\n')[0]!
      .split('\r\n')
      .slice(1)
      .map((l) => l.split(':')[0]!.toLowerCase());
    expect(names.sort()).toEqual(['cache-control', 'connection', 'content-length', 'content-type', 'date']);
  });

  it('error answers to a listed origin carry ACAO, so the page can read the LAB_ERR_* code', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE], publishToken: TOKEN, maxPayloadBytes: 1024 });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const json = { 'content-type': 'application/json' };
    const cases: [string, string, RequestInit & { headers?: Record<string, string> }, number, string][] = [
      ['bad cursor', '/poll?since=x', {}, 400, 'LAB_ERR_BAD_CURSOR'],
      ['bad timeout', '/poll?timeout=-1', {}, 400, 'LAB_ERR_BAD_TIMEOUT'],
      ['SSE bad cursor', '/events?since=x', {}, 400, 'LAB_ERR_BAD_CURSOR'],
      ['no token', '/publish', { method: 'POST', headers: json, body: '{"data":1}' }, 401, 'LAB_ERR_UNAUTHORIZED'],
      [
        'bad JSON',
        '/publish',
        { method: 'POST', headers: { ...json, ...auth }, body: '{nope' },
        400,
        'LAB_ERR_INVALID_JSON',
      ],
      [
        'no data',
        '/publish',
        { method: 'POST', headers: { ...json, ...auth }, body: '{}' },
        400,
        'LAB_ERR_MISSING_DATA',
      ],
      [
        'text/plain',
        '/publish',
        { method: 'POST', headers: { 'content-type': 'text/plain', ...auth }, body: 'x' },
        415,
        'LAB_ERR_UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        'too large',
        '/publish',
        { method: 'POST', headers: { ...json, ...auth }, body: JSON.stringify({ data: 'x'.repeat(2000) }) },
        413,
        'LAB_ERR_PAYLOAD_TOO_LARGE',
      ],
      ['wrong method', '/poll', { method: 'PUT', body: '' }, 405, 'LAB_ERR_METHOD_NOT_ALLOWED'],
    ];
    for (const [label, path, init, status, code] of cases) {
      for (const origin of [PAGE, OTHER]) {
        const res = await fetch(`${lab.url}${path}`, { ...init, headers: { ...init.headers, origin } });
        expect.soft(res.status, `${label} ${origin}`).toBe(status);
        expect.soft(await res.json(), `${label} ${origin}`).toMatchObject({ error: { code } });
        const listed = { 'access-control-allow-origin': PAGE, vary: 'Origin' };
        const exposed = path === '/publish' ? { 'access-control-expose-headers': CORS_EXPOSED_HEADERS.join(', ') } : {};
        expect
          .soft(corsHeaders(res.headers), `${label} ${origin}`)
          .toEqual(origin === PAGE ? { ...listed, ...exposed } : {});
      }
    }
    // The Host check (DNS rebinding) runs after CORS: its 403 is readable by a listed page too.
    const host = await rawAnswer(lab, ['GET /poll HTTP/1.1', `Origin: ${PAGE}`, 'Host: lab.example']);
    expect(host).toMatch(/^HTTP\/1\.1 403 /);
    expect(host).toContain('LAB_ERR_HOST_FORBIDDEN');
    expect(host).toContain(`access-control-allow-origin: ${PAGE}\r\n`);
  });
});

describe('CORS credentials', () => {
  it('off by default: no Access-Control-Allow-Credentials on preflights or answers', async () => {
    expect(DEFAULTS.corsCredentials).toBe(false);
    const lab = await startLab({ allowedOrigins: [PAGE] });
    expect((await preflight(lab.url, '/publish', PAGE)).headers.get('access-control-allow-credentials')).toBeNull();
    expect(
      (await fetch(`${lab.url}/poll?timeout=0`, { headers: { origin: PAGE } })).headers.get(
        'access-control-allow-credentials',
      ),
    ).toBeNull();
  });

  it('on with corsCredentials: `true` for listed origins (with their exact origin), nothing for the others', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE], corsCredentials: true });
    const pre = await preflight(lab.url, '/publish', PAGE);
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre.headers)).toEqual({ ...PREFLIGHT_HEADERS, 'access-control-allow-credentials': 'true' });
    const poll = await fetch(`${lab.url}/poll?timeout=0`, { headers: { origin: PAGE } });
    expect(corsHeaders(poll.headers)).toEqual({
      'access-control-allow-origin': PAGE,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    });
    const events = await eventsHeaders(lab.url, { origin: PAGE });
    expect(events.headers.get('access-control-allow-credentials')).toBe('true');
    expect(events.headers.get('access-control-allow-origin')).toBe(PAGE);
    const other = await fetch(`${lab.url}/poll?timeout=0`, { headers: { origin: OTHER } });
    expect(corsHeaders(other.headers)).toEqual({});
  });

  it('is read from CORS_CREDENTIALS and --cors-credentials; anything but a boolean is a ConfigError', () => {
    expect(readSettings({ CORS_CREDENTIALS: '1' }, [])).toEqual({ corsCredentials: true });
    expect(readSettings({ CORS_CREDENTIALS: 'on' }, ['--no-cors-credentials'])).toEqual({ corsCredentials: false });
    expect(readSettings({}, ['--cors-credentials'])).toEqual({ corsCredentials: true });
    expect(() => readSettings({ CORS_CREDENTIALS: 'maybe' }, [])).toThrow(ConfigError);
    expect(resolveConfig().corsCredentials).toBe(false);
    expect(resolveConfig({ corsCredentials: true }).corsCredentials).toBe(true);
    try {
      resolveConfig({ corsCredentials: 'yes' as unknown as boolean });
      expect.fail('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).setting).toBe('corsCredentials');
    }
    // `*` is no origin: it can never be listed, so it can never go out with credentials.
    expect(() => resolveConfig({ allowedOrigins: ['*'], corsCredentials: true })).toThrow(ConfigError);
  });
});

describe('CORS over HTTP/2', () => {
  /** One request on an h2 session: status, headers and body (a stream is closed after its headers). */
  function h2Request(session: ClientHttp2Session, headers: http2.OutgoingHttpHeaders, stream = false) {
    return new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = session.request(headers, { endStream: true });
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => {
        if (stream) {
          req.close();
          resolve({ status: Number(h[':status']), headers: h, body });
          return;
        }
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status: Number(h[':status']), headers: h, body }));
      });
      req.on('error', reject);
    });
  }

  it('preflights, polls, streams and errors carry the same CORS headers over h2; own origin and no Origin none', async () => {
    const lab = await startLab({ http2: true, allowedOrigins: [PAGE] });
    const session = http2.connect(lab.url, { rejectUnauthorized: false });
    onTestFinished(() => {
      session.destroy();
    });
    const expected = { 'access-control-allow-origin': PAGE, vary: 'Origin' };
    const pre = await h2Request(session, {
      ':method': 'OPTIONS',
      ':path': '/publish',
      origin: PAGE,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre.headers)).toEqual(PREFLIGHT_HEADERS);
    const poll = await h2Request(session, { ':path': '/poll?since=0&timeout=0', origin: PAGE });
    expect(poll.status).toBe(200);
    expect(corsHeaders(poll.headers)).toEqual(expected);
    const events = await h2Request(session, { ':path': '/events', origin: PAGE }, true);
    expect(events.status).toBe(200);
    expect(events.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(events.headers.connection).toBeUndefined();
    expect(corsHeaders(events.headers)).toEqual(expected);
    const bad = await h2Request(session, { ':path': '/poll?since=x', origin: PAGE });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ error: { code: 'LAB_ERR_BAD_CURSOR' } });
    expect(corsHeaders(bad.headers)).toEqual(expected);
    // Same origin is told by :authority over h2.
    for (const headers of [{ origin: new URL(lab.url).origin }, {}, { origin: OTHER }]) {
      const label = JSON.stringify(headers);
      expect
        .soft(
          corsHeaders((await h2Request(session, { ':path': '/poll?since=0&timeout=0', ...headers })).headers),
          label,
        )
        .toEqual({});
      expect
        .soft(corsHeaders((await h2Request(session, { ':path': '/events', ...headers }, true)).headers), label)
        .toEqual({});
    }
  });
});

// ---- In Chromium ----------------------------------------------------------------------------------

const WAIT_MS = 10_000;

/**
 * The page: its own origin (a plain node:http server on another port), no CSP. `?lab=<url>` names the
 * lab, `&timeout=<ms>` how long its polls are held. It long-polls from 0 and opens an EventSource at once, and offers `publish(data)` (JSON,
 * so preflighted) and `labRequest(path, init)`; everything it sees lands in `window.__cors`.
 */
const PAGE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>cross-origin client</title>
<script>
  const params = new URLSearchParams(location.search);
  const lab = params.get('lab');
  const hold = params.get('timeout');
  const state = (window.__cors = { polled: [], pollErrors: [], streamed: [], hello: 0, sseErrors: 0, sseState: -1 });
  (async () => {
    let since = 0;
    for (;;) {
      try {
        const res = await fetch(lab + '/poll?since=' + since + '&timeout=' + hold);
        const body = await res.json();
        for (const m of body.messages) state.polled.push(m.id);
        since = body.lastId;
      } catch (e) {
        state.pollErrors.push(e.name);
        return;
      }
    }
  })();
  const es = new EventSource(lab + '/events?since=0');
  es.addEventListener('hello', () => state.hello++);
  es.onmessage = (e) => state.streamed.push(JSON.parse(e.data).id);
  es.onerror = () => {
    state.sseErrors++;
    state.sseState = es.readyState;
  };
  window.labRequest = async (path, init) => {
    try {
      const res = await fetch(lab + path, init);
      return { status: res.status, body: await res.json() };
    } catch (e) {
      return { error: e.name };
    }
  };
  window.publish = (data) => labRequest('/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data }) });
</script>`;

interface PageState {
  polled: number[];
  pollErrors: string[];
  streamed: number[];
  hello: number;
  sseErrors: number;
  sseState: number;
}
type Answer = { status: number; body: { id?: number; error?: { code: string } } } | { error: string };

/** The page's `window.__cors`. (This file has no DOM types: the page is reached through strings and globalThis.) */
const stateOf = (page: Page) => page.evaluate('window.__cors') as Promise<PageState>;
/** Waits until `condition` (an expression over `window.__cors`) holds in the page. */
const waitInPage = (page: Page, condition: string) => page.waitForFunction(condition, undefined, { timeout: WAIT_MS });
/** Calls the page's `publish(data)` or `labRequest(path, init)`. */
const call = (page: Page, fn: 'publish' | 'labRequest', ...args: unknown[]) =>
  page.evaluate(
    ({ fn, args }) => (globalThis as unknown as Record<string, (...a: unknown[]) => Promise<Answer>>)[fn]!(...args),
    { fn, args },
  );

requirePart(
  HAVE_CHROMIUM,
  'CORS in Chromium',
  'test/server/cors.test.ts',
  `${CHROMIUM} is missing: the cross-origin browser tests need Debian's chromium (apt-get install chromium)`,
);

describe.skipIf(!HAVE_CHROMIUM)('CORS in Chromium', () => {
  let browser: Browser;
  let pageServer: Server;
  let pageOrigin: string;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    pageServer = http.createServer((req, res) => {
      if (req.url?.startsWith('/?')) res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
      else res.writeHead(204).end();
    });
    pageServer.listen(0, '127.0.0.1');
    await once(pageServer, 'listening');
    pageOrigin = `http://127.0.0.1:${(pageServer.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    await browser?.close();
    pageServer?.closeAllConnections();
    pageServer?.close();
  });

  /** Opens the page against `lab`; its polls ask to be held `pollTimeoutMs`. */
  async function open(lab: RunningLab, pollTimeoutMs = 5_000): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    onTestFinished(() => context.close());
    const page = await context.newPage();
    const errors = pageErrors(page);
    await page.goto(`${pageOrigin}/?lab=${encodeURIComponent(lab.url)}&timeout=${pollTimeoutMs}`);
    return { page, errors };
  }

  it.each([
    ['HTTP/1.1', {}],
    ['HTTP/2', { http2: true }],
  ] as const)(
    'a listed page long-polls, streams and publishes (preflighted) across origins, %s',
    async (name, extra) => {
      const lab = await startLab({ allowedOrigins: [pageOrigin], ...extra });
      expect(new URL(lab.url).origin).not.toBe(pageOrigin);
      const versions = new Set<string>();
      const seen: string[] = [];
      lab.app.server.on('request', (req: http.IncomingMessage) => {
        if (req.headers.origin !== pageOrigin) return;
        versions.add(req.httpVersion);
        const path = req.url!.split('?')[0];
        const asked = req.headers['access-control-request-headers'];
        seen.push(`${req.method} ${path}${asked === undefined ? '' : ` (${asked})`}`);
      });
      const { page, errors } = await open(lab);
      await waitInPage(page, 'window.__cors.hello === 1');
      expect(await call(page, 'publish', { from: 'page', n: 1 })).toEqual({ status: 201, body: { id: 1 } });
      expect(await call(page, 'publish', { from: 'page', n: 2 })).toEqual({ status: 201, body: { id: 2 } });
      await waitInPage(page, 'window.__cors.polled.length >= 2 && window.__cors.streamed.length >= 2');
      const state = await stateOf(page);
      expect(state.polled).toEqual([1, 2]);
      expect(state.streamed).toEqual([1, 2]);
      expect(state.pollErrors).toEqual([]);
      expect(state.sseErrors).toBe(0);
      expect(lab.app.lab.feed.info().lastId).toBe(2);
      expect(errors).toEqual([]);
      // What Chromium preflights: the JSON publish, asking for content-type only, once (Max-Age covers
      // the others); never its GETs (EventSource's Accept, Cache-Control and Pragma are the browser's).
      expect(seen.filter((r) => r.startsWith('OPTIONS')).sort()).toEqual(['OPTIONS /publish (content-type)']);
      expect(seen).toContain('GET /events');
      expect(seen).toContain('GET /poll');
      // Over the protocol named (Chromium offers h2 in ALPN; the h2 lab takes it).
      expect([...versions]).toEqual([name === 'HTTP/2' ? '2.0' : '1.1']);
      // An error answer is readable across origins: the page sees the code, not a TypeError.
      expect(await call(page, 'labRequest', '/poll?since=x')).toMatchObject({
        status: 400,
        body: { error: { code: 'LAB_ERR_BAD_CURSOR' } },
      });
      expect(
        await call(page, 'labRequest', '/publish', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      ).toMatchObject({
        status: 400,
        body: { error: { code: 'LAB_ERR_MISSING_DATA' } },
      });
    },
  );

  it('a page not listed is refused by the browser: fetch and publish fail with TypeError, EventSource errors and closes', async () => {
    const lab = await startLab({ allowedOrigins: ['http://127.0.0.1:1'] });
    // A poll is a simple request: it is sent, and the browser refuses the answer once it arrives.
    // Not held, so that it arrives at once.
    const { page } = await open(lab, 0);
    await waitInPage(page, 'window.__cors.pollErrors.length === 1 && window.__cors.sseErrors >= 1');
    const state = await stateOf(page);
    expect(state.pollErrors).toEqual(['TypeError']);
    // A CORS failure is fatal to an EventSource: CLOSED, no reconnect.
    expect(state.sseState).toBe(2);
    expect(state.hello).toBe(0);
    expect(await call(page, 'publish', 'nope')).toEqual({ error: 'TypeError' });
    // The preflight failed, so the publish itself was never sent.
    expect(lab.app.lab.feed.info().lastId).toBe(0);
    // The lab still works for its own clients.
    expect(await publish(lab.url, 'own')).toBe(1);
  });
});
