/**
 * `k3s-etcd metrics`: each member's Prometheus metrics read twice, a window apart, and judged
 * against etcd's guidance (disk latency, leader stability, database against its quota, peer
 * round trips, gRPC failures). Exit 1 when a member breaks a rule or cannot be scraped.
 */
import { renderColumns } from '../core/format/table';
import { DEFAULT_POLICY, GUIDANCE, type JudgePolicy } from '../core/metrics/judge';
import { clusterMetrics, scrapeInto, type ScrapeRound } from '../core/metrics/scrape';
import { endpointTargets, metricsTargets } from '../core/etcd/scrape';
import { marks, memberRole, type ClusterMetrics, type MemberSummary } from '../shared/metricsTypes';
import { MetricsWindow } from '../core/metrics/window';
import { humanBytes } from '../shared/etcdTypes';
import { json, UsageError, type Subcommand } from './context';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, etcdTarget } from './etcdTarget';

const ms = (v: number | undefined) =>
  v === undefined ? '-' : v >= 10 ? `${Math.round(v)}` : v.toFixed(1);
const rate = (v: number | undefined) =>
  v === undefined ? '-' : v >= 10 ? `${Math.round(v)}` : v.toFixed(1);

/** The member's role; shouted when it has no leader (the rule that breaks). */
const roleText = (s: MemberSummary) => {
  const role = memberRole(s);
  return role === undefined ? '-' : role === 'no leader' ? 'NO-LEADER' : role;
};

/** The result for `--json`: every moment in ISO 8601 (the summary's window, each point). */
export function metricsJson(m: ClusterMetrics): unknown {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    ...m,
    at: iso(m.at),
    members: m.members.map((x) => ({
      ...x,
      ...(x.summary
        ? { summary: { ...x.summary, from: iso(x.summary.from), to: iso(x.summary.to) } }
        : {}),
      series: x.series.map((p) => ({ ...p, at: iso(p.at) })),
    })),
  };
}

function row(member: string, level: string, s: MemberSummary | undefined): string[] {
  if (!s) return [member, level, '-', '-', '-', '-', '-', '-', '-', '-'];
  return [
    member,
    level,
    `${ms(s.walFsyncP50Ms)} / ${ms(s.walFsyncP99Ms)}`,
    ms(s.backendCommitP99Ms),
    roleText(s),
    String(s.leaderChanges),
    rate(s.proposalsCommittedPerSec),
    s.dbTotalBytes === undefined
      ? '-'
      : `${humanBytes(s.dbTotalBytes)}${s.quotaBytes ? ` / ${humanBytes(s.quotaBytes)}` : ''}`,
    ms(s.peerRttP99Ms),
    `${rate(s.grpcRequestsPerSec)} (${s.grpcErrors} err)`,
  ];
}

export function metricsText(m: ClusterMetrics): string {
  const lines: string[] = [];
  const basis = m.members.find((x) => x.summary)?.summary;
  const seconds = basis ? Math.round((basis.to - basis.from) / 1000) : 0;
  lines.push(
    `Metrics of ${m.cluster} over ${seconds} s${basis?.version ? ` (etcd ${basis.version})` : ''}`,
  );
  lines.push(
    renderColumns(
      [
        'MEMBER',
        'LEVEL',
        'WAL FSYNC P50/P99 MS',
        'COMMIT P99 MS',
        'ROLE',
        'CHANGES',
        'PROPOSALS/S',
        'DB / QUOTA',
        'PEER RTT P99 MS',
        'GRPC/S',
      ],
      m.members.map((x) => row(x.member, x.level.toUpperCase(), x.summary)),
    ),
  );
  if (m.members.some((x) => x.summary?.latencyBasis === 'since-start'))
    lines.push('(no WAL write in the window: latencies are since etcd started)');
  const findings = m.members.flatMap((x) => [
    ...(x.error ? [`  ${x.member}  BAD   cannot read ${x.url}: ${x.error}`] : []),
    ...x.findings
      .filter((f) => marks(f.level))
      .map((f) => `  ${x.member}  ${f.level === 'bad' ? 'BAD ' : 'WARN'}  ${f.message}`),
  ]);
  lines.push(findings.length ? 'Findings:' : "Every member is within etcd's guidance.");
  lines.push(...findings);
  const unjudged = m.members.flatMap((x) =>
    x.findings.filter((f) => f.level === 'unjudged').map((f) => `  ${x.member}  ${f.message}`),
  );
  if (unjudged.length) lines.push('Not judged:', ...unjudged);
  lines.push(`Cluster: ${m.summary}`);
  return lines.join('\n');
}

export const METRICS_COMMANDS: Subcommand[] = [
  {
    name: 'metrics',
    summary: "Judge each member's Prometheus metrics against etcd's guidance",
    usage:
      'k3s-etcd metrics [--window SECONDS] [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details:
      `Scrapes /metrics of every member twice, --window seconds apart (default 10), and judges what\n` +
      `happened in between: WAL fsync p99 under ${GUIDANCE.walFsyncP99Ms} ms and backend commit p99 under ${GUIDANCE.backendCommitP99Ms} ms,\n` +
      'a leader and no leader changes, proposals failed and pending, the database against\n' +
      `--quota-backend-bytes (warning at ${GUIDANCE.quotaWarn * 100}%, broken at ${GUIDANCE.quotaBad * 100}%), peer round trips, gRPC failures. With\n` +
      "etcd.metricsPort in the inventory the member's --listen-metrics-urls is scraped instead.\n" +
      `A p99 or an error ratio is judged from ${DEFAULT_POLICY.minObservations} observations in the window; with fewer it is\n` +
      'listed as "too few samples" and not judged (and neither is a latency seen only since etcd started).\n' +
      `${ENDPOINT_HELP}\n` +
      'Exit 1 when a member breaks a rule or cannot be scraped.',
    options: { ...ENDPOINT_OPTIONS, window: { type: 'string' } },
    async run(ctx) {
      const windowSec = ctx.values['window'] === undefined ? 10 : Number(ctx.values['window']);
      if (!Number.isFinite(windowSec) || windowSec < 0 || windowSec > 3600)
        throw new UsageError('--window is a number of seconds from 0 to 3600');
      const target = await etcdTarget(ctx);
      const targets = target.cluster
        ? metricsTargets(target.cluster)
        : endpointTargets(target.endpoints);
      const window = new MetricsWindow({ windowMs: windowSec * 1000 + 60_000 });
      const opts = {
        ...(target.tls ? { tls: target.tls } : {}),
        ...(target.timeoutMs ? { timeoutMs: target.timeoutMs } : {}),
      };
      let round: ScrapeRound = await scrapeInto(window, targets, opts);
      if (windowSec > 0) {
        ctx.io.err(`Scraped ${targets.length} members; again in ${windowSec} s...`);
        await new Promise((r) => setTimeout(r, windowSec * 1000));
        round = await scrapeInto(window, targets, opts);
      }
      // The measured interval is the whole evidence: a breach counts when it held over it.
      const policy: JudgePolicy = {
        ...DEFAULT_POLICY,
        sustainMs: windowSec * 1000,
        minEvaluations: 1,
      };
      const result = clusterMetrics(target.cluster?.name ?? 'etcd', targets, window, round, policy);
      if (ctx.global.json) json(ctx, metricsJson(result));
      else ctx.io.out(metricsText(result));
      return result.level === 'bad' ? 1 : 0;
    },
  },
];
