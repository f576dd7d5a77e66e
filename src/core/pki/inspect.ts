/**
 * Reads certificates with Node's own X509Certificate (no dependency): subject, issuer, SANs,
 * usages, validity, fingerprint, CA flag, chain check against a CA and key match.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';

export const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
};

export type ExpiryState = 'valid' | 'expiring' | 'expired' | 'not-yet-valid';

export const EXPIRY_WARNING_DAYS = 30;

export interface CertInfo {
  subject: string;
  issuer: string;
  serial: string;
  sans: string[];
  extendedKeyUsages: string[];
  isCa: boolean;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER, colon-separated hex as openssl prints it. */
  sha256: string;
  keyType: string;
  expiry: ExpiryState;
  daysLeft: number;
}

export function parseCertificate(pem: string): X509Certificate {
  return new X509Certificate(pem);
}

export function expiryOf(
  cert: X509Certificate,
  now: Date,
): { state: ExpiryState; daysLeft: number } {
  const to = new Date(cert.validTo).getTime();
  const from = new Date(cert.validFrom).getTime();
  const daysLeft = Math.floor((to - now.getTime()) / 86_400_000);
  if (now.getTime() < from) return { state: 'not-yet-valid', daysLeft };
  if (now.getTime() >= to) return { state: 'expired', daysLeft };
  return { state: daysLeft < EXPIRY_WARNING_DAYS ? 'expiring' : 'valid', daysLeft };
}

/** `DNS:a, IP Address:1.2.3.4` → `['a', '1.2.3.4']` */
export function sansOf(cert: X509Certificate): string[] {
  if (!cert.subjectAltName) return [];
  return cert.subjectAltName.split(', ').map((s) => s.replace(/^(DNS|IP Address):/, ''));
}

function keyDescription(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec')
    return `ECDSA ${d?.namedCurve === 'prime256v1' ? 'P-256' : d?.namedCurve === 'secp384r1' ? 'P-384' : (d?.namedCurve ?? '?')}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA ${d?.modulusLength ?? '?'}`;
  return key.asymmetricKeyType ?? 'unknown';
}

export function certInfo(cert: X509Certificate, now = new Date()): CertInfo {
  const { state, daysLeft } = expiryOf(cert, now);
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: cert.serialNumber.toLowerCase(),
    sans: sansOf(cert),
    extendedKeyUsages: (cert.keyUsage ?? []).map((oid) => EKU_NAMES[oid] ?? oid),
    isCa: cert.ca,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    sha256: cert.fingerprint256,
    keyType: keyDescription(cert.publicKey),
    expiry: state,
    daysLeft,
  };
}

export function fileSha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Whether `key` is the private half of `cert`'s public key. */
export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  return cert.checkPrivateKey(key);
}
