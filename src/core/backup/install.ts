/**
 * `k3s-etcd backup install [--remove]`: the host plans of the backup timer, previewed and applied
 * like provisioning (idempotent: a second run changes nothing). On each backup host (the
 * inventory's `backup.hosts`, default every etcd host): the script, its env file, the
 * recipients' public keys (nothing else in their folder), for host destinations an SSH key made
 * on the host and a known_hosts file holding the destinations' host keys (read through sessions
 * this tool verified), the service and a monotonic timer. On each destination host: the
 * receiver (hostScript.ts), the folder (0700, the SSH user's), and each backup host's key in
 * that user's authorized_keys, restricted to the receiver in that folder.
 *
 * Inventory values reach the hosts only through the env file and the authorized_keys line, after
 * the checks below; the private keys of the recipients never leave the person.
 */
import { K3sEtcdError } from '../errors';
import { BIN_DIR, PKI, UNIT_FILE } from '../etcd/memberHost';
import { clientUrl, etcdHosts } from '../inventory/select';
import type { BackupSettings, Cluster, Host } from '../inventory/types';
import { runJobs, type HostRun, type RunHooks } from '../plan/runner';
import { fileStep, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import { shellQuote as q } from '../ssh/quote';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { readRecipients, type Recipient } from './crypto';
import { BACKUP_SCRIPT, RECEIVER_SCRIPT } from './hostScript';

export const BACKUP_TIMER = 'k3s-etcd-backup.timer';
export const BACKUP_SERVICE = 'k3s-etcd-backup.service';
export const BACKUP_SCRIPT_PATH = '/usr/local/sbin/k3s-etcd-backup';
export const BACKUP_ENV = '/etc/k3s-etcd/backup.env';
export const RECIPIENTS_DIR = '/etc/k3s-etcd/backup-recipients';
export const RECEIVER_PATH = '/usr/local/sbin/k3s-etcd-backup-receive';
export const BACKUP_SSH_KEY = '/etc/k3s-etcd/backup_id_ed25519';
export const BACKUP_KNOWN_HOSTS = '/etc/k3s-etcd/backup_known_hosts';
const UNIT_DIR = '/etc/systemd/system';

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SAFE_URL = /^https?:\/\/[A-Za-z0-9.:[\]-]{1,253}$/;
const SAFE_PATH = /^\/[A-Za-z0-9._/-]{1,200}$/;
const SAFE_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const SSH_PUBLIC_KEY =
  /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._-]{1,100})?$/;

function refuse(what: string): never {
  throw new K3sEtcdError(
    'provision-refused',
    `${what}: it cannot go into the backup timer's files. Nothing was run.`,
  );
}

export function backupSettings(cluster: Cluster): BackupSettings {
  if (!cluster.backup)
    throw new K3sEtcdError(
      'usage',
      `Cluster ${cluster.name} has no backup block in k3s-etcd.yaml: add one (backup: { interval: 1h, encryption: { recipientsFile: backup-recipients.pem } }; \`k3s-etcd backup keygen\` makes the key pair).`,
    );
  return cluster.backup;
}

/** The etcd hosts that get the timer. */
export function backupHosts(cluster: Cluster): Host[] {
  const b = backupSettings(cluster);
  const etcd = etcdHosts(cluster);
  return b.hosts ? etcd.filter((h) => b.hosts!.includes(h.name)) : etcd;
}

interface HostDestination {
  host: Host;
  path: string;
  user: string;
}

function hostDestinations(cluster: Cluster): HostDestination[] {
  return backupSettings(cluster).destinations.flatMap((d) => {
    if (d.kind !== 'host') return [];
    const host = cluster.hosts.find((h) => h.name === d.host);
    if (!host) refuse(`the destination host ${JSON.stringify(d.host)}`);
    const user = host.ssh.user ?? host.user;
    if (!SAFE_USER.test(user)) refuse(`the SSH user ${JSON.stringify(user)} of ${host.name}`);
    if (!SAFE_PATH.test(d.path) || d.path.split('/').includes('..'))
      refuse(`the path ${JSON.stringify(d.path)}`);
    return [{ host, path: d.path, user }];
  });
}

