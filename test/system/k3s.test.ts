/**
 * K3s servers on the external etcd, on real systemd hosts: etcd provisioned on three hosts, two
 * of them K3s servers. The install writes the datastore files and config.yaml exactly (modes,
 * owners, content), proves the datastore from each host before installing, runs the offline
 * installer from the workspace (K3s's binary and install.sh are stand-ins that record what they
 * get: the one fake, see test/support/k3sStandIn.ts), one server at a time, and fetches the
 * kubeconfig. Then Debian's etcdctl, with exactly config.yaml's endpoint and files, reads and
 * writes on the host. Bad input: a wrong CA is caught by the check before anything is installed;
 * a foreign token and SQLite state without a backup are refused with nothing written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { K3S_CONFIG, K3S_DATASTORE_FILES } from '../../src/core/k3s/server';
import { installK3s, readK3sServerState } from '../../src/core/k3s/ops';
import { diagnosePeerUrl, fixPeerUrl } from '../../src/core/repair/peerUrl';
import { fileTokenStore } from '../../src/core/k3s/token';
import type { Cluster } from '../../src/core/inventory/types';
import { createCa } from '../../src/core/pki/issue';
import { generateCertificateSet } from '../../src/core/pki/set';
import { provisionEtcd } from '../../src/core/provision/provision';
import { type SshContext } from '../../src/core/ssh/hostSession';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import { type EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { STANDIN_LOG_DIR, STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
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
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';

const ADDR = ['127.0.1.111', '127.0.1.112', '127.0.1.113'];

describe('K3s servers on the external etcd, on real systemd hosts', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;
  let file = '';
  const tokens = () => fileTokenStore(file, join(dir, 'tokens'));

  before(async () => {
    dir = await makeTempDir('k3s-etcd-k3s-');
    const key = makeKey(dir, 'id_lab');
    const specs = ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i < 2 ? ['etcd', 'k3s-server'] : ['etcd'],
    }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'lab',
        hosts: specs,
        identityFile: 'id_lab',
        clusterLines: [
          `k3s: { version: ${STANDIN_VERSION}, install: offline, disable: [servicelb, traefik], writeKubeconfigMode: "0640", tlsSan: [k3s.lab.example] }`,
        ],
      }),
    );
    cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    ssh = labSsh(dir);
    const r = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.equal(r.healthy, true, r.healthSummary);
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('missing datastore client files are named before any host is touched', async () => {
    const cert = join(cluster.pki.dir, 'client', 'k3s.pem');
    await rename(cert, `${cert}.away`);
    try {
      await assert.rejects(
        installK3s(cluster, { dryRun: true, ssh, tokens: tokens(), workspaceDir: dir }),
        new RegExp(`${cert.replace(/[.+/]/g, '\\$&')} is missing: generate the certificates first`),
      );
    } finally {
      await rename(`${cert}.away`, cert);
    }
  });

  it('a wrong CA is caught by the datastore check on the host, before anything is written', async () => {
    const ca = join(cluster.pki.dir, 'ca.pem');
    await rename(ca, `${ca}.real`);
    try {
      const other = await createCa('not the etcd CA', 'ecdsa-p256', {
        notBefore: new Date(),
        notAfter: new Date(Date.now() + 86_400_000),
      });
      await writeFile(ca, other.certPem);
      const lines: string[] = [];
      const r = await installK3s(cluster, {
        dryRun: false,
        ssh,
        tokens: tokens(),
        workspaceDir: dir,
        onLine: (h, l) => lines.push(`[${h}] ${l}`),
      });
      assert.equal(r.runs[0]?.status, 'failed');
      assert.match(
        r.runs[0]?.error?.message ?? '',
        /edge-1 cannot use the datastore with these files, so K3s was not installed or restarted: TLS unknown authority: https:\/\/127\.0\.1\.111:2379's server certificate is not signed by the datastore CA/,
      );
      assert.match(r.runs[1]?.error?.message ?? '', /not started: edge-1 failed first/);
      for (const h of hosts.slice(0, 2)) {
        const left = await h.exec(`ls ${K3S_CONFIG} ${STANDIN_LOG_DIR} 2>&1; ls /tmp`);
        assert.match(left.stdout, /No such file or directory.*\n.*No such file or directory/);
        assert.doesNotMatch(left.stdout, /k3s-etcd-check/, 'the check leaves no temp folder');
      }
      assert.equal(r.kubeconfig, undefined);
    } finally {
      await rename(`${ca}.real`, ca);
    }
  });

  it('installs both servers one at a time: files and modes exact, the installer got the offline variables, etcdctl works with config.yaml', async () => {
    const lines: string[] = [];
    const r = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: tokens(),
      workspaceDir: dir,
      onLine: (h, l) => lines.push(`[${h}] ${l}`),
    });
    assert.deepEqual(
      r.runs.map((x) => [x.host, x.status]),
      [
        ['edge-1', 'changed'],
        ['edge-2', 'changed'],
      ],
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) =>
        /\[edge-2\] datastore check from edge-2: 3 of 3 members healthy with the files config.yaml names/.test(
          l,
        ),
      ),
    );
    const token = await tokens().get('lab');
    assert.match(token ?? '', /^[0-9a-f]{64}$/);
    assert.equal((await stat(join(dir, 'tokens'))).mode & 0o777, 0o700);

    const installedAt: number[] = [];
    for (const h of hosts.slice(0, 2)) {
      const modes = await h.exec(
        `stat -c '%n %a %U' /etc/rancher/k3s/etcd ${K3S_DATASTORE_FILES.ca} ${K3S_DATASTORE_FILES.cert} ${K3S_DATASTORE_FILES.key} ${K3S_CONFIG}`,
      );
      assert.equal(
        modes.stdout.trim(),
        [
          '/etc/rancher/k3s/etcd 700 root',
          `${K3S_DATASTORE_FILES.ca} 644 root`,
          `${K3S_DATASTORE_FILES.cert} 644 root`,
          `${K3S_DATASTORE_FILES.key} 600 root`,
          `${K3S_CONFIG} 600 root`,
        ].join('\n'),
      );
      const config = parse((await h.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<string, unknown>;
      assert.deepEqual(config, {
        token,
        'datastore-endpoint': ADDR.map((a) => `https://${a}:2379`).join(','),
        'datastore-cafile': K3S_DATASTORE_FILES.ca,
        'datastore-certfile': K3S_DATASTORE_FILES.cert,
        'datastore-keyfile': K3S_DATASTORE_FILES.key,
        disable: ['servicelb', 'traefik'],
        'write-kubeconfig-mode': '0640',
        'tls-san': ['k3s.lab.example'],
      });
      assert.equal(
        (await h.exec(`cat ${K3S_DATASTORE_FILES.cert}`)).stdout,
        await readFile(join(cluster.pki.dir, 'client', 'k3s.pem'), 'utf8'),
      );
      const install = (await h.exec(`cat ${STANDIN_LOG_DIR}/install.log`)).stdout;
      assert.match(install, /^INSTALL_K3S_EXEC=server$/m);
      assert.match(install, /^INSTALL_K3S_SKIP_DOWNLOAD=true$/m);
      assert.match(
        install,
        new RegExp(`^INSTALL_K3S_VERSION=${STANDIN_VERSION.replace(/[.+]/g, '\\$&')}$`, 'm'),
      );
      assert.doesNotMatch(install, /cluster-init/);
      installedAt.push(Number(/^at=([\d.]+)$/m.exec(install)?.[1]));

      // A Go etcd v3 client on the host with exactly config.yaml's endpoint and files.
      const use = `ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints=${String(config['datastore-endpoint'])} --cacert ${String(config['datastore-cafile'])} --cert ${String(config['datastore-certfile'])} --key ${String(config['datastore-keyfile'])}`;
      const put = await h.exec(
        `${use} put /registry/test/${h.name} written && ${use} get /registry/test/${h.name} --print-value-only`,
      );
      assert.equal(put.code, 0, put.stderr);
      assert.equal(put.stdout.trim().split('\n').at(-1), 'written');
      const started = await h.exec(
        `${use} get /registry/k3s-standin/$(hostname) --print-value-only`,
      );
      assert.equal(started.stdout.trim(), 'started', 'the stand-in server reached the datastore');
    }
    const [first, second] = installedAt as [number, number];
    assert.ok(first < second, 'edge-1 was installed before edge-2');
    const ready1 = Number(
      /^([\d.]+)$/m.exec((await hosts[0]!.exec(`stat -c %Y ${STANDIN_LOG_DIR}/ready`)).stdout)?.[1],
    );
    assert.ok(ready1 <= second + 1, 'edge-2 was installed after edge-1 was Ready');

    const state = await readK3sServerState(cluster, cluster.hosts[1]!, ssh);
    assert.deepEqual(
      { ...state, at: '' },
      {
        installed: true,
        version: STANDIN_VERSION,
        nodeStatus: 'Ready',
        datastoreEndpoint: ADDR.map((a) => `https://${a}:2379`).join(','),
        at: '',
      },
    );
    assert.equal(r.kubeconfig, join(dir, 'kubeconfig', 'lab.yaml'));
    assert.equal((await stat(r.kubeconfig)).mode & 0o777, 0o600);
    const kc = parse(await readFile(r.kubeconfig, 'utf8')) as {
      clusters: { name: string; cluster: { server: string } }[];
      'current-context': string;
    };
    assert.deepEqual(
      kc.clusters.map((c) => [c.name, c.cluster.server]),
      [['lab', 'https://127.0.1.111:6443']],
    );
    assert.equal(kc['current-context'], 'lab');
  });

  it('a re-run changes and restarts nothing', async () => {
    const pid = async () =>
      (await hosts[0]!.exec('systemctl show -p MainPID --value k3s')).stdout.trim();
    const before = await pid();
    const r = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: tokens(),
      workspaceDir: dir,
    });
    assert.deepEqual(
      r.runs.map((x) => x.status),
      ['unchanged', 'unchanged'],
    );
    assert.equal(r.token, 'stored');
    assert.equal(await pid(), before);
  });

  it('the CLI: k3s install finds everything in place (the token borrowed from a server), etcdctl-env drives etcdctl', async () => {
    const xdg = process.env['XDG_CONFIG_HOME'];
    process.env['XDG_CONFIG_HOME'] = join(dir, 'xdg'); // the CLI's token store, empty
    try {
      const { io, out } = captureIO(dir);
      assert.equal(await main(['k3s', 'install', '--yes'], io), 0, out.join('\n'));
      assert.match(out.join('\n'), /token: using the one this server already has/);
      assert.match(out.join('\n'), /K3s is in place on 2 server\(s\): nothing to do\./);
    } finally {
      if (xdg === undefined) delete process.env['XDG_CONFIG_HOME'];
      else process.env['XDG_CONFIG_HOME'] = xdg;
    }
    const env = captureIO(dir);
    assert.equal(await main(['etcdctl-env'], env.io), 0);
    const vars = Object.fromEntries(
      env.out
        .join('\n')
        .split('\n')
        .map((l) => /^export (ETCDCTL_[A-Z]+)=(?:'(.*)'|(\S*))$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1], m[2] ?? m[3]]),
    );
    assert.deepEqual(Object.keys(vars).sort(), [
      'ETCDCTL_API',
      'ETCDCTL_CACERT',
      'ETCDCTL_CERT',
      'ETCDCTL_ENDPOINTS',
      'ETCDCTL_KEY',
    ]);
    const health = spawnSync('etcdctl', ['endpoint', 'health'], {
      env: { PATH: process.env['PATH'], ...vars },
      encoding: 'utf8',
    });
    assert.equal(health.status, 0, health.stderr);
    assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
  });

  it('refuses a server whose token is not the cluster one, and SQLite state without a backup; nothing written', async () => {
    const h = hosts[1]!;
    await h.exec(`cp ${K3S_CONFIG} /root/config.before`);
    await h.exec(
      'cp /var/lib/rancher/k3s/server/token /root/token.before && echo K10abc::server:someone-elses > /var/lib/rancher/k3s/server/token',
    );
    const r = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: tokens(),
      workspaceDir: dir,
      hosts: ['edge-2'],
    });
    assert.equal(r.runs[0]?.status, 'failed');
    assert.match(
      r.runs[0]?.error?.message ?? '',
      /edge-2: \/var\/lib\/rancher\/k3s\/server\/token holds another token than the cluster's/,
    );
    await h.exec('mv /root/token.before /var/lib/rancher/k3s/server/token');

    await h.exec(
      'mkdir -p /var/lib/rancher/k3s/server/db && head -c 8192 /dev/zero > /var/lib/rancher/k3s/server/db/state.db',
    );
    const s = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: tokens(),
      workspaceDir: dir,
      hosts: ['edge-2'],
    });
    assert.match(
      s.runs[0]?.error?.message ?? '',
      /edge-2: K3s keeps its state in SQLite \(\/var\/lib\/rancher\/k3s\/server\/db\/state\.db, 8 KB\) and there is no backup of it in the workspace\. Back it up first \(k3s-etcd k3s backup --host edge-2/,
    );
    assert.equal(
      (await h.exec(`cmp ${K3S_CONFIG} /root/config.before && echo same`)).stdout.trim(),
      'same',
    );
    await h.exec('rm -f /var/lib/rancher/k3s/server/db/state.db');
  });

  it("after an etcd member's IP change, the repair re-points every K3s server's datastore-endpoint, one server at a time", async () => {
    const moved = '127.0.1.114';
    await writeKnownHosts(dir, [
      ...(await Promise.all(hosts.map((h) => hostKeyLine(h)))),
      await hostKeyLine(hosts[2]!, moved),
    ]);
    await moveSshd(hosts[2]!, moved);
    const starts = async (h: EdgeHost) =>
      (await h.exec(`grep -c '^start' ${STANDIN_LOG_DIR}/server.log`)).stdout.trim();
    const before = [await starts(hosts[0]!), await starts(hosts[1]!)];
    const current = await loadCluster(file);
    const d = await diagnosePeerUrl(current, 'edge-3', { newAddress: moved, ssh });
    assert.ok(
      d.steps.some((x) =>
        /K3s servers edge-1, edge-2: where config\.yaml's datastore-endpoint names https:\/\/127\.0\.1\.113:2379/.test(
          x,
        ),
      ),
      d.steps.join('\n'),
    );
    const lines: string[] = [];
    const r = await fixPeerUrl(current, d, {
      ssh,
      inventoryFile: file,
      onLine: (h, l) => lines.push(`[${h}] ${l}`),
    });
    assert.equal(r.healthy, true, `${r.summary}\n${lines.join('\n')}`);
    assert.equal(r.next, undefined, lines.join('\n'));
    const token = await tokens().get('lab');
    for (const [i, h] of hosts.slice(0, 2).entries()) {
      const config = parse((await h.exec(`cat ${K3S_CONFIG}`)).stdout) as Record<string, unknown>;
      assert.equal(
        config['datastore-endpoint'],
        ['127.0.1.111', '127.0.1.112', moved].map((a) => `https://${a}:2379`).join(','),
      );
      assert.equal(config['token'], token, 'the rest of config.yaml is kept');
      assert.equal((await h.exec(`stat -c %a ${K3S_CONFIG}`)).stdout.trim(), '600');
      assert.equal(Number(await starts(h)), Number(before[i]) + 1, `${h.name}: K3s restarted once`);
    }
    // The check pass and the apply pass both mark the restart step: all of edge-1's come first.
    const hostsInOrder = lines
      .filter((l) => /k3s\.service restarted/.test(l) && /^\[edge-[12]\] ==>/.test(l))
      .map((l) => l.slice(1, 7));
    assert.ok(hostsInOrder.length >= 2, lines.join('\n'));
    assert.ok(
      hostsInOrder.lastIndexOf('edge-1') < hostsInOrder.indexOf('edge-2'),
      `one server after the other: ${hostsInOrder.join(' ')}`,
    );
  });
});
