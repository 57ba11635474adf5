/**
 * The dashboard: static files from web/ and Chart.js from node_modules, under a strict
 * Content-Security-Policy (@fastify/helmet): everything from this server, no inline scripts, no third
 * parties. Encapsulated on purpose: the security headers go on the dashboard's responses only, so that
 * they do not add bytes to every /poll answer the bench measures.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import helmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export const WEB_ROOT = fileURLToPath(new URL('../web/', import.meta.url));

/** chart.js does not export its UMD path; it sits next to the package's main file. */
const CHART_JS = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');

export const CONTENT_SECURITY_POLICY = Object.freeze({
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
});

export async function webRoutes(app: FastifyInstance) {
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { ...CONTENT_SECURITY_POLICY } },
    // Same-origin only; the dashboard embeds nothing from elsewhere.
    crossOriginEmbedderPolicy: true,
  });
  await app.register(fastifyStatic, { root: WEB_ROOT, index: 'index.html', wildcard: false });
  let chartJs: Buffer | undefined;
  app.get('/vendor/chart.umd.js', async (_request, reply) => {
    chartJs ??= await readFile(CHART_JS);
    reply.type('application/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600');
    return chartJs;
  });
}
