/**
 * `k3s-etcd upgrade` on three real systemd hosts (Debian in systemd-nspawn), with a client
 * writing to all three endpoints the whole time (scripts/harness/writer.ts).
 *
 * Only Debian's etcd 3.4.23 runs here, so no other etcd version can be proven: the upgrade's
 * MECHANICS are proven with `install: upload` and an uploaded release tarball
 * (etcd-v3.4.45-linux-<arch>.tar.gz) whose `etcd` is a wrapper script around Debian's 3.4.23
 * that answers `--version` with 3.4.45 and otherwise execs the real binary. etcd's endpoint
 * status still reports the server's real version (3.4.23), so the test asserts what the tool
 * controls: the 3.4.45 binary in place on each host, each member restarted exactly once, one
 * at a time, the leader last, no failed write, the previous binary kept as .previous (root,
 * 0755), the snapshot saved and matching its record, the inventory's etcd.version updated with
 * its comments kept, the cluster version checked (3.4), and the tool saying that the status
 * still reports 3.4.23. A downgrade, and a multi-hop path the uploaded binaries cannot serve,
 * are refused before anything is touched.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { connectionFor } from '../../src/core/etcd/connection';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { verifySnapshot } from '../../src/core/restore/plan';
import { liveCluster } from '../../src/core/rolling/live';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { etcdStarts, etcdUnitState, overlaps } from '../../scripts/harness/etcdUnit';
import {
  LAB_ETCD_BIN,
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { startWriter } from '../../scripts/harness/writer';
import { runCli } from '../fixtures/cli';

const ADDR = ['127.0.1.61', '127.0.1.62', '127.0.1.63'];
const NAMES = ['up-1', 'up-2', 'up-3'];
const ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
/** Where each host keeps Debian's real 3.4.23 for the wrapper to exec. */
const REAL = '/usr/local/lib/k3s-etcd-test/etcd-3.4.23';

/** The stand-in for etcd 3.4.45: Debian's 3.4.23 behind a wrapper that reports 3.4.45. */
const WRAPPER = `#!/bin/sh
# Test stand-in (only etcd 3.4.23 runs here): Debian's etcd 3.4.23 reporting 3.4.45 to --version.
if [ "$1" = "--version" ]; then
  printf 'etcd Version: 3.4.45\\nGit SHA: test-wrapper\\nGo Version: go1.19\\nGo OS/Arch: linux/${ARCH}\\n'
  exit 0
fi
exec ${REAL} "$@"
`;

