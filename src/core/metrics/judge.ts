/**
 * etcd's published guidance turned into rules with reasons in words. Limits come from etcd's
 * hardware and tuning documentation and the alerts of etcd-mixin:
 * - WAL fsync p99 under 10 ms, backend commit p99 under 25 ms (disks);
 * - a member must have a leader; frequent leader changes point at the network or disks;
 * - the database must stay clear of --quota-backend-bytes (NOSPACE alarm at the quota);
 * - peer round trips well under the heartbeat interval (100 ms by default);
 * - gRPC failures over 1% (warning) and 5% (critical) of requests.
 *
 * A figure is judged only on enough evidence (`JudgePolicy`): a p99 or an error ratio needs a
 * minimum number of observations (a p99 of 12 fsyncs is just the slowest of them), and a breach
 * of a latency, error-ratio or gauge rule must last, over consecutive scrapes, like an alert's
 * `for:` (sustain.ts). Short of that the figure is `unjudged`, with a note saying why, and never
 * marks the member. Counted events (leader changes, failed proposals) and sizes (the database
 * against its quota) need neither: each change happened, and a size does not spike.
 *
 * The thresholds, the policy and the words live in rules.ts, the one table the exported
 * Prometheus alert rules (monitoring/) are generated from too.
 */
import { humanBytes } from '../../shared/etcdTypes';
import {
  worst,
  type Finding,
  type Level,
  type MemberSummary,
  type RuleId,
} from '../../shared/metricsTypes';
import { DEFAULT_POLICY, duration, GUIDANCE, WORDS, type JudgePolicy } from './rules';
import { breachRuns, NO_RUN, type BreachRun } from './sustain';
import { summarize, type MemberPoint } from './window';

export { DEFAULT_POLICY, GUIDANCE, type JudgePolicy };

/** The current breach run of each rule judged over time (see sustain.ts). */
export type BreachRuns = Partial<Record<RuleId, BreachRun>>;

const fmtMs = (v: number) => (v >= 10 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);
const pct = (v: number) => `${Math.round(v * 100)}%`;

function minutes(s: MemberSummary): string {
  return duration(s.to - s.from);
}

const TOO_FEW = 'too few samples';
const BRIEF = 'not sustained';

/**
 * Every rule for one member, ok and unjudged ones included (the panel colours each figure).
 * `runs`: how long each rule's breach has lasted (`judgeWindow` reads them from the scrapes).
 */
