/** `k3s-etcd health|status|members`: etcdctl's tables, per member, through the cluster's TLS. */
import { clusterHealth, clusterStatus } from '../core/etcd/checks';
import {
  inventoryQuota,
  memberQuotas,
  quotaDriftLine,
  type MemberQuota,
} from '../core/etcd/effective';
import { endpointTargets, metricsTargets } from '../core/etcd/scrape';
import { healthTable, membersTable, statusTable } from '../core/etcd/tables';
import { listMembers } from '../core/etcd/members';
import { maintenanceRunLine } from '../core/etcd/maintenanceRecord';
import { localStamp } from '../core/format/stamp';
import { json, type RunContext, type Subcommand } from './context';
import type * as StatusSettings from './statusSettings';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, etcdTarget } from './etcdTarget';

/**
 * The status rows with the quota each member runs with (its /metrics, read on the status
 * connection) and, for an inventory's cluster, the quota the inventory asks for; plus a line
 * when they differ. A member that answered status but not /metrics on that connection is
 * scraped where its metrics are (the inventory's metrics port, or its http:// client URL).
 */
async function statusWithQuota(ctx: RunContext) {
  const t = await etcdTarget(ctx);
  const s = await clusterStatus(t.endpoints, {
    ...(t.tls ? { tls: t.tls } : {}),
    ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
    quota: true,
  });
  // Read over HTTP/1 where the connection could not serve the page: a separate metrics port,
  // or a plain http:// client port (there etcd hands every HTTP/2 connection to gRPC).
  const missing = s.status.filter((r) => !r.problem && r.quotaBackendBytes === undefined);
  const targets = t.cluster ? metricsTargets(t.cluster) : endpointTargets(t.endpoints);
  const elsewhere = targets.filter((m) => missing.some((r) => r.endpoint === m.endpoint));
  const scraped = elsewhere.length
    ? await memberQuotas(elsewhere, {
        ...(t.tls ? { tls: t.tls } : {}),
        ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
      })
    : [];
  const quotas: MemberQuota[] = s.status.map((r) => {
    const q =
      r.quotaBackendBytes ?? scraped.find((m) => m.endpoint === r.endpoint)?.quotaBackendBytes;
    return q !== undefined
      ? { endpoint: r.endpoint, quotaBackendBytes: q }
      : { endpoint: r.endpoint };
  });
  const want = t.cluster ? inventoryQuota(t.cluster) : undefined;
  const rows = s.status.map((r, i) => {
    const q = quotas[i]?.quotaBackendBytes;
    return {
      ...r,
      ...(q !== undefined ? { quotaBackendBytes: q } : {}),
      ...(want !== undefined ? { inventoryQuotaBackendBytes: want } : {}),
    };
  });
  return { s, rows, drift: t.cluster ? quotaDriftLine(t.cluster, quotas) : undefined };
}

/**
 * `status --settings` (./statusSettings.ts): required when asked, so `status` itself never loads
 * the SSH code (esbuild keeps a required module's code from running until then).
 */
function statusSettings(ctx: RunContext): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./statusSettings') as typeof StatusSettings).statusSettings(ctx);
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
      const t = await etcdTarget(ctx);
      const s = await clusterHealth(t.endpoints, {
        ...(t.tls ? { tls: t.tls } : {}),
        ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
      });
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
      'k3s-etcd status [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]\n       k3s-etcd status --settings [--cluster NAME] [--accept-new-host-keys] [--json]',
    details: `${ENDPOINT_HELP}\nExit 1 when a member does not answer. Also reads each member's space quota from\nits /metrics and says when it differs from etcd.quotaBackendBytes in the inventory (--json:\nquotaBackendBytes and inventoryQuotaBackendBytes on each row). Ends with the maintenance timer's last\nrun when one has run (maintain --install-timer).\n\n--settings: instead, reads on every etcd host over SSH (as root, read-only) what etcd really\nruns with: the running process's environment and arguments (/proc/<pid>/environ and cmdline of\nsystemd's MainPID), or its env file and unit when it is not running, and prints each tuning key\nset in the inventory or on a member beside each member's value (KEY | INVENTORY | member...), a\nvalue that is not what the inventory renders for that member's etcd version marked *, with what\nto run (provision, or a restart when the files already agree). --json: the same comparison. Exit 1 when a member\ndiffers or cannot be read. The inventory's cluster only (not --endpoints).`,
    options: {
      ...ENDPOINT_OPTIONS,
      settings: { type: 'boolean', default: false },
      'accept-new-host-keys': { type: 'boolean', default: false },
    },
    async run(ctx) {
      if (ctx.values['settings'] === true) return statusSettings(ctx);
      const { s, rows, drift } = await statusWithQuota(ctx);
      if (ctx.global.json) json(ctx, rows);
      else {
        ctx.io.out(statusTable(s.status));
        if (drift) ctx.io.out(drift);
        if (s.maintenance) ctx.io.out(maintenanceRunLine(s.maintenance, localStamp));
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
