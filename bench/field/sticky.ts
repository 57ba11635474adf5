/**
 * Field failure 3, no sticky sessions: nginx's round robin (its default, the shipped one) in front of
 * TWO instances, so consecutive requests of one client land on different instances.
 *
 * The lab (both instances on one Redis feed, the same key prefix): any instance can resume any
 * cursor. Long polls alternate between the instances on every request; SSE streams and WebSockets
 * are spread over both, and in the middle of the measured window instance B is restarted (stopped,
 * started again on its port, as a deploy does), so every client on it is cut, reconnects through
 * nginx and resumes from its cursor on whichever instance it lands (A while B is down). The publisher
 * posts to instance A only; the feed is shared, so every client must get every message exactly once
 * (the bench's Recorder checks each delivery per client).
 *
 * Socket.IO (bench/servers/socketio.ts, polling transport) behind the same round robin: an engine.io
 * session lives in the process that did its handshake, so a poll or POST that lands on the other
 * instance is answered `400 {"code":1,"message":"Session ID unknown"}` and the client starts over.
 * nginx's strict alternation makes that the rule: a session's handshake and its next requests hardly
 * ever land on one instance, so clients (almost) never connect. Counted from nginx's access log (each answer's
 * status and upstream), the clients' errors and connects, and messages lost (the Recorder's). Without an adapter a publish reaches only its own instance's
 * clients: published to instance A only, a client connected on B misses those messages. The control:
 * the same two instances behind `ip_hash` (sticky), where every client of one address stays on one
 * instance (we publish to the one it picked).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { DEFAULTS } from '../../server/config.js';
import { sumSnapshots, type StatsSnapshot, type TransportKey } from '../../server/stats.js';
import { socketioPollingClientsWatched } from '../clients/socketio.js';
import type { ClientFactory } from '../clients/types.js';
import type { Nginx } from '../processes/nginx.js';
import type { FieldResult, TransportName } from '../../report/types.js';
import { ClientsNotConnected, runScenario, type RunResult } from '../measure/run-scenario.js';
import { startServer, type ServerHandle } from '../processes/server-process.js';
import { target } from '../plan/targets.js';
import { type FieldEnv, type FieldLoad, fieldRow, harnessProblem, type LabProcess } from './env.js';

/** A chat-like feed; every client of the lab is cut once, in the middle. */
const LAB_LOAD: FieldLoad = { clients: 20, ratePerSec: 20, payloadBytes: 100, durationSec: 5 };
/** Socket.IO's clients keep failing their sessions: fewer of them (the run starts once each has tried once; see measureSocketioCase). */
const SOCKETIO_LOAD: FieldLoad = {
  clients: 10,
  ratePerSec: 20,
  payloadBytes: 100,
  durationSec: 5,
  connectTimeoutMs: 10_000,
};
/** harnessProblem's words for a run that delivered nothing. */
const NOTHING_DELIVERED = 'nothing was delivered';
/** When, into the measured window, instance B is restarted (a fraction of the window). */
const RESTART_AT = 1 / 3;

export interface StickyOptions {
  /** Smaller loads (tests); the defaults are LAB_LOAD and SOCKETIO_LOAD. */
  lab?: Partial<FieldLoad>;
  socketio?: Partial<FieldLoad>;
  /** The lab's transports to measure (default poll, sse, ws). */
  transports?: readonly TransportName[];
  /** Add the Socket.IO row behind ip_hash (sticky), the control (default true). */
  stickyControl?: boolean;
}

type Counters = Pick<
  StatsSnapshot['transports'][TransportKey],
  'requests' | 'messagesOut' | 'bytesOut' | 'bytesIn' | 'cut'
>;
const COUNTED = ['requests', 'messagesOut', 'bytesOut', 'bytesIn', 'cut'] as const;

