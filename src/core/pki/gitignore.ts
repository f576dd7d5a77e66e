/** Keeping private keys out of git: the pattern for a cluster's pki folder, and adding it. */
import { access, appendFile, readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/** `pki/**\/*-key.pem` for the default layout, relative to the folder holding .gitignore. */
export function keyIgnorePattern(root: string, pkiDir: string): string | undefined {
  const parent = relative(root, dirname(pkiDir));
  if (parent.startsWith('..') || parent.includes(`..${sep}`)) return undefined;
  return `${parent ? `${parent.split(sep).join('/')}/` : ''}**/*-key.pem`;
}

export async function isIgnored(root: string, pattern: string): Promise<boolean> {
  const text = await readFile(join(root, '.gitignore'), 'utf8').catch(() => '');
  return text.split(/\r?\n/).some((l) => l.trim() === pattern);
}

/** Appends the pattern to root/.gitignore (creating it) unless it is already there. */
export async function addIgnore(
  root: string,
  pattern: string,
  comment = 'etcd private keys (k3s-etcd)',
): Promise<boolean> {
  if (await isIgnored(root, pattern)) return false;
  const file = join(root, '.gitignore');
  const text = await readFile(file, 'utf8').catch(() => '');
  const prefix = text && !text.endsWith('\n') ? '\n' : '';
  await appendFile(file, `${prefix}# ${comment}\n${pattern}\n`);
  return true;
}

/**
 * For folders that hold secrets (backups with the K3s token, kubeconfigs with client keys):
 * ignored in git when the workspace is a git checkout. Returns whether the pattern was added.
 */
export async function ignoreSecretsFolder(root: string, folder: string): Promise<boolean> {
  const isRepo = await access(join(root, '.git')).then(
    () => true,
    () => false,
  );
  return isRepo ? addIgnore(root, `${folder}/`, `secrets written by k3s-etcd (${folder})`) : false;
}
