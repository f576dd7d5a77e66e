/**
 * The restore of an etcd snapshot, planned (`planRestore`: reads no host). How it runs:
 * `run.ts`; each host's scripts per phase: `phases.ts`; what a failure undoes: `rollback.ts`.
 *
 * Restores a snapshot saved by `saveSnapshot` onto every etcd host of the inventory, over SSH, as
 * etcd documents it, with the provisioning machinery (per-host plans rendered to POSIX scripts,
 * a dry run before every real run, step markers):
 *
 * 1. the snapshot's SHA-256 and size are checked against its `.json` record (nothing is touched
 *    on any host when they differ), and every host is reached and read before anything changes;
 * 2. prepare (nothing stopped yet): upload it to each host (0600 root) and check its SHA-256 there;
 * 3. stop etcd on EVERY member (if one cannot be stopped, etcd is started again everywhere);
 * 4. restore it on every host into `<dataDir>.restored` with that member's name and peer URL and
 *    a new cluster token, with the host's installed etcdutl (etcd ≥ 3.5) or etcdctl (3.4); if it
 *    fails anywhere, the restored dirs are removed and etcd starts again on its old data;
 * 5. on every host: the old data dir moved aside to `<dataDir>.before-restore-<UTC time>` (never
 *    deleted), the restored one put in place (owner etcd, 0700, the cluster marker), the env
 *    file's ETCD_INITIAL_* lines made to say what the data now is (the new token, state
 *    `existing`; etcd reads them only on a first start, and provisioning keeps them once a member
 *    has data), then etcd started and waited for;
 * 6. wait until every member answers healthy, and compare the revision served with the snapshot's.
 *
 * A dry run runs every phase's script with DRY_RUN=1: it only reads the hosts.
 */
import { lstat, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { K3sEtcdError, errorMessage } from '../errors';
import { BIN_DIR, ENV_FILE, checkDataDir } from '../etcd/memberHost';
import {
  SNAPSHOT_NAME,
  etcdMinor,
  restoreBumps,
  restoreCommands,
  snapshotInfo,
  snapshotRecordProblem,
  type SnapshotInfo,
} from '../etcd/snapshotFile';
import { backupStamp } from '../format/stamp';
import { etcdHosts, k3sServers } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { sha256File } from '../files/hash';

/** Where snapshots are uploaded on the hosts. */
export const RESTORE_DIR = '/var/lib/k3s-etcd/restore';

export type RestoreTool = 'etcdutl' | 'etcdctl';

export interface RestoreMember {
  host: string;
  member: string;
  address: string;
  /** The snapshot's copy on the host. */
  upload: string;
  /** The member's data dir (the inventory's etcd.dataDir). */
  dataDir: string;
  /** Where etcd's restore writes before it is put in place. */
  restoredDir: string;
  /** Where the old data dir is kept. */
  keptAs: string;
  /** The restore command as planned (the tool in /usr/local/bin; the host may choose etcdctl). */
  command: string;
}

export interface RestorePlan {
  cluster: string;
  /** Absolute path of the snapshot on this machine. */
  file: string;
  /** Its record, checked against the file. */
  snapshot: SnapshotInfo;
  /** UTC time naming the kept data dirs and the token. */
  stamp: string;
  /** The new cluster token every member is restored with. */
  token: string;
  tool: RestoreTool;
  members: RestoreMember[];
  /** The restore in words, in the order it runs (what a confirmation shows). */
  steps: string[];
  /** K3s servers that use this etcd (to restart once it is restored). */
  k3sServers: string[];
  /**
   * `--bump-revision N --mark-compacted` on every host whose tool has them (etcdutl 3.5.10+);
   * others restore the revisions as the snapshot holds them.
   */
  bumpRevision?: number;
  /**
   * `--skip-hash-check` on every host: the snapshot is a member's database file copied with its
   * etcd stopped (its record says so), which has no snapshot hash to check.
   */
  skipHashCheck?: boolean;
}

export type RestorePhase = 'prepare' | 'stop' | 'restore' | 'start';

export const PHASE_TITLES: Record<RestorePhase, string> = {
  prepare: 'upload the snapshot and check every host (nothing is stopped yet)',
  stop: 'stop etcd on every member',
  restore: 'restore the snapshot on every member into a new data dir',
  start: 'put the restored data dirs in place and start etcd on every member',
};

const recordFileOf = (file: string) => file.replace(/\.db$/, '.json');

/**
 * Reads the snapshot's record and checks the file against it (SHA-256 and size) and against the
 * cluster; throws `snapshot-invalid` naming what differs.
 */
export async function verifySnapshot(
  cluster: Cluster,
  file: string,
  /** The cluster the snapshot was saved from, when it is another one (default: `cluster`). */
  fromCluster: string = cluster.name,
): Promise<SnapshotInfo> {
  if (!SNAPSHOT_NAME.test(basename(file))) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${JSON.stringify(basename(file))} is not named as k3s-etcd names snapshots (the UTC time it was saved, such as 20250102T030405Z.db, under backups/${fromCluster}/ with its .json record): only snapshots saved by \`k3s-etcd snapshot save\` are restored. Nothing was done on any host.`,
    );
  }
  const recordFile = recordFileOf(file);
  let record: unknown;
  try {
    record = JSON.parse(await readFile(recordFile, 'utf8'));
  } catch (err) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${file} has no readable record beside it (${recordFile}: ${errorMessage(err)}): only snapshots saved by \`k3s-etcd snapshot save\` (or "Save etcd Snapshot") are restored, after their SHA-256 is checked against the record. Nothing was done on any host.`,
      { cause: err },
    );
  }
  const problem = snapshotRecordProblem(record, fromCluster);
  if (problem) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${recordFile} is not the record of a snapshot of ${fromCluster}: ${problem}. Restoring it is refused; nothing was done on any host.`,
    );
  }
  const info = snapshotInfo(record as SnapshotInfo, file);
  const st = await lstat(file).catch((err: unknown) => {
    throw new K3sEtcdError('snapshot-invalid', `Cannot read ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  });
  if (!st.isFile())
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${file} is not a regular file (a symbolic link or a folder): it is not restored. Nothing was done on any host.`,
    );
  const got = await sha256File(file);
  if (got.sha256 !== info.sha256 || got.bytes !== info.bytes) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${basename(file)} does not match its record: the file has ${got.bytes} bytes with SHA-256 ${got.sha256}, ${basename(recordFile)} says ${info.bytes} bytes with SHA-256 ${info.sha256}. The snapshot changed or is damaged since it was saved: it is not restored, and nothing was done on any host.`,
    );
  }
  return info;
}

