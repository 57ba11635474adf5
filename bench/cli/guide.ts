/**
 * `npm run guide` — writes the decision guide from the committed reports (report/guide.ts): results/guide.md,
 * results/guide.html, and the README's block between `<!-- guide:start -->` and `<!-- guide:end -->`; and
 * rewrites every `<!--fig:KEY-->…<!--/fig-->` figure in README.md and docs/*.md (report/doc-figures.ts). It
 * measures nothing: `npm run results` remakes the reports and then runs this. `--check` writes nothing and
 * exits 1 when a file differs from what the reports make (what test/report/guide.test.ts asserts).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fillFigures } from '../../report/doc-figures.js';
import { GUIDE_SOURCES, type GuideReports, type GuideSource, guideModel } from '../../report/guide.js';
import {
  README_SUMMARY_END,
  README_SUMMARY_START,
  renderGuideHtml,
  renderGuideMarkdown,
  renderReadmeGuide,
  renderReadmeSummary,
  replaceBlock,
  replaceReadmeGuide,
} from '../../report/guide-render.js';
import { validateReport } from '../../report/schema.js';
import type { Report } from '../../report/types.js';

export const RESULTS_DIR = 'results';

/** Every report GUIDE_SOURCES names, read from `dir` and validated; a missing one names the command that makes it. */
export function readGuideReports(dir = RESULTS_DIR): GuideReports {
  const out: Partial<Record<GuideSource, Report>> = {};
  for (const [role, path] of Object.entries(GUIDE_SOURCES) as [GuideSource, string][]) {
    const file = join(dir, `${path}.json`);
    let report: unknown;
    try {
      report = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`the guide needs ${file} (${(err as Error).message}); npm run results makes it`);
    }
    const v = validateReport(report);
    if (!v.ok) throw new Error(`${file} is not a valid report: ${JSON.stringify(v.errors).slice(0, 300)}`);
    out[role] = report as Report;
  }
  return out as GuideReports;
}

/** README.md and every docs/*.md: the files whose figures come from the reports. */
export const DOC_FILES = (): string[] => [
  'README.md',
  ...readdirSync('docs')
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

/** What `npm run guide` writes: each path with its text. */
export function guideFiles(dir = RESULTS_DIR): { path: string; text: string }[] {
  const reports = readGuideReports(dir);
  const guide = guideModel(reports);
  const docs = DOC_FILES().map((path) => {
    let text = fillFigures(readFileSync(path, 'utf8'), reports, path);
    if (path === 'README.md') {
      text = replaceReadmeGuide(text, renderReadmeGuide(guide));
      text = replaceBlock(text, README_SUMMARY_START, README_SUMMARY_END, renderReadmeSummary(reports.suite));
    }
    return { path, text };
  });
  return [
    { path: join(dir, 'guide.md'), text: renderGuideMarkdown(guide) },
    { path: join(dir, 'guide.html'), text: renderGuideHtml(guide) },
    ...docs,
  ];
}

const current = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

export function main(argv: string[]): number {
  const { values } = parseArgs({ args: argv, strict: true, options: { check: { type: 'boolean' } } });
  const files = guideFiles();
  const stale = files.filter((f) => current(f.path) !== f.text).map((f) => f.path);
  if (values.check) {
    if (stale.length) console.error(`npm run guide: out of date with the committed reports: ${stale.join(', ')}`);
    return stale.length ? 1 : 0;
  }
  for (const f of files) if (stale.includes(f.path)) writeFileSync(f.path, f.text);
  console.log(`npm run guide: ${stale.length ? `wrote ${stale.join(', ')}` : 'every file already up to date'}`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.exit(main(process.argv.slice(2)));
  } catch (err) {
    console.error(`npm run guide: ${(err as Error).message}`);
    process.exit(2);
  }
}
