/**
 * K3s's embedded etcd onto the external etcd, on real systemd hosts: K3s servers on their
 * embedded etcd (the stand-in of test/support/k3sEmbedded.ts: the real etcd with K3s's layout,
 * started by a k3s.service whose `k3s server --cluster-init` runs it) as the source, three
 * provisioned members on other ports (2389/2390, on the same hosts) as the target.
 *
 * One server (the common case): real data (hundreds of keys, values near 1 MiB, a leased key, a
 * deleted key, /bootstrap). First a target already holding a /registry/ key is refused with
 * nothing stopped or written; then the dry run's words; then the move, with K3s still writing
 * at the last moment (as the move announces the leader's stop, K3s's writes land: two new keys,
 * one changed, one deleted, and etcdctl reads the whole keyspace then, the state at the stop):
 * the target holds exactly that state (count and SHA-256, the late keys as they were left), the
 * move's own verification says so, the leased key keeps a lease, the deleted key is absent, the
 * embedded data is moved aside, config.yaml re-pointed without cluster-init, and the K3s
 * stand-in, restarted, writes its key into the TARGET etcd. (A snapshot taken while K3s runs,
 * as the move once did, misses those late writes and fails here.)
 *
 * Three servers: the followers stop first, then the leader; the leader's database is copied and
 * read once none runs; the three are re-pointed, the leader's host first, and each writes into
 * the target. In the harness's shared network the three embedded etcds cannot
 * each bind 127.0.0.1:2379, so they listen on their addresses only, and the move reaches each
 * through its address over SSH (the loopback is tried first, as on real K3s servers).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../src/cli/main';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient } from '../../src/core/etcd/client';
import { healthyClient } from '../../src/core/etcd/connection';
import { keyDigest, type KeyDigest } from '../../src/core/embeddedMove/digest';
import { loadInventoryFile } from '../../src/core/inventory/parse';
import { pairsHasher } from '../../src/core/migrate/preflight';
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

const SECRET = '6b3f0a5d9c2e4f718a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5';
/** Where K3s keeps its own binaries: not /usr/local/bin, where the target's etcd is installed. */
const K3S_ETCD_BIN = '/var/lib/rancher/k3s/data/current/bin/etcd';
/**
 * The stand-in's k3s.service made K3s's own shape: `k3s server --cluster-init`, where this
 * `k3s` runs the embedded etcd (K3s would).
 */
const WRAPPER = `#!/bin/sh
case " $* " in *" --cluster-init "*) exec ${K3S_ETCD_BIN} --config-file ${K3S_DB}/config ;; esac
echo "k3s (embedded stand-in): only server --cluster-init is imitated" >&2
exit 2
`;
const UNIT =
  "[Unit]\nDescription=Lightweight Kubernetes\n[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--cluster-init' \\\n\nRestart=always\nRestartSec=1\n[Install]\nWantedBy=multi-user.target\n";
const member = (i: number) => `edge-${i + 1}-5e0c1a2${i}`;

interface Lab {
  dir: string;
  k3sDir: string;
  hosts: EdgeHost[];
  target: Cluster;
  direct(): ReturnType<typeof createEndpointClient>;
  /** The CLI in-process; `onLine` sees each line as it is printed, before the move goes on. */
  cli(args: string[], onLine?: (line: string) => void): Promise<{ code: number; text: string }>;
  stop(): Promise<void>;
}

/**
 * Three hosts: the first `servers` are K3s servers on their embedded etcd (cluster `k3s`); all
 * three are members of the external etcd (cluster `ext`, ports 2389/2390), K3s servers there too.
 */
