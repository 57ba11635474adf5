// Clock offset between this browser and the server, for latency = (browser now + offset) − message.ts.
//
// The NTP-style exchange: t0 = send, server answers its `now`, t1 = receive. Assuming the request
// and the answer took equally long, the server read its clock at (t0 + t1) / 2 of ours, so
// offset = server.now − (t0 + t1) / 2, with an error of at most RTT / 2. Several round trips; the one
// with the smallest RTT has the smallest error bound, so it is the one kept.

import { api, nowMs } from './api.js';

const ROUND_TRIPS = 7;

/** Offsets this small on the server's own machine are measurement noise, not a clock difference. */
const SAME_MACHINE_NOISE_MS = 2;
/** Off the server's machine, an offset beyond this is worth a warning next to the latencies. */
export const SIGNIFICANT_OFFSET_MS = 5;

export const isLocalPage = () => {
  const h = location.hostname;
  return h === 'localhost' || h === '[::1]' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
};

/**
 * @typedef {{offsetMs: number, measuredOffsetMs: number, rttMs: number, local: boolean,
 *   applied: boolean, samples: number}} ClockSync
 */

/** @returns {Promise<ClockSync>} */
export async function syncClock() {
  let best = { offset: 0, rtt: Number.POSITIVE_INFINITY };
  let samples = 0;
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = nowMs();
    const body = await api('/time');
    const t1 = nowMs();
    if (typeof body?.now !== 'number') throw new Error('GET /time did not answer {now}');
    samples++;
    const rtt = t1 - t0;
    if (rtt < best.rtt) best = { offset: body.now - (t0 + t1) / 2, rtt };
  }
  const local = isLocalPage();
  // On the server's machine both read the same clock: apply nothing unless the estimate clearly
  // says otherwise (e.g. a container with its own clock behind a loopback port forward).
  const applied = !local || Math.abs(best.offset) > Math.max(SAME_MACHINE_NOISE_MS, best.rtt);
  return {
    offsetMs: applied ? best.offset : 0,
    measuredOffsetMs: best.offset,
    rttMs: best.rtt,
    local,
    applied,
    samples,
  };
}
