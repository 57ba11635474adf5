/**
 * Polling clients over undici, each on a connection of its own (bench/clients/http.ts): long polling (each answer immediately followed by the next request with
 * `since = lastId`) and short polling (a request with `timeout=0` every `shortPollIntervalMs`, the
 * clients' phases spread evenly over the interval, or, `stepped`, one poll per client each time the runner
 * calls `step()`).
 */
import { setMaxListeners } from 'node:events';
import { gunzipSync } from 'node:zlib';
import { TIMING } from '../../server/config.js';
import type { PollAnswer } from '../../server/protocol.js';
import { clientConnection, headersFor } from './http.js';
import { dispatchFrame } from './parse.js';
import { type ClientFactory, type ClientGroupOptions, Reconnector } from './types.js';

/** The hold a long poll asks for: the lab's own default (under common proxy idle timeouts). */
const LONG_POLL_TIMEOUT_MS = TIMING.pollTimeoutMs;

function pollClients(opts: ClientGroupOptions, mode: 'long' | 'short') {
  const { baseUrl, count, since, sink } = opts;
  const intervalMs = opts.shortPollIntervalMs ?? 1_000;
  // One keep-alive connection (or HTTP/2 session) per client, as a browser tab would have; no pipelining.
  const connections = Array.from({ length: count }, () => clientConnection(baseUrl, opts.http));
  const headers = headersFor('poll', baseUrl, opts.http, opts.pageOrigin);
  const destroyAll = () => Promise.all(connections.map((c) => c.destroy()));
  const controller = new AbortController();
  // Every client's request and sleep listen on this one signal.
  setMaxListeners(0, controller.signal);
  let requests = 0;
  const answers = { total: 0, empty: 0 };
  const loops: Promise<void>[] = [];
  const started: Promise<void>[] = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        controller.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      controller.signal.addEventListener('abort', onAbort, { once: true });
    });

  const cursors = Array.from({ length: count }, () => since);
  /** One poll of client i from its cursor; hands the answer to the sink and moves the cursor. */
  const pollOnce = async (i: number, timeout: number): Promise<void> => {
    requests++;
    const answer = await connections[i]!.request({
      path: `/poll?since=${cursors[i]}&timeout=${timeout}`,
      method: 'GET',
      headers,
      signal: controller.signal,
    });
    // A compressing server gzips answers for clients that ask (the browser header set does): decode.
    const body = (
      answer.headers['content-encoding'] === 'gzip'
        ? JSON.parse(gunzipSync(Buffer.from(await answer.body.arrayBuffer())).toString('utf8'))
        : await answer.body.json()
    ) as PollAnswer;
    if (answer.statusCode !== 200) throw new Error(`poll answered ${answer.statusCode}`);
    answers.total++;
    if (body.messages.length === 0) answers.empty++;
    if (body.reset) dispatchFrame(sink, i, body.reset);
    if (body.gap) dispatchFrame(sink, i, body.gap);
    for (const m of body.messages) dispatchFrame(sink, i, m);
    cursors[i] = body.lastId;
  };

  if (mode === 'short' && opts.stepped) {
    return {
      ready: Promise.resolve(),
      requests: () => requests,
      answers: () => ({ ...answers }),
      async step() {
        await Promise.all(
          cursors.map((_, i) =>
            pollOnce(i, 0).catch((err: unknown) => {
              if (!controller.signal.aborted) sink.error(i, err as Error);
            }),
          ),
        );
      },
      async close() {
        controller.abort();
        await destroyAll();
      },
    };
  }

  for (let i = 0; i < count; i++) {
    let markStarted!: () => void;
    started.push(new Promise((r) => (markStarted = r)));
    loops.push(
      (async () => {
        const phase = mode === 'short' ? (intervalMs * i) / count : 0;
        let next = performance.now() + phase;
        const backoff = new Reconnector(opts.reconnect);
        if (phase > 0) markStarted();
        await sleep(phase);
        while (!controller.signal.aborted) {
          try {
            const done = pollOnce(i, mode === 'long' ? (opts.longPollTimeoutMs ?? LONG_POLL_TIMEOUT_MS) : 0);
            markStarted();
            await done;
            backoff.succeeded();
          } catch (err) {
            if (controller.signal.aborted) break;
            sink.error(i, err as Error);
            await sleep(backoff.next());
          }
          if (mode === 'short') {
            next += intervalMs;
            await sleep(Math.max(0, next - performance.now()));
          }
        }
      })(),
    );
  }
  return {
    ready: Promise.all(started).then(() => {}),
    requests: () => requests,
    answers: () => ({ ...answers }),
    async close() {
      controller.abort();
      await Promise.all(loops);
      await destroyAll();
    },
  };
}

export const longPollClients: ClientFactory = (opts) => pollClients(opts, 'long');
export const shortPollClients: ClientFactory = (opts) => pollClients(opts, 'short');
