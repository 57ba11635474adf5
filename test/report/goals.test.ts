/**
 * The overhead targets (report/goals.ts): each row is the report's own medians against its limit, a
 * missing or INVALID side is "not measured" (never met), and every rendering shows them as one section.
 * Fed the committed report fixture (a real run: lab, bare, floor and Socket.IO) and doctored copies.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GOALS, goalRows } from '../../report/goals.js';
import { renderMarkdown } from '../../report/markdown.js';
import type { Report, ScenarioResult } from '../../report/types.js';

const TEXT = readFileSync(new URL('../fixtures/bench-report.json', import.meta.url), 'utf8');
const fixture = (): Report => JSON.parse(TEXT) as Report;
const find = (r: Report, server: string, transport: string): ScenarioResult =>
  r.scenarios.find((s) => s.name === 'small' && s.network.direct && s.server === server && s.transport === transport)!;

describe('targets', () => {
  it('rows for every comparison the run measured, from its medians', () => {
    const r = fixture();
    const rows = goalRows(r);
    const goals = (g: string) => rows.filter((x) => x.goal === g && x.where.startsWith('small ')).map((x) => x.where);
    // The oversize shape: the lab refused every publish (INVALID), so nothing there is measured.
    const oversize = rows.filter((x) => x.where.startsWith('oversize '));
    expect(oversize.length).toBeGreaterThan(0);
    expect(oversize.every((x) => x.measured === null && x.met === null)).toBe(true);
    expect(goals('CPU/msg lab ÷ floor')).toEqual(['small sse', 'small ws']);
    expect(goals('CPU/msg lab ÷ bare')).toEqual(['small poll', 'small short-poll', 'small sse', 'small ws']);
    expect(goals('CPU/msg lab ÷ Socket.IO')).toEqual(['small poll', 'small ws']);
    expect(rows.filter((x) => x.goal === 'idle heap/conn lab − bare').length).toBe(
      r.memory.filter((m) => m.server === 'lab').length,
    );
    // The fixture's shape is not 100 × 2,000: no latency row.
    expect(goals('latency p99 behind schedule')).toEqual([]);
    const ws = rows.find((x) => x.goal === 'CPU/msg lab ÷ floor' && x.where === 'small ws')!;
    expect(ws.measured).toBe(find(r, 'lab', 'ws').vsFloor!.cpuUsPerMsg);
    expect(ws.met).toBe(ws.measured! <= GOALS.floorCpuRatio);
    const sio = rows.find((x) => x.goal === 'CPU/msg lab ÷ Socket.IO' && x.where === 'small ws')!;
    expect(sio.measured).toBeCloseTo(
      find(r, 'lab', 'ws').serverMetrics.cpuUsPerMsg.median! /
        find(r, 'socketio', 'ws').serverMetrics.cpuUsPerMsg.median!,
      9,
    );
  });

  it('the lab against every peer where it serves the transport (CPU, idle heap) and against bare over HTTP/2', () => {
    const r = fixture();
    const labSse = find(r, 'lab', 'sse');
    // A peer SSE library at twice the lab's CPU per message, and Socket.IO holding 100 B more per idle connection.
    const twice = (f: typeof labSse.serverMetrics.cpuUsPerMsg) => ({
      ...f,
      median: f.median! * 2,
      min: f.min! * 2,
      max: f.max! * 2,
      values: f.values.map((v) => (v === null ? null : v * 2)),
    });
    r.scenarios.push({
      ...structuredClone(labSse),
      server: 'better-sse',
      serverMetrics: { ...labSse.serverMetrics, cpuUsPerMsg: twice(labSse.serverMetrics.cpuUsPerMsg) },
    });
    const labMem = r.memory.find((m) => m.server === 'lab' && m.transport === 'ws')!;
    r.memory.push({
      ...structuredClone(labMem),
      server: 'socketio',
      heapBytesPerConn: { ...labMem.heapBytesPerConn, median: labMem.heapBytesPerConn.median! + 100 },
    });
    // The small shape over HTTP/2 + TLS, lab at ×1.20 of bare.
    for (const server of ['lab', 'bare'] as const) {
      const s = structuredClone(find(r, server, 'poll'));
      s.http = { ...(s.http ?? { headers: 'minimal', cookieBytes: 0 }), protocol: 'h2' } as NonNullable<
        ScenarioResult['http']
      >;
      if (server === 'lab') s.vsBare = { ...s.vsBare!, cpuUsPerMsg: 1.2 };
      r.scenarios.push(s);
    }
    const rows = goalRows(r);
    const peer = rows.find((x) => x.goal === 'CPU/msg lab ÷ better-sse')!;
    expect(peer).toMatchObject({ where: 'small sse', limit: GOALS.peerRatio, met: true });
    expect(peer.measured).toBeCloseTo(0.5, 9);
    expect(rows.find((x) => x.goal === 'idle heap/conn lab − Socket.IO')).toMatchObject({
      where: `${labMem.connections} idle ws`,
      measured: -100,
      met: true,
    });
    expect(rows.filter((x) => x.goal === 'CPU/msg lab ÷ bare, HTTP/2')).toEqual([
      {
        goal: 'CPU/msg lab ÷ bare, HTTP/2',
        where: 'small poll',
        measured: 1.2,
        unit: 'ratio',
        limit: GOALS.h2BareCpuRatio,
        met: false,
      },
    ]);
    // No "≤ 0.5 × Socket.IO" any more: the lab against Socket.IO at the peers' limit.
    expect(rows.filter((x) => x.goal === 'CPU/msg lab ÷ Socket.IO').every((x) => x.limit === GOALS.peerRatio)).toBe(
      true,
    );
  });

  it('a ratio over its limit is not met; an INVALID side is not measured, never met', () => {
    const r = fixture();
    const lab = find(r, 'lab', 'sse');
    lab.vsFloor = { cpuUsPerMsg: GOALS.floorCpuRatio + 0.01, latencyP99: 1 };
    const floor = find(r, 'floor', 'ws');
    floor.status = 'invalid';
    floor.reason = 'repeat 1: 1 messages lost';
    const rows = goalRows(r);
    expect(rows.find((x) => x.goal === 'CPU/msg lab ÷ floor' && x.where === 'small sse')?.met).toBe(false);
    expect(rows.find((x) => x.goal === 'CPU/msg lab ÷ floor' && x.where === 'small ws')).toMatchObject({
      measured: null,
      met: null,
    });
  });

  it('the latency target is read at 100 clients × 2,000 msg/s, on poll, SSE and WebSocket', () => {
    const r = fixture();
    for (const s of r.scenarios)
      if (s.name === 'small')
        Object.assign(s, { clients: GOALS.p99Shape.clients, ratePerSec: GOALS.p99Shape.ratePerSec });
    find(r, 'lab', 'ws').latencyMs.p99.median = GOALS.p99Ms + 1;
    const rows = goalRows(r).filter((x) => x.goal === 'latency p99 behind schedule');
    expect(rows.map((x) => x.where)).toEqual(['small poll', 'small sse', 'small ws']);
    expect(rows.find((x) => x.where === 'small ws')?.met).toBe(false);
  });

  it('every rendering has the Targets section with each row and its verdict', () => {
    const md = renderMarkdown(fixture());
    expect(md).toContain('## Targets');
    for (const row of goalRows(fixture())) {
      const verdict = row.met === null ? 'not measured' : row.met ? 'met' : 'NOT MET';
      expect(md.split('\n').some((l) => l.startsWith(`| ${row.goal} | ${row.where} |`) && l.includes(verdict))).toBe(
        true,
      );
    }
  });
});
