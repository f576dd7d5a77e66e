/**
 * The move from K3s's embedded etcd to the external one, planned: the refusals (pure, from the
 * inventory and what the preflight read) and the plan in words, in the order `run.ts` runs it.
 */
import { K3sEtcdError } from '../errors';
import { etcdMinor, restoreBumps } from '../etcd/snapshotFile';
import { humanBytes } from '../etcd/checks';
import { quorumOf } from '../etcd/quorum';
import { BACKUPS_DIR } from '../files/workspace';
import { k3sServers } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { tokenMatches } from '../k3sHost/token';
import { K3S_DB_DIR, K3S_CONFIG } from '../k3s/server';
import type { RestoreTool } from '../restore/plan';

/**
 * How far the restored revision moves past the snapshot's where the tool can (etcd's
 * `--bump-revision`): far beyond any write a client could have seen after the snapshot, so no
 * revision ever goes backwards, and older ones read as compacted (watchers relist).
 */
export const BUMP_REVISION = 1_000_000_000;

/** K3s's embedded etcd database on a server: what the move copies, with K3s stopped. */
export const K3S_ETCD_DB = `${K3S_DB_DIR}/etcd/member/snap/db`;

export interface SourceMember {
  host: string;
  address: string;
  /** etcd's member name (K3s's `<hostname>-<8 hex>`). */
  member: string;
  id: string;
  version: string;
  revision: string;
  dbSize: number;
  leader: boolean;
}

export interface TargetFacts {
  endpoints: string[];
  /** Member hosts, in the inventory's order. */
  hosts: string[];
  healthy: boolean;
  summary: string;
  version: string;
  registryKeys: number;
  bootstrapKeys: number;
}

export interface MovePlan {
  source: string;
  target: string;
  /** The source's members, the leader last. */
  members: SourceMember[];
  leader: SourceMember;
  /** Hosts whose K3s stops first (every source server but the leader's), in order. */
  followers: string[];
  /** The K3s servers re-pointed, one at a time, the leader's host first. */
  servers: string[];
  targetFacts: TargetFacts;
  /** The restore tool the target's version implies (the host's own decides at the restore). */
  tool: RestoreTool;
  bumpRevision?: number;
  /** Where the K3s token came from (the token itself is never in the plan). */
  token: 'from-server' | 'stored';
  /** UTC time naming the kept data. */
  stamp: string;
  /** The move in words, in the order it runs. */
  steps: string[];
  /** What is true whatever happens (the way back). */
  notes: string[];
}

/**
 * The inventory's shape, before any host is read: the source runs K3s's embedded etcd, the target
 * is an external etcd with members, and every K3s server of the source is one of the target's at
 * the same address (a server left out would stay on the old etcd: two datastores, split brain).
 */
export function checkMoveShape(source: Cluster, target: Cluster): void {
  if (source.name === target.name)
    throw new K3sEtcdError(
      'usage',
      `--from names the target cluster itself (${source.name}): give the cluster that runs K3s's embedded etcd with --from, and the external etcd with --cluster.`,
    );
  if (source.datastore !== 'k3s-embedded-etcd')
    throw new K3sEtcdError(
      'migrate-source',
      `Cluster ${source.name} is not K3s's embedded etcd (its datastore is ${source.datastore}): --from names the cluster whose K3s servers run with cluster-init, datastore: k3s-embedded-etcd in k3s-etcd.yaml. Nothing was changed.`,
    );
  if (target.datastore !== 'external-etcd')
    throw new K3sEtcdError(
      'migrate-target',
      `Cluster ${target.name} is not an external etcd (its datastore is ${target.datastore}): the target is the etcd k3s-etcd provisions (datastore: external-etcd). Nothing was changed.`,
    );
  const servers = k3sServers(source);
  if (servers.length === 0)
    throw new K3sEtcdError(
      'migrate-source',
      `Cluster ${source.name} has no host with the role k3s-server: its K3s servers are the hosts to move (roles etcd and k3s-server). Nothing was changed.`,
    );
  const theirs = k3sServers(target);
  const missing = servers.filter(
    (s) => !theirs.some((t) => t.name === s.name && t.address === s.address),
  );
  if (missing.length > 0)
    throw new K3sEtcdError(
      'migrate-target',
      `K3s server${missing.length > 1 ? 's' : ''} ${missing.map((h) => `${h.name} (${h.address})`).join(', ')} of ${source.name} ${missing.length > 1 ? 'are' : 'is'} not a k3s-server of ${target.name} at the same address: ${missing.length > 1 ? 'they' : 'it'} would stay on the old embedded etcd while the others use the new one (two datastores: split brain). Add ${missing.length > 1 ? 'them' : 'it'} to ${target.name}'s hosts with the role k3s-server first. Nothing was changed.`,
    );
}

