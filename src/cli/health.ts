/** `k3s-etcd health|status|members`: etcdctl's tables, per member, through the cluster's TLS. */
import { clusterSnapshot, type ClusterSnapshot } from '../core/etcd/checks';
import { healthTable, membersTable, statusTable } from '../core/etcd/tables';
import { listMembers } from '../core/etcd/members';
import { json, type RunContext, type Subcommand } from './context';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, etcdTarget } from './etcdTarget';

async function snapshot(ctx: RunContext): Promise<ClusterSnapshot> {
  const t = await etcdTarget(ctx);
  return clusterSnapshot(t.endpoints, {
    ...(t.tls ? { tls: t.tls } : {}),
    ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
  });
}

function printProblems(
  ctx: RunContext,
  rows: ReadonlyArray<{ endpoint: string; problem?: { summary: string; hint: string } }>,
): void {
  for (const r of rows)
    if (r.problem) ctx.io.err(`${r.endpoint}: ${r.problem.summary}. ${r.problem.hint}`);
}

export const HEALTH_COMMANDS: Subcommand[] = [
  {
    name: 'health',
    summary: 'Health of every member (the columns of `etcdctl endpoint health -w table`)',
    usage:
      'k3s-etcd health [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details: `${ENDPOINT_HELP}\nExit 1 when any member is unhealthy (no answer, no quorum, or an alarm).`,
    options: ENDPOINT_OPTIONS,
    async run(ctx) {
      const s = await snapshot(ctx);
      if (ctx.global.json) json(ctx, s.health);
      else {
        ctx.io.out(healthTable(s.health));
        printProblems(ctx, s.health);
      }
      return s.healthy ? 0 : 1;
    },
  },
  {
    name: 'status',
    summary: 'Status of every member (the columns of `etcdctl endpoint status -w table`)',
    usage:
      'k3s-etcd status [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details: `${ENDPOINT_HELP}\nExit 1 when a member does not answer.`,
    options: ENDPOINT_OPTIONS,
    async run(ctx) {
      const s = await snapshot(ctx);
      if (ctx.global.json) json(ctx, s.status);
      else {
        ctx.io.out(statusTable(s.status));
        printProblems(ctx, s.status);
      }
      return s.status.some((r) => r.problem) ? 1 : 0;
    },
  },
  {
    name: 'members',
    summary: 'List etcd members (the columns of `etcdctl member list -w table`)',
    usage:
      'k3s-etcd members [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details: ENDPOINT_HELP,
    options: ENDPOINT_OPTIONS,
    async run(ctx) {
      const t = await etcdTarget(ctx);
      const members = await listMembers(t.endpoints, {
        ...(t.tls ? { tls: t.tls } : {}),
        ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
      });
      if (ctx.global.json) json(ctx, members);
      else ctx.io.out(membersTable(members));
      return 0;
    },
  },
];
