/** Small statistics helpers: a Figure (the median of per-repeat values, with min, max and the values), and ratios. */
import type { Figure } from './types.js';

/**
 * The figure of per-repeat values. A value that is not a finite number (null, undefined, NaN,
 * ±Infinity) was not measured: it stays in `values` as null, median/min/max are taken over the finite
 * ones, and all three are null when none is finite. Never NaN: JSON would silently turn it into null.
 */
export function figure(values: readonly (number | null | undefined)[]): Figure {
  const kept = values.map((v): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null));
  const finite = kept.filter((v): v is number => v !== null);
  if (finite.length === 0) return { median: null, min: null, max: null, values: kept };
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, values: kept };
}

/** Rounds to `digits` decimals, for numbers a person reads. */
export const round = (v: number, digits = 3): number =>
  Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v;

/**
 * a ÷ b of two medians; null when either was not measured or the quotient is not a finite number. The
 * report's `vsBare` uses it: one ratio of the figures a reader sees side by side.
 */
export function ratioOfMedians(a: Figure, b: Figure): number | null {
  if (a.median === null || b.median === null) return null;
  const q = a.median / b.median;
  return Number.isFinite(q) ? q : null;
}

/**
 * The median of per-repeat ratios a[i] ÷ b[i], over the repeats where both were measured (and b[i] ≠ 0).
 * The CI gate (check.ts) uses it for lab ÷ bare: repeat i of lab ran right before repeat i of bare, so
 * each pair saw the same machine load; a burst of load during one pair moves one ratio, not the median.
 */
export function medianOfPairedRatios(a: Figure, b: Figure): number | null {
  const ratios = a.values.flatMap((x, i) => {
    const y = b.values[i];
    return x === null || y === null || y === undefined || y === 0 ? [] : [x / y];
  });
  return figure(ratios).median;
}
