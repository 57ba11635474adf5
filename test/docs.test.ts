/**
 * The docs hold together: every relative link in README.md and docs/*.md points to a file that exists and,
 * when it names a #anchor in a Markdown file, to a heading that file has (GitHub's slugs); and the README
 * stays a front door of at most 15 KiB. Pure file reads.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README_MAX_BYTES = 15_360;

/** README.md and every docs/*.md, as paths relative to the root. */
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** The text without fenced code blocks (their lines left empty, so line numbers hold) and HTML comments. */
function prose(markdown: string): string[] {
  let fence: string | undefined;
  return markdown
    .replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ''))
    .split('\n')
    .map((line) => {
      const open = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === undefined && open !== undefined) {
        fence = open;
        return '';
      }
      if (fence !== undefined) {
        if (line.trim().startsWith(fence)) fence = undefined;
        return '';
      }
      return line;
    });
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and spaces kept), spaces → hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown text produces: its headings' slugs (repeats get -1, -2, …) and HTML ids. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)?.[1];
    if (heading !== undefined) {
      const base = slug(heading);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  }
  return out;
}

/** The relative link targets in a Markdown text, with their line numbers: inline links and definitions. */
function links(markdown: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  prose(markdown).forEach((text, i) => {
    const line = text.replace(/`[^`]*`/g, '``');
    const targets = [
      ...[...line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
      ...[...(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(line)?.slice(1) ?? [])],
    ];
    for (const target of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue;
      out.push({ line: i + 1, target });
    }
  });
  return out;
}

/** What is wrong with each relative link of `file` (relative to `root`): a missing file or heading. */
function brokenLinks(root: string, file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const problems: string[] = [];
  for (const { line, target } of links(text)) {
    const hash = target.indexOf('#');
    const path = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const to = path === '' ? join(root, file) : resolve(root, dirname(file), path);
    const where = `${file}:${line} → ${target}`;
    if (!existsSync(to)) {
      problems.push(`${where}: no such file ${relative(root, to)}`);
      continue;
    }
    if (anchor === undefined || anchor === '' || !to.endsWith('.md') || !statSync(to).isFile()) continue;
    if (!anchors(readFileSync(to, 'utf8')).has(anchor)) {
      problems.push(`${where}: no heading in ${relative(root, to)} makes #${anchor}`);
    }
  }
  return problems;
}

describe('docs', () => {
  it('README.md is a front door: at most 15 KiB', () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThanOrEqual(README_MAX_BYTES);
  });

  it('every relative link in README.md and docs/*.md reaches a file and, with #anchor, a heading in it', () => {
    expect(DOCS.length).toBeGreaterThan(2);
    expect(DOCS.flatMap((file) => brokenLinks(ROOT, file))).toEqual([]);
  });

  it('slugs headings as GitHub does', () => {
    expect(slug('CI gate: `npm run bench:check`')).toBe('ci-gate-npm-run-benchcheck');
    expect(slug('What is measured, and how (Method)')).toBe('what-is-measured-and-how-method');
    expect(slug("The browser's connection limit, reproduced")).toBe('the-browsers-connection-limit-reproduced');
    expect(slug('`/stats`')).toBe('stats');
    expect([...anchors('# A\n```sh\n# not a heading\n```\n## A\n')]).toEqual(['a', 'a-1']);
  });

  it('finds relative links only, outside code, and reports a missing file or heading', () => {
    const md = [
      '[a](docs/x.md#y) [b](https://example.com) <http://127.0.0.1:3000/> `[c](nope.md)`',
      '```',
      '[d](nope.md)',
      '```',
      '[e]: ../f.md',
    ].join('\n');
    expect(links(md)).toEqual([
      { line: 1, target: 'docs/x.md#y' },
      { line: 5, target: '../f.md' },
    ]);
    const root = mkdtempSync(join(tmpdir(), 'docs-'));
    mkdirSync(join(root, 'docs'));
    writeFileSync(join(root, 'docs/a.md'), '# A\n\n## Some part\n\n[up](../README.md#top) [here](#some-part)\n');
    writeFileSync(join(root, 'README.md'), '# Top\n\n[a](docs/a.md#some-part) [b](docs/b.md) [c](docs/a.md#nope)\n');
    expect(brokenLinks(root, 'docs/a.md')).toEqual([]);
    expect(brokenLinks(root, 'README.md')).toEqual([
      'README.md:3 → docs/b.md: no such file docs/b.md',
      'README.md:3 → docs/a.md#nope: no heading in docs/a.md makes #nope',
    ]);
  });
});
