/**
 * Proving the backups (`k3s-etcd backup drill`) and bringing one back (`backup fetch`): the newest
 * backup's copy (off the host when there is one: a destination host over SSH, S3 through the
 * backup host's own credentials, else the backup host's folder) streamed here, checked against
 * the record's ciphertext SHA-256, decrypted with a private key the person gives (streaming, the
 * plain SHA-256 checked), and
 *  - drill: restored into a throwaway etcd on loopback here (`etcdctl snapshot restore`, etcd on
 *    spare ports), its key count and revision compared with the record; pass or fail recorded on
 *    the backup host (`<localDir>/drills/`), where status reads it;
 *  - fetch: written into `backups/<cluster>/` with the record `snapshot restore` accepts.
 */
import { spawn, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { errorMessage, K3sEtcdError } from '../errors';
import { createEndpointClient } from '../etcd/client';
import type { SnapshotInfo } from '../etcd/snapshotFile';
import { BACKUPS_DIR } from '../files/workspace';
import { backupStamp } from '../format/stamp';
import { clientUrl } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { ignoreSecretsFolder } from '../pki/gitignore';
import { shellQuote as q } from '../ssh/quote';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { decryptBackup } from './crypto';
import { backupSettings, backupHosts } from './install';
import { isRecord, parseBackupRecord, type BackupRecord } from './record';
import { backupStatus, type BackupEntry, type DrillResult } from './status';

const run = promisify(execFile);

export interface FetchOptions {
  ssh: SshContext;
  /** The private key (PEM) that matches one of the backup's recipients. */
  identity: string;
  /** `local`, a destination host's name, or `s3` (default: the first copy off the host). */
  from?: string;
  /** A backup file name (default: the newest). */
  file?: string;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

interface Source {
  kind: 'local' | 'host' | 's3';
  where: string;
  /** Streams the file `name` of that place into `sink`. */
  read(name: string, sink: NodeJS.WritableStream): Promise<void>;
}

function sources(
  cluster: Cluster,
  entry: BackupEntry,
  ssh: SshContext,
  signal?: AbortSignal,
): Source[] {
  const b = backupSettings(cluster);
  const holder = backupHosts(cluster).find((h) => h.name === entry.on);
  const viaHost = (hostName: string, command: (name: string) => string) => {
    const host = cluster.hosts.find((h) => h.name === hostName);
    return async (name: string, sink: NodeJS.WritableStream) => {
      if (!host) throw new K3sEtcdError('usage', `no host ${hostName}`);
      const t = await sshOpener(cluster, host, ssh)(signal);
      try {
        const r = await t.exec(command(name), {
          sudo: true,
          stdoutStream: sink as never,
          ...(signal ? { signal } : {}),
        });
        if (r.code !== 0)
          throw new K3sEtcdError(
            'ssh-disconnected',
            `${hostName}: cannot read ${name}: ${r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}`,
          );
      } finally {
        t.close();
      }
    };
  };
  const out: Source[] = [];
  for (const d of b.destinations) {
    // The holder makes no copy to itself (install.ts's backupEnv): not a place to look.
    if (d.kind === 'host' && d.host !== entry.on)
      out.push({
        kind: 'host',
        where: d.host,
        read: viaHost(d.host, (n) => `cat -- ${q(`${d.path}/${n}`)}`),
      });
    else if (d.kind === 's3' && holder)
      out.push({
        kind: 's3',
        where: 's3',
        // The credentials stay on the backup host: the object is fetched there and streamed here.
        read: viaHost(
          holder.name,
          (n) =>
            `ak=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' ${q(d.credentialsFile)} | head -n 1); sk=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' ${q(d.credentialsFile)} | head -n 1); c=$(mktemp); printf 'user = "%s:%s"\\n' "$ak" "$sk" > "$c"; curl -sS --fail -K "$c" --aws-sigv4 ${q(`aws:amz:${d.region}:s3`)} -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' ${q(`${d.endpoint}/${d.bucket}/${d.prefix}${n}`)}; r=$?; rm -f "$c"; exit $r`,
        ),
      });
  }
  if (holder)
    out.push({
      kind: 'local',
      where: 'local',
      read: viaHost(holder.name, (n) => `cat -- ${q(`${b.localDir}/${n}`)}`),
    });
  return out;
}

/** Streams into `file` (0600) and returns its SHA-256. */
async function fetchTo(src: Source, name: string, file: string): Promise<string> {
  const h = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _e, done) {
      h.update(chunk);
      done(null, chunk);
    },
  });
  const out = createWriteStream(file, { mode: 0o600 });
  const written = pipeline(tap, out);
  // The SSH exec writes into `tap` but never ends it: end it here (or fail it) so the file closes.
  await src.read(name, tap).then(
    () => tap.end(),
    (err: unknown) => tap.destroy(err as Error),
  );
  await written;
  return h.digest('hex');
}

