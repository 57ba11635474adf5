/**
 * The CI gate's positive control: a lab made to spend about 25 % more CPU per delivered message on the
 * named transports, by real work — each delivered message re-encoded `DOCTOR_UNITS[transport]` times —
 * not a time-based spin, which an instruction counter rightly does not count as work. bench:check runs
 * it beside the lab in every run and fails if the gate does not see it (bench/cli/check.ts), so the gate's
 * power is proven in CI, not asserted. `npm run bench:check -- --doctor ws` gates such a lab instead of
 * the real one, which must fail.
 *
 * The units are calibrated against the gate's instruction counts (bench/stages/instructions.ts: 10 clients,
 * V8's interpreter) so that each transport's doctored lab counts 25–30 % more per delivered message;
 * the gate reports the measured increase of each run as `doctored ÷ lab`.
 */
import type { ExtraWork } from '../../server/transports/params.js';
import type { Message } from '../../server/feed/types.js';
import type { TransportName } from '../../report/types.js';

/**
 * Re-encodings of each delivered message per transport, on average (a fraction carries over to the
 * next message), for +25–35 % instructions per delivered message (the baseline: +28–37 %). Measured: one re-encoding of a
 * 100-byte message costs 11–12.5k instructions under the gate's interpreter; a delivery costs ~118k
 * (WebSocket, SSE), ~780k (long polling) and ~1.57M (short polling) at 10 clients.
 */
export const DOCTOR_UNITS: Readonly<Record<TransportName, number>> = Object.freeze({
  poll: 19.5,
  'short-poll': 34,
  sse: 2.7,
  ws: 3,
});

/** Kept so that no engine can drop the work as unused. */
let sink = 0;

function reencode(units: number): (messages: readonly Message[]) => void {
  let credit = 0;
  return (messages) => {
    for (const m of messages) {
      credit += units;
      // (1e-9: 2.4 added ten times is 23.999…; the tenth message still gets its third re-encoding)
      for (; credit >= 1 - 1e-9; credit--) sink = (sink + Buffer.byteLength(JSON.stringify(m))) | 0;
    }
  };
}

/** The lab's extraWork (server/app.ts AppOptions) for the doctored transports. */
export function doctorWork(transports: readonly TransportName[]): ExtraWork {
  return Object.fromEntries(transports.map((t) => [t, reencode(DOCTOR_UNITS[t])]));
}
