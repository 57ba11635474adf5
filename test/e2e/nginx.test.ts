/**
 * nginx in front of the lab (deploy/nginx.conf, run by bench/processes/nginx.ts): a real nginx on a free port,
 * its own temp prefix, in front of two real labs on one Redis feed (a unique key prefix per test).
 * Every transport works through it, SSE unbuffered; round robin spreads polls over both instances and
 * a client that resumes on the other instance loses and duplicates nothing; reload() applies new
 * settings; stop() ends nginx by PID and removes its prefix. The renderer is checked on its own, and
 * `nginx -t` accepts every variant a scenario may ask for.
 *
 * Skipped with a warning when nginx is not installed; under CI (process.env.CI) that is a failure.
 */
import { existsSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createConnection } from 'node:net';
import type { FetchLike } from 'eventsource';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { DEFAULTS, TIMING } from '../../server/config.js';
import type { StatsSnapshot } from '../../server/stats.js';
import {
  checkConfig,
  haveNginx,
  Nginx,
  NGINX_BIN,
  readTemplate,
  renderConfig,
  type NginxOptions,
  type ProxySettings,
} from '../../bench/processes/nginx.js';
import {
  SseClient,
  WsClient,
  publish,
  range,
  startLab,
  until,
  wsOrder,
  type PollAnswer,
  type RunningLab,
} from '../helpers/lab.js';
import { SHARED_REDIS, usePrefix } from '../helpers/redis.js';

const HAVE_NGINX = haveNginx();
if (!HAVE_NGINX) {
  if (process.env.CI) throw new Error(`nginx is not installed (looked for ${NGINX_BIN}); .ci/run installs it`);
  console.warn(`test/e2e/nginx.test.ts skipped: no nginx at ${NGINX_BIN} (apt-get install -y nginx, or set NGINX_BIN)`);
}

// ---- helpers local to this file --------------------------------------------------------------------

const portOf = (lab: RunningLab): number => Number(new URL(lab.url).port);

interface Behind {
  labs: [RunningLab, RunningLab];
  nginx: Nginx;
  /** What each lab received: the headers of every request and upgrade request. */
  received: [IncomingHttpHeaders[], IncomingHttpHeaders[]];
}

/** Two labs on the shared Redis (one feed, a key prefix of this test's own) behind a fresh nginx. */
async function labsBehindNginx(settings?: Partial<ProxySettings>): Promise<Behind> {
  const redisKeyPrefix = usePrefix();
  const labs: RunningLab[] = [];
  for (let i = 0; i < 2; i++) labs.push(await startLab({ feed: SHARED_REDIS, redisKeyPrefix }));
  const received = labs.map((lab) => {
    const headers: IncomingHttpHeaders[] = [];
    const record = (req: IncomingMessage) => headers.push(req.headers);
    lab.app.server.on('request', record);
    lab.app.server.on('upgrade', record);
    return headers;
  });
  const nginx = await Nginx.start({ upstreams: labs.map(portOf), ...(settings ? { settings } : {}) });
  // Registered after the labs: hooks run in reverse order, so nginx stops first, then the labs close,
  // then the Redis keys go.
  onTestFinished(async () => {
    await nginx.stop();
  });
  return { labs: labs as [RunningLab, RunningLab], nginx, received: received as Behind['received'] };
}

/** A fetch of its own connection pool (closed when the test ends): no socket outlives a reload. */
function freshFetch(): typeof undiciFetch {
  const dispatcher = new Agent();
  onTestFinished(() => dispatcher.close());
  return (input, init) => undiciFetch(input, { ...init, dispatcher });
}

async function statsOf(lab: RunningLab): Promise<StatsSnapshot['transports']> {
  const res = await fetch(`${lab.url}/stats`);
  return ((await res.json()) as StatsSnapshot).transports;
}

type Counter = 'poll' | 'sse' | 'ws';

