/**
 * Configuration (resolveConfig / readSettings: defaults, env vars, flags, one check per setting) and
 * the CLI's start-up and shutdown behaviour (server/main.ts).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import WebSocket from 'ws';
import { DEFAULTS, envName, readSettings, resolveConfig, type ConfigInput } from '../../server/config.js';
import { ConfigError } from '../../server/errors.js';
import { PROFILES } from '../../server/network/profiles.js';

// No ./helpers.js here: it imports the whole server (server/app.ts, 1.5–2.5 s to import), and these
// tests only read settings in-process and start the CLI as a process of its own.

const TOKEN = 's3cret-s3cret-s3cret';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

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
    const good = resolveConfig({
      allowedOrigins: ['https://ok.example', 'http://localhost:8080'],
      pollTimeoutMs: 10,
      pollMaxTimeoutMs: 10,
    });
    expect(good.allowedOrigins).toEqual(['https://ok.example', 'http://localhost:8080']);
    expect(Object.isFrozen(good)).toBe(true);
  });

  it('network: a list of profile names from NETWORK or --network; an unknown one is a ConfigError naming network', () => {
    expect(resolveConfig().network).toEqual([]);
    expect(readSettings({ NETWORK: '4g, 3g' }, [])).toEqual({ network: ['4g', '3g'] });
    expect(readSettings({ NETWORK: 'lan' }, ['--network', '4g,3g'])).toEqual({ network: ['4g', '3g'] });
    // As the profiles module spells them: lower case, repeats dropped, `all` expanded, loopback kept.
    expect(resolveConfig({ network: ['4G', '3g', '4g', 'loopback'] }).network).toEqual(['4g', '3g', 'loopback']);
    expect(resolveConfig({ network: ['all'] }).network).toEqual(Object.keys(PROFILES));
    expect(Object.isFrozen(resolveConfig({ network: ['4g'] }).network)).toBe(true);

    const unknown = configError(() => resolveConfig(readSettings({}, ['--network', '4g,5g'])));
    expect(unknown.setting).toBe('network');
    expect(unknown.value).toBe('4g,5g');
    expect(unknown.message).toContain('5g');
    expect(configError(() => resolveConfig({ network: 'all' as unknown as string[] })).setting).toBe('network');
    // Relays listen on port + 1, + 2, …: they must fit under 65535 (loopback needs no port).
    expect(configError(() => resolveConfig({ port: 65_534, network: ['4g', '3g'] })).setting).toBe('network');
    expect(resolveConfig({ port: 65_534, network: ['loopback', '4g'] }).network).toEqual(['loopback', '4g']);
    expect(resolveConfig({ port: 0, network: ['all'] }).port).toBe(0);
  });

  it('readSettings reads env vars', () => {
    const s = readSettings(
      {
        POLL_TIMEOUT_MS: '1500',
        DEMO: '0',
        ALLOWED_ORIGINS: 'https://a.example, http://b.example:81,,',
        PUBLISH_TOKEN: 'tok',
        UNRELATED: 'x',
      },
      [],
    );
    expect(s).toEqual({
      pollTimeoutMs: 1500,
      demo: false,
      allowedOrigins: ['https://a.example', 'http://b.example:81'],
      publishToken: 'tok',
    });
    expect(readSettings({ DEMO: 'yes', PORT: '' }, [])).toEqual({ demo: true });
  });

  it('readSettings reads flags, and flags win over env vars', () => {
    expect(readSettings({}, ['--no-demo', '--port', '1234', '--poll-timeout-ms', '700'])).toEqual({
      demo: false,
      port: 1234,
      pollTimeoutMs: 700,
    });
    expect(readSettings({}, ['--port=99', '--demo'])).toEqual({ port: 99, demo: true });
    expect(
      readSettings({ PORT: '1', DEMO: '1', POLL_TIMEOUT_MS: '5', HOST: '127.0.0.2' }, [
        '--no-demo',
        '--port',
        '1234',
        '--poll-timeout-ms',
        '700',
      ]),
    ).toEqual({
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

/** The CLI as `node --import tsx server/main.ts`, or as `command` (e.g. npm start) with `args` after it. */
function startCli(
  env: Record<string, string>,
  args: string[] = [],
  command: readonly string[] = [process.execPath, '--import', 'tsx', 'server/main.ts'],
): Cli {
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: ROOT,
    env: cliEnv(env),
  });
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

