/**
 * A backup as the host timer leaves it: `<cluster>-<UTC stamp>.db.gz.enc` (the snapshot,
 * gzipped, encrypted with `openssl enc -aes-256-ctr -pbkdf2`) beside `<same>.json`, its record:
 * when and where it was taken, the snapshot's revision, key count, size and SHA-256 (of the
 * plain snapshot: what a restore checks), the ciphertext's SHA-256 (what a copy is checked
 * against without any key), and the random passphrase wrapped for each recipient with RSA-OAEP
 * (SHA-256). Records come from hosts and buckets, so they are parsed as hostile input here.
 */

export const BACKUP_FORMAT = 'k3s-etcd-backup/1';
/** openssl enc's PBKDF2 iterations for the (random, 256-bit) passphrase. */
export const PBKDF2_ITERATIONS = 10_000;

export interface WrappedKey {
  /** SHA-256 of the recipient's public key (SPKI DER), hex. */
  fingerprint: string;
  /** base64 of RSA-OAEP-SHA256(passphrase). */
  key: string;
}

export interface BackupRecord {
  format: typeof BACKUP_FORMAT;
  cluster: string;
  /** The host that took it, and the member it was saved from. */
  host: string;
  member: string;
  /** ISO 8601, UTC. */
  takenAt: string;
  revision: number;
  keys: number;
  /** The plain snapshot's size and SHA-256. */
  size: number;
  sha256: string;
  /** The encrypted file's name, size and SHA-256. */
  file: string;
  encryptedSize: number;
  encryptedSha256: string;
  recipients: WrappedKey[];
}

const HEX64 = /^[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const BACKUP_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}-\d{8}T\d{6}Z\.db\.gz\.enc$/;
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** The record in `text`, or why it is not one (every field checked, nothing else kept). */
export function parseBackupRecord(text: string): BackupRecord | { problem: string } {
  if (text.length > 64 * 1024) return { problem: 'the record is over 64 KiB' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: 'the record is not JSON' };
  }
  if (!v || typeof v !== 'object') return { problem: 'the record is not an object' };
  const r = v as Record<string, unknown>;
  const bad = (field: string) => ({ problem: `the record's ${field} is missing or malformed` });
  if (r['format'] !== BACKUP_FORMAT) return bad('format');
  for (const f of ['cluster', 'host', 'member'] as const)
    if (typeof r[f] !== 'string' || !NAME.test(r[f])) return bad(f);
  if (typeof r['takenAt'] !== 'string' || !STAMP.test(r['takenAt'])) return bad('takenAt');
  for (const f of ['revision', 'keys', 'size', 'encryptedSize'] as const)
    if (!Number.isSafeInteger(r[f]) || (r[f] as number) < 0) return bad(f);
  for (const f of ['sha256', 'encryptedSha256'] as const)
    if (typeof r[f] !== 'string' || !HEX64.test(r[f])) return bad(f);
  if (typeof r['file'] !== 'string' || !BACKUP_FILE.test(r['file'])) return bad('file');
  const recipients = r['recipients'];
  if (
    !Array.isArray(recipients) ||
    recipients.length === 0 ||
    recipients.length > 32 ||
    !recipients.every(
      (x: unknown) =>
        !!x &&
        typeof x === 'object' &&
        HEX64.test(String((x as WrappedKey).fingerprint)) &&
        /^[A-Za-z0-9+/=]{16,2048}$/.test(String((x as WrappedKey).key)),
    )
  )
    return bad('recipients');
  return {
    format: BACKUP_FORMAT,
    cluster: r['cluster'] as string,
    host: r['host'] as string,
    member: r['member'] as string,
    takenAt: r['takenAt'] as string,
    revision: r['revision'] as number,
    keys: r['keys'] as number,
    size: r['size'] as number,
    sha256: r['sha256'] as string,
    file: r['file'] as string,
    encryptedSize: r['encryptedSize'] as number,
    encryptedSha256: r['encryptedSha256'] as string,
    recipients: (recipients as WrappedKey[]).map((x) => ({
      fingerprint: x.fingerprint,
      key: x.key,
    })),
  };
}

export const isRecord = (r: BackupRecord | { problem: string }): r is BackupRecord =>
  !('problem' in r);
