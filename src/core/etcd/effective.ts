/**
 * The tuning a running etcd actually uses, read back from each member's /metrics (for now the
 * space quota, `etcd_server_quota_backend_bytes`), beside what the inventory asks for: a change
 * in k3s-etcd.yaml only takes effect once provision has rewritten the env file and restarted
 * the member.
 */
import type { Cluster } from '../inventory/types';
import { tuningSummary } from '../inventory/etcdTuning';
import type { SettingsInEffect } from '../../shared/etcdTypes';
import type { ClusterMetrics } from '../../shared/metricsTypes';
import { ETCD_DEFAULT_QUOTA_BYTES, quotaInPage } from './alarms';
import type { EtcdTls } from './client';
import { scrapeMetrics, type MetricsTarget } from './scrape';

export interface MemberQuota {
  /** The member's client URL (as in the status table). */
  endpoint: string;
  /** From its /metrics; undefined when the page did not answer or lacks the gauge. */
  quotaBackendBytes?: number;
}

/** Each member's quota, read in parallel (a member that does not answer has none). */
export async function memberQuotas(
  targets: readonly MetricsTarget[],
  opts: { tls?: EtcdTls; timeoutMs?: number } = {},
): Promise<MemberQuota[]> {
  return Promise.all(
    targets.map(async (t): Promise<MemberQuota> => {
      try {
        const q = quotaInPage((await scrapeMetrics(t.url, opts)).text);
        return q !== undefined
          ? { endpoint: t.endpoint, quotaBackendBytes: q }
          : { endpoint: t.endpoint };
      } catch {
        return { endpoint: t.endpoint };
      }
    }),
  );
}

/** What the inventory asks for: etcd.quotaBackendBytes, or etcd's default 2 GiB. */
export function inventoryQuota(cluster: Cluster): number {
  return cluster.etcd.tuning.quotaBackendBytes ?? ETCD_DEFAULT_QUOTA_BYTES;
}

/** A quota in the inventory's units: `2 GiB`, `16 MiB`, or bytes. */
export const quotaText = (n: number): string =>
  n % 2 ** 30 === 0
    ? `${n / 2 ** 30} GiB`
    : n % 2 ** 20 === 0
      ? `${n / 2 ** 20} MiB`
      : `${n} bytes`;

/**
 * One line when a member runs with another quota than the inventory's, naming them and what to
 * do; undefined when every member that answered agrees.
 */
export function quotaDriftLine(
  cluster: Cluster,
  quotas: readonly MemberQuota[],
): string | undefined {
  const want = inventoryQuota(cluster);
  const off = quotas.filter(
    (q) => q.quotaBackendBytes !== undefined && q.quotaBackendBytes !== want,
  );
  if (off.length === 0) return undefined;
  const asked =
    cluster.etcd.tuning.quotaBackendBytes === undefined
      ? `etcd's default ${quotaText(want)} (no etcd.quotaBackendBytes)`
      : `${quotaText(want)} (etcd.quotaBackendBytes)`;
  const runs = off.map((q) => `${q.endpoint} ${quotaText(q.quotaBackendBytes!)}`).join(', ');
  return `quota: the inventory asks for ${asked}, but etcd runs with ${runs}: apply it with \`k3s-etcd provision etcd --cluster ${cluster.name}\``;
}

/**
 * Each member's quota from the metrics the editor already scrapes (the same gauge, read by
 * core/metrics/window.ts), so the panel needs no second scrape; a member whose page did not
 * answer has none.
 */
export function quotasFromMetrics(metrics: ClusterMetrics | undefined): MemberQuota[] {
  return (metrics?.members ?? []).map((m) => {
    const q = m.error ? undefined : m.summary?.quotaBytes;
    return q !== undefined && q > 0
      ? { endpoint: m.endpoint, quotaBackendBytes: q }
      : { endpoint: m.endpoint };
  });
}

/**
 * What the health panel shows of etcd's settings: the inventory's tuning and quota, each
 * member's quota as etcd reports it, and the drift line `status` prints when they differ.
 */
export function settingsInEffect(
  cluster: Cluster,
  quotas: readonly MemberQuota[],
): SettingsInEffect {
  const want = inventoryQuota(cluster);
  const running: Record<string, string> = {};
  const differs: string[] = [];
  for (const q of quotas) {
    if (q.quotaBackendBytes === undefined) continue;
    running[q.endpoint] = quotaText(q.quotaBackendBytes);
    if (q.quotaBackendBytes !== want) differs.push(q.endpoint);
  }
  const drift = quotaDriftLine(cluster, quotas);
  return {
    inventoryQuota:
      cluster.etcd.tuning.quotaBackendBytes === undefined
        ? `${quotaText(want)} (etcd's default)`
        : `${quotaText(want)} (etcd.quotaBackendBytes)`,
    inventoryTuning: tuningSummary(cluster.etcd.tuning).filter(
      (t) => !t.startsWith('quotaBackendBytes '),
    ),
    quotas: running,
    differs,
    ...(drift ? { drift } : {}),
  };
}
