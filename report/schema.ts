/**
 * `validateReport`, which every writer calls before a report touches the disk: the JSON Schema of
 * `transport-lab/bench@1` (the TypeBox schemas in ./types.ts, which are also the report's types), then
 * what JSON Schema cannot say: null ("not measured") appears only in 'invalid' results, every figure's
 * median lies within [min, max] and min/max are the extremes of its values (nulls skipped), an 'ok'
 * scenario's figures hold one value per repeat, `expected = published × clients`, and every
 * scenario's and sweep's network is the profile of that name in `params.networks`.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { Report as ReportSchema, REPORT_SCHEMA, type Figure, type Report } from './types.js';

/** The report's JSON Schema (draft-07), as a plain JSON document. */
export const reportJsonSchema = ReportSchema;

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
const validateSchema = new Ajv({ allErrors: true, strictNumbers: true }).compile(reportJsonSchema);

function describe(e: ErrorObject): string {
  const at = e.instancePath === '' ? '(root)' : e.instancePath;
  const p = e.params as Record<string, unknown>;
  const extra =
    e.keyword === 'additionalProperties'
      ? ` '${String(p['additionalProperty'])}'`
      : e.keyword === 'enum'
        ? ` (${(p['allowedValues'] as unknown[]).map(String).join(', ')})`
        : e.keyword === 'const'
          ? ` (${JSON.stringify(p['allowedValue'])})`
          : '';
  return `${at} ${e.message ?? e.keyword}${extra}`;
}

/**
 * Median within [min, max], and min/max the extremes of `values`, over what was measured (nulls are
 * skipped). With `ok`, the result is ok: nothing in the figure may be null, and it holds one value per
 * repeat when `repeats` is given.
 */
function checkFigure(f: Figure, at: string, ok: boolean, repeats: number | undefined, errors: string[]): void {
  const { median, min, max } = f;
  if (ok) {
    for (const key of ['median', 'min', 'max'] as const)
      if (f[key] === null) errors.push(`${at}/${key} is null (not measured) in an ok result`);
    f.values.forEach((v, i) => {
      if (v === null) errors.push(`${at}/values/${i} is null (not measured) in an ok result`);
    });
  }
  const nulls = [median, min, max].filter((x) => x === null).length;
  if (nulls !== 0 && nulls !== 3)
    errors.push(`${at} median/min/max ${median}/${min}/${max} must be all numbers or all null`);
  const measured = f.values.filter((v): v is number => v !== null);
  const extremes = measured.length ? `${Math.min(...measured)}/${Math.max(...measured)}` : 'none measured';
  if (min !== null && max !== null) {
    // Medians are computed from the same values; allow float noise only.
    const eps = 1e-9 * Math.max(1, Math.abs(max), Math.abs(min));
    if (median !== null && !(min - eps <= median && median <= max + eps))
      errors.push(`${at} median ${median} is outside min…max ${min}…${max}`);
    const off = measured.length
      ? Math.abs(Math.min(...measured) - min) > eps || Math.abs(Math.max(...measured) - max) > eps
      : f.values.length > 0;
    if (off) errors.push(`${at} min/max ${min}/${max} are not the extremes of values (${extremes})`);
  } else if (min === null && max === null && measured.length) {
    errors.push(`${at} min/max ${min}/${max} are not the extremes of values (${extremes})`);
  }
  if (repeats !== undefined && f.values.length !== repeats)
    errors.push(`${at} has ${f.values.length} values for ${repeats} repeats`);
}

const isFigure = (x: unknown): x is Figure => typeof x === 'object' && x !== null && 'median' in x && 'values' in x;

/** Visits every Figure under `x`, with its JSON pointer. */
function eachFigure(x: unknown, at: string, visit: (f: Figure, at: string) => void): void {
  if (isFigure(x)) visit(x, at);
  else if (typeof x === 'object' && x !== null)
    for (const [k, v] of Object.entries(x)) eachFigure(v, `${at}/${k}`, visit);
}

/** The checks JSON Schema cannot express; runs only on a report that already matches the schema. */
function checkConsistency(r: Report): string[] {
  const errors: string[] = [];
  const networks = new Map(r.params.networks.map((n) => [n.name, JSON.stringify(n)]));
  if (networks.size !== r.params.networks.length) errors.push('/params/networks names a network twice');
  const checkNetwork = (name: string, profile: unknown, at: string) => {
    const listed = networks.get(name);
    if (listed === undefined) errors.push(`${at} "${name}" is not one of /params/networks`);
    else if (profile !== undefined && JSON.stringify(profile) !== listed)
      errors.push(`${at} differs from the "${name}" of /params/networks`);
  };
  for (const [i, s] of r.params.scenarios.entries())
    checkNetwork(s.network, undefined, `/params/scenarios/${i}/network`);
  r.scenarios.forEach((s, i) => {
    const at = `/scenarios/${i}`;
    checkNetwork(s.network.name, s.network, `${at}/network`);
    if (s.expected !== s.published * s.clients)
      errors.push(`${at}/expected ${s.expected} is not published × clients = ${s.published * s.clients}`);
    // An invalid scenario may have stopped before its last repeat; an ok one measured every repeat.
    const ok = s.status === 'ok';
    eachFigure(s, at, (f, p) => checkFigure(f, p, ok, ok ? s.repeats : undefined, errors));
  });
  for (const key of ['memory', 'autocannon'] as const) {
    for (const [i, m] of r[key].entries())
      eachFigure(m, `/${key}/${i}`, (f, p) => checkFigure(f, p, m.status === 'ok', undefined, errors));
  }
  for (const [i, sw] of (r.sweep ?? []).entries()) {
    checkNetwork(sw.network.name, sw.network, `/sweep/${i}/network`);
    for (const [j, st] of sw.steps.entries()) {
      if (st.status === 'ok' && st.p95Ms === null)
        errors.push(`/sweep/${i}/steps/${j}/p95Ms is null (not measured) in an ok step`);
    }
  }
  return errors;
}

/** Validates a report (as it will be serialised: validate `JSON.parse(JSON.stringify(r))` to be exact). */
export function validateReport(x: unknown): ValidationResult {
  if (!validateSchema(x)) return { ok: false, errors: (validateSchema.errors ?? []).map(describe) };
  const errors = checkConsistency(x as Report);
  return errors.length === 0 ? { ok: true } : { ok: false, errors };
}
