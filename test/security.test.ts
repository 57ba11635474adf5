/**
 * Publish token (HTTP and WebSocket), WebSocket Origin checks, configuration validation
 * (resolveConfig / readSettings) and the CLI's start-up and shutdown behaviour.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { DEFAULTS, envName, readSettings, resolveConfig, type ConfigInput } from '../server/config.js';
import { ConfigError } from '../server/errors.js';
import { WsClient, publish, refusedUpgrade, startLab, until, type RunningLab } from './helpers.js';

// A set PUBLISH_TOKEN must have MIN_PUBLISH_TOKEN_LENGTH (16) characters or more.
const TOKEN = 's3cret-s3cret-s3cret';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function post(lab: RunningLab, headers: Record<string, string>, body = '{"data":1}', path = '/publish') {
  const res = await fetch(`${lab.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
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
    for (const origin of ['http://evil.example', `http://evil.example:${port}`, 'null', 'http://localhost', `http://127.0.0.2:${port}`]) {
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
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('LAB_ERR_CONFIG');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('configuration', () => {
  it('resolveConfig refuses a non-loopback host without a publish token', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      const e = configError(() => resolveConfig({ host }));
      expect(e.setting, host).toBe('PUBLISH_TOKEN');
    }
    expect(resolveConfig({ host: '0.0.0.0', publishToken: TOKEN }).host).toBe('0.0.0.0');
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(resolveConfig({ host }).host).toBe(host);
  });

  it('resolveConfig rejects bad values, naming the setting', () => {
    const cases: [ConfigInput | Record<string, unknown>, string][] = [
      [{ port: 70_000 }, 'port'],
      [{ port: -1 }, 'port'],
      [{ port: 1.5 }, 'port'],
      [{ retentionMessages: 0 }, 'retentionMessages'],
      [{ pollTimeoutMs: 2000, pollMaxTimeoutMs: 1000 }, 'pollTimeoutMs'],
      [{ pollTimeoutMs: DEFAULTS.pollMaxTimeoutMs + 1 }, 'pollTimeoutMs'],
      [{ allowedOrigins: ['not a url'] }, 'allowedOrigins'],
      [{ allowedOrigins: ['https://ok.example/path'] }, 'allowedOrigins'],
      [{ maxPayloadBytes: 0 }, 'maxPayloadBytes'],
      [{ logLevel: 'loud' as 'info' }, 'logLevel'],
      [{ demo: 'yes' as unknown as boolean }, 'demo'],
      [{ nonsense: 1 }, 'nonsense'],
    ];
    for (const [input, setting] of cases) {
      const e = configError(() => resolveConfig(input as ConfigInput));
      expect.soft(e.setting, JSON.stringify(input)).toBe(setting);
    }
    const good = resolveConfig({ allowedOrigins: ['https://ok.example', 'http://localhost:8080'], pollTimeoutMs: 10, pollMaxTimeoutMs: 10 });
    expect(good.allowedOrigins).toEqual(['https://ok.example', 'http://localhost:8080']);
    expect(Object.isFrozen(good)).toBe(true);
  });

  it('readSettings reads env vars', () => {
    const s = readSettings(
      { POLL_TIMEOUT_MS: '1500', DEMO: '0', ALLOWED_ORIGINS: 'https://a.example, http://b.example:81,,', PUBLISH_TOKEN: 'tok', UNRELATED: 'x' },
      [],
    );
    expect(s).toEqual({ pollTimeoutMs: 1500, demo: false, allowedOrigins: ['https://a.example', 'http://b.example:81'], publishToken: 'tok' });
    expect(readSettings({ DEMO: 'yes', PORT: '' }, [])).toEqual({ demo: true });
  });

  it('readSettings reads flags, and flags win over env vars', () => {
    expect(readSettings({}, ['--no-demo', '--port', '1234', '--poll-timeout-ms', '700'])).toEqual({ demo: false, port: 1234, pollTimeoutMs: 700 });
    expect(readSettings({}, ['--port=99', '--demo'])).toEqual({ port: 99, demo: true });
    expect(readSettings({ PORT: '1', DEMO: '1', POLL_TIMEOUT_MS: '5', HOST: '127.0.0.2' }, ['--no-demo', '--port', '1234', '--poll-timeout-ms', '700'])).toEqual({
      port: 1234,
      demo: false,
      pollTimeoutMs: 700,
      host: '127.0.0.2',
    });
  });

  it('readSettings throws on bad values, naming the env var or the flag', () => {
    for (const [env, setting] of [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '12x' }, 'PORT'],
      [{ POLL_TIMEOUT_MS: '1.5' }, 'POLL_TIMEOUT_MS'],
      [{ DEMO: 'maybe' }, 'DEMO'],
    ] as const) {
      const e = configError(() => readSettings(env, []));
      expect.soft(e.setting).toBe(setting);
      expect.soft(e.value).toBe(Object.values(env)[0]);
    }
    for (const [argv, setting] of [
      [['--port', 'abc'], '--port'],
      [['--poll-timeout-ms', '1e3'], '--poll-timeout-ms'],
    ] as const) {
      const e = configError(() => readSettings({}, argv));
      expect.soft(e.setting).toBe(setting);
      expect.soft(e.value).toBe(argv[1]);
    }
    // A bad env var is an error even when a flag would override it.
    expect(configError(() => readSettings({ PORT: 'abc' }, ['--port', '1'])).setting).toBe('PORT');
    // Unknown flags are errors.
    expect(configError(() => readSettings({}, ['--bogus'])).setting).toBe('command line');
  });
});

/** The environment for the CLI: ours, minus every lab setting, plus `extra`. */
function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(DEFAULTS)) delete env[envName(key)];
  return { ...env, ...extra };
}

