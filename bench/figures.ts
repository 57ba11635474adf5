/** Small statistics helpers: a Figure is the median of per-repeat values, with min, max and the values. */
import type { Figure } from './report/types.js';

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
export const round = (v: number, digits = 3): number => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);
