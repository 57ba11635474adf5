/**
 * Bench reports for the dashboard's Reports view: GET /reports lists the reports in `resultsDir`
 * (newest first), GET /reports/<name> returns one. Only plain `*.json` names inside that folder are
 * served; `latest.json` (a copy of the newest) and `baseline.json` (the CI gate's) are not listed.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { HttpErrors } from './errors.js';

const NAME = /^[\w.-]+\.json$/;
const UNLISTED = new Set(['latest.json', 'baseline.json']);

export interface ReportEntry {
  name: string;
  startedAt: string;
  git: string;
  scenarios: number;
}

export async function reportRoutes(app: FastifyInstance, opts: { resultsDir: string }) {
  const { resultsDir } = opts;

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
        const r = JSON.parse(await readFile(join(resultsDir, name), 'utf8')) as { schema?: string; startedAt?: string; git?: string; scenarios?: unknown[] };
        if (typeof r.schema !== 'string' || !r.schema.startsWith('transport-lab/bench@')) continue;
        reports.push({ name, startedAt: String(r.startedAt ?? ''), git: String(r.git ?? ''), scenarios: r.scenarios?.length ?? 0 });
      } catch {
        // Not a readable report: not listed.
      }
    }
    reports.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    return { reports };
  });

  app.get<{ Params: { name: string } }>('/reports/:name', async (request, reply) => {
    const { name } = request.params;
    if (!NAME.test(name)) throw new HttpErrors.NOT_FOUND('GET', `/reports/${name}`);
    let text: string;
    try {
      text = await readFile(join(resultsDir, name), 'utf8');
    } catch {
      throw new HttpErrors.NOT_FOUND('GET', `/reports/${name}`);
    }
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    return text;
  });
}
