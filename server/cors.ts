/**
 * CORS (Fetch standard §3.2) for the feed's HTTP endpoints — GET/HEAD /poll, GET/HEAD /events,
 * POST /publish, POST /send — so that a page on another origin than the lab can use them. Which origins may is
 * ALLOWED_ORIGINS, the list the WebSocket Origin check (transports/ws.ts) already uses: one list of
 * trusted pages for every transport. Credentials (cookies, HTTP auth) are allowed only with
 * CORS_CREDENTIALS; `Access-Control-Allow-Origin` is always the caller's exact origin, never `*`.
 *
 * The rule, per request (`corsOrigin` below):
 * - CORS applies when the path is one of CORS_PATHS and the `Origin` is listed and is not this
 *   server's own (same-origin requests, and requests without `Origin` — the bench's — get no CORS
 *   header at all, not even `Vary`, so their answers stay byte for byte what they were).
 * - A preflight (`OPTIONS` with `Access-Control-Request-Method`) from a listed origin is answered
 *   204 at once, in the onRequest hook, before the publish token is checked (browsers never send
 *   credentials on a preflight). A listed origin's `OPTIONS` without that header is not a preflight:
 *   it gets the answer it got before CORS, 405 LAB_ERR_METHOD_NOT_ALLOWED, with ACAO.
 * - Anything else gets no CORS headers and the answer it always got. A preflight from an origin not
 *   listed thus gets what @fastify/cors does with a refused origin — the not-found handler — which here
 *   is 405 LAB_ERR_METHOD_NOT_ALLOWED (`Allow: GET, HEAD` or `POST`) on these paths: no ACAO, so the
 *   browser fails the preflight and never sends the request.
 * - Every answer Fastify sends to a listed cross-origin caller carries ACAO, errors too (401, 413,
 *   400, the Host check's 403, the closing 503): registered before app.ts's own onRequest guard, this
 *   hook runs first, so the page can read the LAB_ERR_* code. Refusals written to the raw socket
 *   before Fastify sees a request (malformed HTTP, `Expect`) carry none.
 *
 * @fastify/cors sets headers on the reply; GET /events hijacks its reply, so sse.ts carries the
 * reply's headers into its own `writeHead`.
 */
import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from './config.js';

/** The paths CORS applies to; HEAD of the GET ones as well. Other routes (the dashboard, /stats, /control) stay same-origin. */
export const CORS_PATHS: ReadonlySet<string> = new Set(['/poll', '/events', '/publish', '/send']);

const SEND_PATHS: ReadonlySet<string> = new Set(['/publish', '/send']);

/** `Access-Control-Allow-Methods`: what the paths serve. */
export const CORS_METHODS = Object.freeze(['GET', 'HEAD', 'POST']);

/**
 * `Access-Control-Allow-Headers`: the request headers a page may set. `Content-Type` (a JSON publish is
 * preflighted), `Authorization` (the publish token), `Last-Event-ID` (resuming SSE by hand, or a
 * polyfill sending it), `Cache-Control` (EventSource polyfills built on fetch/XHR set `no-cache`),
 * `Idempotency-Key` (a send retried after a drop is appended once).
 * Native EventSource and fetch need no preflight for their own GETs: the `Accept`, `Cache-Control`
 * and `Pragma` they add themselves are not author headers.
 */
export const CORS_ALLOWED_HEADERS = Object.freeze([
  'Content-Type',
  'Authorization',
  'Last-Event-ID',
  'Cache-Control',
  'Idempotency-Key',
]);

/**
 * `Access-Control-Expose-Headers` on answers to POST /publish and /send: answer headers a page may read
 * beyond the safelisted ones: when to send again after a 429 LAB_ERR_SEND_RATE, and whether a send was
 * a replay of an earlier key.
 */
export const CORS_EXPOSED_HEADERS = Object.freeze(['Retry-After', 'Idempotent-Replayed']);

/**
 * `Access-Control-Max-Age`, in seconds: how long a browser may reuse a preflight answer. 10 minutes
 * spares a JSON publisher one round trip per publish, and bounds how long an origin removed from
 * ALLOWED_ORIGINS may still have requests sent (Chromium caps this at 2 h, Firefox at 24 h; without
 * the header Chromium keeps 5 s).
 */
export const CORS_MAX_AGE_SECONDS = 600;

