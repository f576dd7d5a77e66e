/**
 * Changing the members of a running cluster: add one (`member add` first, then the host
 * provisioned with `--initial-cluster-state existing`), and remove one (`member remove` through
 * another member, refused when it would cost the quorum, then the unit stopped and disabled;
 * data kept unless asked, with its path named).
 */
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { memberIdFromHex } from '../etcd/client';
import { connectionFor, healthyClient } from '../etcd/connection';
import { toMember, type EtcdMember } from '../etcd/members';
import { isIpOrHostname } from '../inventory/addressFormat';
import type { Cluster } from '../inventory/types';
import { peerUrl, selectHosts } from '../inventory/select';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote } from '../ssh/quote';
import { MARKER, checkDataDir, markerMatches } from '../etcd/memberHost';
import type { RunHooks } from '../plan/runner';
import { quorumAfterRemoval } from '../etcd/quorum';
import { provisionEtcd, type ProvisionOptions, type ProvisionResult } from './provision';
import { waitHealthy } from '../etcd/health';
import type { Etcd3 } from 'etcd3';

/** An etcd member name as the inventory allows them (letters, digits, '-', '_', '.'). */
const MEMBER_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** `https://host:port` (or http) with an IP address or a host name, and nothing else. */
export function isPeerUrl(url: string): boolean {
  const m = /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(url);
  if (!m) return false;
  const port = Number(m[2]);
  return isIpOrHostname((m[1] as string).replace(/^\[|\]$/g, '')) && port >= 1 && port <= 65535;
}

/**
 * `name=peerURL` of a member as the running cluster lists it: etcd's answer is input, and it
 * goes into the joining member's env file (ETCD_INITIAL_CLUSTER), so a name or URL that is not
 * plain is refused before anything changes.
 */
export function liveMemberEntry(cluster: Cluster, m: EtcdMember): string {
  const url = m.peerUrls[0] ?? '';
  const what = !MEMBER_NAME.test(m.name)
    ? `its name ${JSON.stringify(m.name)} is not a member name (letters, digits, '-', '_' and '.')`
    : !isPeerUrl(url)
      ? `its peer URL ${JSON.stringify(url)} is not https://address:port`
      : undefined;
  if (what) {
    throw new K3sEtcdError(
      'provision-refused',
      `The running cluster ${cluster.name} lists member ${m.id}, but ${what}: it would go into the new member's ETCD_INITIAL_CLUSTER. Nothing was changed: fix or remove that member first (etcdctl member update / member remove).`,
    );
  }
  return `${m.name}=${url}`;
}

/**
 * etcd refuses reconfiguration ("etcdserver: unhealthy cluster") until its leader has seen every
 * member active for a few seconds, e.g. right after a restart: retry that for up to 20 s.
 */
