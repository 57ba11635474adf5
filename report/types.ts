/**
 * The bench report, schema `transport-lab/bench@1`, written once: each TypeBox schema below is both
 * the JSON Schema that schema.ts validates every report against and, through `Static<>`, the type the
 * harness builds. Every figure is a median over repeats and keeps its per-repeat values next to it. A
 * run that failed or lost messages is data (`status: 'invalid'` with a reason), never a fast number.
 *
 * The rules a type cannot carry are conditions on the schemas (JSON Schema if/then/else):
 * - `reason` is required when `status` is 'invalid' and absent when it is 'ok';
 * - an 'ok' scenario lost nothing;
 * - `vsBare` and `floor` appear on lab scenarios only, `vsFloor` on any but the floor's;
 * - `relayLatenessP99Ms` appears exactly on scenarios measured over a relay (a network not `direct`).
 * What JSON Schema cannot say at all (null only in invalid results, median within min…max, one value
 * per repeat, expected = published × clients, every network one of params.networks) schema.ts checks
 * after the schema passed.
 */
import { TRANSPORT_KEYS } from '../server/counters.js';
import { HTTP_PROTOCOLS, type HttpProtocol } from '../server/protocol.js';
import { Type, type Static, type TSchema } from 'typebox';
import { NetworkProfileSchema } from '../server/network/profile-schema.js';

export const REPORT_SCHEMA = 'transport-lab/bench@1';

/**
 * `lab-redis`: the lab on the Redis feed, for comparing feeds in one run. `floor`: the leanest Node
 * program that puts the same bytes on the wire on every transport (bench/servers/floor.ts), the physical
 * limit every server's CPU is divided by (`vsFloor`). `better-sse` and `fastify-sse`: the SSE libraries
 * users would otherwise install (bench/servers/better-sse.ts, fastify-sse.ts). `shift`: the polling
 * snippet that tutorials teach (bench/servers/shift.ts), measured by `--claims` only.
 */
export const SERVER_NAMES = [
  'lab',
  'lab-redis',
  'bare',
  'floor',
  'socketio',
  'better-sse',
  'fastify-sse',
  'shift',
] as const;
/** The clients' header sets (bench/clients/browser-headers.ts): what Chromium sends, or the client libraries' own. */
export const HEADER_MODES = ['browser', 'minimal'] as const;
/** The request headers a run's clients send: what Chromium sends, or the client libraries' own. */
export type HeaderMode = (typeof HEADER_MODES)[number];
/** The bench's transports are the lab's /stats transport keys, by the same names. */
export const TRANSPORT_NAMES = TRANSPORT_KEYS;

const Server = Type.Enum(SERVER_NAMES);
const Transport = Type.Enum(TRANSPORT_NAMES);
const Status = Type.Enum(['ok', 'invalid']);
const Feed = Type.Enum(['memory', 'redis']);
/** What the clients spoke (bench/clients/http.ts): cleartext HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS. */
const Protocol = Type.Enum(HTTP_PROTOCOLS);
/** `browser`: Chromium's request headers (bench/clients/fixtures/chromium-headers.json); `minimal`: the client libraries' own. */
const Headers = Type.Enum(HEADER_MODES);
const Count = Type.Integer({ minimum: 0 });
const PositiveInt = Type.Integer({ minimum: 1 });
const Positive = Type.Number({ exclusiveMinimum: 0 });
const NonNegative = Type.Number({ minimum: 0 });
const Text = Type.String({ minLength: 1 });
/** A number, or null for "not measured" (schema.ts allows null only in invalid results). */
const NumOrNull = Type.Unsafe<number | null>({ type: ['number', 'null'] });
/** ISO 8601 UTC or with offset, as `new Date().toISOString()` writes it; safe in a file name once ':' → '-'. */
const IsoDateTime = Type.String({
  pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$',
});

