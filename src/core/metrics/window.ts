/**
 * From scraped pages to what an operator reads: each scrape is reduced to a small point (the
 * histograms and counters that matter, never the whole page), points are kept for a rolling
 * window, and the window gives rates and quantiles from the difference of its first and last
 * scrape, and a chart series from consecutive pairs. Counter resets (a restarted member) are
 * handled everywhere a difference is taken.
 */
import { counterDelta, histogramDelta, quantile, readHistogram, type Histogram } from './histogram';
import { labelOf, scalar, sumWhere, type MetricsPage } from '../etcd/prometheus';
import type { MemberSummary, SeriesPoint } from '../../shared/metricsTypes';
import { GRPC_FAILURE_CODES, METRIC } from './rules';

const FAILURE_CODES = new Set(GRPC_FAILURE_CODES);

export { METRIC };

type CounterKey =
  | 'leaderChanges'
  | 'proposalsCommitted'
  | 'proposalsApplied'
  | 'proposalsFailed'
  | 'grpcRequests'
  | 'grpcErrors';
type HistogramKey = 'walFsync' | 'backendCommit' | 'peerRtt';

/** What one scrape of one member keeps. */
export interface MemberPoint {
  at: number;
  walFsync?: Histogram;
  backendCommit?: Histogram;
  peerRtt?: Histogram;
  hasLeader?: number;
  isLeader?: number;
  leaderChanges?: number;
  proposalsCommitted?: number;
  proposalsApplied?: number;
  proposalsPending?: number;
  proposalsFailed?: number;
  dbTotal?: number;
  dbInUse?: number;
  quota?: number;
  grpcRequests?: number;
  grpcErrors?: number;
  keys?: number;
  version?: string;
}

export function pointFrom(page: MetricsPage, at: number): MemberPoint {
  const p: MemberPoint = { at };
  const set = <K extends keyof MemberPoint>(k: K, v: MemberPoint[K] | undefined) => {
    if (v !== undefined) p[k] = v;
  };
  set('walFsync', readHistogram(page, METRIC.walFsync));
  set('backendCommit', readHistogram(page, METRIC.backendCommit));
  set('peerRtt', readHistogram(page, METRIC.peerRtt));
  set('hasLeader', scalar(page, METRIC.hasLeader));
  set('isLeader', scalar(page, METRIC.isLeader));
  set('leaderChanges', scalar(page, METRIC.leaderChanges));
  set('proposalsCommitted', scalar(page, METRIC.proposalsCommitted));
  set('proposalsApplied', scalar(page, METRIC.proposalsApplied));
  set('proposalsPending', scalar(page, METRIC.proposalsPending));
  set('proposalsFailed', scalar(page, METRIC.proposalsFailed));
  set('dbTotal', scalar(page, METRIC.dbTotal));
  set('dbInUse', scalar(page, METRIC.dbInUse));
  set('quota', scalar(page, METRIC.quota));
  set('grpcRequests', scalar(page, METRIC.grpcStarted));
  set(
    'grpcErrors',
    sumWhere(page, METRIC.grpcHandled, (l) => FAILURE_CODES.has(l['grpc_code'] ?? '')),
  );
  set('keys', scalar(page, METRIC.keys));
  set('version', labelOf(page, METRIC.version, 'server_version'));
  return p;
}

const ms = (seconds: number | undefined) => (seconds === undefined ? undefined : seconds * 1000);

function delta(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : counterDelta(a, b);
}

function hDelta(a: Histogram | undefined, b: Histogram | undefined): Histogram | undefined {
  return a && b ? histogramDelta(a, b) : b;
}

/** The quantile of the window's observations in ms, or undefined when it saw none. */
function qMs(q: number, h: Histogram | undefined): number | undefined {
  return h && h.count > 0 ? ms(quantile(q, h)) : undefined;
}

/** `o` without its undefined properties (the types have optional, not undefined, fields). */
function defined<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o as T;
}

/** One chart point for the interval from `a` to `b`. */
export function seriesPoint(a: MemberPoint, b: MemberPoint): SeriesPoint {
  const sec = Math.max((b.at - a.at) / 1000, 1e-3);
  const rate = (x: number | undefined, y: number | undefined) => {
    const d = delta(x, y);
    return d === undefined ? undefined : d / sec;
  };
  return defined<SeriesPoint>({
    at: b.at,
    walFsyncP99Ms: qMs(0.99, hDelta(a.walFsync, b.walFsync)),
    backendCommitP99Ms: qMs(0.99, hDelta(a.backendCommit, b.backendCommit)),
    peerRttP99Ms: qMs(0.99, hDelta(a.peerRtt, b.peerRtt)),
    proposalsPerSec: rate(a.proposalsCommitted, b.proposalsCommitted),
    grpcPerSec: rate(a.grpcRequests, b.grpcRequests),
    grpcErrorsPerSec: rate(a.grpcErrors, b.grpcErrors),
    dbTotalBytes: b.dbTotal,
    dbInUseBytes: b.dbInUse,
    leaderChanges: b.leaderChanges,
    hasLeader: b.hasLeader === undefined ? undefined : b.hasLeader > 0,
    keys: b.keys,
  });
}

/**
 * The window from its first to its last point. Latency quantiles come from the difference of the
 * two histograms; when that holds no observation (an idle member, or a single scrape) they fall
 * back to everything the member saw since it started, and say so in `latencyBasis`.
 */