interface Cli {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(env: Record<string, string>, args: string[] = []): Cli {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], { cwd: ROOT, env: cliEnv(env) });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stdout: () => out, stderr: () => err, exit };
}

describe('CLI (server/main.ts)', () => {
  it('exits 1 with a message naming PORT and the value on PORT=abc', async () => {
    const cli = startCli({ PORT: 'abc' });
    const { code } = await cli.exit;
    expect(code).toBe(1);
    expect(cli.stderr()).toContain('PORT');
    expect(cli.stderr()).toContain('abc');
    expect(cli.stdout()).not.toContain('listening');
  });

  it('exits 1 naming the flag on --port abc', async () => {
    const cli = startCli({}, ['--port', 'abc']);
    const { code } = await cli.exit;
    expect(code).toBe(1);
    expect(cli.stderr()).toContain('--port');
    expect(cli.stderr()).toContain('abc');
  });

  it('listens on PORT=0, prints the URL, serves /stats, and exits 0 on SIGTERM', async () => {
    const cli = startCli({ PORT: '0', LOG_LEVEL: 'warn' }, ['--no-demo']);
    let url = '';
    await until(() => {
      const m = /Transport Lab listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stdout());
      if (m) url = m[1]!;
      return m !== null || cli.child.exitCode !== null;
    }, 15_000);
    expect(url, `stdout: ${cli.stdout()}\nstderr: ${cli.stderr()}`).not.toBe('');
    expect(url).not.toMatch(/:0$/);

    const res = await fetch(`${url}/stats`, { headers: { connection: 'close' } });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as { process: { pid: number }; feed: { lastId: number } };
    expect(stats.process.pid).toBe(cli.child.pid);
    // --no-demo: nothing is published by itself.
    expect(stats.feed.lastId).toBe(0);

    // An open WebSocket must not keep the process from exiting.
    const ws = new WsClient(`${url.replace(/^http/, 'ws')}/ws`);
    await ws.opened;

    expect(cli.child.kill('SIGTERM')).toBe(true);
    const { code, signal } = await cli.exit;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    await ws.closed;
    expect(ws.closeCode).toBe(1001);
    expect(ws.closeReason).toBe('LAB_ERR_SHUTTING_DOWN');
  });
});
