/**
 * The layout holds: imports only go down the layers of docs/layout.md (and never round in a cycle), and
 * docs/layout.md names every folder that exists and no folder that does not.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importGraph, LAYERS, violations } from './helpers/import-graph.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LAYOUT = readFileSync(join(ROOT, 'docs/layout.md'), 'utf8');

/** A throw-away tree of `files` (path → text). */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'layout-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, dirname(path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('imports only go down', () => {
  it('the lab’s code has no upward import and no cycle', () => {
    const graph = importGraph(ROOT);
    expect(graph.size).toBeGreaterThan(100);
    expect(violations(graph)).toEqual([]);
  });

  it('a deliberate upward import fails, static, dynamic or type-only', () => {
    const root = tree({
      'bench/plan/suite.ts': "import type { X } from '../stages/memory.js';\nexport const a = 1;\n",
      'bench/stages/memory.ts': "export type X = number;\nexport const m = () => import('../cli/run.js');\n",
      'bench/cli/run.ts': "import { m } from '../stages/memory.js';\nm();\n",
      'server/app.ts': "import { r } from '../report/model.js';\nr();\n",
      'report/model.ts': 'export const r = () => 1;\n',
    });
    expect(violations(importGraph(root)).map((v) => `${v.from} → ${v.to}`)).toEqual([
      'bench/plan/suite.ts → bench/stages/memory.ts',
      'bench/stages/memory.ts → bench/cli/run.ts',
      'server/app.ts → report/model.ts',
      // and the cycle memory → run → memory, reported once
      'bench/stages/memory.ts → bench/cli/run.ts',
    ]);
    expect(violations(importGraph(root)).at(-1)!.why).toMatch(/^import cycle: /);
  });

  it('imports within a folder and down are fine', () => {
    const root = tree({
      'bench/cli/run.ts': "import { s } from '../stages/run-bench.js';\nimport { p } from '../plan/plan.js';\ns(p);\n",
      'bench/stages/run-bench.ts': "import { e } from './index.js';\nexport const s = (x: number) => e(x);\n",
      'bench/stages/estimate.ts': "import { r } from '../../report/model.js';\nexport const e = (x: number) => r(x);\n",
      'bench/plan/plan.ts': 'export const p = 1;\n',
      'report/model.ts': "import { c } from '../server/config.js';\nexport const r = (x: number) => x + c;\n",
      'server/config.ts': 'export const c = 1;\n',
    });
    expect(violations(importGraph(root))).toEqual([]);
  });
});

describe('docs/layout.md', () => {
  const listed = [...LAYOUT.matchAll(/^- `([^`]+)\/` — \S/gm)].map((m) => m[1]!);
  const SKIP = new Set(['node_modules', '.git', 'test-output', '.bench-build']);
  const folders: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const rel = dir ? `${dir}/${name}` : name;
      if (SKIP.has(name) || !statSync(join(ROOT, rel)).isDirectory()) continue;
      if (dir === '' && name.startsWith('.') && name !== '.ci') continue;
      if (readdirSync(join(ROOT, rel)).some((f) => statSync(join(ROOT, rel, f)).isFile())) folders.push(rel);
      walk(rel);
    }
  };
  walk('');

  it('names every folder that holds files, each with what lives there', () => {
    expect(folders.filter((f) => !listed.includes(f))).toEqual([]);
  });

  it('names no folder that does not exist', () => {
    expect(listed.filter((f) => !folders.includes(f))).toEqual([]);
  });

  it('states the layer order the import check enforces', () => {
    expect(LAYOUT).toContain(LAYERS.map((l) => `\`${l.join(', ')}\``).join(' → '));
  });

  it('bench/ keeps no loose files: each one lives in its folder', () => {
    expect(readdirSync(join(ROOT, 'bench')).filter((f) => statSync(join(ROOT, 'bench', f)).isFile())).toEqual([]);
  });
});
