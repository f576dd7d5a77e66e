/**
 * The recovery from quorum loss, planned from what was detected (pure: reads no host), in the
 * order it runs, as etcd's disaster-recovery guide and K3s's --cluster-reset do it for a member
 * under systemd:
 *
 * 1. a snapshot of the survivor's data into the workspace (backups/<cluster>/, with its record,
 *    as `snapshot save`): etcd serves the Snapshot RPC from the member itself without quorum; a
 *    survivor that is down is copied on its host instead (`<dataDir>.recover-<time>`);
 * 2. on every other member host: etcd stopped, its data dir moved aside to
 *    `<dataDir>.recover-<time>` (kept, never deleted);
 * 3. on the survivor: etcd stopped, started once with ETCD_FORCE_NEW_CLUSTER=true from a drop-in
 *    under /run (gone at the next boot even if this run stops half-way), the drop-in removed
 *    once it answers, its env file's ETCD_INITIAL_* lines made to name itself alone, and etcd
 *    restarted normally: later restarts never force a new cluster again;
 * 4. the others re-added one at a time as learners (provisioned with `existing` state), each
 *    promoted once caught up (provision/members.ts `addMember`);
 * 5. every member healthy; the K3s servers to restart named.
 *
 * Host scripts: `hostPlans.ts`; the run: `run.ts`.
 */
import { K3sEtcdError } from '../errors';
import { ENV_FILE } from '../etcd/memberHost';
import { backupStamp } from '../format/stamp';
import { etcdHosts, k3sServers, peerUrl } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { BACKUPS_DIR } from '../files/workspace';
import { chooseSurvivor, progressWords, type Detection, type MemberSeen } from './choose';
import { detectionLines } from './detect';

/** The one-shot drop-in that starts the survivor with --force-new-cluster (volatile: /run). */
export const FORCE_DROP_IN = '/run/systemd/system/etcd.service.d/k3s-etcd-force-new-cluster.conf';

export type OtherFate = 'moved-aside' | 'no-data' | 'unreachable';

export interface RecoverOther {
  host: string;
  member: string;
  peerUrl: string;
  fate: OtherFate;
  /** Where its data dir goes (moved-aside). */
  keptAs?: string;
  /** What becomes of its data and of it, in words. */
  words: string;
}

export interface RecoverPlan {
  cluster: string;
  /** UTC time naming the kept data dirs. */
  stamp: string;
  dataDir: string;
  detection: Detection;
  survivor: {
    host: string;
    member: string;
    endpoint: string;
    peerUrl: string;
    /** It answers `endpoint status` (a snapshot is streamed from it). */
    answers: boolean;
    raftIndex?: string;
    raftTerm?: string;
    revision: string;
    why: string;
    /** A survivor that is down: its data dir copied here on its host before anything. */
    copyAs?: string;
  };
  others: RecoverOther[];
  /** Where the workspace snapshot goes (answering survivor). */
  snapshotDir?: string;
  steps: string[];
  k3sServers: string[];
}

/**
 * The recovery of `cluster` from `detection`: refused (`recover-refused`) when the cluster still
 * has quorum, or when no member (or not the one asked for) can be the survivor.
 */
