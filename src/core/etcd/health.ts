/** Waiting for members to answer healthy through the admin certificate. */
import type { Cluster, Host } from '../inventory/types';
import { clientUrl } from '../inventory/select';
import { clusterSnapshot } from './checks';
import { connectionFor } from './connection';

/** Polls health of `hosts` through the admin certificate until all are healthy or the deadline. */
export async function waitHealthy(
  cluster: Cluster,
  hosts: readonly Host[],
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; summary: string }> {
  const conn = await connectionFor(cluster);
  const endpoints = hosts.map((h) => clientUrl(cluster, h));
  const until = Date.now() + deadlineMs;
  let summary = '';
  for (;;) {
    const snap = await clusterSnapshot(endpoints, {
      tls: conn.tls,
      timeoutMs: 3000,
      ...(signal ? { signal } : {}),
    });
    summary = snap.health
      .map(
        (h) =>
          `${h.endpoint} ${h.health ? 'healthy' : `unhealthy (${h.problem?.summary ?? 'no answer'})`}`,
      )
      .join('; ');
    if (snap.healthy) return { ok: true, summary };
    if (Date.now() > until) return { ok: false, summary };
    await new Promise((r) => setTimeout(r, 500));
  }
}