/**
 * The restore of `file` onto `cluster`'s etcd hosts, in words and per member, once the snapshot
 * is checked against its record (`snapshot-invalid` otherwise). Reads no host.
 */
export async function planRestore(
  cluster: Cluster,
  file: string,
  opts: {
    now?: Date;
    token?: string;
    /** A snapshot saved from another cluster (K3s's embedded etcd moving here): its record names that one. */
    fromCluster?: string;
    bumpRevision?: number;
  } = {},
): Promise<RestorePlan> {
  if (cluster.datastore !== 'external-etcd') {
    throw new K3sEtcdError(
      'restore-refused',
      `Cluster ${cluster.name} runs K3s's embedded etcd: K3s restores it itself (k3s server --cluster-reset --cluster-reset-restore-path=SNAPSHOT, see the K3s documentation on etcd snapshots). This restore is for an external etcd provisioned by k3s-etcd.`,
    );
  }
  const hosts = etcdHosts(cluster);
  if (hosts.length === 0) {
    throw new K3sEtcdError(
      'restore-refused',
      `Cluster ${cluster.name} has no host with the etcd role in k3s-etcd.yaml: nothing to restore onto.`,
    );
  }
  checkDataDir(cluster);
  const snapshot = await verifySnapshot(cluster, file, opts.fromCluster);
  const stamp = backupStamp(opts.now ?? new Date());
  const token = opts.token ?? `${cluster.etcd.initialClusterToken}-restored-${stamp}`;
  const tool: RestoreTool = etcdMinor(cluster.etcd.version) >= 5 ? 'etcdutl' : 'etcdctl';
  const data = cluster.etcd.dataDir;
  const upload = `${RESTORE_DIR}/${basename(file)}`;
  const cmds = restoreCommands(cluster, upload, {
    token,
    tool,
    binDir: BIN_DIR,
    dataDirOf: () => `${data}.restored`,
    ...(opts.bumpRevision && restoreBumps(cluster.etcd.version, tool)
      ? { bumpRevision: opts.bumpRevision }
      : {}),
    ...(snapshot.dataDirCopy ? { skipHashCheck: true } : {}),
  });
  const members: RestoreMember[] = hosts.map((h, i) => ({
    host: h.name,
    member: h.memberName,
    address: h.address,
    upload,
    dataDir: data,
    restoredDir: `${data}.restored`,
    keptAs: `${data}.before-restore-${stamp}`,
    command: cmds[i]?.command ?? '',
  }));
  const names = hosts.map((h) => h.name).join(', ');
  const servers = k3sServers(cluster).map((h) => h.name);
  const steps = [
    `check the snapshot: ${snapshot.bytes} bytes with SHA-256 ${snapshot.sha256}, as its record says (revision ${snapshot.revision}, saved ${snapshot.createdAt} from ${snapshot.from})`,
    `reach every member host over SSH (${names}) and read each: systemd, the etcd unit and ${ENV_FILE}, the ${tool} to restore with, free space; nothing changes unless all are ready`,
    `upload the snapshot to ${upload} (0600, root) on every host and check its SHA-256 there`,
    `stop etcd on every member (${names}): the cluster is down from here until it starts again${servers.length > 0 ? `; K3s servers ${servers.join(', ')} lose their datastore meanwhile` : ''}`,
    `on every host: ${tool} snapshot restore into ${data}.restored with that member's name and peer URL and the new cluster token ${token}${opts.bumpRevision ? `, with --bump-revision ${opts.bumpRevision} --mark-compacted where the host's tool has them (etcdutl 3.5.10 and later; otherwise the revisions stay as the snapshot holds them)` : ''}${snapshot.dataDirCopy ? ", with --skip-hash-check (the snapshot is a member's database file copied with its etcd stopped: it has no snapshot hash; its SHA-256 was checked instead)" : ''} (if this fails anywhere, the restored dirs are removed and etcd starts again on its old data everywhere)`,
    `on every host: move ${data} aside to ${data}.before-restore-${stamp} (kept, never deleted), put ${data}.restored in its place (owner etcd, 0700, cluster marker), and in ${ENV_FILE} (old copy kept beside it) ETCD_INITIAL_CLUSTER_TOKEN=${token} and ETCD_INITIAL_CLUSTER_STATE=existing`,
    `start etcd on every member and wait until each is active (on a failure: the last lines of journalctl -u etcd)`,
    `wait until all ${hosts.length} members answer healthy over mutual TLS, and compare the revision they serve with the snapshot's (${snapshot.revision}); the uploaded copy is removed`,
    ...(servers.length > 0
      ? [
          `then restart K3s on ${servers.join(', ')} (one server at a time) so it reads the restored state: writes after revision ${snapshot.revision} are gone`,
        ]
      : []),
  ];
  return {
    cluster: cluster.name,
    file,
    snapshot,
    stamp,
    token,
    tool,
    members,
    steps,
    k3sServers: servers,
    ...(opts.bumpRevision ? { bumpRevision: opts.bumpRevision } : {}),
    ...(snapshot.dataDirCopy ? { skipHashCheck: true } : {}),
  };
}