/** Runs `action`, then says which lab's `/stats` counted its request (exactly one must have). */
async function servedBy<T>(
  labs: readonly RunningLab[],
  counter: Counter,
  action: () => Promise<T>,
): Promise<{ result: T; lab: number }> {
  const before = await Promise.all(labs.map(async (l) => (await statsOf(l))[counter].requests));
  // A lab counts a request when it starts, so by the time `action` has its answer it is counted.
  const result = await action();
  const after = await Promise.all(labs.map(async (l) => (await statsOf(l))[counter].requests));
  const grew = after.map((n, i) => n - before[i]!);
  expect(grew.slice().sort(), `requests counted per lab: ${grew}`).toEqual([0, 1]);
  return { result, lab: grew.indexOf(1) };
}

async function pollThrough(
  url: string,
  query: string,
  fetchFn: typeof undiciFetch = undiciFetch,
): Promise<{ status: number; body: PollAnswer }> {
  const res = await fetchFn(`${url}/poll?${query}`);
  return { status: res.status, body: (await res.json()) as PollAnswer };
}

/** A `fetch` for EventSource that adds headers (a first connect with Last-Event-ID). */
const fetchWithHeaders =
  (extra: Record<string, string>): FetchLike =>
  (url, init) =>
    fetch(url, { ...init, headers: { ...extra, ...init.headers } } as RequestInit);

const ids = (messages: readonly { id: number }[]): number[] => messages.map((m) => m.id);