describe('etcd upgrade on a live etcd of three real hosts', () => {
  let dir = '';
  let file = '';
  let hosts: EdgeHost[] = [];

  const run = (args: string[]) => runCli([...args, '--inventory', file], { cwd: dir });
  const versionOn = async (h: EdgeHost, bin: string) =>
    (await h.exec(`${bin} --version | sed -n 's/^etcd Version: //p'`)).stdout.trim();

  before(async () => {
    dir = await makeTempDir('k3s-etcd-upgrade-');
    const k = makeKey(dir, 'id_lab');
    hosts = await startEdgeHosts({
      hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
      authorizedKeys: [k.publicLine],
    });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'upg',
        hosts: NAMES.map((name, i) => ({ name, address: ADDR[i] as string })),
        identityFile: k.file,
        comments: true,
      }),
    );
    const cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    const r = await provisionEtcd(cluster, { dryRun: false, ssh: labSsh(dir) });
    assert.equal(r.healthy, true, r.healthSummary);
    // The "3.4.45 release": the wrapper and Debian's etcdctl, packed as etcd's releases are.
    const rel = join(dir, 'release', `etcd-v3.4.45-linux-${ARCH}`);
    await mkdir(rel, { recursive: true });
    await writeFile(join(rel, 'etcd'), WRAPPER);
    await chmod(join(rel, 'etcd'), 0o755);
    await copyFile('/usr/bin/etcdctl', join(rel, 'etcdctl'));
    await promisify(execFile)('tar', [
      '-czf',
      join(dir, LAB_ETCD_BIN, `etcd-v3.4.45-linux-${ARCH}.tar.gz`),
      '-C',
      join(dir, 'release'),
      `etcd-v3.4.45-linux-${ARCH}`,
    ]);
    for (const h of hosts) {
      await mkdir(join(h.root, '/usr/local/lib/k3s-etcd-test'), { recursive: true });
      await copyFile('/usr/bin/etcd', join(h.root, REAL));
      await chmod(join(h.root, REAL), 0o755);
    }
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('refuses a downgrade, and a path the uploaded binaries cannot serve, before anything is touched', async () => {
    const units = await Promise.all(hosts.map(etcdUnitState));
    const yaml = await readFile(file, 'utf8');
    const down = await run(['upgrade', '--to', 'v3.4.20', '--yes']);
    assert.equal(down.code, 1, down.out);
    assert.match(
      down.err,
      /Upgrade of upg to v3\.4\.20 refused: v3\.4\.20 is older than v3\.4\.23: etcd does not go back by an upgrade.*Nothing was changed\./,
    );
    const far = await run(['upgrade', '--to', 'v3.6.14', '--yes']);
    assert.equal(far.code, 1, far.out);
    assert.match(
      far.err,
      /the path has 3 hop\(s\) \(v3\.4\.23 → v3\.4\.45 → v3\.5\.33 → v3\.6\.14\) and etcd\.install is upload: .*missing: etcd-v3\.5\.33-linux-<arch>\.tar\.gz, etcd-v3\.6\.14-linux-<arch>\.tar\.gz/,
    );
    assert.deepEqual(await Promise.all(hosts.map(etcdUnitState)), units, 'no member restarted');
    assert.equal(await readFile(file, 'utf8'), yaml, 'the inventory as it was');
    assert.deepEqual(await readdir(join(dir, 'backups')).catch(() => []), [], 'no snapshot taken');
  });

  it('the dry run shows the path, the snapshot, the rolling order (leader last) and the flags', async () => {
    const cluster = await loadCluster(file);
    const leader = (await liveCluster(await connectionFor(cluster)).probe()).find(
      (r) => r.isLeader,
    )?.name;
    const r = await run(['upgrade', '--to', 'v3.4.45', '--dry-run']);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^Upgrade etcd of cluster upg from v3\.4\.23 to v3\.4\.45: v3\.4\.23 → v3\.4\.45/m,
    );
    assert.match(r.out, /^1\. a snapshot first, into backups\/upg\/<UTC time>\.db/m);
    assert.match(
      r.out,
      new RegExp(
        `binaries: uploaded: etcd-v3\\.4\\.45-linux-<arch>\\.tar\\.gz from .*${LAB_ETCD_BIN}`,
      ),
    );
    assert.match(r.out, /flags: the same names on v3\.4\.45/);
    assert.match(
      r.out,
      new RegExp(`^     3\\. ${leader} \\(leader\\): restarts for install etcd 3\\.4\\.45`, 'm'),
    );
    assert.match(r.out, /etcd\.version in k3s-etcd\.yaml becomes v3\.4\.45/);
    for (const h of hosts) assert.equal(await versionOn(h, '/usr/local/bin/etcd'), '3.4.23');
  });

  it('upgrades member by member with no failed write, keeps the previous binary and updates the inventory', async () => {
    const cluster = await loadCluster(file);
    const conn = await connectionFor(cluster);
    const leader = (await liveCluster(conn).probe()).find((r) => r.isLeader)?.name;
    const before = await Promise.all(hosts.map(etcdUnitState));
    const startsBefore = await Promise.all(hosts.map(etcdStarts));
    const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
    let r;
    let stats;
    const t0 = performance.now();
    try {
      await new Promise((res) => setTimeout(res, 1500));
      r = await run(['upgrade', '--to', 'v3.4.45', '--yes']);
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      stats = await writer.stop();
    }
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /etcd of upg is v3\.4\.45 \(cluster version 3\.4\.0\)/);
    // The status reports the real server (3.4.23 behind the wrapper), and the tool says so.
    assert.match(
      r.out,
      /note: up-1's endpoint status reports etcd 3\.4\.23, though its binary reports v3\.4\.45/,
    );

    const after = await Promise.all(hosts.map(etcdUnitState));
    for (const [i, h] of hosts.entries()) {
      assert.notEqual(after[i]!.invocation, before[i]!.invocation, `${h.name} restarted`);
      assert.equal((await etcdStarts(h)) - startsBefore[i]!, 1, `${h.name} started once`);
      assert.equal(await versionOn(h, '/usr/local/bin/etcd'), '3.4.45', `${h.name}: new binary`);
      assert.equal(await versionOn(h, '/usr/local/bin/etcd.previous'), '3.4.23', h.name);
      for (const b of ['etcd', 'etcdctl'])
        assert.equal(
          (await h.exec(`stat -c '%U:%G %a' /usr/local/bin/${b}.previous`)).stdout.trim(),
          'root:root 755',
          `${h.name}: ${b}.previous`,
        );
    }
    const order = overlaps(hosts.map((h, i) => ({ name: h.name, ...after[i]! })));
    assert.deepEqual(order.problems, [], 'one member at a time');
    assert.equal(order.order.at(-1), leader, 'the leader last');
    assert.equal(stats.failed, 0, `failed writes: ${stats.failures.join('; ')}`);
    assert.ok(stats.ok > 50, `the client kept writing (${stats.ok} writes)`);
    // A retried write was only for a leader change, a member restarting or the client's 2 s
    // deadline (the reasons of scripts/harness/writer.ts; a deadline was seen here twice in one
    // run), never another error.
    for (const reason of Object.keys(stats.retried))
      assert.ok(
        reason === 'leader changed' || reason === 'endpoint down' || reason === 'timeout',
        `a write was retried for "${reason}" (${JSON.stringify(stats.retried)})`,
      );

    const yaml = await readFile(file, 'utf8');
    assert.match(yaml, /etcd: \{ version: v3\.4\.45, install: upload, uploadPath: etcd-bin \}/);
    assert.match(yaml, /^# the upg$/m, 'comments kept');
    assert.match(yaml, /# up-2$/m, 'comments kept');
    const snaps = (await readdir(join(dir, 'backups', 'upg'))).filter((n) => n.endsWith('.db'));
    assert.equal(snaps.length, 1, 'one snapshot, before the upgrade');
    const info = await verifySnapshot(
      await loadCluster(file),
      join(dir, 'backups', 'upg', snaps[0]!),
    );
    assert.ok(Number(info.revision) > 0);
    console.log(
      `upgrade v3.4.23 → v3.4.45 (wrapper): ${Math.round(ms)} ms; ${stats.ok} writes, retried ${JSON.stringify(stats.retried)}, longest gap ${Math.round(stats.maxGapMs)} ms; order ${order.order.join(' → ')}`,
    );

    // Again: every member has the 3.4.45 binary already, so nothing would restart.
    const again = await run(['upgrade', '--to', 'v3.4.45', '--dry-run']);
    assert.equal(again.code, 0, again.err);
    assert.doesNotMatch(again.out, /etcd restarts on/, again.out);
  });
});
