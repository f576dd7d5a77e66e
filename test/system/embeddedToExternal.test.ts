/**
 * K3s's embedded etcd onto the external etcd, on real systemd hosts: a K3s server on its
 * embedded etcd (the stand-in of test/support/k3sEmbedded.ts: the real etcd with K3s's layout,
 * started by a k3s.service whose `k3s server --cluster-init` runs it) as the source, three
 * provisioned members on other ports (2389/2390, one of them on the K3s server's host) as the
 * target. A single-server source: the common case, and the one three hosts allow in the shared
 * network (two embedded etcds would both bind 127.0.0.1:2379). Real data: hundreds of keys,
 * values near 1 MiB, a leased key, a deleted key. First a target already holding a /registry/
 * key is refused with nothing stopped or written; then the dry run's words; then the move:
 * every key on the target (count and SHA-256 equal to the source's), the leased key with a
 * lease, the deleted key absent, the embedded data moved aside, config.yaml re-pointed without
 * cluster-init, and the K3s stand-in, restarted, writing its key into the TARGET etcd.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../src/cli/main';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient } from '../../src/core/etcd/client';
import { healthyClient } from '../../src/core/etcd/connection';
import { keyDigest } from '../../src/core/embeddedMove/digest';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import type { Cluster } from '../../src/core/inventory/types';
import { K3S_CONFIG, K3S_DATASTORE_FILES } from '../../src/core/k3s/server';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import {
  labInventory,
  labSsh,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { captureIO } from '../fixtures/cli';
import { K3S_DB, k3sClientTls, startK3sEmbeddedEtcd } from '../support/k3sEmbedded';
import { STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';

const ADDR = ['127.0.1.186', '127.0.1.187', '127.0.1.188'];
const MEMBER = 'edge-1-5e0c1a2b';
const SECRET = '6b3f0a5d9c2e4f718a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5';

/**
 * The stand-in's k3s.service made K3s's own shape: `k3s server --cluster-init`, where this
 * `k3s` runs the embedded etcd (K3s would); the token file K3s keeps.
 */
/** Where K3s keeps its own binaries: not /usr/local/bin, where the target's etcd is installed. */
const K3S_ETCD_BIN = '/var/lib/rancher/k3s/data/current/bin/etcd';
const WRAPPER = `#!/bin/sh
case " $* " in *" --cluster-init "*) exec ${K3S_ETCD_BIN} --config-file ${K3S_DB}/config ;; esac
echo "k3s (embedded stand-in): only server --cluster-init is imitated" >&2
exit 2
`;

