/**
 * Certificate and key files as a host gives them back: hostile input. A certificate file must be
 * one or more CERTIFICATE blocks and nothing but blank lines around them (a CA bundle is several);
 * a key file one unencrypted private-key block. Sizes are bounded before anything is decoded, and
 * what a certificate says (subject, issuer, SANs) is cleaned of control characters and cut short,
 * so it can be printed, put in a table or escaped into Markdown. A key is only ever used to check
 * that it belongs to a certificate: it is never returned, printed or kept.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { EKU_NAMES, sansOf } from '../pki/inspect';

/** The most a deployed certificate or key file may hold (a CA bundle of a few certificates). */
export const MAX_PEM_BYTES = 64 * 1024;
const MAX_BLOCKS = 8;

export interface CertSummary {
  subject: string;
  /** The subject's common name, or the subject when it has none. */
  cn: string;
  issuer: string;
  /** The issuer's common name, or the issuer when it has none. */
  issuerCn: string;
  serial: string;
  sans: string[];
  usages: string[];
  isCa: boolean;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER, colon-separated hex as openssl prints it. */
  sha256: string;
}

export type PemResult<T> = { ok: true; value: T } | { ok: false; problem: string };

const BLOCK = /^-----BEGIN ([A-Z0-9 ]{1,40})-----\n([A-Za-z0-9+/=\n]+)\n-----END \1-----$/;

/** Printable, one line, at most `n` characters. */
export function clean(text: string, n = 200): string {
  const one = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

/** The PEM blocks of `text`, each as its label and DER; anything else than blanks is refused. */
function blocks(text: string): PemResult<Array<{ label: string; der: Buffer }>> {
  if (Buffer.byteLength(text) > MAX_PEM_BYTES)
    return { ok: false, problem: `larger than ${MAX_PEM_BYTES / 1024} KiB` };
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: Array<{ label: string; der: Buffer }> = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!.trim();
    if (line === '') {
      i++;
      continue;
    }
    if (!line.startsWith('-----BEGIN ')) return { ok: false, problem: 'text outside PEM blocks' };
    const end = lines.findIndex((l, j) => j > i && l.trim().startsWith('-----END '));
    if (end < 0) return { ok: false, problem: 'a PEM block without its END line' };
    const block = lines
      .slice(i, end + 1)
      .map((l) => l.trim())
      .join('\n');
    const m = BLOCK.exec(block);
    if (!m) return { ok: false, problem: 'a malformed PEM block' };
    if (out.length === MAX_BLOCKS) return { ok: false, problem: `more than ${MAX_BLOCKS} blocks` };
    out.push({ label: m[1]!, der: Buffer.from(m[2]!.replace(/\n/g, ''), 'base64') });
    i = end + 1;
  }
  if (out.length === 0) return { ok: false, problem: 'empty' };
  return { ok: true, value: out };
}

export function summarize(cert: X509Certificate): CertSummary {
  const subject = clean(cert.subject.replace(/\n/g, ', '));
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  const issuer = clean(cert.issuer.replace(/\n/g, ', '));
  const issuerCn = /(?:^|\n)CN=([^\n]*)/.exec(cert.issuer)?.[1];
  return {
    subject,
    cn: cn !== undefined ? clean(cn, 100) : subject,
    issuer,
    issuerCn: issuerCn !== undefined ? clean(issuerCn, 100) : issuer,
    serial: clean(cert.serialNumber.toLowerCase(), 64),
    sans: sansOf(cert)
      .slice(0, 32)
      .map((s) => clean(s, 100)),
    usages: (cert.keyUsage ?? []).slice(0, 8).map((o) => clean(EKU_NAMES[o] ?? o, 40)),
    isCa: cert.ca,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    sha256: cert.fingerprint256,
  };
}

/** The certificates of a file (a leaf, or a CA bundle), strictly. */
export function parseCertificates(text: string): PemResult<X509Certificate[]> {
  const b = blocks(text);
  if (!b.ok) return b;
  if (b.value.some((x) => x.label !== 'CERTIFICATE'))
    return { ok: false, problem: 'holds something else than certificates' };
  try {
    return { ok: true, value: b.value.map((x) => new X509Certificate(x.der)) };
  } catch {
    return { ok: false, problem: 'a CERTIFICATE block that is not a certificate' };
  }
}

const KEY_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

/**
 * Does the key file hold the private half of `cert`? Says why not in words that never contain
 * the key. The key object lives only inside this call.
 */
export function keyBelongsTo(
  keyText: string,
  cert: X509Certificate,
): 'matches' | 'mismatch' | 'invalid' {
  const b = blocks(keyText);
  // openssl ecparam puts the curve's parameters before the key.
  const keys = b.ok ? b.value.filter((x) => x.label !== 'EC PARAMETERS') : [];
  if (keys.length !== 1 || !KEY_LABELS.has(keys[0]!.label)) return 'invalid';
  const { label, der } = keys[0]!;
  let key: KeyObject;
  try {
    key =
      label === 'PRIVATE KEY'
        ? createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
        : createPrivateKey({
            key: der,
            format: 'der',
            type: label === 'EC PRIVATE KEY' ? 'sec1' : 'pkcs1',
          });
  } catch {
    return 'invalid';
  }
  try {
    return cert.checkPrivateKey(key) ? 'matches' : 'mismatch';
  } catch {
    return 'mismatch';
  } finally {
    der.fill(0);
  }
}
