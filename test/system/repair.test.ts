/**
 * Fix peer URL after an IP change, on real systemd hosts: three members provisioned over SSH;
 * host 2 "moves" (its sshd now answers on a new 127.0.1.M, the inventory still names the old
 * one); the diagnosis names what is stale; the repair re-issues the certificates, updates the
 * member through a healthy member, rewrites the env file and restarts etcd; the member list,
 * certificate, env file and inventory all name the new address, the data written before the
 * move is still there. Then the refusals: nothing stale, and quorum that would be lost.
 */
import assert from 'node:assert/strict';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEndpointClient } from '../../src/core/etcd/client';
import { adminTls } from '../../src/core/etcd/connection';
import { listMembers } from '../../src/core/etcd/members';
import type { Cluster } from '../../src/core/inventory/types';
import { clientEndpoints } from '../../src/core/inventory/select';
import { parseCertificate, sansOf } from '../../src/core/pki/inspect';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import type { SshContext } from '../../src/core/ssh/hostSession';
import { diagnosePeerUrl, fixPeerUrl } from '../../src/core/repair/peerUrl';
import {
  createBridgeNetwork,
  hostKeyLine,
  startEdgeHosts,
  stopEdgeHosts,
  type BridgeNetwork,
  type EdgeHost,
} from '../../scripts/harness/edgeHosts';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { makeTempDir, removeTempDir, waitUntil } from '../../scripts/harness/processes';
import { k3sClientTls, restartAt, startK3sEmbeddedEtcd } from '../support/k3sEmbedded';
import { makeKey } from '../../scripts/harness/sshd';
import { main } from '../../src/cli/main';
import {
  labInventory,
  labSsh,
  loadCluster,
  moveSshd,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { captureIO } from '../fixtures/cli';

const ADDR = ['127.0.1.71', '127.0.1.72', '127.0.1.73'];
const MOVED = '127.0.1.75';

interface Lab {
  dir: string;
  file: string;
  hosts: EdgeHost[];
  cluster: Cluster;
  ssh: SshContext;
}

/**
 * Boots `specs`, writes the lab workspace (each host's key also known under `alsoKnownAt` of
 * it, the address it will move to), generates certificates and provisions etcd, healthy.
 * `track` gets the hosts as soon as they run, so the caller's after() can stop them on failure.
 */
async function provisionedLab(opts: {
  prefix: string;
  cluster: string;
  specs: { name: string; address: string }[];
  alsoKnownAt: Record<string, string>;
  track: (dir: string, hosts: EdgeHost[]) => void;
  comments?: boolean;
  bridge?: BridgeNetwork;
  timeoutMs?: number;
}): Promise<Lab> {
  const dir = await makeTempDir(opts.prefix);
  const key = makeKey(dir, 'id_lab');
  const hosts = await startEdgeHosts({
    hosts: opts.specs,
    authorizedKeys: [key.publicLine],
    ...(opts.bridge ? { network: 'bridge' as const, bridge: opts.bridge } : {}),
  });
  opts.track(dir, hosts);
  const lines = await Promise.all(hosts.map((h) => hostKeyLine(h)));
  const moved = await Promise.all(
    hosts
      .filter((h) => opts.alsoKnownAt[h.name])
      .map((h) => hostKeyLine(h, opts.alsoKnownAt[h.name])),
  );
  await writeKnownHosts(dir, [...lines, ...moved]);
  await stageEtcdBinaries(dir);
  const file = join(dir, 'k3s-etcd.yaml');
  await writeFile(
    file,
    labInventory({
      cluster: opts.cluster,
      hosts: opts.specs,
      identityFile: 'id_lab',
      ...(opts.comments ? { comments: true } : {}),
    }),
  );
  const cluster = await loadCluster(file);
  await generateCertificateSet(cluster);
  const ssh = labSsh(dir, opts.timeoutMs);
  const r = await provisionEtcd(cluster, { dryRun: false, ssh });
  assert.equal(r.healthy, true, r.healthSummary);
  return { dir, file, hosts, cluster, ssh };
}

describe('fix peer URL after an IP change, on real systemd hosts', () => {
  let dir = '';
  let file = '';
  let hosts: EdgeHost[] = [];
  let ssh: SshContext;

  before(async () => {
    // The moved host keeps its host key: known under its new address too.
    ({ file, ssh } = await provisionedLab({
      prefix: 'k3s-etcd-repair-',
      cluster: 'lab',
      specs: ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address })),
      alsoKnownAt: { 'edge-2': MOVED },
      comments: true,
      track: (d, h) => {
        dir = d;
        hosts = h;
      },
    }));
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('repairs a moved member: member list, certificates, env file and inventory name the new address; data kept', async () => {
    const cluster = await loadCluster(file);
    const client = await createEndpointClient(clientEndpoints(cluster)[0]!, {
      tls: adminTls(cluster),
    });
    await client.put('before-move').value('kept');
    client.close();

    await moveSshd(hosts[1]!, MOVED);
    const d = await diagnosePeerUrl(cluster, 'edge-2', { newAddress: MOVED, ssh });
    assert.equal(d.newPeerUrl, `https://${MOVED}:2380`);
    assert.deepEqual(d.stale.map((s) => s.what.replace(/member [0-9a-f]+/, 'member ID')).sort(), [
      '/etc/etcd/etcd.env ETCD_ADVERTISE_CLIENT_URLS',
      '/etc/etcd/etcd.env ETCD_INITIAL_ADVERTISE_PEER_URLS',
      '/etc/etcd/etcd.env ETCD_LISTEN_CLIENT_URLS',
      '/etc/etcd/etcd.env ETCD_LISTEN_PEER_URLS',
      'certificate SANs of edge-2',
      'k3s-etcd.yaml address of edge-2',
      'member ID peer URL (member list)',
    ]);
    assert.equal(d.quorum.ok, true, d.quorum.why);

    const lines: string[] = [];
    const result = await fixPeerUrl(cluster, d, {
      ssh,
      inventoryFile: file,
      onLine: (_h, l) => lines.push(l),
    });
    assert.equal(result.healthy, true, `${result.summary}\n${lines.join('\n')}`);
    // The restart went through the rolling engine: the others checked, a rollback set kept.
    assert.ok(
      lines.some((l) =>
        /^rolling 1\/1: edge-2 \((follower|leader|down)\): the other 2 voters are healthy/.test(l),
      ),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /kept a copy of \d+ file\(s\)/.test(l)),
      lines.join('\n'),
    );

    const after = await loadCluster(file);
    assert.equal(after.hosts[1]!.address, MOVED);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# the lab$/m, 'comments kept');
    assert.match(
      text,
      new RegExp(
        `address: ${MOVED.replace(/\./g, '\\.')}, identityFile: id_lab, roles: \\[etcd\\] } # edge-2`,
      ),
    );
    const members = await listMembers(clientEndpoints(after), { tls: adminTls(after) });
    assert.deepEqual(members.find((m) => m.name === 'edge-2')?.peerUrls, [`https://${MOVED}:2380`]);
    const sans = sansOf(
      parseCertificate(await readFile(join(after.pki.dir, 'edge-2', 'server.pem'), 'utf8')),
    );
    assert.ok(sans.includes(MOVED) && !sans.includes(ADDR[1]!), sans.join(','));
    const env = (await hosts[1]!.exec('cat /etc/etcd/etcd.env')).stdout;
    assert.match(
      env,
      new RegExp(`^ETCD_LISTEN_PEER_URLS=https://${MOVED.replace(/\./g, '\\.')}:2380$`, 'm'),
    );
    assert.doesNotMatch(env, new RegExp(ADDR[1]!.replace(/\./g, '\\.')));
    const c2 = await createEndpointClient(`https://${MOVED}:2379`, { tls: adminTls(after) });
    try {
      assert.equal(await c2.get('before-move').string(), 'kept');
    } finally {
      c2.close();
    }
  });

  it("refuses when nothing is stale, when the new address is another member's, and when the repair would lose quorum; nothing changes", async () => {
    const cluster = await loadCluster(file);
    const d = await diagnosePeerUrl(cluster, 'edge-2', { ssh });
    assert.deepEqual(d.stale, []);
    await assert.rejects(
      fixPeerUrl(cluster, d, { ssh }),
      /Nothing is stale for edge-2: no repair needed/,
    );
    // The same through the CLI (the contract: member fix-peer-url MEMBER [--address] [--dry-run]).
    const { io, out } = captureIO(dir);
    assert.equal(
      await main(['member', 'fix-peer-url', 'edge-2', '--dry-run'], io),
      0,
      out.join('\n'),
    );
    assert.match(out.join('\n'), /Nothing is stale: no repair needed\./);

    // A new address that is another member's: refused before anything is touched.
    const clash = captureIO(dir);
    const cert = await readFile(join(cluster.pki.dir, 'edge-2', 'server.pem'), 'utf8');
    assert.equal(
      await main(['member', 'fix-peer-url', 'edge-2', '--address', ADDR[0]!, '--yes'], clash.io),
      1,
    );
    assert.match(
      clash.out.join('\n'),
      /127\.0\.1\.71 is the address of edge-1 in k3s-etcd\.yaml: check the new address of edge-2\. Nothing was changed\./,
    );
    assert.equal(await readFile(join(cluster.pki.dir, 'edge-2', 'server.pem'), 'utf8'), cert);
    assert.equal((await loadCluster(file)).hosts[1]!.address, MOVED, 'inventory untouched');

    // Two of three down: moving edge-3 would need the other two.
    await hosts[0]!.exec('systemctl stop etcd');
    await hosts[1]!.exec('systemctl stop etcd');
    await moveSshd(hosts[2]!, '127.0.1.76');
    await writeFile(
      join(dir, 'known_hosts'),
      `${(await readFile(join(dir, 'known_hosts'), 'utf8')).trimEnd()}\n${(await hostKeyLine(hosts[2]!)).replace(ADDR[2]!, '127.0.1.76')}\n`,
    );
    const q = await diagnosePeerUrl(cluster, 'edge-3', { newAddress: '127.0.1.76', ssh });
    assert.equal(q.quorum.ok, false);
    const before = await readFile(join(cluster.pki.dir, 'edge-3', 'server.pem'), 'utf8');
    await assert.rejects(
      fixPeerUrl(cluster, q, { ssh, inventoryFile: file }),
      /Repairing edge-3 is refused: only 0 of the other 2 members are healthy/,
    );
    assert.equal(
      await readFile(join(cluster.pki.dir, 'edge-3', 'server.pem'), 'utf8'),
      before,
      'certificates untouched',
    );
    assert.equal((await loadCluster(file)).hosts[2]!.address, ADDR[2], 'inventory untouched');
  });
});