export function planRecover(
  cluster: Cluster,
  detection: Detection,
  opts: { member?: string; now?: Date } = {},
): RecoverPlan {
  if (cluster.datastore !== 'external-etcd')
    throw new K3sEtcdError(
      'recover-refused',
      `Cluster ${cluster.name} runs K3s's embedded etcd: K3s recovers it itself (k3s server --cluster-reset on the server with the most recent data). This recovery is for an external etcd provisioned by k3s-etcd.`,
    );
  if (detection.quorum.ok)
    throw new K3sEtcdError(
      'recover-refused',
      `Nothing to recover: cluster ${cluster.name} still has quorum (${detection.quorum.why}). A failed member is replaced with \`k3s-etcd member replace MEMBER\` ("Replace Member…"), which keeps the cluster running; recovery stops every member.`,
    );
  const { survivor: s, why } = chooseSurvivor(detection.members, opts.member);
  const stamp = backupStamp(opts.now ?? new Date());
  const data = cluster.etcd.dataDir;
  const keptAs = `${data}.recover-${stamp}`;
  const hosts = etcdHosts(cluster);
  const hostOf = (m: MemberSeen) => hosts.find((h) => h.name === m.host);
  const sh = hostOf(s);
  if (!sh)
    throw new K3sEtcdError('recover-refused', `${s.host} is not an etcd host of ${cluster.name}.`);
  const others = detection.members
    .filter((m) => m !== s)
    .map((m): RecoverOther => {
      const h = hostOf(m);
      const url = h ? peerUrl(cluster, h) : '';
      if (m.sshProblem || !m.onHost)
        return {
          host: m.host,
          member: m.member,
          peerUrl: url,
          fate: 'unreachable',
          words: `${m.host}: unreachable over SSH (${m.sshProblem ?? 'not read'}): left as it is and not re-added; once it is back, move its data dir aside and run \`k3s-etcd member add ${m.host}\` (its old data must never start again: the recovered cluster no longer knows it)`,
        };
      if (!m.onHost.hasData)
        return {
          host: m.host,
          member: m.member,
          peerUrl: url,
          fate: 'no-data',
          words: `${m.host}: has no data dir (nothing to keep); etcd stopped there, then it rejoins as a learner and is promoted once caught up`,
        };
      return {
        host: m.host,
        member: m.member,
        peerUrl: url,
        fate: 'moved-aside',
        keptAs,
        words: `${m.host}: its data (${progressWords(m)}) is moved aside to ${keptAs} (kept, never deleted); it rejoins with an empty data dir as a learner and is promoted once caught up`,
      };
    });
  const rejoin = others.filter((o) => o.fate !== 'unreachable');
  const snapshotDir = `${BACKUPS_DIR}/${cluster.name}/`;
  const servers = k3sServers(cluster).map((h) => h.name);
  const revision = s.status?.revision ?? s.onHost?.dbRevision ?? '';
  const copyAs = s.status ? undefined : `${data}.recover-${stamp}`;
  const steps = [
    s.status
      ? `save a snapshot of ${s.host}'s data into ${snapshotDir} (streamed from ${s.host} alone: etcd serves it without quorum; revision ${revision}), with its record, before anything changes`
      : `${s.host} is down: copy its data dir ${data} to ${copyAs} on ${s.host} (kept) before anything changes`,
    ...(rejoin.length > 0
      ? [
          `stop etcd on ${rejoin.map((o) => o.host).join(', ')} and move each data dir aside to ${keptAs} (kept, never deleted)`,
        ]
      : []),
    `stop etcd on ${s.host}, start it once with --force-new-cluster (ETCD_FORCE_NEW_CLUSTER=true in ${FORCE_DROP_IN}, removed as soon as it answers): it becomes a cluster of one member with all its data`,
    `in ${ENV_FILE} on ${s.host} (old copy kept beside it): ETCD_INITIAL_CLUSTER=${s.member}=${peerUrl(cluster, sh)}, ETCD_INITIAL_CLUSTER_STATE=existing; restart etcd normally and wait until it is healthy`,
    ...rejoin.map(
      (o, i) =>
        `re-add ${o.host} (${i + 1}/${rejoin.length}): member add --learner ${o.peerUrl}, provision it joining as existing, promote it once caught up, wait until healthy`,
    ),
    `check that ${1 + rejoin.length} members answer healthy as one cluster; the inventory stays as it is (same hosts and addresses)`,
    ...(servers.length > 0
      ? [
          `then restart K3s on ${servers.join(', ')}, one server at a time, so it reconnects to the recovered etcd (its writes are all there: nothing is rolled back)`,
        ]
      : []),
  ];
  return {
    cluster: cluster.name,
    stamp,
    dataDir: data,
    detection,
    survivor: {
      host: s.host,
      member: s.member,
      endpoint: s.endpoint,
      peerUrl: peerUrl(cluster, sh),
      answers: s.status !== undefined,
      ...(s.status ? { raftIndex: s.status.raftIndex, raftTerm: s.status.raftTerm } : {}),
      revision,
      why,
      ...(copyAs ? { copyAs } : {}),
    },
    others,
    ...(s.status ? { snapshotDir } : {}),
    steps,
    k3sServers: servers,
  };
}

/** The survivor in a few words: its name and where its data is. */
export function survivorWords(plan: RecoverPlan): string {
  const s = plan.survivor;
  return s.raftIndex
    ? `${s.host} (member ${s.member}, raft index ${s.raftIndex}, term ${s.raftTerm}, revision ${s.revision})`
    : `${s.host} (member ${s.member}, down, its database at revision ${s.revision})`;
}

/** The recovery as text: what was seen, the survivor and why, the steps (previews and the CLI). */
export function recoverPlanText(plan: RecoverPlan): string[] {
  return [
    `Recover etcd cluster ${plan.cluster} from quorum loss (${plan.detection.quorum.why})`,
    '',
    'Members:',
    ...detectionLines(plan.detection).map((l) => `  ${l}`),
    '',
    `Survivor: ${survivorWords(plan)}: ${plan.survivor.why}.`,
    'The other members:',
    ...plan.others.map((o) => `  ${o.words}`),
    '',
    'Steps:',
    ...plan.steps.map((s, i) => `  ${i + 1}. ${s}`),
  ];
}

/** The confirmation's question (the modal's message, the CLI's prompt). */
export function recoverQuestion(plan: RecoverPlan): string {
  return `Recover etcd cluster ${plan.cluster} from ${plan.survivor.host} (raft index ${plan.survivor.raftIndex ?? 'unknown: down'})?`;
}

/** The confirmation's detail: the survivor with its raft index, and each other member's data. */
export function recoverConfirmDetail(plan: RecoverPlan): string {
  const s = plan.survivor;
  return [
    `Survivor: ${survivorWords(plan)}, ${s.why}.`,
    ...plan.others.map((o) => o.words),
    s.answers
      ? `A snapshot of ${s.host}'s data is saved in ${plan.snapshotDir ?? ''} first.`
      : `${s.host}'s data dir is copied to ${s.copyAs ?? ''} on it first.`,
    `Every member is stopped; ${s.host} starts once with --force-new-cluster, then normally. No write it holds is lost.${plan.k3sServers.length > 0 ? ` Then restart K3s on ${plan.k3sServers.join(', ')}, one at a time.` : ''}`,
  ].join('\n');
}