export function summarize(points: readonly MemberPoint[]): MemberSummary | undefined {
  const last = points[points.length - 1];
  if (!last) return undefined;
  const first = points.length > 1 ? points[0]! : undefined;
  // Sum counter increases pair by pair, so a reset in the middle of the window loses nothing.
  const increase = (k: CounterKey) => {
    let total = 0;
    for (let i = 1; i < points.length; i++) total += delta(points[i - 1]![k], points[i]![k]) ?? 0;
    return total;
  };
  // Merge pairwise histogram deltas the same way.
  const rangeHist = (k: HistogramKey) => {
    if (!first) return undefined;
    let acc: Histogram | undefined;
    for (let i = 1; i < points.length; i++) {
      const d = hDelta(points[i - 1]![k], points[i]![k]);
      if (!d) continue;
      acc = acc ? addHistograms(acc, d) : d;
    }
    return acc;
  };
  const windowWal = rangeHist('walFsync');
  const useWindow = (windowWal?.count ?? 0) > 0;
  const wal = useWindow ? windowWal : last.walFsync;
  const commit = useWindow ? rangeHist('backendCommit') : last.backendCommit;
  const windowRtt = useWindow ? rangeHist('peerRtt') : undefined;
  const rtt = (windowRtt?.count ?? 0) > 0 ? windowRtt : last.peerRtt;
  const sec = first ? (last.at - first.at) / 1000 : 0;
  const perSec = (k: CounterKey) => (first && sec > 0 ? increase(k) / sec : undefined);
  const grpcRequests = increase('grpcRequests');
  const grpcErrors = increase('grpcErrors');
  return defined<MemberSummary>({
    from: (first ?? last).at,
    to: last.at,
    scrapes: points.length,
    version: last.version,
    walFsyncP50Ms: qMs(0.5, wal),
    walFsyncP99Ms: qMs(0.99, wal),
    backendCommitP50Ms: qMs(0.5, commit),
    backendCommitP99Ms: qMs(0.99, commit),
    peerRttP99Ms: qMs(0.99, rtt),
    latencyBasis: useWindow ? ('window' as const) : ('since-start' as const),
    walFsyncs: wal?.count ?? 0,
    backendCommits: commit?.count ?? 0,
    peerRoundTrips: rtt?.count ?? 0,
    hasLeader: last.hasLeader === undefined ? undefined : last.hasLeader > 0,
    isLeader: last.isLeader === undefined ? undefined : last.isLeader > 0,
    leaderChanges: increase('leaderChanges'),
    leaderChangesTotal: last.leaderChanges,
    proposalsCommittedPerSec: perSec('proposalsCommitted'),
    proposalsAppliedPerSec: perSec('proposalsApplied'),
    proposalsPending: last.proposalsPending,
    proposalsFailed: increase('proposalsFailed'),
    dbTotalBytes: last.dbTotal,
    dbInUseBytes: last.dbInUse,
    quotaBytes: last.quota,
    dbGrowthBytesPerHour:
      first && sec >= 1 && first.dbTotal !== undefined && last.dbTotal !== undefined
        ? ((last.dbTotal - first.dbTotal) / sec) * 3600
        : undefined,
    grpcRequestsPerSec: first && sec > 0 ? grpcRequests / sec : undefined,
    grpcErrorsPerSec: first && sec > 0 ? grpcErrors / sec : undefined,
    grpcErrors,
    grpcRequests,
    keys: last.keys,
  });
}

function addHistograms(a: Histogram, b: Histogram): Histogram {
  if (a.buckets.length !== b.buckets.length || a.buckets.some((x, i) => x.le !== b.buckets[i]!.le))
    return b;
  return {
    buckets: a.buckets.map((x, i) => ({ le: x.le, count: x.count + b.buckets[i]!.count })),
    count: a.count + b.count,
    sum: a.sum + b.sum,
  };
}

export interface WindowOptions {
  /** How far back points are kept (default 15 minutes). */
  windowMs?: number;
  /** Hard cap on points per member, whatever the interval (default 2000). */
  maxPoints?: number;
}

export const DEFAULT_WINDOW_MS = 15 * 60_000;

/** Points per member for the last `windowMs`, bounded in count whatever the scrape interval. */
export class MetricsWindow {
  private readonly points = new Map<string, MemberPoint[]>();
  readonly windowMs: number;
  private readonly maxPoints: number;

  constructor(opts: WindowOptions = {}) {
    this.windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
    this.maxPoints = opts.maxPoints ?? 2000;
  }

  add(member: string, point: MemberPoint): void {
    let list = this.points.get(member);
    if (!list) this.points.set(member, (list = []));
    list.push(point);
    const oldest = point.at - this.windowMs;
    let drop = 0;
    while (drop < list.length - 1 && list[drop]!.at < oldest) drop++;
    drop = Math.max(drop, list.length - this.maxPoints);
    if (drop > 0) list.splice(0, drop);
  }

  /** Forget members no longer in the inventory. */
  retain(members: Iterable<string>): void {
    const keep = new Set(members);
    for (const m of [...this.points.keys()]) if (!keep.has(m)) this.points.delete(m);
  }

  pointsOf(member: string): readonly MemberPoint[] {
    return this.points.get(member) ?? [];
  }

  summary(member: string): MemberSummary | undefined {
    return summarize(this.pointsOf(member));
  }

  series(member: string): SeriesPoint[] {
    const list = this.pointsOf(member);
    const out: SeriesPoint[] = [];
    for (let i = 1; i < list.length; i++) out.push(seriesPoint(list[i - 1]!, list[i]!));
    return out;
  }

  size(): number {
    let n = 0;
    for (const l of this.points.values()) n += l.length;
    return n;
  }
}
