/**
 * The JSON Schema (draft-07) of `transport-lab/bench@1`, written by hand to match ./types.ts field for
 * field, and `validateReport`, which every writer calls before a report touches the disk.
 *
 * Beyond the shapes in types.ts the schema pins what the type comments promise:
 * - `reason` is required when `status` is 'invalid' and absent when it is 'ok' ("absent when ok");
 * - an 'ok' scenario lost nothing ("a run that … lost messages is data (`status: 'invalid'`)");
 * - `vsBare` and `floor` appear on lab scenarios only;
 * - numbers are finite (ajv `strictNumbers`): NaN and Infinity never pass as figures; a figure's
 *   median/min/max/values and a sweep step's p95Ms may be null ("not measured").
 * `validateReport` then checks what JSON Schema draft-07 cannot say: null appears only in 'invalid'
 * results, every figure's median lies within [min, max] and min/max are the extremes of its values
 * (nulls skipped), an 'ok' scenario's figures hold one value per repeat, and `expected = published × clients`.
 */
import { Ajv, type ErrorObject } from 'ajv';
import {
  REPORT_SCHEMA,
  type AutocannonResult,
  type Env,
  type Figure,
  type MemoryResult,
  type MicroResult,
  type Report,
  type ScenarioResult,
  type ScenarioStatus,
  type ServerName,
  type SweepResult,
  type TransportName,
} from './types.js';

type JsonSchema = Record<string, unknown>;

/** Compiles only when `List` names every member of `Union`. */
type Covers<Union, List extends readonly Union[]> = [Exclude<Union, List[number]>] extends [never] ? List : never;

const SERVERS = ['lab', 'lab-redis', 'bare', 'socketio'] as const satisfies Covers<ServerName, readonly ['lab', 'lab-redis', 'bare', 'socketio']>;
const TRANSPORTS = ['poll', 'short-poll', 'sse', 'ws'] as const satisfies Covers<
  TransportName,
  readonly ['poll', 'short-poll', 'sse', 'ws']
>;
const STATUSES = ['ok', 'invalid'] as const satisfies Covers<ScenarioStatus, readonly ['ok', 'invalid']>;

const ref = (name: string): JsonSchema => ({ $ref: `#/definitions/${name}` });
const num: JsonSchema = { type: 'number' };
/** A number, or null for "not measured" (validateReport allows null only in invalid results). */
const numOrNull: JsonSchema = { type: ['number', 'null'] };
const count: JsonSchema = { type: 'integer', minimum: 0 };
const positiveInt: JsonSchema = { type: 'integer', minimum: 1 };
const text: JsonSchema = { type: 'string', minLength: 1 };

type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];

/**
 * An object schema for the TS type `T`: `properties` must name every field of `T` (the compiler checks
 * it, so schema and types cannot drift apart silently), all required except `optional`, nothing else
 * allowed.
 */
// A type alias, not an interface: only aliases are assignable to Record<string, unknown>.
type ObjectSchema = {
  type: 'object';
  properties: Record<string, JsonSchema>;
  required: string[];
  additionalProperties: false;
};

function object<T>(
  properties: { [K in keyof Required<T>]: JsonSchema },
  optional: readonly OptionalKeys<T>[] = [],
): ObjectSchema {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((k) => !(optional as readonly string[]).includes(k)),
    additionalProperties: false,
  };
}

/** `reason` required when invalid, forbidden when ok (draft-07 if/then/else). */
const reasonRule: JsonSchema = {
  if: { properties: { status: { const: 'invalid' } }, required: ['status'] },
  then: { required: ['reason'] },
  else: { not: { required: ['reason'] } },
};

/** Status plus the reason rule, shared by every result that can be invalid. */
const statusFields = { status: ref('status'), reason: text };

