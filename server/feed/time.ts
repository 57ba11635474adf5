import { performance } from 'node:perf_hooks';

/**
 * Wall-clock time in epoch milliseconds with a sub-millisecond fraction, monotonic within the process
 * (timeOrigin + a monotonic clock), so that `received − ts` latencies are not bent by NTP steps.
 */
export const publishTime = (): number => performance.timeOrigin + performance.now();
