/**
 * `npm run bench` flags: parsing and help. What they resolve to is the plan (bench/plan/plan.ts); how
 * long it takes, the stages' estimate (bench/stages/estimate.ts), which lowers repeats to a suite's budget.
 */
import { parseArgs } from 'node:util';
import { customProfile, type NetworkProfile, parseNetworkList, PROFILES } from '../../server/network/profiles.js';
import { HEADER_MODES, type ServerName } from '../../report/types.js';
import { PUBLISHER_LAG_LIMIT_MS } from '../measure/run-scenario.js';
import { DEFAULT_HTTP, type HttpProtocol } from '../plan/http-setup.js';
import { type BenchOptions, protocolOfSpec, TRANSPORTS } from '../plan/plan.js';
import { SUITES, SWEEP, type ScenarioSpec } from '../plan/suite.js';
import { DEFAULT_LAB_SETUP, type LabSetup } from '../plan/targets.js';
import { estimateSec } from '../stages/index.js';
import { FIELD_SCENARIOS } from '../stages/field.js';

const SERVERS: readonly ServerName[] = ['lab', 'lab-redis', 'bare', 'floor', 'socketio', 'better-sse', 'fastify-sse'];
/** `lab-redis` runs only when asked for (or with --compare-feeds): it needs a Redis. */
const DEFAULT_SERVERS: readonly ServerName[] = ['lab', 'bare', 'floor', 'socketio', 'better-sse', 'fastify-sse'];

/**
 * Where a run's reports go unless `--out` says otherwise: a git-ignored folder, so that a first try never
 * overwrites the committed reports in results/ (those are written by `npm run results`, bench/cli/results.ts).
 */
export const DEFAULT_OUT = 'bench-out';

/** Short-polling clients poll this often unless `--short-poll-interval-ms` says otherwise. */
const SHORT_POLL_INTERVAL_MS = 1000;

