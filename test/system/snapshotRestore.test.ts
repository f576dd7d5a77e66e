/**
 * Restoring an etcd snapshot onto real systemd hosts: three members provisioned over SSH with
 * mutual TLS, 50 known keys, `k3s-etcd snapshot save`, then one key changed and one added. A
 * snapshot whose bytes differ from its record is refused before any host is touched; a dry run
 * changes nothing (etcd's MainPID the same on every host, nothing uploaded); `k3s-etcd snapshot
 * restore --file ... --yes` brings the 50 keys back as they were, the later key is gone, the
 * three members are healthy, each host keeps its old data dir beside the restored one, and
 * provisioning afterwards finds nothing to change.
 */
import assert from 'node:assert/strict';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main';
import { clusterSnapshot } from '../../src/core/etcd/checks';
import { createEndpointClient } from '../../src/core/etcd/client';
import { adminTls } from '../../src/core/etcd/connection';
import { listMembers } from '../../src/core/etcd/members';
import { listSnapshots } from '../../src/core/snapshot/snapshot';
import type { Cluster } from '../../src/core/inventory/types';
import { clientEndpoints } from '../../src/core/inventory/select';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import { type EdgeHost } from '../../scripts/harness/edgeHosts/types';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { captureIO } from '../fixtures/cli';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';

const ADDR = ['127.0.1.131', '127.0.1.132', '127.0.1.133'];
const KEYS = 50;
const keyName = (i: number) => `restore/key-${String(i).padStart(2, '0')}`;