/** The restore as text: the steps, then each member's command (for previews and the CLI). */
export function restorePlanText(plan: RestorePlan): string[] {
  return [
    `Restore etcd cluster ${plan.cluster} from the snapshot of ${plan.snapshot.createdAt} (revision ${plan.snapshot.revision}): ${plan.file}`,
    '',
    ...plan.steps.map((s, i) => `  ${i + 1}. ${s}`),
    '',
    'The restore command on each host (run as root, with etcd stopped on every member):',
    ...plan.members.flatMap((m) => [`  # ${m.host} (member ${m.member})`, `  ${m.command}`]),
  ];
}

/**
 * The tool a host restores with: etcdutl from etcd 3.5 when installed there, else etcdctl up to
 * 3.5 (3.5's etcdctl still restores; 3.6 removed it). An error message when neither fits.
 */
export function chooseTool(
  version: string,
  installed: readonly string[],
  binDir: string,
): { tool: RestoreTool } | { error: string } {
  const minor = etcdMinor(version);
  if (minor >= 5 && installed.includes('etcdutl')) return { tool: 'etcdutl' };
  if (!(minor >= 6) && installed.includes('etcdctl')) return { tool: 'etcdctl' };
  return {
    error:
      minor >= 6
        ? `etcd ${version} restores with etcdutl (etcdctl snapshot restore was removed in 3.6), and ${binDir}/etcdutl is not there: copy etcdutl from the etcd ${version} release into ${binDir}, then run the restore again`
        : `neither ${binDir}/etcdctl nor ${binDir}/etcdutl is there: provision etcd on the host first (k3s-etcd provision etcd)`,
  };
}
