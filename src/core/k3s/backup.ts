/**
 * K3s's SQLite state, backed up before anything else: `state.db` with its `-wal` and `-shm`
 * (rows not yet checkpointed live in the WAL) and the server token, copied with K3s stopped, or
 * with SQLite's online backup when K3s runs and the host has sqlite3. Into the workspace:
 * `backups/<host>/<UTC time>/`, every file 0600, folder 0700, with a SHA-256 manifest checked
 * on both ends. Restore is the reverse, with K3s stopped; what it replaces is moved aside.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError } from '../errors';
import { ignoreSecretsFolder } from '../pki/gitignore';
import type { Cluster, Host } from '../inventory/types';
import { sshOpener, type SshContext } from '../provision/etcdOps';
import type { SshSession } from '../ssh/connection';
import { shellQuote as q } from '../ssh/quote';
import { BACKUPS_DIR, latestBackup, readK3sFacts } from './ops';
import { K3S_DB_DIR, K3S_SQLITE, K3S_TOKEN_FILE } from './server';

export const MANIFEST = 'manifest.json';

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

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `20261124T230545Z`: sortable, no colons (valid on every file system). */
export function backupStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function hostOf(cluster: Cluster, name: string): Host {
  const h = cluster.hosts.find((x) => x.name === name);
  if (!h) {
    throw new K3sEtcdError(
      'usage',
      `No host "${name}" in cluster ${cluster.name} (hosts: ${cluster.hosts.map((x) => x.name).join(', ')}).`,
    );
  }
  return h;
}

/** `sha256sum` lines → name → hash. */
function parseSums(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const r = /^([0-9a-f]{64})\s+\*?(.*)$/.exec(line.trim());
    if (r) m.set((r[2] as string).replace(/^.*\//, ''), r[1] as string);
  }
  return m;
}

export interface BackupOptions {
  ssh: SshContext;
  workspaceDir: string;
  signal?: AbortSignal;
  onLine?(host: string, line: string): void;
}

export async function backupK3s(
  cluster: Cluster,
  hostName: string,
  opts: BackupOptions,
): Promise<{ dir: string; manifest: BackupManifest }> {
  const host = hostOf(cluster, hostName);
  const say = (l: string) => opts.onLine?.(host.name, l);
  const t = (await sshOpener(cluster, host, opts.ssh)(opts.signal)) as SshSession;
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
    const mk = await t.exec('umask 077 && mktemp -d /tmp/.k3s-etcd-backup-XXXXXXXX', {
      sudo: true,
      ...sig,
    });
    const stage = mk.stdout.trim();
    if (mk.code !== 0 || !stage.startsWith('/tmp/'))
      throw new K3sEtcdError(
        'k3s-backup',
        `${host.name}: cannot make a staging folder: ${mk.stderr.trim()}`,
      );
    try {
      const copy: string[] = [];
      if (facts.sqliteBytes !== undefined) {
        if (facts.active) {
          copy.push(`sqlite3 ${q(K3S_SQLITE)} ${q(`.backup '${stage}/state.db'`)}`);
        } else {
          for (const suffix of ['', '-wal', '-shm'])
            copy.push(
              `if [ -f ${q(K3S_SQLITE + suffix)} ]; then cp ${q(K3S_SQLITE + suffix)} ${q(`${stage}/state.db${suffix}`)}; fi`,
            );
        }
      }
      if (facts.token) copy.push(`cp ${q(K3S_TOKEN_FILE)} ${q(`${stage}/token`)}`);
      copy.push(`cd ${q(stage)} && sha256sum * && stat -c '%n %s' *`);
      const r = await t.exec(`set -e\n${copy.join('\n')}`, { sudo: true, ...sig });
      if (r.code !== 0)
        throw new K3sEtcdError(
          'k3s-backup',
          `${host.name}: copying the state failed: ${r.stderr.trim() || `exit ${r.code}`}`,
        );
      const sums = parseSums(r.stdout);
      const sizes = new Map(
        r.stdout
          .split('\n')
          .map((l) => /^(\S+) (\d+)$/.exec(l.trim()))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => [m[1] as string, Number(m[2])]),
      );
      const createdAt = new Date();
      const dir = join(opts.workspaceDir, BACKUPS_DIR, host.name, backupStamp(createdAt));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chmod(dir, 0o700);
      if (await ignoreSecretsFolder(opts.workspaceDir, BACKUPS_DIR))
        say(`${BACKUPS_DIR}/ added to .gitignore (it holds the K3s token)`);
      const files: BackupFile[] = [];
      for (const [name, hash] of sums) {
        const local = join(dir, name);
        await t.fetch(`${stage}/${name}`, local, sig);
        await chmod(local, 0o600);
        const got = sha(await readFile(local));
        if (got !== hash)
          throw new K3sEtcdError(
            'k3s-backup',
            `${host.name}: ${name} arrived with SHA-256 ${got}, the host has ${hash}: the backup in ${dir} is incomplete; run it again.`,
          );
        const path = name === 'token' ? K3S_TOKEN_FILE : `${K3S_DB_DIR}/${name}`;
        files.push({ name, path, sha256: hash, bytes: sizes.get(name) ?? 0 });
        say(`${name}: ${sizes.get(name) ?? 0} bytes, sha256 ${hash.slice(0, 16)}…`);
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
      say(`backup of ${host.name} (${method}) in ${dir}`);
      return { dir, manifest };
    } finally {
      await t.exec(`rm -rf ${q(stage)}`, { sudo: true }).catch(() => undefined);
    }
  } finally {
    t.close();
  }
}

