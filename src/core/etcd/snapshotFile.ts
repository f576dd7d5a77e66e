/**
 * A snapshot file of this tool and what is generated from it: its name and JSON record (checked
 * before any field reaches a preview or a host), and the restore commands per member (etcdutl
 * from etcd 3.5, `etcdctl snapshot restore` before), which the person runs by hand or the
 * restore operation runs over SSH.
 */
import { checkDataDir } from './memberHost';
import { etcdHosts, initialClusterOf, peerUrl } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { oneLine } from '../plan/steps';
import { shellQuote } from '../ssh/quote';

export interface SnapshotInfo {
  cluster: string;
  file: string;
  sha256: string;
  bytes: number;
  revision: string;
  /** The client URL it was streamed from (for a copied database: its member's). */
  from: string;
  createdAt: string;
  /**
   * A member's database file copied with its etcd stopped, not streamed by etcd: it carries no
   * snapshot hash, so it is restored with `--skip-hash-check` (its SHA-256 here is checked
   * instead, on both ends of the copy and after every upload).
   */
  dataDirCopy?: boolean;
}

/** The name `saveSnapshot` gives a snapshot: its UTC time (`20250102T030405Z.db`). */
export const SNAPSHOT_NAME = /^\d{8}T\d{6}Z\.db$/;

/**
 * Why `record` (a snapshot's JSON record, read from disk) is not one `saveSnapshot` wrote for
 * `cluster`, or undefined when it is. Its fields reach previews, titles and confirmations.
 */
export function snapshotRecordProblem(record: unknown, cluster: string): string | undefined {
  if (record === null || typeof record !== 'object') return 'it is not a JSON object';
  const r = record as Partial<Record<keyof SnapshotInfo, unknown>>;
  if (typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256))
    return 'it holds no SHA-256';
  if (typeof r.bytes !== 'number' || !Number.isSafeInteger(r.bytes) || r.bytes < 0)
    return 'it holds no size';
  if (typeof r.cluster !== 'string' || r.cluster !== cluster)
    return `it is a snapshot of cluster ${typeof r.cluster === 'string' ? oneLine(r.cluster) : 'unknown'}, not of ${cluster}`;
  if (typeof r.revision !== 'string' || !/^\d{1,20}$/.test(r.revision))
    return 'its revision is not a number';
  if (
    typeof r.createdAt !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/.test(r.createdAt)
  )
    return 'its time is not a UTC time';
  if (typeof r.from !== 'string' || !/^https?:\/\/[A-Za-z0-9.:[\]-]+$/.test(r.from))
    return 'its member is not a client URL';
  if (r.dataDirCopy !== undefined && typeof r.dataDirCopy !== 'boolean')
    return 'its dataDirCopy is not true or false';
  return undefined;
}

/** The record's fields, for the snapshot at `file` (never the file the record names). */
export function snapshotInfo(record: SnapshotInfo, file: string): SnapshotInfo {
  const { cluster, sha256, bytes, revision, from, createdAt, dataDirCopy } = record;
  return {
    cluster,
    file,
    sha256,
    bytes,
    revision,
    from,
    createdAt,
    ...(dataDirCopy === true ? { dataDirCopy } : {}),
  };
}

/** The minor version of an etcd 3 version string ("v3.5.17" → 5), NaN when it is not one. */
export function etcdMinor(version: string): number {
  const minor = /^v?3\.(\d+)/.exec(version)?.[1];
  return minor === undefined ? NaN : Number(minor);
}

/**
 * Does this restore tool take `--bump-revision N --mark-compacted` (etcd-io/etcd#16029, in
 * etcdutl from 3.5.10 and in 3.6)? etcdctl's restore never had them; before 3.5.10 neither did
 * etcdutl. Unknown versions: no.
 */
export function restoreBumps(version: string, tool: 'etcdutl' | 'etcdctl'): boolean {
  const m = /^v?3\.(\d+)\.(\d+)/.exec(version);
  if (tool !== 'etcdutl' || !m) return false;
  const [minor, patch] = [Number(m[1]), Number(m[2])];
  return minor > 5 || (minor === 5 && patch >= 10);
}

export interface RestoreCommand {
  host: string;
  member: string;
  /** Where the restored data dir goes (the member's data dir is replaced by it by hand). */
  dataDir: string;
  command: string;
}

/**
 * Per member: the restore into a new data dir, as etcd documents it (every member from the same
 * snapshot, with the inventory's names, peer URLs and a new cluster token).
 */
export function restoreCommands(
  cluster: Cluster,
  snapshot: string,
  opts: {
    dataDirOf?: (member: string) => string;
    token?: string;
    /** The tool by name; default etcdutl from etcd 3.5, etcdctl before. */
    tool?: 'etcdutl' | 'etcdctl';
    /** Where the tool is installed on the hosts (default: found on PATH). */
    binDir?: string;
    /**
     * `--bump-revision N --mark-compacted`: the restored revision moves N past the snapshot's
     * and older revisions read as compacted (watchers relist). Only for a tool that has them
     * (`restoreBumps`).
     */
    bumpRevision?: number;
    /** `--skip-hash-check`: a database file copied from a data dir has no snapshot hash. */
    skipHashCheck?: boolean;
  } = {},
): RestoreCommand[] {
  checkDataDir(cluster);
  const name = opts.tool ?? (etcdMinor(cluster.etcd.version) >= 5 ? 'etcdutl' : 'etcdctl');
  const path = shellQuote(opts.binDir ? `${opts.binDir}/${name}` : name);
  const tool = name === 'etcdutl' ? path : `ETCDCTL_API=3 ${path}`;
  const token = opts.token ?? `${cluster.etcd.initialClusterToken}-restored`;
  return etcdHosts(cluster).map((h) => {
    const dataDir = opts.dataDirOf?.(h.memberName) ?? `${cluster.etcd.dataDir}.restored`;
    return {
      host: h.name,
      member: h.memberName,
      dataDir,
      command: [
        `${tool} snapshot restore ${shellQuote(snapshot)}`,
        `--name ${shellQuote(h.memberName)}`,
        `--initial-cluster ${shellQuote(initialClusterOf(cluster))}`,
        `--initial-cluster-token ${shellQuote(token)}`,
        `--initial-advertise-peer-urls ${shellQuote(peerUrl(cluster, h))}`,
        `--data-dir ${shellQuote(dataDir)}`,
        ...(opts.bumpRevision ? [`--bump-revision ${opts.bumpRevision} --mark-compacted`] : []),
        ...(opts.skipHashCheck ? ['--skip-hash-check'] : []),
      ].join(' '),
    };
  });
}
