/**
 * K3s's SQLite state, backed up before anything else: `state.db` with its `-wal` and `-shm`
 * (rows not yet checkpointed live in the WAL) and the server token, copied with K3s stopped, or
 * with SQLite's online backup when K3s runs and the host has sqlite3. Into the workspace:
 * `backups/<host>/<UTC time>/`, every file 0600, folder 0700, with a SHA-256 manifest checked
 * on both ends. Restore is the reverse, with K3s stopped; what it replaces is moved aside. A
 * backup folder is checked before it is trusted: ours by its place (backups/<host>/<UTC time>/),
 * regular files only, each named in a fixed list that also says where it goes back, with the size
 * and SHA-256 its manifest gives; nothing a manifest says chooses a path on the host.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { Transform } from 'node:stream';
import {
  chmod,
  lstat,
  mkdir,
  open,
  readFile,
  readdir,
  rm,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { K3sEtcdError } from '../errors';
import { ignoreSecretsFolder } from '../pki/gitignore';
import type { Cluster, Host } from '../inventory/types';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { downloadFile } from '../ssh/download';
import type { SshSession } from '../ssh/session';
import { shellQuote as q } from '../ssh/quote';
import { BACKUPS_DIR } from '../files/workspace';
import { BACKUP_STAMP, latestBackup, readK3sFacts } from './ops';
import { K3S_DB_DIR, K3S_SQLITE, K3S_TOKEN_FILE } from './server';
import { hostNamed } from '../inventory/select';
import { humanBytes } from '../../shared/etcdTypes';
import { backupStamp } from '../format/stamp';

export const MANIFEST = 'manifest.json';

/**
 * Every file a backup may hold, and where it goes back on the host: K3s's SQLite database with
 * its WAL and shared-memory files, and the server token. Nothing else is ever restored.
 */
export const BACKUP_FILES: Readonly<Record<string, string>> = {
  'state.db': K3S_SQLITE,
  'state.db-wal': `${K3S_SQLITE}-wal`,
  'state.db-shm': `${K3S_SQLITE}-shm`,
  token: K3S_TOKEN_FILE,
};

const isBackupFile = (name: string) => Object.hasOwn(BACKUP_FILES, name);

const HOST_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export interface BackupFile {
  name: string;
  /** Where it came from on the host. */
  path: string;
  sha256: string;
  bytes: number;
}

export interface BackupManifest {
  cluster: string;
  host: string;
  createdAt: string;
  method: 'copy with K3s stopped' | 'sqlite3 online backup';
  files: BackupFile[];
}

export interface BackupOptions {
  ssh: SshContext;
  workspaceDir: string;
  signal?: AbortSignal;
  onLine?(host: string, line: string): void;
  /** Bytes moved so far, of `total` for the whole backup. */
  onProgress?(p: BackupProgress): void;
}

export interface BackupProgress {
  file: string;
  bytes: number;
  total: number;
}

/** `state.db: 1.2 GB of 3.4 GB (35%)`, for the CLI's progress line and the editor's notification. */
export function backupProgressText(p: BackupProgress): string {
  const pct = p.total > 0 ? ` (${Math.floor((p.bytes / p.total) * 100)}%)` : '';
  return `${p.file}: ${humanBytes(p.bytes)} of ${humanBytes(p.total)}${pct}`;
}

/** The online backup's staging folder, as mktemp made it beside the database. */
const STAGE = new RegExp(
  `^${K3S_DB_DIR.replace(/[.]/g, '\\.')}/\\.k3s-etcd-backup-[A-Za-z0-9]{8}$`,
);

interface HostFile {
  name: string;
  from: string;
  bytes: number;
  sha256: string;
}

/**
 * Size and SHA-256 of each of `paths` that exists, as the host sees them, named by their file
 * name (which must be one of the fixed list: nothing else is fetched).
 */