const sshPort = (h: Host) => h.ssh.port ?? h.port;

/** One host of the inventory: the same name, or the same address and SSH port. */
export const sameHost = (a: Host, b: Host): boolean =>
  a.name === b.name ||
  (a.address.toLowerCase() === b.address.toLowerCase() && sshPort(a) === sshPort(b));

/** The env file of `host`'s timer: every value checked. */
export function backupEnv(cluster: Cluster, host: Host): string {
  const b = backupSettings(cluster);
  for (const n of [cluster.name, host.name, host.memberName])
    if (!SAFE_NAME.test(n)) refuse(`the name ${JSON.stringify(n)}`);
  const local = clientUrl(cluster, host);
  if (!SAFE_URL.test(local)) refuse(`the client URL ${JSON.stringify(local)}`);
  // Every backup host's member and client URL, in the inventory's order: when the leader's member
  // is not among them, the first that answers takes the backup (hostScript.ts's elect).
  const members = backupHosts(cluster).map((h) => {
    const url = clientUrl(cluster, h);
    if (!SAFE_NAME.test(h.memberName)) refuse(`the name ${JSON.stringify(h.memberName)}`);
    if (!SAFE_URL.test(url)) refuse(`the client URL ${JSON.stringify(url)}`);
    return `${h.memberName}|${url}`;
  });
  if (!SAFE_PATH.test(b.localDir)) refuse(`backup.localDir ${JSON.stringify(b.localDir)}`);
  // A host is no destination of its own: a copy there would not be off the host.
  const hosts = hostDestinations(cluster)
    .filter((d) => !sameHost(d.host, host))
    .map((d) => {
      if (!/^[A-Za-z0-9.:-]+$/.test(d.host.address))
        refuse(`the address ${JSON.stringify(d.host.address)}`);
      return `${d.user}@${d.host.address}:${sshPort(d.host)}:${d.path}`;
    });
  const s3 = b.destinations.flatMap((d) => {
    if (d.kind !== 's3') return [];
    if (!/^https?:\/\/[A-Za-z0-9.:[\]-]+$/.test(d.endpoint))
      refuse(`the S3 endpoint ${JSON.stringify(d.endpoint)}`);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(d.bucket))
      refuse(`the bucket ${JSON.stringify(d.bucket)}`);
    if (!/^[A-Za-z0-9._/-]*$/.test(d.prefix)) refuse(`the prefix ${JSON.stringify(d.prefix)}`);
    if (!/^[a-z0-9-]+$/.test(d.region)) refuse(`the region ${JSON.stringify(d.region)}`);
    if (!SAFE_PATH.test(d.credentialsFile))
      refuse(`the credentials file ${JSON.stringify(d.credentialsFile)}`);
    return [`${d.endpoint}|${d.bucket}|${d.prefix}|${d.region}|${d.credentialsFile}`];
  });
  const lines: Array<[string, string | number]> = [
    ['CLUSTER', cluster.name],
    ['HOST', host.name],
    ['MEMBER', host.memberName],
    ['LOCAL', local],
    ['BACKUP_MEMBERS', members.join(' ')],
    ['LOCAL_DIR', b.localDir],
    ['KEEP_HOURLY', b.keep.hourly],
    ['KEEP_DAILY', b.keep.daily],
    ['KEEP_WEEKLY', b.keep.weekly],
    ['RECIPIENTS_DIR', RECIPIENTS_DIR],
    ['PKI', PKI],
    ['DEST_HOSTS', hosts.join(' ')],
    ['DEST_S3', s3.join(' ')],
    ['SSH_KEY', BACKUP_SSH_KEY],
    ['SSH_KNOWN', BACKUP_KNOWN_HOSTS],
  ];
  return [
    '# k3s-etcd backup timer: written by k3s-etcd backup install from the inventory.',
    // systemd reads a value with spaces whole when it is in double quotes.
    ...lines.map(([k, v]) => `${k}=${typeof v === 'string' && v.includes(' ') ? `"${v}"` : v}`),
    '',
  ].join('\n');
}

