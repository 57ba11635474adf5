/**
 * Client mistakes (a bad WebSocket frame, an aborted upload, a malformed request) are the client's
 * problem, not the server's: they are logged at `info`, as one line without a stack, and at most
 * `perSec` lines a second per server, so that sending garbage is not a cheap way to flood the logs.
 * What was dropped is counted and said in the next line that gets through.
 */
import type { FastifyBaseLogger } from 'fastify';

/** Client-mistake log lines per second, per server; the rest are counted and summarised. */
export const CLIENT_MISTAKE_LOG_PER_SEC = 10;

export type MistakeLogger = (what: string, fields?: Record<string, unknown>) => void;

export function mistakeLogger(log: FastifyBaseLogger, perSec = CLIENT_MISTAKE_LOG_PER_SEC): MistakeLogger {
  let windowStart = 0;
  let inWindow = 0;
  let dropped = 0;
  return (what, fields = {}) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    if (inWindow >= perSec) {
      dropped++;
      return;
    }
    inWindow++;
    log.info({ ...fields, ...(dropped ? { droppedSimilar: dropped } : {}) }, `client mistake: ${what}`);
    dropped = 0;
  };
}
