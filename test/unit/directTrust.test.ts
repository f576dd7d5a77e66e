/**
 * directTrust.ts says yes only to a strong certificate issued directly by the cluster's CA for
 * the host dialled; everything it does not fully understand is left to Node's verifier (false).
 * Certificates made here with @peculiar/x509 (what our generator uses) to vary one thing at a
 * time: the name, the signature hash, the key size, an unknown critical extension, a CA that is
 * not a CA, a damaged certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { before, describe, it } from 'node:test';
import * as x509 from '../../src/core/pki/x509Vendor';
import { certFacts, pemCertificates, trustsDirectly } from '../../src/core/etcd/directTrust';

const DAY = 86_400_000;
const now = Date.now();
const rsa = (bits: number, hash: string) => ({
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: bits,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash,
});
const ec = { name: 'ECDSA', namedCurve: 'P-256' };

interface Made {
  cert: X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

async function makeCa(opts: { isCa?: boolean; alg?: object } = {}): Promise<Made> {
  const alg = opts.alg ?? ec;
  const keys = (await webcrypto.subtle.generateKey(alg as webcrypto.EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=test-ca',
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 10 * DAY),
    keys,
    signingAlgorithm: 'hash' in alg ? alg : { ...alg, hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(opts.isCa ?? true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: new X509Certificate(cert.toString('pem')), keys };
}

async function makeLeaf(
  ca: Made,
  opts: { alg?: object; hash?: string; extra?: x509.Extension[]; ip?: string } = {},
): Promise<X509Certificate> {
  const alg = opts.alg ?? ec;
  const keys = (await webcrypto.subtle.generateKey(alg as webcrypto.EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const caAlg = ca.keys.privateKey.algorithm as { name: string };
  // WebCrypto binds an RSA key to one hash: the CA's key again, bound to the hash asked for.
  const signingKey = opts.hash
    ? await webcrypto.subtle.importKey(
        'pkcs8',
        await webcrypto.subtle.exportKey('pkcs8', ca.keys.privateKey),
        { name: caAlg.name, hash: opts.hash },
        false,
        ['sign'],
      )
    : ca.keys.privateKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=member',
    issuer: new x509.X509Certificate(ca.cert.raw).subjectName,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * DAY),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: { name: caAlg.name, hash: opts.hash ?? 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: opts.ip ?? '127.0.0.1' }]),
      await x509.AuthorityKeyIdentifierExtension.create(new x509.X509Certificate(ca.cert.raw)),
      ...(opts.extra ?? []),
    ],
  });
  return new X509Certificate(cert.toString('pem'));
}

const trusts = (leaf: X509Certificate, ca: Made, host = '127.0.0.1') =>
  trustsDirectly(leaf, leaf.toLegacyObject(), host, [ca.cert]);

let ca: Made;
before(async () => {
  ca = await makeCa();
});

describe('directTrust: only the plain case is accepted without Node', () => {
  it('a P-256 leaf of the CA for the host dialled: yes; for another address, or another CA: no', async () => {
    const leaf = await makeLeaf(ca);
    assert.equal(trusts(leaf, ca), true);
    assert.equal(trusts(leaf, ca, '127.0.0.2'), false);
    assert.equal(trusts(leaf, await makeCa()), false);
    const later = Date.parse(leaf.validTo) + 1000;
    assert.equal(trustsDirectly(leaf, leaf.toLegacyObject(), '127.0.0.1', [ca.cert], later), false);
  });

  it('SHA-1 signatures and RSA keys under 2048 bits go to Node; RSA 2048 with SHA-256 does not', async () => {
    const rsaCa = await makeCa({ alg: rsa(2048, 'SHA-256') });
    assert.equal(trusts(await makeLeaf(rsaCa, { alg: rsa(2048, 'SHA-256') }), rsaCa), true);
    const sha1 = await makeLeaf(rsaCa, { alg: rsa(2048, 'SHA-256'), hash: 'SHA-1' });
    assert.equal(certFacts(sha1.raw).signatureOid, '1.2.840.113549.1.1.5');
    assert.equal(sha1.verify(rsaCa.cert.publicKey), true, 'issued by the CA all the same');
    assert.equal(trusts(sha1, rsaCa), false);
    assert.equal(trusts(await makeLeaf(rsaCa, { alg: rsa(1024, 'SHA-256') }), rsaCa), false);
  });

  it('an unknown critical extension goes to Node; the same extension not critical does not', async () => {
    const ext = (critical: boolean) =>
      new x509.Extension('1.3.6.1.4.1.99999.1', critical, new Uint8Array([0x05, 0x00]));
    assert.equal(trusts(await makeLeaf(ca, { extra: [ext(true)] }), ca), false);
    assert.equal(trusts(await makeLeaf(ca, { extra: [ext(false)] }), ca), true);
  });

  it('an issuer that is not a CA, and a damaged certificate, are no', async () => {
    const notCa = await makeCa({ isCa: false });
    assert.equal(trusts(await makeLeaf(notCa), notCa), false);
    const leaf = await makeLeaf(ca);
    assert.throws(() => certFacts(leaf.raw.subarray(0, 40)), /DER/);
  });

  it('reads the extensions and signature algorithm as openssl names them', async () => {
    const facts = certFacts((await makeLeaf(ca)).raw);
    assert.equal(facts.signatureOid, '1.2.840.10045.4.3.2');
    assert.deepEqual(
      facts.extensions.map((e) => [e.oid, e.critical]),
      [
        ['2.5.29.19', true],
        ['2.5.29.15', true],
        ['2.5.29.37', false],
        ['2.5.29.17', false],
        ['2.5.29.35', false],
      ],
    );
    assert.equal(pemCertificates(`junk\n${ca.cert.toString()}\n${ca.cert.toString()}`).length, 2);
  });
});
