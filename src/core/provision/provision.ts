/**
 * Provisioning etcd on the member hosts of a cluster (every one, or some): each host read, its
 * member planned and run through the rolling engine (a new cluster starts together; on a
 * running one the members whose etcd restarts go one at a time), then health checked with the
 * admin certificate. Adding and removing a member of a running cluster: members.ts.
 */
import { K3sEtcdError } from '../errors';
import { connectionFor } from '../etcd/connection';
import { oneLineReason } from '../etcd/members';
import type { Cluster, Host } from '../inventory/types';
import { initialClusterOf, selectHosts } from '../inventory/select';
import type { SshContext } from '../ssh/hostSession';
import { openerFor, type HereHost } from '../thisHost/terminal';
import { checkDataDir, type HostFacts, readFacts } from '../etcd/memberHost';
import { planEtcdMember } from './memberPlan';
import type { MemberCertFiles } from './memberCerts';
import { resolveBinaries } from './binaries';
import type { HostPlan } from '../plan/steps';
import type { HostRun, RunHooks } from '../plan/runner';
import { liveCluster } from '../rolling/live';
import type { MemberRow } from '../rolling/order';
import { runRolling, type RollingJob } from '../rolling/engine';
import type { RollingPlan } from '../rolling/restarts';
import { waitHealthy } from '../etcd/health';

/** The member's plan from the host's facts: binaries resolved for its architecture. */
export async function planMember(
  cluster: Cluster,
  host: Host,
  facts: HostFacts,
  initial: { cluster: string; state: 'new' | 'existing'; learner?: boolean },
  certs?: MemberCertFiles,
): Promise<HostPlan> {
  const binaries = await resolveBinaries(cluster, host, facts);
  return planEtcdMember({
    cluster,
    host,
    facts,
    binaries,
    initialCluster: initial.cluster,
    initialState: initial.state,
    ...(initial.learner ? { learner: true } : {}),
    ...(certs ? { certs } : {}),
  });
}

export interface ProvisionOptions extends RunHooks {
  /** Host names; default every etcd host of the cluster. */
  hosts?: string[];
  dryRun: boolean;
  ssh: SshContext;
  /**
   * Overrides for adding a member to a running cluster (the host joins: nothing rolls). A
   * `learner` joins without a vote: it is ready when it answers `endpoint status` (a learner
   * refuses the quorum read of `endpoint health`), and no health wait follows: its caller
   * promotes it once it has caught up.
   */
  initial?: { cluster: string; state: 'new' | 'existing'; learner?: boolean };
  /** Skip the check against the live member list (used by add, which did it itself). */
  skipMembershipCheck?: boolean;
  /** After an IP change: the kept ETCD_INITIAL_* lines name the new address instead of the old. */
  rewriteInitial?: { from: string; to: string };
  /** Binaries whose previous version each restarted member keeps as `<path>.previous` (upgrade). */
  keepPrevious?: readonly string[];
  /** The host this window runs on: its steps run here (its terminal), the others over SSH. */
  here?: HereHost;
  /**
   * Dry runs only: certificate files by host name to plan with instead of the workspace's, for
   * a host whose certificates are issued only once it passed (member replace on another host).
   */
  certsFor?: Readonly<Record<string, MemberCertFiles>>;
}

export interface ProvisionResult {
  runs: HostRun[];
  /** After a real run: every provisioned member healthy through the admin certificate. */
  healthy?: boolean;
  healthSummary?: string;
  /** Which members restart etcd, in what order and why (set once every host was read). */
  rolling?: RollingPlan;
}

/** The running cluster (its member table), or undefined when no member answers (a new cluster). */
async function liveTable(
  cluster: Cluster,
  hooks: RunHooks,
): Promise<{ cluster: ReturnType<typeof liveCluster>; table: MemberRow[] } | undefined> {
  let why = '';
  try {
    // An armed alarm (NOSPACE) leaves a member running and in the quorum: it still rolls one
    // at a time, as raising the quota out of NOSPACE needs (not all at once as a new cluster).
    const live = liveCluster(await connectionFor(cluster), 2000, true);
    const table = await live.probe(hooks.signal);
    if (table.some((r) => r.healthy)) return { cluster: live, table };
    why = table.length > 0 ? 'no member is healthy' : 'nothing answered';
  } catch (err) {
    why = oneLineReason(err);
  }
  hooks.onLine?.(
    cluster.name,
    `note: no member of ${cluster.name} answered from here (${why}): hosts without etcd data start a new cluster, and every member is changed at once`,
  );
  return undefined;
}

/**
 * Provisions etcd on the member hosts, then checks health with the admin certificate: on a new
 * cluster all together; on a running one, members whose etcd restarts one at a time.
 */
export async function provisionEtcd(
  cluster: Cluster,
  opts: ProvisionOptions,
): Promise<ProvisionResult> {
  checkDataDir(cluster);
  if (opts.certsFor && !opts.dryRun)
    throw new K3sEtcdError(
      'provision-refused',
      'Stand-in certificates are for a dry run only: nothing was changed.',
    );
  const hosts = selectHosts(cluster, opts.hosts);
  const initialCluster = opts.initial?.cluster ?? initialClusterOf(cluster);
  const initialState = opts.initial?.state ?? 'new';
  // A host joining (member add) restarts nothing that runs: no rolling for it.
  const running = opts.initial ? undefined : await liveTable(cluster, opts);
  const live = opts.skipMembershipCheck ? undefined : running?.table;

  const jobs: RollingJob[] = hosts.map((host) => ({
    host: host.name,
    member: host.memberName,
    open: openerFor(cluster, host, opts.ssh, opts.here),
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
          `${host.name} is not a member of the running cluster ${cluster.name} (members: ${live.map((m) => m.name).join(', ')}): add it with \`k3s-etcd member add ${host.name}\` (or "Add as etcd Member") so it joins instead of starting a new cluster.`,
        );
      }
      return planMember(
        cluster,
        host,
        facts,
        {
          cluster: initialCluster,
          state: initialState,
          ...(opts.initial?.learner ? { learner: true } : {}),
        },
        opts.certsFor?.[host.name],
      );
    },
  }));
  const { runs, plan } = await runRolling(jobs, { ...opts, ...(running ? { live: running } : {}) });
  if (opts.dryRun) return { runs, rolling: plan };
  const done = hosts.filter((h) => {
    const status = runs.find((r) => r.host === h.name)?.status;
    return status === 'changed' || status === 'unchanged';
  });
  if (done.length === 0 || opts.initial?.learner) return { runs, rolling: plan };
  const health = await waitHealthy(cluster, done, 30_000, opts.signal);
  return { runs, healthy: health.ok, healthSummary: health.summary, rolling: plan };
}
