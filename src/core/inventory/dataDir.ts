/**
 * What `etcd.dataDir` may be. Provisioning makes it etcd's own (chown etcd, chmod 0700), a
 * restore moves it aside, and `member remove --purge-data` deletes it: a system folder, a parent
 * of one, a path with `..` or a single segment would hand the etcd user (or `rm -rf`) far more
 * than a data dir. The schema says the same with a pattern (schemas/k3s-etcd.schema.json); this is
 * the rule with a message per case, checked again before any script uses the path.
 */

/** Trees that belong to the system or to other programs: neither they nor anything in them. */
export const SYSTEM_TREES = [
  '/etc',
  '/proc',
  '/sys',
  '/dev',
  '/boot',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/usr',
  '/tmp',
  '/run',
  '/var/tmp',
  '/var/run',
  '/var/lock',
  '/var/log',
  '/var/cache',
  '/var/spool',
  '/var/mail',
  // Restore uploads (root's), and K3s's own state.
  '/var/lib/k3s-etcd',
  '/var/lib/rancher',
] as const;

/** Folders that hold other programs' folders: a folder inside them is fine, not they themselves. */
export const SYSTEM_PARENTS = ['/var/lib', '/var/opt', '/var/local'] as const;

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Why `path` cannot be etcd's data dir, or undefined when it can. */
export function dataDirProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'is not an absolute path';
  if (path === '/')
    return 'is the root of the file system: use a folder of its own, such as /var/lib/etcd';
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '.' || s === '..'))
    return 'has a "." or ".." segment: write the folder itself';
  if (segments.some((s) => s === ''))
    return 'has an empty segment ("//" or a trailing "/"): write the folder itself';
  if (!segments.every((s) => SEGMENT.test(s)))
    return 'may hold only letters, digits, ".", "_", "-" and "/"';
  if (segments.length < 2)
    return `is a folder at the root of the file system: use a folder of its own inside one, such as /var/lib/etcd`;
  const tree = SYSTEM_TREES.find((t) => path === t || path.startsWith(`${t}/`));
  if (tree) return `is ${path === tree ? '' : 'inside '}${tree}, which belongs to the system`;
  if ((SYSTEM_PARENTS as readonly string[]).includes(path) || /^\/home\/[^/]+$/.test(path))
    return 'holds the folders of other programs or users';
  return undefined;
}
