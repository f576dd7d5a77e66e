/**
 * Axis ticks for the panel's charts, pure so they are tested without a browser. A chart of whole
 * things (leader changes, keys) gets whole numbers, each once: never "1, 1, 0".
 */

/** The smallest of 1, 2, 5, 10, 20, 50, … that splits `span` into at most `most - 1` steps. */
export function integerStep(span: number, most = 5): number {
  const steps = Math.max(1, most - 1);
  for (let mag = 1; ; mag *= 10) {
    for (const m of [1, 2, 5]) if (span / (m * mag) <= steps) return m * mag;
  }
}

/** Whole-number ticks within `min`..`max`, at most `most`, ascending, each once. */
export function integerTicks(min: number, max: number, most = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  const lo = Math.ceil(Math.min(min, max));
  const hi = Math.floor(Math.max(min, max));
  const step = integerStep(hi - lo, most);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) ticks.push(v);
  return ticks;
}

/** The y range of a count chart: from 0 to a whole number above the largest value (at least 1). */
export function integerRange(values: readonly number[]): [number, number] {
  const top = Math.max(0, ...values.filter(Number.isFinite));
  return [0, Math.max(1, Math.ceil(top * 1.1))];
}