/** `s` with the counters of `carry` (a process that was replaced) added to each transport's; connections are not carried. */
function withCarry(s: StatsSnapshot, carry: Record<TransportKey, Counters> | undefined): StatsSnapshot {
  if (!carry) return s;
  const out = structuredClone(s);
  for (const key of Object.keys(out.transports) as TransportKey[])
    for (const c of COUNTED) out.transports[key][c] += carry[key][c];
  return out;
}

function addCarry(
  carry: Record<TransportKey, Counters> | undefined,
  last: StatsSnapshot,
): Record<TransportKey, Counters> {
  const out = {} as Record<TransportKey, Counters>;
  for (const key of Object.keys(last.transports) as TransportKey[]) {
    out[key] = { requests: 0, messagesOut: 0, bytesOut: 0, bytesIn: 0, cut: 0 };
    for (const c of COUNTED) out[key][c] = (carry?.[key][c] ?? 0) + last.transports[key][c];
  }
  return out;
}

/**
 * Two instances as the one ServerHandle the audited run (runScenario) takes: /stats is the sum of
 * both (connections too, so the run waits for every client wherever it landed), the feed, control
 * URL and event-loop window are instance A's (the publisher posts to A). Instance B may be restarted
 * mid-window: its counters from before the restart are carried over, and /stats waits for it to be
 * back. Each instance's requests over the run are kept apart.
 */
class Pair {
  #carry: Record<TransportKey, Counters> | undefined;
  #restart: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #first: [StatsSnapshot, StatsSnapshot] | undefined;
  #last: [StatsSnapshot, StatsSnapshot] | undefined;
  /** B's open connections (this transport) when it was stopped: the clients its restart cut. */
  cutByRestart: number | null = null;
  /** Whether B's restart started inside the measured window (set at the window's close). */
  restartedInWindow = false;

  constructor(
    readonly a: () => ServerHandle,
    readonly b: () => ServerHandle,
    readonly key: TransportKey,
    /** Restart B this long after the measured window opens (lab rows). */
    readonly restart?: { lab: LabProcess; afterMs: number },
  ) {}