/** Reads a backup's manifest and checks every file against it. */
export async function verifyBackup(dir: string): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as BackupManifest;
  } catch (err) {
    throw new K3sEtcdError(
      'k3s-backup',
      `${join(dir, MANIFEST)} is missing or unreadable: not a backup made by k3s-etcd.`,
      { cause: err },
    );
  }
  for (const f of manifest.files) {
    const data = await readFile(join(dir, f.name)).catch(() => undefined);
    if (!data || sha(data) !== f.sha256)
      throw new K3sEtcdError(
        'k3s-backup',
        `${join(dir, f.name)} ${data ? 'does not match its SHA-256 in the manifest' : 'is missing'}: this backup cannot be restored.`,
      );
  }
  return manifest;
}

/**
 * Puts a backup back on its host, K3s stopped. The files it replaces are moved aside
 * (`<name>.before-restore-<time>`), never deleted; the result is checked by SHA-256 on the host.
 */
export async function restoreK3s(
  cluster: Cluster,
  hostName: string,
  opts: BackupOptions & { from?: string },
): Promise<{ dir: string; manifest: BackupManifest; movedAside: string[] }> {
  const host = hostOf(cluster, hostName);
  const say = (l: string) => opts.onLine?.(host.name, l);
  const dir = opts.from ?? (await latestBackup(opts.workspaceDir, host.name));
  if (!dir)
    throw new K3sEtcdError(
      'k3s-backup',
      `No backup of ${host.name} in ${join(opts.workspaceDir, BACKUPS_DIR, host.name)}: back it up first.`,
    );
  const manifest = await verifyBackup(dir);
  if (manifest.host !== host.name)
    throw new K3sEtcdError(
      'k3s-backup',
      `${dir} is a backup of ${manifest.host}, not of ${host.name}.`,
    );
  const t = (await sshOpener(cluster, host, opts.ssh)(opts.signal)) as SshSession;
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
    for (const f of manifest.files) {
      await t.writeFile(f.path, await readFile(join(dir, f.name)), { mode: 0o600, ...sig });
      say(`restored ${f.path}`);
    }
    const check = await t.exec(`sha256sum ${manifest.files.map((f) => q(f.path)).join(' ')}`, {
      sudo: true,
      ...sig,
    });
    const sums = parseSums(check.stdout);
    for (const f of manifest.files) {
      if (sums.get(f.path.replace(/^.*\//, '')) !== f.sha256)
        throw new K3sEtcdError(
          'k3s-backup',
          `${host.name}: ${f.path} does not match the backup after the restore (the previous files are kept beside it, *.before-restore-${stamp}).`,
        );
    }
    say(
      `restore of ${dir} checked on ${host.name}: start K3s when ready (sudo systemctl start k3s)`,
    );
    return { dir, manifest, movedAside };
  } finally {
    t.close();
  }
}
