/**
 * When the certificate an etcd member served can be trusted without Node's verifier: the one
 * narrow case our own PKI makes (and cfssl's, and kubeadm's), a server certificate issued
 * directly by one of the cluster's CA certificates. Node builds its whole public root store
 * (about 140 certificates, parsed and copied) before it verifies against a private CA, which
 * is most of a one-shot command's TLS cost; this check needs none of it.
 *
 * It only ever says yes. Everything it does not fully understand (an intermediate CA, a name
 * constraint, SHA-1 or RSA-PSS, a weak key, an unknown critical extension, a Netscape type)
 * returns false, and the caller verifies the usual way, so what is refused is refused by Node
 * with Node's words. Yes means all of:
 * - the leaf is signed by an anchor whose subject is the leaf's issuer (OpenSSL's
 *   `X509_check_issued`: names, key identifiers, the anchor's keyCertSign), with a strong
 *   algorithm, and the anchor is a CA (basicConstraints CA:TRUE);
 * - the leaf and the anchor are both within their validity;
 * - the leaf may serve TLS (extended key usage serverAuth when it lists usages; key usage
 *   digitalSignature, keyEncipherment or keyAgreement when it has one), as OpenSSL's
 *   `ssl_server` purpose requires, and the anchor lists serverAuth when it lists usages;
 * - the leaf names the host dialled, by Node's own `checkServerIdentity` (IP SANs for an IP).
 * The TLS handshake itself has proven the peer holds the leaf's private key.
 */
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  netscapeCertType: '2.16.840.1.113730.1.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};

/** Extensions a certificate may mark critical and still pass (the others: Node decides). */
const UNDERSTOOD_CRITICAL = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
]);

/** ECDSA and RSA PKCS#1 v1.5 with SHA-2, and Ed25519. */
const STRONG_SIGNATURES = new Set([
  '1.2.840.10045.4.3.2',
  '1.2.840.10045.4.3.3',
  '1.2.840.10045.4.3.4',
  '1.2.840.113549.1.1.11',
  '1.2.840.113549.1.1.12',
  '1.2.840.113549.1.1.13',
  '1.3.101.112',
]);
const STRONG_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** Key usage bits (RFC 5280 4.2.1.3; bit 0 is the first byte's top bit). */
const KU = { digitalSignature: 0x80, keyEncipherment: 0x20, keyAgreement: 0x08, keyCertSign: 0x04 };

export interface Extension {
  oid: string;
  critical: boolean;
  /** The extnValue's contents (the DER inside the OCTET STRING). */
  value: Buffer;
}

export interface CertFacts {
  signatureOid: string;
  extensions: Extension[];
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

/** One DER element at `at` (definite lengths only, as DER requires). */
function tlv(b: Buffer, at: number, limit = b.length): Tlv {
  if (at + 2 > limit) throw new Error('DER: truncated');
  const tag = b[at]!;
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
  }
  if (p + len > limit) throw new Error('DER: truncated');
  return { tag, start: p, end: p + len };
}

function children(b: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const t = tlv(b, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function oidText(b: Buffer, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new Error('DER: OID expected');
  const ids: number[] = [];
  let n = 0;
  for (let i = t.start; i < t.end; i++) {
    n = n * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) {
      ids.push(n);
      n = 0;
    }
  }
  const first = ids[0]!;
  const arc = Math.min(2, Math.floor(first / 40));
  return [arc, first - 40 * arc, ...ids.slice(1)].join('.');
}

/** The signature algorithm and extensions of a certificate's DER. */
export function certFacts(der: Buffer): CertFacts {
  const [tbs, sigAlg] = children(der, tlv(der, 0));
  if (!tbs || !sigAlg) throw new Error('DER: not a certificate');
  const signatureOid = oidText(der, children(der, sigAlg)[0]!);
  const extensions: Extension[] = [];
  for (const field of children(der, tbs)) {
    if (field.tag !== 0xa3) continue; // [3] extensions
    const list = children(der, field)[0];
    if (!list) break;
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      const oid = oidText(der, parts[0]!);
      const critical = parts.length === 3 && parts[1]!.tag === 0x01 && der[parts[1]!.start] !== 0;
      const value = parts[parts.length - 1]!;
      if (value.tag !== 0x04) throw new Error('DER: extension value expected');
      extensions.push({ oid, critical, value: der.subarray(value.start, value.end) });
    }
  }
  return { signatureOid, extensions };
}

/** The first byte of key usage bits, or undefined when the certificate has none. */
function keyUsageBits(facts: CertFacts): number | undefined {
  const ext = facts.extensions.find((e) => e.oid === OID.keyUsage);
  if (!ext) return undefined;
  const bits = tlv(ext.value, 0);
  if (bits.tag !== 0x03) throw new Error('DER: key usage is not a BIT STRING');
  return bits.end - bits.start >= 2 ? ext.value[bits.start + 1]! : 0;
}

function strongKey(cert: X509Certificate): boolean {
  const key = cert.publicKey;
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return STRONG_CURVES.has(d.namedCurve ?? '');
  if (key.asymmetricKeyType === 'rsa') return (d.modulusLength ?? 0) >= 2048;
  return key.asymmetricKeyType === 'ed25519';
}

function within(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/** Nothing this check does not understand, and a strong signature and key. */
function plain(cert: X509Certificate, facts: CertFacts): boolean {
  return (
    STRONG_SIGNATURES.has(facts.signatureOid) &&
    strongKey(cert) &&
    facts.extensions.every(
      (e) =>
        (!e.critical || UNDERSTOOD_CRITICAL.has(e.oid)) &&
        e.oid !== OID.nameConstraints &&
        e.oid !== OID.netscapeCertType,
    )
  );
}

function serverAuthAllowed(cert: X509Certificate): boolean {
  const eku = cert.keyUsage as string[] | undefined;
  return eku === undefined || eku.includes(OID.serverAuth);
}

function anchorFits(leaf: X509Certificate, anchor: X509Certificate, now: number): boolean {
  const facts = certFacts(anchor.raw);
  const ku = keyUsageBits(facts);
  return (
    anchor.ca &&
    plain(anchor, facts) &&
    (ku === undefined || (ku & KU.keyCertSign) !== 0) &&
    serverAuthAllowed(anchor) &&
    within(anchor, now) &&
    leaf.checkIssued(anchor) &&
    leaf.verify(anchor.publicKey)
  );
}

/**
 * True when `leaf` (and `peer`, the same certificate as the TLS socket gives it) may be
 * trusted as `host`'s etcd server by the rules above; false means "let Node decide".
 */
export function trustsDirectly(
  leaf: X509Certificate,
  peer: PeerCertificate,
  host: string,
  anchors: readonly X509Certificate[],
  now = Date.now(),
): boolean {
  try {
    const facts = certFacts(leaf.raw);
    const ku = keyUsageBits(facts);
    const tlsUsage = KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement;
    return (
      plain(leaf, facts) &&
      (ku === undefined || (ku & tlsUsage) !== 0) &&
      serverAuthAllowed(leaf) &&
      within(leaf, now) &&
      anchors.some((a) => anchorFits(leaf, a, now)) &&
      checkServerIdentity(host, peer) === undefined
    );
  } catch {
    return false;
  }
}

/** The certificates of a PEM bundle (a CA file may hold several); unreadable ones left out. */
export function pemCertificates(pem: Buffer | string): X509Certificate[] {
  const blocks =
    pem.toString().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      // Node's verifier reads the file too; it words what is wrong with it.
    }
  }
  return out;
}