  async #parts(): Promise<[StatsSnapshot, StatsSnapshot]> {
    if (this.#restart) await this.#restart;
    const [sa, sb] = await Promise.all([this.a().stats(), this.b().stats()]);
    return [sa, withCarry(sb, this.#carry)];
  }

  #restartB(lab: LabProcess): void {
    this.#restart = (async () => {
      const last = await lab.handle.stats();
      this.cutByRestart = last.transports[this.key].connections;
      await lab.restart();
      // Taken just before the stop: requests B counted in its last moments are not in it.
      this.#carry = addCarry(this.#carry, last);
    })();
    this.#restart.catch(() => {}); // awaited (and thrown) by the next /stats
  }

  /** Requests instance `i` (0: A, 1: B) counted between the run's first /stats and the window's close. */
  requestsOn(i: 0 | 1): number | null {
    if (!this.#first || !this.#last) return null;
    return this.#last[i].transports[this.key].requests - this.#first[i].transports[this.key].requests;
  }

  clear(): void {
    clearTimeout(this.#timer);
  }

  get handle(): ServerHandle {
    const a = this.a();
    return {
      name: `${a.name} ×2`,
      port: a.port,
      controlPort: a.controlPort,
      baseUrl: a.baseUrl,
      controlUrl: a.controlUrl,
      pid: a.pid,
      stats: async () => {
        const parts = await this.#parts();
        this.#first ??= parts;
        return sumSnapshots(parts);
      },
      gc: () => this.a().gc(),
      loopWindow: {
        open: async () => {
          await this.a().loopWindow.open();
          const r = this.restart;
          if (r) this.#timer = setTimeout(() => this.#restartB(r.lab), r.afterMs);
        },
        close: async () => {
          this.clear();
          this.restartedInWindow = this.#restart !== undefined;
          this.#last = await this.#parts();
          return this.a().loopWindow.close();
        },
      },
      stop: () => this.a().stop(),
    };
  }
}

/**
 * The lab rows' drain: the longest a client cut by the restart may wait before it reconnects: an SSE stream's `retry:` at most
 * (sseRetryMs + sseRetryJitterMs), then a second for the restart. The drain waits this long for its
 * deliveries before counting them lost, so a client still waiting is not mistaken for a loss (on a
 * loaded machine a restart takes longer, and a 1 s quiet window after the last publish read as losses).
 */
const RECONNECT_QUIET_MS = DEFAULTS.sseRetryMs + DEFAULTS.sseRetryJitterMs + 1_000;

/** What runScenario is given: the env's settings (as env.run passes them) through `proxy`. */
const runParams = (env: FieldEnv, proxy: Nginx, load: FieldLoad) => ({
  ...load,
  maxPublisherLagMs: env.limits.publisherLagMs,
  headers: env.headers,
  cookieBytes: 0,
  proxy: { baseUrl: proxy.url },
});

const runFailed = (err: unknown): string => `run failed: ${(err as Error).message}`;

// ---- the lab ---------------------------------------------------------------------------------------

async function measureLab(
  env: FieldEnv,
  load: FieldLoad,
  transports: readonly TransportName[],
  title: string,
): Promise<FieldResult[]> {
  const config = { feed: env.redisUrl, redisKeyPrefix: env.prefix('sticky') };
  const [a, b] = await Promise.all([env.lab(config), env.lab(config)]);
  const rows: FieldResult[] = [];
  try {
    for (const transport of transports) {
      const what =
        transport === 'poll'
          ? 'round robin: each poll on the next instance; instance B restarted mid-run (its held polls answered, the next ones on A while it is down)'
          : `round robin: ${transport === 'sse' ? 'streams' : 'WebSockets'} spread over both; instance B restarted mid-run, its clients reconnect through nginx and resume (${transport === 'sse' ? 'Last-Event-ID' : 'since'}) on whichever instance they land`;
      env.log.step(`field no-sticky: lab ${transport}, ${what}`, load.durationSec + 5);
      // An nginx of each row's own: after a restart nginx counts B as failed (fail_timeout 10 s), and
      // the next row's clients would all go to A.
      const proxy = await env.nginx({ upstreams: [a.port, b.port], settings: { balance: 'round-robin' } });
      const t = target('lab', transport)!;
      const pair = new Pair(
        () => a.handle,
        () => b.handle,
        transport,
        { lab: b, afterMs: load.durationSec * 1000 * RESTART_AT },
      );
      let r: RunResult | undefined;
      let problem: string | undefined;
      try {
        r = await runScenario(pair.handle, t, { ...runParams(env, proxy, load), drainQuietMs: RECONNECT_QUIET_MS });
        if (!pair.restartedInWindow) problem = 'instance B was not restarted inside the measured window';
      } catch (err) {
        problem = runFailed(err);
      } finally {
        pair.clear();
        await proxy.stop();
      }
      const lost = r ? r.lost : null;
      const duplicated = r ? r.duplicated : null;
      rows.push(
        fieldRow(
          {
            scenario: 'no-sticky',
            title,
            setting: 'lab',
            what: `${what}; both instances on one Redis feed`,
            transport,
            symptoms: {
              lost,
              duplicated,
              'client errors': r ? r.clientErrors : null,
              'clients cut by the restart': pair.cutByRestart,
              // Clients connected before the window: every SSE/WS request in it is a reconnect. Polls make one per answer.
              'reconnects (requests beyond one per client)': r && transport !== 'poll' ? r.requests : null,
              'requests on instance A': pair.requestsOn(0),
              'requests on instance B': pair.requestsOn(1),
            },
          },
          r,
          (lost ?? 0) > 0 || (duplicated ?? 0) > 0,
          problem,
          env.limits,
        ),
      );
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  return rows;
}

// ---- Socket.IO -------------------------------------------------------------------------------------

/** The User-Agent of this file's own requests through nginx (not counted as the clients'). */
const PROBE_AGENT = 'transport-lab-field-probe';

/** Every request of the clients nginx logged for /socket.io/: its status and the upstream that answered (`lab` log_format). */
async function accessLog(proxy: Nginx): Promise<{ status: number; upstream: string }[]> {
  const text = await readFile(join(proxy.prefix, 'access.log'), 'utf8').catch(() => '');
  const out: { status: number; upstream: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /"\w+ (\S+) [^"]*" (\d{3}) \d+ \S+ "([^"]*)" "([^"]*)"/.exec(line);
    if (m?.[1]?.startsWith('/socket.io/') && m[4] !== PROBE_AGENT) out.push({ status: Number(m[2]), upstream: m[3]! });
  }
  return out;
}

/**
 * A session made on `a` and polled on `b`, directly: what a poll that lands on the other instance is
 * answered (engine.io's status and body), e.g. `400 {"code":1,"message":"Session ID unknown"}`.
 */
async function otherInstanceAnswer(a: ServerHandle, b: ServerHandle): Promise<string> {
  const hs = await request(`${a.baseUrl}/socket.io/?EIO=4&transport=polling`);
  const sid = (JSON.parse((await hs.body.text()).slice(1)) as { sid: string }).sid;
  const res = await request(`${b.baseUrl}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
  return `${res.statusCode} ${(await res.body.text()).trim()}`;
}

/** Which instance (0: A, 1: B) nginx sends a /socket.io/ request from here to (with ip_hash: every one). */
async function pickedBy(proxy: Nginx, servers: readonly [ServerHandle, ServerHandle]): Promise<0 | 1> {
  const before = await Promise.all(servers.map(async (h) => (await h.stats()).transports.poll.requests));
  const res = await request(`${proxy.url}/socket.io/?EIO=4&transport=polling`, {
    headers: { 'user-agent': PROBE_AGENT },
  });
  await res.body.dump();
  const after = await Promise.all(servers.map(async (h) => (await h.stats()).transports.poll.requests));
  return after[0]! > before[0]! ? 0 : 1;
}

type SocketioCase = { balance: 'round-robin' | 'ip-hash'; transport: string; what: (answer: string) => string };

const SOCKETIO_CASES: readonly SocketioCase[] = [
  {
    balance: 'round-robin',
    transport: 'socketio-poll',
    what: (answer) =>
      `Socket.IO polling, round robin (no stickiness): a request on the instance that did not make the session is answered ${answer}; published to instance A only (no adapter): a client connected on B would miss those messages`,
  },
  {
    balance: 'ip-hash',
    transport: 'socketio-poll, ip_hash',
    what: () =>
      'the control: Socket.IO polling behind ip_hash (sticky): every client of one address stays on one instance; published to that one (without an adapter a publish still reaches only its own instance’s clients)',
  },
];

/** One Socket.IO row: two fresh instances (polling only) behind an nginx with `c.balance`. */
async function measureSocketioCase(
  env: FieldEnv,
  load: FieldLoad,
  c: SocketioCase,
  title: string,
): Promise<FieldResult> {
  env.log.step(`field no-sticky: Socket.IO polling, ${c.balance}`, load.durationSec + 6);
  const servers = await Promise.all([
    startServer('socketio', { transport: 'polling' }),
    startServer('socketio', { transport: 'polling' }),
  ]);
  const [a, b] = servers;
  let proxy: Nginx | undefined;
  let r: RunResult | undefined;
  let problem: string | undefined;
  let notConnected = false;
  let clientErrors = 0;
  const connected = new Set<number>();
  let log: { status: number; upstream: string }[] = [];
  let answer = '';
  try {
    answer = await otherInstanceAnswer(a, b);
    proxy = await env.nginx({ upstreams: [a.port, b.port], settings: { balance: c.balance } });
    // The publisher posts to the pair's first instance: A, or with ip_hash the one nginx picked.
    const [first, second] = c.balance === 'ip-hash' && (await pickedBy(proxy, servers)) === 1 ? [b, a] : [a, b];
    const pair = new Pair(
      () => first,
      () => second,
      'poll',
    );
    const base = target('socketio', 'poll')!;
    // `ready` once every client's first attempt is over, connected or refused (as polling clients
    // are ready with their first request in flight): behind round robin most never connect, and the
    // run goes on so that what they miss is counted as lost. Errors are counted here as well as by
    // the Recorder, for a run that throws.
    const clients: ClientFactory = (opts) => {
      const settle: (() => void)[] = [];
      const tried = Array.from({ length: opts.count }, (_, i) => new Promise<void>((resolve) => (settle[i] = resolve)));
      const group = socketioPollingClientsWatched((i) => {
        connected.add(i);
        settle[i]!();
      })({
        ...opts,
        sink: {
          message: (...m) => opts.sink.message(...m),
          gap: (...g) => opts.sink.gap(...g),
          reset: (i) => opts.sink.reset(i),
          error: (i, err) => {
            clientErrors++;
            settle[i]!();
            opts.sink.error(i, err);
          },
        },
      });
      return { ...group, ready: Promise.all(tried).then(() => {}) };
    };
    r = await runScenario(pair.handle, base, { ...runParams(env, proxy, load), clientFactory: clients });
  } catch (err) {
    if (err instanceof ClientsNotConnected) notConnected = true;
    else problem = runFailed(err);
  } finally {
    if (proxy) log = await accessLog(proxy);
    // The servers first: the clients leave polls held upstream (a session's poll on the instance
    // that made it, its close sent to the other one), which nginx's graceful stop would wait for.
    await Promise.all(servers.map((s) => s.stop().catch(() => null)));
    await proxy?.stop();
  }
  const sessionUnknown = log.filter((x) => x.status === 400).length;
  const servedBy = (h: ServerHandle) => log.filter((x) => x.upstream === `127.0.0.1:${h.port}`).length;
  const lost = r ? r.lost : null;
  const duplicated = r ? r.duplicated : null;
  const row = {
    scenario: 'no-sticky',
    title,
    setting: 'naive' as const,
    what: c.what(answer),
    transport: c.transport,
    symptoms: {
      'HTTP 400 answers (Session ID unknown)': sessionUnknown,
      'client errors': clientErrors,
      lost,
      duplicated,
      'clients never connected': load.clients - connected.size,
      'requests on instance A': servedBy(a),
      'requests on instance B': servedBy(b),
    },
  };
  const fails =
    sessionUnknown > 0 || clientErrors > 0 || (lost ?? 0) > 0 || (duplicated ?? 0) > 0 || connected.size < load.clients;
  // Clients that did not even finish a first attempt, or nothing delivered because no client ever got
  // a session: the symptom here, not a broken harness (a publisher behind schedule still is).
  const symptomOnly =
    !problem &&
    (notConnected || (r !== undefined && harnessProblem(r, env.limits) === NOTHING_DELIVERED && connected.size === 0));
  return symptomOnly ? { ...row, status: 'ok', verdict: 'fails' } : fieldRow(row, r, fails, problem, env.limits);
}

const shape = (l: FieldLoad) =>
  `${l.clients} clients × ${l.ratePerSec} msg/s × ${l.payloadBytes} B × ${l.durationSec} s`;

export async function measureSticky(env: FieldEnv, opts: StickyOptions = {}): Promise<FieldResult[]> {
  const labLoad = { ...LAB_LOAD, ...opts.lab };
  const socketioLoad = { ...SOCKETIO_LOAD, ...opts.socketio };
  const title = `No sticky sessions: nginx round robin over two instances, published to one of them; lab ${shape(labLoad)}, Socket.IO ${shape(socketioLoad)}`;
  const lab = await measureLab(env, labLoad, opts.transports ?? ['poll', 'sse', 'ws'], title);
  const rows = [...lab];
  for (const c of SOCKETIO_CASES.filter((x) => x.balance === 'round-robin' || (opts.stickyControl ?? true)))
    rows.push(await measureSocketioCase(env, socketioLoad, c, title));
  return rows;
}
