/**
 * `certs rotate-ca` on three real systemd hosts (Debian in systemd-nspawn), the third also a
 * K3s server on the stand-in, with a client writing to all three endpoints through every phase
 * (a write fails only when no endpoint takes it: scripts/harness/writer.ts; one writer per
 * phase, on the client files the workspace holds when the phase starts, as an operator's client
 * would be re-pointed between phases). Through the CLI as a person runs it, and the core for
 * the interruption:
 *  - the dry run of phase 1 names the phase, the new CA, what each host gets and the order, and
 *    writes nothing;
 *  - phase 1: every member's and the K3s server's CA file is the bundle (old + new);
 *  - phase 2 cancelled after the first member: that member is recorded as done, the others are
 *    untouched; `rotate-ca --phase 2` continues with the two others and the K3s server;
 *  - phase 3: every host trusts only the new CA; the old CA is kept in ca-old-<time>/;
 *  - no failed write in any phase, every retry a leader change or an endpoint restarting (never
 *    a certificate refused); a client with an old-CA certificate is refused by every member;
 *    `certs check` exits 0; the K3s stand-in restarted on its new files and reached etcd; the
 *    monitoring client exported before the rotation was re-issued in phase 2 and still scrapes.
 */
import assert from 'node:assert/strict';
import { metricsTargets, scrapeMetrics } from '../../src/core/etcd/scrape';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionFor } from '../../src/core/etcd/connection';
import { createEndpointClient, type EtcdTls } from '../../src/core/etcd/client';
import { installK3s } from '../../src/core/k3s/ops';
import { fileTokenStore } from '../../src/core/k3s/token';
import type { Cluster } from '../../src/core/inventory/types';
import { issueLeaf } from '../../src/core/pki/issue';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { generateCertificateSet } from '../../src/core/pki/set';
import { parseCertificate } from '../../src/core/pki/inspect';
import { provisionEtcd } from '../../src/core/provision/provision';
import { planRotate, runRotate } from '../../src/core/rotate/run';
import { readRotation } from '../../src/core/rotate/state';
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
// A retry because a member's TLS refused the client is not among ROLLING_RETRIES: it fails.
import { ROLLING_RETRIES, startWriter, type WriterStats } from '../../scripts/harness/writer';
import { STANDIN_LOG_DIR, STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
import { runCli } from '../fixtures/cli';

const ADDR = ['127.0.1.241', '127.0.1.242', '127.0.1.243'];
const NAMES = ['edge-1', 'edge-2', 'edge-3'];
const PKI = '/etc/etcd/pki';
const K3S_CA = '/etc/rancher/k3s/etcd/ca.pem';

const shaOf = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const certsIn = (pem: string) => (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;

describe('certs rotate-ca on real systemd hosts', () => {
  let dir = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;
  let oldCaPem = '';
  let oldCaKeyPem = '';
  const phases: Array<{ phase: string; stats: WriterStats }> = [];

  const hostText = async (h: EdgeHost, path: string) => {
    const r = await h.exec(`cat ${path}`);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  /** The client files the workspace holds now, read once (a writer started on them keeps them). */
  const workspaceTls = async (): Promise<EtcdTls> => {
    const p = cluster.pki.dir;
    return {
      ca: await readFile(join(p, 'ca.pem'), 'utf8'),
      cert: await readFile(join(p, 'client/admin.pem'), 'utf8'),
      key: await readFile(join(p, 'client/admin-key.pem'), 'utf8'),
      source: 'the workspace',
    };
  };
  /** Runs `fn` with a writer on every endpoint; records its figures under `phase`. */
  const writing = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const conn = await connectionFor(cluster);
    const writer = await startWriter({ endpoints: conn.endpoints, tls: await workspaceTls() });
    let out: T;
    try {
      await new Promise((res) => setTimeout(res, 1500));
      out = await fn();
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      phases.push({ phase, stats: await writer.stop() });
    }
    const s = phases.at(-1)!.stats;
    assert.equal(s.failed, 0, `${phase}: failed writes: ${s.failures.join('; ')}`);
    assert.ok(s.ok > 30, `${phase}: the client kept writing (${s.ok} writes)`);
    for (const reason of Object.keys(s.retried))
      assert.ok(ROLLING_RETRIES.has(reason), `${phase}: a write was retried because: ${reason}`);
    return out;
  };
  const standInStarts = async () =>
    Number((await hosts[2]!.exec(`grep -c '^start ' ${STANDIN_LOG_DIR}/server.log`)).stdout.trim());

  before(async () => {
    dir = await makeTempDir('k3s-etcd-certs-rotate-');
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
        cluster: 'rotate',
        hosts: specs,
        identityFile: 'id_lab',
        clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline }`],
      }),
    );
    cluster = await loadCluster(file);
    await generateCertificateSet(cluster);
    // Monitoring exported before the rotation: its client certificate is under the old CA.
    const mon = await runCli(['monitoring', 'export', '--format', 'prometheus'], { cwd: dir });
    assert.equal(mon.code, 0, `${mon.out}\n${mon.err}`);
    oldCaPem = await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8');
    oldCaKeyPem = await readFile(join(cluster.pki.dir, 'ca-key.pem'), 'utf8');
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
    for (const p of phases)
      console.log(
        `${p.phase}: ${p.stats.ok} writes, ${p.stats.failed} failed, retried ${JSON.stringify(p.stats.retried)}, longest gap ${Math.round(p.stats.maxGapMs)} ms`,
      );
    await stopEdgeHosts(hosts);
    if (dir) await removeTempDir(dir);
  });

  it('phase 1: the dry run says what each host gets; then every host trusts the old and the new CA', async () => {
    const refused = await runCli(['certs', 'rotate-ca', '--phase', '2', '--dry-run'], { cwd: dir });
    assert.equal(refused.code, 1, `${refused.out}\n${refused.err}`);
    assert.match(refused.err, /No CA rotation of rotate is under way, so phase 2 cannot run/);

    const dry = await runCli(['certs', 'rotate-ca', '--dry-run'], { cwd: dir });
    assert.equal(dry.code, 0, `${dry.out}\n${dry.err}`);
    assert.match(dry.out, /CA rotation of rotate, phase 1 of 3: trust both CAs/);
    assert.match(dry.out, /new CA: .*rotate etcd CA \d{8}T\d{6}Z.*\(made now/);
    for (const n of NAMES)
      assert.match(
        dry.out,
        new RegExp(`  ${n} \\(member ${n}\\) gets the CA bundle \\(old \\+ new\\)`),
      );
    assert.match(dry.out, /  edge-3 \(K3s server\) gets the CA bundle/);
    assert.match(dry.out, /etcd restarts on 3 member\(s\), one at a time/);
    assert.match(
      dry.out,
      /3\. edge-\d \(leader\): restarts for CA certificate \/etc\/etcd\/pki\/ca\.pem/,
    );
    assert.match(dry.out, /then the K3s servers, one at a time .*: edge-3$/m);
    assert.deepEqual(
      (await readdir(cluster.pki.dir)).filter((n) => n.startsWith('rotation')),
      [],
      'the dry run wrote nothing',
    );
    assert.equal(await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8'), oldCaPem);

    const k3sStarts = await standInStarts();
    const r = await writing('phase 1', () => runCli(['certs', 'rotate-ca', '--yes'], { cwd: dir }));
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /Phase 1 done on every host\. Run `k3s-etcd certs rotate-ca` for phase 2/);
    const bundle = await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8');
    assert.equal(certsIn(bundle), 2);
    assert.ok(bundle.startsWith(oldCaPem.trimEnd()), 'the old CA first');
    for (const h of hosts)
      assert.equal(
        shaOf(await hostText(h, `${PKI}/ca.pem`)),
        shaOf(bundle),
        `${h.name} has the bundle`,
      );
    assert.equal(shaOf(await hostText(hosts[2]!, K3S_CA)), shaOf(bundle));
    assert.equal(await standInStarts(), k3sStarts + 1, 'K3s restarted once on the bundle');
    const rot = await readRotation(cluster);
    assert.equal(rot?.state.phase, 2);
    assert.deepEqual(rot?.state.members, []);
  });

  it('phase 2 cancelled after the first member, then run again, re-issues every leaf under the new CA', async () => {
    const rot = await readRotation(cluster);
    assert.ok(rot);
    const abort = new AbortController();
    const lines: string[] = [];
    const first = await writing('phase 2 (cancelled)', async () => {
      const plan = await planRotate(cluster, { ssh, phase: 2 });
      assert.equal(plan.refusal, undefined);
      return runRotate(cluster, plan, {
        ssh,
        signal: abort.signal,
        onLine: (host, line) => {
          lines.push(`[${host}] ${line}`);
          if (/healthy and caught up/.test(line)) abort.abort();
        },
      });
    });
    assert.equal(first.ok, false, lines.join('\n'));
    const doneHost = first.memberRuns.find((x) => x.status === 'changed')?.host;
    assert.ok(doneHost, lines.join('\n'));
    const after1 = await readRotation(cluster);
    assert.equal(after1?.state.phase, 2);
    assert.deepEqual(after1?.state.members, [doneHost]);
    // The member done serves a certificate under the new CA; the others still the old one.
    for (const [i, h] of hosts.entries()) {
      const served = parseCertificate(await hostText(h, `${PKI}/server.pem`));
      assert.equal(
        served.checkIssued(rot.newCa),
        NAMES[i] === doneHost,
        `${h.name}: ${NAMES[i] === doneHost ? 'new' : 'old'} CA`,
      );
    }

    const dry = await runCli(['certs', 'rotate-ca', '--dry-run'], { cwd: dir });
    assert.equal(dry.code, 0, `${dry.out}\n${dry.err}`);
    assert.match(dry.out, /phase 2 of 3: every certificate re-issued under the new CA/);
    assert.match(dry.out, new RegExp(`already done in this phase: ${doneHost}$`, 'm'));
    assert.doesNotMatch(dry.out, new RegExp(`  ${doneHost} \\(member`));

    const r = await writing('phase 2 (again)', () =>
      runCli(['certs', 'rotate-ca', '--phase', '2', '--yes'], { cwd: dir }),
    );
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /Phase 2 done on every host/);
    for (const h of hosts)
      for (const f of ['server.pem', 'peer.pem'])
        assert.ok(
          parseCertificate(await hostText(h, `${PKI}/${f}`)).checkIssued(rot.newCa),
          `${h.name} ${f} under the new CA`,
        );
    assert.ok(
      parseCertificate(await hostText(hosts[2]!, '/etc/rancher/k3s/etcd/client.pem')).checkIssued(
        rot.newCa,
      ),
    );
    assert.equal((await readRotation(cluster))?.state.phase, 3);
  });

  it('phase 3: only the new CA is trusted; an old-CA client is refused; certs check is clean', async () => {
    const rot = await readRotation(cluster);
    assert.ok(rot);
    const k3sStarts = await standInStarts();
    const r = await writing('phase 3', () =>
      runCli(['certs', 'rotate-ca', '--phase', '3', '--yes'], { cwd: dir }),
    );
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /CA rotation finished: every host trusts only the new CA/);

    const ca = await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8');
    assert.equal(parseCertificate(ca).fingerprint256, rot.newCa.fingerprint256);
    assert.equal(certsIn(ca), 1);
    const kept = (await readdir(cluster.pki.dir)).filter((n) => /^ca-old-\d{8}T\d{6}Z$/.test(n));
    assert.equal(kept.length, 1);
    assert.equal(await readFile(join(cluster.pki.dir, kept[0]!, 'ca.pem'), 'utf8'), oldCaPem);
    assert.equal(
      await readFile(join(cluster.pki.dir, kept[0]!, 'ca-key.pem'), 'utf8'),
      oldCaKeyPem,
    );
    assert.deepEqual(
      (await readdir(cluster.pki.dir)).filter(
        (n) => n.startsWith('rotation') || n.startsWith('previous-'),
      ),
      [],
    );
    for (const h of hosts) assert.equal(shaOf(await hostText(h, `${PKI}/ca.pem`)), shaOf(ca));
    assert.equal(shaOf(await hostText(hosts[2]!, K3S_CA)), shaOf(ca));

    // The monitoring client was re-issued in phase 2: Prometheus's files still scrape every
    // member (with the new CA file), now that only the new CA is trusted.
    const monitoring = {
      caFile: join(cluster.pki.dir, 'ca.pem'),
      certFile: join(cluster.pki.dir, 'client', 'monitoring.pem'),
      keyFile: join(cluster.pki.dir, 'client', 'monitoring-key.pem'),
    };
    assert.ok(
      parseCertificate(await readFile(monitoring.certFile, 'utf8')).checkIssued(rot.newCa),
      'the monitoring client is under the new CA',
    );
    for (const t of metricsTargets(cluster)) {
      const page = await scrapeMetrics(t.url, { tls: monitoring });
      assert.match(page.text, /^etcd_server_has_leader 1$/m, t.member);
    }

    // A client with a certificate under the old CA (still valid) is refused by every member.
    const oldKey = await loadPrivateKey(oldCaKeyPem, 'old ca');
    const oldClient = await issueLeaf(
      {
        cn: 'admin',
        sans: [],
        usages: ['clientAuth'],
        algorithm: 'ecdsa-p256',
        validity: {
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 3_600_000),
        },
      },
      { certPem: oldCaPem, signingKey: oldKey.signingKey },
    );
    const conn = await connectionFor(cluster);
    for (const ep of conn.endpoints) {
      const tls = { ca, cert: oldClient.certPem, key: oldClient.keyPem, source: 'old CA' };
      const c = await createEndpointClient(ep, { tls, timeoutMs: 3000 });
      try {
        await assert.rejects(
          async () => c.put('/rotate-old-ca').value('x'),
          `${ep} refuses the old CA`,
        );
      } finally {
        c.close();
      }
      const fresh = await createEndpointClient(ep, { tls: await workspaceTls(), timeoutMs: 3000 });
      try {
        await fresh.put('/rotate-new-ca').value('x');
      } finally {
        fresh.close();
      }
    }

    // K3s restarted on the new CA alone and its stand-in reached etcd with its files.
    assert.equal(await standInStarts(), k3sStarts + 1);
    assert.equal(
      (await hosts[2]!.exec(`tail -n 1 ${STANDIN_LOG_DIR}/server.log`)).stdout.trim(),
      'OK',
    );
    const check = await runCli(['certs', 'check'], { cwd: dir });
    assert.equal(check.code, 0, `${check.out}\n${check.err}`);
    const total = phases.reduce((n, p) => n + p.stats.failed, 0);
    assert.equal(total, 0);
  });
});
