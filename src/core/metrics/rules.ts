/**
 * The one definition of the Metrics tab's rules: etcd's published guidance as thresholds
 * (`GUIDANCE`), how much evidence a judged figure needs (`DEFAULT_POLICY`), the metrics each rule
 * reads, its levels, and its words. judge.ts applies them to the editor's and the CLI's scrapes;
 * monitoring/ renders the same table as Prometheus alert rules (`for:` from the policy, the same
 * thresholds and words), so the two can never disagree. Pure data and string functions.
 */
import type { RuleId } from '../../shared/metricsTypes';
import { RAISE_QUOTA } from '../inventory/etcdTuning';

/** How much evidence a rule needs before it marks a member. */
export interface JudgePolicy {
  /** Observations (fsyncs, commits, round trips, gRPC requests) behind a judged figure. */
  minObservations: number;
  /** How long a breach must have lasted over consecutive scrapes (an alert's `for:`). */
  sustainMs: number;
  /** And over how many consecutive evaluations (scrape intervals, or scrapes for a gauge). */
  minEvaluations: number;
}

/** The editor's: scrapes every few seconds over a rolling window. */
export const DEFAULT_POLICY: JudgePolicy = {
  minObservations: 100,
  sustainMs: 60_000,
  minEvaluations: 3,
};

/** The Metrics tab's rolling window: counted events and observation counts are taken over it. */
export const RULE_WINDOW_MS = 15 * 60_000;

export const GUIDANCE = {
  walFsyncP99Ms: 10,
  backendCommitP99Ms: 25,
  leaderChangesWarn: 1,
  leaderChangesBad: 3,
  proposalsPendingWarn: 100,
  quotaWarn: 0.6,
  quotaBad: 0.8,
  fragmentedMinBytes: 64 * 1024 * 1024,
  fragmentedInUse: 0.5,
  peerRttWarnMs: 50,
  peerRttBadMs: 100,
  grpcErrorsWarn: 0.01,
  grpcErrorsBad: 0.05,
} as const;

/** The gRPC codes etcd's own alerting counts as failures (etcd-mixin). */
export const GRPC_FAILURE_CODES: readonly string[] = [
  'Unknown',
  'FailedPrecondition',
  'ResourceExhausted',
  'Internal',
  'Unavailable',
  'DataLoss',
  'DeadlineExceeded',
];

/** The metrics the rules read (the same names the scrape keeps, window.ts). */
export const METRIC = {
  walFsync: 'etcd_disk_wal_fsync_duration_seconds',
  backendCommit: 'etcd_disk_backend_commit_duration_seconds',
  peerRtt: 'etcd_network_peer_round_trip_time_seconds',
  hasLeader: 'etcd_server_has_leader',
  isLeader: 'etcd_server_is_leader',
  leaderChanges: 'etcd_server_leader_changes_seen_total',
  proposalsCommitted: 'etcd_server_proposals_committed_total',
  proposalsApplied: 'etcd_server_proposals_applied_total',
  proposalsPending: 'etcd_server_proposals_pending',
  proposalsFailed: 'etcd_server_proposals_failed_total',
  dbTotal: 'etcd_mvcc_db_total_size_in_bytes',
  dbInUse: 'etcd_mvcc_db_total_size_in_use_in_bytes',
  quota: 'etcd_server_quota_backend_bytes',
  grpcStarted: 'grpc_server_started_total',
  grpcHandled: 'grpc_server_handled_total',
  keys: 'etcd_debugging_mvcc_keys_total',
  version: 'etcd_server_version',
} as const;

/** "1 min", "30 s": a duration as the rules' words say it. */
export function duration(ms: number): string {
  const m = Math.max(0, ms / 60_000);
  return m >= 1 ? `${Math.round(m)} min` : `${Math.round(m * 60)} s`;
}

/**
 * The words of each broken rule. The parts that vary are given already formatted: the judge
 * passes figures ("38 ms", "15 min"), the alert rules pass Prometheus templates of the same.
 */
