/**
 * Event-loop delay, one definition for every server that reports it: the lab, and the bench's
 * reference servers (bare, Socket.IO), so that their figures compare.
 *
 * A window is one `perf_hooks.monitorEventLoopDelay` histogram, started at a known instant; reading
 * it gives the percentiles of the delays sampled since then, and the window's measured length. Every
 * server uses it twice, the same way:
 * - `LastWindow`, for GET /stats (what the dashboard polls): the last complete fixed window of
 *   TIMING.eventLoopWindowMs, or the window so far until the first one completes;
 * - one `EventLoopWindow` for the bench, opened when the runner's measured window opens and read when
 *   it closes (IPC, bench/servers/ipc.ts), so the delay covers exactly the interval whose CPU and
 *   bytes the run is judged on. A fixed 5 s window would cover a 2–3 s run only in part, and at a
 *   different phase on each server.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

/**
 * Sampling interval of the histogram, ms. Node's default: fine enough to see a 10 ms stall, cheap
 * enough (one native timer per window) not to show up in the CPU figures it sits next to.
 */
export const EVENT_LOOP_RESOLUTION_MS = 10;

/** Event-loop delay over one window, milliseconds; all 0 when nothing was sampled. */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** The window's measured length. */
  windowMs: number;
}

export class EventLoopWindow {
  readonly #histogram: IntervalHistogram;
  #startedAt: number;

  constructor() {
    this.#histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.#histogram.enable();
    this.#startedAt = performance.now();
  }

  /** The delay since the window opened (or was last restarted); the window stays open. */
  read(): EventLoopDelay {
    const h = this.#histogram;
    const windowMs = performance.now() - this.#startedAt;
    if (h.count === 0) return { p50: 0, p99: 0, max: 0, windowMs };
    return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, windowMs };
  }

  /** Starts the window over, now. */
  restart(): void {
    this.#histogram.reset();
    this.#startedAt = performance.now();
  }

  close(): void {
    this.#histogram.disable();
  }
}

/** The last complete window of `windowMs`, back to back; until the first one completes, the window so far. */
export class LastWindow {
  readonly #current = new EventLoopWindow();
  #last: EventLoopDelay | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(readonly windowMs: number) {
    this.#timer = setInterval(() => {
      this.#last = this.#current.read();
      this.#current.restart();
    }, windowMs).unref();
  }

  read(): EventLoopDelay {
    return this.#last ?? this.#current.read();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#current.close();
  }
}
