/** `k3s-etcd health|status|members`: etcdctl's tables, per member, through the cluster's TLS. */
import { resolve } from 'node:path';
import { clusterSnapshot, type ClusterSnapshot } from '../core/etcd/checks';
import { healthTable, membersTable, statusTable } from '../core/etcd/tables';
import type { EtcdTls } from '../core/etcd/client';
import { connectionFor } from '../core/etcd/connection';
import { listMembers } from '../core/etcd/members';
import type { Cluster } from '../core/inventory/types';
import { clientEndpoints } from '../core/inventory/select';
import {
  json,
  loadValid,
  selectCluster,
  UsageError,
  type Options,
  type RunContext,
  type Subcommand,
} from './context';

export const ENDPOINT_OPTIONS: Options = {
  endpoints: { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  timeout: { type: 'string' },
};

export const ENDPOINT_HELP =
  'Endpoints default to every etcd member of the cluster; TLS to etcd.tls in the inventory or the\n' +
  "cluster's admin certificate (pki/<cluster>/client/admin.pem). Override with --endpoints URL,...\n" +
  'and --cacert/--cert/--key. --timeout MS per request (default 5000).';

export interface EtcdTarget {
  endpoints: string[];
  tls?: EtcdTls;
  timeoutMs?: number;
  /** The inventory's cluster, when the endpoints come from it. */
  cluster?: Cluster;
}

/** Endpoints and TLS from the flags, else from the inventory's cluster. */
export async function etcdTarget(ctx: RunContext): Promise<EtcdTarget> {
  const v = ctx.values;
  const files = [v['cacert'], v['cert'], v['key']].filter((x) => typeof x === 'string') as string[];
  if (files.length > 0 && files.length < 3)
    throw new UsageError('--cacert, --cert and --key go together');
  const timeout = v['timeout'] !== undefined ? Number(v['timeout']) : undefined;
  if (timeout !== undefined && !(timeout > 0))
    throw new UsageError('--timeout is a number of milliseconds');
  let tls: EtcdTls | undefined =
    files.length === 3
      ? {
          caFile: resolve(ctx.io.cwd, files[0]!),
          certFile: resolve(ctx.io.cwd, files[1]!),
          keyFile: resolve(ctx.io.cwd, files[2]!),
        }
      : undefined;
  let endpoints =
    typeof v['endpoints'] === 'string' ? v['endpoints'].split(',').filter(Boolean) : [];
  let cluster: Cluster | undefined;
  if (endpoints.length === 0) {
    cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    if (tls) {
      endpoints = clientEndpoints(cluster);
    } else {
      const conn = await connectionFor(cluster); // says "generate certificates first" when there are none
      endpoints = conn.endpoints;
      tls = conn.tls;
    }
  }
  return {
    endpoints,
    ...(tls ? { tls } : {}),
    ...(timeout ? { timeoutMs: timeout } : {}),
    ...(cluster ? { cluster } : {}),
  };
}

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

export const ETCD_COMMANDS: Subcommand[] = [
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