async function withClient<T>(
  cluster: Cluster,
  f: (c: Awaited<ReturnType<typeof createEndpointClient>>) => Promise<T>,
): Promise<T> {
  const c = await createEndpointClient(clientEndpoints(cluster)[0]!, {
    tls: adminTls(cluster),
    timeoutMs: 5000,
  });
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

async function mainPids(hosts: EdgeHost[]): Promise<string[]> {
  return Promise.all(
    hosts.map(async (h) => (await h.exec('systemctl show -p MainPID --value etcd')).stdout.trim()),
  );
}

test(
  'snapshot restore on three real systemd hosts: refused when damaged, dry run changes nothing, restore brings the keys back and keeps the old data',
  { timeout: 600_000 },
  async (t) => {
    const dir = await makeTempDir('k3s-etcd-restore-');
    let hosts: EdgeHost[] = [];
    // Hosts stop and the workspace goes whatever happens below.
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
    const ssh = labSsh(dir);
    const provisioned = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.equal(provisioned.healthy, true, provisioned.healthSummary);

    // 50 known keys, then the snapshot through the CLI.
    await withClient(cluster, async (c) => {
      for (let i = 0; i < KEYS; i++) await c.put(keyName(i)).value(`value-${i}`);
    });
    const saved = captureIO(dir);
    assert.equal(await main(['snapshot', 'save'], saved.io), 0, saved.out.join('\n'));
    const [snap] = await listSnapshots(dir, 'lab');
    assert.ok(snap, saved.out.join('\n'));
    t.diagnostic(`snapshot ${snap.file}: ${snap.bytes} bytes, revision ${snap.revision}`);

    // Later writes: one key changed, one added.
    await withClient(cluster, async (c) => {
      await c.put(keyName(7)).value('changed after the snapshot');
      await c.put('restore/later').value('written after the snapshot');
    });
    const pidsBefore = await mainPids(hosts);
    assert.ok(
      pidsBefore.every((p) => Number(p) > 0),
      `etcd runs on every host: ${pidsBefore.join(', ')}`,
    );
    const uploaded = `/var/lib/k3s-etcd/restore/${snap.file.split('/').pop()}`;

    await t.test(
      'a snapshot whose bytes differ from its record is refused before any host is touched',
      async () => {
        const bad = join(dirname(snap.file), '20000101T000000Z.db');
        const bytes = await readFile(snap.file);
        bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
        await writeFile(bad, bytes);
        await copyFile(snap.file.replace(/\.db$/, '.json'), bad.replace(/\.db$/, '.json'));
        const { io, out } = captureIO(dir);
        const t0 = Date.now();
        assert.equal(await main(['snapshot', 'restore', '--file', bad, '--yes'], io), 1);
        const text = out.join('\n');
        assert.match(
          text,
          /does not match its record: the file has \d+ bytes with SHA-256 [0-9a-f]{64}/,
        );
        assert.match(text, /nothing was done on any host/);
        assert.doesNotMatch(text, /\[edge-\d\]/, 'no host output');
        assert.deepEqual(await mainPids(hosts), pidsBefore, 'etcd untouched');
        for (const h of hosts) {
          const r = await h.exec('ls /var/lib/k3s-etcd 2>&1; ls -d /var/lib/etcd.* 2>&1');
          assert.match(
            r.stdout,
            /No such file or directory[\s\S]*No such file or directory/,
            h.name,
          );
        }
        t.diagnostic(`refused in ${Date.now() - t0} ms`);
        await rm(bad);
        await rm(bad.replace(/\.db$/, '.json'));
      },
    );

    await t.test(
      'a snapshot whose name holds a line break is refused before any host is touched: the line after it never runs as root, in the dry run too',
      async () => {
        // What the restore scripts' header comment would have ended at, then two lines of its own.
        const hostile = join(
          dirname(snap.file),
          `${snap.file.split('/').pop()}\ncd\ntouch k3s-etcd-injected\n.db`,
        );
        await copyFile(snap.file, hostile);
        await copyFile(snap.file.replace(/\.db$/, '.json'), hostile.replace(/\.db$/, '.json'));
        const injected =
          'ls -d /root/k3s-etcd-injected /k3s-etcd-injected /tmp/k3s-etcd-injected 2>/dev/null | wc -l';
        try {
          for (const args of [['--dry-run'], ['--yes']]) {
            const { io, out } = captureIO(dir);
            const code = await main(['snapshot', 'restore', '--file', hostile, ...args], io);
            const text = out.join('\n');
            for (const h of hosts)
              assert.equal((await h.exec(injected)).stdout.trim(), '0', `${h.name}: nothing ran`);
            assert.equal(code, 1, text);
            assert.match(text, /is not named as k3s-etcd names snapshots/);
            assert.match(text, /Nothing was done on any host/);
            assert.doesNotMatch(text, /\[edge-\d\]/, 'no host output');
          }
          assert.deepEqual(await mainPids(hosts), pidsBefore, 'etcd untouched');
          // Not listed either: the list comes from the folder, by name.
          assert.deepEqual(
            (await listSnapshots(dir, 'lab')).map((s) => s.file),
            [snap.file],
          );
        } finally {
          await rm(hostile);
          await rm(hostile.replace(/\.db$/, '.json'));
        }
      },
    );

    await t.test(
      'a dry run shows every host and phase and changes nothing (MainPID unchanged)',
      async () => {
        const { io, out } = captureIO(dir);
        const t0 = Date.now();
        assert.equal(
          await main(['snapshot', 'restore', '--file', snap.file, '--dry-run'], io),
          0,
          out.join('\n'),
        );
        const text = out.join('\n');
        for (const h of ['edge-1', 'edge-2', 'edge-3']) {
          for (const phase of ['prepare', 'stop', 'restore', 'start'])
            assert.match(text, new RegExp(`^${h} +${phase} `, 'm'), `${h} ${phase}`);
        }
        assert.match(text, /would-change +stop etcd/);
        assert.match(text, /ETCDCTL_API=3 \/usr\/local\/bin\/etcdctl snapshot restore /);
        assert.deepEqual(await mainPids(hosts), pidsBefore, 'etcd not restarted');
        for (const h of hosts) {
          assert.equal(
            (await h.exec(`test -e ${uploaded}`)).code,
            1,
            `${h.name}: nothing uploaded`,
          );
          assert.equal(
            (await h.exec('ls -d /var/lib/etcd.* 2>/dev/null')).stdout.trim(),
            '',
            `${h.name}: data dir untouched`,
          );
        }
        assert.equal(
          await withClient(cluster, (c) => c.get('restore/later').string()),
          'written after the snapshot',
        );
        t.diagnostic(`dry run in ${Date.now() - t0} ms`);
      },
    );

    await t.test(
      'the restore brings back the 50 keys, drops the later key, 3 members healthy, old data kept',
      async () => {
        const { io, out } = captureIO(dir);
        const t0 = Date.now();
        const code = await main(['snapshot', 'restore', '--file', snap.file, '--yes'], io);
        const ms = Date.now() - t0;
        const text = out.join('\n');
        assert.equal(code, 0, text);
        t.diagnostic(`restore in ${ms} ms`);
        const revLine = /restored: revision now served (\d+), the snapshot's (\d+)/.exec(text);
        assert.ok(revLine, text);
        t.diagnostic(revLine[0]);
        assert.equal(revLine[2], snap.revision);
        assert.ok(Number(revLine[1]) >= Number(snap.revision), revLine[0]);
        // Every member was stopped before any restore began.
        const lines = out.filter((l) => /^\[edge-\d\] (==> |<== )/.test(l) || /^== phase/.test(l));
        const phase3 = lines.findIndex((l) => /^== phase 3\/4/.test(l));
        const stops = lines.filter((l, i) => i < phase3 && /<== 1\/1 changed/.test(l));
        assert.equal(stops.length, 3, lines.join('\n'));

        const values = await withClient(cluster, async (c) => {
          const all = await c.getAll().prefix('restore/').strings();
          return all;
        });
        assert.equal(Object.keys(values).length, KEYS, Object.keys(values).join(','));
        for (let i = 0; i < KEYS; i++) assert.equal(values[keyName(i)], `value-${i}`, keyName(i));
        assert.equal(values['restore/later'], undefined);

        const tls = adminTls(cluster);
        const members = await listMembers(clientEndpoints(cluster), { tls });
        assert.deepEqual(members.map((m) => m.name).sort(), ['edge-1', 'edge-2', 'edge-3']);
        const health = await clusterSnapshot(clientEndpoints(cluster), { tls, timeoutMs: 3000 });
        assert.equal(health.healthy, true);
        assert.equal(health.health.filter((h) => h.health).length, 3);

        const pidsAfter = await mainPids(hosts);
        for (const [i, h] of hosts.entries()) {
          assert.notEqual(pidsAfter[i], pidsBefore[i], `${h.name}: etcd restarted`);
          const kept = (
            await h.exec(
              'ls -d /var/lib/etcd.before-restore-* && ls /var/lib/etcd.before-restore-*/',
            )
          ).stdout;
          assert.match(
            kept,
            /^\/var\/lib\/etcd\.before-restore-\d{8}T\d{6}Z\n[\s\S]*\bmember\b/m,
            `${h.name}: old data kept`,
          );
          assert.match(
            text,
            new RegExp(`${h.name}: old data kept at /var/lib/etcd\\.before-restore-\\d{8}T\\d{6}Z`),
          );
          const env = (await h.exec('cat /etc/etcd/etcd.env')).stdout;
          assert.match(env, /^ETCD_INITIAL_CLUSTER_TOKEN=k3s-etcd-lab-restored-\d{8}T\d{6}Z$/m);
          assert.match(env, /^ETCD_INITIAL_CLUSTER_STATE=existing$/m);
          const st = (await h.exec('stat -c "%a %U" /var/lib/etcd /var/lib/etcd/.k3s-etcd-cluster'))
            .stdout;
          assert.equal(st, '700 etcd\n600 etcd\n', h.name);
          assert.equal((await h.exec(`test -e ${uploaded}`)).code, 1, `${h.name}: upload removed`);
        }

        // Provisioning afterwards agrees with what the restore left: nothing to change.
        const again = await provisionEtcd(cluster, { dryRun: true, ssh });
        assert.deepEqual(
          again.runs.map((r) => `${r.host}: ${r.status}`),
          ['edge-1: unchanged', 'edge-2: unchanged', 'edge-3: unchanged'],
          JSON.stringify(
            again.runs.map((r) =>
              r.steps.filter((s) => s.status !== 'unchanged' && s.status !== 'ok'),
            ),
          ),
        );
      },
    );

    await t.test(
      'a member whose etcd will not start on the restored data: the restore fails naming it, with its journalctl tail, old data kept',
      async () => {
        await hosts[2]!.exec('echo ETCD_QUOTA_BACKEND_BYTES=not-a-number >> /etc/etcd/etcd.env');
        const { io, out } = captureIO(dir);
        const t0 = Date.now();
        const code = await main(['snapshot', 'restore', '--file', snap.file, '--yes'], io);
        const text = out.join('\n');
        t.diagnostic(`failed restore reported in ${Date.now() - t0} ms`);
        assert.equal(code, 1, text);
        assert.match(
          text,
          /etcd did not start on the restored data on every member: edge-3, step \d+ "etcd is active/,
        );
        assert.match(
          text,
          /--- journalctl -u etcd on edge-3:\n[\s\S]*invalid value "not-a-number" for ETCD_QUOTA_BACKEND_BYTES/,
        );
        // Said as soon as etcd kept exiting, not after the whole 90 s wait.
        assert.match(text, /etcd exited 3 times on the restored data/);
        assert.doesNotMatch(text, /journalctl -u etcd on edge-[12]/);
        const kept = (await hosts[2]!.exec('ls -d /var/lib/etcd.before-restore-*')).stdout.trim();
        assert.equal(kept.split('\n').length, 2, `two restores, two kept data dirs: ${kept}`);
      },
    );
  },
);
