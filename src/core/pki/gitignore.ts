/** Keeping private keys out of git: the pattern for a cluster's pki folder, and adding it. */
import { access, appendFile, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

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
 * The root of the git work tree that contains `dir`: the nearest folder, `dir` itself or above it,
 * holding a `.git` (a folder, or a file for worktrees and submodules). Undefined outside git.
 */
export async function gitWorkTreeRoot(dir: string): Promise<string | undefined> {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (
      await access(join(d, '.git')).then(
        () => true,
        () => false,
      )
    )
      return d;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * For folders that hold secrets (snapshots and backups with every Secret and the K3s token,
 * kubeconfigs with client keys): ignored in the git repository that contains them, whatever
 * folder the inventory is in. The pattern goes into the work tree root's .gitignore, naming the
 * folder relative to it (`backups/` at the root, `ops/edge/backups/` deeper). Returns whether
 * the pattern was added (false outside git, or when it is already there).
 */
export async function ignoreSecretsFolder(workspaceDir: string, folder: string): Promise<boolean> {
  const root = await gitWorkTreeRoot(workspaceDir);
  if (root === undefined) return false;
  const rel = relative(root, join(resolve(workspaceDir), folder))
    .split(sep)
    .join('/');
  return addIgnore(root, `${rel}/`, `secrets written by k3s-etcd (${folder})`);
}
