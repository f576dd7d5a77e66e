/**
 * Certificate expiry as a metric: every HTTPS scrape of a member's /metrics sees the certificate
 * the member serves, so the Metrics tab (and `k3s-etcd metrics`) judge its end of validity beside
 * etcd's own figures, and a member whose certificate expires within the warning window
 * (k3sEtcd.certificates.warnDays, 30 days by default) is marked before clients start refusing it.
 * What the hosts hold on disk, and the K3s servers' client files, is `certs check`'s job; this
 * needs no SSH and runs wherever metrics are scraped.
 */
import { EXPIRY_WARNING_DAYS } from '../pki/inspect';
import type { Finding } from '../../shared/metricsTypes';

const DAY = 86_400_000;

/** The `served-cert` finding for a member that served a certificate valid until `notAfter`. */
export function servedCertFinding(
  notAfter: string,
  now: number,
  warnDays: number = EXPIRY_WARNING_DAYS,
): Finding {
  const end = Date.parse(notAfter);
  const day = notAfter.slice(0, 10);
  const msLeft = end - now;
  const daysLeft = Math.floor(msLeft / DAY);
  const value = Math.max(0, msLeft / DAY);
  // Short: the tree puts every marking finding in the member's row.
  const renew = 'renew it (Renew Certificates…, `k3s-etcd certs renew`)';
  if (!Number.isFinite(end))
    return {
      rule: 'served-cert',
      level: 'unjudged',
      note: 'no date',
      message: 'served certificate without a readable end date',
    };
  if (msLeft <= 0)
    return {
      rule: 'served-cert',
      level: 'bad',
      value: 0,
      limit: warnDays,
      message: `serves a certificate that expired ${day}: clients refuse it; ${renew}`,
    };
  const left =
    daysLeft >= 1
      ? `in ${daysLeft} day${daysLeft === 1 ? '' : 's'}`
      : `in ${Math.max(1, Math.round(msLeft / 60_000))} min`;
  if (msLeft < warnDays * DAY)
    return {
      rule: 'served-cert',
      level: 'warn',
      value,
      limit: warnDays,
      message: `serves a certificate expiring ${left} (${day}, warned ${warnDays} days ahead): ${renew}`,
    };
  return {
    rule: 'served-cert',
    level: 'ok',
    value,
    limit: warnDays,
    message: `serves a certificate valid until ${day} (${daysLeft} days)`,
  };
}
