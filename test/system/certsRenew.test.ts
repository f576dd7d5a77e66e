/**
 * `certs renew --k3s` on three real systemd hosts (Debian in systemd-nspawn), the third also a
 * K3s server on the stand-in, with a client writing to all three endpoints the whole time (a
 * write fails only when no endpoint takes it: scripts/harness/writer.ts). The members start on
 * certificates that expire in minutes (the case a renewal is for). Through the CLI as a person
 * runs it:
 *  - the dry run names each certificate with its new expiry and the order, who restarts and why;
 *  - the renewal restarts each member exactly once, one at a time (down times on the hosts'
 *    shared monotonic clock never overlap), the leader last, with no failed write; then the K3s
 *    server is restarted on its new datastore files and the stand-in reaches etcd with them;
 *  - afterwards `certs check` exits 0: every file on the hosts is the workspace's new one and
 *    every member serves the new fingerprint and expiry; no dated folder of old files is left;
 *  - a member whose etcd refuses to start on its new files (a drop-in pins the old certificate)
 *    stops the renewal at the first member, which gets its old files back and runs on them; the
 *    other members and the K3s server are untouched and the workspace holds the old files again.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionFor } from '../../src/core/etcd/connection';
import { createEndpointClient } from '../../src/core/etcd/client';
import { installK3s } from '../../src/core/k3s/ops';
import { fileTokenStore } from '../../src/core/k3s/token';
import type { Cluster } from '../../src/core/inventory/types';
import { issueLeaf } from '../../src/core/pki/issue';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { generateCertificateSet, memberSans } from '../../src/core/pki/set';
import { parseCertificate } from '../../src/core/pki/inspect';
import { provisionEtcd } from '../../src/core/provision/provision';
import { liveCluster } from '../../src/core/rolling/live';
import type { SshContext } from '../../src/core/ssh/hostSession';
import { hostKeyLine, startEdgeHosts, stopEdgeHosts } from '../../scripts/harness/edgeHosts';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import {
  labInventory,
  labSsh,
  loadCluster,
  stageEtcdBinaries,
  writeKnownHosts,
} from '../../scripts/harness/lab';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';
import { makeKey } from '../../scripts/harness/sshd';
import { startWriter } from '../../scripts/harness/writer';
import {
  etcdStarts as starts,
  etcdUnitState as unitState,
  overlaps,
} from '../../scripts/harness/etcdUnit';
import { STANDIN_LOG_DIR, STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
import { runCli } from '../fixtures/cli';

const ADDR = ['127.0.1.231', '127.0.1.232', '127.0.1.233'];
const NAMES = ['edge-1', 'edge-2', 'edge-3'];
const PKI = '/etc/etcd/pki';
const MEMBER_FILES = ['server.pem', 'server-key.pem', 'peer.pem', 'peer-key.pem'];

const shaOf = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hostSha = async (h: EdgeHost, path: string) =>
  (await h.exec(`sha256sum ${path} | cut -d' ' -f1`)).stdout.trim();

interface CheckJson {
  ok: boolean;
  hosts: Array<{
    host: string;
    files: Array<{
      file: { hostPath: string; workspacePath: string };
      matchesWorkspace?: boolean;
      certs: Array<{ sha256: string; notAfter: string }>;
      served?: { equalsDeployed?: boolean; cert?: { sha256: string; notAfter: string } };
    }>;
  }>;
  findings: Array<{ host: string; path?: string; code: string }>;
}

describe('certs renew on real systemd hosts', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;

  const check = async (): Promise<{ code: number; json: CheckJson; text: string }> => {
    const r = await runCli(['certs', 'check', '--json'], { cwd: dir });
    return { code: r.code, json: JSON.parse(r.out) as CheckJson, text: `${r.out}\n${r.err}` };
  };
  const workspaceSha = async (rel: string) => shaOf(await readFile(join(cluster.pki.dir, rel)));
  /** The revision the K3s stand-in last wrote its start key at (it writes one per start). */
  const standInRevision = async (): Promise<number> => {
    const conn = await connectionFor(cluster);
    const c = await createEndpointClient(conn.endpoints[0]!, { tls: conn.tls });
    try {
      const r = await c.getAll().prefix('/registry/k3s-standin/').exec();
      return Math.max(0, ...r.kvs.map((kv) => Number(kv.mod_revision)));
    } finally {
      c.close();
    }
  };
  const leaderName = async () =>
    (await liveCluster(await connectionFor(cluster)).probe()).find((r) => r.isLeader)?.name;

  before(async () => {
    dir = await makeTempDir('k3s-etcd-certs-renew-');
    const key = makeKey(dir, 'id_lab');
    const specs = ADDR.map((address, i) => ({
      name: NAMES[i]!,
      address,
      roles: i === 2 ? ['etcd', 'k3s-server'] : ['etcd'],
    }));
    hosts = await startEdgeHosts({ hosts: specs, authorizedKeys: [key.publicLine] });
    await writeKnownHosts(dir, await Promise.all(hosts.map((h) => hostKeyLine(h))));
    await stageEtcdBinaries(dir);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    const file = join(dir, 'k3s-etcd.yaml');
    await writeFile(
      file,
      labInventory({
        cluster: 'renew',
        hosts: specs,
        identityFile: 'id_lab',
        clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline }`],
      }),
    );
    cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    // Every member's server and peer certificate expires in 30 minutes.
    const ca = await loadPrivateKey(
      await readFile(join(cluster.pki.dir, 'ca-key.pem'), 'utf8'),
      'ca',
    );
    const issuer = {
      certPem: await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8'),
      signingKey: ca.signingKey,
    };
    const now = Date.now();
    for (const h of cluster.hosts) {
      for (const kind of ['server', 'peer']) {
        const pair = await issueLeaf(
          {
            cn: h.memberName,
            sans: memberSans(h),
            usages: ['serverAuth', 'clientAuth'],
            algorithm: 'ecdsa-p256',
            validity: { notBefore: new Date(now - 60_000), notAfter: new Date(now + 30 * 60_000) },
          },
          issuer,
        );
        await writeFile(join(cluster.pki.dir, h.memberName, `${kind}.pem`), pair.certPem);
        await writeFile(join(cluster.pki.dir, h.memberName, `${kind}-key.pem`), pair.keyPem, {
          mode: 0o600,
        });
      }
    }
    ssh = labSsh(dir);
    const p = await provisionEtcd(cluster, { dryRun: false, ssh });
    assert.equal(p.healthy, true, p.healthSummary);
    const k = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: fileTokenStore(file, join(dir, 'tokens')),
      workspaceDir: dir,
    });
    assert.deepEqual(
      k.runs.map((r) => [r.host, r.status]),
      [['edge-3', 'changed']],
    );
  });
  after(async () => {
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('renews every member and the K3s client one host at a time with no failed write; certs check is clean after', async () => {
    const expiring = await check();
    assert.equal(expiring.code, 1, 'the short-lived certificates are flagged first');
    assert.ok(
      expiring.json.findings.every((f) => f.code === 'expiring'),
      expiring.text,
    );

    const leader = await leaderName();
    assert.ok(leader);
    const dry = await runCli(['certs', 'renew', '--k3s', '--dry-run'], { cwd: dir });
    assert.equal(dry.code, 0, `${dry.out}\n${dry.err}`);
    const year = new Date(Date.now() + cluster.pki.leafValidityDays * 86_400_000)
      .toISOString()
      .slice(0, 4);
    for (const n of NAMES)
      for (const kind of ['server', 'peer'])
        assert.match(
          dry.out,
          new RegExp(
            `  ${n}/${kind}\\.pem +CN ${n} +until ${year}-\\d\\d-\\d\\d; replaces one until \\S+ \\(0 days left\\)`,
          ),
        );
    assert.match(dry.out, /  client\/k3s\.pem +CN k3s +until /);
    assert.match(dry.out, /etcd restarts on 3 member\(s\), one at a time/);
    assert.match(
      dry.out,
      new RegExp(
        `  3\\. ${leader} \\(leader\\): restarts for server certificate /etc/etcd/pki/server\\.pem, member key /etc/etcd/pki/server-key\\.pem \\(0600, etcd\\), peer certificate /etc/etcd/pki/peer\\.pem, member key /etc/etcd/pki/peer-key\\.pem \\(0600, etcd\\)`,
      ),
    );
    assert.match(
      dry.out,
      /why restart: etcd re-reads its certificate files on every new connection/,
    );
    assert.match(dry.out, /then the K3s servers, one at a time .*: edge-3$/m);
    // The dry run wrote nothing.
    const before = await check();
    assert.deepEqual(before.json.findings, expiring.json.findings);

    const conn = await connectionFor(cluster);
    const standInBefore = await standInRevision();
    const startsBefore = await Promise.all(hosts.map(starts));
    const k3sLogBefore = (
      await hosts[2]!.exec(`grep -c '^start ' ${STANDIN_LOG_DIR}/server.log`)
    ).stdout.trim();
    const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
    let stats;
    let r;
    const t0 = performance.now();
    try {
      await new Promise((res) => setTimeout(res, 2000));
      r = await runCli(['certs', 'renew', '--k3s', '--yes'], { cwd: dir });
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      stats = await writer.stop();
    }
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /Every renewed certificate is on its hosts/);
    assert.equal(stats.failed, 0, `failed writes: ${stats.failures.join('; ')}`);
    assert.ok(stats.ok > 50, `the client kept writing (${stats.ok} writes)`);

    // Each member exactly once, one at a time, the leader last after move-leader.
    const states = await Promise.all(hosts.map(unitState));
    for (const [i, h] of hosts.entries())
      assert.equal((await starts(h)) - startsBefore[i]!, 1, `${h.name} started exactly once`);
    const o = overlaps(states.map((s, i) => ({ ...s, name: NAMES[i]! })));
    assert.deepEqual(o.problems, []);
    assert.equal(o.order.at(-1), leader, 'the leader last');
    assert.match(r.out, new RegExp(`move-leader: ${leader} → `));
    console.log(
      `renewed 3 members and 1 K3s server in ${Math.round(ms)} ms; ${stats.ok} writes, retried ${JSON.stringify(stats.retried)}, longest gap ${Math.round(stats.maxGapMs)} ms; order ${o.order.join(' → ')}`,
    );

    // The K3s stand-in restarted once more and reached etcd with its new files.
    const h3 = hosts[2]!;
    assert.equal(
      Number((await h3.exec(`grep -c '^start ' ${STANDIN_LOG_DIR}/server.log`)).stdout.trim()),
      Number(k3sLogBefore) + 1,
      'K3s restarted once',
    );
    assert.equal(
      (await h3.exec(`tail -n 1 ${STANDIN_LOG_DIR}/server.log`)).stdout.trim(),
      'OK',
      'its etcdctl put with the configured files succeeded',
    );
    assert.equal(
      await hostSha(h3, '/etc/rancher/k3s/etcd/client.pem'),
      await workspaceSha('client/k3s.pem'),
    );
    assert.ok(
      (await standInRevision()) > standInBefore,
      'the stand-in wrote to etcd again after its restart',
    );

    // certs check: clean; every served certificate is the new one, with the new expiry.
    const after = await check();
    assert.equal(after.code, 0, after.text);
    for (const h of after.json.hosts)
      for (const f of h.files) {
        assert.equal(f.matchesWorkspace, true, `${h.host} ${f.file.hostPath}`);
        if (!f.served) continue;
        const ws = parseCertificate(
          await readFile(join(cluster.pki.dir, f.file.workspacePath), 'utf8'),
        );
        assert.equal(f.served.cert?.sha256, ws.fingerprint256, `${h.host} serves the new one`);
        assert.equal(f.served.cert?.notAfter.slice(0, 4), year);
      }
    assert.deepEqual(
      (await readdir(cluster.pki.dir)).filter((n) => n.startsWith('previous-')),
      [],
      'no dated folder of old files is left',
    );
  });

  it('a member that does not start on its new files gets its old ones back; the others and K3s are untouched', async () => {
    // A drop-in pins each member's current server certificate: etcd starts only on it.
    for (const h of hosts) {
      const w = await h.exec(
        [
          `sha256sum ${PKI}/server.pem > /etc/etcd/pinned.sha256`,
          'mkdir -p /etc/systemd/system/etcd.service.d',
          `printf '[Service]\\nExecStartPre=/usr/bin/sha256sum -c --quiet /etc/etcd/pinned.sha256\\n' > /etc/systemd/system/etcd.service.d/pin.conf`,
          'systemctl daemon-reload',
        ].join(' && '),
      );
      assert.equal(w.code, 0, w.stderr);
    }
    try {
      const ws = async () =>
        Promise.all(
          NAMES.flatMap((n) => MEMBER_FILES.map((f) => workspaceSha(`${n}/${f}`))).concat(
            workspaceSha('client/k3s.pem'),
          ),
        );
      const wsBefore = await ws();
      const filesBefore = await Promise.all(
        hosts.map((h) => Promise.all(MEMBER_FILES.map((f) => hostSha(h, `${PKI}/${f}`)))),
      );
      const k3sBefore = await hostSha(hosts[2]!, '/etc/rancher/k3s/etcd/client.pem');
      const before = await Promise.all(hosts.map(unitState));
      const conn = await connectionFor(cluster);
      const writer = await startWriter({ endpoints: conn.endpoints, tls: conn.tls });
      let r;
      let stats;
      try {
        r = await runCli(['certs', 'renew', '--k3s', '--yes'], { cwd: dir });
      } finally {
        stats = await writer.stop();
      }
      assert.equal(r.code, 1, r.out);
      const failed = /^\[(edge-\d)\] .*putting its previous files back$/m.exec(r.out)?.[1];
      assert.ok(failed, r.out);
      assert.match(
        r.out,
        new RegExp(
          `its previous files were put back and etcd restarted on them: ${failed} is healthy again`,
        ),
      );
      for (const n of NAMES.filter((x) => x !== failed))
        assert.match(
          r.out,
          new RegExp(`${n}: not started: the rollout stopped at ${failed}, which failed`),
        );
      assert.match(r.out, /edge-3: not started: the members' rollout did not finish/);
      assert.match(
        r.out,
        /Not renewed \(the workspace keeps their previous files, as the hosts do\)/,
      );

      const after = await Promise.all(hosts.map(unitState));
      for (const [i, h] of hosts.entries()) {
        assert.deepEqual(
          await Promise.all(MEMBER_FILES.map((f) => hostSha(h, `${PKI}/${f}`))),
          filesBefore[i],
          `${h.name}'s files as before`,
        );
        if (h.name === failed)
          assert.notEqual(
            after[i]!.invocation,
            before[i]!.invocation,
            `${h.name} restarted on its old files`,
          );
        else assert.deepEqual(after[i], before[i], `${h.name} untouched`);
      }
      assert.equal(await hostSha(hosts[2]!, '/etc/rancher/k3s/etcd/client.pem'), k3sBefore);
      assert.deepEqual(await ws(), wsBefore, 'the workspace holds the old files again');
      assert.deepEqual(
        (await readdir(cluster.pki.dir)).filter((n) => n.startsWith('previous-')),
        [],
      );
      const table = await liveCluster(conn).probe();
      assert.deepEqual(
        table.map((m) => `${m.name} ${m.healthy}`).sort(),
        NAMES.map((n) => `${n} true`),
      );
      assert.equal(stats.failed, 0, `failed writes: ${stats.failures.join('; ')}`);
      const fine = await check();
      assert.equal(fine.code, 0, fine.text);
    } finally {
      for (const h of hosts)
        await h.exec(
          'rm -f /etc/systemd/system/etcd.service.d/pin.conf /etc/etcd/pinned.sha256 && systemctl daemon-reload',
        );
    }
  });
});
