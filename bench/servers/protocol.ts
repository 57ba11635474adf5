/**
 * The IPC contract between the bench runner and a server child process:
 * - child → runner `{type:'ready', port, controlPort}` once listening on 127.0.0.1;
 * - runner → child `{type:'gc'}` → child runs gc() three times and answers `{type:'memory', heapUsedBytes, rssBytes}`;
 * - runner → child `{type:'stop'}` → child closes and exits 0.
 * Transports are served on `port`; `POST /publish` and `GET /stats` on `controlPort`.
 */

export type ToChild = { type: 'gc' } | { type: 'stop' };
export type FromChild =
  | { type: 'ready'; port: number; controlPort: number }
  | { type: 'memory'; heapUsedBytes: number; rssBytes: number };

export interface Memory {
  heapUsedBytes: number;
  rssBytes: number;
}

/** gc() three times, then the process's heap and RSS. */
function localGc(): Promise<Memory> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the server with --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  const mem = process.memoryUsage();
  return Promise.resolve({ heapUsedBytes: mem.heapUsed, rssBytes: mem.rss });
}

/** `gc`: how to collect garbage and measure (a cluster primary sums its workers); default this process. */
export function serveIpc(opts: { port: number; controlPort: number; stop: () => Promise<unknown>; gc?: () => Promise<Memory> }): void {
  const send = (m: FromChild) => process.send?.(m);
  process.on('message', (m: ToChild) => {
    switch (m.type) {
      case 'gc': {
        void (opts.gc ?? localGc)().then((mem) => send({ type: 'memory', ...mem }));
        break;
      }
      case 'stop':
        void opts.stop().finally(() => process.exit(0));
        break;
      default:
        m satisfies never;
    }
  });
  // The runner going away must not leave a server behind.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port: opts.port, controlPort: opts.controlPort });
}
