/**
 * `certs check` on real systemd hosts: etcd provisioned on three hosts, the third also a K3s
 * server on the stand-in (offline install), so every member's files, the K3s datastore files
 * and every served certificate are read. Three members because that is the shape the check
 * reads in real life (two members would prove the same files, but a member restarted in the
 * middle keeps quorum only with three); the K3s server shares a host with a member, which also
 * proves that one batch reads both roles' files. Cases: all fresh (exit 0); a member
 * certificate issued to expire in minutes and deployed (exit 1, host and file named); the K3s
 * client file replaced by hand with another valid certificate (drift, exit 1); a renewed file
 * put in place by hand without a restart is served at once (etcd re-reads its certificate files
 * on every connection: no "restart pending" state exists), so "serves another certificate" is
 * proved with a member whose settings name another file (exit 1), which provisioning puts back
 * (exit 0); a host that does not answer is named and fails the check. Keys never reach the
 * output.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installK3s } from '../../src/core/k3s/ops';
import { fileTokenStore } from '../../src/core/k3s/token';
import type { Cluster } from '../../src/core/inventory/types';
import { createCa, issueLeaf } from '../../src/core/pki/issue';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { memberSans, reissueMember } from '../../src/core/pki/set';
import { checkDeployedCertificates } from '../../src/core/pkiHost/check';
import { parseCertificate } from '../../src/core/pki/inspect';
import { provisionEtcd } from '../../src/core/provision/provision';
import { shellQuote as q } from '../../src/core/ssh/quote';
import type { SshContext } from '../../src/core/ssh/hostSession';
import type { EdgeHost } from '../../scripts/harness/edgeHosts/types';
import { labSsh } from '../../scripts/harness/lab';
import { provisionedLab, type ProvisionedLab } from '../../scripts/harness/provisionedLab';
import { STANDIN_VERSION, writeK3sStandIn } from '../support/k3sStandIn';
import { runCli } from '../fixtures/cli';

const ADDR = ['127.0.1.221', '127.0.1.222', '127.0.1.223'];
/** Nothing listens here: the host that does not answer. */
const NOWHERE = '127.0.1.229';

/** A shell pipeline that prints `text` (base64 on the command line, nothing to quote). */
const put = (text: string) => `echo ${Buffer.from(text).toString('base64')} | base64 -d`;

interface CheckJson {
  ok: boolean;
  hosts: Array<{
    host: string;
    error?: string;
    files: Array<{
      file: { hostPath: string };
      matchesWorkspace?: boolean;
      key?: string;
      served?: { equalsDeployed?: boolean; clientCert: string };
    }>;
  }>;
  findings: Array<{ host: string; path?: string; code: string; text: string; action: string }>;
}