/** Every flag once: parseArgs reads `type` and `short`, HELP prints `arg` and `help`. */
const FLAGS = {
  quick: { type: 'boolean', help: 'one scenario, one repeat (the estimate is printed first)' },
  sweep: {
    type: 'boolean',
    help: `capacity sweep: add clients until p95 latency > ${SWEEP.p95LimitMs} ms or any loss`,
  },
  'compare-feeds': {
    type: 'boolean',
    help: 'the lab on the memory feed and on the Redis feed, same transports and load',
  },
  feed: { type: 'string', arg: 'memory|redis|URL', help: `the lab's feed (redis = ${DEFAULT_LAB_SETUP.redisUrl})` },
  workers: { type: 'string', arg: 'N', help: 'lab worker processes on one port (needs the Redis feed)' },
  transports: { type: 'string', arg: TRANSPORTS.join(','), help: '(default: all)' },
  servers: { type: 'string', arg: SERVERS.join(','), help: `(default: ${DEFAULT_SERVERS.join(',')})` },
  clients: {
    type: 'string',
    arg: 'N',
    help: 'one custom scenario instead of the suite, with --rate, --payload, --duration (unset: the suite’s first)',
  },
  rate: { type: 'string', arg: 'MSG_PER_S', help: 'custom scenario: messages per second' },
  payload: { type: 'string', arg: 'BYTES', help: 'custom scenario: payload bytes' },
  duration: { type: 'string', arg: 'SEC', help: 'custom scenario: measured seconds' },
  repeats: { type: 'string', arg: 'N', help: 'repeats per scenario (servers alternate within each repeat)' },
  'memory-connections': { type: 'string', arg: 'N', help: 'idle connections for the memory measurement' },
  'no-memory': { type: 'boolean', help: 'skip idle memory' },
  'no-autocannon': { type: 'boolean', help: 'skip autocannon (request overhead)' },
  'no-micro': { type: 'boolean', help: 'skip tinybench (per-message encoding)' },
  'short-poll-interval-ms': {
    type: 'string',
    arg: 'MS',
    help: `short polling interval (default ${SHORT_POLL_INTERVAL_MS})`,
  },
  'max-publisher-lag-ms': {
    type: 'string',
    arg: 'MS',
    help: `publisher lag p99 above which a run is INVALID (default ${PUBLISHER_LAG_LIMIT_MS})`,
  },
  network: {
    type: 'string',
    arg: 'NAME,…|all',
    help: `clients reach the servers through the network emulator: ${Object.keys(PROFILES).join(', ')} (default: the suite's)`,
  },
  'rtt-ms': {
    type: 'string',
    arg: 'MS',
    help: 'a custom network (named custom, beside any --network): round-trip time',
  },
  'jitter-ms': { type: 'string', arg: 'MS', help: 'custom network: most a segment’s one-way delay may add (uniform)' },
  'down-kbps': {
    type: 'string',
    arg: 'KBPS',
    help: 'custom network: server → client rate, kbit/s or unlimited (default)',
  },
  'up-kbps': {
    type: 'string',
    arg: 'KBPS',
    help: 'custom network: client → server rate, kbit/s or unlimited (default)',
  },
  loss: { type: 'string', arg: '0..1', help: 'custom network: fraction of segments retransmitted (0.01 = 1 %)' },
  'retransmit-ms': {
    type: 'string',
    arg: 'MS',
    help: 'custom network: how long a lost segment holds (default max(200, 2 × RTT))',
  },
  'lossy-every': {
    type: 'string',
    arg: 'N',
    help: 'test hook: client 0 drops every Nth message (the run must come out INVALID)',
  },
  http: {
    type: 'string',
    arg: '1.1|2|1.1,2',
    help: 'HTTP version the clients speak (2: HTTP/2 over TLS; WebSocket stays HTTP/1.1 over TLS) (default 1.1)',
  },
  tls: { type: 'boolean', help: 'HTTP/1.1 over TLS (HTTPS) instead of cleartext' },
  field: {
    type: 'string',
    arg: 'all|NAME,…',
    help: 'field failures behind nginx (naive vs the lab’s setting) → results/field.{json,md,html}',
  },
  proxy: {
    type: 'string',
    arg: 'nginx',
    help: 'every scenario also through nginx (deploy/nginx.conf) in front of lab and bare, beside the direct run',
  },
  claims: {
    type: 'boolean',
    help: 'measure the claims tutorials make about these transports → results/claims.{json,md,html}',
  },
  'compare-compression': {
    type: 'boolean',
    help: 'realistic messages uncompressed and compressed (permessage-deflate with/without context takeover, gzip), the lab',
  },
  chat: {
    type: 'boolean',
    help: 'both directions: every client sends and receives everyone’s (loopback, 4g, nginx, HTTP/2; lab, Socket.IO)',
  },
  'compare-protocols': {
    type: 'boolean',
    help: 'HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS side by side (lab and bare)',
  },
  headers: {
    type: 'string',
    arg: HEADER_MODES.join('|'),
    help: 'request headers: what Chromium sends, or the client libraries’ own (default browser)',
  },
  'cookie-bytes': { type: 'string', arg: 'N', help: 'add a cookie of N bytes to every request (default 0)' },
  profile: { type: 'boolean', help: 'a CPU profile (--cpu-prof) of each server under test, in DIR/profiles/<report>/' },
  out: {
    type: 'string',
    arg: 'DIR',
    help: `where reports go (default ${DEFAULT_OUT}/, git-ignored; results/ is written by npm run results only)`,
  },
  help: { type: 'boolean', short: 'h', help: 'this text (also -h)' },
} as const;

export const HELP = [
  'npm run bench -- [flags]',
  ...Object.entries(FLAGS).map(([name, f]) => `  ${`--${name}${'arg' in f ? ` ${f.arg}` : ''}`.padEnd(27)} ${f.help}`),
].join('\n');

function list<T extends string>(raw: string | undefined, allowed: readonly T[], flag: string): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items)
    if (!allowed.includes(i as T)) throw new Error(`--${flag}: unknown "${i}" (expected ${allowed.join(', ')})`);
  return items as T[];
}

