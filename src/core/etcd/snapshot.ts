/**
 * Snapshots of the external etcd (K3s snapshots only its embedded one): streamed from a member
 * that answers into `backups/<cluster>/<UTC time>.db`, with a JSON record beside it (SHA-256,
 * bytes, revision, member); listed from there; and restored with commands generated per member
 * from the inventory (`etcdctl snapshot restore` for etcd 3.4, `etcdutl` from 3.5), which the
 * person reads and runs, or `restoreSnapshot` (./restore) runs on every member over SSH.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledError, K3sEtcdError, errorMessage } from '../errors';
import type { Cluster } from '../inventory/types';
import { etcdHosts, peerUrl, initialClusterOf } from '../inventory/select';
import { backupStamp } from '../k3s/backup';
import { BACKUPS_DIR } from '../k3s/ops';
import { ignoreSecretsFolder } from '../pki/gitignore';
import { shellQuote } from '../ssh/quote';
import { checkDataDir } from './memberHost';
import { oneLine } from '../plan/steps';
import { healthyClient } from './connection';

export interface SnapshotInfo {
  cluster: string;
  file: string;
  sha256: string;
  bytes: number;
  revision: string;
  /** The client URL it was streamed from. */
  from: string;
  createdAt: string;
}

export async function saveSnapshot(
  cluster: Cluster,
  opts: { workspaceDir: string; signal?: AbortSignal; onProgress?(bytes: number): void },
): Promise<SnapshotInfo> {
  const { client, endpoint } = await healthyClient(cluster, { timeoutMs: 10_000 });
  const createdAt = new Date();
  const dir = join(opts.workspaceDir, BACKUPS_DIR, cluster.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A snapshot holds every Kubernetes Secret: never committed by accident.
  await ignoreSecretsFolder(opts.workspaceDir, BACKUPS_DIR);
  const file = join(dir, `${backupStamp(createdAt)}.db`);
  const hash = createHash('sha256');
  let bytes = 0;
  let revision = '';
  try {
    // The revision the snapshot holds: the member's, read just before the stream starts (the
    // stream's messages carry no header).
    revision = (await client.maintenance.status()).header.revision;
    const out = createWriteStream(file, { mode: 0o600 });
    const stream = await client.maintenance.snapshot();
    // etcd3 types it as events only; it is gRPC's ClientReadableStream, a Node Readable.
    const flow = stream as unknown as { pause(): void; resume(): void };
    await new Promise<void>((resolve, reject) => {
      const fail = (err: unknown) => {
        out.destroy();
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      opts.signal?.addEventListener('abort', () => fail(new CancelledError('snapshot')), {
        once: true,
      });
      // Backpressure: a disk slower than etcd pauses the stream instead of queueing the
      // database in memory.
      stream.on('data', (m) => {
        hash.update(m.blob);
        bytes += m.blob.byteLength;
        if (!out.write(m.blob)) {
          flow.pause();
          out.once('drain', () => flow.resume());
        }
        opts.onProgress?.(bytes);
      });
      out.on('error', fail);
      stream.on('error', fail);
      stream.on('end', () => out.end(() => resolve()));
    });
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof CancelledError) throw err;
    throw new K3sEtcdError(
      'etcd-unreachable',
      `The snapshot from ${endpoint} failed: ${errorMessage(err)}. Nothing was kept.`,
      { cause: err },
    );
  } finally {
    client.close();
  }
  const info: SnapshotInfo = {
    cluster: cluster.name,
    file,
    sha256: hash.digest('hex'),
    bytes,
    revision,
    from: endpoint,
    createdAt: createdAt.toISOString(),
  };
  await writeFile(file.replace(/\.db$/, '.json'), `${JSON.stringify(info, null, 2)}\n`, {
    mode: 0o600,
  });
  return info;
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
  return undefined;
}

/** The record's fields, for the snapshot at `file` (never the file the record names). */
export function snapshotInfo(record: SnapshotInfo, file: string): SnapshotInfo {
  const { cluster, sha256, bytes, revision, from, createdAt } = record;
  return { cluster, file, sha256, bytes, revision, from, createdAt };
}

/**
 * The cluster's snapshots in the workspace, newest first: the `.db` files of
 * `backups/<cluster>/` named as `saveSnapshot` names them, each with a valid record beside it.
 * The file comes from the folder's listing, never from what a record says.
 */
export async function listSnapshots(
  workspaceDir: string,
  cluster: string,
): Promise<SnapshotInfo[]> {
  const dir = join(workspaceDir, BACKUPS_DIR, cluster);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = entries.filter((e) => e.isFile() && SNAPSHOT_NAME.test(e.name)).map((e) => e.name);
  const out: SnapshotInfo[] = [];
  for (const n of names.sort().reverse()) {
    try {
      const record: unknown = JSON.parse(
        await readFile(join(dir, n.replace(/\.db$/, '.json')), 'utf8'),
      );
      if (snapshotRecordProblem(record, cluster) === undefined)
        out.push(snapshotInfo(record as SnapshotInfo, join(dir, n)));
    } catch {
      // no record: not ours
    }
  }
  return out;
}

/** The minor version of an etcd 3 version string ("v3.5.17" → 5), NaN when it is not one. */
export function etcdMinor(version: string): number {
  const minor = /^v?3\.(\d+)/.exec(version)?.[1];
  return minor === undefined ? NaN : Number(minor);
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
      ].join(' '),
    };
  });
}
