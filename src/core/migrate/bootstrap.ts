/**
 * K3s's `/bootstrap/<hash>` key: its CAs, keys and secrets encrypted with the server token
 * (K3s: pkg/cluster/encrypt.go). The key name is the first 12 hex characters of the SHA-256 of
 * the token's password; the value is `<salt>:<base64(nonce | AES-256-GCM ciphertext | tag)>`
 * with the AES key derived by PBKDF2-SHA1 (4096 rounds, 32 bytes) from the password and the
 * salt text. Migrated with another token than the one K3s will start with, K3s refuses to start
 * ("bootstrap data already found and encrypted with different token").
 */
import { createDecipheriv, createHash, pbkdf2Sync } from 'node:crypto';
import { K3sEtcdError } from '../errors';
import { tokenSecret } from '../k3sHost/token';
import type { KineRow } from './kine';

export function bootstrapKeyFor(token: string): string {
  return `/bootstrap/${createHash('sha256').update(tokenSecret(token)).digest('hex').slice(0, 12)}`;
}

/** Decrypts a bootstrap value with `token`; throws when the token is not the one it was sealed with. */
export function decryptBootstrap(token: string, value: Uint8Array): Buffer {
  const text = Buffer.from(value).toString('latin1');
  const colon = text.indexOf(':');
  if (colon < 0) throw new Error('not salt:ciphertext');
  const key = pbkdf2Sync(tokenSecret(token), text.slice(0, colon), 4096, 32, 'sha1');
  const sealed = Buffer.from(text.slice(colon + 1), 'base64');
  const nonce = sealed.subarray(0, 12);
  const tag = sealed.subarray(sealed.byteLength - 16);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAuthTag(tag);
  return Buffer.concat([
    decipher.update(sealed.subarray(12, sealed.byteLength - 16)),
    decipher.final(),
  ]);
}

export interface TokenCheck {
  /** The bootstrap key this token names. */
  key: string;
  /** Whether the state holds it (and it decrypts). */
  found: boolean;
  note: string;
}

/** Refuses a token the state was not sealed with; explains what K3s would do. */
export function checkToken(rows: readonly KineRow[], token: string): TokenCheck {
  const key = bootstrapKeyFor(token);
  const present = rows.filter((r) => r.name.startsWith('/bootstrap/'));
  const mine = present.find((r) => r.name === key);
  if (!mine) {
    if (present.length > 0) {
      throw new K3sEtcdError(
        'migrate-token',
        `The state's bootstrap data (${present.map((r) => r.name).join(', ')}) was sealed with another token than the one given (it names ${key}). Migrated with this token, K3s would refuse to start ("bootstrap data already found and encrypted with different token"). Give the token of the server that wrote this state (its /var/lib/rancher/k3s/server/token, kept in the backup). Nothing was written.`,
      );
    }
    return {
      key,
      found: false,
      note: `no /bootstrap key in the state: K3s writes ${key} from the certificates on the server's disk when it starts`,
    };
  }
  try {
    const plain = decryptBootstrap(token, mine.value);
    JSON.parse(plain.toString('utf8'));
  } catch (err) {
    throw new K3sEtcdError(
      'migrate-token',
      `${key} is in the state but does not decrypt with the token given (${(err as Error).message || 'authentication failed'}): K3s would refuse to start with it. Nothing was written.`,
      { cause: err },
    );
  }
  return { key, found: true, note: `${key} decrypts with the token: K3s keeps its CAs and keys` };
}
