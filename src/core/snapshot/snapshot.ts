/**
 * Snapshots of the external etcd (K3s snapshots only its embedded one): streamed from a member
 * that answers into `backups/<cluster>/<UTC time>.db`, with a JSON record beside it (SHA-256,
 * bytes, revision, member), and listed from there. A stopped member's database file copied over
 * SSH is kept the same way (`copyMemberDatabase`), its record saying it has no snapshot hash. The record's format and the restore commands
 * generated from it are in etcd/snapshotFile.ts; the restore over SSH is the restore operation.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledError, K3sEtcdError, errorMessage } from '../errors';
import { createEndpointClient, type EtcdTls } from '../etcd/client';
import { connectionFor, healthyClient } from '../etcd/connection';
import { openDbFile } from '../etcd/dbFile';
import {
  SNAPSHOT_NAME,
  snapshotInfo,
  snapshotRecordProblem,
  type SnapshotInfo,
} from '../etcd/snapshotFile';
import { BACKUPS_DIR } from '../files/workspace';
import { backupStamp } from '../format/stamp';
import type { Cluster } from '../inventory/types';
import { ignoreSecretsFolder } from '../pki/gitignore';
import { downloadFile } from '../ssh/download';
import { shellQuote } from '../ssh/quote';
import type { SshSession } from '../ssh/session';

/**
 * Streams a snapshot into the workspace with its record. From the first member serving a quorum
 * read, or with `endpoint` from that member alone, quorum or not: etcd serves the Snapshot RPC
 * (and the status giving its revision) from the member's own database, which is what a quorum
 * recovery saves from its survivor before changing anything.
 */
export async function saveSnapshot(
  cluster: Cluster,
  opts: {
    workspaceDir: string;
    endpoint?: string;
    /** With `endpoint`: its client TLS (another cluster's, such as K3s's embedded etcd). */
    tls?: EtcdTls;
    /** The client URL the record names (default: `endpoint`, which may be a local tunnel). */
    from?: string;
    signal?: AbortSignal;
    onProgress?(bytes: number): void;
  },
): Promise<SnapshotInfo> {
  const { client, endpoint } = opts.endpoint
    ? {
        client: await createEndpointClient(opts.endpoint, {
          tls: opts.tls ?? (await connectionFor(cluster)).tls,
          timeoutMs: 10_000,
        }),
        endpoint: opts.endpoint,
      }
    : await healthyClient(cluster, { timeoutMs: 10_000 });
  const createdAt = new Date();
  const dir = join(opts.workspaceDir, BACKUPS_DIR, cluster.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A snapshot holds every Kubernetes Secret: never committed by accident.
  await ignoreSecretsFolder(opts.workspaceDir, BACKUPS_DIR);
  const file = join(dir, `${backupStamp(createdAt)}.db`);
  const hash = createHash('sha256');
  let bytes = 0;
  let revision = '';
  /** Set once this run made `file`: only then is it this run's to remove. */
  let created = false;
  try {
    // The revision the snapshot holds: the member's, read just before the stream starts (the
    // stream's messages carry no header).
    revision = (await client.maintenance.status()).header.revision;
    // Never over another snapshot (one saved in the same second has the same name).
    const out = createWriteStream(file, { mode: 0o600, flags: 'wx' });
    await new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new K3sEtcdError(
          'usage',
          `${file} already exists (a snapshot saved in the same second): it was left as it is. Save again.`,
        );
      throw err;
    });
    created = true;
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
    if (created) await rm(file, { force: true });
    if (err instanceof CancelledError || err instanceof K3sEtcdError) throw err;
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
    from: opts.from ?? endpoint,
    createdAt: createdAt.toISOString(),
  };
  await writeFile(file.replace(/\.db$/, '.json'), `${JSON.stringify(info, null, 2)}\n`, {
    mode: 0o600,
  });
  return info;
}

/**
 * A member's database file (`<data dir>/member/snap/db`) copied from its host over `session`,
 * read as root, while its etcd is STOPPED (the caller stops it: a database in use is not a
 * consistent copy), into `backups/<cluster>/<UTC time>.db` with its record: the host's size and
 * SHA-256 of the file must be the copy's (else nothing is kept), the revision is read from the
 * copy, and the record says it is a data-dir copy (no snapshot hash: restored with
 * `--skip-hash-check`). `from` is the member's client URL, for the record.
 */
export async function copyMemberDatabase(
  cluster: Cluster,
  opts: {
    workspaceDir: string;
    session: SshSession;
    /** The database file on the host. */
    path: string;
    from: string;
    signal?: AbortSignal;
    onProgress?(bytes: number): void;
  },
): Promise<SnapshotInfo> {
  const label = `${opts.session.label}:${opts.path}`;
  const f = shellQuote(opts.path);
  const seen = await opts.session.exec(
    `if [ -f ${f} ] && [ ! -L ${f} ]; then printf '%s %s\\n' "$(stat -c %s ${f})" "$(sha256sum < ${f} | cut -d' ' -f1)"; else echo 'not a regular file' >&2; exit 3; fi`,
    { sudo: true, ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  const m = /^(\d{1,15}) ([0-9a-f]{64})$/.exec(seen.stdout.trim());
  if (seen.code !== 0 || !m)
    throw new K3sEtcdError(
      'etcd-unreachable',
      `Cannot read the etcd database ${label}: ${seen.stderr.trim() || seen.stdout.trim() || `exit ${seen.code}`}. Nothing was kept.`,
    );
  const createdAt = new Date();
  const dir = join(opts.workspaceDir, BACKUPS_DIR, cluster.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // It holds every Kubernetes Secret: never committed by accident.
  await ignoreSecretsFolder(opts.workspaceDir, BACKUPS_DIR);
  const file = join(dir, `${backupStamp(createdAt)}.db`);
  try {
    const got = await downloadFile(opts.session, opts.path, file, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onBytes: opts.onProgress } : {}),
    });
    if (got.bytes !== Number(m[1]) || got.sha256 !== m[2])
      throw new K3sEtcdError(
        'etcd-unreachable',
        `The copy of ${label} has ${got.bytes} bytes with SHA-256 ${got.sha256}; the host read ${m[1]} bytes with SHA-256 ${m[2]} (is its etcd still running?). Nothing was kept.`,
      );
    const db = await openDbFile(file, opts.signal ? { signal: opts.signal } : {});
    const revision = await db.revision().finally(() => db.close());
    const info: SnapshotInfo = {
      cluster: cluster.name,
      file,
      sha256: got.sha256,
      bytes: got.bytes,
      revision,
      from: opts.from,
      createdAt: createdAt.toISOString(),
      dataDirCopy: true,
    };
    await writeFile(file.replace(/\.db$/, '.json'), `${JSON.stringify(info, null, 2)}\n`, {
      mode: 0o600,
    });
    return info;
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof K3sEtcdError) throw err;
    throw new K3sEtcdError(
      'etcd-unreachable',
      `Copying the etcd database ${label} failed: ${errorMessage(err)}. Nothing was kept.`,
      { cause: err },
    );
  }
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