export function backupUnits(cluster: Cluster): { service: string; timer: string } {
  const b = backupSettings(cluster);
  return {
    service: [
      '[Unit]',
      `Description=k3s-etcd backup of etcd cluster ${cluster.name} (encrypted, copied off the host)`,
      `Documentation=file://${BACKUP_SCRIPT_PATH}`,
      `After=${UNIT_FILE.split('/').pop()} network-online.target`,
      '',
      '[Service]',
      'Type=oneshot',
      `EnvironmentFile=${BACKUP_ENV}`,
      `ExecStart=${BACKUP_SCRIPT_PATH}`,
      'TimeoutStartSec=6h',
      '',
    ].join('\n'),
    timer: [
      '[Unit]',
      `Description=k3s-etcd backup of etcd cluster ${cluster.name}, every ${b.interval}`,
      '',
      '[Timer]',
      // The first backup one interval after the timer starts (`backup run` takes one at once).
      `OnActiveSec=${b.interval}`,
      `OnUnitActiveSec=${b.interval}`,
      'AccuracySec=1s',
      `Unit=${BACKUP_SERVICE}`,
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n'),
  };
}

const recipientName = (i: number) => `recipient-${i + 1}.pem`;

/**
 * The plan of one backup host (or, with `remove`, the timer taken away with everything the
 * install put there: the script, its settings, the units, the recipients' keys, the SSH key pair
 * and known_hosts of the copies; the backups stay).
 */
export function backupHostPlan(
  cluster: Cluster,
  host: Host,
  input: { recipients: readonly Recipient[]; knownHosts: string; remove?: boolean },
): HostPlan {
  const b = backupSettings(cluster);
  const unitPath = (u: string) => `${UNIT_DIR}/${u}`;
  if (input.remove) {
    const files = [
      BACKUP_SCRIPT_PATH,
      BACKUP_ENV,
      unitPath(BACKUP_TIMER),
      unitPath(BACKUP_SERVICE),
      BACKUP_SSH_KEY,
      `${BACKUP_SSH_KEY}.pub`,
      BACKUP_KNOWN_HOSTS,
    ];
    return {
      host: host.name,
      title: `remove the backup timer of ${cluster.name} from ${host.name}`,
      payloads: [],
      steps: [
        systemdGuard('the backup timer is a systemd timer'),
        {
          kind: 'command',
          id: 'remove_backup',
          title: `${BACKUP_TIMER} stopped and removed with its files, the recipients' keys and the copies' SSH key (the backups in ${b.localDir} stay)`,
          check: [...files, RECIPIENTS_DIR].map((f) => `[ ! -e ${q(f)} ]`).join(' && '),
          run: [
            `systemctl disable --now ${BACKUP_TIMER} >/dev/null 2>&1 || true`,
            `rm -f ${files.map(q).join(' ')}`,
            `rm -rf ${q(RECIPIENTS_DIR)}`,
            'systemctl daemon-reload',
          ].join('\n'),
        },
      ],
    };
  }
  const dests = hostDestinations(cluster);
  const s3 = b.destinations.some((d) => d.kind === 's3');
  const tools = ['openssl', 'gzip', 'sha256sum', 'base64', 'flock', ...(s3 ? ['curl'] : [])];
  const units = backupUnits(cluster);
  const names = input.recipients.map((_r, i) => recipientName(i));
  const steps: Step[] = [
    systemdGuard('the backup timer is a systemd timer'),
    {
      kind: 'guard',
      id: 'etcd_here',
      title: 'etcd and etcdctl are installed here by k3s-etcd',
      check: `[ -f ${q(UNIT_FILE)} ] && [ -x ${q(`${BIN_DIR}/etcdctl`)} ] && [ -f ${q(`${PKI}/server.pem`)} ]`,
      message: `"etcd is not provisioned on this host by k3s-etcd: run provision etcd first"`,
    },
    {
      kind: 'guard',
      id: 'tools',
      title: `the tools the backup uses are here: ${tools.join(', ')}${dests.length ? ', ssh' : ''}`,
      check: [...tools, ...(dests.length ? ['ssh', 'ssh-keygen'] : [])]
        .map((t) => `command -v ${t} >/dev/null 2>&1`)
        .join(' && '),
      message: `"a tool the backup needs is missing (${tools.join(', ')}${dests.length ? ', ssh, ssh-keygen' : ''}): install it (Debian: openssl gzip coreutils util-linux curl openssh-client)"`,
    },
    fileStep({
      id: 'backup_script',
      title: `the backup script ${BACKUP_SCRIPT_PATH}`,
      path: BACKUP_SCRIPT_PATH,
      mode: 0o755,
      content: BACKUP_SCRIPT,
    }),
    fileStep({
      id: 'backup_env',
      title: `its settings ${BACKUP_ENV}`,
      path: BACKUP_ENV,
      mode: 0o644,
      content: backupEnv(cluster, host),
    }),
    ...input.recipients.map((r, i) =>
      fileStep({
        id: `recipient_${i + 1}`,
        title: `recipient key ${i + 1} (${r.fingerprint.slice(0, 16)}…, RSA ${r.bits})`,
        path: `${RECIPIENTS_DIR}/${recipientName(i)}`,
        mode: 0o644,
        content: r.pem,
      }),
    ),
    {
      kind: 'command',
      id: 'recipients_only',
      title: `no other recipient key in ${RECIPIENTS_DIR}`,
      check: `[ -z "$(ls -1 ${RECIPIENTS_DIR} 2>/dev/null | grep -vxF ${names.map((n) => `-e ${q(n)}`).join(' ')})" ]`,
      run: `ls -1 ${RECIPIENTS_DIR} | grep -vxF ${names.map((n) => `-e ${q(n)}`).join(' ')} | while read -r f; do rm -f ${RECIPIENTS_DIR}/"$f"; done`,
    },
    ...(dests.length
      ? [
          {
            kind: 'command' as const,
            id: 'backup_ssh_key',
            title: `an SSH key of its own for the copies (${BACKUP_SSH_KEY})`,
            check: `[ -f ${BACKUP_SSH_KEY} ] && [ -f ${BACKUP_SSH_KEY}.pub ]`,
            run: `mkdir -p /etc/k3s-etcd && ssh-keygen -q -t ed25519 -N '' -C ${q(`k3s-etcd-backup@${host.name}`)} -f ${BACKUP_SSH_KEY}`,
          },
          fileStep({
            id: 'backup_known_hosts',
            title: `the destinations' host keys ${BACKUP_KNOWN_HOSTS}`,
            path: BACKUP_KNOWN_HOSTS,
            mode: 0o644,
            content: input.knownHosts,
          }),
        ]
      : []),
    fileStep({
      id: 'backup_service',
      title: `the unit ${BACKUP_SERVICE}`,
      path: unitPath(BACKUP_SERVICE),
      mode: 0o644,
      content: units.service,
    }),
    fileStep({
      id: 'backup_timer',
      title: `the timer ${BACKUP_TIMER} (every ${b.interval})`,
      path: unitPath(BACKUP_TIMER),
      mode: 0o644,
      content: units.timer,
    }),
    {
      kind: 'command',
      id: 'backup_reload',
      title: 'systemd reads the changed units',
      check: '! changed backup_service && ! changed backup_timer',
      run: 'systemctl daemon-reload',
    },
    {
      kind: 'service',
      id: 'backup_timer_on',
      title: `${BACKUP_TIMER} enabled and running`,
      unit: BACKUP_TIMER,
      restartOn: ['backup_timer'],
    },
  ];
  return {
    host: host.name,
    title: `the backup timer of ${cluster.name} on ${host.name}`,
    steps,
    payloads: [],
  };
}

/** The authorized_keys line of a backup host's key on a destination: the receiver, one folder. */
export function authorizedLine(publicKey: string, path: string): string {
  const key = publicKey.trim();
  if (!SSH_PUBLIC_KEY.test(key))
    refuse(`the backup host's public key ${JSON.stringify(key.slice(0, 60))}`);
  if (!SAFE_PATH.test(path)) refuse(`the path ${JSON.stringify(path)}`);
  return `restrict,command="${RECEIVER_PATH} ${path}" ${key}`;
}

/** The plan of one destination host: the receiver, the folder, the backup hosts' keys. */
export function destinationPlan(
  cluster: Cluster,
  dest: { host: Host; path: string; user: string },
  publicKeys: readonly string[],
  remove = false,
): HostPlan {
  const home = `$(getent passwd ${q(dest.user)} | cut -d: -f6)`;
  const lines = publicKeys.map((k) => authorizedLine(k, dest.path));
  const auth = `"${home}/.ssh/authorized_keys"`;
  if (remove) {
    const ours = q(`command="${RECEIVER_PATH} ${dest.path}"`);
    // Another authorized line that still runs the receiver (another folder, another user's file):
    // this folder's lines in this user's file are the ones the step before takes away.
    const inUse =
      `getent passwd | cut -d: -f6 | sort -u | while read -r h; do f="$h/.ssh/authorized_keys"; ` +
      `if [ "$h" = "${home}" ]; then grep -sF ${q(`command="${RECEIVER_PATH} `)} "$f" | grep -vF ${ours}; ` +
      `else grep -sF ${q(`command="${RECEIVER_PATH} `)} "$f"; fi; done | grep -q .`;
    return {
      host: dest.host.name,
      title: `remove the backup receiver of ${cluster.name} from ${dest.host.name}`,
      payloads: [],
      steps: [
        {
          kind: 'command',
          id: 'unauthorize',
          title: `the backup hosts' keys out of ${dest.user}'s authorized_keys (the backups in ${dest.path} stay)`,
          check: `! grep -qF ${ours} ${auth} 2>/dev/null`,
          run: `grep -vF ${ours} ${auth} > ${auth}.k3s-etcd-new || true\nchown ${q(dest.user)} ${auth}.k3s-etcd-new && chmod 600 ${auth}.k3s-etcd-new && mv -f ${auth}.k3s-etcd-new ${auth}`,
        },
        {
          kind: 'command',
          id: 'receiver_gone',
          title: `the receiver ${RECEIVER_PATH} removed once no authorized key runs it`,
          check: `[ ! -e ${q(RECEIVER_PATH)} ] || { ${inUse}; }`,
          run: `rm -f ${q(RECEIVER_PATH)}`,
        },
      ],
    };
  }
  return {
    host: dest.host.name,
    title: `the backup receiver of ${cluster.name} on ${dest.host.name}`,
    payloads: [],
    steps: [
      fileStep({
        id: 'receiver',
        title: `the receiver ${RECEIVER_PATH} (put, list, get, delete in one folder)`,
        path: RECEIVER_PATH,
        mode: 0o755,
        content: RECEIVER_SCRIPT,
      }),
      {
        kind: 'dir',
        id: 'backup_dest_dir',
        title: `${dest.path} (0700, ${dest.user})`,
        path: dest.path,
        mode: 0o700,
        owner: dest.user,
        group: dest.user === 'root' ? 'root' : dest.user,
      },
      ...lines.map((l, i) => ({
        kind: 'command' as const,
        id: `authorize_${i + 1}`,
        title: `backup key ${i + 1} in ${dest.user}'s authorized_keys, restricted to the receiver in ${dest.path}`,
        check: `grep -qxF ${q(l)} ${auth} 2>/dev/null`,
        run: `d=${home}/.ssh; mkdir -p "$d" && chmod 700 "$d" && printf '%s\\n' ${q(l)} >> "$d/authorized_keys" && chmod 600 "$d/authorized_keys" && chown -R ${q(dest.user)} "$d"`,
      })),
    ],
  };
}

export interface BackupInstallOptions extends RunHooks {
  ssh: SshContext;
  dryRun: boolean;
  remove?: boolean;
}

const HOST_KEY_LINE =
  /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$/;

/** The host's public host keys, read through a session this tool verified. */
async function hostKeysOf(cluster: Cluster, host: Host, ssh: SshContext, signal?: AbortSignal) {
  const t = await sshOpener(cluster, host, ssh)(signal);
  try {
    const r = await t.exec('cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null', signal ? { signal } : {});
    const name = sshPort(host) === 22 ? host.address : `[${host.address}]:${sshPort(host)}`;
    return r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/).slice(0, 2).join(' '))
      .filter((l) => HOST_KEY_LINE.test(l))
      .map((l) => `${name} ${l}`);
  } finally {
    t.close();
  }
}

