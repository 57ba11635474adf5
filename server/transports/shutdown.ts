/**
 * Graceful shutdown spread over a window (`shutdownSpreadMs`): a draining instance behind a proxy
 * closes its long-lived connections a few at a time, so the instances that take them over see a bounded
 * reconnect rate (measured: npm run bench -- --field rolling-deploy). Shared by the SSE and WebSocket
 * transports; the spreads of one app run over the same window, and the last transport's preClose
 * waits for all of them (Fastify runs preClose hooks one after another).
 */

/** Each app's spread closes under way (SSE and WebSocket), so the last transport's preClose can wait for all. */
const spreads = new WeakMap<object, Promise<void>[]>();

/**
 * Calls `close` on every item, spread evenly over `windowMs` (item k at k·windowMs/n; all at once when
 * windowMs is 0), and records the spread as one of `app`'s. Resolves after the last call.
 */
export function spreadClose<T>(
  app: object,
  items: readonly T[],
  windowMs: number,
  close: (item: T) => void,
): Promise<void> {
  let done: Promise<void>;
  if (windowMs <= 0 || items.length <= 1) {
    for (const item of items) close(item);
    done = Promise.resolve();
  } else {
    done = Promise.all(
      items.map(
        (item, k) =>
          new Promise<void>((resolve) => setTimeout(() => resolve(close(item)), (k * windowMs) / items.length)),
      ),
    ).then(() => {});
  }
  spreads.set(app, [...(spreads.get(app) ?? []), done]);
  return done;
}

/** Resolves when every spread close `app` started has finished. */
export const spreadsDone = async (app: object): Promise<void> => void (await Promise.all(spreads.get(app) ?? []));