/** A closed object: every property listed, nothing else allowed. */
const Obj = <P extends Record<string, TSchema>>(properties: P, options: Record<string, unknown> = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

/** JSON Schema's if/then/else: when `field` is `value`, `then` applies to the object, else `otherwise`. */
const when = (field: string, value: string, then: object, otherwise: object = {}) => ({
  if: { properties: { [field]: { const: value } }, required: [field] },
  // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword; this object is a schema, never awaited.
  then,
  else: otherwise,
});
/** `reason` required when invalid, forbidden when ok ("absent when ok"). */
const reasonRule = when('status', 'invalid', { required: ['reason'] }, { not: { required: ['reason'] } });
const statusFields = { status: Status, reason: Type.Optional(Text) };

/**
 * A figure measured once per repeat: the median, the spread, and every value. `null` means "not
 * measured" (a run that failed before it could measure; only ever in an invalid result): a missing
 * number is never replaced by a made-up one.
 */
export const Figure = Obj({ median: NumOrNull, min: NumOrNull, max: NumOrNull, values: Type.Array(NumOrNull) });

export const Env = Obj({
  node: Text,
  os: Text,
  cpus: PositiveInt,
  cpuModel: Type.String(),
  memoryBytes: Count,
  loadGenerator: Obj({ pid: Count, cpuUsPerSec: Type.Optional(NonNegative), threads: PositiveInt }),
  /** The `lab` server's feed and workers as asked on the command line (`--feed`, `--workers`); what served each scenario is in the scenario. */
  feed: Feed,
  workers: PositiveInt,
  argv: Type.Array(Type.String()),
});

/** How the lab compressed a scenario's traffic (server/config.ts wsDeflate, with httpGzip). */
export const COMPRESSIONS = ['on', 'no-context-takeover'] as const;
const Compression = Type.Enum([...COMPRESSIONS]);
/** Realistic JSON payloads (bench/measure/payloads.ts). */
export const PAYLOADS = ['chat', 'tick', 'patch'] as const;
const Payload = Type.Enum([...PAYLOADS]);

/** One scenario as the suite (bench/plan/suite.ts) or the command line defines it; `params.scenarios` lists them. */
export const ScenarioParams = Obj({
  name: Text,
  clients: PositiveInt,
  ratePerSec: Positive,
  payloadBytes: Count,
  durationSec: Positive,
  /** Fixed repeats for this scenario (otherwise the run's). */
  repeats: Type.Optional(PositiveInt),
  /** Short polling interval for this scenario (otherwise the run's). */
  shortPollIntervalMs: Type.Optional(PositiveInt),
  pace: Type.Optional(Type.Enum(['open-loop', 'lockstep'])),
  /** The network the clients reached the servers over: a name in `params.networks`. */
  network: Text,
  /** Only these servers measured this scenario (otherwise the run's). */
  servers: Type.Optional(Type.Array(Server)),
  /** Only these transports measured this scenario (otherwise the run's). */
  transports: Type.Optional(Type.Array(Transport)),
  /** The protocol the clients spoke; absent: cleartext HTTP/1.1. */
  protocol: Type.Optional(Protocol),
  /** The clients reached the server through this reverse proxy (bench/processes/nginx.ts, deploy/nginx.conf); absent: direct. */
  proxy: Type.Optional(Type.Literal('nginx')),
  /** `chat`: no publisher; every client sends `ratePerSec` messages a second and receives everyone's (bench/measure/chat.ts). */
  workload: Type.Optional(Type.Literal('chat')),
  /** The lab compressed (config wsDeflate and httpGzip: permessage-deflate with or without context takeover, gzip); absent: none. */
  compression: Type.Optional(Compression),
  /** What `data` holds (bench/measure/payloads.ts); absent: `t` and padding. */
  payload: Type.Optional(Payload),
  /** The chat's pages are on another origin than the lab: their sends are CORS requests, preflighted. */
  crossOrigin: Type.Optional(Type.Literal(true)),
  /** The chat's clients queued their sends this long and sent each queue as one batch; absent: one send per message. */
  batchMs: Type.Optional(Type.Integer({ minimum: 1 })),
  /** The chat had one more client sending this many messages a second, past its send budget (a flood); absent: none. */
  floodPerSec: Type.Optional(Type.Integer({ minimum: 1 })),
});

/** The parameters the run was started with (bench/stages/run-bench.ts `runBench`). */
export const Params = Obj({
  /** The suite (bench/plan/suite.ts), or 'custom' for --clients/--rate/--payload/--duration. */
  suite: Text,
  transports: Type.Array(Transport),
  servers: Type.Array(Server),
  repeats: PositiveInt,
  /** Set when the repeats were lowered to fit the suite's time budget. */
  repeatsNote: Type.Optional(Text),
  scenarios: Type.Array(ScenarioParams),
  /** 0 when the memory stage did not run. */
  memoryConnections: Count,
  /** 0 when autocannon did not run. */
  autocannonDurationSec: NonNegative,
  shortPollIntervalMs: PositiveInt,
  /** Publisher lag p99 (ms) above which a run is INVALID. */
  maxPublisherLagMs: Positive,
  /** Test hook: client 0 drops every Nth message, to prove loss makes a run INVALID. */
  lossyEvery: Type.Optional(PositiveInt),
  /** Every network profile a scenario ran over (server/network/profiles.ts), as it was run. */
  networks: Type.Array(NetworkProfileSchema, { minItems: 1 }),
  /** The clients' header set and cookie size (reports before these existed: minimal, no cookie). */
  headers: Type.Optional(Headers),
  cookieBytes: Type.Optional(Count),
});

export const ScenarioResult = Obj(
  {
    name: Text,
    server: Server,
    transport: Transport,
    clients: PositiveInt,
    ratePerSec: Positive,
    payloadBytes: Count,
    durationSec: Positive,
    /** The feed and worker processes that served this scenario (`lab-redis`: redis; the reference servers: their own in-process memory). */
    feed: Feed,
    workers: PositiveInt,
    /** Present when messages were published in lockstep (one at a time, each delivered before the next); else open loop. */
    pace: Type.Optional(Type.Literal('lockstep')),
    /** The network the clients reached the server over; `direct` (loopback): no relay. */
    network: NetworkProfileSchema,
    /** Through a reverse proxy (the shipped deploy/nginx.conf in front of the server); absent: direct. */
    proxy: Type.Optional(Type.Literal('nginx')),
    /** How the clients spoke HTTP; absent in reports made before it was recorded (cleartext HTTP/1.1, minimal headers). */
    http: Type.Optional(Obj({ protocol: Protocol, headers: Headers, cookieBytes: Count })),
    repeats: PositiveInt,
    ...statusFields,
    /** Totals over all repeats. */
    published: Count,
    delivered: Count,
    /** published × clients. */
    expected: Count,
    lost: Count,
    duplicated: Count,
    reordered: Count,
    gaps: Count,
    /** received − scheduled, milliseconds (coordinated omission corrected by construction). */
    latencyMs: Obj({ p50: Figure, p90: Figure, p99: Figure, max: Figure }),
    /** How late the publisher sent relative to its schedule, milliseconds. */
    publisherLagMs: Obj({ p99: Figure, max: Figure }),
    wire: Obj({
      bytesOutPerMsg: Figure,
      bytesInPerMsg: Figure,
      requestsPerMsg: Figure,
      /**
       * Client → server bytes per HTTP request (polling: over the measured window; SSE, WebSocket: the
       * connect phase, TLS handshake and HTTP/2 preface included); absent in older reports.
       */
      bytesInPerRequest: Type.Optional(Figure),
      /** HTTP requests per second over the measured window (publishing and drain), wall clock; absent in older reports. */
      requestsPerSec: Type.Optional(Figure),
    }),
    /**
     * The sketch names both the server and these figures `server`; JSON cannot hold both, so the
     * figures live here (documented in the README as a deliberate deviation).
     */
    serverMetrics: Obj({
      cpuUsPerMsg: Figure,
      eventLoopDelayP99Ms: Figure,
    }),
    /** Polling: answers received over the measured windows and how many carried no message (totals over repeats). */
    polls: Type.Optional(Obj({ answers: Count, empty: Count })),
    /** Over a relay: its lateness p99 over each measured window (actual − intended release), milliseconds. */
    relayLatenessP99Ms: Type.Optional(Figure),
    /** Lab figure divided by the bare server's for the same transport, network and parameters (medians). */
    vsBare: Type.Optional(
      Obj({ cpuUsPerMsg: Type.Number(), bytesOutPerMsg: Type.Number(), latencyP99: Type.Number() }),
    ),
    /**
     * This server's figure divided by the floor server's (bench/servers/floor.ts) for the same transport,
     * network and parameters (medians): every transport the floor served, every server but the floor itself.
     */
    vsFloor: Type.Optional(Obj({ cpuUsPerMsg: Type.Number(), latencyP99: Type.Number() })),
    /** `chat`: the clients sent (`ratePerSec` each) and received every client's messages; no publisher. */
    workload: Type.Optional(Type.Literal('chat')),
    /** The lab compressed: permessage-deflate (`on`: context takeover; `no-context-takeover`) and gzip. */
    compression: Type.Optional(Compression),
    /** What `data` held; absent: `t` and padding. */
    payload: Type.Optional(Payload),
    /** The clients' sends came from a page on another origin (CORS, preflighted). */
    crossOrigin: Type.Optional(Type.Literal(true)),
    /** The clients' sends were queued this long and sent as batches. */
    batchMs: Type.Optional(Type.Integer({ minimum: 1 })),
    /** One more client flooded at this rate (its sends in `chat.flood`). */
    floodPerSec: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The chat workload's figures (bench/measure/chat.ts): counts totalled over repeats, figures per repeat. */
    chat: Type.Optional(
      Obj({
        sent: Count,
        refused: Count,
        /** Sends answered `duplicate`: retries whose first attempt had counted. */
        duplicates: Count,
        /** Sends made again after their connection failed before the answer. */
        retries: Count,
        /** Requests or frames the sends went in (first attempts): `sent` unless batched. */
        batches: Type.Optional(Count),
        /**
         * The flooding client's sends, totalled over repeats: accepted (delivered to everyone), refused with
         * a code (the send budget), cut with its connection (a WebSocket closed for too many refusals).
         */
        flood: Type.Optional(Obj({ sent: Count, accepted: Count, refused: Count, cut: Count })),
        /** Due → acknowledged to the sender, milliseconds. */
        ackMs: Obj({ p50: Figure, p99: Figure }),
        /** Due → delivered to the last client, milliseconds. */
        everyoneMs: Obj({ p50: Figure, p99: Figure }),
        /** Client → server bytes (sends, polls, connects, frames) per sent message. */
        bytesUpPerSend: Figure,
        /** HTTP requests of any kind per sent message. */
        requestsPerSend: Figure,
        /** Server → client bytes per delivered message. */
        bytesDownPerDelivery: Figure,
      }),
    ),
    /** Protocol floor (lab only): bytes per message beyond the payload, and what the protocol needs at least. */
    floor: Type.Optional(
      Obj({ overheadBytesPerMsg: Type.Number(), floorBytesPerMsg: Type.Number(), excessBytesPerMsg: Type.Number() }),
    ),
  },
  {
    allOf: [
      reasonRule,
      // Losing messages makes a run invalid, never merely slow.
      when('status', 'ok', { properties: { lost: { const: 0 } } }),
      // Both comparisons are properties of the lab (lab ÷ bare, lab's overhead over the protocol floor).
      when('server', 'lab', {}, { not: { anyOf: [{ required: ['vsBare'] }, { required: ['floor'] }] } }),
      // Nothing is compared with itself.
      when('server', 'floor', { not: { required: ['vsFloor'] } }),
      // The relay's own lateness is there exactly when there was a relay.
      {
        if: {
          properties: { network: { type: 'object', properties: { direct: { const: true } }, required: ['direct'] } },
          required: ['network'],
        },
        // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword; this object is a schema, never awaited.
        then: { not: { required: ['relayLatenessP99Ms'] } },
        else: { required: ['relayLatenessP99Ms'] },
      },
    ],
  },
);

/**
 * Instructions the server executed per delivered message, counted by callgrind over lockstep windows
 * (bench/stages/instructions.ts): one value per window, deterministic but for GC and JIT timing. The gate's
 * CPU figure (bench:check), where time-based CPU moved too much to see a 25 % regression.
 */
export const InstructionResult = Obj(
  {
    server: Server,
    transport: Transport,
    clients: PositiveInt,
    /** Messages published per measured window. */
    windowMessages: PositiveInt,
    /** The lab doctored to do more work per delivered message (bench/servers/doctor.ts): the gate's positive control. */
    doctored: Type.Optional(Type.Literal(true)),
    ...statusFields,
    /** Instructions counted in each window ÷ deliveries in it (bench/stages/instructions.ts). */
    instructionsPerMsg: Figure,
  },
  reasonRule,
);

export const MemoryResult = Obj(
  {
    server: Server,
    transport: Transport,
    connections: PositiveInt,
    ...statusFields,
    heapBytesPerConn: Figure,
    rssBytesPerConn: Figure,
    /** Heap after every client disconnected and GC ran, minus the heap before they connected. */
    heapRetainedAfterCloseBytes: Figure,
    /** The lab compressed (wsDeflate with httpGzip): what its per-connection contexts cost; absent: none. */
    compression: Type.Optional(Compression),
    /** Measured after every client received one message (compressors allocate on first use); absent: idle. */
    active: Type.Optional(Type.Literal(true)),
  },
  reasonRule,
);

export const AutocannonResult = Obj(
  {
    name: Text,
    server: Server,
    method: Type.Enum(['GET', 'POST']),
    path: Type.String({ pattern: '^/' }),
    connections: PositiveInt,
    durationSec: Positive,
    ...statusFields,
    requestsPerSec: Figure,
    latencyMs: Obj({ p50: Figure, p99: Figure }),
    bytesPerRequest: Figure,
    errors: Count,
    non2xx: Count,
  },
  reasonRule,
);

export const MicroResult = Obj({
  name: Text,
  transport: Transport,
  /** Operations per second (tinybench throughput mean). */
  opsPerSec: NonNegative,
  /** Mean time per operation, nanoseconds. */
  meanNs: NonNegative,
  p99Ns: NonNegative,
  /** Relative margin of error, percent. */
  rme: NonNegative,
  samples: Count,
});

/** `p95Ms` is null when the step failed before it could measure (then the step is invalid). */
const SweepStep = Obj(
  {
    clients: PositiveInt,
    p95Ms: Type.Unsafe<number | null>({ type: ['number', 'null'], minimum: 0 }),
    lost: Count,
    ...statusFields,
  },
  reasonRule,
);

export const SweepResult = Obj({
  server: Server,
  transport: Transport,
  network: NetworkProfileSchema,
  ratePerSec: Positive,
  payloadBytes: Count,
  /** The rule: p95 delivery latency vs schedule ≤ 250 ms and no loss. */
  p95LimitMs: Positive,
  /** The last client count that passed (0 if none did). */
  maxClients: Count,
  steps: Type.Array(SweepStep),
});

/**
 * A claim that texts teaching this topic make, measured as stated (`npm run bench -- --claims`,
 * bench/stages/claims.ts): what was measured, how, and whether the claim stands.
 */
export const Claim = Obj({
  /** The claim, quoted. */
  claim: Text,
  /** The figures, in words with their units. */
  measured: Text,
  /** The scenario(s) and the method. */
  how: Text,
  verdict: Type.Enum(['holds', 'holds only on loopback', 'holds only over HTTP/1.1', 'wrong', 'not measured']),
});

/**
 * One setting of one field-failure scenario (`npm run bench -- --field`, bench/field/): the naive
 * setting that reproduces the failure, or the lab's that mitigates it, with the symptoms measured.
 */
export const FieldResult = Obj(
  {
    /** The scenario, e.g. `proxy-buffering`. */
    scenario: Text,
    /** The scenario in words. */
    title: Text,
    setting: Type.Enum(['naive', 'lab']),
    /** What this setting is, e.g. "nginx proxy_buffering on; the server sends no X-Accel-Buffering". */
    what: Text,
    transport: Text,
    ...statusFields,
    /** Measured symptoms, each name with its unit (e.g. `latency p99 ms`, `connections cut`); null: not measured. */
    symptoms: Type.Record(Type.String(), NumOrNull),
    /** What was seen: the failure (`fails`) or not (`works`); `invalid` when the harness could not tell. */
    verdict: Type.Enum(['fails', 'works', 'invalid']),
    /** How production timeouts and sizes were scaled down to run in seconds. */
    scaling: Type.Optional(Text),
  },
  reasonRule,
);

export const Report = Obj(
  {
    schema: Type.Literal(REPORT_SCHEMA),
    startedAt: IsoDateTime,
    finishedAt: IsoDateTime,
    git: Text,
    env: Env,
    params: Params,
    /** How each figure is measured, in words. */
    method: Type.Record(Type.String(), Type.String()),
    scenarios: Type.Array(ScenarioResult),
    memory: Type.Array(MemoryResult),
    /** `bench:check` only: instructions per delivered message (callgrind). */
    instructions: Type.Optional(Type.Array(InstructionResult)),
    autocannon: Type.Array(AutocannonResult),
    micro: Type.Array(MicroResult),
    sweep: Type.Optional(Type.Array(SweepResult)),
    /** `--claims` only: each claim against this run's scenarios. */
    claims: Type.Optional(Type.Array(Claim)),
    /** `--profile` only: each server process's V8 CPU profiles (`.cpuprofile`, one per thread; open in Chrome DevTools), relative to the report's folder. */
    profiles: Type.Optional(Type.Array(Obj({ server: Text, file: Text }))),
    /** `--field` only: each field failure with the naive setting and the lab's. */
    field: Type.Optional(Type.Array(FieldResult)),
  },
  { $schema: 'http://json-schema.org/draft-07/schema#', title: `Transport Lab bench report (${REPORT_SCHEMA})` },
);

export type ServerName = (typeof SERVER_NAMES)[number];
export type TransportName = (typeof TRANSPORT_NAMES)[number];
export type Figure = Static<typeof Figure>;
export type Env = Static<typeof Env>;
export type ScenarioParams = Static<typeof ScenarioParams>;
export type Params = Static<typeof Params>;
export type ScenarioResult = Static<typeof ScenarioResult>;
export type MemoryResult = Static<typeof MemoryResult>;
export type InstructionResult = Static<typeof InstructionResult>;
export type AutocannonResult = Static<typeof AutocannonResult>;
export type MicroResult = Static<typeof MicroResult>;
export type SweepResult = Static<typeof SweepResult>;
export type Claim = Static<typeof Claim>;
export type FieldResult = Static<typeof FieldResult>;
export type Report = Static<typeof Report>;

/** The protocol a result was measured over (reports before it was recorded: cleartext HTTP/1.1). */
export const protocolOf = (r: Pick<ScenarioResult, 'http'>): HttpProtocol => r.http?.protocol ?? 'http/1.1';
/** A protocol in report text. */
export const protocolLabel = (p: HttpProtocol): string =>
  ({ 'http/1.1': 'HTTP/1.1', 'https/1.1': 'HTTP/1.1 + TLS', h2: 'HTTP/2 + TLS' })[p];