/** What the rule reads of a request: the same on Fastify's request and on the raw one the router sees. */
interface RequestHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** Whether `origin` is this server's own, as the request addressed it (Host, or `:authority` over HTTP/2). */
function sameOrigin(request: RequestHead, origin: string): boolean {
  const host = request.headers.host ?? request.headers[':authority'];
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** The origin to answer with CORS headers, per the rule above; undefined when none is to be sent. */
function corsOrigin(request: RequestHead, allowed: ReadonlySet<string>): string | undefined {
  const origin = request.headers.origin;
  if (typeof origin !== 'string' || !allowed.has(origin) || sameOrigin(request, origin)) return undefined;
  return CORS_PATHS.has((request.url ?? '').split('?', 1)[0]!) ? origin : undefined;
}

const isPreflight = (request: RequestHead): boolean =>
  request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined;

/**
 * The router constraint that @fastify/cors's catch-all `OPTIONS *` route is put under. Unconstrained,
 * that route would match every OPTIONS request, and app.ts's not-found handler, which lists in `Allow`
 * the methods it finds routes for, would add OPTIONS to every 405. Constrained, the router sends it only
 * the preflights granted here (answered by @fastify/cors's hook before its handler); every other
 * OPTIONS goes to the not-found handler as before, whose hooks include @fastify/cors's.
 */
const PREFLIGHT_CONSTRAINT = 'labCorsPreflight';
const GRANTED = 'granted';

const DENIED: FastifyCorsOptions = Object.freeze({ origin: false });

export default fp(
  async function labCors(app, opts: { config: Readonly<Config> }) {
    const allowed: ReadonlySet<string> = new Set(opts.config.allowedOrigins);
    // No origin listed: nothing to grant, so nothing on the request path at all (the bench's case).
    if (allowed.size === 0) return;
    const base: FastifyCorsOptions = {
      methods: [...CORS_METHODS],
      allowedHeaders: [...CORS_ALLOWED_HEADERS],
      maxAge: CORS_MAX_AGE_SECONDS,
      credentials: opts.config.corsCredentials,
      // A plain OPTIONS (no Access-Control-Request-Method) is left to the routes (405), never 400 text.
      strictPreflight: false,
    };

    app.addConstraintStrategy({
      name: PREFLIGHT_CONSTRAINT,
      storage() {
        let granted: unknown = null;
        return {
          get: (value: unknown) => (value === GRANTED ? (granted as never) : null),
          set: (value: unknown, handler: unknown) => {
            if (value === GRANTED) granted = handler;
          },
        };
      },
      // Runs for every request the router looks up: one method comparison for all but OPTIONS.
      deriveConstraint: (request: RequestHead) =>
        isPreflight(request) && corsOrigin(request, allowed) !== undefined ? GRANTED : undefined,
    } as Parameters<typeof app.addConstraintStrategy>[0]);
    app.addHook('onRoute', (route) => {
      if (route.method === 'OPTIONS' && route.url === '*')
        route.constraints = { ...route.constraints, [PREFLIGHT_CONSTRAINT]: GRANTED };
    });

    const granted = new WeakSet<FastifyRequest>();
    await app.register(cors, {
      delegator: (request, done) => {
        const origin = corsOrigin(request, allowed);
        if (origin === undefined) done(null, DENIED);
        else {
          granted.add(request);
          const preflight = isPreflight(request);
          // Only a publish or send answer has headers beyond the safelisted ones to show.
          const sends = !preflight && request.method === 'POST' && SEND_PATHS.has(request.url.split('?', 1)[0]!);
          done(null, { ...base, origin, preflight, ...(sends ? { exposedHeaders: [...CORS_EXPOSED_HEADERS] } : {}) });
        }
      },
    });
    // Given a per-request delegator, @fastify/cors adds `Vary: Origin` to every answer, granted or not
    // (so that a shared cache never hands one origin's answer to another). Off the three paths answers
    // never depend on Origin; on them they are `no-store` polls, event streams and POST answers, which
    // no cache reuses; and the bench counts bytes. So an answer without CORS headers gets no Vary
    // either. Nothing but @fastify/cors, whose hook runs just before this one, has set headers yet.
    app.addHook('onRequest', (request, reply, done) => {
      if (!granted.has(request) && reply.getHeader('vary') === 'Origin') reply.removeHeader('vary');
      done();
    });
  },
  { name: 'lab-cors', fastify: '5.x' },
);
