/**
 * Test helpers: a real lab on port 0 (always closed), and real clients for each transport that
 * record what they receive. Tests wait for counts of events (vi.waitFor), never for fixed sleeps.
 */
import { EventSource } from 'eventsource';
import type { FastifyInstance } from 'fastify';
import { onTestFinished, vi } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { reportModel } from '../../report/model.js';
import { buildApp, type AppOptions } from '../../server/app.js';
import type { ConfigInput } from '../../server/config.js';
import type { Control as AnyControl, ControlType, Message, PollAnswer } from '../../server/protocol.js';

export type { PollAnswer };

export interface RunningLab {
  app: FastifyInstance;
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
}

/** Starts a lab (demo publisher off unless asked) on 127.0.0.1:0 and closes it when the test ends. */
export async function startLab(config: ConfigInput = {}, extra: Omit<AppOptions, 'config'> = {}): Promise<RunningLab> {
  const app = await buildApp({ reportModel, ...extra, config: { demo: false, ...config } });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  onTestFinished(() => closeSaying(app));
  return { app, url: address, wsUrl: address.replace(/^http/, 'ws') };
}

/** A lab's close takes ~0.2 s; one that takes this long says what it still holds (the hook then times out as before). */
const SLOW_CLOSE_MS = 10_000;

/**
 * Closes `app`; if that takes past SLOW_CLOSE_MS, prints what is still open — the lab's connections per
 * transport and the process's handles by kind — so that a close that hangs (seen once in a loaded full
 * run, the 3G dashboard test's lab) says why.
 */
async function closeSaying(app: FastifyInstance): Promise<void> {
  const slow = setTimeout(() => {
    const transports = Object.fromEntries(
      Object.entries(app.lab.stats.transports).map(([t, c]) => [t, (c as { connections: number }).connections]),
    );
    const handles = (process as unknown as { _getActiveHandles(): object[] })
      ._getActiveHandles()
      .map((h) => h.constructor.name);
    const byKind = Object.fromEntries([...new Set(handles)].map((k) => [k, handles.filter((x) => x === k).length]));
    console.warn(
      `lab close still pending after ${SLOW_CLOSE_MS} ms: connections ${JSON.stringify(transports)}, handles ${JSON.stringify(byKind)}`,
    );
  }, SLOW_CLOSE_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(slow);
  }
}

export async function publish(url: string, data: unknown, token?: string): Promise<number> {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ data }),
  });
  if (res.status !== 201) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: number }).id;
}

export async function publishMany(
  url: string,
  n: number,
  make: (i: number) => unknown = (i) => ({ n: i }),
): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(await publish(url, make(i)));
  return ids;
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Waits until `predicate` holds (checked every few ms), failing after `timeoutMs`. */
export const until = (predicate: () => boolean, timeoutMs = 10_000): Promise<void> =>
  vi.waitFor(
    () => {
      if (!predicate()) throw new Error('condition not met yet');
    },
    { timeout: timeoutMs, interval: 5 },
  );

/**
 * A control frame as a test reads it: the protocol's shapes (server/protocol.ts), open to any other
 * field so that a test can ask for one a frame should not have.
 */
export type Control<T extends ControlType = ControlType> = Extract<AnyControl, { type: T }> & {
  readonly [k: string]: unknown;
};

/** A WebSocket client that records messages and control frames separately. */
export class WsClient {
  readonly messages: Message[] = [];
  readonly controls: Control[] = [];
  closeCode: number | undefined;
  closeReason = '';
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as Message | Control;
      if ('type' in frame) this.controls.push(frame);
      else this.messages.push(frame);
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      }),
    );
    onTestFinished(() => this.ws.terminate());
  }

  ids(): number[] {
    return this.messages.map((m) => m.id);
  }

  controlsOf<T extends ControlType>(type: T): Control<T>[] {
    return this.controls.filter((c): c is Control<T> => c.type === type);
  }
}

/** An EventSource client (the `eventsource` package, spec-compliant) that records everything. */
export class SseClient {
  readonly messages: Message[] = [];
  readonly events: { type: string; data: Control; lastEventId: string }[] = [];
  opens = 0;
  readonly es: EventSource;

  constructor(url: string, init?: ConstructorParameters<typeof EventSource>[1]) {
    this.es = new EventSource(url, init);
    this.es.onopen = () => this.opens++;
    this.es.onmessage = (e) => this.messages.push(JSON.parse(e.data) as Message);
    for (const type of ['hello', 'gap', 'reset']) {
      this.es.addEventListener(type, (e) =>
        this.events.push({ type, data: JSON.parse(e.data) as Control, lastEventId: e.lastEventId }),
      );
    }
    onTestFinished(() => this.es.close());
  }

  ids(): number[] {
    return this.messages.map((m) => m.id);
  }

  eventsOf(type: string) {
    return this.events.filter((e) => e.type === type);
  }
}

export async function poll(url: string, query: string): Promise<{ status: number; body: PollAnswer }> {
  const res = await fetch(`${url}/poll?${query}`);
  return { status: res.status, body: (await res.json()) as PollAnswer };
}

/** Long-polls from `since` until `count` messages have arrived; returns them in arrival order. */
export async function pollUntil(url: string, since: number, count: number): Promise<Message[]> {
  const got: Message[] = [];
  let cursor = since;
  while (got.length < count) {
    const { status, body } = await poll(url, `since=${cursor}&timeout=5000`);
    if (status !== 200) throw new Error(`poll answered ${status}`);
    got.push(...body.messages);
    cursor = body.lastId;
  }
  return got;
}

/** An upgrade the server refuses: resolves with the HTTP status and the JSON body. */
export function refusedUpgrade(
  url: string,
  options: WebSocket.ClientOptions = {},
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('upgrade was accepted'));
    });
    ws.once('error', (err) => reject(err));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        ws.terminate();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
  });
}

/** What a client saw, in arrival order: control types as strings ('hello', 'gap', 'reset'), messages as ids. */
export type Seen = (string | number)[];

/** Records every WebSocket frame in order: controls by type, messages by id. */
export function wsOrder(client: WsClient): Seen {
  const seen: Seen = [];
  client.ws.on('message', (raw) => {
    const frame = JSON.parse(raw.toString()) as { type?: string; id?: number };
    seen.push(frame.type ?? (frame.id as number));
  });
  return seen;
}

export interface LogLine {
  level: number;
  msg: string;
  err?: unknown;
  stack?: unknown;
  [k: string]: unknown;
}

/** A pino destination that keeps every line: pass `{ logger: { level, stream } }` to startLab. */
export function captureLog(): { stream: Writable; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { stream, lines };
}
