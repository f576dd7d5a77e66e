/**
 * The workspace side of a renewal: before anything reaches a host, the current certificates and
 * keys of the renewed leaves are copied into `<pki>/previous-<UTC time>/` (keys 0600, the folder
 * 0700) and the new ones written in their place (atomically, index.json refreshed), so a host
 * never runs a key the workspace does not hold, even if the run is killed half way. When the
 * rollout finished, every leaf that did not reach its hosts gets its previous files back (the
 * workspace holds what the hosts run) and the dated folder is removed; it stays only when that
 * could not be done, and the result names it.
 */
import { copyFile, chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { backupStamp } from '../format/stamp';
import {
  exists,
  writeAtomically,
  writeIndex,
  type FileToWrite,
  type KnownFile,
} from '../pki/store';
import type { RenewLeaf } from './leaves';

/** The dated folder's name in the pki folder. */
export const asideName = (now: Date) => `previous-${backupStamp(now)}`;

/** Copies the current files aside, then writes the new ones. Returns the folder (absolute). */
export async function writeRenewed(
  dir: string,
  cluster: string,
  known: readonly KnownFile[],
  leaves: readonly RenewLeaf[],
  now: Date,
): Promise<string> {
  const folder = join(dir, asideName(now));
  await mkdir(folder, { recursive: false, mode: 0o700 });
  try {
    for (const l of leaves) {
      for (const [rel, mode] of [
        [l.path, 0o644],
        [l.keyPath, 0o600],
      ] as const) {
        if (!(await exists(join(dir, rel)))) continue;
        const to = join(folder, rel);
        await mkdir(dirname(to), { recursive: true, mode: 0o700 });
        await copyFile(join(dir, rel), to);
        await chmod(to, mode);
      }
    }
    const files: FileToWrite[] = leaves.flatMap((l) => [
      { path: join(dir, l.path), content: l.certPem, mode: 0o644 as const },
      { path: join(dir, l.keyPath), content: l.keyPem, mode: 0o600 as const },
    ]);
    await writeAtomically(files, dir);
  } catch (err) {
    await rm(folder, { recursive: true, force: true });
    throw err;
  }
  await writeIndex(dir, cluster, known, now);
  return folder;
}

/**
 * After the rollout: the leaves not in `deployed` (paths) get their previous files back from
 * `folder` (a leaf that had none is removed again), index.json is refreshed and the folder
 * removed. Returns the paths put back.
 */
export async function finishRenewed(
  dir: string,
  cluster: string,
  known: readonly KnownFile[],
  leaves: readonly RenewLeaf[],
  deployed: ReadonlySet<string>,
  folder: string,
): Promise<string[]> {
  const back = leaves.filter((l) => !deployed.has(l.path));
  const files: FileToWrite[] = [];
  const remove: string[] = [];
  for (const l of back) {
    for (const [rel, mode] of [
      [l.path, 0o644],
      [l.keyPath, 0o600],
    ] as const) {
      const from = join(folder, rel);
      if (await exists(from))
        files.push({ path: join(dir, rel), content: await readFile(from, 'utf8'), mode });
      else remove.push(join(dir, rel));
    }
  }
  if (files.length > 0) await writeAtomically(files, dir);
  for (const f of remove) await rm(f, { force: true });
  await writeIndex(dir, cluster, known);
  await rm(folder, { recursive: true, force: true });
  return back.map((l) => l.path);
}
