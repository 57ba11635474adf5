/**
 * A field row INVALID because the harness missed its schedule — the publisher behind, the client
 * process's event loop behind (bench/field/env.ts HARNESS_LIMITS) — measured nothing about the lab or
 * the proxy: on two cores shared with other suites that happens now and then. The field tests measure
 * again, a bounded number of times; a row INVALID for any other reason, or every attempt late, is
 * returned as it is and fails the test's assertions.
 */
const HARNESS_LATE = /publisher fell behind its schedule|client process fell behind/;

/**
 * The field tests' harness limits (fieldEnv's `limits`): 10 × the bench's. Beside other suites on two
 * cores the publisher's lag p99 read 229–517 ms and the client loop's 118–183 ms in full runs, each a
 * measuring again of 20–35 s; the tests' assertions are counts (lost, duplicated, clients back, refusals),
 * which a late harness does not change. Past these a run is measured again, as before.
 */
export const TEST_HARNESS_LIMITS = Object.freeze({ publisherLagMs: 1_000, clientLoopDelayMs: 1_000 });

export async function measureOnSchedule<R extends { status: string; reason?: string | undefined }>(
  measure: () => Promise<R[]>,
  attempts = 3,
): Promise<R[]> {
  for (let attempt = 1; ; attempt++) {
    const rows = await measure();
    const late = rows.find((r) => r.status === 'invalid' && HARNESS_LATE.test(r.reason ?? ''));
    if (late === undefined || attempt >= attempts) return rows;
    console.warn(`field test: the harness was late (${late.reason}); measuring again, ${attempt + 1} of ${attempts}`);
  }
}
