/**
 * The demo publisher: one small message every `demoIntervalMs`, so a fresh `npm start` shows traffic
 * at once. It publishes through the feed like any client; the bench runs the server without it.
 */
import type { Feed } from './feed/types.js';

export function startDemo(feed: Feed, intervalMs: number): () => void {
  let n = 0;
  const timer = setInterval(() => {
    n++;
    feed.append({ demo: n, text: `demo message ${n}` }).catch(() => {
      // The store is down; the next tick tries again. Subscribers are told by the transports.
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
