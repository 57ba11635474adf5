/**
 * What every bench client module implements: open `count` clients of one transport against a server,
 * and report each delivery to the sink the moment it is parsed. The sink timestamps it (one clock for
 * every transport) and checks ids; client modules only parse.
 *
 * Published messages carry `data = { t: <scheduled send time, epoch ms>, p: <padding> }`, so a client
 * hands the sink the message id and `data.t`.
 */
import type { HttpSetup } from '../plan/http-setup.js';

export interface ClientSink {
  /**
   * A message arrived at client `client`. `jsonBytes`: length of the message JSON as carried on the wire
   * (ASCII, so characters = bytes), where the transport frames each message alone (SSE, WebSocket);
   * used to measure the protocol overhead against its floor.
   */
  message(client: number, id: number, scheduledMs: number, jsonBytes?: number): void;
  /** The server announced a gap (ids `since+1 … firstId-1` are gone); they will not count as lost. */
  gap(client: number, since: number, firstId: number): void;
  /** The server announced a reset (cursor not servable). */
  reset(client: number): void;
  /** A transport error; the client module retries or not as its transport would. */
  error(client: number, err: Error): void;
}

export interface ClientGroupOptions {
  /** Base URL of the transport endpoint server, e.g. http://127.0.0.1:4321 (https:// over TLS) */
  baseUrl: string;
  /** Protocol, header set and cookie of every request (bench/clients/http.ts). */
  http: HttpSetup;
  count: number;
  /** Cursor to start from (the feed's last id when the clients connect). */
  since: number;
  sink: ClientSink;
  /** Long polling only: the hold each poll asks for (`timeout`). @default 25000, the lab's default hold */
  longPollTimeoutMs?: number;
  /** Short polling only: the fixed interval between polls. @default 1000 */
  shortPollIntervalMs?: number;
  /**
   * Short polling only: no timer; every client polls once each time the group's `step()` is called
   * (lockstep runs, where the runner pins each poll's phase against the publishes).
   */
  stepped?: boolean;
  /**
   * WebSocket and polling: how a client waits before reconnecting after a failure. `immediate`: a fixed
   * 100 ms. `jittered`: exponential backoff with full jitter (fullJitterMs), reset by a success.
   * (SSE reconnects as EventSource does, after the server's `retry:`; an EventSource that gave up on a
   * non-200 answer is reopened after this wait.) @default 'immediate'
   */
  reconnect?: ReconnectMode;
  /**
   * The server compresses: WebSocket clients offer permessage-deflate (as every browser does), polling
   * clients decode gzip answers (EventSource's fetch decodes by itself). @default false
   */
  compression?: boolean;
  /** Their page is on this origin, not the server's: every request says so (CORS; sends preflighted). */
  pageOrigin?: string;
}

export type ReconnectMode = 'immediate' | 'jittered';

/** The `immediate` wait, and the full-jitter backoff's base (attempt 0) and cap. */
export const RECONNECT = Object.freeze({ immediateMs: 100, baseMs: 200, capMs: 5_000 });

/**
 * Full-jitter exponential backoff, as Centrifugo's clients do (and AWS's "Exponential Backoff and
 * Jitter"): a delay uniform in [0, min(cap, base · 2^attempt)] (`random` in [0, 1)).
 */
export const fullJitterMs = (
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number => random() * Math.min(capMs, baseMs * 2 ** attempt);

/** One client's reconnect waits: `next()` after each failure, `succeeded()` once connected (resets the backoff). */
export class Reconnector {
  #attempt = 0;
  constructor(
    readonly mode: ReconnectMode = 'immediate',
    readonly random: () => number = Math.random,
  ) {}
  next(): number {
    if (this.mode === 'immediate') return RECONNECT.immediateMs;
    return fullJitterMs(this.#attempt++, RECONNECT.baseMs, RECONNECT.capMs, this.random);
  }
  succeeded(): void {
    this.#attempt = 0;
  }
}

export interface ClientGroup {
  /** Resolves when every client is connected (or, for polling, has its first request in flight). */
  readonly ready: Promise<void>;
  /** HTTP requests this group has made so far (upgrades and SSE connects included). */
  requests(): number;
  /** Polling only: answers received so far, and how many of them carried no message. */
  answers?(): { total: number; empty: number };
  /**
   * Stepped short polling only: every client makes one poll; resolves when all of them were answered
   * (and their messages handed to the sink).
   */
  step?(): Promise<void>;
  /** Closes every client and resolves once they are closed. */
  close(): Promise<void>;
}

export type ClientFactory = (options: ClientGroupOptions) => ClientGroup;
