/**
 * The open-loop schedule every sender of the bench keeps (the publisher, chat clients): event k is due at
 * `start + k × intervalMs` whatever happened to event k − 1, and is fired late rather than skipped, its
 * lateness recorded. Timers are ~1 ms grained, so several events may go in one turn.
 */
import { type Histogram, nowMs } from './recorder.js';

/**
 * Fires `fire(k, dueMs)` for k = 0 … total − 1 on schedule (dueMs on the nowMs clock); records each
 * event's lateness in `lag` (µs, at least 1). Resolves once every event has been fired.
 */
export function openLoop(
  total: number,
  intervalMs: number,
  lag: Histogram,
  fire: (k: number, dueMs: number) => void,
  startMs: number = nowMs() + 5,
): Promise<void> {
  let k = 0;
  return new Promise<void>((done) => {
    const tick = () => {
      const now = nowMs();
      while (k < total) {
        const due = startMs + k * intervalMs;
        if (due > now) break;
        lag.recordValue(Math.max(1, Math.round((now - due) * 1000)));
        fire(k++, due);
      }
      if (k >= total) return done();
      setTimeout(tick, Math.max(0, startMs + k * intervalMs - nowMs()));
    };
    tick();
  });
}
