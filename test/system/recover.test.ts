/**
 * Recovering from quorum loss on real systemd hosts: three members provisioned over SSH with
 * mutual TLS. While the cluster has quorum, `k3s-etcd recover` refuses and says to use member
 * replace. Then 100 keys, `k3s-etcd snapshot save`, 20 more keys; etcd stopped on two hosts and
 * both data dirs moved away (disks lost, the proof). `recover --yes` chooses the member
 * still running (the most advanced), saves its snapshot without quorum, starts it once with
 * --force-new-cluster, re-adds both as learners: three healthy members with all 120 keys, where
 * the snapshot (100 keys) would have lost 20. A second round stops the same two hosts keeping
 * their data: recover keeps each one's data aside (never deleted) and every key is there again.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient } from '../../src/core/etcd/client';
import { adminTls } from '../../src/core/etcd/connection';
import { listMembers } from '../../src/core/etcd/members';
import { clientEndpoints } from '../../src/core/inventory/select';
import type { Cluster } from '../../src/core/inventory/types';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { listSnapshots } from '../../src/core/snapshot/snapshot';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  runCommand,
  trackGroup,
  untrackGroup,
  waitUntil,
} from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { captureIO } from '../fixtures/cli';

const ADDR = ['127.0.1.151', '127.0.1.152', '127.0.1.153'];
/** Where the snapshot's keys are counted: a plain etcd on this machine, on its restored data. */
const COUNT_AT = '127.0.1.154';
const PREFIX = 'recover/';
const keyName = (i: number) => `${PREFIX}key-${String(i).padStart(3, '0')}`;

