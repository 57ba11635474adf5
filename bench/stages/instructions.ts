/**
 * The gate's CPU figure: instructions the server executes per delivered message, counted by callgrind
 * (bench/processes/callgrind.ts) over lockstep windows (bench/measure/lockstep.ts).
 *
 * Per (server, transport): `clients` clients connect to a server process of its own running under
 * callgrind, one window's worth of messages is published in lockstep uninstrumented (code compiled to
 * bytecode on first use, pools, keep-alive sockets), then `windows` windows of `windowMessages` each: a full GC, counters zeroed and instrumentation on,
 * the messages in lockstep (each one delivered to every client before the next), instrumentation off.
 * The figure of a window is its instruction count ÷ (messages × clients); the result keeps every
 * window's value and their median. It counts everything the server process does for those deliveries:
 * the publish request, the feed, the fan-out, the writes, the polls' requests, timers, GC.
 *
 * Lockstep makes the work per window the same from run to run: every write carries exactly one message
 * and every poll answer one, whatever the machine's load. A window that lost, duplicated or reordered a
 * message, or stalled, makes the result INVALID with the reason.
 */
import { clientsOf } from '../clients/index.js';
import type { Progress } from '../plan/progress.js';
import { TRANSPORT_NAMES, type InstructionResult, type ServerName, type TransportName } from '../../report/types.js';
import { figure } from '../../report/figures.js';
import type { HttpSetup } from '../plan/http-setup.js';
import { publishLockstep } from '../measure/lockstep.js';
import { Recorder } from '../measure/recorder.js';
import { startServer, type ServerHandle } from '../processes/server-process.js';
import type { InstructionPlan } from '../plan/suite.js';
import { DEFAULT_LAB_SETUP, target, type LabSetup, type Target } from '../plan/targets.js';
import type { Stage } from './stage.js';

/** The servers counted: the lab, its controls, and the lab doctored on every transport (bench/servers/doctor.ts), the positive control. */
export const COUNTED: readonly { server: ServerName; doctored: boolean }[] = [
  { server: 'lab', doctored: false },
  { server: 'bare', doctored: false },
  { server: 'floor', doctored: false },
  { server: 'lab', doctored: true },
];

/*
 * No idle rate is subtracted. A server idle under callgrind executes ~400–30k instructions a second (its
 * timers; the event-loop monitor is slowed under callgrind), 0.3 % of a window; an idle sample taken
 * before each window (0.5 s, two more control round trips) read anything from 400 to 4.5 million a
 * second — a heartbeat or a GC's tail falling in it — so subtracting it moved single windows more than
 * it corrected them, and it took 40 % of the stage's time.
 */

/** Lockstep paces itself by deliveries: a rate this high never makes it wait on its schedule. */
const UNPACED_RATE_PER_SEC = 10_000;
const CONNECT_TIMEOUT_MS = 60_000;

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Counts `t` on `server` (started with `callgrind: true`). Never throws for a failed measurement: the
 * result is then INVALID with the reason.
 */