/** Each backup host's public key for the copies, when it has one yet. */
async function backupKeysOf(
  cluster: Cluster,
  hosts: readonly Host[],
  ssh: SshContext,
  signal?: AbortSignal,
): Promise<string[]> {
  const keys = await Promise.all(
    hosts.map(async (h) => {
      const t = await sshOpener(cluster, h, ssh)(signal);
      try {
        const r = await t.exec(`cat ${BACKUP_SSH_KEY}.pub 2>/dev/null || true`, {
          sudo: true,
          ...(signal ? { signal } : {}),
        });
        const key = r.stdout.trim();
        return key && SSH_PUBLIC_KEY.test(key) ? [key] : [];
      } finally {
        t.close();
      }
    }),
  );
  return keys.flat();
}

/**
 * Installs (or removes) the timer on the backup hosts and the receiver on the destination hosts:
 * the backup hosts first (their SSH keys are made there), then the destinations with those keys.
 */
export async function installBackup(
  cluster: Cluster,
  opts: BackupInstallOptions,
): Promise<HostRun[]> {
  const b = backupSettings(cluster);
  const hosts = backupHosts(cluster);
  if (hosts.length === 0)
    throw new K3sEtcdError('usage', `Cluster ${cluster.name} has no etcd host to take backups.`);
  const recipients = opts.remove ? [] : await readRecipients(b.recipientsFile);
  const dests = hostDestinations(cluster);
  const knownHosts = opts.remove
    ? ''
    : `${(await Promise.all(dests.map((d) => hostKeysOf(cluster, d.host, opts.ssh, opts.signal))))
        .flat()
        .join('\n')}\n`;
  const plans = new Map(
    hosts.map((h) => [
      h.name,
      backupHostPlan(cluster, h, {
        recipients,
        knownHosts,
        ...(opts.remove ? { remove: true } : {}),
      }),
    ]),
  );
  const runs = await runJobs(
    hosts.map((host) => ({
      host: host.name,
      open: sshOpener(cluster, host, opts.ssh),
      plan: async () => plans.get(host.name)!,
    })),
    opts,
  );
  if (dests.length === 0 || runs.some((r) => r.status === 'failed' || r.status === 'cancelled'))
    return runs;
  const keys = opts.remove ? [] : await backupKeysOf(cluster, hosts, opts.ssh, opts.signal);
  if (!opts.remove && keys.length < hosts.length)
    for (const d of dests)
      opts.onLine?.(
        d.host.name,
        `${hosts.length - keys.length} backup host key(s) are made by the install itself: the dry run cannot show their authorized_keys lines`,
      );
  const destRuns = await runJobs(
    dests.map((d) => ({
      host: d.host.name,
      open: sshOpener(cluster, d.host, opts.ssh),
      plan: async () => destinationPlan(cluster, d, keys, opts.remove === true),
    })),
    opts,
  );
  return [...runs, ...destRuns];
}
