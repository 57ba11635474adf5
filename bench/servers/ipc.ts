/**
 * The IPC contract between the bench runner and a server child process:
 * - child → runner `{type:'ready', port, controlPort}` once listening on 127.0.0.1;
 * - runner → child `{type:'gc'}` → child runs gc() three times and answers `{type:'memory', heapUsedBytes, rssBytes}`;
 * - runner → child `{type:'loop-open'}` → child opens (or restarts) its bench event-loop window and
 *   answers `{type:'loop-opened'}`; `{type:'loop-close'}` → child answers `{type:'loop-delay', delayMs}`,
 *   the delay over that window (server/event-loop.ts), and closes it (`delayMs` null if none was open);
 * - runner → child `{type:'stop'}` → child closes and exits 0.
 * Transports are served on `port`; `POST /publish` and `GET /stats` on `controlPort`.
 *
 * The runner opens the event-loop window when its measured window opens and closes it when that one
 * closes, so every server, lab or reference, reports its delay over the same interval it is measured on.
 */
import { EventLoopWindow, type EventLoopDelay } from '../../server/event-loop.js';

export type ToChild = { type: 'gc' } | { type: 'loop-open' } | { type: 'loop-close' } | { type: 'stop' };
export type FromChild =
  | {
      type: 'ready';
      port: number;
      controlPort: number /** TLS on `port` (and on `controlPort` when it is the same port). */;
      tls?: boolean;
    }
  | { type: 'memory'; heapUsedBytes: number; rssBytes: number }
  | { type: 'loop-opened' }
  | { type: 'loop-delay'; delayMs: EventLoopDelay | null };

export interface Memory {
  heapUsedBytes: number;
  rssBytes: number;
}

/** The bench's event-loop window of a server (a cluster primary opens one in each worker). */
export interface LoopWindow {
  open(): Promise<void>;
  close(): Promise<EventLoopDelay | null>;
}

/** gc() three times, then the process's heap and RSS. */
export function collectGarbage(): Memory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the server with --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  const mem = process.memoryUsage();
  return { heapUsedBytes: mem.heapUsed, rssBytes: mem.rss };
}

/** This process's bench window. */
export function localLoopWindow(): LoopWindow {
  let window: EventLoopWindow | undefined;
  return {
    async open() {
      if (window) window.restart();
      else window = new EventLoopWindow();
    },
    async close() {
      const w = window;
      window = undefined;
      if (!w) return null;
      const delay = w.read();
      w.close();
      return delay;
    },
  };
}

/**
 * `gc`: how to collect garbage and measure (a cluster primary sums its workers); default this process.
 * `loop`: the bench's event-loop window (a cluster primary asks its workers); default this process.
 */
export function serveIpc(opts: {
  port: number;
  controlPort: number;
  tls?: boolean;
  stop: () => Promise<unknown>;
  gc?: () => Promise<Memory>;
  loop?: LoopWindow;
}): void {
  const send = (m: FromChild) => process.send?.(m);
  const loop = opts.loop ?? localLoopWindow();
  process.on('message', (m: ToChild) => {
    switch (m.type) {
      case 'gc': {
        void (opts.gc ?? (async () => collectGarbage()))().then((mem) => send({ type: 'memory', ...mem }));
        break;
      }
      case 'loop-open':
        void loop.open().then(() => send({ type: 'loop-opened' }));
        break;
      case 'loop-close':
        void loop.close().then((delayMs) => send({ type: 'loop-delay', delayMs }));
        break;
      case 'stop':
        void opts.stop().finally(() => process.exit(0));
        break;
      default:
        m satisfies never;
    }
  });
  // The runner going away must not leave a server behind.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port: opts.port, controlPort: opts.controlPort, ...(opts.tls ? { tls: true } : {}) });
}
