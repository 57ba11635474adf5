/**
 * The summary a bench run ends with (report/terminal.ts): each scenario's answer with the pick marked by the
 * stated rule, every INVALID result with its whole reason, the time against the estimate and the files, in
 * lines of at most 100 columns. On the real fixture run (test/fixtures/bench-report.json, INVALID rows included).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ranked } from '../../report/answers.js';
import { reportModel } from '../../report/model.js';
import { renderSummary, SUMMARY_WIDTH } from '../../report/terminal.js';
import type { Report } from '../../report/types.js';

const fixture = (): Report =>
  JSON.parse(readFileSync(new URL('../fixtures/bench-report.json', import.meta.url), 'utf8')) as Report;

describe('the terminal summary', () => {
  it('fits 100 columns, marks each scenario’s pick, names every INVALID result with its whole reason, and the files', () => {
    const r = fixture();
    const text = renderSummary(r, { estimateSec: 60, files: ['bench-out/latest.md', 'bench-out/latest.html'] });
    const lines = text.split('\n');
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(SUMMARY_WIDTH);
    const small = r.scenarios.filter((s) => s.name === 'small' && s.network.direct && s.server === 'lab');
    const pick = ranked(small)[0]!;
    const block = text.slice(text.indexOf('Which transport? 5 clients'));
    expect(block).toMatch(/★ (WebSocket|SSE|long polling|short polling)/);
    expect(block.split('\n').find((l) => l.includes('★'))).toContain(
      { ws: 'WebSocket', sse: 'SSE', poll: 'long polling', 'short-poll': 'short polling' }[pick.transport],
    );
    const invalid = reportModel(r).invalid;
    expect(invalid.length).toBeGreaterThan(0);
    // Wrapped lines joined back give each reason whole.
    const joined = lines.join(' ').replace(/\s+/g, ' ');
    for (const i of invalid) expect(joined).toContain(`${i.what}: ${i.reason}`.replace(/\s+/g, ' '));
    expect(text).toMatch(/Took \d+ (s|min)/);
    expect(text).toContain('Report: bench-out/latest.md');
    expect(text).toContain('Report: bench-out/latest.html');
  });

  it('says when the estimate missed by more than 10 %', () => {
    const r = fixture();
    const took = (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000;
    expect(renderSummary(r, { estimateSec: took, files: [] })).not.toContain('the estimate missed');
    expect(renderSummary(r, { estimateSec: took / 2, files: [] })).toContain('(+100 %: the estimate missed)');
  });
});
