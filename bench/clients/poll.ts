/**
 * Polling clients over undici: long polling (each answer immediately followed by the next request with
 * `since = lastId`) and short polling (a request with `timeout=0` every `shortPollIntervalMs`, the
 * clients' phases spread evenly over the interval, or, `stepped`, one poll per client each time the runner
 * calls `step()`).
 */
import { setMaxListeners } from 'node:events';
import { Agent } from 'undici';
import type { PollAnswer } from '../../server/protocol.js';
import { dispatchFrame } from './parse.js';
import type { ClientFactory, ClientGroupOptions } from './types.js';

/** Long-poll hold asked of the server; the lab's default, under common proxy idle timeouts. */
const LONG_POLL_TIMEOUT_MS = 25_000;
const RETRY_DELAY_MS = 100;

function pollClients(opts: ClientGroupOptions, mode: 'long' | 'short') {
  const { baseUrl, count, since, sink } = opts;
  const intervalMs = opts.shortPollIntervalMs ?? 1_000;
  // One keep-alive connection per client, as a browser tab would have; no pipelining.
  const agent = new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const controller = new AbortController();
  // Every client's request and sleep listen on this one signal.
  setMaxListeners(0, controller.signal);
  let requests = 0;
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
    const answer = await agent.request({
      origin: baseUrl,
      path: `/poll?since=${cursors[i]}&timeout=${timeout}`,
      method: 'GET',
      signal: controller.signal,
    });
    const body = (await answer.body.json()) as PollAnswer;
    if (answer.statusCode !== 200) throw new Error(`poll answered ${answer.statusCode}`);
    if (body.reset) dispatchFrame(sink, i, body.reset);
    if (body.gap) dispatchFrame(sink, i, body.gap);
    for (const m of body.messages) dispatchFrame(sink, i, m);
    cursors[i] = body.lastId;
  };

  if (mode === 'short' && opts.stepped) {
    return {
      ready: Promise.resolve(),
      requests: () => requests,
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
        await agent.destroy();
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
        if (phase > 0) markStarted();
        await sleep(phase);
        while (!controller.signal.aborted) {
          try {
            const done = pollOnce(i, mode === 'long' ? LONG_POLL_TIMEOUT_MS : 0);
            markStarted();
            await done;
          } catch (err) {
            if (controller.signal.aborted) break;
            sink.error(i, err as Error);
            await sleep(RETRY_DELAY_MS);
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
    async close() {
      controller.abort();
      await Promise.all(loops);
      await agent.destroy();
    },
  };
}

export const longPollClients: ClientFactory = (opts) => pollClients(opts, 'long');
export const shortPollClients: ClientFactory = (opts) => pollClients(opts, 'short');