async function listOnHost(
  t: SshSession,
  host: Host,
  paths: readonly string[],
  sig: { signal?: AbortSignal },
): Promise<HostFile[]> {
  const script = paths
    .map(
      (p) =>
        `if [ -f ${q(p)} ] && [ ! -L ${q(p)} ]; then printf '%s %s %s\\n' ${q(basename(p))} "$(stat -c %s ${q(p)})" "$(sha256sum < ${q(p)} | cut -d' ' -f1)"; fi`,
    )
    .join('\n');
  const r = await t.exec(`set -e\n${script}`, { sudo: true, ...sig });
  if (r.code !== 0)
    throw new K3sEtcdError(
      'k3s-backup',
      `${host.name}: reading the state's sizes and SHA-256 failed: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  const out: HostFile[] = [];
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const m = /^(\S+) (\d+) ([0-9a-f]{64})$/.exec(line);
    const from = m ? paths.find((p) => basename(p) === m[1]) : undefined;
    if (!m || !from || !isBackupFile(m[1] as string))
      throw new K3sEtcdError(
        'k3s-backup',
        `${host.name}: unexpected line while listing the state: ${JSON.stringify(line)}; nothing was kept.`,
      );
    out.push({ name: m[1] as string, from, bytes: Number(m[2]), sha256: m[3] as string });
  }
  return out;
}

/**
 * A new backup folder `backups/<host>/<UTC time>/`, made exclusively: a second backup in the
 * same second waits for the next one rather than writing into the first.
 */
async function newBackupDir(
  workspaceDir: string,
  host: string,
): Promise<{ dir: string; at: Date }> {
  const parent = join(workspaceDir, BACKUPS_DIR, host);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    const at = new Date();
    const dir = join(parent, backupStamp(at));
    try {
      await mkdir(dir, { mode: 0o700 });
      await chmod(dir, 0o700);
      return { dir, at };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    }
  }
}

export async function backupK3s(
  cluster: Cluster,
  hostName: string,
  opts: BackupOptions,
): Promise<{ dir: string; manifest: BackupManifest }> {
  const host = hostNamed(cluster, hostName);
  const say = (l: string) => opts.onLine?.(host.name, l);
  const t = await sshOpener(cluster, host, opts.ssh)(opts.signal);
  const sig = opts.signal ? { signal: opts.signal } : {};
  try {
    const facts = await readK3sFacts(t, host, opts.signal);
    if (facts.sqliteBytes === undefined && !facts.token) {
      throw new K3sEtcdError(
        'k3s-backup',
        `${host.name} has no K3s state to back up (no ${K3S_SQLITE}, no ${K3S_TOKEN_FILE}).`,
      );
    }
    if (facts.active && facts.sqliteBytes !== undefined && !facts.sqlite3) {
      throw new K3sEtcdError(
        'k3s-backup',
        `K3s is running on ${host.name} and the host has no sqlite3 for an online backup: stop K3s first (sudo systemctl stop k3s), or install sqlite3 there, then back up again. Nothing was copied.`,
      );
    }
    const method: BackupManifest['method'] = facts.active
      ? 'sqlite3 online backup'
      : 'copy with K3s stopped';
    // The online backup needs one consistent copy: made beside the database (its own file
    // system has room for it), never in /tmp (often memory). With K3s stopped the files are
    // streamed from where they are, with no copy on the host at all.
    let stage: string | undefined;
    if (facts.active && facts.sqliteBytes !== undefined) {
      const mk = await t.exec(
        `umask 077 && mktemp -d ${q(`${K3S_DB_DIR}/.k3s-etcd-backup-XXXXXXXX`)}`,
        { sudo: true, ...sig },
      );
      stage = mk.stdout.trim();
      if (mk.code !== 0 || !STAGE.test(stage))
        throw new K3sEtcdError(
          'k3s-backup',
          `${host.name}: cannot make a staging folder beside ${K3S_SQLITE}: ${mk.stderr.trim()}`,
        );
    }
    let dir: string | undefined;
    let kept = false;
    try {
      const sources: string[] = [];
      if (facts.sqliteBytes !== undefined) {
        if (stage) {
          const r = await t.exec(`sqlite3 ${q(K3S_SQLITE)} ${q(`.backup '${stage}/state.db'`)}`, {
            sudo: true,
            ...sig,
          });
          if (r.code !== 0)
            throw new K3sEtcdError(
              'k3s-backup',
              `${host.name}: sqlite3's online backup failed: ${r.stderr.trim() || `exit ${r.code}`}`,
            );
          sources.push(`${stage}/state.db`);
        } else {
          sources.push(K3S_SQLITE, `${K3S_SQLITE}-wal`, `${K3S_SQLITE}-shm`);
        }
      }
      if (facts.token) sources.push(K3S_TOKEN_FILE);
      const listed = await listOnHost(t, host, sources, sig);
      const made = await newBackupDir(opts.workspaceDir, host.name);
      dir = made.dir;
      const createdAt = made.at;
      if (await ignoreSecretsFolder(opts.workspaceDir, BACKUPS_DIR))
        say(`${BACKUPS_DIR}/ added to .gitignore (it holds the K3s token)`);
      const total = listed.reduce((n, f) => n + f.bytes, 0);
      let before = 0;
      const files: BackupFile[] = [];
      for (const f of listed) {
        const got = await downloadFile(t, f.from, join(dir, f.name), {
          ...sig,
          onBytes: (n) => opts.onProgress?.({ file: f.name, bytes: before + n, total }),
        });
        before += got.bytes;
        if (got.sha256 !== f.sha256 || got.bytes !== f.bytes)
          throw new K3sEtcdError(
            'k3s-backup',
            `${host.name}: ${f.name} arrived as ${got.bytes} bytes with SHA-256 ${got.sha256}, the host has ${f.bytes} bytes with ${f.sha256}: nothing was kept; run the backup again.`,
          );
        files.push({
          name: f.name,
          path: BACKUP_FILES[f.name] as string,
          sha256: f.sha256,
          bytes: f.bytes,
        });
        say(`${f.name}: ${f.bytes} bytes, sha256 ${f.sha256.slice(0, 16)}…`);
      }
      const manifest: BackupManifest = {
        cluster: cluster.name,
        host: host.name,
        createdAt: createdAt.toISOString(),
        method,
        files,
      };
      await writeFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, {
        mode: 0o600,
      });
      kept = true;
      say(`backup of ${host.name} (${method}) in ${dir}`);
      return { dir, manifest };
    } finally {
      if (stage) await t.exec(`rm -rf ${q(stage)}`, { sudo: true }).catch(() => undefined);
      // A backup that did not finish is not left for a restore to find half-made.
      if (dir && !kept) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  } finally {
    t.close();
  }
}