/** The target must be healthy and hold none of K3s's keys: a live datastore is never overwritten. */
export function checkTarget(target: string, t: TargetFacts): void {
  if (!t.healthy)
    throw new K3sEtcdError(
      'migrate-target',
      `${target} is not healthy (${t.summary}): the restore replaces every member's data and needs each one. Bring it to health first (k3s-etcd health). Nothing was changed.`,
    );
  if (t.registryKeys + t.bootstrapKeys > 0)
    throw new K3sEtcdError(
      'migrate-target',
      `${target} already holds K3s data (${t.registryKeys} /registry/ key(s), ${t.bootstrapKeys} /bootstrap/ key(s)): a live datastore is never overwritten. Use an etcd that holds none (provision a new one, or restore an empty one). Nothing was changed.`,
    );
}

/**
 * The token K3s seals /bootstrap with: the source servers' own (the one that sealed it) or, when
 * no server has its token file, the one stored for the target or the source. A stored token that
 * differs from the servers' is refused: K3s on the new datastore could not decrypt its data.
 */
export function chooseToken(
  target: string,
  found: { server?: string; storedTarget?: string; storedSource?: string },
): { token: string; source: 'from-server' | 'stored' } {
  if (found.server) {
    if (found.storedTarget && !tokenMatches(found.storedTarget, found.server))
      throw new K3sEtcdError(
        'migrate-token',
        `The K3s token stored for ${target} is not the one the K3s servers hold (${'/var/lib/rancher/k3s/server/token'}), which sealed their /bootstrap data: K3s on the new datastore could not read it. Remove the stored token of ${target} (the servers' is used then). Nothing was changed.`,
      );
    return { token: found.server, source: 'from-server' };
  }
  const stored = found.storedTarget ?? found.storedSource;
  if (stored) return { token: stored, source: 'stored' };
  throw new K3sEtcdError(
    'migrate-token',
    `No K3s token found: no source server has /var/lib/rancher/k3s/server/token and none is stored for ${target}. K3s must start on the new datastore with the token that sealed its /bootstrap data. Nothing was changed.`,
  );
}

/** The leader last (it stops last), followers in inventory order before it. */
export function orderMembers(members: SourceMember[]): SourceMember[] {
  return [...members.filter((m) => !m.leader), ...members.filter((m) => m.leader)];
}

