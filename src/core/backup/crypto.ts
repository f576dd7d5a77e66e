/**
 * The backups' encryption on this side: the recipients' public keys checked (RSA, 3072 bits or
 * more), a key pair made for the person (`backup keygen`: the private key never in the
 * workspace), and a backup decrypted as a stream (a multi-gigabyte snapshot never sits in
 * memory) with the plain snapshot's SHA-256 computed on the way. The format is openssl's, so a
 * backup can be restored with openssl alone (see the README):
 *   passphrase = RSA-OAEP-SHA256-decrypt(record.recipients[i].key)
 *   snapshot   = gunzip(openssl enc -d -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -pass file:…)
 */
import {
  createDecipheriv,
  createCipheriv,
  createHash,
  createPublicKey,
  generateKeyPair,
  pbkdf2Sync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  constants,
  type KeyObject,
} from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { K3sEtcdError } from '../errors';
import { PBKDF2_ITERATIONS, type BackupRecord, type WrappedKey } from './record';

export interface Recipient {
  pem: string;
  fingerprint: string;
  bits: number;
}

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;

/** SHA-256 of a public key's SPKI DER, hex (what the host computes with openssl pkey | sha256sum). */
export function fingerprintOf(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Every PEM public key of a recipients file, checked: RSA of 3072 bits or more. */
export function parseRecipients(text: string, file: string): Recipient[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0)
    throw new K3sEtcdError(
      'usage',
      `${file} holds no PEM public key (-----BEGIN PUBLIC KEY-----): make a pair with \`k3s-etcd backup keygen\`, or add yours (openssl pkey -pubout).`,
    );
  return blocks.map((pem, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (err) {
      throw new K3sEtcdError('usage', `${file}, key ${i + 1}: not a public key (${String(err)})`);
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== 'rsa' || bits < 3072)
      throw new K3sEtcdError(
        'usage',
        `${file}, key ${i + 1}: an RSA key of 3072 bits or more is needed (this one is ${key.asymmetricKeyType ?? 'unknown'}${bits ? ` of ${bits} bits` : ''}): openssl pkeyutl wraps the backup's passphrase with RSA-OAEP`,
      );
    return { pem: `${pem}\n`, fingerprint: fingerprintOf(key), bits };
  });
}

export async function readRecipients(file: string): Promise<Recipient[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new K3sEtcdError(
      'usage',
      `${file} (backup.encryption.recipientsFile) cannot be read: make a pair with \`k3s-etcd backup keygen\`.`,
    );
  }
  return parseRecipients(text, file);
}

/**
 * A new RSA-4096 pair: the private key's PEM (for the person to keep) and the public one. Made on
 * libuv's thread pool: the search for primes takes about a second, which would freeze the
 * extension host (every extension of the window) if it ran on the main thread.
 */
export async function makeKeyPair(): Promise<{
  privatePem: string;
  publicPem: string;
  fingerprint: string;
}> {
  const { privateKey, publicKey } = await new Promise<{
    privateKey: KeyObject;
    publicKey: KeyObject;
  }>((done, fail) =>
    generateKeyPair('rsa', { modulusLength: 4096 }, (err, publicKey, privateKey) =>
      err ? fail(err) : done({ privateKey, publicKey }),
    ),
  );
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: fingerprintOf(publicKey),
  };
}

const OAEP = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' } as const;

/** The passphrase of `record`, unwrapped with a private key that matches one of its recipients. */
export function unwrapPassphrase(record: BackupRecord, privatePem: string): Buffer {
  const pub = createPublicKey(privatePem);
  const fp = fingerprintOf(pub);
  const mine = record.recipients.find((r) => r.fingerprint === fp);
  if (!mine)
    throw new K3sEtcdError(
      'usage',
      `this private key (public key ${fp.slice(0, 16)}…) is none of the backup's recipients (${record.recipients.map((r) => `${r.fingerprint.slice(0, 16)}…`).join(', ')})`,
    );
  return privateDecrypt({ key: privatePem, ...OAEP }, Buffer.from(mine.key, 'base64'));
}

