/**
 * Many tabs of one app in one Chromium (bench/field/tabs.ts), real Chromium against real lab processes:
 * over HTTP/1.1 the 6-connections-per-origin limit leaves EventSources past the sixth stalled, without
 * an error, while long polls past it wait in the browser but lose nothing; over HTTP/2 every tab gets
 * every message; so do WebSockets, pooled apart from the 6, on both. A shorter feed than
 * `npm run bench -- --field many-tabs`, the two protocols side by side. The scenario waits for its own
 * events (subscriptions open, every receiving tab caught up), each with a deadline; the test reads its
 * rows, and checks they make a valid report that renders.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldEnv } from '../../../bench/field/env.js';
import { H1_LIMIT, measureTabs } from '../../../bench/field/tabs.js';
import { Progress } from '../../../bench/plan/progress.js';
import { renderMarkdown } from '../../../report/markdown.js';
import { validateReport } from '../../../report/schema.js';
import type { FieldResult, Report } from '../../../report/types.js';
import { HAVE_CHROMIUM, NO_CHROMIUM, requirePart } from '../../helpers/real-parts.js';

requirePart(HAVE_CHROMIUM, 'many tabs in Chromium', 'test/bench/field/tabs.test.ts', NO_CHROMIUM);

const TABS = 8;
const FIXTURE = new URL('../../fixtures/bench-report.json', import.meta.url);

describe.skipIf(!HAVE_CHROMIUM)('many tabs in Chromium', () => {
  let env: Awaited<ReturnType<typeof fieldEnv>>;
  beforeAll(async () => {
    env = await fieldEnv({
      log: new Progress(process.stderr, true),
      redisUrl: 'redis://127.0.0.1:6379/0',
      keyPrefix: `tabs-test-${process.pid}`,
      headers: 'browser',
    });
  });
  afterAll(() => env?.close());

  // SSE only: WebSockets outside the limit and long polls queueing behind it are
  // test/web/connection-limit.test.ts's; four rows fewer keep this suite inside npm test's time.
  it('HTTP/1.1: EventSources past the 6th stall, silently; over HTTP/2 every tab is live', async () => {
    const rows = await measureTabs(env, {
      load: { tabs: TABS, ratePerSec: 4, durationSec: 1 },
      transports: ['sse'],
      paired: true,
      // Beside other suites on two cores a send can be late; the assertions below do not depend on it.
      maxPublisherLagMs: 2_000,
    });
    const row = (setting: string, transport: string): FieldResult => {
      const r = rows.find((x) => x.setting === setting && x.transport === transport);
      if (!r) throw new Error(`no ${setting} ${transport} row`);
      return r;
    };
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.status, `${r.setting} ${r.transport}: ${r.reason}`).toBe('ok');

    const sseH1 = row('naive', 'sse');
    expect(sseH1.verdict).toBe('fails');
    expect(sseH1.symptoms['tabs stalled'], JSON.stringify(sseH1.symptoms)).toBeGreaterThan(0);
    // No more live than the limit allows, and those that opened got every message.
    expect(sseH1.symptoms['tabs live']).toBeLessThanOrEqual(H1_LIMIT);
    expect(sseH1.symptoms['tabs stalled']).toBeGreaterThanOrEqual(TABS - H1_LIMIT);
    expect(sseH1.symptoms.lost).toBe(0);
    expect(sseH1.symptoms['client errors']).toBe(0);
    // The server never saw the stalled ones: their requests stayed in the browser.
    expect(sseH1.symptoms['server subscriptions max']).toBeLessThanOrEqual(H1_LIMIT);

    // Every tab got every message (live, or late only if this machine stalled for LATE_MS), and the
    // server held every stream at once.
    const sseH2 = row('lab', 'sse');
    expect(sseH2.verdict, JSON.stringify(sseH2.symptoms)).toBe('works');
    expect(sseH2.symptoms).toMatchObject({ tabs: TABS, 'tabs stalled': 0, lost: 0 });
    expect(sseH2.symptoms['server subscriptions max']).toBe(TABS);

    // The rows are a valid report's field section, and it renders.
    const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Report;
    const report = { ...fixture, field: rows };
    expect(validateReport(report)).toEqual({ ok: true });
    expect(renderMarkdown(report)).toContain('| tabs stalled |');
  }, 60_000);
});
