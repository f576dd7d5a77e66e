/**
 * Replacing a failed member in one step (`k3s-etcd member replace MEMBER [--host NEW_HOST]`):
 * the order users get wrong by hand, done for them. The replacement host is checked first (SSH,
 * sudo, every guard of its provisioning, as a dry run; `--dry-run` shows it too) so nothing is
 * removed that cannot be replaced, and another host gets its certificates only once it passed;
 * then the dead member leaves the member list (the quorum guard of `member remove`), its data
 * is moved aside on its host when that host answers (a removed member must never come back
 * with its old ID), and the replacement joins as a **learner** with a fresh data dir
 * (`existing` state), promoted once it has caught up: it never counts against the quorum while
 * it syncs. On another host, that host gets its member certificates and the etcd role, the old
 * host loses it in k3s-etcd.yaml (its entry goes when no role is left), and every K3s server
 * whose datastore-endpoint names the old member is re-pointed, one server at a time.
 *
 * Refused, with the reason, when the cluster has no quorum: that is `k3s-etcd recover`.
 */
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { connectionFor, healthyClient } from '../etcd/connection';
import { toMember, type EtcdMember } from '../etcd/members';
import { quorumAfterRemoval } from '../etcd/quorum';
import { moveEtcdRole } from '../inventory/edit';
import { clientUrl, etcdHosts, k3sServers, peerUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import type { HostRun, RunHooks } from '../plan/runner';
import { reissueMember } from '../pki/set';
import type { SshContext } from '../ssh/hostSession';
import { repointK3sServers } from '../k3s/ops';
import { addMember, removeMember } from '../provision/members';
import { standInMemberCerts } from '../provision/memberCerts';
import { provisionEtcd } from '../provision/provision';

export interface ReplacePlan {
  cluster: string;
  /** The member replaced: its host, member name, ID (when listed) and URLs. */
  old: { host: string; member: string; id?: string; clientUrl: string; healthy: boolean };
  /** Where the replacement runs (the same host after a disk loss, or another host). */
  target: { host: string; member: string; clientUrl: string; peerUrl: string; sameHost: boolean };
  /** The quorum guard's words (refused plans never get here). */
  quorum: string;
  /** K3s servers whose datastore endpoint will be re-pointed (another host only). */
  k3sServers: string[];
  /** The steps in words, for the preview and the question. */
  lines: string[];
}

export interface ReplaceOptions extends RunHooks {
  ssh: SshContext;
  /** Another host of the inventory for the replacement (default: the member's own host). */
  newHost?: string;
}

const hostOf = (cluster: Cluster, name: string): Host | undefined =>
  cluster.hosts.find((h) => h.name === name || h.memberName === name);

/** The cluster as it is once the etcd role has moved from `from` to `to` (in memory). */
export function withEtcdMoved(cluster: Cluster, from: string, to: string): Cluster {
  return {
    ...cluster,
    hosts: cluster.hosts
      .map((h) =>
        h.name === from
          ? { ...h, roles: h.roles.filter((r) => r !== 'etcd') }
          : h.name === to && !h.roles.includes('etcd')
            ? { ...h, roles: [...h.roles, 'etcd' as const] }
            : h,
      )
      .filter((h) => h.roles.length > 0),
  };
}

/** Reads the cluster and says what a replacement would do; refuses (throws) with the reason. */
export async function planReplace(
  cluster: Cluster,
  member: string,
  opts: { newHost?: string; signal?: AbortSignal } = {},
): Promise<ReplacePlan> {
  const oldHost = hostOf(cluster, member);
  if (!oldHost || !oldHost.roles.includes('etcd'))
    throw new K3sEtcdError(
      'usage',
      `No etcd member "${member}" in cluster ${cluster.name} (members: ${etcdHosts(cluster)
        .map((h) => h.memberName)
        .join(', ')}).`,
    );
  const target = opts.newHost ? hostOf(cluster, opts.newHost) : oldHost;
  if (!target)
    throw new K3sEtcdError(
      'usage',
      `No host "${opts.newHost}" in cluster ${cluster.name}: add it to k3s-etcd.yaml first (any role; the etcd role moves to it).`,
    );
  const sameHost = target.name === oldHost.name;
  if (!sameHost && target.roles.includes('etcd'))
    throw new K3sEtcdError(
      'usage',
      `${target.name} already has the etcd role: the replacement goes to a host that is not a member (or to ${oldHost.name} itself).`,
    );
  let members: EtcdMember[];
  try {
    const { client } = await healthyClient(cluster, { except: oldHost.name, timeoutMs: 5000 });
    try {
      members = (await client.cluster.memberList({})).members.map(toMember);
    } finally {
      client.close();
    }
  } catch (err) {
    throw new K3sEtcdError(
      'provision-refused',
      `Replacing ${oldHost.memberName} is refused: no other member serves a quorum read (${errorMessage(err)}). Without a quorum nothing can be removed or added: recover the cluster from its most advanced member with \`k3s-etcd recover\` ("Recover Cluster…").`,
    );
  }
  const oldPeer = peerUrl(cluster, oldHost);
  const listed = members.find((m) => m.name === oldHost.memberName || m.peerUrls.includes(oldPeer));
  const next = sameHost ? cluster : withEtcdMoved(cluster, oldHost.name, target.name);
  const nextTarget = hostOf(next, target.name)!;
  if (!sameHost && members.some((m) => m.peerUrls.includes(peerUrl(next, nextTarget))))
    throw new K3sEtcdError(
      'usage',
      `${peerUrl(next, nextTarget)} is already a member's peer URL: ${target.name} is in the cluster.`,
    );
  const conn = await connectionFor(cluster);
  const snap = await clusterSnapshot(
    members.flatMap((m) => m.clientUrls.slice(0, 1)),
    { tls: conn.tls, timeoutMs: 3000, ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  const healthyUrls = new Set(snap.health.filter((h) => h.health).map((h) => h.endpoint));
  const isHealthy = (m: EtcdMember) => m.clientUrls.some((u) => healthyUrls.has(u));
  const voters = members.filter((m) => !m.isLearner);
  const oldHealthy = listed ? isHealthy(listed) : false;
  const q = quorumAfterRemoval(voters.length, voters.filter(isHealthy).length, oldHealthy);
  if (listed && !q.ok)
    throw new K3sEtcdError(
      'provision-refused',
      `Replacing ${oldHost.memberName} (${listed.id}) is refused: ${q.why}. Bring the other members back first; without a quorum use \`k3s-etcd recover\`.`,
    );
  const servers = sameHost ? [] : k3sServers(cluster).map((h) => h.name);
  const oldClient = clientUrl(cluster, oldHost);
  const lines = [
    listed
      ? `member remove ${listed.id} (${oldHost.memberName}, ${oldHealthy ? 'healthy: it stops serving now' : 'not healthy'}; ${q.why})`
      : `${oldHost.memberName} is not in the member list: nothing to remove`,
    `on ${oldHost.name}, if it answers over SSH: etcd stopped and disabled, its data dir moved aside (${cluster.etcd.dataDir}.removed-<time>, never deleted)`,
    ...(sameHost
      ? []
      : [
          `${target.name}: member certificates issued under the cluster's CA; k3s-etcd.yaml: the etcd role moves from ${oldHost.name} to ${target.name}${oldHost.roles.length === 1 ? ` (${oldHost.name}'s entry goes: no role is left)` : ''}`,
        ]),
    `member add --learner ${peerUrl(next, nextTarget)} (${nextTarget.memberName} on ${target.name}), provisioned with a fresh data dir and --initial-cluster-state existing`,
    `member promote once it has caught up; then every member healthy`,
    ...(servers.length > 0
      ? [
          `K3s servers ${servers.join(', ')}: datastore-endpoint ${oldClient} → ${clientUrl(next, nextTarget)} where config.yaml names it, K3s restarted one server at a time`,
        ]
      : []),
  ];
  return {
    cluster: cluster.name,
    old: {
      host: oldHost.name,
      member: oldHost.memberName,
      ...(listed ? { id: listed.id } : {}),
      clientUrl: oldClient,
      healthy: oldHealthy,
    },
    target: {
      host: target.name,
      member: nextTarget.memberName,
      clientUrl: clientUrl(next, nextTarget),
      peerUrl: peerUrl(next, nextTarget),
      sameHost,
    },
    quorum: q.why,
    k3sServers: servers,
    lines,
  };
}

export interface ReplaceResult {
  plan: ReplacePlan;
  /** The replacement's new member ID. */
  memberId?: string;
  promoted: boolean;
  healthy: boolean;
  healthSummary?: string;
  /** The provisioning run of the replacement, and the K3s servers re-pointed. */
  runs: HostRun[];
  lines: string[];
}

/**
 * The replacement host's provisioning as a dry run (SSH, sudo, every guard; it only reads the
 * host): `member replace --dry-run` shows it, and a run does it before anything is removed.
 * Another host's certificates do not exist yet: it is checked with stand-ins. Throws
 * `provision-refused` with the host's reason when it cannot be provisioned.
 */
export async function checkReplacement(
  cluster: Cluster,
  plan: ReplacePlan,
  opts: RunHooks & { ssh: SshContext },
): Promise<HostRun[]> {
  const sameHost = plan.target.sameHost;
  const next = sameHost ? cluster : withEtcdMoved(cluster, plan.old.host, plan.target.host);
  const check = await provisionEtcd(next, {
    ...opts,
    dryRun: true,
    hosts: [plan.target.host],
    initial: {
      cluster: `${plan.target.member}=${plan.target.peerUrl}`,
      state: 'existing',
      learner: true,
    },
    skipMembershipCheck: true,
    ...(sameHost
      ? {}
      : {
          certsFor: {
            [plan.target.host]: await standInMemberCerts(next, plan.target.member),
          },
        }),
  });
  const blocked = check.runs.find((r) => r.status === 'failed' || r.status === 'cancelled');
  if (blocked)
    throw new K3sEtcdError(
      'provision-refused',
      `${blocked.error?.message ?? `${plan.target.host} cannot be provisioned`}. Nothing was removed: ${plan.old.member} is still a member${sameHost ? '' : `, and no certificate was issued for ${plan.target.host}`}.`,
    );
  return check.runs;
}

/**
 * Runs a confirmed plan. `inventoryFile` is edited only when the replacement went to another
 * host and it joined; a failure stops where it is and the error says what state it left.
 */
export async function replaceMember(
  cluster: Cluster,
  plan: ReplacePlan,
  opts: ReplaceOptions & { inventoryFile: string },
): Promise<ReplaceResult> {
  const lines: string[] = [];
  const say = (host: string, l: string) => {
    lines.push(`[${host}] ${l}`);
    opts.onLine?.(host, l);
  };
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    onLine: say,
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };
  const sameHost = plan.target.sameHost;
  const next = sameHost ? cluster : withEtcdMoved(cluster, plan.old.host, plan.target.host);
  // The replacement host first, as a dry run: nothing is removed that cannot be replaced, and
  // another host's certificates are issued only once it passed (a refusal leaves none behind).
  await checkReplacement(cluster, plan, { ...hooks, ssh: opts.ssh });
  if (!sameHost) {
    await reissueMember(next, plan.target.member, [], { confirmReplace: async () => true });
    say(plan.target.host, `member certificates issued for ${plan.target.member}`);
  }

  const removed = await removeMember(cluster, plan.old.host, {
    ...hooks,
    ssh: opts.ssh,
    dryRun: false,
    unreachableOk: !sameHost,
  });
  const added = await addMember(next, plan.target.host, {
    ...hooks,
    ssh: opts.ssh,
    dryRun: false,
    learner: true,
  });
  const failed = added.runs.some((r) => r.status === 'failed' || r.status === 'cancelled');
  if (failed)
    throw new K3sEtcdError(
      'provision-step-failed',
      `${plan.old.member}${removed.memberId ? ` (${removed.memberId})` : ''} was removed, but its replacement on ${plan.target.host} could not be provisioned: ${added.runs.find((r) => r.error)?.error?.message ?? 'see the lines above'}. The cluster runs with one member less: fix the host and run \`k3s-etcd member add ${plan.target.host}\`.`,
    );
  const runs: HostRun[] = [...added.runs];
  if (!sameHost) {
    const { removedHost } = await moveEtcdRole(
      opts.inventoryFile,
      cluster.name,
      plan.old.host,
      plan.target.host,
    );
    say(
      plan.target.host,
      `${opts.inventoryFile}: the etcd role moved from ${plan.old.host} to ${plan.target.host}${removedHost ? ` (${plan.old.host}'s entry removed)` : ''}`,
    );
    if (plan.k3sServers.length > 0)
      runs.push(
        ...(await repointK3sServers(next, {
          ...hooks,
          ssh: opts.ssh,
          from: plan.old.clientUrl,
          to: plan.target.clientUrl,
        })),
      );
  }
  return {
    plan,
    memberId: added.memberId,
    promoted: added.promoted === true,
    healthy: added.healthy === true,
    ...(added.healthSummary ? { healthSummary: added.healthSummary } : {}),
    runs,
    lines,
  };
}
