/**
 * Checks and times every delivery of one run. One clock for everything: `performance.timeOrigin +
 * performance.now()` in the bench process, the same clock the publisher stamps the schedule with.
 *
 * Per client it keeps a bitmap of the ids seen in the measured window, so that at the end it can say
 * exactly how many were lost (not announced by a gap), duplicated, or delivered out of order.
 */
import hdr from 'hdr-histogram-js';
import type { ClientSink } from '../clients/types.js';

export const nowMs = (): number => performance.timeOrigin + performance.now();

/** µs histogram from 1 µs to 10 min, 3 significant digits. */
export const newHistogram = () =>
  hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
export type Histogram = ReturnType<typeof newHistogram>;

interface ClientState {
  seen: Uint8Array;
  maxSeen: number;
  /** Ids in [from, to] announced as gone by the server. */
  gaps: [number, number][];
  resets: number;
}

export interface RecorderOptions {
  clients: number;
  /** Protocol floor overhead of one message (see floor.ts), summed over the window's deliveries. */
  floorOf?: (id: number, jsonBytes: number) => number;
  /** Test hook: client 0 silently drops every Nth message, to prove the bench reports loss as INVALID. */
  lossyEvery?: number;
}

export interface DeliveryCounts {
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  gaps: number;
  resets: number;
  errors: number;
  firstError?: string;
}

export class Recorder implements ClientSink {
  readonly latency: Histogram = newHistogram();
  /**
   * Per message of the window, once every client has it: its latency at the last of them (µs) — when a
   * message has reached everyone (the chat workload's send → delivered to everyone).
   */
  readonly everyone: Histogram = newHistogram();
  /** Deliveries in the measured window (duplicates included, as the wire carried them). */
  delivered = 0;
  /** Deliveries of any id, warm-up included: what drain waits on. */
  received = 0;
  errors = 0;
  firstError: string | undefined;
  /** Over the window's deliveries that reported their wire JSON: count, JSON bytes, floor overhead bytes. */
  readonly wire = { messages: 0, jsonBytes: 0, floorBytes: 0 };
  readonly #floorOf: RecorderOptions['floorOf'];
  #base = 0;
  #capacity = 0;
  readonly #clients: ClientState[];
  /** Per window slot: how many clients have the message, and the latest first arrival (µs). */
  #reach = new Uint32Array(0);
  #slowest = new Float64Array(0);
  readonly #lossyEvery: number;
  #lossyCount = 0;
  #reordered = 0;

  constructor(opts: RecorderOptions) {
    this.#lossyEvery = opts.lossyEvery ?? 0;
    this.#floorOf = opts.floorOf;
    this.#clients = Array.from({ length: opts.clients }, () => ({
      seen: new Uint8Array(0),
      maxSeen: 0,
      gaps: [],
      resets: 0,
    }));
  }

  /**
   * Starts the measured window: ids after `lastIdBefore`, at most `capacity` of them. Deliveries of
   * older ids (warm-up) are counted in `received` only.
   */
  startWindow(lastIdBefore: number, capacity: number): void {
    this.#base = lastIdBefore + 1;
    this.#capacity = capacity;
    this.#reach = new Uint32Array(capacity);
    this.#slowest = new Float64Array(capacity);
    for (const c of this.#clients) {
      c.seen = new Uint8Array(capacity);
      c.maxSeen = lastIdBefore;
    }
  }

  message(client: number, id: number, scheduledMs: number, jsonBytes?: number): void {
    const now = nowMs();
    if (client === 0 && this.#lossyEvery > 0 && ++this.#lossyCount % this.#lossyEvery === 0) return;
    this.received++;
    const c = this.#clients[client]!;
    const slot = id - this.#base;
    if (slot < 0 || slot >= this.#capacity) return;
    this.delivered++;
    const before = c.seen[slot]!;
    if (before < 255) c.seen[slot] = before + 1;
    if (id > c.maxSeen) c.maxSeen = id;
    else if (before === 0) this.#reordered++; // first sight of an id older than one already seen
    const us = Math.max(1, Math.round((now - scheduledMs) * 1000));
    this.latency.recordValue(us);
    if (before === 0) {
      if (us > this.#slowest[slot]!) this.#slowest[slot] = us;
      if (++this.#reach[slot]! === this.#clients.length) this.everyone.recordValue(this.#slowest[slot]!);
    }
    if (jsonBytes !== undefined) {
      this.wire.messages++;
      this.wire.jsonBytes += jsonBytes;
      if (this.#floorOf) this.wire.floorBytes += this.#floorOf(id, jsonBytes);
    }
  }

  gap(client: number, since: number, firstId: number): void {
    this.#clients[client]!.gaps.push([since + 1, firstId - 1]);
  }

  reset(client: number): void {
    this.#clients[client]!.resets++;
  }

  error(_client: number, err: Error): void {
    this.errors++;
    this.firstError ??= err.message;
  }

  /** Exact counts for the published ids `ids` (all in the window). */
  counts(ids: readonly number[]): DeliveryCounts {
    let lost = 0;
    let duplicated = 0;
    let gaps = 0;
    let resets = 0;
    for (const c of this.#clients) {
      gaps += c.gaps.length;
      resets += c.resets;
      for (const id of ids) {
        const n = c.seen[id - this.#base] ?? 0;
        if (n === 0 && !c.gaps.some(([a, b]) => id >= a && id <= b)) lost++;
        if (n > 1) duplicated += n - 1;
      }
    }
    const reordered = this.#reordered;
    return {
      delivered: this.delivered,
      lost,
      duplicated,
      reordered,
      gaps,
      resets,
      errors: this.errors,
      ...(this.firstError ? { firstError: this.firstError } : {}),
    };
  }
}
