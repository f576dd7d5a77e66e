/**
 * The Metrics tab's figures as PromQL, per member (`by (cluster, member)`), for the alert rules
 * and the dashboard alike. Latencies are p99s in ms of the observations over `RATE_RANGE` (the
 * tab's per-interval evaluation, with four scrapes at the exported 15 s interval), counts and
 * observation totals over the tab's window (`RULE_WINDOW_MS`). Names reaching a selector went
 * through targets.ts's check, and are quoted as PromQL strings anyway.
 */
import {
  GRPC_FAILURE_CODES,
  GUIDANCE,
  METRIC,
  RULE_WINDOW_MS,
  type AlertRuleId,
} from '../metrics/rules';

/** The exported scrape and rule evaluation interval. */
export const SCRAPE_INTERVAL_MS = 15_000;
/** The range of a rate: one evaluation of a latency or error rule. */
export const RATE_RANGE_MS = 60_000;

/** A Prometheus duration: `15s`, `1m`, `15m`, `1h`. */
export function promDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 3600 === 0 && s > 0) return `${s / 3600}h`;
  if (s % 60 === 0 && s > 0) return `${s / 60}m`;
  return `${s}s`;
}

const RATE = promDuration(RATE_RANGE_MS);
const WINDOW = promDuration(RULE_WINDOW_MS);
const BY = 'by (cluster, member)';

/** A PromQL string literal (Go's escapes, which JSON's are a subset of). */
export const promString = (v: string): string => JSON.stringify(v);

export function selector(cluster: string, extra = ''): string {
  return `{cluster=${promString(cluster)}${extra}}`;
}

/** The p99 in ms of a histogram over one evaluation, summed over its other labels. */
export function p99Ms(metric: string, cluster: string): string {
  return `histogram_quantile(0.99, sum by (cluster, member, le) (rate(${metric}_bucket${selector(cluster)}[${RATE}]))) * 1000`;
}

/** Observations of a histogram (or requests of a counter) over the window. */
export function observations(counter: string, cluster: string): string {
  return `sum ${BY} (increase(${counter}${selector(cluster)}[${WINDOW}]))`;
}

const failedCodes = `, grpc_code=~${promString(GRPC_FAILURE_CODES.join('|'))}`;

/** Each rule's figure, in the rule's unit, one series per member. */
export function figure(rule: AlertRuleId, cluster: string): string {
  const s = selector(cluster);
  switch (rule) {
    case 'wal-fsync':
      return p99Ms(METRIC.walFsync, cluster);
    case 'backend-commit':
      return p99Ms(METRIC.backendCommit, cluster);
    case 'peer-rtt':
      return p99Ms(METRIC.peerRtt, cluster);
    case 'has-leader':
      return `max ${BY} (${METRIC.hasLeader}${s})`;
    case 'leader-changes':
      return `sum ${BY} (increase(${METRIC.leaderChanges}${s}[${WINDOW}]))`;
    case 'proposals-failed':
      return `sum ${BY} (increase(${METRIC.proposalsFailed}${s}[${WINDOW}]))`;
    case 'proposals-pending':
      return `max ${BY} (${METRIC.proposalsPending}${s})`;
    case 'db-quota':
      return `max ${BY} (${METRIC.dbTotal}${s}) / max ${BY} (${METRIC.quota}${s})`;
    case 'db-fragmented':
      return `max ${BY} (${METRIC.dbInUse}${s}) / max ${BY} (${METRIC.dbTotal}${s})`;
    case 'grpc-errors':
      return `sum ${BY} (rate(${METRIC.grpcHandled}${selector(cluster, failedCodes)}[${RATE}])) / sum ${BY} (rate(${METRIC.grpcStarted}${s}[${RATE}]))`;
    case 'member-down':
      return `max ${BY} (up${s})`;
  }
}

/** What a rule needs besides its figure: enough observations, or a database large enough. */
export function evidence(rule: AlertRuleId, cluster: string, minObservations: number): string {
  switch (rule) {
    case 'wal-fsync':
      return `${observations(`${METRIC.walFsync}_count`, cluster)} >= ${minObservations}`;
    case 'backend-commit':
      return `${observations(`${METRIC.backendCommit}_count`, cluster)} >= ${minObservations}`;
    case 'peer-rtt':
      return `${observations(`${METRIC.peerRtt}_count`, cluster)} >= ${minObservations}`;
    case 'grpc-errors':
      return `${observations(METRIC.grpcStarted, cluster)} >= ${minObservations}`;
    case 'db-fragmented':
      return `max ${BY} (${METRIC.dbTotal}${selector(cluster)}) >= ${GUIDANCE.fragmentedMinBytes}`;
    default:
      return '';
  }
}

/** The dashboard's other figures (rates and sizes the tab charts without a rule). */
export const chart = {
  proposalsPerSec: (c: string) =>
    `sum ${BY} (rate(${METRIC.proposalsCommitted}${selector(c)}[${RATE}]))`,
  grpcPerSec: (c: string) => `sum ${BY} (rate(${METRIC.grpcStarted}${selector(c)}[${RATE}]))`,
  grpcErrorsPerSec: (c: string) =>
    `sum ${BY} (rate(${METRIC.grpcHandled}${selector(c, failedCodes)}[${RATE}]))`,
  dbTotalBytes: (c: string) => `max ${BY} (${METRIC.dbTotal}${selector(c)})`,
  dbInUseBytes: (c: string) => `max ${BY} (${METRIC.dbInUse}${selector(c)})`,
  quotaBytes: (c: string) => `max ${BY} (${METRIC.quota}${selector(c)})`,
  leaderChangesTotal: (c: string) => `max ${BY} (${METRIC.leaderChanges}${selector(c)})`,
  isLeader: (c: string) => `max ${BY} (${METRIC.isLeader}${selector(c)})`,
  keys: (c: string) => `max ${BY} (${METRIC.keys}${selector(c)})`,
};
