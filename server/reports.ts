/**
 * Bench reports for the dashboard's Reports view: GET /reports lists the reports in `resultsDir`
 * (newest first), GET /reports/<name> returns one as stored, and GET /reports/<name>/model returns its
 * table and chart model (report/model.ts, handed in by the composition root as `model`: the server
 * never imports the report package), the same one the Markdown and HTML reports are rendered from, so
 * the dashboard keeps no copy of it. Only plain `*.json` names inside that folder
 * are served; `latest.json` (a copy of the newest) and `baseline.json` (the CI gate's) are not listed.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { HttpErrors } from './errors.js';

const NAME = /^[\w.-]+\.json$/;
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
  startedAt: string;
  git: string;
  scenarios: number;
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

  app.get('/reports', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    let names: string[] = [];
    try {
      names = (await readdir(resultsDir)).filter((n) => NAME.test(n) && !UNLISTED.has(n));
    } catch {
      // No results folder yet: no reports.
    }
    const reports: ReportEntry[] = [];
    for (const name of names) {
      try {
        const r: unknown = JSON.parse(await readFile(join(resultsDir, name), 'utf8'));
        if (isReport(r))
          reports.push({
            name,
            startedAt: String(r.startedAt ?? ''),
            git: String(r.git ?? ''),
            scenarios: r.scenarios?.length ?? 0,
          });
      } catch {
        // Not a readable report: not listed.
      }
    }
    reports.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    return { reports };
  });

  app.get<{ Params: { name: string } }>('/reports/:name', async (request, reply) => {
    const text = await read(request.params.name, `/reports/${request.params.name}`);
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    return text;
  });

  app.get<{ Params: { name: string } }>('/reports/:name/model', async (request, reply) => {
    const url = `/reports/${request.params.name}/model`;
    let report: unknown;
    try {
      report = JSON.parse(await read(request.params.name, url));
    } catch {
      report = undefined;
    }
    if (!isReport(report) || !model) throw new HttpErrors.NOT_FOUND('GET', url);
    reply.header('cache-control', 'no-store');
    return model(report as never);
  });
}
