/**
 * Issues the CA and leaf certificates with @peculiar/x509 on WebCrypto (node-forge cannot make
 * ECDSA certificates). Random 128-bit serials; SANs, key usages and extended key usages as
 * etcd's mutual TLS needs them.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import type { KeyAlgorithm } from '../inventory/types';
import { exportPrivateKeyPem, generateKeyPair, signingAlgorithm, type CryptoKey } from './keys';

function loadX509(): typeof X509 {
  // A separate bundle (dist/x509.js) that is only loaded when certificates are issued.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./x509Vendor') as typeof X509;
}

export type ExtendedUsage = 'serverAuth' | 'clientAuth';

export interface IssuedPair {
  certPem: string;
  keyPem: string;
}

export interface Issuer {
  certPem: string;
  signingKey: CryptoKey;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** A positive, non-zero 128-bit serial number, hex. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10;
  return bytes.toString('hex');
}

function escapeDn(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1');
}

export function distinguishedName(cn: string, org = 'k3s-etcd'): string {
  return `CN=${escapeDn(cn)}, O=${escapeDn(org)}`;
}

export async function createCa(
  name: string,
  alg: KeyAlgorithm,
  validity: Validity,
): Promise<IssuedPair> {
  const x509 = loadX509();
  const keys = await generateKeyPair(alg);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: distinguishedName(name),
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    keys,
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign |
          x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

export interface LeafRequest {
  cn: string;
  /** IP addresses and DNS names; empty for client certificates. */
  sans: string[];
  usages: ExtendedUsage[];
  algorithm: KeyAlgorithm;
  validity: Validity;
}

export async function issueLeaf(req: LeafRequest, issuer: Issuer): Promise<IssuedPair> {
  const x509 = loadX509();
  const keys = await generateKeyPair(req.algorithm);
  const caCert = new x509.X509Certificate(issuer.certPem);
  const isRsa = keys.privateKey.algorithm.name !== 'ECDSA';
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension(
      req.usages.map((u) =>
        u === 'serverAuth' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
      ),
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (req.sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        req.sans.map((v) => ({ type: isIP(v) ? ('ip' as const) : ('dns' as const), value: v })),
        false,
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: distinguishedName(req.cn),
    // The CA's subject exactly as it is encoded, not re-encoded from text: Go (etcd) finds a
    // certificate's issuer by comparing these bytes, and openssl-made CAs use other string types.
    issuer: caCert.subjectName,
    notBefore: req.validity.notBefore,
    notAfter: req.validity.notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer.signingKey,
    signingAlgorithm: signingAlgorithm(issuer.signingKey),
    extensions,
  });
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}