describe('certs check on real systemd hosts', () => {
  let lab: ProvisionedLab | undefined;
  let dir = '';
  let hosts: EdgeHost[] = [];
  let cluster: Cluster;
  let ssh: SshContext;

  /** `k3s-etcd certs check --json` (and the text form), as a person runs it. */
  async function check(): Promise<{ code: number; json: CheckJson; text: string }> {
    const j = await runCli(['certs', 'check', '--json'], { cwd: dir });
    const t = await runCli(['certs', 'check'], { cwd: dir });
    assert.equal(t.code, j.code, 'the text form exits like --json');
    let json: CheckJson;
    try {
      json = JSON.parse(j.out) as CheckJson;
    } catch {
      throw new Error(`certs check --json printed no JSON (exit ${j.code}):\n${j.out}\n${j.err}`);
    }
    return { code: j.code, json, text: `${t.out}\n${t.err}` };
  }

  /** The workspace CA, to issue what the test needs. */
  async function caIssuer() {
    const certPem = await readFile(join(cluster.pki.dir, 'ca.pem'), 'utf8');
    const key = await loadPrivateKey(
      await readFile(join(cluster.pki.dir, 'ca-key.pem'), 'utf8'),
      'ca',
    );
    return { certPem, signingKey: key.signingKey };
  }

  before(async () => {
    const specs = ADDR.map((address, i) => ({
      name: `edge-${i + 1}`,
      address,
      roles: i === 2 ? ['etcd', 'k3s-server'] : ['etcd'],
    }));
    lab = await provisionedLab('k3s-etcd-certs-check-', specs, {
      cluster: 'lab',
      clusterLines: [`k3s: { version: ${STANDIN_VERSION}, install: offline }`],
    });
    ({ dir, hosts, cluster, ssh } = lab);
    await writeK3sStandIn(join(dir, 'k3s-offline'));
    const k = await installK3s(cluster, {
      dryRun: false,
      ssh,
      tokens: fileTokenStore(lab.file, join(dir, 'tokens')),
      workspaceDir: dir,
    });
    assert.deepEqual(
      k.runs.map((r) => [r.host, r.status]),
      [['edge-3', 'changed']],
    );
  });
  after(async () => {
    await lab?.stop();
  });

  it("all fresh: every file is the workspace's, served as deployed, keys match; exit 0", async () => {
    const r = await check();
    assert.equal(r.code, 0, r.text);
    assert.equal(r.json.ok, true);
    assert.deepEqual(r.json.findings, []);
    assert.deepEqual(
      r.json.hosts.map((h) => [h.host, h.files.map((f) => f.file.hostPath)]),
      [
        ['edge-1', ['/etc/etcd/pki/ca.pem', '/etc/etcd/pki/server.pem', '/etc/etcd/pki/peer.pem']],
        ['edge-2', ['/etc/etcd/pki/ca.pem', '/etc/etcd/pki/server.pem', '/etc/etcd/pki/peer.pem']],
        [
          'edge-3',
          [
            '/etc/etcd/pki/ca.pem',
            '/etc/etcd/pki/server.pem',
            '/etc/etcd/pki/peer.pem',
            '/etc/rancher/k3s/etcd/ca.pem',
            '/etc/rancher/k3s/etcd/client.pem',
          ],
        ],
      ],
    );
    for (const h of r.json.hosts)
      for (const f of h.files) {
        assert.equal(f.matchesWorkspace, true, `${h.host} ${f.file.hostPath}`);
        if (f.key) assert.equal(f.key, 'matches', `${h.host} ${f.file.hostPath}`);
        // etcd with client-cert-auth: read without a client certificate, and it refuses one without.
        if (f.served)
          assert.deepEqual(f.served, { ...f.served, equalsDeployed: true, clientCert: 'required' });
      }
    assert.match(
      r.text,
      /edge-3 \(etcd, k3s-server\)\n\s+FILE\s+SUBJECT CN\s+LEFT\s+WORKSPACE\s+SERVED\s+KEY\n/,
    );
    // Under each file: its expiry, the deployed certificate's short SHA-256 (the workspace's
    // here), its issuer and its SANs.
    const fp = async (rel: string) =>
      parseCertificate(await readFile(join(cluster.pki.dir, rel), 'utf8')).fingerprint256.slice(
        0,
        23,
      );
    assert.match(
      r.text,
      new RegExp(
        `/etc/rancher/k3s/etcd/client\\.pem\\s+k3s\\s+\\d+ days left\\s+same\\s+-\\s+matches\n {8}expires \\d{4}-\\d\\d-\\d\\d {2}SHA-256 ${await fp('client/k3s.pem')}… {2}issuer lab etcd CA\n {8}SANs \\(none\\)\n`,
      ),
    );
    assert.match(
      r.text,
      new RegExp(
        `edge-1 \\(etcd\\)\n.*\n.*\n.*\n  /etc/etcd/pki/server\\.pem\\s+edge-1\\s+\\d+ days left\\s+same\\s+same\\s+matches\n {8}expires \\S+ {2}SHA-256 ${await fp('edge-1/server.pem')}… {2}issuer lab etcd CA\n {8}SANs 127\\.0\\.1\\.221, .*edge-1.*localhost`,
      ),
    );
    // The tables keep to 100 columns (the findings' sentences are not a table).
    for (const line of r.text.split('\n').filter((l) => /^ {2}(?!what to do)/.test(l)))
      assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    assert.match(r.text, /All certificates on 3 host\(s\) are the workspace's/);
    // Keys were read to check them, never shown.
    const keyText = await readFile(join(cluster.pki.dir, 'edge-1', 'server-key.pem'), 'utf8');
    const body = keyText.split('\n')[1]!;
    for (const out of [JSON.stringify(r.json), r.text]) {
      assert.doesNotMatch(out, /PRIVATE KEY/);
      assert.ok(!out.includes(body));
    }
  });

  it('a member certificate that expires in minutes, deployed: exit 1, host and file named; renewed, it is served at once; a member whose settings name another file serves what was not deployed', async () => {
    const issuer = await caIssuer();
    const edge2 = cluster.hosts[1]!;
    const now = Date.now();
    const short = await issueLeaf(
      {
        cn: edge2.memberName,
        sans: memberSans(edge2),
        usages: ['serverAuth', 'clientAuth'],
        algorithm: 'ecdsa-p256',
        validity: { notBefore: new Date(now - 60_000), notAfter: new Date(now + 20 * 60_000) },
      },
      issuer,
    );
    await writeFile(join(cluster.pki.dir, 'edge-2', 'server.pem'), short.certPem);
    await writeFile(join(cluster.pki.dir, 'edge-2', 'server-key.pem'), short.keyPem, {
      mode: 0o600,
    });
    const p = await provisionEtcd(cluster, { dryRun: false, ssh, hosts: ['edge-2'] });
    assert.equal(p.healthy, true, p.healthSummary);

    const r = await check();
    assert.equal(r.code, 1, r.text);
    assert.deepEqual(
      r.json.findings.map((f) => [f.host, f.path, f.code]),
      [['edge-2', '/etc/etcd/pki/server.pem', 'expiring']],
    );
    assert.match(
      r.text,
      /- edge-2 \/etc\/etcd\/pki\/server\.pem: edge-2 server expires in (19|20) min \(.* UTC\), within the 30-day warning window\n {2}what to do: re-issue it under the same CA and roll it out with `k3s-etcd certs renew --member edge-2` \(that member's server and peer certificates, its restart with a health check, no outage\)\n/,
    );
    assert.match(
      r.text,
      /\/etc\/etcd\/pki\/server\.pem\s+edge-2\s+expires in (19|20) min\s+same\s+same\s+matches\n {8}expires \S+ {2}SHA-256 [0-9A-F:]{23}… {2}issuer lab etcd CA\n/,
    );

    // Re-issued in the workspace and put on the host by hand, without a restart (`certs renew`
    // would restart the member; this shows that etcd serves a new file without one).
    await reissueMember(cluster, 'edge-2', [], { confirmReplace: async () => true });
    const h2 = hosts[1]!;
    for (const name of ['server.pem', 'server-key.pem', 'peer.pem', 'peer-key.pem']) {
      const content = await readFile(join(cluster.pki.dir, 'edge-2', name), 'utf8');
      const w = await h2.exec(`${put(content)} > ${q(`/etc/etcd/pki/${name}`)}`);
      assert.equal(w.code, 0, w.stderr);
    }
    // etcd re-reads its certificate files on every new connection: served at once, no restart.
    const renewed = await check();
    assert.equal(renewed.code, 0, renewed.text);
    const e2 = renewed.json.hosts.find((h) => h.host === 'edge-2')!;
    for (const f of e2.files.filter((x) => x.served))
      assert.deepEqual(
        [f.matchesWorkspace, f.served?.equalsDeployed],
        [true, true],
        f.file.hostPath,
      );

    // A member whose settings name another certificate file serves what the check did not read.
    const hand = await issueLeaf(
      {
        cn: 'edge-2',
        sans: memberSans(edge2),
        usages: ['serverAuth', 'clientAuth'],
        algorithm: 'ecdsa-p256',
        validity: { notBefore: new Date(now - 60_000), notAfter: new Date(now + 90 * 86_400_000) },
      },
      issuer,
    );
    const pki = '/etc/etcd/pki';
    const edit = await h2.exec(
      [
        `cp -p ${pki}/server.pem ${pki}/hand.pem && ${put(hand.certPem)} > ${pki}/hand.pem`,
        `cp -p ${pki}/server-key.pem ${pki}/hand-key.pem && ${put(hand.keyPem)} > ${pki}/hand-key.pem`,
        `sed -i 's|^ETCD_CERT_FILE=.*|ETCD_CERT_FILE=${pki}/hand.pem|; s|^ETCD_KEY_FILE=.*|ETCD_KEY_FILE=${pki}/hand-key.pem|' /etc/etcd/etcd.env`,
        'systemctl restart etcd',
      ].join(' && '),
    );
    assert.equal(edit.code, 0, edit.stderr);
    const other = await check();
    assert.equal(other.code, 1, other.text);
    assert.deepEqual(
      other.json.findings.map((f) => [f.host, f.path, f.code]),
      [['edge-2', '/etc/etcd/pki/server.pem', 'served-differs']],
    );
    assert.match(
      other.text,
      /- edge-2 serves another certificate on https:\/\/127\.0\.1\.222:2379 than \/etc\/etcd\/pki\/server\.pem: served [0-9A-F:]{23}… \(edge-2, 8\d days left\), deployed [0-9A-F:]{23}…: the etcd answering there does not use that file .*\n {2}what to do: put back the member's settings with `k3s-etcd provision etcd --host edge-2`/,
    );
    assert.match(
      other.text,
      /\/etc\/etcd\/pki\/server\.pem\s+edge-2\s+\d+ days left\s+same\s+DIFFERS\s+matches\n/,
    );

    // What the words say to do: provisioning puts the settings back and restarts the member.
    const back = await provisionEtcd(cluster, { dryRun: false, ssh, hosts: ['edge-2'] });
    assert.equal(back.healthy, true, back.healthSummary);
    const fine = await check();
    assert.equal(fine.code, 0, fine.text);
  });

  it('a K3s client file replaced by hand with another valid certificate: drift, exit 1', async () => {
    const other = await createCa('someone else', 'ecdsa-p256', {
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 365 * 86_400_000),
    });
    const intruder = await issueLeaf(
      {
        cn: 'k3s',
        sans: [],
        usages: ['clientAuth'],
        algorithm: 'ecdsa-p256',
        validity: {
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 300 * 86_400_000),
        },
      },
      { certPem: other.certPem, signingKey: (await loadPrivateKey(other.keyPem, 'o')).signingKey },
    );
    const h3 = hosts[2]!;
    const path = '/etc/rancher/k3s/etcd/client.pem';
    assert.equal(
      (await h3.exec(`cp ${path} ${path}.orig && ${put(intruder.certPem)} > ${path}`)).code,
      0,
    );
    try {
      const r = await check();
      assert.equal(r.code, 1, r.text);
      assert.deepEqual(
        r.json.findings.map((f) => [f.host, f.path, f.code]),
        [
          ['edge-3', path, 'drift'],
          ['edge-3', path, 'key-mismatch'],
        ],
      );
      assert.match(
        r.text,
        /- edge-3 \/etc\/rancher\/k3s\/etcd\/client\.pem differs from the workspace's client\/k3s\.pem: deployed [0-9A-F:]{23}… \(k3s, until .*, NOT signed by the workspace CA\), workspace [0-9A-F:]{23}… .*\n {2}what to do: if the workspace is right, re-issue it under the same CA and roll it out with `k3s-etcd certs renew --k3s` .*; if the host's file is the one to keep, the workspace is out of date\n/,
      );
      assert.match(
        r.text,
        /\/etc\/rancher\/k3s\/etcd\/client\.pem\s+k3s\s+\d+ days left\s+DIFFERS\s+-\s+MISMATCH\n {8}expires \S+ {2}SHA-256 [0-9A-F:]{23}… {2}issuer someone else\n {8}SANs \(none\)\n/,
      );
    } finally {
      assert.equal((await h3.exec(`mv ${path}.orig ${path}`)).code, 0);
    }
  });

  it('a host that does not answer is named and fails the check', async () => {
    const gone: Cluster = {
      ...cluster,
      hosts: cluster.hosts.map((h) => (h.name === 'edge-3' ? { ...h, address: NOWHERE } : h)),
    };
    const r = await checkDeployedCertificates(gone, { ssh: labSsh(dir, 5000), tlsTimeoutMs: 3000 });
    const unreachable = r.findings.filter((f) => f.code === 'unreachable');
    assert.deepEqual(
      unreachable.map((f) => f.host),
      ['edge-3'],
    );
    assert.match(
      unreachable[0]!.text,
      /^edge-3 could not be read: cannot read its certificates over SSH \(.*\); its certificates are unknown$/,
    );
    assert.deepEqual(
      r.hosts.filter((h) => !h.error).map((h) => h.host),
      ['edge-1', 'edge-2'],
    );
  });
});
