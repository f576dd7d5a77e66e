/**
 * etcd's database file read directly (`etcd/dbFile.ts`), against a real etcd 3.4: a member
 * written as K3s writes (many keys over several B+tree pages, values near 1 MiB on overflow
 * pages, overwrites, a transaction of several puts, deletions, a leased key, a compaction whose
 * last write is a deletion), then stopped; the file's key count, SHA-256 and revision must be
 * what etcd served just before it stopped, and the keys written last must be as they were left.
 */
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createEndpointClient } from '../../src/core/etcd/client';
import { fileDigest, keyDigest } from '../../src/core/embeddedMove/digest';
import { openDbFile } from '../../src/core/etcd/dbFile';
import { startEtcdCluster, type EtcdCluster } from '../../scripts/harness/etcd';

describe("etcd's database file, read with etcd stopped", () => {
  let etcd: EtcdCluster | undefined;
  after(async () => {
    await etcd?.stop();
  });

  it('holds what etcd served at its stop: keys, values, revision', async () => {
    etcd = await startEtcdCluster({ members: 1 });
    const m = etcd.members[0]!;
    const c = await createEndpointClient(m.clientUrl, { timeoutMs: 10_000 });
    let served: Awaited<ReturnType<typeof keyDigest>>;
    try {
      for (let i = 0; i < 600; i++)
        await c
          .put(`/registry/configmaps/ns-${i % 7}/cm-${String(i).padStart(4, '0')}`)
          .value(`k8s\0value ${i} `.repeat(1 + (i % 50)));
      for (let i = 0; i < 3; i++)
        await c.put(`/registry/secrets/big/s-${i}`).value(Buffer.alloc(1_000_000 - i * 7, 65 + i));
      for (let i = 0; i < 100; i += 3)
        await c
          .put(`/registry/configmaps/ns-${i % 7}/cm-${String(i).padStart(4, '0')}`)
          .value('v2');
      await c
        .if('/registry/none', 'Create', '==', 0)
        .then(
          c.put('/registry/txn/a').value('a'),
          c.put('/registry/txn/b').value('b'),
          c.delete().key('/registry/configmaps/ns-1/cm-0001'),
        )
        .commit();
      const lease = c.lease(3600, { autoKeepAlive: false });
      await lease.put('/registry/masterleases/10.0.0.1').value('k8s\0endpoint');
      await c.delete().prefix('/registry/configmaps/ns-6/');
      await c.put(Buffer.from('/\xff/binary\0key', 'latin1')).value(Buffer.from([0, 1, 2, 255]));
      await c.put('/registry/leases/kube-node-lease/edge-1').value('renewed at the stop');
      // The last writes: a deletion, then a compaction at it, which removes its tombstone: the
      // revision etcd serves is then the compaction's, not the last one in the key bucket.
      await c.put('/registry/events/e').value('soon deleted');
      await c.delete().key('/registry/events/e');
      const rev = (await c.maintenance.status()).header.revision;
      await c.kv.compact({ revision: rev, physical: true });
      served = await keyDigest(c);
    } finally {
      c.close();
    }
    await etcd.stopMember(m.name);

    const db = join(etcd.dir, 'copy.db');
    await copyFile(join(m.dataDir, 'member', 'snap', 'db'), db);
    const read = await fileDigest(db);
    assert.deepEqual(
      [read.keys, read.bytes, read.sha256, read.revision],
      [served.keys, served.bytes, served.sha256, served.revision],
    );
    const file = await openDbFile(db);
    try {
      const seen = new Map<string, string>();
      for await (const kv of file.latest())
        seen.set(kv.key.toString('latin1'), kv.value.toString('latin1'));
      assert.equal(seen.get('/registry/leases/kube-node-lease/edge-1'), 'renewed at the stop');
      assert.equal(seen.get('/registry/configmaps/ns-0/cm-0000'), 'v2');
      assert.equal(seen.has('/registry/configmaps/ns-1/cm-0001'), false);
      assert.equal(seen.has('/registry/events/e'), false);
      assert.equal(seen.get('/registry/secrets/big/s-2')?.length, 1_000_000 - 14);
      assert.equal(seen.get('/\xff/binary\0key'), '\0\x01\x02\xff');
    } finally {
      await file.close();
    }
  });
});
