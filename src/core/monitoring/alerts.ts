/**
 * The Metrics tab's rules as Prometheus alert rules, generated from the one table
 * (metrics/rules.ts): the same thresholds per level, the same minimum observations over the
 * tab's window, `for:` from the policy's sustained breach (never shorter than its minimum
 * evaluations at the exported interval), the same words with Prometheus templates for the
 * figures, and the runbook text in an annotation.
 */
import { stringify } from 'yaml';
import {
  DEFAULT_POLICY,
  duration,
  RULE_WINDOW_MS,
  RULES,
  WORDS,
  type JudgePolicy,
  type RuleDefinition,
  type RuleLevel,
} from '../metrics/rules';
import { evidence, figure, promDuration, RATE_RANGE_MS, SCRAPE_INTERVAL_MS } from './promql';
import { checkedName } from './targets';

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface RuleGroups {
  groups: Array<{ name: string; interval: string; rules: AlertRule[] }>;
}

export const SEVERITY = { warn: 'warning', bad: 'critical' } as const;

/** How long a breach must last before the alert fires (ms); undefined for counted events and sizes. */
function forMs(rule: RuleDefinition, policy: JudgePolicy): number | undefined {
  if (!rule.sustained) return undefined;
  return Math.max(policy.sustainMs, policy.minEvaluations * SCRAPE_INTERVAL_MS);
}

/** The same as a Prometheus `for:` duration. */
export function forDuration(rule: RuleDefinition, policy: JudgePolicy): string | undefined {
  const ms = forMs(rule, policy);
  return ms === undefined ? undefined : promDuration(ms);
}

const INVERSE = { '>': '<=', '>=': '<', '<': '>=' } as const;

// Go templates of the figures, formatted as the judge formats them.
export const MS =
  '{{ if ge $value 10.0 }}{{ printf "%.0f" $value }}{{ else }}{{ printf "%.1f" $value }}{{ end }} ms';
export const COUNT = '{{ printf "%.0f" $value }}';
export const SHARE = '{{ $value | humanizePercentage }}';
export const DB_SIZE =
  '{{ with printf "etcd_mvcc_db_total_size_in_bytes{cluster=%q,member=%q}" $labels.cluster $labels.member | query }}{{ . | first | value | humanize1024 }}B{{ end }}';

function words(rule: RuleDefinition, level: RuleLevel, policy: JudgePolicy): string {
  const window = duration(RULE_WINDOW_MS);
  switch (rule.id) {
    case 'wal-fsync':
      return WORDS.disk('WAL fsync', MS, level.threshold);
    case 'backend-commit':
      return WORDS.disk('backend commit', MS, level.threshold);
    case 'has-leader':
      return WORDS.noLeader;
    case 'leader-changes':
      return WORDS.leaderChanges(`${COUNT} time(s)`, window, level.level === 'bad');
    case 'proposals-failed':
      return WORDS.proposalsFailed(`${COUNT} proposal(s)`, window);
    case 'proposals-pending':
      return WORDS.proposalsPending(COUNT);
    case 'db-quota':
      return WORDS.dbQuota(`${SHARE} of its quota`);
    case 'db-fragmented':
      return WORDS.dbFragmented(SHARE, DB_SIZE);
    case 'peer-rtt':
      return WORDS.peerRtt(MS, level.threshold);
    case 'grpc-errors':
      // The alert's share is the rate over one range, past the threshold for its `for:`; the
      // tab's is the share over its window. Each says what it measured, in the same words.
      return WORDS.grpcErrors(
        SHARE,
        undefined,
        `(rate over ${duration(RATE_RANGE_MS)}), for at least ${duration(forMs(rule, policy) ?? 0)}`,
      );
    case 'member-down':
      return WORDS.memberDown;
  }
}

/** The expression of one level: the figure past its threshold, short of the next level's. */
export function levelExpr(
  rule: RuleDefinition,
  i: number,
  cluster: string,
  policy: JudgePolicy = DEFAULT_POLICY,
): string {
  const level = rule.levels[i]!;
  const next = rule.levels[i + 1];
  let expr = `${figure(rule.id, cluster)} ${rule.breachAt} ${level.threshold}`;
  if (next) expr += ` ${INVERSE[rule.breachAt]} ${next.threshold}`;
  const also = evidence(rule.id, cluster, policy.minObservations);
  return also ? `(${expr}) and on (cluster, member) (${also})` : expr;
}

export function alertRules(clusterName: string, policy: JudgePolicy = DEFAULT_POLICY): RuleGroups {
  const cluster = checkedName(clusterName, 'the cluster name');
  const rules: AlertRule[] = [];
  for (const rule of RULES) {
    const wait = forDuration(rule, policy);
    rule.levels.forEach((level, i) => {
      const summary = words(rule, level, policy);
      rules.push({
        alert: rule.alert,
        expr: levelExpr(rule, i, cluster, policy),
        ...(wait ? { for: wait } : {}),
        labels: { severity: SEVERITY[level.level], k3s_etcd_rule: rule.id },
        annotations: {
          summary,
          description: `etcd member {{ $labels.member }} of cluster {{ $labels.cluster }}: ${summary}`,
          runbook: rule.runbook,
        },
      });
    });
  }
  return {
    groups: [{ name: `k3s-etcd-${cluster}`, interval: promDuration(SCRAPE_INTERVAL_MS), rules }],
  };
}

export function rulesYaml(cluster: string, policy: JudgePolicy = DEFAULT_POLICY): string {
  const groups = alertRules(cluster, policy);
  return [
    `# Alert rules for the etcd of cluster ${cluster}, written by k3s-etcd monitoring export.`,
    "# The same rules, thresholds and words as the editor's Metrics tab (one definition).",
    stringify(groups, { lineWidth: 0 }),
  ].join('\n');
}