export async function countInstructions(
  server: ServerHandle,
  t: Target,
  plan: InstructionPlan,
  http: HttpSetup,
): Promise<InstructionResult> {
  const perMsg: number[] = [];
  const windowMessages = plan.windowMessages[t.transport];
  const base = { server: t.server, transport: t.transport, clients: plan.clients, windowMessages };
  const cg = server.callgrind;
  if (!cg) throw new Error(`${t.server} was not started under callgrind`);
  const recorder = new Recorder({ clients: plan.clients });
  const key = t.transport;
  const connected = async (n: number) => (await server.stats()).transports[key].connections >= n;
  const since = (await server.stats()).feed.lastId;
  const group = clientsOf(t)({
    baseUrl: server.baseUrl,
    http,
    count: plan.clients,
    since,
    sink: recorder,
    stepped: true,
  });
  const publish = (messages: number) =>
    publishLockstep({
      controlUrl: server.controlUrl,
      ratePerSec: UNPACED_RATE_PER_SEC,
      durationSec: messages / UNPACED_RATE_PER_SEC,
      payloadBytes: plan.payloadBytes,
      clients: plan.clients,
      group,
      received: () => recorder.received,
    });
  // In lockstep a long poll is re-held after each delivery; a window starts only with every one held.
  const settled = () =>
    t.holdsConnections
      ? waitFor(() => connected(plan.clients), CONNECT_TIMEOUT_MS, `${plan.clients} ${key} connections`)
      : Promise.resolve();
  let problem: string | undefined;
  try {
    await group.ready;
    await settled();
    const warm = await publish(windowMessages);
    if (warm.stall) throw new Error(`warm-up: ${warm.stall}`);
    recorder.startWindow((await server.stats()).feed.lastId, plan.windows * windowMessages + 16);
    const ids: number[] = [];
    for (let w = 0; w < plan.windows && !problem; w++) {
      await server.gc();
      await settled();
      const before = recorder.received;
      await cg.start();
      let instructions: number;
      let pub: Awaited<ReturnType<typeof publish>>;
      try {
        pub = await publish(windowMessages);
      } finally {
        instructions = await cg.stop();
      }
      ids.push(...pub.ids);
      const delivered = recorder.received - before;
      if (pub.ids.length === 0) problem = `window ${w + 1}: nothing was published`;
      else if (pub.stall) problem = pub.stall;
      else if (pub.failures > 0) problem = `${pub.failures} publishes failed (${pub.firstFailure})`;
      else if (delivered !== pub.ids.length * plan.clients)
        problem = `window ${w + 1}: ${delivered} deliveries, expected ${pub.ids.length * plan.clients}`;
      else perMsg.push(instructions / delivered);
    }
    const c = recorder.counts(ids);
    if (!problem && c.lost + c.duplicated + c.reordered + c.resets + c.errors > 0) {
      problem = `${c.lost} lost, ${c.duplicated} duplicated, ${c.reordered} out of order, ${c.resets} resets, ${c.errors} client errors${c.firstError ? ` (first: ${c.firstError})` : ''}`;
    }
  } catch (err) {
    problem = (err as Error).message;
  } finally {
    await group.close();
    if (t.holdsConnections) {
      await waitFor(
        async () => (await server.stats()).transports[key].connections === 0,
        30_000,
        'clients to disconnect',
      ).catch(() => {});
    }
  }
  return {
    ...base,
    status: problem ? 'invalid' : 'ok',
    ...(problem ? { reason: problem } : {}),
    instructionsPerMsg: figure(perMsg),
  };
}

/** One server process under callgrind and the transports it is counted on. */
export interface Counted {
  server: ServerName;
  doctored: boolean;
  handle: Promise<ServerHandle>;
  targets: Target[];
}

/**
 * Starts every counted server under callgrind (instrumentation off), each with the transports of the
 * run it serves: started with the run's other servers, so that valgrind's slow start-up never lands in
 * a measurement.
 */
export function startCounted(
  transports: readonly TransportName[],
  servers: readonly ServerName[],
  setup: LabSetup,
): Counted[] {
  return countedServers(transports, servers, setup).map(({ server, doctored, targets }) => {
    const options = { ...targets[0]!.process.options, ...(doctored ? { doctor: [...TRANSPORT_NAMES] } : {}) };
    const handle = startServer(targets[0]!.process.script, options, { callgrind: true });
    handle.catch(() => {}); // seen by the stage, which reports it as INVALID
    return { server, doctored, handle, targets };
  });
}

/** The counted servers among `servers` with the transports each serves. */
const countedServers = (
  transports: readonly TransportName[],
  servers: readonly ServerName[],
  setup: LabSetup = DEFAULT_LAB_SETUP,
) =>
  COUNTED.filter((c) => servers.includes(c.server))
    .map((c) => ({ ...c, targets: transports.flatMap((tr) => target(c.server, tr, setup) ?? []) }))
    .filter((c) => c.targets.length > 0);

/** Every (server, transport) the stage counts. */
export const countedTargets = (transports: readonly TransportName[], servers: readonly ServerName[]): Target[] =>
  countedServers(transports, servers).flatMap((c) => c.targets);

/**
 * Counts every (server, transport) of `counted`, two at a time (two cores; a process counts one window
 * at a time, its counters being the process's); the run's Processes stop them. Instruction counts do not depend on
 * the machine's load, so this runs beside stages that do not measure time.
 */