function positive(raw: string | undefined, flag: string, integer = true): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(`--${flag}: expected a positive ${integer ? 'integer' : 'number'}, got "${raw}"`);
  return n;
}

/** `suiteName` picks the suite outright (the CI gate's `check`); otherwise the flags do. */
export function parseBenchArgs(argv: string[], suiteName?: keyof typeof SUITES): BenchOptions {
  const { values } = parseArgs({ args: argv, strict: true, options: FLAGS });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const workers = positive(values.workers, 'workers') ?? 1;
  const feedFlag = values.feed ?? 'memory';
  const feed = feedFlag === 'redis' ? DEFAULT_LAB_SETUP.redisUrl : feedFlag;
  if (feed !== 'memory' && !/^rediss?:\/\//.test(feed))
    throw new Error(`--feed: expected memory, redis or a redis:// URL, got "${feedFlag}"`);
  if (workers > 1 && feed === 'memory')
    throw new Error(
      '--workers: several workers need the Redis feed (--feed redis): the memory feed lives in one process',
    );
  const lab: LabSetup = {
    feed,
    redisUrl: feed === 'memory' ? DEFAULT_LAB_SETUP.redisUrl : feed,
    redisKeyPrefix: `transport-lab-bench-${process.pid}-${Date.now().toString(36)}`,
    workers,
  };
  const compareFeeds = values['compare-feeds'] ?? false;
  const compareProtocols = values['compare-protocols'] ?? false;
  if (compareProtocols && (values.http !== undefined || values.tls))
    throw new Error('--compare-protocols: runs every protocol; leave out --http and --tls');
  const claims = values.claims ?? false;
  if (claims && (compareFeeds || compareProtocols || values.sweep || values.quick))
    throw new Error('--claims: a suite of its own; leave out --quick, --sweep and --compare-*');
  const chat = values.chat ?? false;
  if (chat && (claims || compareFeeds || compareProtocols || values.sweep || values.quick))
    throw new Error('--chat: a suite of its own; leave out --quick, --sweep, --claims and --compare-*');
  const compareCompression = values['compare-compression'] ?? false;
  if (compareCompression && (chat || claims || compareFeeds || compareProtocols || values.sweep || values.quick))
    throw new Error(
      '--compare-compression: a suite of its own; leave out --quick, --sweep, --chat, --claims and the other --compare-*',
    );
  const name =
    suiteName ??
    (values.quick
      ? 'quick'
      : compareFeeds
        ? 'feeds'
        : compareProtocols
          ? 'protocols'
          : claims
            ? 'claims'
            : chat
              ? 'chat'
              : compareCompression
                ? 'compression'
                : 'default');
  const suite = SUITES[name];
  const first = suite.scenarios[0]!;
  const clients = positive(values.clients, 'clients');
  const rate = positive(values.rate, 'rate', false);
  const payload = positive(values.payload, 'payload');
  const duration = positive(values.duration, 'duration', false);
  const custom = clients !== undefined || rate !== undefined || payload !== undefined || duration !== undefined;
  const shapes: ScenarioSpec[] = custom
    ? [
        {
          name: 'custom',
          clients: clients ?? first.clients,
          ratePerSec: rate ?? first.ratePerSec,
          payloadBytes: payload ?? first.payloadBytes,
          durationSec: duration ?? first.durationSec,
        },
      ]
    : suite.scenarios.map((s) => ({ ...s }));
  // The sweep runs on loopback unless --network says otherwise: the suite's extra network pairs are scenarios.
  const overNets = overNetworks(values.sweep ? shapes.filter((s) => s.network === undefined) : shapes, values);
  const { networks } = overNets;
  if (values.proxy !== undefined && values.proxy !== 'nginx')
    throw new Error(`--proxy: expected nginx, got "${values.proxy}"`);
  if (values.proxy && (values.http !== undefined || values.tls))
    throw new Error('--proxy: the shipped nginx config serves cleartext HTTP/1.1; leave out --http and --tls');
  const overProto = overProtocols(overNets.scenarios, values);
  // --proxy nginx: every scenario direct and again through nginx, so the hop's cost is measured in one run.
  const scenarios = values.proxy ? overProto.flatMap((s) => [s, { ...s, proxy: 'nginx' as const }]) : overProto;
  if (suiteName === 'check' && networks.some((n) => !n.direct))
    throw new Error('--network: the CI gate runs on loopback only (its baseline was)');
  if (suiteName === 'check' && scenarios.some((s) => (s.protocol ?? 'http/1.1') !== 'http/1.1'))
    throw new Error('--http/--tls: the CI gate runs cleartext HTTP/1.1 only (its baseline was)');
  if (values.sweep && scenarios.some((s) => protocolOfSpec(s) !== 'http/1.1'))
    throw new Error('--sweep: the capacity sweep runs over cleartext HTTP/1.1 only; leave out --http/--tls');
  const headers = list(values.headers, HEADER_MODES, 'headers');
  if (headers !== undefined && headers.length !== 1)
    throw new Error(`--headers: expected one of ${HEADER_MODES.join(', ')}`);
  const cookieBytes = values['cookie-bytes'] === undefined ? 0 : Number(values['cookie-bytes']);
  if (!Number.isInteger(cookieBytes) || cookieBytes < 0 || cookieBytes > 16_384) {
    throw new Error(`--cookie-bytes: expected an integer from 0 to 16384, got "${values['cookie-bytes']}"`);
  }
  const opts: BenchOptions = {
    transports: list(values.transports, TRANSPORTS, 'transports') ?? [...TRANSPORTS],
    servers: list(values.servers, SERVERS, 'servers') ?? [...DEFAULT_SERVERS],
    scenarios,
    networks,
    repeats: positive(values.repeats, 'repeats') ?? suite.repeats,
    out: values.out ?? DEFAULT_OUT,
    memoryConnections: positive(values['memory-connections'], 'memory-connections') ?? suite.memoryConnections,
    memoryRepeats: suite.memoryRepeats ?? 1,
    // --sweep is its own mode: only the capacity sweep runs.
    memory: !values['no-memory'] && !values.sweep && suite.memoryConnections > 0,
    autocannon: !values['no-autocannon'] && !values.sweep && suite.autocannonDurationSec > 0,
    autocannonDurationSec: suite.autocannonDurationSec,
    micro: !values['no-micro'] && !values.sweep && suite.microTimeMs > 0,
    microTimeMs: suite.microTimeMs,
    sweep: values.sweep ?? false,
    shortPollIntervalMs: positive(values['short-poll-interval-ms'], 'short-poll-interval-ms') ?? SHORT_POLL_INTERVAL_MS,
    lossyEvery: positive(values['lossy-every'], 'lossy-every') ?? 0,
    maxPublisherLagMs: positive(values['max-publisher-lag-ms'], 'max-publisher-lag-ms') ?? PUBLISHER_LAG_LIMIT_MS,
    suite: custom ? 'custom' : name,
    argv,
    repeatsNote: undefined,
    lab,
    headers: headers?.[0] ?? suite.headers ?? DEFAULT_HTTP.headers,
    cookieBytes,
    ...(values.profile ? { profile: true } : {}),
    ...(suite.instructions ? { instructions: suite.instructions } : {}),
    ...(suite.memoryServers ? { memoryServers: suite.memoryServers } : {}),
  };
  if (values.field !== undefined) {
    const names = FIELD_SCENARIOS.map((f) => f.name);
    const asked = values.field === 'all' || values.field === '' ? names : list(values.field, names, 'field')!;
    // Only the field scenarios run: no suite scenarios, no servers of the suite's own.
    opts.field = asked;
    opts.scenarios = [];
    opts.servers = [];
    opts.memory = false;
    opts.autocannon = false;
    opts.micro = false;
    opts.networks = [PROFILES.loopback];
  }
  if (claims) {
    // The claims are about the lab's transports and the tutorials' snippet (bench/servers/shift.ts).
    opts.servers = ['lab', 'shift'];
    opts.claims = true;
  }
  if (compareCompression) {
    // Only the lab has the setting: its scenarios, and its memory per connection with each setting.
    opts.servers = ['lab'];
    opts.memoryCompression = opts.memory;
    opts.autocannon = false;
    opts.micro = false;
  }
  if (chat) {
    // The lab and Socket.IO take client sends; nothing but the chat scenarios is measured.
    opts.servers = ['lab', 'socketio'];
    opts.memory = false;
    opts.autocannon = false;
    opts.micro = false;
  }
  if (compareFeeds) {
    // The lab on each feed, same transports, same load: what the Redis feed costs per message.
    opts.servers = ['lab', 'lab-redis'];
    opts.memory = false;
    opts.autocannon = false;
    opts.micro = false;
  }
  // Repeats default to 3; when the whole suite would not fit its time budget, fewer (at least 1), and
  // the report says so. `--repeats N` always wins.
  if (values.repeats === undefined && !custom) {
    while (opts.repeats > 1 && estimateSec(opts) > suite.budgetSec) opts.repeats--;
    if (opts.repeats < suite.repeats) {
      opts.repeatsNote = `repeats lowered from ${suite.repeats} to ${opts.repeats} to fit the ${suite.budgetSec} s budget of this suite; use --repeats ${suite.repeats} (or fewer --transports/--servers) for medians over ${suite.repeats}`;
    }
  }
  return opts;
}

/**
 * The scenarios over their protocols: without `--http`/`--tls`, the suite's own (cleartext HTTP/1.1
 * unless a scenario names one); with them, every scenario once per protocol asked for.
 */
function overProtocols(
  scenarios: ScenarioSpec[],
  values: { http?: string | undefined; tls?: boolean | undefined },
): ScenarioSpec[] {
  if (values.http === undefined && !values.tls) return scenarios;
  const versions = list(values.http ?? '1.1', ['1.1', '2'] as const, 'http') ?? ['1.1'];
  const protocols = [
    ...new Set(versions.map((v): HttpProtocol => (v === '2' ? 'h2' : values.tls ? 'https/1.1' : 'http/1.1'))),
  ];
  return scenarios.flatMap((s) => protocols.map((protocol) => ({ ...s, protocol })));
}

const CUSTOM_NETWORK_FLAGS = ['rtt-ms', 'jitter-ms', 'down-kbps', 'up-kbps', 'loss', 'retransmit-ms'] as const;

/**
 * The scenarios over their networks. Without `--network` or a custom-network flag, the suite's own:
 * each scenario on the network it names, loopback when it names none. With them, every scenario the
 * suite runs on loopback, once per network asked for (the `--network` list, then `custom`); the
 * suite's own network pairs give way to what was asked.
 */
function overNetworks(
  shapes: ScenarioSpec[],
  values: Partial<Record<'network' | (typeof CUSTOM_NETWORK_FLAGS)[number], string>>,
): { scenarios: ScenarioSpec[]; networks: NetworkProfile[] } {
  const customAsked = CUSTOM_NETWORK_FLAGS.some((f) => values[f] !== undefined);
  if (values.network === undefined && !customAsked) {
    const scenarios = shapes.map((s) => ({ ...s, network: s.network ?? PROFILES.loopback.name }));
    return {
      scenarios,
      networks: parseNetworkList([...new Set(scenarios.map((s) => s.network))].join(','), 'suite network'),
    };
  }
  const networks = values.network === undefined ? [] : parseNetworkList(values.network, '--network');
  if (customAsked) {
    networks.push(
      customProfile({
        rttMs: values['rtt-ms'],
        jitterMs: values['jitter-ms'],
        downKbps: values['down-kbps'],
        upKbps: values['up-kbps'],
        loss: values.loss,
        retransmitMs: values['retransmit-ms'],
      }),
    );
  }
  const base = shapes.filter((s) => s.network === undefined);
  return { scenarios: networks.flatMap((n) => base.map((s) => ({ ...s, network: n.name }))), networks };
}
