/**
 * The import graph of the lab's own code and the layer rule it must keep (docs/layout.md): imports only
 * go down — cli → stages → field → measure → processes → clients → servers → plan → report → server —
 * and no file imports itself back through others. A small script over TypeScript's own import scanner
 * (`ts.preProcessFile`: static, dynamic and type-only imports) rather than dependency-cruiser or madge:
 * the rule is ten folders and a rank, and the scanner is the compiler the project already runs.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import ts from 'typescript';

/** Folders from the top layer down; a file may import its own folder or any folder below its own. */
export const LAYERS: readonly (readonly string[])[] = Object.freeze([
  ['bench/cli'],
  ['bench/stages'],
  ['bench/field'],
  ['bench/measure'],
  ['bench/processes'],
  ['bench/clients'],
  ['bench/servers'],
  ['bench/plan'],
  ['report'],
  ['server'],
]);

/** Entry points that nothing imports and that may import any layer: the server's CLI. */
export const ENTRY_POINTS: readonly string[] = Object.freeze(['server/main.ts']);

const CODE = /\.(ts|mts|mjs)$/;

/** The layer of a repository-relative file: its index in LAYERS (0 = top), or undefined outside them. */
export function layerOf(file: string): number | undefined {
  if (ENTRY_POINTS.includes(file)) return -1;
  let best: { rank: number; len: number } | undefined;
  LAYERS.forEach((folders, rank) => {
    for (const f of folders)
      if (file.startsWith(`${f}/`) && (!best || f.length > best.len)) best = { rank, len: f.length };
  });
  return best?.rank;
}

const folderOf = (file: string): string =>
  LAYERS.flat()
    .filter((f) => file.startsWith(`${f}/`))
    .sort((a, b) => b.length - a.length)[0] ?? dirname(file);

function walk(root: string, dir: string, out: string[]): void {
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) walk(root, rel, out);
    else if (CODE.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
}

/** Every file under the layers' top folders and its relative imports, resolved to repository paths. */
export function importGraph(root: string): Map<string, string[]> {
  const files: string[] = [];
  for (const top of new Set(LAYERS.flat().map((f) => f.split('/')[0]!))) walk(root, top, files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const deps = info.importedFiles
      .map((i) => i.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'));
    graph.set(file, deps);
  }
  return graph;
}

export interface Violation {
  from: string;
  to: string;
  why: string;
}

/** Imports that go up a layer, and import cycles between files (each reported once, by its first edge). */
export function violations(graph: Map<string, string[]>): Violation[] {
  const out: Violation[] = [];
  for (const [from, deps] of graph) {
    const lf = layerOf(from);
    for (const to of deps) {
      const lt = layerOf(to);
      if (lf === undefined || lt === undefined) continue;
      if (lt < lf) out.push({ from, to, why: `upward import: ${folderOf(from)} may not import ${folderOf(to)}` });
    }
  }
  // Cycles: depth-first search, a back edge closes one.
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open')
        out.push({ from: f, to: d, why: `import cycle: ${[...stack.slice(stack.indexOf(d)), d].join(' → ')}` });
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return out;
}