async function startLab(addr: string[], servers: number): Promise<Lab> {
  const savedXdg = process.env['XDG_CONFIG_HOME'];
  const dir = await makeTempDir('k3s-etcd-embedded-');
  const k3sDir = await makeTempDir('k3s-etcd-embedded-k3s-'); // the stand-in's CAs
  process.env['XDG_CONFIG_HOME'] = join(dir, 'config'); // the CLI's token store
  let hosts: EdgeHost[] = [];
  const lab: Lab = {
    dir,
    k3sDir,
    hosts,
    target: undefined as unknown as Cluster,
    direct: () =>
      createEndpointClient(`https://${addr[0]}:2379`, { tls: k3sClientTls(k3sDir, member(0)) }),
    cli: async (args, onLine) => {
      const { io, out } = captureIO(dir);
      const print = io.out;
      io.out = (t) => {
        print(t);
        onLine?.(t);
      };
      const code = await main(args, io);
      return { code, text: out.join('\n') };
    },
    stop: async () => {
      if (savedXdg === undefined) delete process.env['XDG_CONFIG_HOME'];
      else process.env['XDG_CONFIG_HOME'] = savedXdg;
      await stopEdgeHosts(hosts);
      await removeTempDir(dir);
      await removeTempDir(k3sDir);
    },
  };
  const key = makeKey(dir, 'id_lab');
  const specs = addr.map((address, i) => ({
    name: `edge-${i + 1}`,
    address,
    roles: i < servers ? ['etcd', 'k3s-server'] : ['etcd'],
  }));
  hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
  lab.hosts = hosts;
  await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
  await stageEtcdBinaries(dir);
  await writeK3sStandIn(join(dir, 'k3s-offline'));
  const source = labInventory({
    cluster: 'k3s',
    hosts: specs.slice(0, servers).map(({ name, address }) => ({ name, address })),
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
  const file = join(dir, 'k3s-etcd.yaml');
  await writeFile(file, `${source.trimEnd()}\n${ext}`);
  const inv = await loadInventoryFile(file);
  assert.equal(inv.status, 'ok', JSON.stringify(inv.status === 'ok' ? [] : inv.problems));
  if (inv.status !== 'ok') throw new Error('invalid inventory');
  lab.target = inv.inventory.clusters.find((c) => c.name === 'ext') as Cluster;

  // The source: K3s on its embedded etcd, as K3s installs it, with its token file.
  const nodes = hosts.slice(0, servers).map((host, i) => ({ host, memberName: member(i) }));
  await startK3sEmbeddedEtcd(k3sDir, nodes, { loopback: servers === 1 });
  for (const { host: h } of nodes) {
    await writeFile(join(h.root, 'usr/local/bin/k3s'), WRAPPER, { mode: 0o755 });
    await writeFile(join(h.root, 'etc/systemd/system/k3s.service'), UNIT);
    await mkdir(join(h.root, K3S_ETCD_BIN, '..'), { recursive: true });
    await copyFile('/usr/bin/etcd', join(h.root, K3S_ETCD_BIN));
    const r = await h.exec(
      `rm -f /usr/local/bin/etcd && mkdir -p /var/lib/rancher/k3s/server && (umask 077; echo 'K10f00d::server:${SECRET}' > /var/lib/rancher/k3s/server/token) && systemctl daemon-reload && systemctl restart k3s`,
    );
    assert.equal(r.code, 0, r.stderr);
  }
  await waitUntil(
    async () =>
      (
        await clusterSnapshot(
          nodes.map((n) => `https://${n.host.address}:2379`),
          { tls: k3sClientTls(k3sDir, member(0)), timeoutMs: 2000 },
        )
      ).healthy,
    60_000,
    "K3s's embedded etcd healthy",
  );
  // The target: three members, one beside each host's K3s.
  await generateCertificateSet(lab.target);
  const p = await provisionEtcd(lab.target, { dryRun: false, ssh: labSsh(dir) });
  assert.equal(p.healthy, true, p.healthSummary);
  return lab;
}

const MOVE = ['migrate', 'embedded-to-external', '--from', 'k3s', '--cluster', 'ext'];

describe("K3s's embedded etcd (one server) onto the external etcd, on real systemd hosts", () => {
  const ADDR = ['127.0.1.186', '127.0.1.187', '127.0.1.188'];
  let lab: Lab;

  before(async () => {
    lab = await startLab(ADDR, 1);
    // Real data: many keys, values near 1 MiB, a leased key, a deleted key, /bootstrap.
    const c = await lab.direct();
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
    await lab?.stop();
  });

  it('a target already holding a /registry/ key is refused: nothing stopped, nothing written', async () => {
    const { client } = await healthyClient(lab.target);
    try {
      await client.put('/registry/already/here').value('live');
      const r = await lab.cli([...MOVE, '--yes']);
      assert.equal(r.code, 1, r.text);
      assert.match(
        r.text,
        /ext already holds K3s data \(1 \/registry\/ key\(s\), 0 \/bootstrap\/ key\(s\)\): a live datastore is never overwritten/,
      );
      assert.equal((await lab.hosts[0]!.exec('systemctl is-active k3s')).stdout.trim(), 'active');
      await assert.rejects(stat(join(lab.dir, 'backups')), 'no snapshot was taken');
      assert.equal(await client.get('/registry/already/here').string(), 'live');
    } finally {
      await client.delete().key('/registry/already/here');
      client.close();
    }
  });

  it('the dry run reads and says the plan in words', async () => {
    const r = await lab.cli([...MOVE, '--dry-run']);
    assert.equal(r.code, 0, r.text);
    assert.match(
      r.text,
      /1\. edge-1 is the only K3s server: nothing to stop before it .*stops with it in step 2, before anything is read/,
    );
    assert.match(r.text, /2\. stop K3s on edge-1 \(its etcd stops with it\)/);
    assert.match(
      r.text,
      /3\. snapshot: edge-1's etcd database \/var\/lib\/rancher\/k3s\/server\/db\/etcd\/member\/snap\/db .*copied as it lies with K3s stopped/,
    );
    assert.doesNotMatch(r.text, /not carried/);
    assert.match(
      r.text,
      /etcdctl \(etcd 3\.4\.23's etcdctl has no --bump-revision: the revisions stay as the snapshot holds them\)/,
    );
    assert.match(
      r.text,
      /Until step 6 nothing of K3s's is changed: starting K3s again \(sudo systemctl start k3s on edge-1\) goes back/,
    );
    assert.match(r.text, /The K3s token: the servers' own/);
    assert.equal((await lab.hosts[0]!.exec('systemctl is-active k3s')).stdout.trim(), 'active');
  });

  it('moves every key K3s wrote up to its stop, re-points K3s, and K3s writes into the external etcd', async () => {
    const c = await lab.direct();
    const before = await keyDigest(c).finally(() => c.close());
    assert.ok(before.keys >= 305, `${before.keys} keys`);

    // K3s writing until the last moment: as the move announces the leader's stop (and, in the
    // old order, right after its snapshot), these land in the embedded etcd, and etcdctl reads
    // the keyspace as the stop finds it. Synchronous, so the move goes on only after them.
    const tls = k3sClientTls(lab.k3sDir, member(0));
    const etcdctl = (...args: string[]) =>
      execFileSync(
        'etcdctl',
        [
          `--endpoints=https://${ADDR[0]}:2379`,
          `--cacert=${tls.caFile}`,
          `--cert=${tls.certFile}`,
          `--key=${tls.keyFile}`,
          ...args,
        ],
        { env: { ...process.env, ETCDCTL_API: '3' }, maxBuffer: 256 * 1024 * 1024 },
      ).toString('utf8');
    let atStop: KeyDigest | undefined;
    const lateWrites = (line: string) => {
      if (atStop || !/^== move \d\/6: stop K3s on the leader's host/.test(line)) return;
      etcdctl('put', '/registry/leases/kube-node-lease/edge-1', 'renewed at the stop');
      etcdctl('put', '/registry/events/default/late', 'written at the stop');
      etcdctl('put', '/registry/configmaps/default/cm-0007', 'changed at the stop');
      etcdctl('del', '/registry/configmaps/default/cm-0008');
      const all = JSON.parse(etcdctl('get', '', '--from-key', '-w', 'json')) as {
        header: { revision: number };
        kvs?: { key: string; value?: string }[];
      };
      const kvs = (all.kvs ?? [])
        .map((kv) => ({
          key: Buffer.from(kv.key, 'base64'),
          value: Buffer.from(kv.value ?? '', 'base64'),
        }))
        .sort((a, b) => Buffer.compare(a.key, b.key));
      const h = pairsHasher();
      for (const kv of kvs) h.add(kv.key, kv.value);
      atStop = {
        revision: String(all.header.revision),
        keys: kvs.length,
        bytes: kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0),
        sha256: h.digest(),
      };
    };

    const r = await lab.cli([...MOVE, '--yes'], lateWrites);
    assert.equal(r.code, 0, r.text);
    assert.ok(atStop, `K3s wrote at the leader's stop\n${r.text}`);
    assert.equal(atStop.keys, before.keys + 1, 'two keys added and one deleted at the stop');
    // The move's own check compares the target with the state at the stop.
    assert.match(
      r.text,
      new RegExp(
        `verified: ${atStop.keys}/${atStop.keys} keys, SHA-256 ${atStop.sha256.slice(0, 16)}`,
      ),
    );

    const h = lab.hosts[0]!;
    const config = parse((await h.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<string, unknown>;
    assert.equal(config['datastore-endpoint'], ADDR.map((a) => `https://${a}:2389`).join(','));
    assert.equal(config['datastore-cafile'], K3S_DATASTORE_FILES.ca);
    assert.equal(config['token'], SECRET);
    assert.equal(config['cluster-init'], undefined);
    assert.doesNotMatch((await h.exec('systemctl cat k3s')).stdout, /cluster-init/);
    const db = await h.exec(`ls -d ${K3S_DB} ${K3S_DB}.before-external-*/member 2>&1`);
    assert.match(db.stdout, /No such file or directory/);
    assert.match(db.stdout, /etcd\.before-external-\d{8}T\d{6}Z\/member/);
    const snaps = await readdir(join(lab.dir, 'backups', 'k3s'));
    const snap = snaps.find((n) => n.endsWith('.db'));
    assert.ok(snap, snaps.join(','));
    assert.equal((await stat(join(lab.dir, 'backups', 'k3s', snap))).mode & 0o777, 0o600);

    const { client } = await healthyClient(lab.target);
    try {
      await waitUntil(
        async () => (await client.get('/registry/k3s-standin/edge-1').string()) === 'started',
        60_000,
        'the K3s stand-in writing into the external etcd',
      );
      // Every key of the source as K3s left it at its stop, byte for byte, K3s's last writes
      // included: the target minus what K3s wrote since.
      assert.equal(
        await client.get('/registry/leases/kube-node-lease/edge-1').string(),
        'renewed at the stop',
      );
      assert.equal(
        await client.get('/registry/events/default/late').string(),
        'written at the stop',
      );
      assert.equal(
        await client.get('/registry/configmaps/default/cm-0007').string(),
        'changed at the stop',
      );
      assert.equal(await client.get('/registry/configmaps/default/cm-0008').string(), null);
      await client.delete().key('/registry/k3s-standin/edge-1');
      const after = await keyDigest(client);
      assert.deepEqual([after.keys, after.sha256], [atStop.keys, atStop.sha256]);
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

describe("K3s's embedded etcd (three servers) onto the external etcd, on real systemd hosts", () => {
  const ADDR = ['127.0.1.191', '127.0.1.192', '127.0.1.193'];
  let lab: Lab;
  before(async () => {
    lab = await startLab(ADDR, 3);
    const c = await lab.direct();
    try {
      for (let i = 0; i < 200; i++)
        await c.put(`/registry/pods/default/p-${i}`).value(`k8s\0pod ${i}`.repeat(1 + (i % 17)));
      await c.put('/bootstrap/0123456789ab').value('{"sealed":"by the token"}');
    } finally {
      c.close();
    }
  });
  after(async () => {
    await lab?.stop();
  });

  it("stops the followers first, then the leader, copies the leader's database, re-points all three, leader first", async () => {
    const c = await lab.direct();
    const before = await keyDigest(c).finally(() => c.close());
    const r = await lab.cli([...MOVE, '--yes']);
    assert.equal(r.code, 0, r.text);
    const leader = /Source: 3 member\(s\), leader (edge-\d)/.exec(r.text)?.[1] ?? '';
    const followers = ['edge-1', 'edge-2', 'edge-3'].filter((h) => h !== leader);
    assert.match(r.text, /with 3 members, quorum is lost once 2 are down/);
    const at = (s: string) => r.text.indexOf(s);
    const stopped = (h: string, from: number) => r.text.indexOf(`[${h}] <== 1/1 changed`, from);
    const leaderPhase = at('== move 2/6');
    const snapshotPhase = at('== move 3/6');
    for (const f of followers) {
      const i = stopped(f, at('== move 1/6'));
      assert.ok(i > 0 && i < leaderPhase, `${f} stopped before the leader\n${r.text}`);
    }
    const l = stopped(leader, leaderPhase);
    assert.ok(
      l > leaderPhase && l < snapshotPhase,
      `the leader stopped before the snapshot\n${r.text}`,
    );
    assert.match(
      r.text,
      new RegExp(
        `\\[${leader}\\] snapshot .*\\(/var/lib/rancher/k3s/server/db/etcd/member/snap/db, K3s stopped\\)`,
      ),
    );
    assert.match(
      r.text,
      new RegExp(
        `verified: ${before.keys}/${before.keys} keys, SHA-256 ${before.sha256.slice(0, 16)}`,
      ),
    );
    const order = [...r.text.matchAll(/\[(edge-\d)\] datastore check from/g)].map((m) => m[1]);
    assert.deepEqual(order, [leader, ...followers], 'the leader re-pointed first');

    const { client } = await healthyClient(lab.target);
    try {
      for (const h of lab.hosts) {
        await waitUntil(
          async () => (await client.get(`/registry/k3s-standin/${h.name}`).string()) === 'started',
          60_000,
          `${h.name}'s K3s writing into the external etcd`,
        );
        const db = await h.exec(`ls -d ${K3S_DB}.before-external-*/member`);
        assert.equal(db.code, 0, `${h.name} keeps its embedded data`);
      }
    } finally {
      client.close();
    }
  });
});
