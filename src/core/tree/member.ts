/**
 * An etcd member's row: the label leads with what matters (role and health, "etcd · leader ·
 * healthy"), the description carries the rest (broken rules first, then size, version, raft and
 * the address) and the tooltip everything, so nothing important is cut off at the sidebar's
 * default width.
 */
import type { Cluster, Host } from '../inventory/types';
import { clientUrl, peerUrl } from '../inventory/select';
import { UNIT_FILE } from '../etcd/memberHost';
import { humanBytes, type ClusterSnapshot, type HealthRow, type StatusRow } from '../etcd/checks';
import { marks, worst, type ClusterMetrics, type Level } from '../../shared/metricsTypes';

/** What the last refresh said about one member. */
export interface MemberLive {
  healthy: boolean;
  leader: boolean;
  learner: boolean;
  alarms: string[];
  /** Why it is unhealthy, in words. */
  problem?: string;
  health: HealthRow;
  status?: StatusRow;
}

/** The etcd-specific part of a role row. */
export interface MemberRow {
  label: string;
  description: string;
  tooltip: string;
  member: { name: string; clientUrl: string; peerUrl: string };
  live?: MemberLive;
  /** Nothing answers and the cluster was never seen answering: not set up yet (neutral). */
  notProvisioned?: true;
  /** The member's metrics break etcd's guidance (the tree shows a warning). */
  metrics?: { level: Exclude<Level, 'ok' | 'unjudged'>; findings: string[] };
}

/** Before any refresh, or without certificates: the member as the inventory writes it. */
export const STATIC_MEMBER_LABEL = 'etcd member';

export function liveOf(snapshot: ClusterSnapshot | undefined, url: string): MemberLive | undefined {
  const health = snapshot?.health.find((h) => h.endpoint === url);
  if (!health) return undefined;
  const status = snapshot?.status.find((st) => st.endpoint === url && !st.problem);
  const live: MemberLive = {
    healthy: health.health,
    leader: status?.isLeader ?? false,
    learner: status?.isLearner ?? false,
    alarms: health.alarms,
    health,
    ...(status ? { status } : {}),
  };
  if (health.problem) live.problem = health.problem.summary;
  return live;
}

/** "etcd · leader · healthy", "etcd · follower · unhealthy", "etcd · unhealthy" (no status). */
export function liveLabel(live: MemberLive): string {
  const role = live.status ? (live.leader ? 'leader' : live.learner ? 'learner' : 'follower') : '';
  return ['etcd', role, live.healthy ? 'healthy' : 'unhealthy'].filter(Boolean).join(' · ');
}

/** The words of an armed NOSPACE alarm, leading a member's and the cluster's description. */
export const NOSPACE_WORDS = 'NOSPACE: database full, writes refused';

function liveDescription(live: MemberLive, address: string): string {
  if (live.alarms.includes('NOSPACE')) return `${NOSPACE_WORDS} · ${address}`;
  if (!live.healthy) return live.problem ?? 'no answer';
  const st = live.status;
  const parts = st
    ? [
        `${humanBytes(st.dbSize)}${st.dbSizeInUse ? ` (in use ${humanBytes(st.dbSizeInUse)})` : ''}`,
        `v${st.version}`,
        `raft ${st.raftTerm}/${st.raftIndex}`,
      ]
    : [];
  return [...parts, address].join(' · ');
}