export function judgeMember(
  s: MemberSummary,
  runs: BreachRuns = {},
  policy: JudgePolicy = DEFAULT_POLICY,
): Finding[] {
  const out: Finding[] = [];
  const basis = s.latencyBasis === 'since-start' ? ' since etcd started' : '';
  const min = policy.minObservations;
  const sustained = (rule: RuleId) => {
    const run = runs[rule] ?? NO_RUN;
    return run.evaluations >= policy.minEvaluations && run.ms >= policy.sustainMs;
  };
  /** A breach seen but not (or no longer) lasting: the figure, and when it would count. */
  const brief = (rule: RuleId, figure: string) => {
    const run = runs[rule] ?? NO_RUN;
    return run.evaluations === 0
      ? `${figure} over the last ${minutes(s)}, within the limit at the latest scrapes: a brief breach is not judged`
      : `${figure} for ${duration(run.ms)} so far: marked once it lasts ${duration(policy.sustainMs)}`;
  };
  const unjudged = (rule: RuleId, note: string, message: string, value?: number) =>
    out.push({ rule, level: 'unjudged', note, message, ...(value === undefined ? {} : { value }) });
  // Latency rules: a p99 against its limit(s), in the window or since etcd started.
  const latency = (
    rule: RuleId,
    what: string,
    p99: number | undefined,
    count: number,
    noun: string,
    limits: { warn?: number; bad: number },
    words: {
      ok: (figure: string, limit: number) => string;
      breach: (level: 'warn' | 'bad') => string;
    },
  ) => {
    if (p99 === undefined) return;
    const figure = `${what} p99 ${fmtMs(p99)}`;
    const limit = limits.warn ?? limits.bad;
    if (count < min) {
      unjudged(
        rule,
        TOO_FEW,
        `${TOO_FEW}: ${figure} from ${count} ${noun}${basis} (judged from ${min})`,
        p99,
      );
    } else if (p99 <= limit) {
      out.push({ rule, level: 'ok', value: p99, limit, message: words.ok(figure, limit) });
    } else if (s.latencyBasis === 'since-start') {
      unjudged(
        rule,
        'not in the window',
        `${figure} > ${limit} ms since etcd started, none in the last ${minutes(s)}: not judged`,
        p99,
      );
    } else if (!sustained(rule)) {
      unjudged(rule, BRIEF, brief(rule, `${figure} > ${limit} ms`), p99);
    } else {
      const level = limits.warn !== undefined && p99 <= limits.bad ? 'warn' : 'bad';
      out.push({ rule, level, value: p99, limit, message: words.breach(level) });
    }
  };
  const disk = (
    rule: RuleId,
    what: string,
    p99: number | undefined,
    count: number,
    noun: string,
    limit: number,
  ) =>
    latency(
      rule,
      what,
      p99,
      count,
      noun,
      { bad: limit },
      {
        ok: (figure) => `${figure} (under ${limit} ms)${basis}`,
        breach: () => WORDS.disk(what, fmtMs(p99 ?? 0), limit),
      },
    );
  disk('wal-fsync', 'WAL fsync', s.walFsyncP99Ms, s.walFsyncs, 'fsyncs', GUIDANCE.walFsyncP99Ms);
  disk(
    'backend-commit',
    'backend commit',
    s.backendCommitP99Ms,
    s.backendCommits,
    'commits',
    GUIDANCE.backendCommitP99Ms,
  );
  if (s.hasLeader !== undefined) {
    const none = WORDS.noLeader;
    if (s.hasLeader)
      out.push({
        rule: 'has-leader',
        level: 'ok',
        message: s.isLeader ? 'has a leader (this member)' : 'has a leader',
      });
    else if (sustained('has-leader')) out.push({ rule: 'has-leader', level: 'bad', message: none });
    else unjudged('has-leader', BRIEF, brief('has-leader', 'no leader at the latest scrape'));
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
          : WORDS.leaderChanges(`${n} time${n === 1 ? '' : 's'}`, minutes(s), level === 'bad'),
    });
  }
  if (s.proposalsFailed > 0) {
    out.push({
      rule: 'proposals-failed',
      level: 'warn',
      value: s.proposalsFailed,
      message: WORDS.proposalsFailed(
        `${s.proposalsFailed} proposal${s.proposalsFailed === 1 ? '' : 's'}`,
        minutes(s),
      ),
    });
  }
  if (s.proposalsPending !== undefined && s.proposalsPending > GUIDANCE.proposalsPendingWarn) {
    const message = WORDS.proposalsPending(String(s.proposalsPending));
    if (sustained('proposals-pending'))
      out.push({
        rule: 'proposals-pending',
        level: 'warn',
        value: s.proposalsPending,
        limit: GUIDANCE.proposalsPendingWarn,
        message,
      });
    else
      unjudged(
        'proposals-pending',
        BRIEF,
        brief('proposals-pending', `${s.proposalsPending} proposals pending`),
        s.proposalsPending,
      );
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
          : WORDS.dbQuota(
              `${humanBytes(s.dbTotalBytes)} of ${humanBytes(s.quotaBytes)} (${pct(used)})${growth}`,
            ),
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
      message: WORDS.dbFragmented(pct(s.dbInUseBytes / s.dbTotalBytes), humanBytes(s.dbTotalBytes)),
    });
  }
  latency(
    'peer-rtt',
    'peer round trip',
    s.peerRttP99Ms,
    s.peerRoundTrips,
    'round trips',
    { warn: GUIDANCE.peerRttWarnMs, bad: GUIDANCE.peerRttBadMs },
    {
      ok: (figure) => figure,
      breach: (level) =>
        WORDS.peerRtt(
          fmtMs(s.peerRttP99Ms ?? 0),
          level === 'bad' ? GUIDANCE.peerRttBadMs : GUIDANCE.peerRttWarnMs,
        ),
    },
  );
  if (s.grpcRequests > 0) {
    const ratio = s.grpcErrors / s.grpcRequests;
    const figure = `${s.grpcErrors} failed of ${s.grpcRequests} gRPC requests`;
    if (s.grpcRequests < min)
      unjudged('grpc-errors', TOO_FEW, `${TOO_FEW}: ${figure} (judged from ${min})`, ratio);
    else if (ratio <= GUIDANCE.grpcErrorsWarn)
      out.push({
        rule: 'grpc-errors',
        level: 'ok',
        value: ratio,
        limit: GUIDANCE.grpcErrorsWarn,
        message: figure,
      });
    else if (!sustained('grpc-errors'))
      unjudged(
        'grpc-errors',
        BRIEF,
        brief('grpc-errors', `${pct(ratio)} of gRPC requests failed`),
        ratio,
      );
    else
      out.push({
        rule: 'grpc-errors',
        level: ratio > GUIDANCE.grpcErrorsBad ? 'bad' : 'warn',
        value: ratio,
        limit: GUIDANCE.grpcErrorsWarn,
        message: WORDS.grpcErrors(
          pct(ratio),
          `${s.grpcErrors} of ${s.grpcRequests}`,
          `in the last ${minutes(s)}`,
        ),
      });
  }
  return out;
}

export function levelOf(findings: readonly Finding[]): Level {
  return worst(findings.map((f) => f.level));
}

/** A member's window of scrapes: its summary and every rule judged on that evidence. */
export function judgeWindow(
  points: readonly MemberPoint[],
  policy: JudgePolicy = DEFAULT_POLICY,
): { summary?: MemberSummary; findings: Finding[] } {
  const summary = summarize(points);
  if (!summary) return { findings: [] };
  return { summary, findings: judgeMember(summary, breachRuns(points, GUIDANCE), policy) };
}
