/**
 * How long a rule has been breached, like an alert's `for:`: each scrape interval (or each scrape,
 * for a gauge) is evaluated on its own, and the breach's run is the consecutive breached
 * evaluations ending at the latest one that saw anything. A single slow interval between good
 * ones is a run of one that a good interval ends; an idle interval (no fsync, no request) neither
 * breaks a run nor extends its count.
 */
import { counterDelta, histogramDelta, quantile, type Histogram } from './histogram';
import type { MemberPoint } from './window';
import type { RuleId } from '../../shared/metricsTypes';

/** One evaluation: the time it covers and whether it breached (undefined: it saw nothing). */
export interface Evaluation {
  from: number;
  to: number;
  breached: boolean | undefined;
}

/** The current breach of a rule: how long it has lasted and over how many evaluations. */
export interface BreachRun {
  ms: number;
  evaluations: number;
}

export const NO_RUN: BreachRun = { ms: 0, evaluations: 0 };

/** The run of breached evaluations ending at the latest evaluation that saw anything. */
export function breachRun(evaluations: readonly Evaluation[]): BreachRun {
  let first: Evaluation | undefined;
  let last: Evaluation | undefined;
  let n = 0;
  for (let i = evaluations.length - 1; i >= 0; i--) {
    const e = evaluations[i]!;
    if (e.breached === undefined) continue;
    if (!e.breached) break;
    last ??= e;
    first = e;
    n++;
  }
  return first && last ? { ms: last.to - first.from, evaluations: n } : NO_RUN;
}

/** The limits a breach is measured against (the judge's guidance). */
export interface BreachLimits {
  walFsyncP99Ms: number;
  backendCommitP99Ms: number;
  peerRttWarnMs: number;
  grpcErrorsWarn: number;
  proposalsPendingWarn: number;
}

type HistogramKey = 'walFsync' | 'backendCommit' | 'peerRtt';

/** Per interval: the p99 of the interval's own observations against `limitMs`. */
function latencyEvaluations(
  points: readonly MemberPoint[],
  key: HistogramKey,
  limitMs: number,
): Evaluation[] {
  const out: Evaluation[] = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    const older = a[key];
    const newer = b[key];
    const h: Histogram | undefined = older && newer ? histogramDelta(older, newer) : undefined;
    const p99 = h && h.count > 0 ? quantile(0.99, h) : undefined;
    out.push({
      from: a.at,
      to: b.at,
      breached: p99 === undefined ? undefined : p99 * 1000 > limitMs,
    });
  }
  return out;
}

function grpcEvaluations(points: readonly MemberPoint[], limit: number): Evaluation[] {
  const out: Evaluation[] = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    const requests =
      a.grpcRequests !== undefined && b.grpcRequests !== undefined
        ? counterDelta(a.grpcRequests, b.grpcRequests)
        : 0;
    const errors =
      a.grpcErrors !== undefined && b.grpcErrors !== undefined
        ? counterDelta(a.grpcErrors, b.grpcErrors)
        : 0;
    out.push({
      from: a.at,
      to: b.at,
      breached: requests > 0 ? errors / requests > limit : undefined,
    });
  }
  return out;
}

/** Per scrape, for a gauge. */
function gaugeEvaluations(
  points: readonly MemberPoint[],
  breached: (p: MemberPoint) => boolean | undefined,
): Evaluation[] {
  return points.map((p) => ({ from: p.at, to: p.at, breached: breached(p) }));
}

/** The current breach run of every rule judged over time. */
export function breachRuns(
  points: readonly MemberPoint[],
  limits: BreachLimits,
): Partial<Record<RuleId, BreachRun>> {
  return {
    'wal-fsync': breachRun(latencyEvaluations(points, 'walFsync', limits.walFsyncP99Ms)),
    'backend-commit': breachRun(
      latencyEvaluations(points, 'backendCommit', limits.backendCommitP99Ms),
    ),
    'peer-rtt': breachRun(latencyEvaluations(points, 'peerRtt', limits.peerRttWarnMs)),
    'grpc-errors': breachRun(grpcEvaluations(points, limits.grpcErrorsWarn)),
    'has-leader': breachRun(
      gaugeEvaluations(points, (p) => (p.hasLeader === undefined ? undefined : p.hasLeader <= 0)),
    ),
    'proposals-pending': breachRun(
      gaugeEvaluations(points, (p) =>
        p.proposalsPending === undefined
          ? undefined
          : p.proposalsPending > limits.proposalsPendingWarn,
      ),
    ),
  };
}