/** Why `m` (a manifest read from disk) is not one `backupK3s` wrote for `host`, or undefined. */
function manifestProblem(m: unknown, host: string): string | undefined {
  if (m === null || typeof m !== 'object') return 'it is not a JSON object';
  const r = m as Partial<Record<keyof BackupManifest, unknown>>;
  if (r.host !== host)
    return `it is a backup of ${typeof r.host === 'string' ? JSON.stringify(r.host) : 'no host'}, not of ${host}`;
  if (typeof r.cluster !== 'string' || typeof r.createdAt !== 'string')
    return 'it names no cluster or time';
  if (r.method !== 'copy with K3s stopped' && r.method !== 'sqlite3 online backup')
    return 'it names no backup method';
  if (!Array.isArray(r.files) || r.files.length === 0) return 'it lists no file';
  const seen = new Set<string>();
  for (const f of r.files as unknown[]) {
    const file = (f ?? {}) as Partial<Record<keyof BackupFile, unknown>>;
    const name = typeof file.name === 'string' ? file.name : '';
    if (!isBackupFile(name) || seen.has(name))
      return `it lists ${JSON.stringify(file.name)}, which is not one of ${Object.keys(BACKUP_FILES).join(', ')} (each once)`;
    seen.add(name);
    if (file.path !== BACKUP_FILES[name])
      return `it says ${name} goes to ${JSON.stringify(file.path)}; ${name} only ever goes back to ${BACKUP_FILES[name]}`;
    if (typeof file.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(file.sha256))
      return `it gives ${name} no SHA-256`;
    if (typeof file.bytes !== 'number' || !Number.isSafeInteger(file.bytes) || file.bytes < 0)
      return `it gives ${name} no size`;
  }
  return undefined;
}