async function withClient<T>(
  endpoint: string,
  cluster: Cluster,
  f: (c: Awaited<ReturnType<typeof createEndpointClient>>) => Promise<T>,
): Promise<T> {
  const c = await createEndpointClient(endpoint, { tls: adminTls(cluster), timeoutMs: 5000 });
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

/** The keys under PREFIX in a snapshot file: restored into `dir`, served by a local etcd. */
async function keysInSnapshot(file: string, dir: string): Promise<number> {
  const data = join(dir, 'counted');
  const peer = `http://${COUNT_AT}:2380`;
  const r = await runCommand('etcdctl', [
    'snapshot',
    'restore',
    file,
    '--data-dir',
    data,
    '--name',
    'count',
    '--initial-cluster',
    `count=${peer}`,
    '--initial-advertise-peer-urls',
    peer,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const etcd = spawn(
    'etcd',
    [
      '--name',
      'count',
      '--data-dir',
      data,
      '--listen-client-urls',
      `http://${COUNT_AT}:2379`,
      '--advertise-client-urls',
      `http://${COUNT_AT}:2379`,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `count=${peer}`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  const pid = etcd.pid as number;
  trackGroup(pid, () => etcd.exitCode === null);
  try {
    let count = -1;
    await waitUntil(
      async () => {
        const c = await createEndpointClient(`http://${COUNT_AT}:2379`, { timeoutMs: 2000 });
        try {
          count = await c.getAll().prefix(PREFIX).count();
          return true;
        } finally {
          c.close();
        }
      },
      20_000,
      'the restored snapshot is served',
    );
    return count;
  } finally {
    killGroup(pid, 'SIGKILL');
    untrackGroup(pid);
  }
}

test(
  'recover from quorum loss on three real systemd hosts: refused with quorum, then the most advanced member keeps every write',
  { timeout: 900_000 },
  async (t) => {
    const t0 = Date.now();
    const dir = await makeTempDir('k3s-etcd-recover-');
    let hosts: EdgeHost[] = [];
    t.after(async () => {
      await stopEdgeHosts(hosts);
      await removeTempDir(dir);
    });
    const key = makeKey(dir, 'id_lab');
    const specs = ADDR.map((address, i) => ({ name: `edge-${i + 1}`, address }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(file, labInventory({ cluster: 'lab', hosts: specs, identityFile: 'id_lab' }));
    const cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    const provisioned = await provisionEtcd(cluster, { dryRun: false, ssh: labSsh(dir) });
    assert.equal(provisioned.healthy, true, provisioned.healthSummary);
    const [e1, e2, e3] = clientEndpoints(cluster) as [string, string, string];
    const before = await listMembers([e1], { tls: adminTls(cluster) });

    await t.test('a cluster with quorum is refused: member replace is the way', async () => {
      const { io, out } = captureIO(dir);
      assert.equal(await main(['recover', '--yes'], io), 1);
      const text = out.join('\n');
      assert.match(text, /Nothing to recover: cluster lab still has quorum/);
      assert.match(text, /k3s-etcd member replace/);
      assert.doesNotMatch(text, /== recover/, 'nothing ran');
    });

    // 100 keys, the snapshot a restore would use, 20 keys more.
    await withClient(e1, cluster, async (c) => {
      for (let i = 0; i < 100; i++) await c.put(keyName(i)).value(`v${i}`);
    });
    const saved = captureIO(dir);
    assert.equal(await main(['snapshot', 'save'], saved.io), 0, saved.out.join('\n'));
    const [snap] = await listSnapshots(dir, 'lab');
    assert.ok(snap, saved.out.join('\n'));
    await withClient(e1, cluster, async (c) => {
      for (let i = 100; i < 120; i++) await c.put(keyName(i)).value(`v${i}`);
    });

    const noQuorum = () =>
      waitUntil(
        async () =>
          !(await clusterSnapshot([e1], { tls: adminTls(cluster), timeoutMs: 2000 })).healthy,
        30_000,
        'edge-1 alone has no quorum',
      );
    // Quorum lost: edge-2 and edge-3 lose their disks (etcd stopped, data dirs moved away).
    for (const h of [hosts[1]!, hosts[2]!]) {
      const r = await h.exec('systemctl stop etcd && mv /var/lib/etcd /var/lib/etcd.lost');
      assert.equal(r.code, 0, `${h.name}: ${r.stderr}`);
    }
    await noQuorum();

    await t.test('the dry run names the survivor and changes nothing', async () => {
      const { io, out } = captureIO(dir);
      assert.equal(await main(['recover', '--dry-run'], io), 0, out.join('\n'));
      const text = out.join('\n');
      assert.match(
        text,
        /^Survivor: edge-1 \(member edge-1, raft index \d+, term \d+, revision \d+\)/m,
      );
      assert.match(text, /edge-2: has no data dir/);
      assert.match(text, /edge-3: has no data dir/);
      for (const h of [hosts[1]!, hosts[2]!])
        assert.equal(
          (
            await h.exec(
              'systemctl is-active etcd; test -d /var/lib/etcd && echo data || echo none',
            )
          ).stdout.trim(),
          'inactive\nnone',
          `${h.name}: still stopped, no data dir, after the dry run`,
        );
    });

    const { io, out } = captureIO(dir);
    const started = Date.now();
    const code = await main(['recover', '--yes'], io);
    const took = Date.now() - started;
    const text = out.join('\n');
    assert.equal(code, 0, text);
    t.diagnostic(`recover --yes: ${took} ms from the confirmation to three healthy members`);
    t.diagnostic(
      text
        .split('\n')
        .filter((l) => /^recovered from|^health:/.test(l))
        .join(' | '),
    );

    // Three healthy members, one cluster, edge-2 and edge-3 with new member IDs.
    const snapAfter = await clusterSnapshot([e1, e2, e3], { tls: adminTls(cluster) });
    assert.equal(snapAfter.healthy, true, snapAfter.summary);
    const members = await listMembers([e1], { tls: adminTls(cluster) });
    assert.deepEqual(members.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-3']);
    assert.ok(
      members.every((m) => !m.isLearner),
      'every member promoted',
    );
    const idOf = (ms: typeof members, n: string) => ms.find((m) => m.name === n)?.id;
    assert.equal(idOf(members, 'edge-1'), idOf(before, 'edge-1'), 'the survivor keeps its ID');
    assert.notEqual(idOf(members, 'edge-2'), idOf(before, 'edge-2'));
    assert.notEqual(idOf(members, 'edge-3'), idOf(before, 'edge-3'));

    // Every write is there, on every member; the snapshot held only 100 of them.
    const counts = await Promise.all(
      [e1, e2, e3].map((e) => withClient(e, cluster, (c) => c.getAll().prefix(PREFIX).count())),
    );
    const inSnapshot = await keysInSnapshot(snap.file, dir);
    assert.equal(inSnapshot, 100, `the snapshot saved after 100 keys holds ${inSnapshot}`);
    assert.deepEqual(
      counts,
      [120, 120, 120],
      `all 120 keys on every member after recover (a restore of the snapshot would have lost ${120 - inSnapshot} of them)`,
    );
    t.diagnostic(
      `recover kept all 120 keys; a snapshot restore would have lost ${120 - inSnapshot} (the snapshot holds ${inSnapshot})`,
    );

    // The survivor's snapshot was saved without quorum; no force left.
    const snaps = await listSnapshots(dir, 'lab');
    assert.equal(snaps.length, 2, 'the survivor snapshot beside the first one');
    assert.equal(snaps[0]!.from, e1);
    assert.match(text, /survivor's snapshot: .*\.db/);
    const e1Host = hosts[0]!;
    const survivorRunsPlain = async () => {
      assert.equal(
        (
          await e1Host.exec('ls /run/systemd/system/etcd.service.d/ 2>/dev/null | wc -l')
        ).stdout.trim(),
        '0',
      );
      assert.doesNotMatch(
        (
          await e1Host.exec(
            'cat /proc/$(systemctl show -p MainPID --value etcd)/environ | tr "\\0" "\\n"',
          )
        ).stdout,
        /ETCD_FORCE_NEW_CLUSTER/,
        'etcd runs without --force-new-cluster',
      );
      assert.match(
        (await e1Host.exec('cat /etc/etcd/etcd.env')).stdout,
        /^ETCD_INITIAL_CLUSTER=edge-1=https:\/\/127\.0\.1\.151:2380$/m,
      );
    };
    await survivorRunsPlain();

    await t.test('two members stopped with their data: kept aside, every key back', async () => {
      await withClient(e1, cluster, async (c) => {
        for (let i = 120; i < 125; i++) await c.put(keyName(i)).value(`v${i}`);
      });
      for (const h of [hosts[1]!, hosts[2]!])
        assert.equal((await h.exec('systemctl stop etcd')).code, 0, `${h.name}: etcd stopped`);
      await noQuorum();
      const dry = captureIO(dir);
      assert.equal(await main(['recover', '--dry-run'], dry.io), 0, dry.out.join('\n'));
      const plan = dry.out.join('\n');
      assert.match(plan, /^Survivor: edge-1 /m);
      for (const h of ['edge-2', 'edge-3'])
        assert.match(
          plan,
          new RegExp(`${h}: its data \\(down; its database is at revision \\d+\\) is moved aside`),
        );
      const run = captureIO(dir);
      assert.equal(await main(['recover', '--yes'], run.io), 0, run.out.join('\n'));
      const again = await clusterSnapshot([e1, e2, e3], { tls: adminTls(cluster) });
      assert.equal(again.healthy, true, again.summary);
      assert.deepEqual(
        await Promise.all(
          [e1, e2, e3].map((e) => withClient(e, cluster, (c) => c.getAll().prefix(PREFIX).count())),
        ),
        [125, 125, 125],
        'all 125 keys on every member after the second recover',
      );
      for (const h of [hosts[1]!, hosts[2]!])
        assert.match(
          (await h.exec('ls -d /var/lib/etcd.recover-*/member')).stdout,
          /member/,
          `${h.name}: its data kept aside`,
        );
      await survivorRunsPlain();
    });
    t.diagnostic(`whole test: ${Math.round((Date.now() - t0) / 1000)} s`);
  },
);