export const WORDS = {
  disk: (what: string, figure: string, limitMs: number) =>
    `disk too slow for etcd: ${what} p99 ${figure} > ${limitMs} ms`,
  noLeader:
    'no leader: this member cannot serve writes or linearizable reads (quorum lost or an election running)',
  leaderChanges: (times: string, window: string, bad: boolean) =>
    `leader changed ${times} in the last ${window}: ${bad ? 'unstable leadership, ' : ''}check the network between members and their disks`,
  proposalsFailed: (proposals: string, window: string) =>
    `${proposals} failed in the last ${window} (usually during a leader election)`,
  proposalsPending: (n: string) => `${n} proposals pending: etcd is not keeping up with writes`,
  dbQuota: (figure: string) =>
    `database near its quota: ${figure}: compact and defragment, or ${RAISE_QUOTA}`,
  dbFragmented: (share: string, size: string) =>
    `only ${share} of the ${size} database file is in use: defragment to give the space back`,
  peerRtt: (figure: string, limitMs: number) =>
    `network between members slow: peer round trip p99 ${figure} > ${limitMs} ms (the heartbeat interval is 100 ms by default)`,
  /** `over`: what the share is taken over ("in the last 15 min"; the alert's rate and `for:`). */
  grpcErrors: (share: string, detail: string | undefined, over: string) =>
    `${share} of gRPC requests failed${detail ? ` (${detail})` : ''} ${over}`,
  memberDown:
    'cannot be scraped: the member is down, or its metrics listener unreachable with the monitoring certificate',
} as const;

/**
 * The rules the alerts cover: the Metrics tab's, and a member that cannot be scraped. Not the
 * served certificate's expiry (`servedCert.ts`): the tab reads it from the scrape's TLS
 * handshake, which etcd's own metrics do not carry (a blackbox exporter's probe_ssl_earliest_cert_expiry
 * does; docs/monitoring.md says so).
 */
export type AlertRuleId = Exclude<RuleId, 'served-cert'> | 'member-down';

export interface RuleLevel {
  level: 'warn' | 'bad';
  /** In the rule's unit; the figure breaks the level above it (`>`), from it (`>=`) or below it (`<`). */
  threshold: number;
}

export interface RuleDefinition {
  id: AlertRuleId;
  /** The Prometheus alert's name. */
  alert: string;
  /** What it judges, as the Metrics tab and the dashboard title it. */
  title: string;
  /** The metrics it reads. */
  sources: readonly string[];
  unit: 'ms' | 'ratio' | 'count' | 'bytes' | 'state';
  breachAt: '>' | '>=' | '<';
  /** Warn first, then bad. */
  levels: readonly RuleLevel[];
  /** The figure is judged from policy.minObservations observations in the window only. */
  needsObservations: boolean;
  /** A breach marks only once it lasted policy.sustainMs over policy.minEvaluations evaluations. */
  sustained: boolean;
  /** What to do, for an alert's runbook annotation. */
  runbook: string;
}

const DISK_RUNBOOK =
  "etcd waits for this on every write. Check the member's disk (iostat, other I/O on the same device); etcd wants an SSD with fsync p99 under 10 ms (etcd's hardware guide). `k3s-etcd perf` measures it; move the data dir to a faster disk if it stays slow.";