describe('fix peer URL of a single-member cluster (the article case), through the SSH tunnel', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('moves the only member: the update goes through the member itself', async () => {
    const { file, cluster, ssh } = await provisionedLab({
      prefix: 'k3s-etcd-repair1-',
      cluster: 'solo',
      specs: [{ name: 'solo-1', address: '127.0.1.78' }],
      alsoKnownAt: { 'solo-1': '127.0.1.79' },
      track: (d, h) => {
        dir = d;
        hosts = h;
      },
    });
    await moveSshd(hosts[0]!, '127.0.1.79');
    const d = await diagnosePeerUrl(cluster, 'solo-1', { newAddress: '127.0.1.79', ssh });
    assert.equal(d.single, true);
    const lines: string[] = [];
    const r = await fixPeerUrl(cluster, d, {
      ssh,
      inventoryFile: file,
      onLine: (_h, l) => lines.push(l),
    });
    assert.equal(r.healthy, true, `${r.summary}\n${lines.join('\n')}`);
    assert.ok(
      lines.some((l) =>
        /member update [0-9a-f]+ --peer-urls=https:\/\/127\.0\.1\.79:2380: done through https:\/\/127\.0\.0\.1:\d+/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
    const after = await loadCluster(file);
    const members = await listMembers(clientEndpoints(after), { tls: adminTls(after) });
    assert.deepEqual(
      members.map((m) => m.peerUrls),
      [['https://127.0.1.79:2380']],
    );
  });
});

describe('fix peer URL when the old address is really gone (hosts in their own network namespaces)', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let net: BridgeNetwork | undefined;
  after(async () => {
    await stopEdgeHosts(hosts);
    await net?.remove();
    if (dir) await removeTempDir(dir);
  });

  it('a moved member is broken (its peer URL is stale, the old address answers nothing); the repair brings it back', async () => {
    net = await createBridgeNetwork();
    const addrs = [net.address(11), net.address(12), net.address(13)];
    const moved = net.address(22);
    const { file, cluster, ssh } = await provisionedLab({
      prefix: 'k3s-etcd-repair-ns-',
      cluster: 'ns',
      specs: addrs.map((address, i) => ({ name: `ns-${i + 1}`, address })),
      alsoKnownAt: { 'ns-2': moved },
      bridge: net,
      timeoutMs: 3000, // the old address never answers: do not wait the default 20 s
      track: (d, h) => {
        dir = d;
        hosts = h;
      },
    });
    const c = await createEndpointClient(`https://${addrs[0]}:2379`, { tls: adminTls(cluster) });
    await c.put('before-move').value('kept');
    c.close();

    // The IP change: the member is broken.
    await hosts[1]!.changeAddress(moved);
    const broken = await clusterSnapshot(clientEndpoints(cluster), {
      tls: adminTls(cluster),
      timeoutMs: 2000,
    });
    assert.equal(
      broken.health.find((h) => h.endpoint.includes(addrs[1]!))?.health,
      false,
      'the old address answers nothing',
    );
    await assert.rejects(
      diagnosePeerUrl(cluster, 'ns-2', { ssh }),
      /Cannot reach ns-2 at .* over SSH: .* give the new one \(--address NEW_ADDRESS\)/,
    );

    const d = await diagnosePeerUrl(cluster, 'ns-2', { newAddress: moved, ssh });
    assert.ok(d.stale.some((s) => /peer URL \(member list\)/.test(s.what)));
    assert.equal(d.quorum.ok, true, d.quorum.why);
    const log: string[] = [];
    const t0 = performance.now();
    const r = await fixPeerUrl(cluster, d, {
      ssh,
      inventoryFile: file,
      onLine: (_h, l) => log.push(l),
    });
    console.log(
      `repair of a moved member, confirmation to healthy: ${Math.round(performance.now() - t0)} ms`,
    );
    assert.equal(r.healthy, true, `${r.summary}\n${log.join('\n')}`);

    const after = await loadCluster(file);
    assert.equal(after.hosts[1]!.address, moved);
    const snap = await clusterSnapshot(clientEndpoints(after), {
      tls: adminTls(after),
      timeoutMs: 3000,
    });
    assert.equal(snap.healthy, true, snap.summary);
    assert.deepEqual(snap.members.find((m) => m.name === 'ns-2')?.peerUrls, [
      `https://${moved}:2380`,
    ]);
    const c2 = await createEndpointClient(`https://${moved}:2379`, { tls: adminTls(after) });
    try {
      assert.equal(await c2.get('before-move').string(), 'kept', 'nothing lost');
    } finally {
      c2.close();
    }
  });
});

