/**
 * The arithmetic of `etcdctl check perf` (etcd `pkg/report` and `etcdctl/ctlv3/command/check.go`),
 * pure so both the load worker and the extension host can use it without loading etcd3.
 */
import type { PerfLoad } from '../../shared/perfTypes';

export interface PerfProfile {
  /** Concurrent requests in flight at most (etcdctl: one goroutine and gRPC client each). */
  clients: number;
  /** Target writes per second (etcdctl's `rate.NewLimiter(limit, 1)`). */
  rate: number;
}

/** etcdctl's `checkPerfCfgMap`; every profile runs 60 s there. */
export const PERF_PROFILES: Readonly<Record<PerfLoad, PerfProfile>> = {
  s: { clients: 50, rate: 150 },
  m: { clients: 200, rate: 1000 },
  l: { clients: 500, rate: 8000 },
  xl: { clients: 1000, rate: 15000 },
};

export const PERF_LOADS = Object.keys(PERF_PROFILES) as PerfLoad[];
export const DEFAULT_PERF_DURATION_SEC = 60;
export const DEFAULT_PERF_PREFIX = '/etcdctl-check-perf/';

export function isPerfLoad(x: unknown): x is PerfLoad {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(PERF_PROFILES, x);
}

/** etcdctl's pass criteria. */
export const PERF_CRITERIA = {
  /** RPS / target must be above this. */
  minThroughputRatio: 0.9,
  slowestMaxSec: 0.5,
  stddevMaxSec: 0.1,
} as const;

export interface LatencySummary {
  count: number;
  /** All in milliseconds. */
  avgMs: number;
  /** Population standard deviation, as `pkg/report`. */
  stddevMs: number;
  slowestMs: number;
  fastestMs: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * `pkg/report`'s percentile: the first sorted sample whose rank `i*100/n` reaches `p`.
 * `sorted` must be ascending.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const i = Math.min(n - 1, Math.max(0, Math.ceil((p * n) / 100)));
  return sorted[i] ?? 0;
}

/** Sorts `lats` in place (a Float64Array sorts numerically) and summarises it. */
export function summarize(lats: Float64Array): LatencySummary {
  const n = lats.length;
  if (n === 0)
    return { count: 0, avgMs: 0, stddevMs: 0, slowestMs: 0, fastestMs: 0, p50Ms: 0, p99Ms: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += lats[i] ?? 0;
  const avg = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = (lats[i] ?? 0) - avg;
    sq += d * d;
  }
  lats.sort();
  return {
    count: n,
    avgMs: avg,
    stddevMs: Math.sqrt(sq / n),
    slowestMs: lats[n - 1] ?? 0,
    fastestMs: lats[0] ?? 0,
    p50Ms: percentile(lats, 50),
    p99Ms: percentile(lats, 99),
  };
}

export interface VerdictInput {
  rps: number;
  target: number;
  slowestMs: number;
  stddevMs: number;
  /** Error message -> count, as `pkg/report`'s ErrorDist. */
  errorDist: Readonly<Record<string, number>>;
}

/** Go's `%f`: six decimals. */
const goF = (x: number) => x.toFixed(6);

/**
 * The lines etcdctl 3.4/3.5 print after the run, word for word (note that its slowest and stddev
 * failures carry no `FAIL:` prefix), and whether the run passed.
 */
export function perfVerdict(v: VerdictInput): { pass: boolean; lines: string[] } {
  const lines: string[] = [];
  let ok = true;
  const errors = Object.entries(v.errorDist);
  if (errors.length > 0) {
    lines.push('FAIL: too many errors');
    for (const [msg, n] of errors) lines.push(`FAIL: ERROR(${msg}) -> ${n}`);
    ok = false;
  }
  const shown = Math.trunc(v.rps) + 1; // etcdctl prints int(RPS)+1
  if (v.rps / v.target <= PERF_CRITERIA.minThroughputRatio) {
    lines.push(`FAIL: Throughput too low: ${shown} writes/s`);
    ok = false;
  } else {
    lines.push(`PASS: Throughput is ${shown} writes/s`);
  }
  const slowest = v.slowestMs / 1000;
  if (slowest > PERF_CRITERIA.slowestMaxSec) {
    lines.push(`Slowest request took too long: ${goF(slowest)}s`);
    ok = false;
  } else {
    lines.push(`PASS: Slowest request took ${goF(slowest)}s`);
  }
  const stddev = v.stddevMs / 1000;
  if (stddev > PERF_CRITERIA.stddevMaxSec) {
    lines.push(`Stddev too high: ${goF(stddev)}s`);
    ok = false;
  } else {
    lines.push(`PASS: Stddev is ${goF(stddev)}s`);
  }
  lines.push(ok ? 'PASS' : 'FAIL');
  return { pass: ok, lines };
}
