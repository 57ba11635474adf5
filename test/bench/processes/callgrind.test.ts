/**
 * The gate's CPU figure is an instruction count (bench/processes/callgrind.ts): the same work must count the
 * same, twice the work about twice, and nothing outside a window may count. A real child under
 * valgrind's callgrind, as the gate runs its servers.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Callgrind, callgrindLaunch, dumpDir, parseDump } from '../../../bench/processes/callgrind.js';
import { forkChild } from '../../../bench/processes/server-process.js';
import { requirePart } from '../../helpers/real-parts.js';

const HAVE_VALGRIND = existsSync('/usr/bin/valgrind') && existsSync('/usr/bin/callgrind_control');
requirePart(
  HAVE_VALGRIND,
  'counting instructions under callgrind',
  'test/bench/processes/callgrind.test.ts',
  "valgrind is missing: the gate counts instructions with Debian's valgrind (apt-get install valgrind)",
);

describe('parseDump', () => {
  it('adds the self costs and skips the inclusive cost after each calls= line', () => {
    const dump = [
      'version: 1',
      'positions: line',
      'events: Ir',
      'summary: 18446744073709522806',
      '',
      'fl=(1) a.c',
      'fn=(1) main',
      '3 100',
      '+2 50',
      'cfn=(2) f',
      'calls=4 10',
      '* 1000',
      '-1 7',
      '',
      'fn=(2) f',
      '10 1000',
      '',
    ].join('\n');
    // main's self cost 100 + 50 + 7 and f's 1000; the 1000 after calls= is f's, counted once. The
    // summary line wrapped around 2^64 (as callgrind writes it after zeroing) and is ignored.
    expect(parseDump(dump)).toBe(1157);
  });
});

describe.skipIf(!HAVE_VALGRIND)('counting instructions under callgrind', () => {
  it('counts the same work alike, twice the work about twice, and nothing between windows', async () => {
    const outDir = dumpDir();
    const file = fileURLToPath(new URL('../../fixtures/count-me.mjs', import.meta.url));
    type From = { type: 'ready' } | { type: 'done'; sink: number } | { type: 'collected' };
    const { child, env } = await forkChild<{ type: 'work'; n: number } | { type: 'gc' } | { type: 'stop' }, From>(
      file,
      'count-me',
      {},
      {
        ...callgrindLaunch(outDir),
        tsx: false,
        readyTimeoutMs: 60_000,
      },
    );
    const cg = new Callgrind(child.pid, env, outDir);
    try {
      // As the gate does: a full GC before each window, so that collections fall at the same allocations.
      const counted = async (n: number) => {
        await child.ask({ type: 'gc' }, 'collected');
        await cg.start();
        await child.ask({ type: 'work', n }, 'done');
        return cg.stop();
      };
      for (let i = 0; i < 3; i++) await child.ask({ type: 'work', n: 400 }, 'done'); // warm-up, uncounted
      const a = await counted(400);
      await child.ask({ type: 'work', n: 5_000 }, 'done'); // between windows: must not count
      const b = await counted(400);
      const c = await counted(800);
      expect(a).toBeGreaterThan(400 * 1000); // thousands of instructions per re-encoding, interpreted
      // Measured: six such windows within ±0.2 %; without the GC before each, ±12 %.
      expect(Math.abs(b - a) / a).toBeLessThan(0.02);
      expect(c / a).toBeGreaterThan(1.8);
      expect(c / a).toBeLessThan(2.2);
    } finally {
      await child.stop({ type: 'stop' });
      await cg.cleanUp();
    }
  }, 90_000);
});