const scenario: JsonSchema = {
  ...object<ScenarioResult>(
    {
      name: text,
      server: ref('server'),
      transport: ref('transport'),
      clients: positiveInt,
      ratePerSec: { type: 'number', exclusiveMinimum: 0 },
      payloadBytes: count,
      durationSec: { type: 'number', exclusiveMinimum: 0 },
      feed: { enum: ['memory', 'redis'] },
      workers: positiveInt,
      pace: { const: 'lockstep' },
      repeats: positiveInt,
      ...statusFields,
      published: count,
      delivered: count,
      expected: count,
      lost: count,
      duplicated: count,
      reordered: count,
      gaps: count,
      latencyMs: object<ScenarioResult['latencyMs']>({ p50: ref('figure'), p90: ref('figure'), p99: ref('figure'), max: ref('figure') }),
      publisherLagMs: object<ScenarioResult['publisherLagMs']>({ p99: ref('figure'), max: ref('figure') }),
      wire: object<ScenarioResult['wire']>({ bytesOutPerMsg: ref('figure'), bytesInPerMsg: ref('figure'), requestsPerMsg: ref('figure') }),
      serverMetrics: object<ScenarioResult['serverMetrics']>(
        {
          cpuUsPerMsg: ref('figure'),
          heapBytesPerConn: ref('figure'),
          rssBytesPerConn: ref('figure'),
          eventLoopDelayP99Ms: ref('figure'),
        },
        ['heapBytesPerConn', 'rssBytesPerConn'],
      ),
      vsBare: object<NonNullable<ScenarioResult['vsBare']>>({ cpuUsPerMsg: num, bytesOutPerMsg: num, latencyP99: num }),
      floor: object<NonNullable<ScenarioResult['floor']>>({ overheadBytesPerMsg: num, floorBytesPerMsg: num, excessBytesPerMsg: num }),
    },
    ['reason', 'pace', 'vsBare', 'floor'],
  ),
  allOf: [
    reasonRule,
    // An ok scenario lost nothing: losing messages makes a run invalid, never merely slow.
    { if: { properties: { status: { const: 'ok' } }, required: ['status'] }, then: { properties: { lost: { const: 0 } } } },
    // Both comparisons are properties of the lab (lab ÷ bare, lab's overhead over the protocol floor).
    {
      if: { properties: { server: { const: 'lab' } }, required: ['server'] },
      else: { not: { anyOf: [{ required: ['vsBare'] }, { required: ['floor'] }] } },
    },
  ],
};

const memory: JsonSchema = {
  ...object<MemoryResult>(
    {
      server: ref('server'),
      transport: ref('transport'),
      connections: positiveInt,
      ...statusFields,
      heapBytesPerConn: ref('figure'),
      rssBytesPerConn: ref('figure'),
      heapRetainedAfterCloseBytes: ref('figure'),
    },
    ['reason'],
  ),
  ...reasonRule,
};

const autocannon: JsonSchema = {
  ...object<AutocannonResult>(
    {
      name: text,
      server: ref('server'),
      method: { enum: ['GET', 'POST'] },
      path: { type: 'string', pattern: '^/' },
      connections: positiveInt,
      durationSec: { type: 'number', exclusiveMinimum: 0 },
      ...statusFields,
      requestsPerSec: ref('figure'),
      latencyMs: object<AutocannonResult['latencyMs']>({ p50: ref('figure'), p99: ref('figure') }),
      bytesPerRequest: ref('figure'),
      errors: count,
      non2xx: count,
    },
    ['reason'],
  ),
  ...reasonRule,
};

const micro: JsonSchema = object<MicroResult>({
  name: text,
  transport: ref('transport'),
  opsPerSec: { type: 'number', minimum: 0 },
  meanNs: { type: 'number', minimum: 0 },
  p99Ns: { type: 'number', minimum: 0 },
  rme: { type: 'number', minimum: 0 },
  samples: count,
});

const sweepStep: JsonSchema = {
  ...object<SweepResult['steps'][number]>({ clients: positiveInt, p95Ms: { ...numOrNull, minimum: 0 }, lost: count, ...statusFields }, ['reason']),
  ...reasonRule,
};