/** Every rule, in the Metrics tab's order. */
export const RULES: readonly RuleDefinition[] = [
  {
    id: 'wal-fsync',
    alert: 'EtcdWalFsyncSlow',
    title: 'WAL fsync p99',
    sources: [METRIC.walFsync],
    unit: 'ms',
    breachAt: '>',
    levels: [{ level: 'bad', threshold: GUIDANCE.walFsyncP99Ms }],
    needsObservations: true,
    sustained: true,
    runbook: DISK_RUNBOOK,
  },
  {
    id: 'backend-commit',
    alert: 'EtcdBackendCommitSlow',
    title: 'backend commit p99',
    sources: [METRIC.backendCommit],
    unit: 'ms',
    breachAt: '>',
    levels: [{ level: 'bad', threshold: GUIDANCE.backendCommitP99Ms }],
    needsObservations: true,
    sustained: true,
    runbook: DISK_RUNBOOK,
  },
  {
    id: 'has-leader',
    alert: 'EtcdNoLeader',
    title: 'has leader',
    sources: [METRIC.hasLeader],
    unit: 'state',
    breachAt: '<',
    levels: [{ level: 'bad', threshold: 1 }],
    needsObservations: false,
    sustained: true,
    runbook:
      'Check that a majority of members run (`k3s-etcd members`, `k3s-etcd health`) and reach each other on the peer port. With a quorum lost for good, `k3s-etcd recover` brings the cluster back from the most advanced member.',
  },
  {
    id: 'leader-changes',
    alert: 'EtcdLeaderChanges',
    title: 'leader changes',
    sources: [METRIC.leaderChanges],
    unit: 'count',
    breachAt: '>=',
    levels: [
      { level: 'warn', threshold: GUIDANCE.leaderChangesWarn },
      { level: 'bad', threshold: GUIDANCE.leaderChangesBad },
    ],
    needsObservations: false,
    sustained: false,
    runbook:
      'Elections follow missed heartbeats: look for packet loss or latency between members (peer round trip p99) and slow disks (WAL fsync p99). A member restarting over and over also shows here.',
  },
  {
    id: 'proposals-failed',
    alert: 'EtcdProposalsFailed',
    title: 'failed proposals',
    sources: [METRIC.proposalsFailed],
    unit: 'count',
    breachAt: '>',
    levels: [{ level: 'warn', threshold: 0 }],
    needsObservations: false,
    sustained: false,
    runbook:
      'Proposals fail while a leader election runs; many of them point at an unstable leader (see the leader changes).',
  },
  {
    id: 'proposals-pending',
    alert: 'EtcdProposalsPending',
    title: 'proposals pending',
    sources: [METRIC.proposalsPending],
    unit: 'count',
    breachAt: '>',
    levels: [{ level: 'warn', threshold: GUIDANCE.proposalsPendingWarn }],
    needsObservations: false,
    sustained: true,
    runbook:
      'The member cannot apply writes as fast as they come: check its disk and CPU, and what writes so much (`k3s-etcd keyspace`).',
  },
  {
    id: 'db-quota',
    alert: 'EtcdDatabaseNearQuota',
    title: 'database size of its quota',
    sources: [METRIC.dbTotal, METRIC.quota],
    unit: 'ratio',
    breachAt: '>=',
    levels: [
      { level: 'warn', threshold: GUIDANCE.quotaWarn },
      { level: 'bad', threshold: GUIDANCE.quotaBad },
    ],
    needsObservations: false,
    sustained: false,
    runbook:
      'At the quota etcd raises the NOSPACE alarm and refuses every write: K3s stops. Run `k3s-etcd maintain` (compaction, then defragmentation one member at a time), see what fills it with `k3s-etcd keyspace`, or raise etcd.quotaBackendBytes.',
  },
  {
    id: 'db-fragmented',
    alert: 'EtcdDatabaseFragmented',
    title: 'database in use',
    sources: [METRIC.dbTotal, METRIC.dbInUse],
    unit: 'ratio',
    breachAt: '<',
    levels: [{ level: 'warn', threshold: GUIDANCE.fragmentedInUse }],
    needsObservations: false,
    sustained: false,
    runbook:
      'Compaction frees space inside the file but only defragmentation gives it back: `k3s-etcd maintain` defragments one member at a time, the leader last.',
  },
  {
    id: 'peer-rtt',
    alert: 'EtcdPeerRoundTripSlow',
    title: 'peer round trip p99',
    sources: [METRIC.peerRtt],
    unit: 'ms',
    breachAt: '>',
    levels: [
      { level: 'warn', threshold: GUIDANCE.peerRttWarnMs },
      { level: 'bad', threshold: GUIDANCE.peerRttBadMs },
    ],
    needsObservations: true,
    sustained: true,
    runbook:
      'Round trips near the heartbeat interval (100 ms) cost elections: check the network path between the members (latency, loss, a busy link) and their CPU.',
  },
  {
    id: 'grpc-errors',
    alert: 'EtcdGrpcErrors',
    title: 'gRPC failures',
    sources: [METRIC.grpcStarted, METRIC.grpcHandled],
    unit: 'ratio',
    breachAt: '>',
    levels: [
      { level: 'warn', threshold: GUIDANCE.grpcErrorsWarn },
      { level: 'bad', threshold: GUIDANCE.grpcErrorsBad },
    ],
    needsObservations: true,
    sustained: true,
    runbook:
      "Requests fail with server-side codes (Unavailable, DeadlineExceeded, ...): look at the member's log and at the other rules (leader, disk, quota) for the cause.",
  },
  // The Metrics tab marks a member it cannot scrape at once (it is looking now); the alert waits
  // the policy's sustain, like every sustained rule, so a restart does not page.
  {
    id: 'member-down',
    alert: 'EtcdMemberDown',
    title: 'scraped',
    sources: ['up'],
    unit: 'state',
    breachAt: '<',
    levels: [{ level: 'bad', threshold: 1 }],
    needsObservations: false,
    sustained: true,
    runbook:
      "Check the member's unit on its host (`systemctl status etcd`), `k3s-etcd health`, and that the monitoring certificate is the one the export named. A member lost for good: `k3s-etcd member replace`.",
  },
];

export function ruleDefinition(id: AlertRuleId): RuleDefinition {
  const r = RULES.find((x) => x.id === id);
  if (!r) throw new Error(`no rule ${id}`);
  return r;
}
