/**
 * The chat workload (bench/measure/chat.ts) through the real harness: the lab in its own process, every
 * client of every transport sending (WebSocket frames, POST /send beside SSE and polling) and receiving
 * everyone's. Assertions are counts: every send answered and delivered to every client once, the
 * requests and bytes each direction takes, and a retry after a dropped answer appended once.
 */
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { httpSending, type Sending } from '../../../bench/clients/senders.js';
import { parseBenchArgs } from '../../../bench/cli/options.js';
import { sendFromClients } from '../../../bench/measure/chat.js';
import { Progress } from '../../../bench/plan/progress.js';
import { DEFAULT_HTTP } from '../../../bench/plan/http-setup.js';
import { PAGE_ORIGIN } from '../../../bench/plan/targets.js';
import { ServerPool } from '../../../bench/processes/server-process.js';
import { runBench } from '../../../bench/stages/run-bench.js';
import { reportModel } from '../../../report/model.js';
import { validateReport } from '../../../report/schema.js';
import type { ScenarioResult } from '../../../report/types.js';
import { startLab } from '../../helpers/lab.js';

const quiet = () => new Progress(process.stderr, true);
const pool = new ServerPool();
afterAll(() => pool.stop());

describe('the chat workload', () => {
  it('every transport: each send acknowledged and delivered to every client once; what each direction costs', async () => {
    const opts = parseBenchArgs([
      ...['--chat', '--repeats', '1', '--max-publisher-lag-ms', '2000'],
      ...['--transports', 'poll,short-poll,sse,ws'],
    ]);
    opts.scenarios = [
      {
        name: 'chat-small',
        clients: 3,
        ratePerSec: 4,
        payloadBytes: 100,
        durationSec: 0.5,
        workload: 'chat',
        servers: ['lab', 'socketio'],
      },
    ];
    const report = await runBench(opts, quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    // The lab on four transports, Socket.IO (emit with ack) on its two.
    expect(report.scenarios).toHaveLength(6);
    const row = (t: string, server = 'lab'): ScenarioResult =>
      report.scenarios.find((s) => s.transport === t && s.server === server)!;
    for (const s of report.scenarios) {
      expect(s.status, `${s.server}/${s.transport}: ${s.reason ?? ''}`).toBe('ok');
      expect(s.workload).toBe('chat');
      // 3 clients × 4 a second × 0.5 s, each delivered to all 3 clients, the sender too.
      expect(s.chat?.sent, s.transport).toBe(6);
      expect(s.published, s.transport).toBe(6);
      expect(s.delivered, s.transport).toBe(6 * 3);
      expect(s.expected).toBe(s.delivered);
      expect([s.lost, s.duplicated, s.reordered, s.chat?.refused, s.chat?.duplicates]).toEqual([0, 0, 0, 0, 0]);
      expect(s.chat?.ackMs.p99.median, s.transport).not.toBeNull();
      expect(s.chat?.everyoneMs.p99.median, s.transport).not.toBeNull();
      expect(s.chat?.bytesDownPerDelivery.median, s.transport).toBeGreaterThan(100);
    }
    // A WebSocket send is a frame on the open socket: no request at all. Every other send is a POST.
    expect(row('ws').chat?.requestsPerSend.median).toBe(0);
    expect(row('ws', 'socketio').chat?.requestsPerSend.median).toBe(0);
    for (const t of ['sse', 'poll', 'short-poll'])
      expect(row(t).chat?.requestsPerSend.median, t).toBeGreaterThanOrEqual(1);
    // A frame of ~120 B against a POST with a browser's headers (~600 B) and its body.
    expect(row('ws').chat?.bytesUpPerSend.median).toBeLessThan(250);
    expect(row('sse').chat?.bytesUpPerSend.median).toBeGreaterThan(3 * row('ws').chat!.bytesUpPerSend.median!);
    // The report opens with its question and shows the chat section.
    const model = reportModel(report);
    expect(model.title).toMatch(/^What does sending from the client cost on each transport\?/);
    expect(model.sections.map((s) => s.title)).toContain('Both directions: the chat workload');
  });

  it('a page on another origin: its first send is preflighted and the preflight cached; an origin not listed is refused', async () => {
    const lab = await startLab({ allowedOrigins: [PAGE_ORIGIN] });
    const page = httpSending(lab.url, DEFAULT_HTTP, 1, PAGE_ORIGIN);
    onTestFinished(() => page.close());
    expect(await page.send(0, { n: 1 }, 'cors:1')).toEqual({ ok: true, id: 1, duplicate: false });
    expect(await page.send(0, { n: 2 }, 'cors:2')).toEqual({ ok: true, id: 2, duplicate: false });
    // One preflight (cached for the lab's Access-Control-Max-Age, 600 s), then the two POSTs.
    expect(page.ownWire().requests).toBe(3);
    const other = await startLab();
    const refused = httpSending(other.url, DEFAULT_HTTP, 1, PAGE_ORIGIN);
    onTestFinished(() => refused.close());
    expect(await refused.send(0, { n: 1 }, 'cors:1')).toEqual({ ok: false, code: 'CORS preflight refused' });
    expect(other.app.lab.feed.info().lastId).toBe(0);
  });

  it('a send whose answer was lost is sent again with its key: answered duplicate, appended once', async () => {
    const lab = await startLab();
    const http = httpSending(lab.url, { ...DEFAULT_HTTP, headers: 'minimal' }, 2);
    onTestFinished(() => http.close());
    // The first attempt of one send reaches the server, then its answer is "lost" (the sender sees a failure).
    let dropped = 0;
    const lossy: Sending = {
      ...http,
      async send(client, data, key) {
        const answer = await http.send(client, data, key);
        if (key.endsWith(':1:2') && dropped++ === 0) throw new Error('connection reset before the answer');
        return answer;
      },
    };
    const outcome = await sendFromClients({
      sending: lossy,
      clients: 2,
      ratePerSec: 5,
      durationSec: 1,
      payloadBytes: 80,
      runId: 'retry-test',
    });
    expect(outcome.sent).toBe(10);
    expect(outcome.retries).toBe(1);
    expect(outcome.duplicates).toBe(1);
    expect([outcome.failures, outcome.refused]).toEqual([0, 0]);
    expect(outcome.ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(lab.app.lab.feed.info().lastId).toBe(10);
  });

  it('batched: what falls due within batchMs goes in one request, each item acknowledged, a lost answer retried once', async () => {
    const lab = await startLab();
    const http = httpSending(lab.url, { ...DEFAULT_HTTP, headers: 'minimal' }, 2);
    onTestFinished(() => http.close());
    let dropped = 0;
    const lossy: Sending = {
      ...http,
      async sendBatch(client, items) {
        const answers = await http.sendBatch!(client, items);
        if (client === 1 && dropped++ === 0) throw new Error('connection reset before the answer');
        return answers;
      },
    };
    const outcome = await sendFromClients({
      sending: lossy,
      clients: 2,
      ratePerSec: 20,
      durationSec: 1,
      payloadBytes: 80,
      runId: 'batch-test',
      batchMs: 200,
    });
    expect(outcome.sent).toBe(40);
    expect([outcome.failures, outcome.refused]).toEqual([0, 0]);
    // 20 sends a client, one every 50 ms, each batch sent 200 ms after its first: 4 or more a batch (a late
    // timer only adds to it) but a client's last, so at most 5 batches a client, and never one per send.
    expect(outcome.batches).toBeLessThanOrEqual(2 * 6);
    expect(outcome.batches).toBeGreaterThanOrEqual(2);
    // Client 1's first batch was answered, then "lost": sent again, every item of it answered duplicate.
    expect(outcome.retries).toBe(1);
    expect(outcome.duplicates).toBeGreaterThanOrEqual(2);
    expect(outcome.ids).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(lab.app.lab.feed.info().lastId).toBe(40);
    // Requests: one POST per batch and one for the retry, never one per send.
    expect(http.ownWire().requests).toBe(outcome.batches + 1);
  });

  it('a batched chat scenario through the harness: fewer requests per send, every send delivered', async () => {
    const opts = parseBenchArgs([
      ...['--chat', '--repeats', '1', '--max-publisher-lag-ms', '2000'],
      '--transports',
      'sse,ws',
    ]);
    opts.scenarios = [
      {
        name: 'chat-batched',
        clients: 2,
        ratePerSec: 20,
        payloadBytes: 100,
        durationSec: 0.5,
        workload: 'chat',
        batchMs: 200,
        servers: ['lab'],
      },
    ];
    const report = await runBench(opts, quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    for (const s of report.scenarios) {
      expect(s.status, `${s.transport}: ${s.reason ?? ''}`).toBe('ok');
      expect([s.batchMs, s.chat?.sent, s.delivered, s.lost]).toEqual([200, 20, 40, 0]);
      expect(s.chat?.batches).toBeLessThan(s.chat!.sent);
    }
    // SSE: one connect and a POST per batch, fewer than one request per send.
    expect(report.scenarios.find((s) => s.transport === 'sse')?.chat?.requestsPerSend.median).toBeLessThan(1);
    const model = reportModel(report);
    expect(JSON.stringify(model.sections)).toMatch(/sends batched within 200 ms \(\d\.\d a batch\)/);
  });

  it('one client flooding past its budget: refused (and a WebSocket cut), the others get every message once', async () => {
    const opts = parseBenchArgs([
      ...['--chat', '--repeats', '1', '--max-publisher-lag-ms', '2000'],
      '--transports',
      'sse,ws',
    ]);
    opts.scenarios = [
      {
        name: 'chat-flood',
        clients: 3,
        ratePerSec: 4,
        payloadBytes: 100,
        durationSec: 1,
        workload: 'chat',
        floodPerSec: 1500,
        servers: ['lab'],
      },
    ];
    const report = await runBench(opts, quiet(), pool);
    expect(validateReport(report)).toEqual({ ok: true });
    for (const s of report.scenarios) {
      const at = `${s.transport}: ${s.reason ?? ''} ${JSON.stringify(s.chat?.flood)}`;
      // The flood is not held against the run: the others' sends all acknowledged, nothing lost.
      expect(s.status, at).toBe('ok');
      expect([s.floodPerSec, s.chat?.sent, s.chat?.refused, s.lost, s.duplicated]).toEqual([1500, 12, 0, 0, 0]);
      const f = s.chat!.flood!;
      expect(f.sent, at).toBe(1500);
      expect(f.accepted + f.refused + f.cut, at).toBe(f.sent);
      // Its budget (50 a second, a second's burst) let some through, refused the rest. Over HTTP/1.1 the
      // flooding page sends on up to 5 connections, each with a budget of its own: 300 a second read all
      // 300 accepted in one loaded run; 1,500 is past what 5 budgets take in the flood's second or two.
      expect(f.accepted, at).toBeGreaterThan(0);
      expect(f.refused, at).toBeGreaterThan(0);
      // Everything the flooder got through is in the feed and reached every audited client.
      expect(s.published, at).toBe(12 + f.accepted);
      expect(s.delivered, at).toBe(3 * s.published);
    }
    const model = reportModel(report);
    expect(JSON.stringify(model.sections)).toMatch(
      /one more client flooding at 1,500 msg\/s \(sse: [\d,]+ of 1,500 accepted/,
    );
  });
});
