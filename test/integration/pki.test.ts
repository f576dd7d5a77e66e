/**
 * Certificates against real parts: openssl checks what we issue, a real 3-member etcd serves
 * mutual TLS with the generated set, etcdctl and the extension's own client connect with the
 * admin certificate, and the bad cases fail the way a user would see them fail.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listMembers } from '../../src/core/etcd/members';
import { PkiError } from '../../src/core/errors';
import { readIndex } from '../../src/core/pki/store';
import {
  generateCertificateSet,
  importCa,
  planCertificateSet,
  reissueMember,
  type PkiOptions,
} from '../../src/core/pki/set';
import { etcdctl } from '../../scripts/harness/etcd';
import { admin, cluster, etcdWithOurCerts, host, testScope } from './harness/tlsCluster';

const { tempDir, track } = testScope('k3s-etcd-pki-');

const yes: PkiOptions = { confirmReplace: async () => true };

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  }
  return out.sort();
}

describe('certificate set: what openssl sees', () => {
  it('every leaf verifies against the CA; SANs, usages, modes and index.json are as promised', async () => {
    const dir = await tempDir();
    const c = cluster(dir, [
      host('edge-1', '10.10.3.104', { sans: ['etcd-1.site.lan'] }),
      host('edge-2', '10.10.3.105'),
      host('edge-3', 'fd00::7'),
    ]);
    const result = await generateCertificateSet(c);
    assert.deepEqual(await listFiles(dir), [
      'ca-key.pem',
      'ca.pem',
      'client/admin-key.pem',
      'client/admin.pem',
      'client/k3s-key.pem',
      'client/k3s.pem',
      'edge-1/peer-key.pem',
      'edge-1/peer.pem',
      'edge-1/server-key.pem',
      'edge-1/server.pem',
      'edge-2/peer-key.pem',
      'edge-2/peer.pem',
      'edge-2/server-key.pem',
      'edge-2/server.pem',
      'edge-3/peer-key.pem',
      'edge-3/peer.pem',
      'edge-3/server-key.pem',
      'edge-3/server.pem',
      'index.json',
    ]);
    const leaves = (await listFiles(dir)).filter(
      (f) => f.endsWith('.pem') && !f.endsWith('-key.pem') && f !== 'ca.pem',
    );
    const verify = openssl([
      'verify',
      '-CAfile',
      join(dir, 'ca.pem'),
      ...leaves.map((f) => join(dir, f)),
    ]);
    assert.equal(
      verify
        .trim()
        .split('\n')
        .filter((l) => l.endsWith(': OK')).length,
      leaves.length,
      verify,
    );

    const server1 = openssl(['x509', '-in', join(dir, 'edge-1/server.pem'), '-noout', '-text']);
    assert.match(
      server1,
      /IP Address:10\.10\.3\.104, DNS:edge-1, DNS:etcd-1\.site\.lan, IP Address:127\.0\.0\.1, DNS:localhost/,
    );
    assert.match(server1, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(server1, /ASN1 OID: prime256v1/);
    assert.match(
      openssl(['x509', '-in', join(dir, 'edge-3/peer.pem'), '-noout', '-ext', 'subjectAltName']),
      /IP Address:FD00:0:0:0:0:0:0:7/,
    );
    const k3s = openssl(['x509', '-in', join(dir, 'client/k3s.pem'), '-noout', '-text']);
    assert.match(k3s, /Subject: CN ?= ?k3s/);
    assert.match(k3s, /TLS Web Client Authentication/);
    assert.doesNotMatch(k3s, /TLS Web Server Authentication/);
    const ca = openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']);
    assert.match(ca, /CA:TRUE/);
    assert.match(ca, /Certificate Sign, CRL Sign/);
    const days = (s: string) => Math.round((Date.parse(s) - Date.now()) / 86_400_000);
    assert.equal(
      days(openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-enddate']).split('=')[1]!),
      3650,
    );
    assert.equal(
      days(
        openssl(['x509', '-in', join(dir, 'client/admin.pem'), '-noout', '-enddate']).split(
          '=',
        )[1]!,
      ),
      1825,
    );
    const serial = openssl(['x509', '-in', join(dir, 'edge-2/server.pem'), '-noout', '-serial'])
      .trim()
      .split('=')[1]!;
    assert.equal(serial.length, 32, '128-bit serial');

    for (const f of await listFiles(dir)) {
      const mode = (await stat(join(dir, f))).mode & 0o777;
      assert.equal(mode, f.endsWith('-key.pem') ? 0o600 : 0o644, f);
    }
    const index = await readIndex(dir);
    assert.equal(index?.entries.length, 9);
    const e = index?.entries.find((x) => x.path === 'edge-1/server.pem');
    assert.deepEqual(e?.sans, [
      '10.10.3.104',
      'edge-1',
      'etcd-1.site.lan',
      '127.0.0.1',
      'localhost',
    ]);
    const fp = openssl([
      'x509',
      '-in',
      join(dir, 'edge-1/server.pem'),
      '-noout',
      '-fingerprint',
      '-sha256',
    ])
      .trim()
      .split('=')[1];
    assert.equal(e?.sha256, fp);
    assert.equal(result.written.length, 18);
  });

  it('P-384 and RSA 2048 sets verify too', async () => {
    for (const [algorithm, oid] of [
      ['ecdsa-p384', /ASN1 OID: secp384r1/],
      ['rsa-2048', /Public-Key: \(2048 bit\)/],
    ] as const) {
      const dir = await tempDir();
      await generateCertificateSet(cluster(dir, [host('m', '127.0.1.9')], { algorithm }));
      assert.match(
        openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'm/server.pem')]),
        /OK/,
      );
      assert.match(openssl(['x509', '-in', join(dir, 'm/server.pem'), '-noout', '-text']), oid);
    }
  });

  it('a second run keeps the CA and current leaves; a new member only adds its own pair', async () => {
    const dir = await tempDir();
    await generateCertificateSet(cluster(dir, [host('a', '10.0.0.1')]));
    const caBefore = await readFile(join(dir, 'ca.pem'), 'utf8');
    const aBefore = await readFile(join(dir, 'a/server.pem'), 'utf8');
    const second = await generateCertificateSet(
      cluster(dir, [host('a', '10.0.0.1'), host('b', '10.0.0.2')]),
      { confirmReplace: async () => assert.fail('nothing should be replaced') },
    );
    assert.deepEqual(second.written.sort(), [
      'b/peer-key.pem',
      'b/peer.pem',
      'b/server-key.pem',
      'b/server.pem',
    ]);
    assert.equal(await readFile(join(dir, 'ca.pem'), 'utf8'), caBefore);
    assert.equal(await readFile(join(dir, 'a/server.pem'), 'utf8'), aBefore);
  });
});

describe('certificate set: a real etcd with mutual TLS', () => {
  it('3 members start with our server and peer certificates; etcdctl and our client connect as admin; another CA is refused', async () => {
    const dir = await tempDir();
    const { etcd } = await etcdWithOurCerts(dir, 3, { track });
    const health = await etcdctl(etcd, ['endpoint', 'health'], {
      tls: admin(dir),
      endpoints: etcd.endpoints,
    });
    assert.equal(health.code, 0, health.stderr);
    assert.equal(
      (health.stdout + health.stderr).match(/is healthy/g)?.length,
      3,
      health.stdout + health.stderr,
    );

    const members = await listMembers(etcd.endpoints, { tls: admin(dir) });
    assert.deepEqual(members.map((m) => m.name).sort(), ['m-1', 'm-2', 'm-3']);
    assert.deepEqual(members.map((m) => m.clientUrls[0]).sort(), [...etcd.endpoints].sort());

    const other = await tempDir();
    await generateCertificateSet(cluster(other, [host('x', '127.0.0.1')]));
    const foreign = await etcdctl(
      etcd,
      ['--dial-timeout=2s', '--command-timeout=3s', 'endpoint', 'health'],
      {
        tls: {
          caFile: join(dir, 'ca.pem'),
          certFile: join(other, 'client/admin.pem'),
          keyFile: join(other, 'client/admin-key.pem'),
        },
        endpoints: [etcd.endpoints[0]!],
        timeoutMs: 15000,
      },
    );
    assert.notEqual(foreign.code, 0, 'a client certificate from another CA must be refused');
    assert.match(
      foreign.stdout + foreign.stderr,
      /bad certificate|unknown authority|unhealthy|deadline/i,
    );
    await assert.rejects(
      listMembers([etcd.endpoints[0]!], {
        tls: {
          caFile: join(dir, 'ca.pem'),
          certFile: join(other, 'client/admin.pem'),
          keyFile: join(other, 'client/admin-key.pem'),
        },
        timeoutMs: 3000,
      }),
      /No etcd endpoint answered/,
    );
  });

  it('an address missing from the SANs fails TLS; re-issue with it makes it work without restarting etcd', async () => {
    const dir = await tempDir();
    const extra = (a: string) => a.replace(/^127\.0\.1\./, '127.0.3.');
    const { etcd, cluster: c } = await etcdWithOurCerts(dir, 1, { extraClientIp: extra, track });
    const m = etcd.members[0]!;
    assert.ok(m.extraClientUrl);
    const before = await etcdctl(
      etcd,
      ['--dial-timeout=2s', '--command-timeout=3s', 'endpoint', 'health'],
      { tls: admin(dir), endpoints: [m.extraClientUrl], timeoutMs: 15000 },
    );
    assert.notEqual(
      before.code,
      0,
      'etcdctl must fail by an address the certificate does not name',
    );
    await assert.rejects(
      listMembers([m.extraClientUrl], { tls: admin(dir), timeoutMs: 3000 }),
      /TLS name mismatch: the server certificate of 127\.0\.3\.\d+:\d+ does not name 127\.0\.3\.\d+ \(it names 127\.0\.1\.\d+, 127\.0\.0\.1\)/,
    );

    const result = await reissueMember(c, 'm-1', [extra(m.address)], yes);
    assert.deepEqual(result.written.sort(), [
      'm-1/peer-key.pem',
      'm-1/peer.pem',
      'm-1/server-key.pem',
      'm-1/server.pem',
    ]);
    const afterReissue = await etcdctl(etcd, ['endpoint', 'health'], {
      tls: admin(dir),
      endpoints: [m.extraClientUrl],
      timeoutMs: 15000,
    });
    assert.equal(afterReissue.code, 0, afterReissue.stderr);
    assert.doesNotThrow(() => process.kill(m.pid, 0), 'the member kept running (not restarted)');
    const members = await listMembers([m.extraClientUrl], { tls: admin(dir) });
    assert.deepEqual(
      members.map((x) => x.name),
      ['m-1'],
    );
  });

  it('a CA made with openssl (RSA) is imported and issues a set etcd accepts', async () => {
    const src = await tempDir();
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(src, 'ca-key.pem'),
      '-out',
      join(src, 'ca.pem'),
      '-days',
      '365',
      '-subj',
      '/CN=openssl CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const dir = await tempDir();
    const { etcd } = await etcdWithOurCerts(dir, 1, {
      track,
      names: ['r-1'],
      pki: { algorithm: 'rsa-2048' },
      beforeGenerate: (c) => importCa(c, join(src, 'ca.pem'), join(src, 'ca-key.pem')),
    });
    const health = await etcdctl(etcd, ['endpoint', 'health'], {
      tls: admin(dir),
      endpoints: etcd.endpoints,
    });
    assert.equal(health.code, 0, health.stderr);
    assert.match(
      openssl(['x509', '-in', join(dir, 'r-1/server.pem'), '-noout', '-issuer']),
      /CN ?= ?openssl CA/,
    );
  });
});

describe('importing a CA', () => {
  it('an openssl ECDSA CA with an encrypted key: asks the passphrase, refuses a wrong one, then issues a verifying set', async () => {
    const src = await tempDir();
    openssl([
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-aes256',
      '-pass',
      'pass:s3cret',
      '-out',
      join(src, 'ca-key.pem'),
    ]);
    openssl([
      'req',
      '-x509',
      '-key',
      join(src, 'ca-key.pem'),
      '-passin',
      'pass:s3cret',
      '-out',
      join(src, 'ca.pem'),
      '-days',
      '365',
      '-subj',
      '/CN=ec CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const dir = await tempDir();
    const c = cluster(dir, [host('e', '10.0.0.5')]);
    await assert.rejects(
      importCa(c, join(src, 'ca.pem'), join(src, 'ca-key.pem')),
      (e: unknown) => e instanceof PkiError && e.code === 'passphrase-required',
    );
    await assert.rejects(
      importCa(c, join(src, 'ca.pem'), join(src, 'ca-key.pem'), { passphrase: 'nope' }),
      (e: unknown) =>
        e instanceof PkiError &&
        e.code === 'passphrase-wrong' &&
        /wrong passphrase/.test(e.message),
    );
    await assert.rejects(stat(join(dir, 'ca.pem')), 'nothing written after a failed import');

    await importCa(c, join(src, 'ca.pem'), join(src, 'ca-key.pem'), { passphrase: 's3cret' });
    assert.match(
      await readFile(join(dir, 'ca-key.pem'), 'utf8'),
      /ENCRYPTED PRIVATE KEY/,
      'the key stays encrypted',
    );
    const asked: boolean[] = [];
    await generateCertificateSet(c, {
      askPassphrase: async (_label, retry) => {
        asked.push(retry);
        return retry ? 's3cret' : 'wrong';
      },
    });
    assert.deepEqual(asked, [false, true], 'asked again after a wrong passphrase');
    assert.match(
      openssl([
        'verify',
        '-CAfile',
        join(dir, 'ca.pem'),
        join(dir, 'e/server.pem'),
        join(dir, 'client/k3s.pem'),
      ]),
      /k3s\.pem: OK/,
    );
  });

  it('a mismatched key and certificate are reported before anything is written', async () => {
    const a = await tempDir();
    const b = await tempDir();
    await generateCertificateSet(cluster(a, [host('x', '10.0.0.1')]));
    await generateCertificateSet(cluster(b, [host('x', '10.0.0.1')]));
    const dir = await tempDir();
    await assert.rejects(
      importCa(cluster(dir, [host('x', '10.0.0.1')]), join(a, 'ca.pem'), join(b, 'ca-key.pem')),
      (e: unknown) =>
        e instanceof PkiError && e.code === 'key-mismatch' && /does not belong to/.test(e.message),
    );
    assert.deepEqual(await listFiles(dir), []);
    // The same inside a pki folder: generation refuses before writing a single leaf.
    await writeFile(join(a, 'ca-key.pem'), await readFile(join(b, 'ca-key.pem')));
    const before = await listFiles(a);
    await assert.rejects(
      generateCertificateSet(cluster(a, [host('x', '10.0.0.1'), host('y', '10.0.0.2')])),
      (e: unknown) => e instanceof PkiError && e.code === 'key-mismatch',
    );
    assert.deepEqual(await listFiles(a), before);
  });
});

describe('certificates: bad input gets a clear message and loses nothing', () => {
  it('not a CA, expired CA, unknown algorithm, invalid SAN, name clash', async () => {
    const dir = await tempDir();
    await generateCertificateSet(cluster(dir, [host('x', '10.0.0.1')]));
    const target = await tempDir();
    await assert.rejects(
      importCa(
        cluster(target, [host('x', '10.0.0.1')]),
        join(dir, 'x/server.pem'),
        join(dir, 'x/server-key.pem'),
      ),
      /not a CA certificate \(no basicConstraints CA:true\)/,
    );

    const old = await tempDir();
    const past = new Date(Date.now() - 3 * 86_400_000);
    await generateCertificateSet(
      cluster(old, [host('x', '10.0.0.1')], { caValidityDays: 1, leafValidityDays: 1 }),
      { now: past },
    );
    await assert.rejects(
      generateCertificateSet(cluster(old, [host('x', '10.0.0.1')])),
      /expired on .*create or import a new CA/,
    );

    await assert.rejects(
      planCertificateSet(cluster(await tempDir(), [host('x', '10.0.0.1')]), {
        defaultAlgorithm: 'dsa-1024',
      }),
      /unknown key algorithm "dsa-1024" \(expected one of: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-4096\)/,
    );
    await assert.rejects(
      reissueMember(cluster(dir, [host('x', '10.0.0.1')]), 'x', ['bad host!'], yes),
      /"bad host!" is not an IP address or hostname/,
    );
    await assert.rejects(
      reissueMember(cluster(dir, [host('x', '10.0.0.1')]), 'nobody', [], yes),
      /no etcd member "nobody" in cluster edge-t \(members: x\)/,
    );
    await assert.rejects(
      planCertificateSet(cluster(await tempDir(), [host('client', '10.0.0.1')])),
      /clashes with the client certificate folder/,
    );
  });

  it('an unreadable CA key is named as such and nothing is written', async () => {
    const dir = await tempDir();
    await generateCertificateSet(cluster(dir, [host('x', '10.0.0.1')]));
    await writeFile(
      join(dir, 'ca-key.pem'),
      '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n',
    );
    const before = await listFiles(dir);
    await assert.rejects(
      generateCertificateSet(cluster(dir, [host('x', '10.0.0.1'), host('y', '10.0.0.2')])),
      /ca-key\.pem is not a readable private key/,
    );
    assert.deepEqual(await listFiles(dir), before);
  });

  it('a folder that cannot be written: nothing half-written, no temporaries left', async () => {
    const base = await tempDir();
    await writeFile(join(base, 'blocker'), 'a file where a folder should be');
    const dir = join(base, 'blocker', 'pki');
    await assert.rejects(
      generateCertificateSet(cluster(dir, [host('x', '10.0.0.1')])),
      (e: unknown) =>
        e instanceof PkiError && e.code === 'not-writable' && /Nothing was written/.test(e.message),
    );
    assert.deepEqual(await listFiles(base), ['blocker']);

    // A failure part-way through putting files in place (a folder stands where a key goes) leaves the folder as it was.
    const dir2 = await tempDir();
    await mkdir(join(dir2, 'client', 'k3s-key.pem'), { recursive: true });
    const before = await listFiles(dir2);
    await assert.rejects(generateCertificateSet(cluster(dir2, [host('x', '10.0.0.1')])));
    assert.deepEqual(await listFiles(dir2), before);
  });

  it('replacing stale certificates needs a yes that names the files; a no writes nothing', async () => {
    const dir = await tempDir();
    await generateCertificateSet(cluster(dir, [host('x', '10.0.0.1')]));
    const before = await readFile(join(dir, 'x/server.pem'), 'utf8');
    let asked: string[] = [];
    await assert.rejects(
      generateCertificateSet(cluster(dir, [host('x', '10.0.0.9')]), {
        confirmReplace: async (files, reasons) => {
          asked = [...files, ...reasons];
          return false;
        },
      }),
      /Nothing was written: replacing 4 existing file\(s\) was not confirmed/,
    );
    assert.ok(
      asked.includes(join(dir, 'x/server.pem')) && asked.includes(join(dir, 'x/server-key.pem')),
      asked.join('\n'),
    );
    assert.ok(
      asked.some((r) => /SANs differ \(\+10\.0\.0\.9, -10\.0\.0\.1\)/.test(r)),
      asked.join('\n'),
    );
    assert.equal(await readFile(join(dir, 'x/server.pem'), 'utf8'), before);
    await generateCertificateSet(cluster(dir, [host('x', '10.0.0.9')]), yes);
    assert.match(
      openssl(['x509', '-in', join(dir, 'x/server.pem'), '-noout', '-ext', 'subjectAltName']),
      /IP Address:10\.0\.0\.9/,
    );
  });

  it("the article's 50 years is accepted with a warning", async () => {
    const dir = await tempDir();
    const r = await generateCertificateSet(
      cluster(dir, [host('x', '10.0.0.1')], { caValidityDays: 18250, leafValidityDays: 18250 }),
    );
    assert.ok(
      r.plan.warnings.some((w) => /valid for 50 years/.test(w)),
      r.plan.warnings.join('\n'),
    );
    assert.match(
      openssl(['x509', '-in', join(dir, 'x/server.pem'), '-noout', '-enddate']),
      /207\d/,
    );
  });

  it('an encrypted CA key without a way to ask for the passphrase is a clear error', async () => {
    const src = await tempDir();
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-passout',
      'pass:pw',
      '-keyout',
      join(src, 'k.pem'),
      '-out',
      join(src, 'c.pem'),
      '-days',
      '30',
      '-subj',
      '/CN=c',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
    ]);
    const dir = await tempDir();
    await importCa(cluster(dir, [host('x', '10.0.0.1')]), join(src, 'c.pem'), join(src, 'k.pem'), {
      passphrase: 'pw',
    });
    await assert.rejects(
      generateCertificateSet(cluster(dir, [host('x', '10.0.0.1')])),
      /ca-key\.pem is encrypted: its passphrase is needed/,
    );
    const r = spawnSync(
      'openssl',
      ['pkey', '-in', join(dir, 'ca-key.pem'), '-passin', 'pass:pw', '-noout'],
      { encoding: 'utf8' },
    );
    assert.equal(
      r.status,
      0,
      'the imported key is the original, still readable with its passphrase',
    );
  });
});