describe("fix peer URL of K3s's embedded etcd, with K3s's certificates on the host", () => {
  let dir = '';
  let k3sDir = '';
  let hosts: EdgeHost[] = [];
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
    if (k3sDir) await removeTempDir(k3sDir);
  });

  it("the member update authenticates with K3s's etcd client certificate read over SSH; K3s's files stay as K3s wrote them", async () => {
    const [OLD, NEW] = ['127.0.1.81', '127.0.1.82'];
    dir = await makeTempDir('k3s-etcd-repair-k3s-');
    k3sDir = await makeTempDir('k3s-etcd-k3s-side-'); // the stand-in's CAs: not the workspace
    const key = makeKey(dir, 'id_lab');
    hosts = await startEdgeHosts({
      hosts: [{ name: 'k3s-1', address: OLD }],
      authorizedKeys: [key.publicLine],
    });
    const h = hosts[0]!;
    await writeKnownHosts(dir, [await hostKeyLine(h), await hostKeyLine(h, NEW)]);
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'k3s',
        hosts: [{ name: 'k3s-1', address: OLD }],
        identityFile: 'id_lab',
        datastore: 'k3s-embedded-etcd',
        roles: ['etcd', 'k3s-server'],
      }),
    );
    const node = { host: h, memberName: 'k3s-1-5e0c1a2b' };
    await startK3sEmbeddedEtcd(k3sDir, [node]);
    const tls = k3sClientTls(k3sDir, node.memberName);
    const healthyAt = (address: string) => async () =>
      (await clusterSnapshot([`https://${address}:2379`], { tls, timeoutMs: 2000 })).healthy;
    await waitUntil(healthyAt(OLD), 30_000, 'the K3s stand-in etcd healthy');
    const c = await createEndpointClient(`https://${OLD}:2379`, { tls });
    await c.put('/registry/before-move').value('kept');
    c.close();

    // The IP change; K3s restarts on the new IP (its config and certificates follow), but the
    // member keeps its old peer URL: the article's broken state.
    await moveSshd(h, NEW);
    await restartAt(k3sDir, node, NEW);
    await waitUntil(healthyAt(NEW), 30_000, 'etcd answering at the new address');
    assert.deepEqual(
      (await listMembers([`https://${NEW}:2379`], { tls })).map((m) => m.peerUrls),
      [[`https://${OLD}:2380`]],
      'the member list still names the old peer URL',
    );
    const sum =
      'sha256sum /var/lib/rancher/k3s/server/tls/etcd/* /var/lib/rancher/k3s/server/db/etcd/config';
    const k3sFiles = (await h.exec(sum)).stdout;

    // The CLI's dry run shows the plan: K3s's client certificate, nothing of K3s's rewritten.
    const { io, out } = captureIO(dir);
    const code = await main(['member', 'fix-peer-url', 'k3s-1', '--address', NEW, '--dry-run'], io);
    assert.equal(code, 0, out.join('\n'));
    assert.match(
      out.join('\n'),
      /with K3s's etcd client certificate read from k3s-1 \(\/var\/lib\/rancher\/k3s\/server\/tls\/etcd\/server-client\.crt, kept in memory\)/,
    );
    assert.match(out.join('\n'), /restart K3s on k3s-1 yourself/);

    const cluster = await loadCluster(file);
    const ssh = labSsh(dir);
    const d = await diagnosePeerUrl(cluster, 'k3s-1', { newAddress: NEW, ssh });
    assert.deepEqual(
      d.stale.map((s) => s.what.replace(/member [0-9a-f]+/, 'member ID')),
      ['member ID peer URL (member list)', 'k3s-etcd.yaml address of k3s-1'],
    );
    assert.equal(d.via, "k3s-1's loopback over SSH");
    const lines: string[] = [];
    const r = await fixPeerUrl(cluster, d, {
      ssh,
      inventoryFile: file,
      onLine: (_h, l) => lines.push(l),
    });
    assert.equal(r.updated, true, lines.join('\n'));
    assert.equal(r.healthy, true, `${r.summary}\n${lines.join('\n')}`);
    assert.match(r.next ?? '', /Restart K3s on k3s-1 now \(sudo systemctl restart k3s\)/);

    assert.deepEqual(
      (await listMembers([`https://${NEW}:2379`], { tls })).map((m) => m.peerUrls),
      [[`https://${NEW}:2380`]],
    );
    assert.equal((await loadCluster(file)).hosts[0]!.address, NEW);
    assert.equal((await h.exec(sum)).stdout, k3sFiles, "K3s's certificates and config untouched");
    await assert.rejects(access(cluster.pki.dir), 'no certificate landed in the workspace');
    const c2 = await createEndpointClient(`https://${NEW}:2379`, { tls });
    try {
      assert.equal(await c2.get('/registry/before-move').string(), 'kept', 'nothing lost');
    } finally {
      c2.close();
    }
  });
});
