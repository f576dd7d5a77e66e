/**
 * The rolling engine's view of a running cluster: the member table (health, status and the
 * member list over every member's client URL), and `move-leader`, which etcd only takes from
 * the leader itself (sent anywhere else it answers "not leader").
 */
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { createEndpointClient, memberIdFromHex, type EtcdTls } from '../etcd/client';
import { connectionFor } from '../etcd/connection';
import { oneLineReason } from '../etcd/members';
import type { Cluster } from '../inventory/types';
import { memberTable, type MemberRow } from './order';
import type { ClusterSnapshot } from '../../shared/etcdTypes';

/** A snapshot in which a member whose only problem is an alarm answers healthy. */
export function withAlarmsHealthy(snap: ClusterSnapshot): ClusterSnapshot {
  return {
    ...snap,
    health: snap.health.map((h) => {
      if (h.problem?.code !== 'alarm') return h;
      const { problem: _alarm, ...rest } = h;
      return { ...rest, health: true };
    }),
  };
}

/** What the engine asks of the cluster. */
export interface LiveCluster {
  /** The member table now. */
  probe(signal?: AbortSignal): Promise<MemberRow[]>;
  /** Hands the leadership from `leader` to `target`; resolves once another member leads. */
  moveLeader(leader: MemberRow, target: MemberRow, signal?: AbortSignal): Promise<void>;
}

/**
 * A live view through `endpoints` (the inventory's client URLs) and the client URLs the member
 * list names (a member the inventory does not list still counts as a voter).
 */
export function liveCluster(
  conn: { endpoints: string[]; tls?: EtcdTls },
  timeoutMs = 2000,
  /**
   * Count a member that answers but reports an alarm (NOSPACE) as healthy: maintenance that
   * clears the alarm must not be blocked by it.
   */
  alarmsHealthy = false,
): LiveCluster {
  let known: string[] = [];
  const probe = async (signal?: AbortSignal): Promise<MemberRow[]> => {
    const opts = {
      timeoutMs,
      ...(conn.tls ? { tls: conn.tls } : {}),
      ...(signal ? { signal } : {}),
    };
    let endpoints = [...new Set([...conn.endpoints, ...known])];
    let snap = await clusterSnapshot(endpoints, opts);
    known = snap.members.flatMap((m) => m.clientUrls.slice(0, 1));
    const missing = known.filter((u) => !endpoints.includes(u));
    if (missing.length > 0) {
      endpoints = [...endpoints, ...missing];
      snap = await clusterSnapshot(endpoints, opts);
    }
    return memberTable(alarmsHealthy ? withAlarmsHealthy(snap) : snap);
  };
  return {
    probe,
    async moveLeader(leader, target, signal) {
      if (!leader.endpoint)
        throw new K3sEtcdError(
          'etcd-unreachable',
          `the leader ${leader.name} has no client URL that answers`,
        );
      const c = await createEndpointClient(leader.endpoint, {
        ...(conn.tls ? { tls: conn.tls } : {}),
        timeoutMs: 10_000,
      });
      try {
        await c.maintenance.moveLeader({ targetID: memberIdFromHex(target.id) });
      } catch (err) {
        throw new K3sEtcdError(
          'etcd-unreachable',
          `move-leader from ${leader.name} to ${target.name} failed: ${errorMessage(err)}`,
          { cause: err },
        );
      } finally {
        c.close();
      }
      const until = Date.now() + 20_000;
      for (;;) {
        const table = await probe(signal);
        const now = table.find((r) => r.isLeader);
        if (now && now.id !== leader.id) return;
        if (Date.now() > until)
          throw new K3sEtcdError(
            'etcd-unreachable',
            `${leader.name} still leads 20 s after move-leader to ${target.name}`,
          );
        await new Promise((r) => setTimeout(r, 300));
      }
    },
  };
}

/**
 * `cluster`'s live member table for a rolling change, or why there is no running cluster to roll
 * (no member healthy, nothing answered, no connection).
 */
export async function probeLiveCluster(
  cluster: Cluster,
  signal?: AbortSignal,
): Promise<{ cluster: LiveCluster; table: MemberRow[] } | { why: string }> {
  try {
    const l = liveCluster(await connectionFor(cluster), 2000);
    const table = await l.probe(signal);
    if (table.some((r) => r.healthy)) return { cluster: l, table };
    return { why: table.length > 0 ? 'no member is healthy' : 'nothing answered' };
  } catch (err) {
    return { why: oneLineReason(err) };
  }
}
