/**
 * The bench over cleartext HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS, with browser headers: the
 * real harness (lab and bare in their own processes, undici/eventsource/ws clients). Lockstep keeps
 * bytes and requests per message deterministic (but for id digits), so the assertions are counts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { capturedRequestBytes } from '../../../bench/clients/browser-headers.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { Progress } from '../../../bench/plan/progress.js';
import { validateReport } from '../../../report/schema.js';
import { protocolOf, type Report, type ScenarioResult } from '../../../report/types.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { ServerPool } from '../../../bench/processes/server-process.js';
import type { HttpProtocol } from '../../../server/protocol.js';

const quiet = () => new Progress(process.stderr, true);
/** Server processes shared by this file's runs, one after another (a TLS server is a run's own: each run has its own certificate). */
const pool = new ServerPool();
afterAll(() => pool.stop());
const BASE = ['--repeats', '1', '--no-memory', '--no-autocannon', '--no-micro', '--max-publisher-lag-ms', '2000'];
// Ten lockstep messages (two more in the warm-up): every figure below is per message or per request,
// the same for ten as for a hundred.
const wire = (protocol: HttpProtocol) => ({
  name: 'wire',
  clients: 4,
  ratePerSec: 100,
  payloadBytes: 100,
  durationSec: 0.1,
  pace: 'lockstep' as const,
  protocol,
});

function find(report: Report, server: string, transport: string, protocol: HttpProtocol): ScenarioResult {
  const s = report.scenarios.find(
    (r) => r.server === server && r.transport === transport && protocolOf(r) === protocol,
  );
  if (!s) throw new Error(`no ${server}/${transport} over ${protocol} in the report`);
  expect(s.status, `${server}/${transport} over ${protocol}: ${s.reason ?? ''}`).toBe('ok');
  return s;
}
const up = (s: ScenarioResult): number => s.wire.bytesInPerRequest!.median!;
const out = (s: ScenarioResult): number => s.wire.bytesOutPerMsg.median!;

describe('the bench over TLS and HTTP/2', () => {
  it('measures every transport over each protocol, lab and bare alike, and shows what TLS and HPACK do to the bytes', async () => {
    const opts = parseBenchArgs([...BASE, '--servers', 'lab,bare']);
    opts.scenarios = (['http/1.1', 'https/1.1', 'h2'] as const).map(wire);
    const report = await runBench(opts, quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    expect(report.params.headers).toBe('browser');
    expect(report.scenarios).toHaveLength(3 * 4 * 2);
    for (const s of report.scenarios) {
      expect(s.status, `${s.server}/${s.transport} ${protocolOf(s)}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.delivered).toBe(s.expected);
      expect(s.http).toEqual({ protocol: protocolOf(s), headers: 'browser', cookieBytes: 0 });
    }
    const poll = (server: string, p: HttpProtocol) => find(report, server, 'short-poll', p);
    // Browser headers: a short poll's request is Chromium's header block (±10 %: the bench's query differs).
    const chromium = capturedRequestBytes('poll', 'http://127.0.0.1:12345');
    expect(up(poll('lab', 'http/1.1'))).toBeGreaterThan(chromium * 0.9);
    expect(up(poll('lab', 'http/1.1'))).toBeLessThan(chromium * 1.1);
    // The clients send the same requests to lab and bare: the same bytes up, but for cursor digits.
    for (const p of ['http/1.1', 'https/1.1', 'h2'] as const)
      expect(Math.abs(up(poll('lab', p)) - up(poll('bare', p))), p).toBeLessThanOrEqual(2);
    // TLS adds record framing to every request and every answer.
    expect(up(poll('lab', 'https/1.1'))).toBeGreaterThan(up(poll('lab', 'http/1.1')) + 15);
    expect(out(poll('lab', 'https/1.1'))).toBeGreaterThan(out(poll('lab', 'http/1.1')));
    // HTTP/2: HPACK sends the repeated headers as table indexes — a few bytes instead of ~550.
    expect(up(poll('lab', 'h2'))).toBeLessThan(up(poll('lab', 'https/1.1')) / 4);
    expect(up(poll('bare', 'h2'))).toBeLessThan(up(poll('bare', 'https/1.1')) / 4);
    // WebSocket has no HTTP/2 form in ws: in the h2 run it is HTTP/1.1 over TLS, byte for byte.
    for (const server of ['lab', 'bare']) {
      const h2 = find(report, server, 'ws', 'h2');
      const tls = find(report, server, 'ws', 'https/1.1');
      expect(Math.abs(out(h2) - out(tls)), server).toBeLessThanOrEqual(2);
      expect(Math.abs(up(h2) - up(tls)), server).toBeLessThanOrEqual(2);
      // Its opening request carries the TLS handshake: more than the cleartext upgrade.
      expect(up(tls)).toBeGreaterThan(up(find(report, server, 'ws', 'http/1.1')) + 200);
    }
    // vs bare pairs rows of the same protocol only.
    for (const s of report.scenarios.filter((r) => r.server === 'lab'))
      expect(s.vsBare, `${s.transport} ${protocolOf(s)}`).toBeDefined();
  }, 240_000);

  it('sends the client libraries’ own headers with --headers minimal, and a cookie of exactly --cookie-bytes', async () => {
    const measure = async (args: string[]) => {
      const opts = parseBenchArgs([...BASE, '--servers', 'lab', '--transports', 'short-poll', ...args]);
      opts.scenarios = [wire('http/1.1')];
      const report = await runBench(opts, quiet(), pool);
      expect(validateReport(report)).toEqual({ ok: true });
      return find(report, 'lab', 'short-poll', 'http/1.1');
    };
    const minimal = await measure(['--headers', 'minimal']);
    const cookie = await measure(['--headers', 'minimal', '--cookie-bytes', '1000']);
    expect(minimal.http?.headers).toBe('minimal');
    expect(up(minimal)).toBeLessThan(150);
    // "cookie: " + 1000 bytes + CRLF on every request.
    expect(up(cookie) - up(minimal)).toBeGreaterThanOrEqual(1010 - 2);
    expect(up(cookie) - up(minimal)).toBeLessThanOrEqual(1010 + 2);
    expect(cookie.http?.cookieBytes).toBe(1000);
  }, 120_000);

  it('refuses what it cannot measure: the gate and the sweep over TLS, a bad header mode or cookie size', () => {
    expect(() => parseBenchArgs(['--sweep', '--http', '2'])).toThrow(/--sweep: .*cleartext HTTP\/1\.1 only/);
    expect(() => parseBenchArgs(['--http', '3'])).toThrow(/--http: unknown "3"/);
    expect(() => parseBenchArgs(['--headers', 'firefox'])).toThrow(/--headers: unknown "firefox"/);
    expect(() => parseBenchArgs(['--cookie-bytes', '-1'])).toThrow(/--cookie-bytes/);
    expect(() => parseBenchArgs(['--compare-protocols', '--tls'])).toThrow(/--compare-protocols/);
    expect(() => parseBenchArgs(['--tls'], 'check')).toThrow(/CI gate runs cleartext/);
    const both = parseBenchArgs(['--http', '1.1,2', '--tls']);
    expect([...new Set(both.scenarios.map((s) => s.protocol))]).toEqual(['https/1.1', 'h2']);
    expect(parseBenchArgs(['--compare-protocols']).scenarios.map((s) => s.protocol)).toEqual([
      'http/1.1',
      'https/1.1',
      'h2',
    ]);
  });
});