const sweep: JsonSchema = object<SweepResult>({
  server: ref('server'),
  transport: ref('transport'),
  ratePerSec: { type: 'number', exclusiveMinimum: 0 },
  payloadBytes: count,
  p95LimitMs: { type: 'number', exclusiveMinimum: 0 },
  maxClients: count,
  steps: { type: 'array', items: sweepStep },
});

/** ISO 8601 UTC or with offset, as `new Date().toISOString()` writes it; also safe in a file name once ':' → '-'. */
const ISO_DATE_TIME = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$';

export const reportJsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Transport Lab bench report (transport-lab/bench@1)',
  definitions: {
    server: { enum: [...SERVERS] },
    transport: { enum: [...TRANSPORTS] },
    status: { enum: [...STATUSES] },
    figure: object<Figure>({ median: numOrNull, min: numOrNull, max: numOrNull, values: { type: 'array', items: numOrNull } }),
    scenario,
    memory,
    autocannon,
    micro,
    sweep,
  },
  ...object<Report>(
    {
      schema: { const: REPORT_SCHEMA },
      startedAt: { type: 'string', pattern: ISO_DATE_TIME },
      finishedAt: { type: 'string', pattern: ISO_DATE_TIME },
      git: text,
      env: object<Env>({
        node: text,
        os: text,
        cpus: positiveInt,
        cpuModel: { type: 'string' },
        memoryBytes: count,
        loadGenerator: object<Env['loadGenerator']>({ pid: count, cpuUsPerSec: { type: 'number', minimum: 0 }, threads: positiveInt }, [
          'cpuUsPerSec',
        ]),
        feed: { enum: ['memory', 'redis'] },
        workers: positiveInt,
        argv: { type: 'array', items: { type: 'string' } },
      }),
      params: { type: 'object' },
      method: { type: 'object', additionalProperties: { type: 'string' } },
      scenarios: { type: 'array', items: ref('scenario') },
      memory: { type: 'array', items: ref('memory') },
      autocannon: { type: 'array', items: ref('autocannon') },
      micro: { type: 'array', items: ref('micro') },
      sweep: { type: 'array', items: ref('sweep') },
    },
    ['sweep'],
  ),
} as const;

/** Thrown by writers when a report does not validate; `errors` lists every problem. */
export class ReportValidationError extends Error {
  readonly code = 'BENCH_ERR_REPORT_INVALID';
  constructor(readonly errors: string[]) {
    super(`the bench report does not validate against ${REPORT_SCHEMA}:\n- ${errors.join('\n- ')}`);
    this.name = 'ReportValidationError';
  }
}

export type ValidationResult = { ok: true } | { ok: false; errors: string[] };

// allErrors: list every problem at once; strictNumbers: NaN/Infinity are not numbers in a report.
const ajv = new Ajv({ allErrors: true, strictNumbers: true });
const validateSchema = ajv.compile(reportJsonSchema);

function describe(e: ErrorObject): string {
  const at = e.instancePath === '' ? '(root)' : e.instancePath;
  const extra =
    e.keyword === 'additionalProperties'
      ? ` '${String(e.params['additionalProperty'])}'`
      : e.keyword === 'enum'
        ? ` (${(e.params['allowedValues'] as unknown[]).map(String).join(', ')})`
        : e.keyword === 'const'
          ? ` (${JSON.stringify(e.params['allowedValue'])})`
          : '';
  return `${at} ${e.message ?? e.keyword}${extra}`;
}

/**
 * Median within [min, max], and min/max the extremes of `values`, over what was measured (nulls are
 * skipped). With `ok`, the result is ok: nothing in the figure may be null, and it holds one value per
 * repeat when `repeats` is given.
 */