/** The text of the block that starts with `header {` (comments removed), for checking directives. */
function block(conf: string, header: string): string {
  const text = conf.replace(/#.*$/gm, '');
  const start = text.indexOf(`${header} {`);
  if (start < 0) throw new Error(`no "${header} {" block`);
  let depth = 0;
  for (let i = text.indexOf('{', start); i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`"${header} {" is not closed`);
}

/** The directives of a block, one per entry, whitespace collapsed ("proxy_read_timeout 60s"). */
const directives = (text: string): string[] =>
  text
    .replace(/#.*$/gm, '')
    .split(/[;{}]/)
    .map((d) => d.replace(/\s+/g, ' ').trim())
    .filter(Boolean);

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// ---- 1. the renderer and nginx -t ------------------------------------------------------------------

const RENDER = { upstreams: [4001, 4002, 4003], listen: 4100, prefix: '/tmp/lab-nginx-render' };

/** Every variant a scenario may ask for, and the naive one: buffered, compressed, short timeouts, sticky. */
const NAIVE: Partial<ProxySettings> = {
  buffering: true,
  ignoreAccelBuffering: true,
  gzip: true,
  sseReadTimeoutSec: 2,
  pollReadTimeoutSec: 2,
  wsReadTimeoutSec: 2,
  balance: 'ip-hash',
  stripUpgrade: true,
};
const VARIANTS: Record<string, Partial<ProxySettings>> = {
  shipped: {},
  'proxy_buffering on': { buffering: true },
  'proxy_buffering on, X-Accel-Buffering ignored': { buffering: true, ignoreAccelBuffering: true },
  'gzip on': { gzip: true },
  'read timeouts 2 s': { sseReadTimeoutSec: 2, pollReadTimeoutSec: 2, wsReadTimeoutSec: 2 },
  'Upgrade stripped': { stripUpgrade: true },
  ip_hash: { balance: 'ip-hash' },
  least_conn: { balance: 'least-conn' },
  'round robin, said explicitly': {
    balance: 'round-robin',
    buffering: false,
    ignoreAccelBuffering: false,
    gzip: false,
  },
  naive: NAIVE,
};

describe('renderConfig: deploy/nginx.conf with the lab’s port, paths, upstreams and settings', () => {
  it('the shipped values stay as they are, above the lab’s own timings; only the marked lines change', () => {
    const template = readTemplate();
    const conf = renderConfig(template, RENDER);
    expect(conf).not.toMatch(/#\s*@lab:[\w-]+\s*$/m);
    // Unmarked lines are copied as they are.
    const unmarked = template.split('\n').filter((l) => !/#\s*@lab:[\w-]+\s*$/.test(l));
    expect(conf.split('\n').filter((l) => unmarked.includes(l))).toEqual(unmarked);

    const main = directives(conf.slice(0, conf.indexOf('events {')));
    expect(main).toEqual(
      expect.arrayContaining([
        'worker_processes 1',
        `error_log "${RENDER.prefix}/error.log" notice`,
        `pid "${RENDER.prefix}/nginx.pid"`,
      ]),
    );
    const http = directives(block(conf, 'http'));
    for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
      expect(http).toContain(`${kind}_temp_path "${RENDER.prefix}/tmp-${kind}"`);
    expect(http).toContain(`access_log "${RENDER.prefix}/access.log" lab`);
    // Every path nginx writes is inside the prefix.
    for (const d of http.filter((x) => /_path |^access_log /.test(x))) expect(d).toContain(RENDER.prefix);

    const upstream = directives(block(conf, 'upstream lab'));
    expect(upstream).toEqual([
      'upstream lab',
      'server 127.0.0.1:4001 max_fails=0',
      'server 127.0.0.1:4002 max_fails=0',
      'server 127.0.0.1:4003 max_fails=0',
      'keepalive 32',
    ]);

    const server = directives(block(conf, 'server'));
    expect(server).toEqual(
      expect.arrayContaining([
        'listen 127.0.0.1:4100',
        'proxy_http_version 1.1',
        'proxy_set_header Connection ""',
        'proxy_set_header Host $lab_host',
        'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for',
        'proxy_set_header X-Forwarded-Proto $scheme',
      ]),
    );

    const seconds = (d: string[]) =>
      Number(/^proxy_read_timeout (\d+)s$/.exec(d.find((x) => x.startsWith('proxy_read_timeout'))!)![1]);
    const events = directives(block(conf, 'location = /events'));
    expect(events).toEqual(
      expect.arrayContaining(['proxy_pass http://lab', 'proxy_buffering off', 'proxy_cache off', 'gzip off']),
    );
    expect(events.some((d) => d.startsWith('proxy_ignore_headers'))).toBe(false);
    expect(seconds(events)).toBeGreaterThan(TIMING.sseHeartbeatMs / 1000);

    const poll = directives(block(conf, 'location = /poll'));
    expect(poll).toContain('proxy_pass http://lab');
    expect(seconds(poll)).toBeGreaterThan(DEFAULTS.pollMaxTimeoutMs / 1000);
    expect(seconds(poll)).toBeGreaterThan(DEFAULTS.pollTimeoutMs / 1000);

    // /ws sets headers of its own, so it inherits none of the server's: it must repeat them.
    const ws = directives(block(conf, 'location = /ws'));
    expect(ws).toEqual(
      expect.arrayContaining([
        'proxy_pass http://lab',
        'proxy_set_header Upgrade $http_upgrade',
        'proxy_set_header Connection $connection_upgrade',
        'proxy_set_header Host $lab_host',
        'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for',
        'proxy_set_header X-Forwarded-Proto $scheme',
      ]),
    );
    expect(seconds(ws)).toBeGreaterThan(TIMING.wsPingIntervalMs / 1000);
    expect(directives(block(conf, 'map $http_upgrade $connection_upgrade'))).toEqual([
      'map $http_upgrade $connection_upgrade',
      'default upgrade',
      "'' ''",
    ]);

    expect(directives(block(conf, 'location = /publish'))).toContain('proxy_pass http://lab');
    expect(directives(block(conf, 'location /'))).toContain('proxy_pass http://lab');
  });

  it('the naive settings: buffered SSE that ignores X-Accel-Buffering, gzip on text/event-stream, 2 s read timeouts, ip_hash, Upgrade stripped', () => {
    const conf = renderConfig(readTemplate(), { ...RENDER, settings: NAIVE });
    const events = directives(block(conf, 'location = /events'));
    expect(events).toEqual(
      expect.arrayContaining([
        'proxy_buffering on',
        'proxy_ignore_headers X-Accel-Buffering',
        'gzip on',
        'gzip_types text/event-stream',
        'proxy_read_timeout 2s',
      ]),
    );
    expect(events).not.toContain('proxy_buffering off');
    expect(events).not.toContain('gzip off');
    expect(directives(block(conf, 'location = /poll'))).toContain('proxy_read_timeout 2s');
    const ws = directives(block(conf, 'location = /ws'));
    expect(ws).toEqual(
      expect.arrayContaining([
        'proxy_read_timeout 2s',
        'proxy_set_header Upgrade ""',
        'proxy_set_header Connection ""',
      ]),
    );
    expect(ws.filter((d) => d.includes('$http_upgrade') || d.includes('$connection_upgrade'))).toEqual([]);
    expect(directives(block(conf, 'upstream lab'))).toEqual(
      expect.arrayContaining(['ip_hash', 'server 127.0.0.1:4001 max_fails=0']),
    );

    const leastConn = renderConfig(readTemplate(), { ...RENDER, settings: { balance: 'least-conn' } });
    expect(directives(block(leastConn, 'upstream lab'))).toContain('least_conn');
    const roundRobin = directives(
      block(renderConfig(readTemplate(), { ...RENDER, settings: { balance: 'round-robin' } }), 'upstream lab'),
    );
    expect(roundRobin.filter((d) => d === 'ip_hash' || d === 'least_conn')).toEqual([]);
  });

  it('a template without a marker, with an unknown one, or a bad value is refused with a message', () => {
    const template = readTemplate();
    expect(() => renderConfig(template.replace(/# @lab:listen/, ''), RENDER)).toThrow(/# @lab:listen/);
    expect(() => renderConfig(`${template}\n# x  # @lab:nope\n`, RENDER)).toThrow(/unknown marker @lab:nope/);
    expect(() => renderConfig(template, { ...RENDER, upstreams: [] })).toThrow(/upstream/);
    expect(() => renderConfig(template, { ...RENDER, settings: { sseReadTimeoutSec: 0.5 } })).toThrow(
      /sseReadTimeoutSec/,
    );
    expect(() => renderConfig(template, { ...RENDER, prefix: '/tmp/a"b' })).toThrow(/path/);
  });

  it.skipIf(!HAVE_NGINX)('nginx -t -p <prefix> -c <conf> accepts every variant', async () => {
    for (const [name, settings] of Object.entries(VARIANTS)) {
      const output = await checkConfig({ upstreams: [4001, 4002], settings });
      // `-q`: only warnings and errors are printed; a clean config prints nothing.
      expect(output, name).toBe('');
    }
    await expect(
      checkConfig({ upstreams: [4001], template: readTemplate().replace('proxy_cache off;', 'proxy_cache maybe;') }),
    ).rejects.toThrow(/nginx -t refused the config[\s\S]*proxy_cache/);
  });
});

// ---- 2. every transport through nginx ----------------------------------------------------------------

describe.skipIf(!HAVE_NGINX)('every transport through nginx, in front of two labs on one Redis feed', () => {
  it('publish, and a long poll held by a lab until the next message', async () => {
    const { labs, nginx } = await labsBehindNginx();
    const first = await publish(nginx.url, { n: 1 });
    expect(first).toBe(1);

    // Held: nothing after the cursor, so one of the labs holds the poll (its /stats says so) ...
    const held = pollThrough(nginx.url, `since=${first}&timeout=15000`);
    await vi.waitFor(
      async () => {
        const open = await Promise.all(labs.map(async (l) => (await statsOf(l)).poll.connections));
        expect(open.slice().sort()).toEqual([0, 1]);
      },
      { timeout: 10_000, interval: 10 },
    );
    // ... and answered by the next publish, made through nginx too.
    const second = await publish(nginx.url, { n: 2 });
    const { status, body } = await held;
    expect(status).toBe(200);
    expect(ids(body.messages)).toEqual([second]);
    expect(body.messages[0]!.data).toEqual({ n: 2 });
    expect(body.lastId).toBe(second);

    // A poll that times out is answered empty by the lab (not cut by nginx).
    const quiet = await pollThrough(nginx.url, `since=${second}&timeout=200`);
    expect(quiet.status).toBe(200);
    expect(quiet.body).toMatchObject({ messages: [], lastId: second });
  });

  it('SSE: events arrive one by one, each before the next is published (nothing buffered)', async () => {
    const { nginx } = await labsBehindNginx();
    const res = await undiciFetch(`${nginx.url}/events`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('content-encoding')).toBeNull();
    // nginx acts on X-Accel-Buffering and does not pass it on.
    expect(res.headers.get('x-accel-buffering')).toBeNull();
    await res.body?.cancel();

    const sse = new SseClient(`${nginx.url}/events?since=0`);
    await until(() => sse.eventsOf('hello').length === 1);
    for (let i = 1; i <= 5; i++) {
      const id = await publish(nginx.url, { i });
      // The lab writes each event at once: it must come through before the next one is even published.
      await until(() => sse.messages.length === i);
      expect(sse.messages[i - 1]!.id).toBe(id);
    }
    expect(sse.ids()).toEqual(range(1, 5));
    expect(sse.opens).toBe(1);
  });

  it('WebSocket: the upgrade (with a browser’s Origin), messages both ways, and the headers the lab sees', async () => {
    const { nginx, received } = await labsBehindNginx();
    // A browser on the nginx origin sends Origin: http://127.0.0.1:<nginx port>; the lab compares it
    // with the Host it receives, so nginx must pass the client's Host with its port.
    const ws = new WsClient(`${nginx.wsUrl}/ws?since=0`, { origin: nginx.url });
    const seen = wsOrder(ws);
    await ws.opened;
    await until(() => ws.controlsOf('hello').length === 1);

    await publish(nginx.url, { via: 'http' });
    ws.ws.send(JSON.stringify({ type: 'publish', data: { via: 'ws' }, ref: 'r1' }));
    await until(() => ws.messages.length === 2 && ws.controlsOf('ack').length === 1);
    expect(ws.controlsOf('ack')[0]).toMatchObject({ ref: 'r1', id: 2 });
    expect(ws.messages.map((m) => m.data)).toEqual([{ via: 'http' }, { via: 'ws' }]);
    expect(seen.filter((x) => typeof x === 'number')).toEqual([1, 2]);

    const upgrades = received.flat().filter((h) => h.upgrade !== undefined);
    expect(upgrades).toHaveLength(1);
    expect(upgrades[0]).toMatchObject({
      host: `127.0.0.1:${nginx.port}`,
      upgrade: 'websocket',
      connection: 'upgrade',
      origin: nginx.url,
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
    });
    // Plain requests: the same Host and X-Forwarded-* (set at server level), and no Connection header
    // (keep-alive to the lab).
    const publishes = received
      .flat()
      .filter((h) => h.upgrade === undefined && h['content-type'] === 'application/json');
    expect(publishes.length).toBeGreaterThan(0);
    for (const h of publishes) {
      expect(h).toMatchObject({
        host: `127.0.0.1:${nginx.port}`,
        'x-forwarded-for': '127.0.0.1',
        'x-forwarded-proto': 'http',
      });
      expect(h.connection).toBeUndefined();
    }
  });

  it('the lab’s Host rule still holds through nginx: a foreign Host is refused, on every transport', async () => {
    const { nginx } = await labsBehindNginx();
    const stats = await request(`${nginx.url}/stats`, { headers: { host: `127.0.0.1:${nginx.port}` } });
    expect(stats.statusCode).toBe(200);
    await stats.body.dump();
    for (const path of ['/stats', '/poll?timeout=0', '/events']) {
      const res = await request(`${nginx.url}${path}`, { headers: { host: 'evil.example' } });
      expect(res.statusCode, path).toBe(403);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('LAB_ERR_HOST_FORBIDDEN');
    }
  });
});

// ---- 3. round robin, and resuming on the other instance ------------------------------------------------

describe.skipIf(!HAVE_NGINX)('round robin over two instances: no stickiness needed', () => {
  it('polls alternate between the instances, each resuming from the cursor the other one answered', async () => {
    const { labs, nginx } = await labsBehindNginx();
    const [a] = labs;
    const got: number[] = [];
    const servedOn: number[] = [];
    let cursor = 0;
    for (let i = 0; i < 6; i++) {
      // Published straight to a lab: a publish through nginx would take a turn of the round robin.
      await publish(a.url, { i });
      const { result, lab } = await servedBy(labs, 'poll', () =>
        pollThrough(nginx.url, `since=${cursor}&timeout=5000`),
      );
      expect(result.status).toBe(200);
      got.push(...ids(result.body.messages));
      cursor = result.body.lastId;
      servedOn.push(lab);
    }
    expect(got).toEqual(range(1, 6));
    const [x, y] = servedOn as [number, number];
    expect(x).not.toBe(y);
    expect(servedOn).toEqual([x, y, x, y, x, y]);
    // Each instance's /stats shows its share.
    for (const lab of labs) expect((await statsOf(lab)).poll.requests).toBe(3);
  });

  it('SSE and WebSocket: a client that reconnects (through nginx, onto the other instance) loses nothing and duplicates nothing', async () => {
    const { labs, nginx } = await labsBehindNginx();
    const [a, b] = labs;

    // SSE: a stream, then a new one with Last-Event-ID (as EventSource sends it), on the other instance.
    const one = await servedBy(labs, 'sse', async () => {
      const sse = new SseClient(`${nginx.url}/events?since=0`);
      await until(() => sse.eventsOf('hello').length === 1);
      return sse;
    });
    await publish(a.url, { n: 1 });
    await publish(b.url, { n: 2 });
    await until(() => one.result.messages.length === 2);
    const lastEventId = String(one.result.messages.at(-1)!.id);
    one.result.es.close();
    await publish(b.url, { n: 3 });
    await publish(a.url, { n: 4 });
    const two = await servedBy(labs, 'sse', async () => {
      const sse = new SseClient(`${nginx.url}/events?since=0`, {
        fetch: fetchWithHeaders({ 'Last-Event-ID': lastEventId }),
      });
      await until(() => sse.messages.length === 2);
      return sse;
    });
    expect(two.lab).not.toBe(one.lab);
    await publish(a.url, { n: 5 });
    await until(() => two.result.messages.length === 3);
    expect(ids([...one.result.messages, ...two.result.messages])).toEqual(range(1, 5));

    // WebSocket: the same with since=<last id>.
    const w1 = await servedBy(labs, 'ws', async () => {
      const ws = new WsClient(`${nginx.wsUrl}/ws?since=5`);
      await ws.opened;
      await until(() => ws.controlsOf('hello').length === 1);
      return ws;
    });
    await publish(b.url, { n: 6 });
    await until(() => w1.result.messages.length === 1);
    w1.result.ws.close();
    await w1.result.closed;
    await publish(a.url, { n: 7 });
    const w2 = await servedBy(labs, 'ws', async () => {
      const ws = new WsClient(`${nginx.wsUrl}/ws?since=${w1.result.messages.at(-1)!.id}`);
      await ws.opened;
      await until(() => ws.messages.length === 1);
      return ws;
    });
    expect(w2.lab).not.toBe(w1.lab);
    await publish(b.url, { n: 8 });
    await until(() => w2.result.messages.length === 2);
    expect(ids([...w1.result.messages, ...w2.result.messages])).toEqual(range(6, 8));
  });

  it('EventSource on an instance that shuts down reconnects by itself, through nginx, onto the other one: every message once', async () => {
    const { labs, nginx } = await labsBehindNginx();
    const sse = new SseClient(`${nginx.url}/events?since=0`);
    await until(() => sse.eventsOf('hello').length === 1);
    const open = await Promise.all(labs.map(async (l) => (await statsOf(l)).sse.connections));
    expect(open.slice().sort()).toEqual([0, 1]);
    const gone = labs[open.indexOf(1)]!;
    const survivor = labs[open.indexOf(0)]!;

    await publish(gone.url, { n: 1 });
    await publish(survivor.url, { n: 2 });
    await until(() => sse.messages.length === 2);
    // The instance goes away (its streams end, then its port closes); messages keep coming meanwhile.
    await gone.app.close();
    await publish(survivor.url, { n: 3 });
    await publish(survivor.url, { n: 4 });
    await until(() => sse.messages.length === 4);
    expect(sse.opens).toBe(2);
    expect((await statsOf(survivor)).sse.connections).toBe(1);
    await publish(survivor.url, { n: 5 });
    await until(() => sse.messages.length === 5);
    expect(sse.ids()).toEqual(range(1, 5));
  });
});

// ---- 4. reload and stop ---------------------------------------------------------------------------------

describe.skipIf(!HAVE_NGINX)('reload() and stop()', () => {
  it('reload() with ip_hash: polls that alternated now all go to one instance; a config nginx refuses leaves the old one running', async () => {
    const { labs, nginx } = await labsBehindNginx();
    const options: NginxOptions = { upstreams: labs.map(portOf) };
    const pid = nginx.pid;
    const servedOn = async (fetchFn: typeof undiciFetch): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++)
        out.push((await servedBy(labs, 'poll', () => pollThrough(nginx.url, 'since=0&timeout=5000', fetchFn))).lab);
      return out;
    };
    await publish(labs[0].url, { n: 1 });
    const before = await servedOn(freshFetch());
    expect(new Set(before).size).toBe(2);

    await nginx.reload({ ...options, settings: { balance: 'ip-hash' } });
    expect(nginx.pid).toBe(pid);
    const after = await servedOn(freshFetch());
    expect(new Set(after).size).toBe(1);
    expect(await nginx.workerPids()).toHaveLength(2);

    // A broken config: reload() says so, and nginx goes on serving with the previous one.
    await expect(
      nginx.reload({ ...options, template: readTemplate().replace('proxy_cache off;', 'proxy_cache maybe;') }),
    ).rejects.toThrow(/old one stays/);
    expect(nginx.running).toBe(true);
    expect(new Set(await servedOn(freshFetch())).size).toBe(1);
  });

  it('stop(): graceful (SIGQUIT) by PID, master and workers gone, port closed, prefix removed', async () => {
    const { nginx } = await labsBehindNginx();
    // A keep-alive client connection is open when stop() comes: graceful stop still ends at SIGQUIT.
    const res = await freshFetch()(`${nginx.url}/stats`);
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const workers = await nginx.workerPids();
    expect(workers).toHaveLength(1);
    expect(existsSync(nginx.prefix)).toBe(true);

    expect(await nginx.stop()).toBe('SIGQUIT');
    expect(nginx.running).toBe(false);
    expect(alive(nginx.pid)).toBe(false);
    for (const pid of workers) expect(alive(pid)).toBe(false);
    expect(await accepts(nginx.port)).toBe(false);
    expect(existsSync(nginx.prefix)).toBe(false);
    // Again: the same answer, nothing signalled.
    expect(await nginx.stop()).toBe('SIGQUIT');
  });
});
