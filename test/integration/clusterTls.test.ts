/**
 * Our HTTP/2 clients trust the cluster's CA and nothing else, whether the member's certificate
 * is accepted by directTrust.ts (no root store built) or by Node's verifier: a TLS server on
 * loopback presents each kind of certificate and requires our client certificate, and the
 * client either gets its answer or is refused with the words `k3s-etcd` shows (name mismatch,
 * unknown authority, expired, wrong purpose, outside the CA's name constraints). Certificates
 * from our own generator and, for what it does not make (an intermediate CA, name constraints),
 * from openssl.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { promisify } from 'node:util';
import { ClusterTls } from '../../src/core/etcd/clusterTls';
import { classifyEtcdError } from '../../src/core/etcd/problems';
import { openRpc } from '../../src/core/etcd/rpc';
import { loadPrivateKey } from '../../src/core/pki/keys';
import { createCa, issueLeaf, type Issuer, type IssuedPair } from '../../src/core/pki/issue';
import { testScope } from './harness/tlsCluster';

const run = promisify(execFile);
const { tempDir } = testScope('k3s-etcd-clustertls-');
const DAY = 86_400_000;
const now = Date.now();
const valid = { notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) };

let dir = '';
let ca: IssuedPair;
let issuer: Issuer;
let client: IssuedPair;
const servers: Http2SecureServer[] = [];

async function asIssuer(pair: IssuedPair): Promise<Issuer> {
  return {
    certPem: pair.certPem,
    signingKey: (await loadPrivateKey(pair.keyPem, 'ca-key.pem')).signingKey,
  };
}

/** A TLS server on 127.0.0.1 presenting `cert` (and `chain`), requiring a client cert of our CA. */
async function serve(cert: IssuedPair, chain = ''): Promise<string> {
  const server = createSecureServer(
    {
      cert: cert.certPem + chain,
      key: cert.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (_req, res) => res.end('answered'),
  );
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function files(
  name: string,
  caPem: string,
): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const caFile = join(dir, `${name}-ca.pem`);
  const certFile = join(dir, `${name}-client.pem`);
  const keyFile = join(dir, `${name}-client-key.pem`);
  await writeFile(caFile, caPem);
  await writeFile(certFile, client.certPem);
  await writeFile(keyFile, client.keyPem);
  return { caFile, certFile, keyFile };
}

/** GET / through our client: the answer, or the error it failed with. */
async function ask(endpoint: string, caPem = ca.certPem): Promise<{ body?: string; err?: Error }> {
  const tls = await files(`t${servers.length}`, caPem);
  const c = openRpc(endpoint, { timeoutMs: 3000, clusterTls: await ClusterTls.load(tls) });
  try {
    return { body: (await c.get('/')).toString() };
  } catch (err) {
    return { err: err as Error };
  } finally {
    c.close();
  }
}

const leaf = (sans: string[], extra: Partial<Parameters<typeof issueLeaf>[0]> = {}, by = issuer) =>
  issueLeaf(
    {
      cn: 'member',
      sans,
      usages: ['serverAuth', 'clientAuth'],
      algorithm: 'ecdsa-p256',
      validity: valid,
      ...extra,
    },
    by,
  );

before(async () => {
  dir = await tempDir();
  ca = await createCa('cluster-ca', 'ecdsa-p256', {
    notBefore: valid.notBefore,
    notAfter: new Date(now + 365 * DAY),
  });
  issuer = await asIssuer(ca);
  client = await leaf([], { usages: ['clientAuth'] });
});

after(async () => {
  mock.restoreAll();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

describe('cluster TLS: only the cluster CA is trusted, with or without Node verifying', () => {
  it("a member certificate from our generator is accepted without Node's verifier", async () => {
    const spy = mock.method(ClusterTls.prototype, 'verifying');
    const { body, err } = await ask(await serve(await leaf(['127.0.0.1', 'localhost'])));
    assert.equal(err, undefined);
    assert.equal(body, 'answered');
    assert.equal(spy.mock.callCount(), 0, 'no CA context built, no root store copied');
    spy.mock.restore();

    const rsa = await leaf(['127.0.0.1'], { algorithm: 'rsa-2048' });
    assert.equal((await ask(await serve(rsa))).body, 'answered');
  });

  it('a certificate that does not name the address is refused as a name mismatch', async () => {
    const url = await serve(await leaf(['127.0.0.2', 'member.example']));
    const { body, err } = await ask(url);
    assert.equal(body, undefined);
    const p = classifyEtcdError(err, url);
    assert.equal(p.code, 'name-mismatch', err?.message);
    assert.match(p.summary, /does not name 127\.0\.0\.1 \(it names .*127\.0\.0\.2/);
  });

  it('a certificate of another CA, or the right one given the wrong CA file, is an unknown authority', async () => {
    const other = await createCa('other-ca', 'ecdsa-p256', valid);
    const url = await serve(await leaf(['127.0.0.1'], {}, await asIssuer(other)));
    const a = await ask(url);
    assert.equal(classifyEtcdError(a.err, url).code, 'unknown-authority', a.err?.message);

    const right = await serve(await leaf(['127.0.0.1']));
    const b = await ask(right, other.certPem);
    assert.equal(classifyEtcdError(b.err, right).code, 'unknown-authority', b.err?.message);
  });

  it('an expired or not yet valid certificate, and one only for TLS clients, are refused', async () => {
    const expired = await leaf(['127.0.0.1'], {
      validity: { notBefore: new Date(now - 3 * DAY), notAfter: new Date(now - DAY) },
    });
    const e = await ask(await serve(expired));
    assert.match(String(e.err?.message), /certificate has expired/);

    const early = await leaf(['127.0.0.1'], {
      validity: { notBefore: new Date(now + DAY), notAfter: new Date(now + 3 * DAY) },
    });
    const f = await ask(await serve(early));
    assert.match(String(f.err?.message), /certificate is not yet valid/);

    const clientOnly = await leaf(['127.0.0.1'], { usages: ['clientAuth'] });
    const g = await ask(await serve(clientOnly));
    assert.match(String(g.err?.message), /unsuitable certificate purpose/);
  });

  it("an intermediate CA's member certificate is accepted by Node; a name-constrained CA's outside its names is refused", async () => {
    const sh = (args: string[]) => run('openssl', args, { cwd: dir });
    const conf = (name: string, ext: string) =>
      writeFile(join(dir, name), `[req]\ndistinguished_name=dn\n[dn]\n[ext]\n${ext}\n`);
    await conf(
      'inter.cnf',
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid',
    );
    await conf(
      'leaf.cnf',
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid',
    );
    const key = (name: string) =>
      sh(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name]);
    const csr = (k: string, cn: string, out: string) =>
      sh(['req', '-new', '-key', k, '-subj', `/CN=${cn}`, '-out', out]);
    const sign = (req: string, caCert: string, caKey: string, cnf: string, out: string) =>
      sh([
        'x509',
        '-req',
        '-in',
        req,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-set_serial',
        String(Date.now()),
        '-days',
        '2',
        '-extfile',
        cnf,
        '-extensions',
        'ext',
        '-out',
        out,
      ]);

    // Our generator's CA may not sign CAs (pathlen 0): a root of openssl's for this chain.
    await key('root-key.pem');
    await conf(
      'root.cnf',
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash',
    );
    await sh([
      'req',
      '-x509',
      '-new',
      '-key',
      'root-key.pem',
      '-subj',
      '/CN=root',
      '-days',
      '2',
      '-config',
      'root.cnf',
      '-extensions',
      'ext',
      '-out',
      'root.pem',
    ]);
    await key('inter-key.pem');
    await csr('inter-key.pem', 'intermediate', 'inter.csr');
    await sign('inter.csr', 'root.pem', 'root-key.pem', 'inter.cnf', 'inter.pem');
    await key('m-key.pem');
    await csr('m-key.pem', 'member', 'm.csr');
    await sign('m.csr', 'inter.pem', 'inter-key.pem', 'leaf.cnf', 'm.pem');
    const read = (f: string) => readFile(join(dir, f), 'utf8');
    const viaIntermediate = { certPem: await read('m.pem'), keyPem: await read('m-key.pem') };
    const a = await ask(
      await serve(viaIntermediate, await read('inter.pem')),
      await read('root.pem'),
    );
    assert.equal(a.body, 'answered', a.err?.message);

    // A CA that may only issue for 10.0.0.0/8 signs a member certificate for 127.0.0.1.
    await key('nc-key.pem');
    await conf(
      'nc.cnf',
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\nnameConstraints=critical,permitted;IP:10.0.0.0/255.0.0.0',
    );
    await sh([
      'req',
      '-x509',
      '-new',
      '-key',
      'nc-key.pem',
      '-subj',
      '/CN=constrained',
      '-days',
      '2',
      '-config',
      'nc.cnf',
      '-extensions',
      'ext',
      '-out',
      'nc.pem',
    ]);
    await sign('m.csr', 'nc.pem', 'nc-key.pem', 'leaf.cnf', 'm-nc.pem');
    const nc = await read('nc.pem');
    const outside = { certPem: await read('m-nc.pem'), keyPem: await read('m-key.pem') };
    const b = await ask(await serve(outside), nc);
    assert.equal(b.body, undefined, 'a name constraint must hold');
    assert.match(String(b.err?.message), /permitted subtree violation|name constraint/i);
  });
});