/** The plan from what the preflight read. Pure. */
export function planMove(input: {
  source: Cluster;
  target: Cluster;
  members: SourceMember[];
  targetFacts: TargetFacts;
  token: 'from-server' | 'stored';
  stamp: string;
}): MovePlan {
  const { source, target, targetFacts: tf } = input;
  const members = orderMembers(input.members);
  const leaders = members.filter((m) => m.leader);
  if (leaders.length !== 1)
    throw new K3sEtcdError(
      'migrate-source',
      `${source.name}'s etcd has ${leaders.length === 0 ? 'no leader' : 'several leaders'} (${members.map((m) => `${m.host}: ${m.id}`).join(', ')}): the move needs a healthy source. Nothing was changed.`,
    );
  const leader = leaders[0] as SourceMember;
  const followers = members.filter((m) => !m.leader).map((m) => m.host);
  const servers = [leader.host, ...followers];
  const tool: RestoreTool = etcdMinor(tf.version) >= 5 ? 'etcdutl' : 'etcdctl';
  const bump = restoreBumps(tf.version, tool) ? BUMP_REVISION : undefined;
  const n = members.length;
  const majority = quorumOf(n);
  const freeze =
    n === 1
      ? `${leader.host} is the only K3s server: nothing to stop before it (its etcd runs inside K3s's process and stops with it in step 2, before anything is read)`
      : `stop K3s on ${followers.join(', ')} (followers first, each stop checked): with ${n} members, quorum is lost once ${n - majority + 1} are down, so nothing can commit any more and ${leader.host}'s state (member ${leader.member}) is final`;
  const restoreTool = bump
    ? `${tool} with --bump-revision ${bump} --mark-compacted (the revision moves past anything a client saw; older revisions read as compacted, so watchers relist)`
    : `${tool} (etcd ${tf.version}'s ${tool} has no --bump-revision: the revisions stay as the snapshot holds them)`;
  const steps = [
    freeze,
    `stop K3s on ${leader.host} (its etcd stops with it): from here no K3s server runs, nothing can write, and ${leader.host}'s etcd data is the state K3s last wrote`,
    `snapshot: ${leader.host}'s etcd database ${K3S_ETCD_DB} (revision ${leader.revision} and ${humanBytes(leader.dbSize)} now, more if K3s writes before it stops), copied as it lies with K3s stopped, over SSH, its size and SHA-256 checked against the host's, into ${BACKUPS_DIR}/${source.name}/<UTC time>.db (0600, git-ignored: it holds every Secret) with its record; then the digest of its keys (key count, SHA-256 over key and value), read from the copy at the revision etcd serves on it`,
    `restore the snapshot into ${target.name}'s members (${tf.hosts.join(', ')}) with the restore operation (every member stopped, restored, its old data dir kept aside, started): ${restoreTool}, with --skip-hash-check (a copied database has no snapshot hash; its SHA-256 is checked instead)`,
    `verify: ${target.name}'s keys (count, SHA-256 over key and value) must equal the snapshot's, the state K3s left at its stop; otherwise the move stops here, K3s stays stopped on its old data (untouched), and sudo systemctl start k3s on each server goes back`,
    `re-point the K3s servers one at a time, ${leader.host} first (${servers.join(', ')}): ${K3S_DB_DIR}/etcd moved aside to ${K3S_DB_DIR}/etcd.before-external-${input.stamp} (kept, never deleted), ${K3S_CONFIG} written without cluster-init and with datastore-endpoint ${tf.endpoints.join(',')} and its CA, certificate and key, --cluster-init out of k3s.service, K3s restarted, node Ready; the first failure stops with the server named`,
  ];
  const notes = [
    `Until step 6 nothing of K3s's is changed: starting K3s again (sudo systemctl start k3s on ${servers.join(', ')}) goes back to the embedded etcd.`,
    `After step 6 the way back is K3s's own restore (k3s server --cluster-reset --cluster-reset-restore-path=SNAPSHOT): see docs/datastore-moves.md.`,
    `The K3s token: ${input.token === 'from-server' ? "the servers' own (/var/lib/rancher/k3s/server/token)" : `the one stored for ${target.name}`}; it seals the /bootstrap data and is written into config.yaml.`,
  ];
  return {
    source: source.name,
    target: target.name,
    members,
    leader,
    followers,
    servers,
    targetFacts: tf,
    tool,
    ...(bump ? { bumpRevision: bump } : {}),
    token: input.token,
    stamp: input.stamp,
    steps,
    notes,
  };
}

/** The plan as text (the dry run and the confirmation show it). */
export function movePlanText(p: MovePlan): string[] {
  return [
    `Move K3s from ${p.source}'s embedded etcd to the external etcd ${p.target}`,
    '',
    `Source: ${p.members.length} member(s), leader ${p.leader.host} (${p.leader.member}), etcd ${p.leader.version}, revision ${p.leader.revision}, database ${humanBytes(p.leader.dbSize)}`,
    ...p.members.map(
      (m) => `  ${m.host} (${m.address}): member ${m.member} ${m.id}${m.leader ? ', leader' : ''}`,
    ),
    `Target: ${p.targetFacts.summary}, etcd ${p.targetFacts.version}, no /registry/ or /bootstrap/ key; restores with ${p.tool}${p.bumpRevision ? ` --bump-revision ${p.bumpRevision} --mark-compacted` : ' (revisions kept as the snapshot has them)'}`,
    '',
    ...p.steps.map((s, i) => `  ${i + 1}. ${s}`),
    '',
    ...p.notes,
  ];
}

export function moveQuestion(p: MovePlan): string {
  return `Stop K3s on ${p.servers.join(', ')}, move its data from ${p.source}'s embedded etcd into ${p.target}, and re-point the servers there?`;
}
