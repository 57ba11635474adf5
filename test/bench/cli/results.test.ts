/**
 * `npm run results` regenerates exactly the committed reports, each with the flags it was made with, and
 * a plain `npm run bench` never writes into results/.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OUT, parseBenchArgs } from '../../../bench/cli/options.js';
import { COMMITTED_RUNS, renderCommitted, resultsPlan } from '../../../bench/cli/results.js';
import { renderMarkdown } from '../../../report/markdown.js';

const ROOT = new URL('../../../', import.meta.url);
/** The flags without `--out DIR`: what a run measures, wherever it writes. */
const measuring = (argv: readonly string[]) => argv.filter((a, i) => a !== '--out' && argv[i - 1] !== '--out');
const outOf = (argv: readonly string[]) => argv[argv.indexOf('--out') + 1];

describe('npm run results', () => {
  it('makes every committed report with the flags recorded in it, into the folder it sits in', () => {
    const committed: Record<string, string> = {
      'results/latest.json': 'results',
      'results/networks/latest.json': 'results/networks',
      'results/networks-1msg/latest.json': 'results/networks-1msg',
      'results/proxy/latest.json': 'results/proxy',
      'results/feeds/latest.json': 'results/feeds',
      'results/protocols/latest.json': 'results/protocols',
      'results/chat/latest.json': 'results/chat',
      'results/compression/latest.json': 'results/compression',
      'results/claims.json': 'results',
      'results/field.json': 'results',
    };
    expect(COMMITTED_RUNS).toHaveLength(Object.keys(committed).length);
    for (const [file, dir] of Object.entries(committed)) {
      const report = JSON.parse(readFileSync(new URL(file, ROOT), 'utf8')) as { env: { argv: string[] } };
      const run = COMMITTED_RUNS.find(
        (r) => JSON.stringify(measuring(r.argv)) === JSON.stringify(measuring(report.env.argv)),
      );
      expect(run, `${file} (${report.env.argv.join(' ')})`).toBeDefined();
      expect(outOf(run!.argv)).toBe(dir);
    }
  });

  it('prints each run with its estimate and the total, and with --dry-run runs nothing', async () => {
    const plan = resultsPlan();
    expect(plan.totalSec).toBe(plan.runs.reduce((a, r) => a + r.estimateSec, 0));
    for (const r of plan.runs) expect(r.estimateSec).toBeGreaterThan(0);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'bench/cli/results.ts', '--dry-run'],
      {
        cwd: ROOT,
        timeout: 30_000,
      },
    );
    expect(stdout).toMatch(new RegExp(`^npm run results: ${COMMITTED_RUNS.length} runs, about \\d+ min \\d+ s`));
    for (const r of COMMITTED_RUNS) expect(stdout).toContain(`npm run bench -- ${r.argv.join(' ')}`);
  });
});

describe('npm run results -- --render', () => {
  it('renders each standing report again from its JSON, beside it, and nothing else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'results-render-'));
    await mkdir(join(dir, 'networks'));
    await copyFile(new URL('results/field.json', ROOT), join(dir, 'field.json'));
    await copyFile(new URL('results/networks/latest.json', ROOT), join(dir, 'networks/latest.json'));
    await writeFile(join(dir, '2026-01-01T00-00-00.000Z-abcdef0.json'), '{}');
    const written = await renderCommitted(dir);
    expect(written).toEqual([join(dir, 'field.{md,html}'), join(dir, 'networks/latest.{md,html}')]);
    const field = JSON.parse(readFileSync(join(dir, 'field.json'), 'utf8'));
    expect(readFileSync(join(dir, 'field.md'), 'utf8')).toBe(renderMarkdown(field));
    expect(readFileSync(join(dir, 'networks/latest.html'), 'utf8')).toMatch(/^<!doctype html>/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('npm run bench', () => {
  it('writes its reports to a git-ignored folder unless told otherwise, never into results/', () => {
    expect(parseBenchArgs([]).out).toBe(DEFAULT_OUT);
    expect(DEFAULT_OUT).not.toMatch(/^results/);
    expect(readFileSync(new URL('.gitignore', ROOT), 'utf8').split('\n')).toContain(`${DEFAULT_OUT}/`);
  });
});
