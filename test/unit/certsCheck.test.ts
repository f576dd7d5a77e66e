/**
 * `certs check`, the pure parts: which files each host holds, the root batch's framing (a file
 * cannot fake the next file's frame; sizes bounded), strict PEM parsing, the key check, the
 * comparison (expiry in minutes, drift, served versus deployed, key mismatch, a host not read)
 * and its words (what to do, with commands that exist), the terminal table and the Markdown
 * report (certificate text escaped).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { cluster, host } from '../fixtures/inventory';
import { createCa, issueLeaf, type Issuer } from '../../src/core/pki/issue';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { deployedFiles, checkedHosts } from '../../src/core/pkiHost/files';
import { keyBelongsTo, parseCertificates, MAX_PEM_BYTES } from '../../src/core/pkiHost/pem';
import { parseRead, readScript, type RawFile } from '../../src/core/pkiHost/read';
import { compareFile, type HostCheck } from '../../src/core/pkiHost/compare';
import { hostFindings, leftWords } from '../../src/core/pkiHost/findings';
import { checkMarkdown, checkText } from '../../src/core/pkiHost/render';
import { rotationFacts, type CertsCheck } from '../../src/core/pkiHost/check';
import { runCli } from '../fixtures/cli';
import { buildTree, contextValueOf, type HostNode, type TreeNode } from '../../src/core/tree/model';

const NOW = new Date('2026-01-10T12:00:00Z');
const MIN = 60_000;
const DAY = 86_400_000;

const c = cluster('/w/pki', [
  host('h1', '127.0.0.1', { memberName: 'm-1' }),
  host('h2', '127.0.0.2', { memberName: 'm-2', roles: ['etcd', 'k3s-server'] }),
  host('h3', '127.0.0.3', { roles: ['k3s-server'] }),
  host('h4', '127.0.0.4', { roles: ['k3s-agent'] }),
]);

let ca: { certPem: string; cert: X509Certificate; issuer: Issuer };
let otherCa: Issuer;

async function leaf(cn: string, msLeft: number, issuer: Issuer = ca.issuer) {
  return issueLeaf(
    {
      cn,
      sans: ['127.0.0.1'],
      usages: ['serverAuth', 'clientAuth'],
      algorithm: 'ecdsa-p256',
      validity: {
        notBefore: new Date(NOW.getTime() - DAY),
        notAfter: new Date(NOW.getTime() + msLeft),
      },
    },
    issuer,
  );
}

const file = (text: string): RawFile => ({ state: 'file', text, size: text.length });

before(async () => {
  const validity = {
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
  };
  const made = await createCa('edge-t etcd CA', 'ecdsa-p256', validity);
  ca = {
    certPem: made.certPem,
    cert: new X509Certificate(made.certPem),
    issuer: {
      certPem: made.certPem,
      signingKey: (await loadPrivateKey(made.keyPem, 'ca')).signingKey,
    },
  };
  const other = await createCa('someone else', 'ecdsa-p256', validity);
  otherCa = {
    certPem: other.certPem,
    signingKey: (await loadPrivateKey(other.keyPem, 'o')).signingKey,
  };
});

describe('which files each host holds', () => {
  it('members under /etc/etcd/pki with their URLs, K3s servers under /etc/rancher/k3s/etcd, agents none', () => {
    assert.deepEqual(
      checkedHosts(c).map((h) => h.name),
      ['h1', 'h2', 'h3'],
    );
    const h2 = deployedFiles(c, c.hosts[1]!);
    assert.deepEqual(
      h2.map((f) => [f.hostPath, f.workspacePath, f.hostKeyPath ?? '', f.servedAt ?? '']),
      [
        ['/etc/etcd/pki/ca.pem', 'ca.pem', '', ''],
        [
          '/etc/etcd/pki/server.pem',
          'm-2/server.pem',
          '/etc/etcd/pki/server-key.pem',
          'https://127.0.0.2:2379',
        ],
        [
          '/etc/etcd/pki/peer.pem',
          'm-2/peer.pem',
          '/etc/etcd/pki/peer-key.pem',
          'https://127.0.0.2:2380',
        ],
        ['/etc/rancher/k3s/etcd/ca.pem', 'ca.pem', '', ''],
        [
          '/etc/rancher/k3s/etcd/client.pem',
          'client/k3s.pem',
          '/etc/rancher/k3s/etcd/client-key.pem',
          '',
        ],
      ],
    );
    assert.deepEqual(deployedFiles({ ...c, datastore: 'k3s-embedded-etcd' }, c.hosts[2]!), []);
  });
});

describe('the root batch', () => {
  const nonce = 'abc123';
  it('quotes every path, so a path cannot reach the shell', () => {
    const s = readScript(["/x/$(touch /tmp/p)'; rm -rf /"], nonce);
    assert.match(s, /emit 0 '\/x\/\$\(touch \/tmp\/p\)'\\''; rm -rf \/'/);
  });
  it('splits files by their frames; a forged frame with another nonce is content; cut short is no answer', () => {
    const out = [
      '@@abc123 0 size 20',
      'line one',
      '@@other 1 size 3',
      '@@abc123 1 missing',
      '@@abc123 2 size 999999',
      'xx',
      '@@abc123 3 unreadable',
      '@@abc123 4 size 5',
      'part',
    ].join('\n');
    const r = parseRead(out, 5, nonce);
    assert.deepEqual(r[0], { state: 'file', text: 'line one\n@@other 1 size 3', size: 20 });
    assert.deepEqual(r[1], { state: 'missing' });
    assert.deepEqual(r[2], { state: 'too-large' });
    assert.deepEqual(r[3], { state: 'unreadable' });
    assert.deepEqual(r[4], { state: 'no-answer' });
  });
});

describe('strict PEM', () => {
  it('takes a leaf and a bundle, refuses text around blocks, other blocks, broken DER and size', async () => {
    const l = await leaf('m-1', 100 * DAY);
    assert.equal(parseCertificates(l.certPem).ok, true);
    const bundle = parseCertificates(`${ca.certPem}\n${l.certPem}`);
    assert.equal(bundle.ok && bundle.value.length, 2);
    assert.deepEqual(parseCertificates(`hello\n${l.certPem}`), {
      ok: false,
      problem: 'text outside PEM blocks',
    });
    assert.equal(parseCertificates(l.keyPem).ok, false);
    assert.equal(
      parseCertificates('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').ok,
      false,
    );
    assert.equal(parseCertificates(l.certPem.replace('-----END CERTIFICATE-----', '')).ok, false);
    assert.equal(parseCertificates(l.certPem + ' '.repeat(MAX_PEM_BYTES)).ok, false);
  });
  it('says whether a key belongs to a certificate, never more', async () => {
    const a = await leaf('m-1', 100 * DAY);
    const b = await leaf('m-1', 100 * DAY);
    const cert = new X509Certificate(a.certPem);
    assert.equal(keyBelongsTo(a.keyPem, cert), 'matches');
    assert.equal(keyBelongsTo(b.keyPem, cert), 'mismatch');
    assert.equal(keyBelongsTo('not a key', cert), 'invalid');
    assert.equal(keyBelongsTo(a.certPem, cert), 'invalid');
  });
});

describe('the comparison and its words', () => {
  const h1Files = () => deployedFiles(c, c.hosts[0]!);
  async function hostWith(opts: {
    server: { certPem: string; keyPem: string };
    workspaceServer: { certPem: string };
    served?: string;
    key?: string;
  }): Promise<HostCheck> {
    const [caFile, server] = h1Files();
    const workspace = new Map([
      ['ca.pem', [ca.cert]],
      ['m-1/server.pem', [new X509Certificate(opts.workspaceServer.certPem)]],
    ]);
    const common = { workspace, ca: ca.cert, now: NOW, warnDays: 30 };
    return {
      host: 'h1',
      roles: ['etcd'],
      files: [
        compareFile({ file: caFile!, raw: file(ca.certPem), ...common }),
        compareFile({
          file: server!,
          raw: file(opts.server.certPem),
          rawKey: file(opts.key ?? opts.server.keyPem),
          served: {
            url: server!.servedAt!,
            cert: new X509Certificate(opts.served ?? opts.server.certPem),
            clientCert: 'required',
          },
          ...common,
        }),
      ],
    };
  }

  it('all fresh: nothing to say', async () => {
    const s = await leaf('m-1', 400 * DAY);
    const h = await hostWith({ server: s, workspaceServer: s });
    assert.deepEqual(hostFindings(h, 30), []);
    assert.deepEqual(
      h.files.map((f) => [
        f.matchesWorkspace,
        f.key,
        f.served?.equalsDeployed,
        f.expiry,
        f.signedByCa,
      ]),
      [
        [true, undefined, undefined, 'valid', undefined],
        [true, 'matches', true, 'valid', true],
      ],
    );
  });

  it('a certificate that expires in minutes: host and file named, renewed and rolled out with certs renew', async () => {
    const s = await leaf('m-1', 4 * MIN);
    const h = await hostWith({ server: s, workspaceServer: s });
    const f = hostFindings(h, 30);
    assert.equal(f.length, 1);
    assert.equal(f[0]!.code, 'expiring');
    assert.match(
      f[0]!.text,
      /^h1 \/etc\/etcd\/pki\/server\.pem: m-1 server expires in 4 min \(2026-01-10 12:04 UTC\), within the 30-day warning window$/,
    );
    assert.match(
      f[0]!.action,
      /^re-issue it under the same CA and roll it out with `k3s-etcd certs renew --member m-1` \(that member's server and peer certificates, its restart with a health check, no outage\)$/,
    );
    assert.doesNotMatch(f[0]!.action, /certs reissue|certs generate|provision etcd|downtime/);
    assert.equal(leftWords(h.files[1]!.certs[0]!), 'expires in 4 min');
  });

  it('expired, and the workspace holds a newer one: deploying is enough', async () => {
    const old = await leaf('m-1', -2 * DAY);
    const fresh = await leaf('m-1', 400 * DAY);
    const h = await hostWith({ server: old, workspaceServer: fresh });
    const codes = hostFindings(h, 30).map((x) => x.code);
    assert.deepEqual(codes, ['expired', 'drift']);
    const [expired] = hostFindings(h, 30);
    assert.match(expired!.text, /EXPIRED on 2026-01-08 12:00 UTC/);
    assert.match(
      expired!.action,
      /^the workspace holds a newer one \(400 days left\) that h1 does not: re-issue it .*`k3s-etcd certs renew --member m-1`.*; or deploy .*provision etcd --host h1/,
    );
  });

  it('a hand-placed certificate from another CA is drift, said with both fingerprints', async () => {
    const ws = await leaf('m-1', 400 * DAY);
    const other = await leaf('intruder', 400 * DAY, otherCa);
    const h = await hostWith({ server: other, workspaceServer: ws });
    const f = hostFindings(h, 30);
    assert.deepEqual(
      f.map((x) => x.code),
      ['drift'],
    );
    assert.match(
      f[0]!.text,
      /differs from the workspace's m-1\/server\.pem: deployed [0-9A-F:]{23}… \(intruder, until .*, NOT signed by the workspace CA\), workspace [0-9A-F:]{23}…/,
    );
  });

  it("a member serving another certificate than its file, and a key that is not the certificate's", async () => {
    const before = await leaf('m-1', 10 * DAY);
    const renewed = await leaf('m-1', 400 * DAY);
    const h = await hostWith({
      server: renewed,
      workspaceServer: renewed,
      served: before.certPem,
      key: before.keyPem,
    });
    const f = hostFindings(h, 30);
    assert.deepEqual(
      f.map((x) => x.code),
      ['key-mismatch', 'served-differs'],
    );
    assert.match(
      f[1]!.text,
      /^m-1 serves another certificate on https:\/\/127\.0\.0\.1:2379 than \/etc\/etcd\/pki\/server\.pem: served .* \(m-1, expires in 10 days\), deployed .*: the etcd answering there does not use that file \(etcd re-reads its certificate files on every connection, so its settings name another file, or another process holds the port\)$/,
    );
    assert.match(
      f[1]!.action,
      /^put back the member's settings with `k3s-etcd provision etcd --host h1` \(it rewrites \/etc\/etcd\/etcd\.env to name \/etc\/etcd\/pki\/server\.pem and restarts that member\)/,
    );
    // A member's settings are put back by provisioning, not by a renewal.
    for (const x of f) assert.doesNotMatch(x.action, /certs renew|rotate-ca|certs reissue/);
  });

  it("drift of a K3s server's client certificate: renewed with certs renew --k3s", async () => {
    const [, client] = deployedFiles(c, c.hosts[2]!);
    const ws = await leaf('k3s', 400 * DAY);
    const other = await leaf('k3s', 300 * DAY, otherCa);
    const f = hostFindings(
      {
        host: 'h3',
        roles: ['k3s-server'],
        files: [
          compareFile({
            file: client!,
            raw: file(other.certPem),
            rawKey: file(other.keyPem),
            workspace: new Map([['client/k3s.pem', [new X509Certificate(ws.certPem)]]]),
            ca: ca.cert,
            now: NOW,
            warnDays: 30,
          }),
        ],
      },
      30,
    );
    assert.deepEqual(
      f.map((x) => x.code),
      ['drift'],
    );
    assert.match(
      f[0]!.action,
      /^if the workspace is right, re-issue it under the same CA and roll it out with `k3s-etcd certs renew --k3s` .*; if the host's file is the one to keep, the workspace is out of date$/,
    );
  });

  it('the CA itself near its end: rotated without an outage; once expired: a new CA and every host deployed', async () => {
    const [caFile] = h1Files();
    const caCheck = async (msLeft: number) => {
      const made = await createCa('edge-t etcd CA', 'ecdsa-p256', {
        notBefore: new Date(NOW.getTime() - DAY),
        notAfter: new Date(NOW.getTime() + msLeft),
      });
      const cert = new X509Certificate(made.certPem);
      return hostFindings(
        {
          host: 'h1',
          roles: ['etcd'],
          files: [
            compareFile({
              file: caFile!,
              raw: file(made.certPem),
              workspace: new Map([['ca.pem', [cert]]]),
              ca: cert,
              now: NOW,
              warnDays: 30,
            }),
          ],
        },
        30,
      );
    };
    const soon = await caCheck(10 * DAY);
    assert.deepEqual(
      soon.map((x) => x.code),
      ['expiring'],
    );
    assert.match(
      soon[0]!.action,
      /^replace the CA without an outage with `k3s-etcd certs rotate-ca`/,
    );
    assert.doesNotMatch(soon[0]!.action, /downtime|certs generate|provision/);
    const gone = await caCheck(-DAY);
    assert.deepEqual(
      gone.map((x) => x.code),
      ['expired'],
    );
    assert.match(
      gone[0]!.action,
      /a rotation needs a running cluster: make a new CA \(`k3s-etcd certs import-ca`/,
    );
  });

  it('during a CA rotation: hosts it has not reached go on with certs rotate-ca, never a deploy or a renewal', async () => {
    const ws = await leaf('m-1', 400 * DAY);
    const other = await leaf('m-1', 400 * DAY, otherCa);
    const soon = await leaf('m-1', 4 * MIN);
    const drifted = await hostWith({ server: other, workspaceServer: ws });
    const expiring = await hostWith({ server: soon, workspaceServer: soon });
    const notDone = { phase: 1 as const, members: ['h2'], k3sServers: [] };
    const found = [...hostFindings(drifted, 30, notDone), ...hostFindings(expiring, 30, notDone)];
    assert.deepEqual(
      found.map((x) => x.code),
      ['drift', 'expiring'],
    );
    for (const x of found) {
      assert.match(
        x.action,
        /^a CA rotation is under way \(phase 1 of 3\) and h1 has not finished this phase: go on with `k3s-etcd certs rotate-ca`, which continues with the hosts not done/,
      );
      assert.doesNotMatch(x.action, /`k3s-etcd provision|`k3s-etcd certs renew/);
    }
    const done = hostFindings(expiring, 30, { phase: 2, members: ['h1'], k3sServers: [] });
    assert.match(
      done[0]!.action,
      /^a CA rotation is under way \(phase 2 of 3\) and h1 finished this phase: finish the rotation with `k3s-etcd certs rotate-ca`/,
    );
    const report: CertsCheck = {
      cluster: 'edge-t',
      checkedAt: NOW.toISOString(),
      warnDays: 30,
      hosts: [expiring],
      rotation: notDone,
      findings: hostFindings(expiring, 30, notDone),
    };
    assert.match(
      checkText(report),
      /^A CA rotation is under way \(phase 1 of 3; finished by h2\): hosts it has not reached differ from the workspace until it reaches them; go on with `k3s-etcd certs rotate-ca`\.\n/,
    );
    assert.match(
      checkMarkdown(report),
      /A CA rotation is under way \(phase 1 of 3; finished by h2\)/,
    );
    // Without a rotation the same finding is a renewal.
    assert.match(hostFindings(expiring, 30)[0]!.action, /`k3s-etcd certs renew --member m-1`/);
  });

  it("the rotation the check tells of is the workspace's rotation.json (none, one, one unusable)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k3s-etcd-check-rot-'));
    try {
      const w = { ...c, pki: { ...c.pki, dir } };
      assert.equal(await rotationFacts(w), undefined);
      const fp = (b: string) => Array.from({ length: 32 }, () => b).join(':');
      const state = {
        version: 1,
        phase: 2,
        oldCa: fp('AA'),
        newCa: fp('BB'),
        members: ['h1'],
        k3sServers: ['h3'],
        startedAt: NOW.toISOString(),
      };
      await writeFile(join(dir, 'rotation.json'), JSON.stringify(state));
      assert.deepEqual(await rotationFacts(w), { phase: 2, members: ['h1'], k3sServers: ['h3'] });
      await writeFile(join(dir, 'rotation.json'), '{"version": 1, "phase": 7}');
      assert.deepEqual(await rotationFacts(w), { members: [], k3sServers: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a host not read is a finding, not fine', () => {
    const f = hostFindings(
      {
        host: 'h3',
        roles: ['k3s-server'],
        error: 'cannot read its certificates over SSH (refused)',
        files: [],
      },
      30,
    );
    assert.equal(f[0]!.code, 'unreachable');
    assert.match(f[0]!.text, /^h3 could not be read: .*its certificates are unknown$/);
  });

  it('the table and the report: hostile certificate text is cleaned and escaped', async () => {
    const made = await createCa('evil \u001b[31m CA <b>', 'ecdsa-p256', {
      notBefore: new Date(NOW.getTime() - DAY),
      notAfter: new Date(NOW.getTime() + 3650 * DAY),
    });
    const evilCa = {
      certPem: made.certPem,
      signingKey: (await loadPrivateKey(made.keyPem, 'e')).signingKey,
    };
    const evil = await leaf('m-1 <img src=x> | `rm` \u001b[31m', 400 * DAY, evilCa);
    const h = await hostWith({ server: evil, workspaceServer: evil });
    const check: CertsCheck = {
      cluster: 'edge-t',
      checkedAt: NOW.toISOString(),
      warnDays: 30,
      hosts: [h, { host: 'h3', roles: ['k3s-server'], error: 'refused', files: [] }],
      findings: [
        ...hostFindings(h, 30),
        ...hostFindings({ host: 'h3', roles: ['k3s-server'], error: 'refused', files: [] }, 30),
      ],
    };
    const text = checkText(check);
    assert.doesNotMatch(text, /\u001b/);
    assert.match(
      text,
      // Node prints the subject escaped (\\<, \\1B); nothing raw reaches the terminal.
      /\/etc\/etcd\/pki\/server\.pem\s+m-1 \\<img src…\s+400 days left\s+same\s+same\s+matches\n {8}expires 2027-02-14 {2}SHA-256 [0-9A-F:]{23}… {2}issuer evil \\1B\[31m CA \\<b\\>\n {8}SANs 127\.0\.0\.1\n/,
    );
    assert.match(text, /h3 \(k3s-server\)\n {2}not read: refused/);
    const md = checkMarkdown(check);
    assert.doesNotMatch(md, /<img/);
    assert.match(md, /m-1 \\\\&lt;img src=x\\\\&gt; \\\| \\`rm\\`/);
  });
});

describe('the terminal table', () => {
  it("under each row the file's expiry, short SHA-256, issuer and SANs, all within 100 columns", async () => {
    const [caFile, server] = deployedFiles(c, c.hosts[0]!);
    const sans = [
      '127.0.0.1',
      'localhost',
      ...Array.from({ length: 12 }, (_, i) => `etcd-${i}.edge.example.internal`),
    ];
    const s = await issueLeaf(
      {
        cn: 'm-1',
        sans,
        usages: ['serverAuth', 'clientAuth'],
        algorithm: 'ecdsa-p256',
        validity: {
          notBefore: new Date(NOW.getTime() - DAY),
          notAfter: new Date(NOW.getTime() + 400 * DAY),
        },
      },
      ca.issuer,
    );
    const next = await createCa('edge-t etcd CA 20260301T100000Z', 'ecdsa-p256', {
      notBefore: new Date(NOW.getTime() - DAY),
      notAfter: new Date(NOW.getTime() + 3650 * DAY),
    });
    const bundle = `${ca.certPem}${next.certPem}`;
    const cert = new X509Certificate(s.certPem);
    const workspace = new Map([
      ['ca.pem', [ca.cert, new X509Certificate(next.certPem)]],
      ['m-1/server.pem', [cert]],
    ]);
    const common = { workspace, ca: ca.cert, now: NOW, warnDays: 30 };
    const h: HostCheck = {
      host: 'h1',
      roles: ['etcd'],
      files: [
        compareFile({ file: caFile!, raw: file(bundle), ...common }),
        compareFile({ file: server!, raw: file(s.certPem), rawKey: file(s.keyPem), ...common }),
      ],
    };
    const text = checkText({
      cluster: 'edge-t',
      checkedAt: NOW.toISOString(),
      warnDays: 30,
      hosts: [h],
      findings: [],
    });
    const lines = text.split('\n');
    assert.match(lines[1]!, /^ {2}FILE\s+SUBJECT CN\s+LEFT\s+WORKSPACE\s+SERVED\s+KEY$/);
    // The CA bundle: its first CA, how many more, no SANs line.
    assert.match(
      lines[2]!,
      /^ {2}\/etc\/etcd\/pki\/ca\.pem\s+edge-t etcd CA \+1\s+3650 days left\s+same\s+-\s+-$/,
    );
    assert.equal(
      lines[3],
      `        expires 2036-01-08  SHA-256 ${ca.cert.fingerprint256.slice(0, 23)}…  issuer edge-t etcd CA`,
    );
    assert.match(
      lines[4]!,
      /^ {2}\/etc\/etcd\/pki\/server\.pem\s+m-1\s+400 days left\s+same\s+-\s+matches$/,
    );
    assert.equal(
      lines[5],
      `        expires 2027-02-14  SHA-256 ${cert.fingerprint256.slice(0, 23)}…  issuer edge-t etcd CA`,
    );
    // Every SAN, wrapped under the first.
    const sanLines = lines.slice(6, lines.indexOf(''));
    assert.ok(sanLines.length > 1, sanLines.join('\n'));
    assert.match(sanLines[0]!, /^ {8}SANs 127\.0\.0\.1, localhost, etcd-0\.edge/);
    for (const l of sanLines.slice(1)) assert.match(l, /^ {13}\S/);
    assert.deepEqual(
      sanLines
        .join(' ')
        .replace(/^ *SANs /, '')
        .split(/,\s+/)
        .map((x) => x.trim()),
      sans,
    );
    for (const l of lines.filter((x) => x.startsWith('  ')))
      assert.ok(l.length <= 100, `${l.length} columns: ${l}`);
  });
});

describe('the CLI', () => {
  it('refuses a --warn-days that is not a whole number of days', async () => {
    const r = await runCli(['certs', 'check', '--warn-days', 'soon'], { cwd: '/nonexistent' });
    assert.equal(r.code, 2);
    assert.match(r.err, /--warn-days needs a whole number of days/);
  });
});

describe('the tree after a check', () => {
  const load = {
    status: 'ok' as const,
    file: '/w/k3s-etcd.yaml',
    inventory: { file: '/w/k3s-etcd.yaml', version: 1 as const, clusters: [c] },
    problems: [],
  };
  const findNode = (roots: TreeNode[], id: string): TreeNode | undefined => {
    for (const n of roots) {
      if (n.id === id) return n;
      const inside = findNode(n.children ?? [], id);
      if (inside) return inside;
    }
    return undefined;
  };

  it('before a check: not checked yet, no host marked', () => {
    const roots = buildTree(load);
    const certs = findNode(roots, 'certs:edge-t')!;
    assert.match(
      certs.tooltip ?? '',
      /Deployed certificates not checked yet: Check Deployed Certificates reads/,
    );
    const h1 = findNode(roots, 'host:edge-t/h1')!;
    assert.equal(contextValueOf(h1), 'host+etcd');
  });

  it('findings mark their hosts (warning for drift or near expiry, error for expired), the node counts them', async () => {
    const soon = await leaf('m-1', 4 * MIN);
    const h1: HostCheck = {
      host: 'h1',
      roles: ['etcd'],
      files: [
        compareFile({
          file: deployedFiles(c, c.hosts[0]!)[1]!,
          raw: file(soon.certPem),
          rawKey: file(soon.keyPem),
          workspace: new Map([['m-1/server.pem', [new X509Certificate(soon.certPem)]]]),
          now: NOW,
          warnDays: 30,
        }),
      ],
    };
    const h3: HostCheck = { host: 'h3', roles: ['k3s-server'], error: 'refused', files: [] };
    const result: CertsCheck = {
      cluster: 'edge-t',
      checkedAt: NOW.toISOString(),
      warnDays: 30,
      hosts: [h1, h3],
      findings: [...hostFindings(h1, 30), ...hostFindings(h3, 30)],
    };
    const roots = buildTree(load, {
      certsChecks: new Map([['edge-t', { at: NOW.getTime(), result }]]),
    });
    const certs = findNode(roots, 'certs:edge-t')!;
    assert.match(certs.description ?? '', / · 2 findings on 2 hosts$/);
    assert.match(certs.tooltip ?? '', /Hosts checked .*: 2 finding\(s\)/);
    const m1 = findNode(roots, 'host:edge-t/h1') as HostNode;
    assert.equal(m1.certs, 'warning');
    assert.equal(contextValueOf(m1), 'host+etcd+warning');
    assert.match(m1.description ?? '', /certificates: 1 finding$/);
    assert.match(
      m1.tooltip ?? '',
      /\n {2}- h1 \/etc\/etcd\/pki\/server\.pem: m-1 server expires in 4 min/,
    );
    assert.equal((findNode(roots, 'host:edge-t/h3') as HostNode).certs, 'error');
    assert.equal((findNode(roots, 'host:edge-t/h2') as HostNode).certs, undefined);

    const fine = buildTree(load, {
      certsChecks: new Map([
        ['edge-t', { at: NOW.getTime(), result: { ...result, findings: [] } }],
      ]),
    });
    assert.match(findNode(fine, 'certs:edge-t')!.description ?? '', / · hosts fine$/);
    const failed = buildTree(load, {
      certsChecks: new Map([['edge-t', { at: NOW.getTime(), error: 'no inventory' }]]),
    });
    assert.match(findNode(failed, 'certs:edge-t')!.description ?? '', / · hosts not checked$/);
    // While a check runs: said first, before what the previous one found.
    const again = buildTree(load, {
      certsChecks: new Map([
        ['edge-t', { at: NOW.getTime(), result: { ...result, findings: [] }, reading: true }],
      ]),
    });
    assert.match(findNode(again, 'certs:edge-t')!.description ?? '', / · checking… · hosts fine$/);
    const first = buildTree(load, {
      certsChecks: new Map([['edge-t', { at: NOW.getTime(), reading: true }]]),
    });
    const node = findNode(first, 'certs:edge-t')!;
    assert.match(node.description ?? '', / · checking the hosts…$/);
    assert.match(
      node.tooltip ?? '',
      /Checking the hosts now, over SSH…\nDeployed certificates not checked yet/,
    );
  });
});
