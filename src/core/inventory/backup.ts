/**
 * The cluster's `backup:` block (a contract: other tools read it): the timer's interval, the
 * generations kept, the recipients' public keys, the hosts that run the timer, the local folder
 * and the destinations off the host. Parsed into `BackupSettings` with its defaults, and checked
 * against the cluster's hosts.
 */
import type { BackupDestination, BackupSettings, Role } from './types';

export interface RawBackup {
  interval?: string;
  keep?: { hourly?: number; daily?: number; weekly?: number };
  encryption: { recipientsFile: string };
  hosts?: string[];
  localDir?: string;
  destinations?: Array<
    | { host: string; path: string }
    | {
        s3: {
          endpoint: string;
          bucket: string;
          prefix?: string;
          region?: string;
          credentialsFile: string;
        };
      }
  >;
}

export const DEFAULT_BACKUP_INTERVAL = '1h';
export const DEFAULT_BACKUP_KEEP = { hourly: 24, daily: 7, weekly: 4 } as const;
export const DEFAULT_BACKUP_DIR = '/var/lib/k3s-etcd/backups';

const UNIT_SECONDS: Record<string, number> = { m: 60, h: 3600, d: 86_400 };

/** `30m`, `1h`, `1d` in seconds (NaN when it is not one). */
export function intervalSeconds(text: string): number {
  const m = /^([1-9][0-9]{0,3})(m|h|d)$/.exec(text);
  return m ? Number(m[1]) * UNIT_SECONDS[m[2]!]! : NaN;
}

export function buildBackup(raw: RawBackup, resolvePath: (p: string) => string): BackupSettings {
  const interval = raw.interval ?? DEFAULT_BACKUP_INTERVAL;
  return {
    interval,
    intervalSeconds: intervalSeconds(interval),
    keep: { ...DEFAULT_BACKUP_KEEP, ...raw.keep },
    recipientsFile: resolvePath(raw.encryption.recipientsFile),
    ...(raw.hosts ? { hosts: [...raw.hosts] } : {}),
    localDir: (raw.localDir ?? DEFAULT_BACKUP_DIR).replace(/\/+$/, ''),
    destinations: (raw.destinations ?? []).map((d): BackupDestination =>
      'host' in d
        ? { kind: 'host', host: d.host, path: d.path.replace(/\/+$/, '') }
        : {
            kind: 's3',
            endpoint: d.s3.endpoint.replace(/\/+$/, ''),
            bucket: d.s3.bucket,
            prefix: d.s3.prefix ?? '',
            region: d.s3.region ?? 'us-east-1',
            credentialsFile: d.s3.credentialsFile,
          },
    ),
  };
}

/**
 * What the schema cannot say: backup hosts are etcd hosts of the cluster, a destination host is
 * a host of the cluster, every backup host has a destination other than itself when there are
 * destinations at all (its own is skipped: a copy on the same host is no copy off the host; the
 * parser already refuses two hosts of a cluster on one address and port), paths have no `..`.
 */
export function backupProblems(
  raw: RawBackup,
  hosts: ReadonlyArray<{ name: string; roles: readonly Role[] }>,
): Array<{ path: Array<string | number>; message: string; severity: 'error' | 'warning' }> {
  const out: Array<{
    path: Array<string | number>;
    message: string;
    severity: 'error' | 'warning';
  }> = [];
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const etcd = hosts.filter((h) => h.roles.includes('etcd')).map((h) => h.name);
  (raw.hosts ?? []).forEach((n, i) => {
    if (!byName.get(n)?.roles.includes('etcd'))
      out.push({
        path: ['hosts', i],
        severity: 'error',
        message: `backup host "${n}" is not an etcd host of this cluster (etcd hosts: ${etcd.join(', ') || 'none'})`,
      });
  });
  const backupHosts = raw.hosts ?? etcd;
  const dotdot = (p: string) => p.split('/').includes('..');
  if (raw.localDir && dotdot(raw.localDir))
    out.push({ path: ['localDir'], severity: 'error', message: 'localDir must not contain ..' });
  (raw.destinations ?? []).forEach((d, i) => {
    if ('host' in d) {
      if (!byName.has(d.host))
        out.push({
          path: ['destinations', i, 'host'],
          severity: 'error',
          message: `destination host "${d.host}" is not a host of this cluster`,
        });
      else if (backupHosts.length === 1 && backupHosts[0] === d.host)
        out.push({
          path: ['destinations', i, 'host'],
          severity: 'error',
          message: `"${d.host}" takes the backups: a copy on the same host is no copy off the host`,
        });
      else if (
        backupHosts.includes(d.host) &&
        (raw.destinations ?? []).every((o) => 'host' in o && o.host === d.host)
      )
        out.push({
          path: ['destinations', i, 'host'],
          severity: 'error',
          message: `"${d.host}" is a backup host too and this is its only destination: the backups it takes would have no copy off the host (add another host or an S3 destination)`,
        });
      if (dotdot(d.path))
        out.push({
          path: ['destinations', i, 'path'],
          severity: 'error',
          message: 'path must not contain ..',
        });
    } else if (dotdot(d.s3.credentialsFile) || (d.s3.prefix && dotdot(d.s3.prefix)))
      out.push({
        path: ['destinations', i, 's3'],
        severity: 'error',
        message: 'credentialsFile and prefix must not contain ..',
      });
  });
  return out;
}