/** Whether `pid` runs: a process that exited but was not reaped yet (state Z) does not. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
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

  it('exits 1 naming network and the unknown profile on --network 5g', async () => {
    const cli = startCli({}, ['--network', '4g,5g']);
    const { code } = await cli.exit;
    expect(code).toBe(1);
    expect(cli.stderr()).toContain('network');
    expect(cli.stderr()).toContain('5g');
    expect(cli.stdout()).not.toContain('listening');
  });

  it('listens on PORT=0, prints the URL, serves /stats, and exits 0 on SIGTERM', async () => {
    const cli = startCli({ PORT: '0', LOG_LEVEL: 'warn' }, ['--no-demo']);
    let url = '';
    await vi.waitFor(
      () => {
        const m = /Transport Lab listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stdout());
        if (m) url = m[1]!;
        if (m === null && cli.child.exitCode === null) throw new Error('not listening yet');
      },
      { timeout: 15_000, interval: 5 },
    );
    expect(url, `stdout: ${cli.stdout()}\nstderr: ${cli.stderr()}`).not.toBe('');
    expect(url).not.toMatch(/:0$/);

    const res = await fetch(`${url}/stats`, { headers: { connection: 'close' } });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as { process: { pid: number }; feed: { lastId: number } };
    expect(stats.process.pid).toBe(cli.child.pid);
    // --no-demo: nothing is published by itself.
    expect(stats.feed.lastId).toBe(0);

    // An open WebSocket must not keep the process from exiting.
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
    onTestFinished(() => ws.terminate());
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    await once(ws, 'open');

    expect(cli.child.kill('SIGTERM')).toBe(true);
    const { code, signal } = await cli.exit;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const [closeCode, closeReason] = await closed;
    expect(closeCode).toBe(1001);
    expect(closeReason.toString()).toBe('LAB_ERR_SHUTTING_DOWN');
  });

  it('npm start: one start-up line, no line per request, and SIGTERM to npm’s own process stops the server', async () => {
    const cli = startCli({ PORT: '0' }, ['--no-demo'], ['npm', 'start', '--silent', '--']);
    const { child } = cli;
    let serverPid = 0;
    onTestFinished(() => {
      if (serverPid && running(serverPid)) process.kill(serverPid, 'SIGKILL');
    });
    let url = '';
    await vi.waitFor(
      () => {
        const m = /Transport Lab listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stdout());
        if (m) url = m[1]!;
        else if (child.exitCode === null) throw new Error('not listening yet');
      },
      { timeout: 20_000, interval: 10 },
    );
    expect(url, `stdout: ${cli.stdout()}\nstderr: ${cli.stderr()}`).not.toBe('');
    for (let i = 0; i < 5; i++) await (await fetch(`${url}/stats`)).arrayBuffer();
    const stats = (await (await fetch(`${url}/stats`)).json()) as { process: { pid: number } };
    serverPid = stats.process.pid;
    expect(running(serverPid)).toBe(true);
    // A single process offers every network profile on demand (the dashboard's header lists them).
    const network = (await (await fetch(`${url}/network`)).json()) as { onDemand: { name: string }[] };
    expect(network.onDemand.map((p) => p.name)).toContain('3g');

    expect(child.kill('SIGTERM')).toBe(true);
    // npm passes the signal on to the server and ends as signalled itself.
    const ended = await cli.exit;
    expect(ended.code === 0 || ended.signal === 'SIGTERM', JSON.stringify(ended)).toBe(true);
    await vi.waitFor(
      () => {
        if (running(serverPid)) throw new Error(`the server (pid ${serverPid}) still runs after npm start exited`);
      },
      { timeout: 10_000, interval: 20 },
    );
    // One start-up line (URL, protocol, feed); nothing per request; the shutdown line after the signal.
    const lines = cli.stdout().trim().split('\n');
    expect(lines[0]).toMatch(/^Transport Lab listening on http:\/\/127\.0\.0\.1:\d+ .*memory feed/);
    expect(lines.slice(1).every((l) => l.startsWith('SIGTERM'))).toBe(true);
    expect(cli.stderr()).toBe('');
  });
});
