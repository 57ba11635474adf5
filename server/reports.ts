/**
 * Bench reports for the dashboard's Reports view: GET /reports lists the reports in `resultsDir`
 * (newest first, each with the question it answers when the model is at hand), GET /reports/<name>
 * returns one as stored, and GET /reports/<name>/model returns its table and chart model
 * (report/model.ts, handed in by the composition root as `model`: the server never imports the report
 * package), the same one the Markdown and HTML reports are rendered from, so the dashboard keeps no copy
 * of it. Only `*.json` names inside that folder, or one folder down (`networks/latest.json`: the
 * committed runs that write folders of their own), are served; `latest.json` at the top (a copy of the
 * newest) and `baseline.json` (the CI gate's) are not listed, and one folder down only `latest.json` is.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { HttpErrors } from './errors.js';

/** `name.json`, or `folder/name.json` one level down; a folder name has no dot, so never `..`. */
const NAME = /^(?:[\w-]+\/)?[\w.-]+\.json$/;
const UNLISTED = new Set(['latest.json', 'baseline.json']);
/** What the server reads of a stored report: enough to list it (report/types.ts has the whole shape). */
export interface StoredReport {
  schema: string;
  startedAt?: string;
  git?: string;
  scenarios?: unknown[];
}

/** Turns a stored report into the dashboard's model (report/model.ts `reportModel`). */
export type ReportModelOf = (report: never) => unknown;

const isReport = (r: unknown): r is StoredReport =>
  typeof r === 'object' &&
  r !== null &&
  typeof (r as { schema?: unknown }).schema === 'string' &&
  (r as { schema: string }).schema.startsWith('transport-lab/bench@');

export interface ReportEntry {
  name: string;
  /** The question it answers (the model's title); absent without the model. */
  title?: string;
  startedAt: string;
  git: string;
  scenarios: number;
}

/** The report names in `dir`: its own `*.json` but the unlisted, and `<folder>/latest.json` one level down. */
async function listNames(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (e.isFile() && NAME.test(e.name) && !UNLISTED.has(e.name)) names.push(e.name);
    else if (e.isDirectory() && NAME.test(`${e.name}/latest.json`)) {
      try {
        if ((await readdir(join(dir, e.name))).includes('latest.json')) names.push(`${e.name}/latest.json`);
      } catch {
        // An unreadable folder: nothing listed from it.
      }
    }
  }
  return names;
}

export async function reportRoutes(
  app: FastifyInstance,
  opts: { resultsDir: string; model: ReportModelOf | undefined },
) {
  const { resultsDir, model } = opts;

  /** The file's text; 404 for a name outside the rules or a file that is not there. */
  async function read(name: string, url: string): Promise<string> {
    if (!NAME.test(name)) throw new HttpErrors.NOT_FOUND('GET', url);
    try {
      return await readFile(join(resultsDir, name), 'utf8');
    } catch {
      throw new HttpErrors.NOT_FOUND('GET', url);
    }
  }

  /** The model's title (the question the report answers), if the model is at hand and makes one. */
  const titleOf = (r: StoredReport): string | undefined => {
    try {
      const t = (model?.(r as never) as { title?: unknown } | undefined)?.title;
      return typeof t === 'string' ? t : undefined;
    } catch {
      return undefined;
    }
  };

  app.get('/reports', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    let names: string[] = [];
    try {
      names = await listNames(resultsDir);
    } catch {
      // No results folder yet: no reports.
    }
    const reports: ReportEntry[] = [];
    for (const name of names) {
      try {
        const r: unknown = JSON.parse(await readFile(join(resultsDir, name), 'utf8'));
        if (isReport(r)) {
          const title = titleOf(r);
          reports.push({
            name,
            ...(title ? { title } : {}),
            startedAt: String(r.startedAt ?? ''),
            git: String(r.git ?? ''),
            scenarios: r.scenarios?.length ?? 0,
          });
        }
      } catch {
        // Not a readable report: not listed.
      }
    }
    reports.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    return { reports };
  });

  async function serve(name: string, url: string, reply: FastifyReply) {
    const text = await read(name, url);
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    return text;
  }
  async function modelOf(name: string, url: string, reply: FastifyReply) {
    let report: unknown;
    try {
      report = JSON.parse(await read(name, url));
    } catch {
      report = undefined;
    }
    if (!isReport(report) || !model) throw new HttpErrors.NOT_FOUND('GET', url);
    reply.header('cache-control', 'no-store');
    return model(report as never);
  }

  type Named = { Params: { name: string } };
  type InFolder = { Params: { dir: string; name: string } };
  app.get<Named>('/reports/:name', (req, reply) => serve(req.params.name, req.url, reply));
  app.get<Named>('/reports/:name/model', (req, reply) => modelOf(req.params.name, req.url, reply));
  // One folder down (`networks/latest.json`): the committed runs that write folders of their own.
  app.get<InFolder>('/reports/:dir/:name', (req, reply) =>
    serve(`${req.params.dir}/${req.params.name}`, req.url, reply),
  );
  app.get<InFolder>('/reports/:dir/:name/model', (req, reply) =>
    modelOf(`${req.params.dir}/${req.params.name}`, req.url, reply),
  );
}
