/**
 * The bench's reference servers (bare, Socket.IO) must serve the same feed as the lab, and bare must
 * put the same bytes on the wire, or every vsBare ratio is meaningless. bench/servers/selfcheck.ts
 * checks exactly that against real processes; this runs it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('bench reference servers deliver every message and bare matches the lab byte for byte', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/servers/selfcheck.ts'], { timeout: 60_000 });
  expect(stdout).toContain('all checks passed');
  expect(stdout).not.toMatch(/^\s*FAIL/m);
}, 90_000);
