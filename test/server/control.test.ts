import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startLab, until } from '../helpers/lab.js';

const json = (method: string, body: unknown, token?: string): RequestInit => ({
  method,
  headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body),
});

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('the built-in publisher and /control', () => {
  it('starts at the demo rate when the demo is on, and at 0 with --no-demo', async () => {
    const on = await startLab({ demo: true });
    expect(await (await fetch(`${on.url}/control`)).json()).toMatchObject({ ratePerSec: 1, payloadBytes: 48 });
    const off = await startLab();
    expect(await (await fetch(`${off.url}/control`)).json()).toMatchObject({ ratePerSec: 0 });
  });

  it('PUT /control sets the rate and payload; the feed then grows with messages of that size', async () => {
    const lab = await startLab();
    const res = await fetch(`${lab.url}/control`, json('PUT', { ratePerSec: 200, payloadBytes: 300 }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ratePerSec: 200, payloadBytes: 300 });
    await until(() => lab.app.lab.feed.info().lastId >= 10);
    const stop = await fetch(`${lab.url}/control`, json('PUT', { ratePerSec: 0 }));
    expect(await stop.json()).toMatchObject({ ratePerSec: 0, payloadBytes: 300 });
    const read = await lab.app.lab.feed.read(0, 1);
    expect(JSON.stringify(read.kind === 'messages' && read.messages[0]?.data).length).toBe(300);
  });

  it('POST /control/burst publishes N messages at once', async () => {
    const lab = await startLab();
    const res = await fetch(`${lab.url}/control/burst`, json('POST', { count: 20 }));
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ firstId: 1, lastId: 20 });
    expect(lab.app.lab.feed.info().lastId).toBe(20);
  });

  it.each([
    ['PUT', '/control', { ratePerSec: 1001 }],
    ['PUT', '/control', { ratePerSec: -1 }],
    ['PUT', '/control', { ratePerSec: '10' }],
    ['PUT', '/control', { payloadBytes: 1.5 }],
    ['PUT', '/control', { payloadBytes: 10_000_000 }],
    ['PUT', '/control', { speed: 10 }],
    ['PUT', '/control', [1]],
    ['POST', '/control/burst', {}],
    ['POST', '/control/burst', { count: 0 }],
    ['POST', '/control/burst', { count: 10_001 }],
  ])('%s %s %j → 400 LAB_ERR_BAD_CONTROL and nothing changes', async (method, path, body) => {
    const lab = await startLab();
    const res = await fetch(`${lab.url}${path}`, json(method, body));
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('LAB_ERR_BAD_CONTROL');
    expect(lab.app.lab.generator.state).toMatchObject({ ratePerSec: 0, published: 0 });
    expect(lab.app.lab.feed.info().lastId).toBe(0);
  });

  it('follows the publish token rule: reading is open, changing needs the token', async () => {
    const lab = await startLab({ publishToken: 'tok-tok-tok-tok-tok' });
    expect((await fetch(`${lab.url}/control`)).status).toBe(200);
    const denied = await fetch(`${lab.url}/control`, json('PUT', { ratePerSec: 5 }));
    expect(denied.status).toBe(401);
    expect(await errorCode(denied)).toBe('LAB_ERR_UNAUTHORIZED');
    expect((await fetch(`${lab.url}/control/burst`, json('POST', { count: 1 }, 'wrong'))).status).toBe(401);
    expect((await fetch(`${lab.url}/control/burst`, json('POST', { count: 1 }, 'tok-tok-tok-tok-tok'))).status).toBe(
      201,
    );
    expect(lab.app.lab.generator.state.ratePerSec).toBe(0);
    expect(lab.app.lab.feed.info().lastId).toBe(1);
  });

  it('GET /time answers the server clock (epoch ms)', async () => {
    const lab = await startLab();
    const { now } = (await (await fetch(`${lab.url}/time`)).json()) as { now: number };
    expect(Number.isFinite(now) && now > 1.7e12).toBe(true);
  });
});

describe('bench reports for the dashboard', () => {
  it('lists the reports in resultsDir and one folder down, each by its question (not latest/baseline, not other JSON), and serves one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-results-'));
    await copyFile('test/fixtures/bench-report.json', join(dir, '2026-01-01T00-00-00.000Z-abc1234.json'));
    await copyFile('test/fixtures/bench-report.json', join(dir, 'latest.json'));
    await writeFile(join(dir, 'notes.json'), '{"hello":1}');
    await writeFile(join(dir, 'broken.json'), '{');
    await mkdir(join(dir, 'networks'));
    await copyFile('test/fixtures/bench-report.json', join(dir, 'networks', 'latest.json'));
    await copyFile('test/fixtures/bench-report.json', join(dir, 'networks', '2026-01-01T00-00-00.000Z-abc1234.json'));
    const lab = await startLab({ resultsDir: dir });
    const list = (await (await fetch(`${lab.url}/reports`)).json()) as { reports: { name: string; title?: string }[] };
    expect(list.reports.map((r) => r.name).sort()).toEqual([
      '2026-01-01T00-00-00.000Z-abc1234.json',
      'networks/latest.json',
    ]);
    for (const r of list.reports) expect(r.title, r.name).toMatch(/\?/);
    const nested = await fetch(`${lab.url}/reports/networks/latest.json/model`);
    expect(nested.status).toBe(200);
    expect(((await nested.json()) as { title: string }).title).toMatch(/\?/);
    const one = await fetch(`${lab.url}/reports/2026-01-01T00-00-00.000Z-abc1234.json`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { schema: string }).schema).toBe('transport-lab/bench@1');
    for (const bad of [
      'nope.json',
      '..%2Fpackage.json',
      '%2E%2E%2Fpackage.json',
      'networks/../../package.json',
      'a/b/c.json',
    ]) {
      const res = await fetch(`${lab.url}/reports/${bad}`);
      expect(res.status, bad).toBe(404);
    }
  });

  it('lists nothing when the results folder does not exist', async () => {
    const lab = await startLab({ resultsDir: join(tmpdir(), 'lab-results-does-not-exist') });
    expect(await (await fetch(`${lab.url}/reports`)).json()).toEqual({ reports: [] });
  });
});

describe('the dashboard is served under a strict CSP, and only the dashboard', () => {
  it('/ has the CSP and security headers; /poll answers carry none of them (they would inflate bytes/msg)', async () => {
    const lab = await startLab();
    const page = await fetch(`${lab.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const poll = await fetch(`${lab.url}/poll?since=0&timeout=0`);
    expect(poll.headers.get('content-security-policy')).toBeNull();
    expect(poll.headers.get('x-content-type-options')).toBeNull();
    const chart = await fetch(`${lab.url}/vendor/chart.umd.js`);
    expect(chart.status).toBe(200);
    expect(chart.headers.get('content-type')).toMatch(/javascript/);
    expect((await chart.text()).length).toBeGreaterThan(100_000);
  });
});