/** A backup file opened without following a link: a regular file of the manifest's size. */
async function openBackupFile(dir: string, f: BackupFile): Promise<FileHandle> {
  const path = join(dir, f.name);
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size !== f.bytes)
      throw new K3sEtcdError(
        'k3s-backup',
        `${path} does not match its size and SHA-256 in the manifest (${st.size} bytes, the manifest says ${f.bytes}): this backup cannot be restored.`,
      );
    return fh;
  } catch (err) {
    await fh?.close();
    if (err instanceof K3sEtcdError) throw err;
    throw new K3sEtcdError(
      'k3s-backup',
      `${path} cannot be read as the regular file its manifest lists (${(err as Error).message}): this backup cannot be restored.`,
      { cause: err },
    );
  }
}

/** Checks a backup file's size and SHA-256 against `f`, streaming it (gigabytes stay on disk). */
async function checkBackupFile(dir: string, f: BackupFile): Promise<void> {
  const fh = await openBackupFile(dir, f);
  const hash = createHash('sha256');
  try {
    for await (const chunk of fh.createReadStream({ autoClose: false }))
      hash.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  if (hash.digest('hex') !== f.sha256)
    throw new K3sEtcdError(
      'k3s-backup',
      `${join(dir, f.name)} does not match its size and SHA-256 in the manifest: this backup cannot be restored.`,
    );
}

/**
 * Checks a backup folder before anything trusts it: it is ours by its place
 * (`backups/<host>/<UTC time>/`, `host` when given), a real folder holding regular files only,
 * each named in `BACKUP_FILES` and listed in a manifest that says where it goes back (the fixed
 * place), with the size and SHA-256 the manifest gives. Returns the manifest.
 */
export async function verifyBackup(dir: string, host?: string): Promise<BackupManifest> {
  const refuse = (why: string) =>
    new K3sEtcdError('k3s-backup', `${dir} ${why}: it is not restored, and nothing was changed.`);
  const folderHost = basename(dirname(dir));
  if (
    !BACKUP_STAMP.test(basename(dir)) ||
    basename(dirname(dirname(dir))) !== BACKUPS_DIR ||
    !HOST_NAME.test(folderHost)
  )
    throw refuse(
      `is not a backup folder of k3s-etcd (${BACKUPS_DIR}/<host>/<UTC time>/, as k3s backup makes them)`,
    );
  if (host !== undefined && folderHost !== host)
    throw refuse(`is a backup of ${folderHost}, not of ${host}`);
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw refuse('is not a folder (or is a symbolic link to one)');
  let manifest: unknown;
  try {
    const m = await lstat(join(dir, MANIFEST));
    if (!m.isFile()) throw new Error('not a regular file');
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
  } catch (err) {
    throw new K3sEtcdError(
      'k3s-backup',
      `${join(dir, MANIFEST)} is missing or unreadable: not a backup made by k3s-etcd.`,
      { cause: err },
    );
  }
  const problem = manifestProblem(manifest, folderHost);
  if (problem) throw refuse(`has a manifest that is not one k3s backup writes: ${problem}`);
  const checked = manifest as BackupManifest;
  const listed = new Set(checked.files.map((f) => f.name));
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === MANIFEST) continue;
    if (!listed.has(e.name))
      throw refuse(`holds ${JSON.stringify(e.name)}, which its manifest does not list`);
    if (!e.isFile()) throw refuse(`holds ${e.name}, which is not a regular file`);
  }
  for (const f of checked.files) await checkBackupFile(dir, f);
  return checked;
}

