/**
 * `npm run results` — regenerates every committed report in results/ on this machine, one run after the
 * other, each exactly as `npm run bench` would make it (a child process of bench/cli/run.ts with the
 * flags below): the default suite, every transport over every network, the three HTTP protocols, the
 * claims, the field failures behind nginx. From a clean tree only, so that every report names a sha that
 * exists (`--allow-dirty` to try it anyway); `--dry-run` prints the runs and their estimates, nothing else.
 * Then the guide and the figures the docs quote are rewritten from the new reports (`npm run guide`).
 * `--render` measures nothing: it renders every committed report's Markdown and HTML again from its JSON
 * (after a change to report/'s renderings), then the guide.
 * The CI gate's baseline is not among them: `npm run bench:check -- --update` writes it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readHtmlScripts, renderHtml } from '../../report/html.js';
import { renderMarkdown } from '../../report/markdown.js';
import type { Report } from '../../report/types.js';
import { estimateSec } from '../stages/index.js';
import { main as writeGuide } from './guide.js';
import { parseBenchArgs } from './options.js';

/** Every committed report, the flags that make it, and where it goes. */
export const COMMITTED_RUNS: readonly { what: string; argv: readonly string[] }[] = Object.freeze([
  { what: 'the default suite → results/latest.*', argv: ['--out', 'results'] },
  {
    what: 'every transport over every network → results/networks/',
    argv: [
      ...['--quick', '--servers', 'lab', '--network', 'loopback,lan,broadband,4g,3g,intercontinental,lossy-wifi'],
      ...['--no-memory', '--no-autocannon', '--no-micro', '--out', 'results/networks'],
    ],
  },
  {
    what: 'every transport over the networks at 1 msg/s → results/networks-1msg/',
    argv: [
      ...['--servers', 'lab', '--clients', '30', '--rate', '1', '--duration', '15', '--repeats', '1'],
      ...['--network', 'loopback,4g,3g,intercontinental,lossy-wifi'],
      ...['--no-memory', '--no-autocannon', '--no-micro', '--out', 'results/networks-1msg'],
    ],
  },
  {
    what: 'every transport directly and through nginx → results/proxy/',
    argv: [
      ...['--quick', '--servers', 'lab', '--proxy', 'nginx'],
      ...['--no-memory', '--no-autocannon', '--no-micro', '--out', 'results/proxy'],
    ],
  },
  {
    what: 'the memory feed against the Redis feed → results/feeds/',
    argv: ['--compare-feeds', '--no-memory', '--no-autocannon', '--no-micro', '--out', 'results/feeds'],
  },
  {
    what: 'HTTP/1.1, HTTP/1.1 + TLS, HTTP/2 → results/protocols/',
    argv: ['--compare-protocols', '--out', 'results/protocols'],
  },
  {
    what: 'both directions: the chat workload → results/chat/',
    argv: ['--chat', '--out', 'results/chat'],
  },
  {
    what: 'realistic payloads, compressed and not → results/compression/',
    argv: ['--compare-compression', '--out', 'results/compression'],
  },
  { what: 'the claims → results/claims.*', argv: ['--claims', '--out', 'results'] },
  { what: 'the field failures behind nginx → results/field.*', argv: ['--field', 'all', '--out', 'results'] },
]);

/** The runs with what each should take (the bench's own estimate), and the total. */
export function resultsPlan(): {
  runs: { what: string; argv: readonly string[]; estimateSec: number }[];
  totalSec: number;
} {
  const runs = COMMITTED_RUNS.map((r) => ({ ...r, estimateSec: Math.round(estimateSec(parseBenchArgs([...r.argv]))) }));
  return { runs, totalSec: runs.reduce((a, r) => a + r.estimateSec, 0) };
}

/**
 * Every standing report under results/ (latest.json, claims.json, field.json, in any folder) rendered
 * again from its JSON as it is: the figures stay, the renderings follow report/ (after a change there).
 */
export async function renderCommitted(dir = 'results'): Promise<string[]> {
  const names = (await readdir(dir, { recursive: true })).filter((f) => /(^|\/)(latest|claims|field)\.json$/.test(f));
  const scripts = await readHtmlScripts();
  const written: string[] = [];
  for (const name of names.sort()) {
    const json = join(dir, name);
    const report = JSON.parse(await readFile(json, 'utf8')) as Report;
    const base = json.slice(0, -'.json'.length);
    await writeFile(`${base}.md`, renderMarkdown(report));
    await writeFile(`${base}.html`, renderHtml(report, scripts));
    written.push(`${base}.{md,html}`);
  }
  return written;
}

const minutes = (sec: number): string => `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;

/** Tracked files changed since the last commit, as `git status` lists them (empty: clean). */
const dirtyFiles = (): string =>
  execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)results'], {
    encoding: 'utf8',
  }).trim();

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      'dry-run': { type: 'boolean' },
      'allow-dirty': { type: 'boolean' },
      render: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`npm run results -- [--dry-run] [--allow-dirty]
  regenerates every committed report in results/, one run after the other, from a clean tree
  --dry-run      print the runs and their estimates only
  --allow-dirty  run on a tree with uncommitted changes (the reports then name a -dirty sha)
  --render       measure nothing: re-render every committed report's .md and .html from its .json, then the guide`);
    return 0;
  }
  if (values.render) {
    const written = await renderCommitted();
    console.log(`npm run results: re-rendered ${written.join(', ')}`);
    return writeGuide([]);
  }
  const plan = resultsPlan();
  console.log(
    `npm run results: ${plan.runs.length} runs, about ${minutes(plan.totalSec)} (the bench's own estimates):`,
  );
  for (const r of plan.runs)
    console.log(`  ${minutes(r.estimateSec).padStart(12)}  ${r.what}  (npm run bench -- ${r.argv.join(' ')})`);
  if (values['dry-run']) return 0;
  const dirty = dirtyFiles();
  if (dirty && !values['allow-dirty']) {
    console.error(
      `npm run results: the tree has uncommitted changes, so the reports would name a -dirty sha:\n${dirty}\ncommit first, or --allow-dirty`,
    );
    return 2;
  }
  // A run that exits 1 wrote its report with INVALID results marked in it (the guide then says "not
  // measured" where they were needed): the runs after it still go on. Any other exit stops here.
  const withInvalid: string[] = [];
  for (const [i, r] of plan.runs.entries()) {
    console.log(`\n[${i + 1}/${plan.runs.length}] ${r.what}`);
    const code = await new Promise<number | null>((resolve) =>
      spawn(process.execPath, ['--import', 'tsx', 'bench/cli/run.ts', ...r.argv], { stdio: 'inherit' }).on(
        'exit',
        resolve,
      ),
    );
    if (code === 1) withInvalid.push(r.what);
    else if (code !== 0) {
      console.error(`npm run results: ${r.what} exited ${code}; the runs after it were not made`);
      return 2;
    }
  }
  console.log('\nnpm run results: every committed report regenerated; now the guide and the docs’ figures:');
  const guide = writeGuide([]);
  if (guide !== 0) return guide;
  if (withInvalid.length) {
    console.error(`npm run results: INVALID results (marked in their reports) in: ${withInvalid.join('; ')}`);
    return 1;
  }
  console.log('npm run results: done; commit results/, README.md and docs/ with what changed them.');
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`npm run results: ${(err as Error).message}`);
      process.exit(2);
    },
  );
}
