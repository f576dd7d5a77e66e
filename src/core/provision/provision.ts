/**
 * Provisioning etcd on the member hosts of a cluster (every one, or some): each host read, its
 * member planned and run, then health checked with the admin certificate. Adding and removing a
 * member of a running cluster: members.ts.
 */
import { K3sEtcdError } from '../errors';
import { connectionFor } from '../etcd/connection';
import { listMembers, oneLineReason, type EtcdMember } from '../etcd/members';
import type { Cluster, Host } from '../inventory/types';
import { initialClusterOf, selectHosts } from '../inventory/select';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { checkDataDir, type HostFacts, readFacts } from '../etcd/memberHost';
import { planEtcdMember } from './memberPlan';
import { resolveBinaries } from './binaries';
import type { HostPlan } from '../plan/steps';
import { runJobs, type HostJob, type HostRun, type RunHooks } from '../plan/runner';
import { waitHealthy } from '../etcd/health';

/** The member's plan from the host's facts: binaries resolved for its architecture. */
export async function planMember(
  cluster: Cluster,
  host: Host,
  facts: HostFacts,
  initial: { cluster: string; state: 'new' | 'existing' },
): Promise<HostPlan> {
  const binaries = await resolveBinaries(cluster, host, facts);
  return planEtcdMember({
    cluster,
    host,
    facts,
    binaries,
    initialCluster: initial.cluster,
    initialState: initial.state,
  });
}

export interface ProvisionOptions extends RunHooks {
  /** Host names; default every etcd host of the cluster. */
  hosts?: string[];
  dryRun: boolean;
  ssh: SshContext;
  /** Overrides for adding a member to a running cluster. */
  initial?: { cluster: string; state: 'new' | 'existing' };
  /** Skip the check against the live member list (used by add, which did it itself). */
  skipMembershipCheck?: boolean;
  /** After an IP change: the kept ETCD_INITIAL_* lines name the new address instead of the old. */
  rewriteInitial?: { from: string; to: string };
}

export interface ProvisionResult {
  runs: HostRun[];
  /** After a real run: every provisioned member healthy through the admin certificate. */
  healthy?: boolean;
  healthSummary?: string;
}

/** Members of the running cluster, or undefined when no member answers (a new cluster). */
async function liveMembers(cluster: Cluster, hooks: RunHooks): Promise<EtcdMember[] | undefined> {
  try {
    const conn = await connectionFor(cluster);
    return await listMembers(conn.endpoints, {
      tls: conn.tls,
      timeoutMs: 2000,
      ...(hooks.signal ? { signal: hooks.signal } : {}),
    });
  } catch (err) {
    hooks.onLine?.(
      cluster.name,
      `note: no member of ${cluster.name} answered from here (${oneLineReason(err)}): hosts without etcd data start a new cluster`,
    );
    return undefined;
  }
}

/** Provisions etcd on the member hosts, in parallel, then checks health with the admin certificate. */
export async function provisionEtcd(
  cluster: Cluster,
  opts: ProvisionOptions,
): Promise<ProvisionResult> {
  checkDataDir(cluster);
  const hosts = selectHosts(cluster, opts.hosts);
  const initialCluster = opts.initial?.cluster ?? initialClusterOf(cluster);
  const initialState = opts.initial?.state ?? 'new';
  const live = opts.skipMembershipCheck ? undefined : await liveMembers(cluster, opts);

  const jobs: HostJob[] = hosts.map((host) => ({
    host: host.name,
    open: sshOpener(cluster, host, opts.ssh),
    plan: async (t, signal): Promise<HostPlan> => {
      const facts = await readFacts(t, cluster, host, signal);
      const rw = opts.rewriteInitial;
      if (rw)
        facts.initialLines = facts.initialLines.map((l) =>
          l.split(`//${rw.from}:`).join(`//${rw.to}:`),
        );
      if (
        live &&
        live.length > 0 &&
        !facts.hasData &&
        !live.some((m) => m.name === host.memberName)
      ) {
        throw new K3sEtcdError(
          'provision-refused',
          `${host.name} is not a member of the running cluster ${cluster.name} (members: ${live.map((m) => m.name || m.id).join(', ')}): add it with \`k3s-etcd member add ${host.name}\` (or "Add etcd Member") so it joins instead of starting a new cluster.`,
        );
      }
      return planMember(cluster, host, facts, { cluster: initialCluster, state: initialState });
    },
  }));
  const runs = await runJobs(jobs, opts);
  if (opts.dryRun) return { runs };
  const done = hosts.filter((h) => {
    const status = runs.find((r) => r.host === h.name)?.status;
    return status === 'changed' || status === 'unchanged';
  });
  if (done.length === 0) return { runs };
  const health = await waitHealthy(cluster, done, 30_000, opts.signal);
  return { runs, healthy: health.ok, healthSummary: health.summary };
}
