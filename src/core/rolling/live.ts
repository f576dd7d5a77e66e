/**
 * The rolling engine's view of a running cluster: the member table (health, status and the
 * member list over every member's client URL), and `move-leader`, which etcd only takes from
 * the leader itself (sent anywhere else it answers "not leader").
 */
import { K3sEtcdError, errorMessage } from '../errors';
import { clusterSnapshot } from '../etcd/checks';
import { createEndpointClient, memberIdFromHex, type EtcdTls } from '../etcd/client';
import { memberTable, type MemberRow } from './order';

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
  conn: { endpoints: string[]; tls: EtcdTls },
  timeoutMs = 2000,
): LiveCluster {
  let known: string[] = [];
  const probe = async (signal?: AbortSignal): Promise<MemberRow[]> => {
    const opts = { tls: conn.tls, timeoutMs, ...(signal ? { signal } : {}) };
    let endpoints = [...new Set([...conn.endpoints, ...known])];
    let snap = await clusterSnapshot(endpoints, opts);
    known = snap.members.flatMap((m) => m.clientUrls.slice(0, 1));
    const missing = known.filter((u) => !endpoints.includes(u));
    if (missing.length > 0) {
      endpoints = [...endpoints, ...missing];
      snap = await clusterSnapshot(endpoints, opts);
    }
    return memberTable(snap);
  };
  return {
    probe,
    async moveLeader(leader, target, signal) {
      if (!leader.endpoint)
        throw new K3sEtcdError(
          'etcd-unreachable',
          `the leader ${leader.name} has no client URL that answers`,
        );
      const c = await createEndpointClient(leader.endpoint, { tls: conn.tls, timeoutMs: 10_000 });
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
