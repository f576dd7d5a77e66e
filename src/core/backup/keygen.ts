/**
 * The key pair backups are encrypted to (both front ends: `backup keygen`, "Make Backup Key
 * Pair…"): the private key written 0600 outside the workspace (never beside the inventory, where
 * it would be committed or synced with it), the public key appended to the cluster's
 * backup.encryption.recipientsFile, which the workspace keeps.
 */
import { appendFile, mkdir, realpath, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { K3sEtcdError } from '../errors';
import { makeKeyPair } from './crypto';

/** `~/.config/k3s-etcd/backup-<cluster>.key`. */
export function defaultPrivateKeyFile(cluster: string): string {
  return join(
    homedir(),
    '.config',
    'k3s-etcd',
    `backup-${cluster.replace(/[^A-Za-z0-9._-]/g, '_')}.key`,
  );
}

/** `path` with symbolic links of its nearest existing folder resolved. */
async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realPathOf(parent), basename(abs));
  }
}

/** Whether `path` is `folder` or lies inside it, symbolic links followed. */
export async function isInside(path: string, folder: string): Promise<boolean> {
  const rel = relative(await realPathOf(folder), await realPathOf(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export interface KeyPairWritten {
  privateKeyFile: string;
  recipientsFile: string;
  fingerprint: string;
}

/**
 * Makes an RSA-4096 pair: the private key to `privateKeyFile` (0600, its folder made 0700; an
 * existing file is never replaced), the public key appended to `recipientsFile`. Refuses a
 * private key inside `workspaceDir`.
 */
export async function writeBackupKeyPair(opts: {
  privateKeyFile: string;
  recipientsFile: string;
  workspaceDir: string;
}): Promise<KeyPairWritten> {
  const out = resolve(opts.privateKeyFile);
  if (await isInside(out, opts.workspaceDir))
    throw new K3sEtcdError(
      'usage',
      `${out} is inside the workspace (${opts.workspaceDir}): the private key must live elsewhere, or it travels with the inventory (git, sync, backups of the folder) and anyone who has the workspace can read every backup. Choose a path outside it.`,
    );
  if (
    await stat(out).then(
      () => true,
      () => false,
    )
  )
    throw new K3sEtcdError('usage', `${out} exists: choose another file, or use that key.`);
  const pair = await makeKeyPair();
  await mkdir(dirname(out), { recursive: true, mode: 0o700 });
  await writeFile(out, pair.privatePem, { mode: 0o600, flag: 'wx' });
  await mkdir(dirname(opts.recipientsFile), { recursive: true });
  await appendFile(opts.recipientsFile, pair.publicPem, { mode: 0o644 });
  return {
    privateKeyFile: out,
    recipientsFile: opts.recipientsFile,
    fingerprint: pair.fingerprint,
  };
}