describe("K3s's embedded etcd onto the external etcd, on real systemd hosts", () => {
  let dir = '';
  let k3sDir = '';
  let hosts: EdgeHost[] = [];
  let target: Cluster;
  let file = '';
  const savedXdg = process.env['XDG_CONFIG_HOME'];
  const direct = () =>
    createEndpointClient(`https://${ADDR[0]}:2379`, { tls: k3sClientTls(k3sDir, MEMBER) });
  const cli = async (args: string[]) => {
    const { io, out } = captureIO(dir);
    const code = await main(args, io);
    return { code, text: out.join('\n') };
  };

  before(async () => {
    dir = await makeTempDir('k3s-etcd-embedded-');
    k3sDir = await makeTempDir('k3s-etcd-embedded-k3s-'); // the stand-in's CAs: not the workspace
    process.env['XDG_CONFIG_HOME'] = join(dir, 'config'); // the CLI's token store
    const key = makeKey(dir, 'id_lab');
    const specs = ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i === 0 ? ['etcd', 'k3s-server'] : ['etcd'],
    }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    const source = labInventory({
      cluster: 'k3s',
      hosts: [{ name: 'edge-1', address: ADDR[0]! }],
      identityFile: 'id_lab',
      datastore: 'k3s-embedded-etcd',
      roles: ['etcd', 'k3s-server'],
    });
    const ext = labInventory({
      cluster: 'ext',
      hosts: specs,
      identityFile: 'id_lab',
      clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline }`],
    })
      .replace('uploadPath: etcd-bin }', 'uploadPath: etcd-bin, clientPort: 2389, peerPort: 2390 }')
      .split('\n')
      .slice(2)
      .join('\n');
    file = join(dir, 'k3s-etcd.yaml');
    await writeFile(file, `${source.trimEnd()}\n${ext}`);
    const inv = await loadInventoryFile(file);
    assert.equal(inv.status, 'ok', JSON.stringify(inv.status === 'ok' ? [] : inv.problems));
    if (inv.status !== 'ok') return;
    target = inv.inventory.clusters.find((c) => c.name === 'ext') as Cluster;
    // The source: K3s on its embedded etcd, as K3s installs it.
    const h = hosts[0]!;
    await startK3sEmbeddedEtcd(k3sDir, [{ host: h, memberName: MEMBER }]);
    await writeFile(join(h.root, 'usr/local/bin/k3s'), WRAPPER, { mode: 0o755 });
    await writeFile(
      join(h.root, 'etc/systemd/system/k3s.service'),
      "[Unit]\nDescription=Lightweight Kubernetes\n[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--cluster-init' \\\n\nRestart=always\nRestartSec=1\n[Install]\nWantedBy=multi-user.target\n",
    );
    await mkdir(join(h.root, K3S_ETCD_BIN, '..'), { recursive: true });
    await copyFile('/usr/bin/etcd', join(h.root, K3S_ETCD_BIN));
    const r = await h.exec(
      `rm -f /usr/local/bin/etcd && mkdir -p /var/lib/rancher/k3s/server && (umask 077; echo 'K10f00d::server:${SECRET}' > /var/lib/rancher/k3s/server/token) && systemctl daemon-reload && systemctl restart k3s`,
    );
    assert.equal(r.code, 0, r.stderr);
    await waitUntil(
      async () =>
        (
          await clusterSnapshot([`https://${ADDR[0]}:2379`], {
            tls: k3sClientTls(k3sDir, MEMBER),
            timeoutMs: 2000,
          })
        ).healthy,
      30_000,
      "K3s's embedded etcd healthy",
    );
    // The target: three members, one beside K3s on edge-1.
    await generateCertificateSet(target);
    const p = await provisionEtcd(target, { dryRun: false, ssh: labSsh(dir) });
    assert.equal(p.healthy, true, p.healthSummary);

    // Real data: many keys, values near 1 MiB, a leased key, a deleted key, /bootstrap.
    const c = await direct();
    try {
      for (let i = 0; i < 300; i++)
        await c
          .put(`/registry/configmaps/default/cm-${String(i).padStart(4, '0')}`)
          .value(`k8s\0value ${i} `.repeat(1 + (i % 40)));
      for (let i = 0; i < 3; i++)
        await c.put(`/registry/secrets/big/s-${i}`).value(Buffer.alloc(1_000_000 - i * 7, 65 + i));
      await c.put('/bootstrap/0123456789ab').value('{"sealed":"by the token"}');
      const lease = c.lease(3600, { autoKeepAlive: false });
      await lease.put('/registry/masterleases/127.0.1.186').value('k8s\0endpoint');
      await c.put('/registry/events/default/gone').value('soon deleted');
      await c.delete().key('/registry/events/default/gone');
    } finally {
      c.close();
    }
  });
  after(async () => {
    if (savedXdg === undefined) delete process.env['XDG_CONFIG_HOME'];
    else process.env['XDG_CONFIG_HOME'] = savedXdg;
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
    if (k3sDir) await removeTempDir(k3sDir);
  });

  it('a target already holding a /registry/ key is refused: nothing stopped, nothing written', async () => {
    const { client } = await healthyClient(target);
    try {
      await client.put('/registry/already/here').value('live');
      const r = await cli([
        'migrate',
        'embedded-to-external',
        '--from',
        'k3s',
        '--cluster',
        'ext',
        '--yes',
      ]);
      assert.equal(r.code, 1, r.text);
      assert.match(
        r.text,
        /ext already holds K3s data \(1 \/registry\/ key\(s\), 0 \/bootstrap\/ key\(s\)\): a live datastore is never overwritten/,
      );
      assert.equal((await hosts[0]!.exec('systemctl is-active k3s')).stdout.trim(), 'active');
      await assert.rejects(stat(join(dir, 'backups')), 'no snapshot was taken');
      assert.equal(await client.get('/registry/already/here').string(), 'live');
    } finally {
      await client.delete().key('/registry/already/here');
      client.close();
    }
  });

  it('the dry run reads and says the plan in words', async () => {
    const r = await cli([
      'migrate',
      'embedded-to-external',
      '--from',
      'k3s',
      '--cluster',
      'ext',
      '--dry-run',
    ]);
    assert.equal(r.code, 0, r.text);
    assert.match(
      r.text,
      /edge-1 is the only K3s server: .* writes in the seconds between the snapshot and the stop \(step 3\) are not carried/,
    );
    assert.match(
      r.text,
      /etcdctl \(etcd 3\.4\.23's etcdctl has no --bump-revision: the revisions stay as the snapshot holds them\)/,
    );
    assert.match(
      r.text,
      /Until step 6 nothing of K3s's is changed: starting K3s again \(sudo systemctl start k3s on edge-1\) goes back/,
    );
    assert.match(r.text, /The K3s token: the servers' own/);
    assert.equal((await hosts[0]!.exec('systemctl is-active k3s')).stdout.trim(), 'active');
  });

  it('moves every key, re-points K3s, and K3s writes into the external etcd', async () => {
    const c = await direct();
    const before = await keyDigest(c).finally(() => c.close());
    assert.ok(before.keys >= 305, `${before.keys} keys`);

    const r = await cli([
      'migrate',
      'embedded-to-external',
      '--from',
      'k3s',
      '--cluster',
      'ext',
      '--yes',
    ]);
    assert.equal(r.code, 0, r.text);
    assert.match(
      r.text,
      new RegExp(
        `verified: ${before.keys}/${before.keys} keys, SHA-256 ${before.sha256.slice(0, 16)}`,
      ),
    );

    const h = hosts[0]!;
    const config = parse((await h.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<string, unknown>;
    assert.equal(config['datastore-endpoint'], ADDR.map((a) => `https://${a}:2389`).join(','));
    assert.equal(config['datastore-cafile'], K3S_DATASTORE_FILES.ca);
    assert.equal(config['token'], SECRET);
    assert.equal(config['cluster-init'], undefined);
    assert.doesNotMatch((await h.exec('systemctl cat k3s')).stdout, /cluster-init/);
    const db = await h.exec(`ls -d ${K3S_DB} ${K3S_DB}.before-external-*/member 2>&1`);
    assert.match(db.stdout, /No such file or directory/);
    assert.match(db.stdout, /etcd\.before-external-\d{8}T\d{6}Z\/member/);
    const snaps = await readdir(join(dir, 'backups', 'k3s'));
    const snap = snaps.find((n) => n.endsWith('.db'));
    assert.ok(snap, snaps.join(','));
    assert.equal((await stat(join(dir, 'backups', 'k3s', snap))).mode & 0o777, 0o600);

    const { client } = await healthyClient(target);
    try {
      await waitUntil(
        async () => (await client.get('/registry/k3s-standin/edge-1').string()) === 'started',
        60_000,
        'the K3s stand-in writing into the external etcd',
      );
      // Every key of the source, byte for byte: the target minus what K3s wrote since.
      await client.delete().key('/registry/k3s-standin/edge-1');
      const after = await keyDigest(client);
      assert.deepEqual([after.keys, after.sha256], [before.keys, before.sha256]);
      assert.equal(
        (await client.get('/registry/secrets/big/s-2').buffer())?.length,
        1_000_000 - 14,
      );
      const leased = await client.kv.range({
        key: Buffer.from('/registry/masterleases/127.0.1.186'),
      });
      assert.notEqual(String(leased.kvs[0]?.lease ?? '0'), '0', 'the leased key keeps its lease');
      assert.equal(await client.get('/registry/events/default/gone').string(), null);
      assert.equal(
        await client.get('/bootstrap/0123456789ab').string(),
        '{"sealed":"by the token"}',
      );
    } finally {
      client.close();
    }
  });
});