/**
 * Puts a backup back on its host, K3s stopped. The files it replaces are moved aside
 * (`<name>.before-restore-<time>`), never deleted; each file is checked by SHA-256 on the host before it replaces anything.
 */
export async function restoreK3s(
  cluster: Cluster,
  hostName: string,
  opts: BackupOptions & { from?: string },
): Promise<{ dir: string; manifest: BackupManifest; movedAside: string[] }> {
  const host = hostNamed(cluster, hostName);
  const say = (l: string) => opts.onLine?.(host.name, l);
  const dir = opts.from ?? (await latestBackup(opts.workspaceDir, host.name));
  if (!dir)
    throw new K3sEtcdError(
      'k3s-backup',
      `No backup of ${host.name} in ${join(opts.workspaceDir, BACKUPS_DIR, host.name)}: back it up first.`,
    );
  const manifest = await verifyBackup(dir, host.name);
  const t = await sshOpener(cluster, host, opts.ssh)(opts.signal);
  const sig = opts.signal ? { signal: opts.signal } : {};
  try {
    const facts = await readK3sFacts(t, host, opts.signal);
    if (facts.active) {
      throw new K3sEtcdError(
        'k3s-backup',
        `K3s is running on ${host.name}: stop it first (sudo systemctl stop k3s). A restore never runs under a live K3s. Nothing was changed.`,
      );
    }
    const stamp = backupStamp(new Date());
    const movedAside: string[] = [];
    // The db files come as a set: a WAL of another database must not stay beside the restored one.
    const names = new Set(manifest.files.map((f) => f.name));
    const targets = manifest.files.some((f) => f.name.startsWith('state.db'))
      ? [
          ...['state.db', 'state.db-wal', 'state.db-shm'].map((n) => `${K3S_DB_DIR}/${n}`),
          ...(names.has('token') ? [K3S_TOKEN_FILE] : []),
        ]
      : [K3S_TOKEN_FILE];
    const aside = await t.exec(
      targets
        .map(
          (p) =>
            `if [ -e ${q(p)} ]; then mv ${q(p)} ${q(`${p}.before-restore-${stamp}`)} && echo ${q(p)}; fi`,
        )
        .join('\n'),
      { sudo: true, ...sig },
    );
    if (aside.code !== 0)
      throw new K3sEtcdError(
        'k3s-backup',
        `${host.name}: cannot move the current files aside: ${aside.stderr.trim()}`,
      );
    for (const p of aside.stdout.split('\n').filter(Boolean)) {
      movedAside.push(`${p}.before-restore-${stamp}`);
      say(`moved aside: ${p} → ${p}.before-restore-${stamp}`);
    }
    await t.exec(`mkdir -p ${q(K3S_DB_DIR)} && chmod 0700 ${q(K3S_DB_DIR)}`, {
      sudo: true,
      ...sig,
    });
    // Where each file goes comes from the fixed list. The bytes are streamed from a handle opened
    // without following links, and the host checks their SHA-256 against the manifest before
    // they replace anything: the bytes put in place are the bytes that were checked.
    const dest = (f: BackupFile) => BACKUP_FILES[f.name] as string;
    const total = manifest.files.reduce((n, f) => n + f.bytes, 0);
    let sent = 0;
    for (const f of manifest.files) {
      const fh = await openBackupFile(dir, f);
      try {
        const counted = fh.createReadStream({ autoClose: false }).pipe(
          new Transform({
            transform(chunk: Buffer, _enc, done) {
              sent += chunk.length;
              opts.onProgress?.({ file: f.name, bytes: sent, total });
              done(null, chunk);
            },
          }),
        );
        await t.writeFileStream(dest(f), counted, { mode: 0o600, sha256: f.sha256, ...sig });
      } finally {
        await fh.close();
      }
      say(`restored ${dest(f)}`);
    }
    say(
      `restore of ${dir} checked on ${host.name}: start K3s when ready (sudo systemctl start k3s)`,
    );
    return { dir, manifest, movedAside };
  } finally {
    t.close();
  }
}
