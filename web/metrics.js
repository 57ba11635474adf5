// Bounded numeric state for the live view: nothing here grows with the number of messages.

import { nowMs } from './api.js';

/**
 * Latency samples in a fixed ring: (arrival time, latency) pairs. At 1,000 msg/s five seconds are
 * 5,000 samples; the ring keeps the newest `capacity`, so at higher rates the window shrinks rather
 * than memory growing.
 */
export class LatencyRing {
  /** @param {number} capacity */
  constructor(capacity = 8192) {
    this.capacity = capacity;
    this.at = new Float64Array(capacity);
    this.value = new Float64Array(capacity);
    this.next = 0;
    this.size = 0;
  }

  /** @param {number} at arrival time (ms) @param {number} latencyMs */
  push(at, latencyMs) {
    this.at[this.next] = at;
    this.value[this.next] = latencyMs;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** Latencies that arrived at or after `since` (ms), unsorted. @param {number} since */
  since(since) {
    const out = [];
    for (let k = 0; k < this.size; k++) {
      const i = (this.next - 1 - k + this.capacity) % this.capacity;
      if (this.at[i] < since) break; // newest first: everything older follows
      out.push(this.value[i]);
    }
    return out;
  }

  clear() {
    this.next = 0;
    this.size = 0;
  }
}

/**
 * Nearest-rank percentiles of `values` (sorted in place). Empty → nulls.
 * @param {number[]} values @param {number[]} ps percentiles 0..100
 * @returns {(number|null)[]}
 */
export function percentiles(values, ps) {
  if (values.length === 0) return ps.map(() => null);
  values.sort((a, b) => a - b);
  return ps.map(
    (p) => values[Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1))] ?? null,
  );
}

/** The last `capacity` items, oldest first. */
export class RecentList {
  /** @param {number} capacity */
  constructor(capacity) {
    this.capacity = capacity;
    /** @type {unknown[]} */
    this.items = [];
  }
  /** @param {unknown} item */
  push(item) {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.shift();
  }
}

/** Counts events per second over a sliding window of one-second buckets. */
export class RateMeter {
  /** @param {number} windowSec */
  constructor(windowSec = 5) {
    this.windowSec = windowSec;
    this.buckets = new Float64Array(windowSec + 1);
    this.second = 0;
    /** The (partial) second the meter started in: a young meter averages over the whole seconds since. */
    this.first = Math.floor(nowMs() / 1000);
  }
  /** @param {number} now ms */
  #roll(now) {
    const s = Math.floor(now / 1000);
    if (s === this.second) return;
    const steps = Math.min(this.buckets.length, s - this.second);
    for (let k = 1; k <= steps; k++) this.buckets[(this.second + k) % this.buckets.length] = 0;
    this.second = s;
  }
  /** @param {number} now @param {number} n */
  add(now, n = 1) {
    this.#roll(now);
    this.buckets[this.second % this.buckets.length] += n;
  }
  /** Events per second over the complete seconds of the window; null before the first one. @param {number} now */
  perSec(now) {
    this.#roll(now);
    const seconds = Math.min(this.windowSec, this.second - this.first - 1);
    if (seconds <= 0) return null;
    let sum = 0;
    for (let k = 1; k <= seconds; k++)
      sum += this.buckets[(this.second - k + this.buckets.length * 2) % this.buckets.length];
    return sum / seconds;
  }
}
