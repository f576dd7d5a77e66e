/**
 * "Not provisioned yet": a cluster whose members all refuse (or never answer) and that has no
 * member host with etcd's unit is a cluster still to be set up, not a cluster down. The front end
 * remembers what it saw (a member answering, a provisioning run that ended well, etcd's unit on a
 * host or on none) per cluster and its client URLs, and hands it in as `ClusterHistory`; nothing
 * here connects (unitLook.ts asks the hosts, when the person acts). Once a cluster has answered,
 * or a host was seen with the unit (provisioned from elsewhere: the CLI, another machine), all of
 * its members refusing is a cluster down (red). Until the hosts were read, "not provisioned" is
 * what this workspace knows, not a fact, and the words say so.
 */
import type { Cluster } from '../inventory/types';
import { clientEndpoints } from '../inventory/select';
import { UNIT_FILE } from '../etcd/memberHost';
import { localStamp } from '../format/stamp';
import type { ClusterSnapshot, EtcdProblemCode } from '../../shared/etcdTypes';

/** A look for etcd's unit on the member hosts that found it on none of those it could read. */
export interface UnitLook {
  /** When (ISO 8601). */
  at: string;
  /** The hosts that could not be read, and why; empty: every host was read. */
  unread: Array<{ host: string; why: string }>;
}

/** What the front end has seen of a cluster at its current client URLs. */
export interface ClusterHistory {
  /** A member answered (healthy or not) at some refresh. */
  answered?: boolean;
  /** A provisioning run (or its dry run: "nothing to change") ended well. */
  provisioned?: boolean;
  /** A member host had etcd's unit: set up, from here or elsewhere, whatever answers now. */
  unitSeen?: boolean;
  /** The last look for the unit, which found it on no host it could read. */
  unitLook?: UnitLook;
}

/**
 * The key a cluster's history is kept under: its name and its members' client URLs, so a cluster
 * moved to other addresses (other hosts) starts without a history.
 */
export function historyKey(cluster: Cluster): string {
  return [cluster.name, ...clientEndpoints(cluster).sort()].join(' ');
}

/** What nothing running there says: no listener (refused) or no answer at all (timeout). */
const NOTHING_THERE: ReadonlySet<EtcdProblemCode> = new Set(['refused', 'timeout']);

/** Some member answered: healthy, an etcd error, a TLS handshake; anything but silence. */
export function snapshotAnswered(snapshot: ClusterSnapshot): boolean {
  return (
    snapshot.health.some((h) => h.health || (h.problem && !NOTHING_THERE.has(h.problem.code))) ||
    snapshot.status.some((s) => !s.problem)
  );
}

/** `snapshot` was taken of `cluster` as the inventory has it now, and some member answered. */
export function seenAnswering(cluster: Cluster, snapshot: ClusterSnapshot): boolean {
  const urls = clientEndpoints(cluster).sort();
  const asked = [...snapshot.endpoints].sort();
  return (
    urls.length === asked.length &&
    urls.every((u, i) => u === asked[i]) &&
    snapshotAnswered(snapshot)
  );
}

/**
 * Every member refused or did not answer, the cluster has never answered nor been provisioned by
 * a run here, and no member host was seen with etcd's unit: not provisioned yet (neutral), rather
 * than down (red).
 */
export function looksUnprovisioned(
  snapshot: ClusterSnapshot,
  history: ClusterHistory | undefined,
): boolean {
  if (history?.answered || history?.provisioned || history?.unitSeen) return false;
  return snapshot.health.length > 0 && !snapshotAnswered(snapshot);
}

/** Every member host was read and none has etcd's unit: "not provisioned yet" is a fact. */
export function unitAbsentEverywhere(history: ClusterHistory | undefined): boolean {
  return !!history?.unitLook && history.unitLook.unread.length === 0;
}

/**
 * What the hosts said of etcd's unit, in one sentence for a tooltip or the health panel: none
 * has it, or why that is not known (not looked yet, or hosts that could not be read).
 */
export function unitLookWords(
  history: ClusterHistory | undefined,
  stamp: (iso: string) => string = localStamp,
): string {
  const look = history?.unitLook;
  const elsewhere = 'if etcd was provisioned from elsewhere, every member is down';
  if (!look)
    return `Not confirmed on the hosts: they were not checked for etcd's unit (${UNIT_FILE}) yet (Refresh or Open etcd Health checks them); ${elsewhere}.`;
  if (look.unread.length === 0)
    return `No member host has etcd's unit (${UNIT_FILE}), checked ${stamp(look.at)}.`;
  // Hosts that failed alike are named together: "edge-1, edge-2 (SSH refused the connection)".
  const byWhy = new Map<string, string[]>();
  for (const u of look.unread) byWhy.set(u.why, [...(byWhy.get(u.why) ?? []), u.host]);
  const unread = [...byWhy].map(([why, hosts]) => `${hosts.join(', ')} (${why})`).join('; ');
  return `Not confirmed on the hosts: at ${stamp(look.at)} etcd's unit (${UNIT_FILE}) could not be looked for on ${unread}; ${elsewhere}.`;
}
