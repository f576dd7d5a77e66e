/**
 * etcd's published guidance turned into rules with reasons in words. Limits come from etcd's
 * hardware and tuning documentation and the alerts of etcd-mixin:
 * - WAL fsync p99 under 10 ms, backend commit p99 under 25 ms (disks);
 * - a member must have a leader; frequent leader changes point at the network or disks;
 * - the database must stay clear of --quota-backend-bytes (NOSPACE alarm at the quota);
 * - peer round trips well under the heartbeat interval (100 ms by default);
 * - gRPC failures over 1% (warning) and 5% (critical) of requests.
 */
import { humanBytes } from '../../shared/etcdTypes';
import {
  worst,
  type Finding,
  type Level,
  type MemberSummary,
  type RuleId,
} from '../../shared/metricsTypes';

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

const fmtMs = (v: number) => (v >= 10 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);
const pct = (v: number) => `${Math.round(v * 100)}%`;

function minutes(s: MemberSummary): string {
  const m = Math.max(0, (s.to - s.from) / 60_000);
  return m >= 1 ? `${Math.round(m)} min` : `${Math.round(m * 60)} s`;
}

/** Every rule for one member, ok ones included (the panel colours each figure). */
export function judgeMember(s: MemberSummary): Finding[] {
  const out: Finding[] = [];
  const basis = s.latencyBasis === 'since-start' ? ' since etcd started' : '';
  // The disk rules: a p99 against its limit, in the window or since etcd started.
  const disk = (rule: RuleId, what: string, p99: number | undefined, limit: number) => {
    if (p99 === undefined) return;
    const bad = p99 > limit;
    out.push({
      rule,
      level: bad ? 'bad' : 'ok',
      value: p99,
      limit,
      message: bad
        ? `disk too slow for etcd: ${what} p99 ${fmtMs(p99)} > ${limit} ms${basis}`
        : `${what} p99 ${fmtMs(p99)} (under ${limit} ms)${basis}`,
    });
  };
  disk('wal-fsync', 'WAL fsync', s.walFsyncP99Ms, GUIDANCE.walFsyncP99Ms);
  disk('backend-commit', 'backend commit', s.backendCommitP99Ms, GUIDANCE.backendCommitP99Ms);
  if (s.hasLeader !== undefined) {
    out.push({
      rule: 'has-leader',
      level: s.hasLeader ? 'ok' : 'bad',
      message: s.hasLeader
        ? s.isLeader
          ? 'has a leader (this member)'
          : 'has a leader'
        : 'no leader: this member cannot serve writes or linearizable reads (quorum lost or an election running)',
    });
  }
  {
    const n = s.leaderChanges;
    const level: Level =
      n >= GUIDANCE.leaderChangesBad ? 'bad' : n >= GUIDANCE.leaderChangesWarn ? 'warn' : 'ok';
    out.push({
      rule: 'leader-changes',
      level,
      value: n,
      limit: GUIDANCE.leaderChangesBad,
      message:
        level === 'ok'
          ? `no leader change in the last ${minutes(s)}`
          : `leader changed ${n} time${n === 1 ? '' : 's'} in the last ${minutes(s)}: ${level === 'bad' ? 'unstable leadership, ' : ''}check the network between members and their disks`,
    });
  }
  if (s.proposalsFailed > 0) {
    out.push({
      rule: 'proposals-failed',
      level: 'warn',
      value: s.proposalsFailed,
      message: `${s.proposalsFailed} proposal${s.proposalsFailed === 1 ? '' : 's'} failed in the last ${minutes(s)} (usually during a leader election)`,
    });
  }
  if (s.proposalsPending !== undefined && s.proposalsPending > GUIDANCE.proposalsPendingWarn) {
    out.push({
      rule: 'proposals-pending',
      level: 'warn',
      value: s.proposalsPending,
      limit: GUIDANCE.proposalsPendingWarn,
      message: `${s.proposalsPending} proposals pending: etcd is not keeping up with writes`,
    });
  }
  if (s.dbTotalBytes !== undefined && s.quotaBytes) {
    const used = s.dbTotalBytes / s.quotaBytes;
    const level: Level =
      used >= GUIDANCE.quotaBad ? 'bad' : used >= GUIDANCE.quotaWarn ? 'warn' : 'ok';
    const growth =
      s.dbGrowthBytesPerHour && s.dbGrowthBytesPerHour > 0
        ? `, growing ${humanBytes(Math.round(s.dbGrowthBytesPerHour))}/h`
        : '';
    out.push({
      rule: 'db-quota',
      level,
      value: used,
      limit: GUIDANCE.quotaBad,
      message:
        level === 'ok'
          ? `database ${humanBytes(s.dbTotalBytes)} of its ${humanBytes(s.quotaBytes)} quota (${pct(used)})${growth}`
          : `database near its quota: ${humanBytes(s.dbTotalBytes)} of ${humanBytes(s.quotaBytes)} (${pct(used)})${growth}: compact and defragment, or raise --quota-backend-bytes`,
    });
  }
  if (
    s.dbTotalBytes !== undefined &&
    s.dbInUseBytes !== undefined &&
    s.dbTotalBytes >= GUIDANCE.fragmentedMinBytes &&
    s.dbInUseBytes / s.dbTotalBytes < GUIDANCE.fragmentedInUse
  ) {
    out.push({
      rule: 'db-fragmented',
      level: 'warn',
      value: s.dbInUseBytes / s.dbTotalBytes,
      message: `only ${pct(s.dbInUseBytes / s.dbTotalBytes)} of the ${humanBytes(s.dbTotalBytes)} database file is in use: defragment to give the space back`,
    });
  }
  if (s.peerRttP99Ms !== undefined) {
    const level: Level =
      s.peerRttP99Ms > GUIDANCE.peerRttBadMs
        ? 'bad'
        : s.peerRttP99Ms > GUIDANCE.peerRttWarnMs
          ? 'warn'
          : 'ok';
    out.push({
      rule: 'peer-rtt',
      level,
      value: s.peerRttP99Ms,
      limit: GUIDANCE.peerRttWarnMs,
      message:
        level === 'ok'
          ? `peer round trip p99 ${fmtMs(s.peerRttP99Ms)}`
          : `network between members slow: peer round trip p99 ${fmtMs(s.peerRttP99Ms)} > ${level === 'bad' ? GUIDANCE.peerRttBadMs : GUIDANCE.peerRttWarnMs} ms (the heartbeat interval is 100 ms by default)`,
    });
  }
  if (s.grpcRequests > 0) {
    const ratio = s.grpcErrors / s.grpcRequests;
    const level: Level =
      ratio > GUIDANCE.grpcErrorsBad ? 'bad' : ratio > GUIDANCE.grpcErrorsWarn ? 'warn' : 'ok';
    out.push({
      rule: 'grpc-errors',
      level,
      value: ratio,
      limit: GUIDANCE.grpcErrorsWarn,
      message:
        level === 'ok'
          ? `${s.grpcErrors} failed of ${s.grpcRequests} gRPC requests`
          : `${pct(ratio)} of gRPC requests failed (${s.grpcErrors} of ${s.grpcRequests}) in the last ${minutes(s)}`,
    });
  }
  return out;
}

export function levelOf(findings: readonly Finding[]): Level {
  return worst(findings.map((f) => f.level));
}
