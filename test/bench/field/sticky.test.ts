/**
 * Field scenario "no sticky sessions" (bench/field/sticky.ts), run for real with smaller loads: two
 * labs on one Redis feed behind nginx round robin, instance B restarted mid-run, every transport
 * delivers everything exactly once and both instances served requests; Socket.IO polling behind the
 * same round robin fails with engine.io's 400 "Session ID unknown".
 *
 * Skipped with a warning when nginx is not installed; under CI (process.env.CI) that is a failure.
 */
import { randomBytes } from 'node:crypto';
import { Ajv } from 'ajv';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fieldEnv } from '../../../bench/field/env.js';
import { measureSticky } from '../../../bench/field/sticky.js';
import { haveNginx, NGINX_BIN } from '../../../bench/processes/nginx.js';
import { Progress } from '../../../bench/plan/progress.js';
import { FieldResult } from '../../../report/types.js';
import { measureOnSchedule, TEST_HARNESS_LIMITS } from '../../helpers/on-schedule.js';
import { SHARED_REDIS, withRedis } from '../../helpers/redis.js';

const HAVE_NGINX = haveNginx();
if (!HAVE_NGINX) {
  if (process.env.CI) throw new Error(`nginx is not installed (looked for ${NGINX_BIN}); .ci/run installs it`);
  console.warn(
    `test/bench/field/sticky.test.ts skipped: no nginx at ${NGINX_BIN} (apt-get install -y nginx, or set NGINX_BIN)`,
  );
}

/** Deletes every key of the scenario's feeds (`<prefix>-<name>:…`). */
async function deleteKeys(prefix: string): Promise<void> {
  await withRedis(SHARED_REDIS, async (r) => {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}-*`, 'COUNT', 1000);
      if (keys.length > 0) await r.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  });
}

describe.skipIf(!HAVE_NGINX)('field: no sticky sessions (nginx round robin over two instances)', () => {
  it('the lab loses and duplicates nothing across a restart on every transport; Socket.IO polling fails with 400 Session ID unknown', async () => {
    const keyPrefix = `lab-test-field-sticky-${randomBytes(6).toString('hex')}`;
    onTestFinished(() => deleteKeys(keyPrefix));
    const env = await fieldEnv({
      limits: TEST_HARNESS_LIMITS,
      log: new Progress(process.stderr, true),
      redisUrl: SHARED_REDIS,
      keyPrefix,
      headers: 'browser',
    });
    // Registered after the key cleanup: hooks run in reverse order, so everything stops first.
    onTestFinished(() => env.close());

    const rows = await measureOnSchedule(async () => {
      await deleteKeys(keyPrefix); // an attempt again starts on empty feeds
      return measureSticky(env, {
        lab: { clients: 10, durationSec: 3 },
        socketio: { durationSec: 3 },
        stickyControl: false,
      });
    });

    const validate = new Ajv({ strictNumbers: true }).compile(FieldResult);
    for (const row of rows) expect(validate(row), `${row.transport}: ${JSON.stringify(validate.errors)}`).toBe(true);
    expect(rows.map((r) => `${r.setting} ${r.transport}`)).toEqual([
      'lab poll',
      'lab sse',
      'lab ws',
      'naive socketio-poll',
    ]);
    expect(new Set(rows.map((r) => r.title)).size).toBe(1);

    for (const row of rows.filter((r) => r.setting === 'lab')) {
      const s = row.symptoms;
      const at = `${row.transport}: ${JSON.stringify(row)}`;
      expect(row.status, at).toBe('ok');
      expect(row.verdict, at).toBe('works');
      expect(s.lost, at).toBe(0);
      expect(s.duplicated, at).toBe(0);
      // Round robin put clients on both instances, and the restart of B cut the ones it held.
      expect(s['requests on instance A'], at).toBeGreaterThan(0);
      expect(s['requests on instance B'], at).toBeGreaterThan(0);
      expect(s['clients cut by the restart'], at).toBeGreaterThan(0);
      if (row.transport !== 'poll')
        expect(s['reconnects (requests beyond one per client)'], at).toBeGreaterThanOrEqual(
          s['clients cut by the restart']!,
        );
    }

    const socketio = rows.find((r) => r.transport === 'socketio-poll')!;
    const at = JSON.stringify(socketio);
    expect(socketio.status, at).toBe('ok');
    expect(socketio.verdict, at).toBe('fails');
    expect(socketio.symptoms['HTTP 400 answers (Session ID unknown)'], at).toBeGreaterThan(0);
    expect(socketio.symptoms['client errors'], at).toBeGreaterThan(0);
    expect(socketio.what).toContain('400 {"code":1,"message":"Session ID unknown"}');
    // Round robin sent the clients to both Socket.IO instances.
    expect(socketio.symptoms['requests on instance A'], at).toBeGreaterThan(0);
    expect(socketio.symptoms['requests on instance B'], at).toBeGreaterThan(0);
  }, 120_000);
});
