/**
 * Snapshots of the external etcd on a real 3-member mutual-TLS etcd: known keys, `snapshot save`
 * (the CLI) writes the file and its record (git-ignored), `etcdctl snapshot status` agrees with the revision,
 * and the restore commands generated from the inventory, run for every member into fresh data
 * dirs, bring the cluster back with exactly those keys, even after they were changed.
 */
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { backupStamp } from '../../src/core/format/stamp';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { createEndpointClient } from '../../src/core/etcd/client';
import { listSnapshots, saveSnapshot } from '../../src/core/snapshot/snapshot';
import { restoreCommands, type SnapshotInfo } from '../../src/core/etcd/snapshotFile';
import { captureIO } from '../fixtures/cli';
import { admin, etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

describe('snapshots of the external etcd', () => {
  const { tempDir, track } = testScope('k3s-etcd-snap-');

  it('saves a snapshot, and the generated per-member restore commands bring the keys back', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd, cluster } = await etcdWithOurCerts(pki, 3, {
      track,
      extra: { samePorts: true },
    });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const client = async () =>
      createEndpointClient(etcd.endpoints[0]!, { tls: admin(pki), timeoutMs: 10_000 });
    let k = await client();
    for (let i = 0; i < 50; i++) await k.put(`/registry/snap/k${i}`).value(`v${i}`);
    k.close();

    execSync(`git init -q ${dir}`); // the workspace is a git checkout
    const { io, out } = captureIO(dir);
    assert.equal(await main(['snapshot', 'save', '--json'], io), 0, out.join('\n'));
    const info = JSON.parse(out.join('\n')) as SnapshotInfo;
    assert.match(info.file, /\/backups\/edge-t\/\d{8}T\d{6}Z\.db$/);
    // It holds every Secret of the cluster: git ignores it (check-ignore exits 0 when ignored).
    execSync(`git -C ${dir} check-ignore -q ${info.file}`);
    assert.equal((await stat(info.file)).mode & 0o777, 0o600);
    assert.equal((await stat(info.file)).size, info.bytes);
    assert.deepEqual(
      (await listSnapshots(dir, 'edge-t')).map((s) => s.sha256),
      [info.sha256],
    );
    const status = JSON.parse(
      execSync(`ETCDCTL_API=3 etcdctl snapshot status ${info.file} -w json`, { encoding: 'utf8' }),
    ) as { revision: number; totalKey: number };
    assert.equal(String(status.revision), info.revision, 'etcdctl reads the same revision');

    // The keys change after the snapshot; the restore brings back the snapshot's state.
    k = await client();
    await k.put('/registry/snap/k0').value('changed');
    await k.put('/registry/snap/after').value('x');
    k.close();

    await Promise.all(etcd.members.map((m) => etcd.stopMember(m.name)));
    const cmds = restoreCommands(cluster, info.file, {
      dataDirOf: (member) => join(dir, `restored-${member}`),
    });
    assert.equal(cmds.length, 3);
    for (const cmd of cmds) {
      assert.match(cmd.command, /^ETCDCTL_API=3 etcdctl snapshot restore /, 'etcd 3.4: etcdctl');
      execSync(cmd.command, { stdio: 'pipe' });
      const m = etcd.members.find((x) => x.name === cmd.member)!;
      await rm(m.dataDir, { recursive: true, force: true });
      await rename(cmd.dataDir, m.dataDir);
    }
    await Promise.all(etcd.members.map((m) => etcd.startMember(m.name)));
    k = await client();
    try {
      assert.equal(await k.getAll().prefix('/registry/snap/').count(), 50);
      assert.equal(await k.get('/registry/snap/k0').string(), 'v0');
      assert.equal(await k.get('/registry/snap/after').string(), null);
      assert.equal((await k.cluster.memberList({})).members.length, 3);
    } finally {
      k.close();
    }
  });

  it('streams with progress up to the whole file; cancelled midway, it keeps nothing', async () => {
    const dir = await tempDir();
    const pki = join(dir, 'pki');
    const { etcd, cluster } = await etcdWithOurCerts(pki, 1, { track });
    const k = await createEndpointClient(etcd.endpoints[0]!, {
      tls: admin(pki),
      timeoutMs: 10_000,
    });
    try {
      for (let i = 0; i < 8; i++) await k.put(`/registry/big/${i}`).value(Buffer.alloc(1 << 20, i));
    } finally {
      k.close();
    }
    const seen: number[] = [];
    const info = await saveSnapshot(cluster, {
      workspaceDir: dir,
      onProgress: (bytes) => seen.push(bytes),
    });
    assert.ok(seen.length > 1, `progress reported as it streams: ${seen.length} times`);
    assert.ok(
      seen.every((b, i) => i === 0 || b > seen[i - 1]!),
      'growing',
    );
    assert.equal(seen.at(-1), info.bytes, 'up to the whole file');
    assert.ok(info.bytes > 8 << 20, `${info.bytes} bytes`);

    // Cancelled midway (in a workspace of its own: a snapshot's name is its second).
    const other = await tempDir();
    const stop = new AbortController();
    await assert.rejects(
      saveSnapshot(cluster, {
        workspaceDir: other,
        signal: stop.signal,
        onProgress: (bytes) => bytes > 1 << 20 && stop.abort(),
      }),
      /cancelled/i,
    );
    assert.deepEqual(
      await readdir(join(other, 'backups', cluster.name)),
      [],
      'no partial file left',
    );

    // A snapshot already named for this second is never overwritten, nor removed by the failure.
    const folder = join(dir, 'backups', cluster.name);
    const now = Date.now();
    const taken = Array.from({ length: 6 }, (_, i) =>
      join(folder, `${backupStamp(new Date(now + i * 1000))}.db`),
    );
    for (const f of taken)
      await writeFile(f, 'an earlier snapshot\n', { flag: 'wx' }).catch(() => undefined);
    await assert.rejects(
      saveSnapshot(cluster, { workspaceDir: dir }),
      /already exists \(a snapshot saved in the same second\): it was left as it is/,
    );
    for (const f of taken.slice(1))
      assert.equal(await readFile(f, 'utf8'), 'an earlier snapshot\n', `${f} untouched`);
  });
});