export async function runInstructions(
  counted: Counted[],
  plan: InstructionPlan,
  http: HttpSetup,
  log: Progress,
): Promise<InstructionResult[]> {
  const jobs = counted.flatMap((c) => c.targets.map((t) => ({ c, t })));
  const busy = new Set<Counted>();
  const taken = new Set<(typeof jobs)[number]>();
  const results = new Map<(typeof jobs)[number], InstructionResult>();
  const lane = async (): Promise<void> => {
    for (;;) {
      // The next job of the idle process with the most jobs left, so that no process's jobs are all left
      // for one lane at the end.
      const left = (c: Counted) => jobs.filter((j) => j.c === c && !taken.has(j)).length;
      const open = jobs.filter((j) => !taken.has(j) && !busy.has(j.c));
      const job = open.sort((a, b) => left(b.c) - left(a.c))[0];
      if (!job) return;
      busy.add(job.c);
      taken.add(job);
      log.step(
        `instructions: ${job.c.doctored ? 'doctored ' : ''}${job.t.server}/${job.t.transport} (${plan.windows} windows of ${plan.windowMessages[job.t.transport]} messages × ${plan.clients} clients)`,
        INSTRUCTION_STEP_SEC,
      );
      let r: InstructionResult;
      try {
        r = await countInstructions(await job.c.handle, job.t, plan, http);
      } catch (err) {
        r = {
          server: job.t.server,
          transport: job.t.transport,
          clients: plan.clients,
          windowMessages: plan.windowMessages[job.t.transport],
          status: 'invalid',
          reason: (err as Error).message,
          instructionsPerMsg: figure([]),
        };
      }
      results.set(job, job.c.doctored ? { ...r, doctored: true } : r);
      busy.delete(job.c);
    }
  };
  await Promise.all([lane(), lane()]);
  return jobs.map((j) => results.get(j)!);
}

/** What one (server, transport) takes under valgrind, for the plan (seconds, on two busy cores). */
export const INSTRUCTION_STEP_SEC = 12;

/** The stage's estimate: two lanes, plus the slowest start-up. */
export const instructionsEstimateSec = (counted: number): number => 20 + (counted * INSTRUCTION_STEP_SEC) / 2;

/** The report's method entry for this stage. */
export const INSTRUCTIONS_METHOD =
  "Instructions per delivered message: each server (lab, bare, the floor, and the lab doctored on every transport as the positive control) runs in a process of its own under valgrind --tool=callgrind (Node with --single-threaded --jitless: V8's interpreter, no JIT compiling at moments that vary), instrumentation switched on only around each window. Per transport: clients connect, warm-up messages are published in lockstep uninstrumented, then each window — a full GC, counters zeroed, messages in lockstep, counters read — gives instructions ÷ deliveries; the figure is the median over windows. Counts weigh JavaScript more than a JIT-compiled server would: a regression detector, not a production CPU figure (that is cpu, above).";

/**
 * The gate's instruction counts: servers of their own under callgrind, started once the run's other
 * servers are ready (each takes ~10 s of CPU to start: beside the others, two cores could not start
 * the lab within its ready timeout), counted beside the stage before (idle memory): counts do not
 * depend on the machine's load.
 */
export const instructionsStage: Stage<Counted[]> = {
  name: 'instructions',
  runs: (opts) => opts.instructions !== undefined,
  async prepare({ opts, processes }) {
    const counted = startCounted(opts.transports, opts.servers, opts.lab);
    for (const c of counted) processes.own(c.handle);
    await Promise.all(counted.map((c) => c.handle.catch(() => undefined)));
    return counted;
  },
  estimateSec: (opts) =>
    opts.instructions ? instructionsEstimateSec(countedTargets(opts.transports, opts.servers).length) : 0,
  alongside: true,
  run: async ({ opts, log }, counted) => ({
    instructions: await runInstructions(
      counted,
      opts.instructions!,
      { protocol: 'http/1.1', headers: opts.headers, cookieBytes: opts.cookieBytes },
      log,
    ),
  }),
};