/** Wraps `passphrase` for each recipient (the host does the same with openssl pkeyutl). */
export function wrapPassphrase(passphrase: Buffer, recipients: readonly Recipient[]): WrappedKey[] {
  return recipients.map((r) => ({
    fingerprint: r.fingerprint,
    key: publicEncrypt({ key: r.pem, ...OAEP }, passphrase).toString('base64'),
  }));
}

function keyIv(passphrase: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  const b = pbkdf2Sync(passphrase, salt, PBKDF2_ITERATIONS, 48, 'sha256');
  return { key: b.subarray(0, 32), iv: b.subarray(32, 48) };
}

/** Strips openssl's `Salted__` + 8-byte salt header and decrypts the rest with its key. */
function opensslDecipher(passphrase: Buffer): Transform {
  let head = Buffer.alloc(0);
  let decipher: ReturnType<typeof createDecipheriv> | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (!decipher) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 16) return done();
        if (head.subarray(0, 8).toString('latin1') !== 'Salted__')
          return done(new K3sEtcdError('usage', 'not an openssl enc file (no Salted__ header)'));
        const { key, iv } = keyIv(passphrase, head.subarray(8, 16));
        decipher = createDecipheriv('aes-256-ctr', key, iv);
        chunk = head.subarray(16);
      }
      done(null, decipher.update(chunk));
    },
    flush(done) {
      if (!decipher) return done(new K3sEtcdError('usage', 'the encrypted file is truncated'));
      done(null, decipher.final());
    },
  });
}

/** A pass-through that hashes and counts what goes by. */
function hashing(): Transform & { sha256(): string; bytes(): number } {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      n += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { sha256(): string; bytes(): number };
  let digest: string | undefined;
  t.sha256 = () => (digest ??= h.digest('hex'));
  t.bytes = () => n;
  return t;
}

/**
 * Decrypts backup `encrypted` into `out` (the plain snapshot), streaming; checks the plain
 * SHA-256 and size against the record and throws, naming both, when they differ.
 */
export async function decryptBackup(
  encrypted: string,
  out: string,
  record: BackupRecord,
  privatePem: string,
): Promise<{ sha256: string; size: number }> {
  const pass = unwrapPassphrase(record, privatePem);
  const seen = hashing();
  try {
    await pipeline(
      createReadStream(encrypted),
      opensslDecipher(pass),
      createGunzip(),
      seen,
      createWriteStream(out, { mode: 0o600 }),
    );
  } catch (err) {
    if (err instanceof K3sEtcdError) throw err;
    throw new K3sEtcdError(
      'usage',
      `${encrypted} does not decrypt to a snapshot (${(err as Error).message}): the backup is damaged, or it was not made for this key`,
    );
  }
  const got = { sha256: seen.sha256(), size: seen.bytes() };
  if (got.sha256 !== record.sha256 || got.size !== record.size)
    throw new K3sEtcdError(
      'usage',
      `${encrypted} decrypts to ${got.size} bytes with SHA-256 ${got.sha256}, but its record says ${record.size} bytes, ${record.sha256}: the backup is damaged`,
    );
  return got;
}

/**
 * Encrypts `plain` as the host does (tests and fixtures; the hosts use openssl): returns the
 * parts of the record that depend on the encryption.
 */
export async function encryptBackup(
  plain: string,
  out: string,
  recipients: readonly Recipient[],
): Promise<Pick<BackupRecord, 'recipients' | 'encryptedSha256' | 'encryptedSize'>> {
  const pass = Buffer.from(randomBytes(32).toString('hex'));
  const salt = randomBytes(8);
  const { key, iv } = keyIv(pass, salt);
  const seen = hashing();
  const header = Buffer.concat([Buffer.from('Salted__', 'latin1'), salt]);
  let first = true;
  const prefix = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (first) {
        first = false;
        return done(null, Buffer.concat([header, chunk]));
      }
      done(null, chunk);
    },
    flush(done) {
      if (first) this.push(header);
      done();
    },
  });
  await pipeline(
    createReadStream(plain),
    createGzip(),
    createCipheriv('aes-256-ctr', key, iv),
    prefix,
    seen,
    createWriteStream(out, { mode: 0o600 }),
  );
  return {
    recipients: wrapPassphrase(pass, recipients),
    encryptedSha256: seen.sha256(),
    encryptedSize: seen.bytes(),
  };
}