function checkFigure(f: Figure, at: string, ok: boolean, repeats: number | undefined, errors: string[]): void {
  if (ok) {
    for (const key of ['median', 'min', 'max'] as const) {
      if (f[key] === null) errors.push(`${at}/${key} is null (not measured) in an ok result`);
    }
    f.values.forEach((v, i) => {
      if (v === null) errors.push(`${at}/values/${i} is null (not measured) in an ok result`);
    });
  }
  const { median, min, max } = f;
  const nulls = [median, min, max].filter((x) => x === null).length;
  if (nulls !== 0 && nulls !== 3) {
    errors.push(`${at} median/min/max ${median}/${min}/${max} must be all numbers or all null`);
  }
  const measured = f.values.filter((v): v is number => v !== null);
  if (min !== null && max !== null) {
    // Medians are computed from the same values; allow float noise only.
    const eps = 1e-9 * Math.max(1, Math.abs(max), Math.abs(min));
    if (median !== null && !(min - eps <= median && median <= max + eps)) {
      errors.push(`${at} median ${median} is outside min…max ${min}…${max}`);
    }
    if (measured.length > 0) {
      const lo = Math.min(...measured);
      const hi = Math.max(...measured);
      if (Math.abs(lo - min) > eps || Math.abs(hi - max) > eps) {
        errors.push(`${at} min/max ${min}/${max} are not the extremes of values (${lo}/${hi})`);
      }
    } else if (f.values.length > 0) {
      errors.push(`${at} min/max ${min}/${max} are not the extremes of values (none measured)`);
    }
  } else if (min === null && max === null && measured.length > 0) {
    errors.push(`${at} min/max ${min}/${max} are not the extremes of values (${Math.min(...measured)}/${Math.max(...measured)})`);
  }
  if (repeats !== undefined && f.values.length !== repeats) {
    errors.push(`${at} has ${f.values.length} values for ${repeats} repeats`);
  }
}

function isFigure(x: unknown): x is Figure {
  return typeof x === 'object' && x !== null && 'median' in x && 'values' in x;
}

/** Visits every Figure under `x`, with its JSON pointer. */
function eachFigure(x: unknown, at: string, visit: (f: Figure, at: string) => void): void {
  if (isFigure(x)) return visit(x, at);
  if (typeof x !== 'object' || x === null) return;
  for (const [k, v] of Object.entries(x)) eachFigure(v, `${at}/${k}`, visit);
}

/** The checks draft-07 cannot express; runs only on a report that already matches the schema. */
function checkConsistency(r: Report): string[] {
  const errors: string[] = [];
  r.scenarios.forEach((s, i) => {
    const at = `/scenarios/${i}`;
    if (s.expected !== s.published * s.clients) {
      errors.push(`${at}/expected ${s.expected} is not published × clients = ${s.published * s.clients}`);
    }
    // An invalid scenario may have stopped before its last repeat; an ok one measured every repeat.
    const ok = s.status === 'ok';
    eachFigure(s, at, (f, p) => checkFigure(f, p, ok, ok ? s.repeats : undefined, errors));
  });
  for (const key of ['memory', 'autocannon'] as const) {
    r[key].forEach((m, i) => eachFigure(m, `/${key}/${i}`, (f, p) => checkFigure(f, p, m.status === 'ok', undefined, errors)));
  }
  r.sweep?.forEach((sw, i) =>
    sw.steps.forEach((st, j) => {
      if (st.status === 'ok' && st.p95Ms === null) errors.push(`/sweep/${i}/steps/${j}/p95Ms is null (not measured) in an ok step`);
    }),
  );
  return errors;
}

/** Validates a report (as it will be serialised: validate `JSON.parse(JSON.stringify(r))` to be exact). */
export function validateReport(x: unknown): ValidationResult {
  if (!validateSchema(x)) {
    return { ok: false, errors: (validateSchema.errors ?? []).map(describe) };
  }
  const errors = checkConsistency(x as unknown as Report);
  return errors.length === 0 ? { ok: true } : { ok: false, errors };
}