export interface Fetched {
  entry: BackupEntry;
  source: string;
  /** The record as the source holds it (checked against the backup host's). */
  record: BackupRecord;
  /** The plain snapshot, in `dir`. */
  plain: string;
  dir: string;
}

/** The backup fetched and decrypted into a private temp folder (the caller removes `dir`). */
export async function fetchBackup(cluster: Cluster, opts: FetchOptions): Promise<Fetched> {
  const status = await backupStatus(cluster, {
    ssh: opts.ssh,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const entry = opts.file ? status.backups.find((b) => b.file === opts.file) : status.backups[0];
  if (!entry)
    throw new K3sEtcdError(
      'usage',
      opts.file
        ? `No backup ${opts.file} on ${status.hosts.map((h) => h.host).join(', ')}.`
        : `No backup of ${cluster.name} yet: \`k3s-etcd backup run\` takes one.`,
    );
  const all = sources(cluster, entry, opts.ssh, opts.signal);
  // Off the host first: that is the copy a lost host leaves.
  const src = opts.from
    ? all.find((s) => s.where === opts.from)
    : (all.find((s) => s.kind !== 'local') ?? all.find((s) => s.kind === 'local'));
  if (!src)
    throw new K3sEtcdError(
      'usage',
      `No copy of ${entry.file} at ${opts.from ?? 'any place'} (places: ${all.map((s) => s.where).join(', ')}).`,
    );
  const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-drill-'));
  try {
    const base = entry.file.slice(0, -'.db.gz.enc'.length);
    opts.onLine?.(`fetching ${entry.file} from ${src.where}`);
    const recText = join(dir, 'record.json');
    await fetchTo(src, `${base}.json`, recText);
    const record = parseBackupRecord(await readFile(recText, 'utf8'));
    if (!isRecord(record))
      throw new K3sEtcdError('usage', `the copy's record at ${src.where}: ${record.problem}`);
    if (record.sha256 !== entry.sha256 || record.encryptedSha256 !== entry.encryptedSha256)
      throw new K3sEtcdError(
        'usage',
        `the record at ${src.where} differs from the one on ${entry.on}: the copy is not this backup`,
      );
    const enc = join(dir, entry.file);
    const sha = await fetchTo(src, entry.file, enc);
    if (sha !== record.encryptedSha256)
      throw new K3sEtcdError(
        'usage',
        `the copy of ${entry.file} at ${src.where} is damaged: its SHA-256 is ${sha}, the record says ${record.encryptedSha256}`,
      );
    const plain = join(dir, 'snapshot.db');
    await decryptBackup(enc, plain, record, opts.identity);
    await rm(enc, { force: true });
    opts.onLine?.(`decrypted: ${record.size} bytes, SHA-256 ${record.sha256} as recorded`);
    return { entry, source: src.where, record, plain, dir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** The local binaries a drill restores with: etcd, and etcdutl when beside it, else etcdctl. */
export interface LocalEtcd {
  etcd: string;
  etcdctl: string;
  /** etcd 3.5 and later ship it; 3.6's etcdctl no longer restores snapshots. */
  etcdutl?: string;
}

const isFile = (p: string) =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  );

/** etcd and etcdctl (and etcdutl when there) here: on PATH, or beside the inventory's uploadPath. */
async function localEtcd(cluster: Cluster): Promise<LocalEtcd> {
  const dirs = [
    ...(cluster.etcd.uploadPath ? [cluster.etcd.uploadPath] : []),
    ...(process.env['PATH'] ?? '').split(':').filter(Boolean),
  ];
  for (const d of dirs) {
    const ok = await Promise.all(['etcd', 'etcdctl'].map((b) => isFile(join(d, b))));
    if (ok.every(Boolean)) {
      const etcdutl = join(d, 'etcdutl');
      return {
        etcd: join(d, 'etcd'),
        etcdctl: join(d, 'etcdctl'),
        ...((await isFile(etcdutl)) ? { etcdutl } : {}),
      };
    }
  }
  throw new K3sEtcdError(
    'usage',
    'No etcd and etcdctl here to restore the backup into: install them (Debian: etcd-server etcd-client) or set etcd.uploadPath to a folder holding both.',
  );
}

/** The snapshot restore command line: etcdutl when there (3.5+), else etcdctl (3.4). */
export function restoreArgv(
  bins: LocalEtcd,
  snapshot: string,
  dataDir: string,
  peerUrl: string,
): { file: string; args: string[] } {
  const args = [
    'snapshot',
    'restore',
    snapshot,
    '--data-dir',
    dataDir,
    '--name',
    'drill',
    '--initial-cluster',
    `drill=${peerUrl}`,
    '--initial-advertise-peer-urls',
    peerUrl,
  ];
  return { file: bins.etcdutl ?? bins.etcdctl, args };
}

/** Restores `plain` into a throwaway etcd on loopback and reads its key count and revision. */
async function throwawayCount(
  cluster: Cluster,
  plain: string,
  dir: string,
  signal?: AbortSignal,
): Promise<{ keys: number; revision: number }> {
  const bins = await localEtcd(cluster);
  const [client, peer] = [await freePort(), await freePort()];
  const data = join(dir, 'data');
  const peerUrl = `http://127.0.0.1:${peer}`;
  const restore = restoreArgv(bins, plain, data, peerUrl);
  await run(restore.file, restore.args, { env: { ...process.env, ETCDCTL_API: '3' } });
  const child = spawn(
    bins.etcd,
    [
      '--name',
      'drill',
      '--data-dir',
      data,
      '--listen-client-urls',
      `http://127.0.0.1:${client}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${client}`,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `drill=${peerUrl}`,
    ],
    { stdio: 'ignore' },
  );
  const c = await createEndpointClient(`http://127.0.0.1:${client}`, { timeoutMs: 3000 });
  try {
    const until = Date.now() + 30_000;
    for (;;) {
      if (signal?.aborted) throw new K3sEtcdError('cancelled', 'Drill cancelled');
      try {
        const r = await c.kv.range({
          key: Buffer.from([0]),
          range_end: Buffer.from([0]),
          count_only: true,
        });
        return { keys: Number(r.count), revision: Number(r.header.revision) };
      } catch (err) {
        if (Date.now() > until || child.exitCode !== null)
          throw new K3sEtcdError(
            'usage',
            `the throwaway etcd did not answer (${errorMessage(err)})`,
          );
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  } finally {
    c.close();
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}

export interface DrillOutcome extends DrillResult {
  source: string;
  record?: BackupRecord;
}

/** The drill; its outcome is also recorded on the backup host. Never throws for a failed drill. */
export async function drillBackup(cluster: Cluster, opts: FetchOptions): Promise<DrillOutcome> {
  const at = new Date().toISOString().slice(0, 19) + 'Z';
  let outcome: DrillOutcome;
  let fetched: Fetched | undefined;
  try {
    fetched = await fetchBackup(cluster, opts);
    const got = await throwawayCount(cluster, fetched.plain, fetched.dir, opts.signal);
    const ok = got.keys === fetched.record.keys && got.revision === fetched.record.revision;
    outcome = {
      at,
      file: fetched.entry.file,
      ok,
      source: fetched.source,
      record: fetched.record,
      detail: ok
        ? `restored from ${fetched.source} into a throwaway etcd: ${got.keys} keys at revision ${got.revision}, as recorded`
        : `restored from ${fetched.source}: ${got.keys} keys at revision ${got.revision}, the record says ${fetched.record.keys} at ${fetched.record.revision}`,
    };
  } catch (err) {
    const status =
      fetched?.entry ??
      (await backupStatus(cluster, { ssh: opts.ssh }).then(
        (s) => s.backups[0],
        () => undefined,
      ));
    outcome = {
      at,
      file: status?.file ?? opts.file ?? 'unknown',
      ok: false,
      source: opts.from ?? 'unknown',
      detail: errorMessage(err),
    };
  } finally {
    if (fetched) await rm(fetched.dir, { recursive: true, force: true });
  }
  opts.onLine?.(`${outcome.ok ? 'drill passed' : 'drill FAILED'}: ${outcome.detail}`);
  await recordDrill(cluster, outcome, opts.ssh).catch((err: unknown) =>
    opts.onLine?.(
      `the drill's result could not be recorded on the backup host: ${errorMessage(err)}`,
    ),
  );
  return outcome;
}

async function recordDrill(cluster: Cluster, d: DrillOutcome, ssh: SshContext): Promise<void> {
  const b = backupSettings(cluster);
  const text = `${JSON.stringify({ at: d.at, file: d.file, ok: d.ok, detail: d.detail, source: d.source })}\n`;
  const name = `drill-${d.at.replace(/[-:]/g, '')}.json`;
  await Promise.all(
    backupHosts(cluster).map(async (h) => {
      const t = await sshOpener(cluster, h, ssh)();
      try {
        const r = await t.exec(
          `mkdir -p ${q(`${b.localDir}/drills`)} && cat > ${q(`${b.localDir}/drills/${name}`)} && chmod 600 ${q(`${b.localDir}/drills/${name}`)}`,
          { sudo: true, stdin: text },
        );
        if (r.code !== 0) throw new Error(r.stderr.trim());
      } finally {
        t.close();
      }
    }),
  );
}

/**
 * `backup fetch`: the backup decrypted into `backups/<cluster>/<UTC time>.db` with the record
 * `snapshot restore` checks (SHA-256, size, revision, member): the existing restore takes it.
 */
export async function fetchIntoWorkspace(
  cluster: Cluster,
  workspaceDir: string,
  opts: FetchOptions,
): Promise<SnapshotInfo> {
  const f = await fetchBackup(cluster, opts);
  try {
    const dir = join(workspaceDir, BACKUPS_DIR, cluster.name);
    await ignoreSecretsFolder(workspaceDir, BACKUPS_DIR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${backupStamp(new Date(f.record.takenAt))}.db`);
    await rename(f.plain, file).catch(() => copyFile(f.plain, file));
    const member = cluster.hosts.find((h) => h.memberName === f.record.member);
    const info: SnapshotInfo = {
      cluster: cluster.name,
      file,
      sha256: f.record.sha256,
      bytes: f.record.size,
      revision: String(f.record.revision),
      from: member
        ? clientUrl(cluster, member)
        : `https://${f.record.host}:${cluster.etcd.clientPort}`,
      createdAt: f.record.takenAt,
    };
    await writeFile(file.replace(/\.db$/, '.json'), `${JSON.stringify(info, null, 2)}\n`, {
      mode: 0o600,
    });
    opts.onLine?.(
      `written to ${file} (with its record): \`k3s-etcd snapshot restore ${file}\` restores it`,
    );
    return info;
  } finally {
    await rm(f.dir, { recursive: true, force: true });
  }
}
