/**
 * etcd's alarms and its space quota, read once for every operation that must not write into a
 * full database (the migration, the performance check).
 */
import type { Etcd3 } from 'etcd3';
import type { EtcdTls } from './client';
import { sampleValue } from './prometheus';
import { scrapeMetrics } from './scrape';

/** etcd's default --quota-backend-bytes (2 GiB). */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * The space quota a member's /metrics page states (etcd_server_quota_backend_bytes, one line
 * scanned, the page not parsed); undefined when the page lacks it or says 0.
 */
export function quotaInPage(text: string): number | undefined {
  const q = sampleValue(text, 'etcd_server_quota_backend_bytes');
  return q !== undefined && q > 0 ? q : undefined;
}

export interface ActiveAlarm {
  memberID: string;
  /** `NOSPACE`, `CORRUPT` (the wire may carry the enum's name or number). */
  alarm: string;
}

const alarmName = (a: { alarm: unknown }): string => {
  const s = String(a.alarm).toUpperCase();
  return s === '1' ? 'NOSPACE' : s === '2' ? 'CORRUPT' : s;
};

export async function activeAlarms(client: Etcd3): Promise<ActiveAlarm[]> {
  const res = await client.maintenance.alarm({ action: 'Get', memberID: '0', alarm: 'None' });
  return res.alarms.map((a) => ({ memberID: String(a.memberID), alarm: alarmName(a) }));
}

/** The quota from the first member whose /metrics answers; undefined when none does. */
export async function readQuota(
  endpoints: readonly string[],
  tls: EtcdTls | undefined,
): Promise<number | undefined> {
  for (const e of endpoints) {
    try {
      const q = quotaInPage(
        (await scrapeMetrics(`${e.replace(/\/+$/, '')}/metrics`, tls ? { tls } : {})).text,
      );
      if (q !== undefined) return q;
    } catch {
      // the next member, or etcd's default
    }
  }
  return undefined;
}
