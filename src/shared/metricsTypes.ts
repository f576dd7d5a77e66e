/**
 * What the metrics code hands to the CLI, the tree and the health panel's Metrics section. Plain
 * data with no Node imports, so the webview can import these types too.
 */

/**
 * `unjudged`: the rule has a figure but no verdict yet: too few observations behind it, or a
 * breach that has not lasted (see `JudgePolicy` in core/metrics/judge.ts). Shown in the neutral
 * colour; it never marks a member.
 */
export type Level = 'unjudged' | 'ok' | 'warn' | 'bad';

export type RuleId =
  | 'wal-fsync'
  | 'backend-commit'
  | 'has-leader'
  | 'leader-changes'
  | 'proposals-failed'
  | 'proposals-pending'
  | 'db-quota'
  | 'db-fragmented'
  | 'peer-rtt'
  | 'grpc-errors'
  /** The certificate the member serves, against the expiry warning window (servedCert.ts). */
  | 'served-cert';

/** One rule applied to one member: its level and the reason in words. */
export interface Finding {
  rule: RuleId;
  level: Level;
  message: string;
  value?: number;
  limit?: number;
  /** Why an `unjudged` figure is not judged, in a word or two ("too few samples"). */
  note?: string;
}

/** What one member did over the window (or since start where the window saw nothing). */
export interface MemberSummary {
  /** First and last scrape of the window (epoch ms) and how many scrapes it holds. */
  from: number;
  to: number;
  scrapes: number;
  version?: string;
  /** Latencies in ms; `latencyBasis` says whether they cover the window or etcd's whole life. */
  walFsyncP50Ms?: number;
  walFsyncP99Ms?: number;
  backendCommitP50Ms?: number;
  backendCommitP99Ms?: number;
  peerRttP99Ms?: number;
  latencyBasis: 'window' | 'since-start';
  /** Observations behind the WAL fsync, backend commit and peer round trip figures. */
  walFsyncs: number;
  backendCommits: number;
  peerRoundTrips: number;
  hasLeader?: boolean;
  isLeader?: boolean;
  /** Leader changes seen within the window (and since start). */
  leaderChanges: number;
  leaderChangesTotal?: number;
  proposalsCommittedPerSec?: number;
  proposalsAppliedPerSec?: number;
  proposalsPending?: number;
  /** Failed proposals within the window. */
  proposalsFailed: number;
  dbTotalBytes?: number;
  dbInUseBytes?: number;
  quotaBytes?: number;
  /** Linear growth of the database file over the window, bytes per hour. */
  dbGrowthBytesPerHour?: number;
  grpcRequestsPerSec?: number;
  grpcErrorsPerSec?: number;
  /** Requests that failed with a server-side code in the window. */
  grpcErrors: number;
  grpcRequests: number;
  keys?: number;
}

/** One point of the charts: the interval between two consecutive scrapes. */
export interface SeriesPoint {
  at: number;
  walFsyncP99Ms?: number;
  backendCommitP99Ms?: number;
  peerRttP99Ms?: number;
  proposalsPerSec?: number;
  grpcPerSec?: number;
  grpcErrorsPerSec?: number;
  dbTotalBytes?: number;
  dbInUseBytes?: number;
  leaderChanges?: number;
  hasLeader?: boolean;
  keys?: number;
}

export interface MemberMetrics {
  member: string;
  endpoint: string;
  /** The URL scraped (the client URL's /metrics, or the --listen-metrics-urls one). */
  url: string;
  /** Why the last scrape failed, in words. */
  error?: string;
  summary?: MemberSummary;
  findings: Finding[];
  /** Worst level of the findings; 'bad' too when the member cannot be scraped. */
  level: Level;
  series: SeriesPoint[];
}

export interface ClusterMetrics {
  cluster: string;
  at: number;
  windowMs: number;
  members: MemberMetrics[];
  level: Level;
  /** One line for the whole cluster, e.g. "leader etcd-1 · 120 proposals/s · DB 3 MiB of 2 GiB". */
  summary: string;
}

export const LEVEL_ORDER: Record<Level, number> = { unjudged: -1, ok: 0, warn: 1, bad: 2 };

/** A level that marks a member (a warning or a broken rule); `ok` and `unjudged` do not. */
export function marks(level: Level): level is 'warn' | 'bad' {
  return level === 'warn' || level === 'bad';
}

export function worst(levels: Iterable<Level>): Level {
  let w: Level = 'ok';
  for (const l of levels) if (LEVEL_ORDER[l] > LEVEL_ORDER[w]) w = l;
  return w;
}

export type MemberRole = 'leader' | 'follower' | 'no leader';

/**
 * The member's role as its own metrics say (etcd_server_is_leader, etcd_server_has_leader);
 * undefined when the page had neither.
 */
export function memberRole(s: MemberSummary | undefined): MemberRole | undefined {
  if (s?.hasLeader === undefined) return undefined;
  return s.isLeader ? 'leader' : s.hasLeader ? 'follower' : 'no leader';
}
