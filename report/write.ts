/**
 * Writes a run's report: `<outDir>/<startedAt>-<git short sha>.json` (kept), and `latest.json`,
 * `latest.md`, `latest.html` (replaced). A report that does not validate is never written: the check
 * runs on the JSON as it would be stored, so NaN/Infinity (which JSON turns into null) are caught too.
 * Everything is rendered before anything is written, and each file is written to a temporary name
 * and renamed, so a reader (the dashboard) never sees half a file or a set from two different runs
 * caused by a rendering error.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readHtmlScripts, renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';
import { ReportValidationError, validateReport } from './schema.js';
import type { Report } from './types.js';

export interface WrittenReports {
  /** The kept, timestamped JSON. */
  json: string;
  latestJson: string;
  md: string;
  html: string;
}

/**
 * The commit part of the file name: the first 7 hex digits of a sha (plus a suffix such as `-dirty`),
 * anything else reduced to file-name-safe characters.
 */
export function gitShort(git: string): string {
  const m = /^([0-9a-f]{7})[0-9a-f]*(.*)$/i.exec(git);
  const s = m ? `${m[1]}${m[2]}` : git;
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40) || 'unknown';
}

/** `2026-11-20T14:05:12.337Z` + git → `2026-11-20T14-05-12.337Z-5c1e0d9.json` (':' is not allowed on Windows). */
export function reportFileName(report: Pick<Report, 'startedAt' | 'git'>): string {
  return `${report.startedAt.replaceAll(':', '-')}-${gitShort(report.git)}.json`;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, 'utf8');
  await rename(tmp, path);
}

/**
 * `name` (e.g. `claims`): the report is a standing one, written as `<name>.json`, `.md`, `.html` and
 * nothing else (no dated copy, latest.* untouched).
 */
export async function writeReports(report: Report, outDir = 'results', name?: string): Promise<WrittenReports> {
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const stored: unknown = JSON.parse(json);
  const result = validateReport(stored);
  if (!result.ok) throw new ReportValidationError(result.errors);

  // Render from the stored form, so the Markdown and HTML show exactly what the JSON says.
  const md = renderMarkdown(stored as Report);
  const html = renderHtml(stored as Report, await readHtmlScripts());

  await mkdir(outDir, { recursive: true });
  const base = name ?? 'latest';
  const paths: WrittenReports = {
    json: join(outDir, name ? `${name}.json` : reportFileName(report)),
    latestJson: join(outDir, `${base}.json`),
    md: join(outDir, `${base}.md`),
    html: join(outDir, `${base}.html`),
  };
  await writeAtomic(paths.json, json);
  if (paths.latestJson !== paths.json) await writeAtomic(paths.latestJson, json);
  await writeAtomic(paths.md, md);
  await writeAtomic(paths.html, html);
  return paths;
}
