/**
 * Prometheus histograms: cumulative buckets read from a page, the difference of two scrapes (what
 * happened in the window between them, with counter resets handled), and quantiles estimated the
 * way Prometheus's histogram_quantile does (linear interpolation inside the bucket).
 */
import type { Labels, MetricsPage } from '../etcd/prometheus';

export interface Bucket {
  /** Upper bound; Infinity for the +Inf bucket. */
  le: number;
  /** Cumulative count of observations <= le. */
  count: number;
}

export interface Histogram {
  /** Sorted by `le`, ending with +Inf. */
  buckets: Bucket[];
  count: number;
  sum: number;
}

/**
 * The histogram `name` (its `_bucket`, `_sum`, `_count` series), summed over every label set that
 * matches `want` (for example the peer round-trip histogram has one series per peer).
 */
export function readHistogram(
  page: MetricsPage,
  name: string,
  want?: Labels,
): Histogram | undefined {
  const raw = page.byName.get(`${name}_bucket`);
  if (!raw) return undefined;
  const byLe = new Map<number, number>();
  for (const s of raw) {
    if (want && Object.entries(want).some(([k, v]) => s.labels[k] !== v)) continue;
    const leText = s.labels['le'];
    if (leText === undefined) continue;
    const le = leText === '+Inf' ? Infinity : Number(leText);
    if (Number.isNaN(le)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  if (byLe.size === 0) return undefined;
  const buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  const total = (suffix: string) => {
    let v = 0;
    for (const s of page.byName.get(`${name}${suffix}`) ?? [])
      if (!want || Object.entries(want).every(([k, w]) => s.labels[k] === w)) v += s.value;
    return v;
  };
  const inf = buckets[buckets.length - 1]!;
  return { buckets, count: inf.le === Infinity ? inf.count : total('_count'), sum: total('_sum') };
}

/** A counter's increase from `older` to `newer`; after a reset (etcd restarted) it is `newer`. */
export function counterDelta(older: number, newer: number): number {
  return newer >= older ? newer - older : newer;
}

/**
 * Observations between two scrapes. When the newer count is below the older one (the member
 * restarted and its counters began again), everything in `newer` happened in the window.
 */
export function histogramDelta(older: Histogram, newer: Histogram): Histogram {
  if (newer.count < older.count || newer.buckets.length !== older.buckets.length) return newer;
  const buckets: Bucket[] = [];
  for (let i = 0; i < newer.buckets.length; i++) {
    const n = newer.buckets[i]!;
    const o = older.buckets[i]!;
    if (o.le !== n.le || n.count < o.count) return newer; // different layout or a reset
    buckets.push({ le: n.le, count: n.count - o.count });
  }
  return { buckets, count: newer.count - older.count, sum: newer.sum - older.sum };
}

/**
 * The q-quantile (0..1) of a histogram, in the histogram's unit, or undefined when it has no
 * observations. As Prometheus: rank q*count falls in the first bucket whose cumulative count
 * reaches it; the value is interpolated linearly between that bucket's lower and upper bounds
 * (the lower bound of the first bucket is 0); a rank in the +Inf bucket gives the highest finite
 * bound.
 */
export function quantile(q: number, h: Histogram): number | undefined {
  const buckets = h.buckets;
  if (buckets.length === 0) return undefined;
  const total = buckets[buckets.length - 1]!.count;
  if (!(total > 0)) return undefined;
  if (q <= 0) return 0;
  const rank = Math.min(q, 1) * total;
  let i = buckets.findIndex((b) => b.count >= rank);
  if (i < 0) i = buckets.length - 1;
  const b = buckets[i]!;
  if (b.le === Infinity) {
    const finite = buckets.length >= 2 ? buckets[buckets.length - 2]!.le : undefined;
    return finite;
  }
  const lower = i === 0 ? 0 : buckets[i - 1]!.le;
  const below = i === 0 ? 0 : buckets[i - 1]!.count;
  const inBucket = b.count - below;
  if (inBucket <= 0) return b.le;
  return lower + (b.le - lower) * ((rank - below) / inBucket);
}
