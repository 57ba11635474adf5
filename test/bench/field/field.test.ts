/**
 * Field failures 1 and 2 behind a real nginx (bench/field/): each naive setting reproduces its failure
 * and the lab's setting does not, measured by the bench's audited runs (real lab processes, real
 * clients, every delivery checked per client). Smaller loads than `npm run bench -- --field`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureBuffering } from '../../../bench/field/buffering.js';
import { fieldEnv } from '../../../bench/field/env.js';
import { measureTimeouts } from '../../../bench/field/timeouts.js';
import { measureUpgrade } from '../../../bench/field/upgrade.js';
import { haveNginx } from '../../../bench/processes/nginx.js';
import { Progress } from '../../../bench/plan/progress.js';
import { reportModel } from '../../../report/model.js';
import { validateReport } from '../../../report/schema.js';
import type { FieldResult } from '../../../report/types.js';
import { measureOnSchedule, TEST_HARNESS_LIMITS } from '../../helpers/on-schedule.js';
import { requirePart } from '../../helpers/real-parts.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { runBench } from '../../../bench/stages/run-bench.js';

const HAVE_NGINX = haveNginx();
requirePart(
  HAVE_NGINX,
  'field failures behind nginx',
  'test/bench/field/field.test.ts',
  'nginx is missing: the field tests need Debian’s nginx (apt-get install -y nginx)',
);

type Env = Awaited<ReturnType<typeof fieldEnv>>;
const row = (rows: FieldResult[], setting: string, transport: string, what?: RegExp) => {
  const r = rows.find(
    (x) => x.setting === setting && x.transport === transport && (what === undefined || what.test(x.what)),
  );
  if (!r) throw new Error(`no ${setting} ${transport} row`);
  return r;
};

describe.skipIf(!HAVE_NGINX)('field failures behind nginx', () => {
  let env: Env;
  beforeAll(async () => {
    env = await fieldEnv({
      limits: TEST_HARNESS_LIMITS,
      log: new Progress(process.stderr, true),
      redisUrl: 'redis://127.0.0.1:6379/0',
      keyPrefix: `field-test-${process.pid}`,
      headers: 'browser',
    });
  });
  afterAll(() => env?.close());

  it('proxy buffering: gzip on a buffered SSE stream never opens it; the lab’s X-Accel-Buffering keeps every event flowing', async () => {
    const rows = await measureOnSchedule(() =>
      measureBuffering(env, { clients: 5, ratePerSec: 10, payloadBytes: 100, durationSec: 1 }, { paired: true }),
    );
    expect(rows).toHaveLength(4);
    const gzipNaive = row(rows, 'naive', 'sse', /gzip/);
    expect(gzipNaive.verdict).toBe('fails');
    expect(gzipNaive.symptoms['streams not open after 5 s']).toBe(5);
    for (const lab of rows.filter((r) => r.setting === 'lab')) {
      expect(lab.status, lab.reason).toBe('ok');
      expect(lab.verdict, lab.what).toBe('works');
      expect(lab.symptoms.lost).toBe(0);
      expect(lab.symptoms['streams not open after 5 s']).toBe(0);
    }
    // Buffering alone (nginx 1.22): measured as it is, and whatever it shows, nothing may be lost.
    const buffered = row(rows, 'naive', 'sse', /^nginx default proxy_buffering on/);
    expect(buffered.status, buffered.reason).toBe('ok');
    expect(buffered.symptoms.lost).toBe(0);
  }, 120_000);

  it('idle timeouts: without heartbeat, with a hold above the timeout, without pings the proxy cuts; the lab’s settings survive', async () => {
    const rows = await measureOnSchedule(() =>
      measureTimeouts(env, { clients: 4, ratePerSec: 0.4, payloadBytes: 100, durationSec: 6 }, { paired: true }),
    );
    expect(rows).toHaveLength(6);
    for (const r of rows) expect(r.status, `${r.setting} ${r.transport}: ${r.reason}`).toBe('ok');
    expect(row(rows, 'naive', 'sse').symptoms['connections cut']).toBeGreaterThan(0);
    expect(row(rows, 'naive', 'ws').symptoms['connections cut']).toBeGreaterThan(0);
    expect(row(rows, 'naive', 'poll').symptoms['client errors (504s, stream errors)']).toBeGreaterThan(0);
    for (const t of ['sse', 'poll', 'ws']) {
      expect(row(rows, 'naive', t).verdict, t).toBe('fails');
      const lab = row(rows, 'lab', t);
      expect(lab.verdict, t).toBe('works');
      expect(lab.symptoms.lost, t).toBe(0);
      expect(lab.symptoms['client errors (504s, stream errors)'], t).toBe(0);
      if (t !== 'poll') expect(lab.symptoms['connections cut'], t).toBe(0);
    }
  }, 180_000);

  it('a proxy that strips Upgrade: every WebSocket handshake is refused with 426 at once; SSE and long polling still deliver everything; the shipped config opens WebSocket', async () => {
    const rows = await measureOnSchedule(() =>
      measureUpgrade(env, { clients: 3, ratePerSec: 10, payloadBytes: 100, durationSec: 1 }),
    );
    expect(rows.map((r) => `${r.setting} ${r.transport}`)).toEqual(['naive ws', 'naive sse', 'naive poll', 'lab ws']);
    for (const r of rows) expect(r.status, `${r.setting} ${r.transport}: ${r.reason}`).toBe('ok');
    const stripped = row(rows, 'naive', 'ws');
    expect(stripped.verdict).toBe('fails');
    expect(stripped.symptoms['handshakes open']).toBe(0);
    expect(stripped.symptoms['handshakes refused']).toBe(stripped.symptoms['handshakes tried']);
    expect(stripped.symptoms['refusal HTTP status']).toBe(426);
    // The client learns it from an answer, not from a deadline.
    expect(stripped.symptoms['handshakes hung']).toBe(0);
    for (const t of ['sse', 'poll']) {
      const r = row(rows, 'naive', t);
      expect(r.verdict, t).toBe('works');
      expect(r.symptoms.lost, t).toBe(0);
    }
    const shipped = row(rows, 'lab', 'ws');
    expect(shipped.verdict).toBe('works');
    expect(shipped.symptoms['handshakes open']).toBe(shipped.symptoms['handshakes tried']);
    expect(shipped.symptoms.lost).toBe(0);
  }, 60_000);

  it('npm run bench -- --proxy nginx: every scenario direct and through nginx in one run, lab and bare, and the hop in its own table', async () => {
    const opts = parseBenchArgs([
      '--proxy',
      'nginx',
      '--servers',
      'lab,bare',
      '--transports',
      'poll,sse,ws',
      '--clients',
      '4',
      '--rate',
      '20',
      '--duration',
      '0.5',
      '--repeats',
      '1',
      '--no-memory',
      '--no-autocannon',
      '--no-micro',
      '--max-publisher-lag-ms',
      '2000',
    ]);
    const report = await runBench(opts, new Progress(process.stderr, true));
    expect(validateReport(report)).toEqual({ ok: true });
    expect(report.scenarios).toHaveLength(2 * 3 * 2);
    for (const s of report.scenarios) {
      expect(s.status, `${s.server}/${s.transport} ${s.proxy ?? 'direct'}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.delivered).toBe(s.expected);
    }
    const proxied = report.scenarios.filter((s) => s.proxy === 'nginx');
    expect(proxied).toHaveLength(6);
    // lab ÷ bare pairs the proxied lab with the proxied bare.
    for (const s of proxied.filter((x) => x.server === 'lab')) expect(s.vsBare, s.transport).toBeDefined();
    const section = reportModel(report).sections.find((x) => x.title === 'Through the proxy');
    expect(section?.groups[0]?.table.rows.map((r) => r.id)).toHaveLength(12);
    expect(() => parseBenchArgs(['--proxy', 'haproxy'])).toThrow(/--proxy: expected nginx/);
    expect(() => parseBenchArgs(['--proxy', 'nginx', '--http', '2'])).toThrow(/cleartext HTTP\/1\.1/);
  }, 120_000);
});
