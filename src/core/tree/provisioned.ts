/**
 * "Not provisioned yet": a cluster whose members all refuse (or never answer) and that nobody has
 * seen answer is a cluster still to be set up, not a cluster down. The front end remembers what it
 * saw (a member answering, a provisioning run that ended well) per cluster and its client URLs,
 * and hands it in as `ClusterHistory`; nothing here connects, and nothing asks a host over SSH.
 * Once a cluster has answered, all of its members refusing is a cluster down again (red).
 */
import type { Cluster } from '../inventory/types';
import { clientEndpoints } from '../inventory/select';
import type { ClusterSnapshot, EtcdProblemCode } from '../../shared/etcdTypes';

/** What the front end has seen of a cluster at its current client URLs. */
export interface ClusterHistory {
  /** A member answered (healthy or not) at some refresh. */
  answered?: boolean;
  /** A provisioning run (or its dry run: "nothing to change") ended well. */
  provisioned?: boolean;
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
 * Every member refused or did not answer, and the cluster has never answered nor been
 * provisioned by a run here: not provisioned yet (neutral), rather than down (red).
 */
export function looksUnprovisioned(
  snapshot: ClusterSnapshot,
  history: ClusterHistory | undefined,
): boolean {
  if (history?.answered || history?.provisioned) return false;
  return snapshot.health.length > 0 && !snapshotAnswered(snapshot);
}