async function retryUnhealthy<T>(f: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (
        !/unhealthy cluster/i.test((err as Error).message) ||
        Date.now() > until ||
        signal?.aborted
      )
        throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export interface MemberAddResult extends ProvisionResult {
  memberId: string;
  /** With `learner`: whether it was promoted to a voter (it had caught up). */
  promoted?: boolean;
}

/** How long a learner may take to catch up before its promotion is given up. */
export const PROMOTE_TIMEOUT_MS = 120_000;

/**
 * Promotes learner `id` once it has caught up: etcd refuses ("can only promote a learner member
 * which is in sync with leader") until the learner's log is near the leader's, so that answer is
 * retried until `timeoutMs`; any other refusal ends it.
 */
export async function promoteLearner(
  client: Etcd3,
  id: string,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const until = Date.now() + (opts.timeoutMs ?? PROMOTE_TIMEOUT_MS);
  for (;;) {
    try {
      await client.cluster.memberPromote({ ID: memberIdFromHex(id) });
      return;
    } catch (err) {
      const m = errorMessage(err);
      const waiting = /in sync with leader|not ready|unhealthy cluster|too many learner/i.test(m);
      if (!waiting || Date.now() > until || opts.signal?.aborted)
        throw new K3sEtcdError(
          'etcd-unreachable',
          `member promote ${id}: ${m}${waiting ? ` (still not caught up after ${Math.round((opts.timeoutMs ?? PROMOTE_TIMEOUT_MS) / 1000)} s)` : ''}. It stays a learner: it counts for no quorum; promote it later with \`etcdctl member promote ${id}\`, or remove it.`,
        );
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Adds `host` (already in the inventory with the etcd role and its certificates) to the running
 * cluster: `member add` through a healthy member, then provision the host joining as `existing`.
 */
export async function addMember(
  cluster: Cluster,
  hostName: string,
  opts: Omit<ProvisionOptions, 'hosts' | 'initial'> & {
    /** Join as a learner (no vote, no quorum at stake), promoted once it has caught up. */
    learner?: boolean;
  },
): Promise<MemberAddResult> {
  const learner = opts.learner === true;
  checkDataDir(cluster);
  const [host] = selectHosts(cluster, [hostName]);
  if (!host) throw new K3sEtcdError('usage', `No host ${hostName}`);
  const { client } = await healthyClient(cluster, { except: host.name });
  try {
    const current = (await client.cluster.memberList({})).members.map(toMember);
    const url = peerUrl(cluster, host);
    let added = current.find((m) => m.peerUrls.includes(url));
    if (added && added.name && added.name !== host.memberName) {
      throw new K3sEtcdError(
        'provision-refused',
        `The peer URL ${url} already belongs to member ${added.name} (${added.id}).`,
      );
    }
    const voters = current.filter((m) => !m.isLearner).length;
    const joinCluster = [
      ...current
        .filter((m) => m.name && m.id !== added?.id)
        .map((m) => liveMemberEntry(cluster, m)),
      `${host.memberName}=${url}`,
    ].join(',');
    // Check the host first (SSH, sudo, facts, every guard): a member added to the cluster but
    // never started costs quorum.
    const preflight = await provisionEtcd(cluster, {
      ...opts,
      dryRun: true,
      hosts: [host.name],
      initial: { cluster: joinCluster, state: 'existing', ...(learner ? { learner } : {}) },
      skipMembershipCheck: true,
    });
    const blocked = preflight.runs.find((r) => r.status === 'failed' || r.status === 'cancelled');
    if (blocked || opts.dryRun) {
      return { ...preflight, memberId: added?.id ?? '(not added: dry run)' };
    }
    if (!added) {
      const res = await retryUnhealthy(
        () =>
          client.cluster.memberAdd({ peerURLs: [url], ...(learner ? { isLearner: true } : {}) }),
        opts.signal,
      );
      added = toMember(res.member);
      opts.onLine?.(
        host.name,
        learner
          ? `member add --learner: ${added.id} ${url} (${voters} voters; it gets a vote once caught up)`
          : `member add: ${added.id} ${url} (cluster of ${voters} → ${voters + 1})`,
      );
    }
    const members = added
      ? [...current.filter((m) => m.id !== added?.id), { ...added, name: host.memberName }]
      : current;
    const initialCluster = [
      ...members.filter((m) => m.name).map((m) => liveMemberEntry(cluster, m)),
      ...(added ? [] : [`${host.memberName}=${url}`]),
    ].join(',');
    const result: MemberAddResult = {
      ...(await provisionEtcd(cluster, {
        ...opts,
        hosts: [host.name],
        initial: { cluster: initialCluster, state: 'existing', ...(learner ? { learner } : {}) },
        skipMembershipCheck: true,
      })),
      memberId: added?.id ?? '(not added: dry run)',
    };
    const failed = result.runs.some((r) => r.status === 'failed' || r.status === 'cancelled');
    const ours = added && !current.some((m) => m.id === added?.id) ? added : undefined;
    if (failed && ours) {
      // We added it and it could not start: take it out again so the quorum is what it was.
      await client.cluster.memberRemove({ ID: memberIdFromHex(ours.id) }).then(
        () =>
          opts.onLine?.(
            host.name,
            `member remove ${ours.id}: rolled back, the host could not be provisioned`,
          ),
        (err: unknown) =>
          opts.onLine?.(
            host.name,
            `could not roll back member ${ours.id} (${errorMessage(err)}): remove it with \`k3s-etcd member remove ${host.name}\``,
          ),
      );
    }
    if (!failed && learner && added) {
      if (added.isLearner) {
        await promoteLearner(client, added.id, opts.signal ? { signal: opts.signal } : {});
        opts.onLine?.(host.name, `member promote ${added.id}: a voter now (it had caught up)`);
        result.promoted = true;
      }
      const health = await waitHealthy(cluster, selectHosts(cluster), 60_000, opts.signal);
      result.healthy = health.ok;
      result.healthSummary = health.summary;
    }
    return result;
  } finally {
    client.close();
  }
}

export interface MemberRemoveOptions extends RunHooks {
  ssh: SshContext;
  dryRun: boolean;
  /** Also delete the data dir (the caller confirmed it naming the path). */
  purgeData?: boolean;
  /**
   * A host that does not answer over SSH is said, not an error (a dead host being replaced
   * elsewhere): the member is out of the list either way, and its data stays as it was.
   */
  unreachableOk?: boolean;
}

/**
 * `member remove --purge-data` on the host: the data dir is deleted only when it is a folder (not
 * a link) whose marker names this cluster; anything else is left as it is, and said.
 */
export function purgeCommand(cluster: Cluster, data: string): string {
  const d = shellQuote(data);
  return (
    `if [ ! -e ${d} ] && [ ! -L ${d} ]; then true; ` +
    `elif [ ! -L ${d} ] && [ -d ${d} ] && ${markerMatches(data, cluster)}; then rm -rf ${d}; ` +
    `else echo ${shellQuote(`${data} was not deleted: it is not a folder whose ${MARKER} names cluster ${cluster.name}`)} >&2; exit 3; fi`
  );
}

export async function removeMember(
  cluster: Cluster,
  name: string,
  opts: MemberRemoveOptions,
): Promise<{ memberId?: string; lines: string[] }> {
  // Before anything: the data dir is moved aside, or deleted with purgeData.
  const data = checkDataDir(cluster);
  const host = cluster.hosts.find((h) => h.name === name || h.memberName === name);
  if (!host)
    throw new K3sEtcdError('usage', `No host or member "${name}" in cluster ${cluster.name}.`);
  const lines: string[] = [];
  const say = (l: string) => {
    lines.push(l);
    opts.onLine?.(host.name, l);
  };
  const { client } = await healthyClient(cluster, { except: host.name });
  let memberId: string | undefined;
  try {
    const members = (await client.cluster.memberList({})).members.map(toMember);
    const url = peerUrl(cluster, host);
    const member = members.find((m) => m.name === host.memberName || m.peerUrls.includes(url));
    if (member) {
      memberId = member.id;
      const conn = await connectionFor(cluster);
      const snap = await clusterSnapshot(
        members.flatMap((m) => m.clientUrls.slice(0, 1)),
        { tls: conn.tls, timeoutMs: 3000 },
      );
      const voters = members.filter((m) => !m.isLearner);
      const healthyUrls = new Set(snap.health.filter((h) => h.health).map((h) => h.endpoint));
      const healthyVoters = voters.filter((m) =>
        m.clientUrls.some((u) => healthyUrls.has(u)),
      ).length;
      const q = quorumAfterRemoval(
        voters.length,
        healthyVoters,
        member.clientUrls.some((u) => healthyUrls.has(u)),
      );
      if (!q.ok) {
        throw new K3sEtcdError(
          'provision-refused',
          `Removing ${host.memberName} (${member.id}) is refused: ${q.why}. Bring the other members back first, or add a member before removing this one.`,
        );
      }
      if (opts.dryRun) say(`would run member remove ${member.id} (${q.why})`);
      else {
        await retryUnhealthy(
          () => client.cluster.memberRemove({ ID: memberIdFromHex(member.id) }),
          opts.signal,
        );
        say(`member remove ${member.id}: done (${q.why})`);
      }
    } else {
      say(`${host.memberName} is not in the member list: only the host's unit is stopped`);
    }
  } finally {
    client.close();
  }
  const commands = [
    'systemctl disable --now etcd 2>/dev/null || true',
    ...(opts.purgeData
      ? [purgeCommand(cluster, data)]
      : [
          `[ ! -d ${shellQuote(data)} ] || mv ${shellQuote(data)} ${shellQuote(data)}.removed-$(date -u +%Y%m%dT%H%M%SZ)`,
        ]),
  ];
  if (opts.dryRun) {
    for (const c of commands) say(`would run on ${host.name}: ${c}`);
    return { ...(memberId ? { memberId } : {}), lines };
  }
  let t: Awaited<ReturnType<ReturnType<typeof sshOpener>>>;
  try {
    t = await sshOpener(cluster, host, opts.ssh)(opts.signal);
  } catch (err) {
    if (!opts.unreachableOk) throw err;
    say(
      `${host.name} does not answer over SSH (${errorMessage(err)}): its unit and data were left as they are. Never start etcd there again with that data: it would try to rejoin with its old member ID`,
    );
    return { ...(memberId ? { memberId } : {}), lines };
  }
  try {
    for (const c of commands) {
      const r = await t.exec(c, { sudo: true, ...(opts.signal ? { signal: opts.signal } : {}) });
      say(`${c}: ${r.code === 0 ? 'ok' : `exit ${r.code} ${r.stderr.trim()}`}`);
    }
  } finally {
    t.close();
  }
  if (!opts.purgeData)
    say(
      `data kept on ${host.name} under ${data}.removed-<time> (a removed member must not restart with its old data)`,
    );
  return { ...(memberId ? { memberId } : {}), lines };
}
