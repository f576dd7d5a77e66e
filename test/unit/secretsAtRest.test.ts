/**
 * Secrets at rest in the workspace and the CLI's config folder: folders of snapshots, backups and
 * kubeconfigs ignored by the git repository that contains them (wherever the inventory sits in
 * it), and the token file, kubeconfig and inventory edits replaced atomically with their mode
 * from the first byte, never written through a planted link.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  symlink,
  writeFile,
  chmod,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeFileAtomic } from '../../src/core/files/atomicWrite';
import { setHostAddress } from '../../src/core/inventory/edit';
import { fileTokenStore, tokenKey } from '../../src/core/k3s/token';
import { ignoreSecretsFolder } from '../../src/core/pki/gitignore';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3s-etcd-rest-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const ignoredByGit = (repo: string, path: string) =>
  spawnSync('git', ['-C', repo, 'check-ignore', '-q', path]).status === 0;

describe('secret folders are ignored by the repository that holds them', () => {
  it('an inventory two folders below the work tree root: the root .gitignore names the folder', async () => {
    const repo = join(root, 'repo');
    const ws = join(repo, 'ops', 'edge');
    await mkdir(ws, { recursive: true });
    execFileSync('git', ['init', '-q', repo]);
    assert.equal(ignoredByGit(repo, 'ops/edge/backups/lab/20261206T120000Z.db'), false);

    assert.equal(await ignoreSecretsFolder(ws, 'backups'), true);
    assert.equal(await ignoreSecretsFolder(ws, 'kubeconfig'), true);
    assert.equal(await ignoreSecretsFolder(ws, 'backups'), false, 'added once');

    assert.ok(ignoredByGit(repo, 'ops/edge/backups/lab/20261206T120000Z.db'));
    assert.ok(ignoredByGit(repo, 'ops/edge/kubeconfig/lab.yaml'));
    assert.equal(
      ignoredByGit(repo, 'ops/edge/k3s-etcd.yaml'),
      false,
      'the inventory stays tracked',
    );
    assert.match(await readFile(join(repo, '.gitignore'), 'utf8'), /^ops\/edge\/backups\/$/m);
    await assert.rejects(stat(join(ws, '.gitignore')), 'nothing written beside the inventory');
  });
});

describe('atomic replacement', () => {
  it('a symlink at the target is replaced, not written through; the mode is the final one', async () => {
    const dir = join(root, 'atomic');
    await mkdir(dir);
    const victim = join(dir, 'victim');
    await writeFile(victim, 'precious\n', { mode: 0o644 });
    const target = join(dir, 'kubeconfig.yaml');
    await symlink(victim, target);
    const umask = process.umask(0);
    try {
      await writeFileAtomic(target, 'secret\n', { mode: 0o600 });
    } finally {
      process.umask(umask);
    }
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');
    assert.equal((await lstat(target)).isSymbolicLink(), false);
    assert.equal((await stat(target)).mode & 0o777, 0o600);
    assert.equal(await readFile(target, 'utf8'), 'secret\n');
    assert.deepEqual(
      (await readdir(dir)).sort(),
      ['kubeconfig.yaml', 'victim'],
      'no temporaries left',
    );
  });

  it('keeps the mode of the file it replaces when none is given', async () => {
    const file = join(root, 'kept-mode.yaml');
    await writeFile(file, 'a: 1\n');
    await chmod(file, 0o640);
    await writeFileAtomic(file, 'a: 2\n');
    assert.equal((await stat(file)).mode & 0o777, 0o640);
    assert.equal(await readFile(file, 'utf8'), 'a: 2\n');
  });

  it('the CLI token file is 0600 and never written through a link planted in its place', async () => {
    const dir = join(root, 'tokens');
    await mkdir(dir, { mode: 0o700 });
    const victim = join(root, 'world-readable');
    await writeFile(victim, '', { mode: 0o644 });
    const store = fileTokenStore('/inv/k3s-etcd.yaml', dir);
    await symlink(victim, join(dir, `${tokenKey('/inv/k3s-etcd.yaml', 'lab')}.token`));
    await store.set('lab', 'K10secret');
    assert.equal(await readFile(victim, 'utf8'), '', 'the token did not go to the link target');
    assert.equal(await store.get('lab'), 'K10secret');
    const file = join(dir, `${tokenKey('/inv/k3s-etcd.yaml', 'lab')}.token`);
    assert.equal((await lstat(file)).mode & 0o777, 0o600);
  });

  it("an inventory edit keeps the file's mode and ignores a link at the old temporary name", async () => {
    const dir = join(root, 'inv');
    await mkdir(dir);
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      'clusters:\n  - name: lab # ours\n    hosts:\n      - name: edge-1\n        address: 127.0.1.11\n',
    );
    await chmod(file, 0o640);
    const victim = join(root, 'victim-inv');
    await writeFile(victim, 'untouched\n');
    await symlink(victim, `${file}.k3s-etcd-tmp`);
    assert.equal(await setHostAddress(file, 'lab', 'edge-1', '127.0.1.21'), '127.0.1.11');
    assert.equal(await readFile(victim, 'utf8'), 'untouched\n');
    assert.match(await readFile(file, 'utf8'), /address: 127\.0\.1\.21\n/);
    assert.match(await readFile(file, 'utf8'), /# ours/);
    assert.equal((await stat(file)).mode & 0o777, 0o640);
  });
});