function liveTooltip(member: string, url: string, live: MemberLive): string {
  const st = live.status;
  const lines = [
    `etcd member "${member}" at ${url}`,
    `health: ${live.healthy ? 'healthy' : `UNHEALTHY (${live.problem ?? 'no answer'})`}, took ${live.health.tookMs.toFixed(1)} ms`,
  ];
  if (live.health.problem) lines.push(`what to do: ${live.health.problem.hint}`);
  if (st) {
    lines.push(
      `ID ${st.id}${live.leader ? ' (leader)' : ''}${live.learner ? ' (learner)' : ''}`,
      `version ${st.version}`,
      `DB size ${humanBytes(st.dbSize)}, in use ${humanBytes(st.dbSizeInUse)}`,
      `raft term ${st.raftTerm}, index ${st.raftIndex}, applied ${st.raftAppliedIndex}`,
    );
    if (st.errors.length) lines.push(`errors: ${st.errors.join(', ')}`);
  }
  if (live.alarms.length) lines.push(`alarms: ${live.alarms.join(', ')}`);
  if (live.alarms.includes('NOSPACE'))
    lines.push(
      'NOSPACE: the database reached its quota and etcd refuses writes. Maintain etcd… on the cluster rescues it (compaction, defragmentation member by member, disarm).',
    );
  return lines.join('\n');
}

function notProvisionedTooltip(
  member: string,
  url: string,
  live: MemberLive,
  unitAbsent: boolean,
): string {
  return [
    `etcd member "${member}" at ${url}: not provisioned yet`,
    unitAbsent
      ? `${live.problem ?? 'no answer'}, and no member host has etcd's unit (${UNIT_FILE}).`
      : `${live.problem ?? 'no answer'}, and this workspace has never seen the cluster answer (not confirmed on the hosts: see the cluster's tooltip).`,
    'Provision etcd (on the cluster or this host) installs and starts it; Preview Provisioning Plan shows what that would do.',
  ].join('\n');
}

/**
 * The row of `host`'s etcd member. `notProvisioned`: the cluster looks not set up yet (see
 * provisioned.ts), so a refused member is neutral rather than unhealthy; `unitAbsent` when every
 * member host was read without etcd's unit (a fact, not only what this workspace saw).
 */
export function etcdMemberRow(
  cluster: Cluster,
  host: Host,
  snapshot: ClusterSnapshot | undefined,
  metrics: ClusterMetrics | undefined,
  notProvisioned: false | { unitAbsent: boolean },
): MemberRow {
  const member = {
    name: host.memberName,
    clientUrl: clientUrl(cluster, host),
    peerUrl: peerUrl(cluster, host),
  };
  const address =
    host.memberName === host.name ? member.clientUrl : `${host.memberName} · ${member.clientUrl}`;
  const row: MemberRow = {
    label: STATIC_MEMBER_LABEL,
    description: address,
    tooltip: `etcd member "${host.memberName}"\nclient ${member.clientUrl}\npeer ${member.peerUrl}`,
    member,
  };
  const live = liveOf(snapshot, member.clientUrl);
  if (live && notProvisioned && !live.healthy) {
    return {
      ...row,
      label: 'etcd · not provisioned yet',
      tooltip: notProvisionedTooltip(
        host.memberName,
        member.clientUrl,
        live,
        notProvisioned.unitAbsent,
      ),
      notProvisioned: true,
    };
  }
  if (live) {
    row.live = live;
    row.label = liveLabel(live);
    row.description = liveDescription(live, address);
    row.tooltip = liveTooltip(host.memberName, member.clientUrl, live);
  }
  // Broken rules first, then warnings; every one is in the description (the accessible name).
  const broken = (
    metrics?.members
      .find((m) => m.member === host.memberName)
      ?.findings.filter((f) => marks(f.level)) ?? []
  ).sort((a, b) => (a.level === b.level ? 0 : a.level === 'bad' ? -1 : 1));
  const level = worst(broken.map((f) => f.level));
  if (marks(level)) {
    row.metrics = { level, findings: broken.map((f) => f.message) };
    row.description = `${broken.map((f) => f.message).join(' · ')} · ${row.description}`;
    row.tooltip = `${row.tooltip}\nmetrics (etcd's guidance):\n${broken.map((f) => `  ${f.level === 'bad' ? 'BROKEN' : 'warning'}: ${f.message}`).join('\n')}`;
  }
  return row;
}
