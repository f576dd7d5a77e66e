/**
 * What `etcd.dataDir` may be. Provisioning makes it etcd's own (chown etcd, chmod 0700), a
 * restore moves it aside, and `member remove --purge-data` deletes it: a system folder, a parent
 * of one, a path with `..` or a single segment would hand the etcd user (or `rm -rf`) far more
 * than a data dir. The schema says the same with a pattern (schemas/k3s-etcd.schema.json, built by
 * `dataDirSchemaPattern`, a unit test keeps them equal); this is the rule with a message per case,
 * checked again before any script uses the path. The host checks the rest before it changes
 * anything: an existing folder with files in it is taken only when it is etcd's or carries the
 * cluster marker (src/core/provision/memberPlan.ts), and it is deleted only when the marker names
 * this cluster (src/core/provision/members.ts).
 */

/** Trees that belong to the system, to root or to other programs: neither they nor anything in them. */
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
  '/root',
  '/snap',
  '/var/tmp',
  '/var/run',
  '/var/lock',
  '/var/log',
  '/var/cache',
  '/var/spool',
  '/var/mail',
  '/var/backups',
  '/var/crash',
  '/var/snap',
  // Restore uploads (root's), and K3s's own state.
  '/var/lib/k3s-etcd',
  '/var/lib/rancher',
  // Package managers, the init system, logins and privileges, containers and machines.
  '/var/lib/apt',
  '/var/lib/dpkg',
  '/var/lib/rpm',
  '/var/lib/dnf',
  '/var/lib/yum',
  '/var/lib/snapd',
  '/var/lib/flatpak',
  '/var/lib/ucf',
  '/var/lib/systemd',
  '/var/lib/private',
  '/var/lib/dbus',
  '/var/lib/polkit-1',
  '/var/lib/sudo',
  '/var/lib/pam',
  '/var/lib/AccountsService',
  '/var/lib/NetworkManager',
  '/var/lib/cloud',
  '/var/lib/docker',
  '/var/lib/containerd',
  '/var/lib/containers',
  '/var/lib/kubelet',
  '/var/lib/cni',
  '/var/lib/lxc',
  '/var/lib/lxd',
  '/var/lib/libvirt',
  '/var/lib/machines',
] as const;

/** Folders that hold other programs' folders: a folder inside them is fine, not they themselves. */
export const SYSTEM_PARENTS = ['/var/lib', '/var/opt', '/var/local'] as const;

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** A hidden folder in a home folder, or anything in one: keys, shell and program settings. */
const HOME_HIDDEN = '/home/[^/]+/(?:[^/]+/)*\\.';

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
  if (tree)
    return `is ${path === tree ? '' : 'inside '}${tree}, which belongs to the system or to another program`;
  if ((SYSTEM_PARENTS as readonly string[]).includes(path) || /^\/home\/[^/]+$/.test(path))
    return 'holds the folders of other programs or users';
  if (new RegExp(`^${HOME_HIDDEN}`).test(path))
    return 'is in a hidden folder of a home folder, where keys and settings live';
  return undefined;
}

/** The schema's pattern for `etcd.dataDir`: the rule above as one regular expression. */
export function dataDirSchemaPattern(): string {
  // Paths are letters, digits, ".", "_", "-": only "." needs escaping ("\\-" is invalid in the
  // Unicode mode the schema's validator compiles patterns in).
  const esc = (p: string) => p.slice(1).replace(/\./g, '\\.');
  return (
    `^(?!/(?:${SYSTEM_TREES.map(esc).join('|')})(?:/|$))` +
    `(?!/(?:${SYSTEM_PARENTS.map(esc).join('|')}|home/[^/]+)$)` +
    `(?!${HOME_HIDDEN})` +
    `(?:/(?!\\.\\.?(?:/|$))[A-Za-z0-9._-]+){2,}$`
  );
}
