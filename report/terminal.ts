/**
 * The summary `npm run bench` prints when it ends, the way k6 and autocannon end with their result table:
 * per scenario the answer (its transports best first by PICK_RULE, ★ the pick, with p50/p99, bytes and CPU
 * per message, ok or INVALID), then memory, field failures and claims when they ran, every INVALID result
 * with its reason (the report model's list), how long the run took against its estimate, and where the
 * report was written. Plain text, no line over SUMMARY_WIDTH columns.
 */
import { scenarioAnswers, TRANSPORT_LABELS } from './answers.js';
import { DASH, fixed, fmtBytes, fmtDuration, fmtMs, reportModel } from './model.js';
import type { Report, ScenarioResult, TransportName } from './types.js';

export const SUMMARY_WIDTH = 100;

const clip = (line: string): string => (line.length > SUMMARY_WIDTH ? `${line.slice(0, SUMMARY_WIDTH - 1)}…` : line);
/** `text` in lines of at most SUMMARY_WIDTH columns, broken at spaces; the lines after the first indented by `indent`. */
function wrap(text: string, indent: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    const next = cur === '' ? word : `${cur} ${word}`;
    if (next.length > SUMMARY_WIDTH && cur !== '') {
      out.push(cur);
      cur = `${indent}${word}`;
    } else cur = next;
  }
  out.push(cur);
  return out.map(clip);
}
const num = (x: number | null, f: (v: number) => string): string => (x === null ? DASH : f(x));
const label = (t: string): string => TRANSPORT_LABELS[t as TransportName] ?? t;

const COLUMNS = [
  ['', 18, 'l'],
  ['p50 ms', 9, 'r'],
  ['p99 ms', 9, 'r'],
  ['B/msg', 9, 'r'],
  ['CPU µs/msg', 11, 'r'],
  ['', 0, 'l'],
] as const;

function line(cells: readonly string[]): string {
  return clip(
    `  ${cells
      .map((c, i) => {
        const [, w, align] = COLUMNS[i]!;
        return align === 'r' ? c.padStart(w) : c.padEnd(w);
      })
      .join(' ')
      .trimEnd()}`,
  );
}

function scenarioLines(s: ScenarioResult, pick: boolean): string {
  const name = `${pick ? '★ ' : '  '}${label(s.transport)}`;
  if (s.status === 'invalid') return line([name, DASH, DASH, DASH, DASH, 'INVALID']);
  return line([
    name,
    num(s.latencyMs.p50.median, fmtMs),
    num(s.latencyMs.p99.median, fmtMs),
    num(s.wire.bytesOutPerMsg.median, fmtBytes),
    num(s.serverMetrics.cpuUsPerMsg.median, fmtMs),
    s.lost > 0 ? `${s.lost} lost` : 'ok',
  ]);
}

export interface SummaryRun {
  /** The bench's own estimate of the run, seconds (unknown for a report read back later). */
  estimateSec?: number;
  /** The files written. */
  files: readonly string[];
}

export function renderSummary(report: Report, run: SummaryRun): string {
  const out: string[] = ['', clip(`Transport Lab bench · ${report.params.suite} · ${report.git}`)];
  for (const a of scenarioAnswers(report.scenarios)) {
    const compared = a.rows.length > 1;
    const server = a.server === 'lab' ? '' : ` (${a.server})`;
    out.push('', clip(`${compared ? 'Which transport?' : `Scenario ${a.rows[0]!.name}:`} ${a.condition}${server}`));
    out.push(line(['', ...COLUMNS.slice(1, 5).map(([h]) => h)]));
    for (const s of a.rows) out.push(scenarioLines(s, compared && s === a.pick));
  }
  const memory = report.memory.filter((m) => m.server === 'lab');
  if (memory.length) {
    out.push(
      '',
      clip(
        `Memory per connection (lab, heap): ${memory
          .map((m) => `${label(m.transport)} ${num(m.heapBytesPerConn.median, (b) => `${fixed(b / 1024, 1)} KiB`)}`)
          .join(', ')}`,
      ),
    );
  }
  const field = report.field ?? [];
  if (field.length) {
    out.push('', 'Field failures (naive setting → the lab’s):');
    for (const name of [...new Set(field.map((f) => f.scenario))]) {
      const rows = field.filter((f) => f.scenario === name);
      const verdicts = rows.map((f) => `${f.setting} ${f.transport} ${f.verdict}`).join(', ');
      out.push(...wrap(`  ${name}: ${verdicts}`, '    '));
    }
  }
  if (report.claims?.length) {
    out.push('', 'Claims:');
    for (const c of report.claims) out.push(...wrap(`  ${c.claim}: ${c.verdict}`, '    '));
  }
  const invalid = reportModel(report).invalid;
  if (invalid.length) {
    out.push('', `${invalid.length} INVALID result${invalid.length === 1 ? '' : 's'} (no figures shown for them):`);
    for (const i of invalid) out.push(...wrap(`  ${i.what}: ${i.reason}`, '    '));
  }
  const tookSec = (Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000;
  const est = run.estimateSec;
  const miss = est ? Math.round(((tookSec - est) / est) * 100) : 0;
  out.push(
    '',
    report.scenarios.length ? '★ the pick: lowest p99; within 10 %, fewer bytes per message, then less CPU.' : '',
    clip(
      `Took ${fmtDuration(tookSec)}${est === undefined ? '' : `; estimated ${fmtDuration(est)}`}${Math.abs(miss) > 10 ? ` (${miss > 0 ? '+' : ''}${miss} %: the estimate missed)` : ''}.`,
    ),
    ...run.files.map((f) => clip(`Report: ${f}`)),
  );
  return out.filter((l, i, all) => !(l === '' && all[i - 1] === '')).join('\n');
}
