/**
 * Key pairs on Node's WebCrypto, and reading existing private keys in every PEM form cfssl,
 * openssl and K3s write (PKCS#8, SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY", encrypted).
 * Key material is returned to the caller only; nothing here logs it.
 */
import { createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import type { KeyAlgorithm } from '../inventory/types';
import { PkiError } from '../errors';

export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = [
  'ecdsa-p256',
  'ecdsa-p384',
  'rsa-2048',
  'rsa-4096',
];

type KeyParams = webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;

export function keyParams(alg: KeyAlgorithm): KeyParams {
  switch (alg) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'ecdsa-p384':
      return { name: 'ECDSA', namedCurve: 'P-384' };
    case 'rsa-2048':
    case 'rsa-4096':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: alg === 'rsa-2048' ? 2048 : 4096,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
  }
}

export function parseAlgorithm(value: string): KeyAlgorithm {
  if ((KEY_ALGORITHMS as readonly string[]).includes(value)) return value as KeyAlgorithm;
  throw new PkiError(
    'unknown-algorithm',
    `unknown key algorithm "${value}" (expected one of: ${KEY_ALGORITHMS.join(', ')})`,
  );
}

/** The signature algorithm a key signs with: SHA-384 for P-384, SHA-256 otherwise. */
export function signingAlgorithm(key: CryptoKey): webcrypto.Algorithm | webcrypto.EcdsaParams {
  const alg = key.algorithm as webcrypto.EcKeyAlgorithm | webcrypto.RsaHashedKeyAlgorithm;
  if (alg.name === 'ECDSA')
    return {
      name: 'ECDSA',
      hash: (alg as webcrypto.EcKeyAlgorithm).namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256',
    };
  return { name: 'RSASSA-PKCS1-v1_5' };
}

export async function generateKeyPair(alg: KeyAlgorithm): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(keyParams(alg), true, ['sign', 'verify']);
}

function pem(tag: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString(
    'base64',
  );
  return `-----BEGIN ${tag}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${tag}-----\n`;
}

/** PKCS#8 PEM (`BEGIN PRIVATE KEY`), which etcd and K3s read. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/**
 * `pem` (an unencrypted private key) as encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`,
 * PBES2 with AES-256-CBC), which openssl, cfssl's tools and `loadPrivateKey` read back.
 */
export function encryptPrivateKeyPem(pem: string, passphrase: string): string {
  return createPrivateKey({ key: pem, format: 'pem' })
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    .toString();
}

export function isEncryptedPem(text: string): boolean {
  return (
    /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text) || /Proc-Type:\s*4,ENCRYPTED/.test(text)
  );
}

export interface LoadedKey {
  keyObject: KeyObject;
  /** For signing with WebCrypto. */
  signingKey: CryptoKey;
}

/**
 * Reads a private key in any common PEM form. An encrypted key needs `passphrase`: without one
 * the error code is `passphrase-required`, with a wrong one `passphrase-wrong`.
 */
export async function loadPrivateKey(
  text: string,
  label: string,
  passphrase?: string,
): Promise<LoadedKey> {
  const encrypted = isEncryptedPem(text);
  if (encrypted && passphrase === undefined) {
    throw new PkiError('passphrase-required', `${label} is encrypted: its passphrase is needed`);
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(
      encrypted
        ? { key: text, format: 'pem', passphrase: passphrase ?? '' }
        : { key: text, format: 'pem' },
    );
  } catch (err) {
    if (encrypted)
      throw new PkiError('passphrase-wrong', `wrong passphrase for ${label}`, { cause: err });
    throw new PkiError(
      'key-unreadable',
      `${label} is not a readable private key (PEM, PKCS#8, SEC1 or PKCS#1 expected)`,
      { cause: err },
    );
  }
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  let params: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const namedCurve =
      curve === 'prime256v1'
        ? 'P-256'
        : curve === 'secp384r1'
          ? 'P-384'
          : curve === 'secp521r1'
            ? 'P-521'
            : undefined;
    if (!namedCurve)
      throw new PkiError(
        'key-unreadable',
        `${label} uses the curve ${curve ?? '?'}, which cannot sign here (P-256, P-384, P-521)`,
      );
    params = { name: 'ECDSA', namedCurve };
  } else if (keyObject.asymmetricKeyType === 'rsa') {
    params = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new PkiError(
      'key-unreadable',
      `${label} is a ${keyObject.asymmetricKeyType ?? 'unknown'} key; ECDSA or RSA expected`,
    );
  }
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, params, false, ['sign']);
  return { keyObject, signingKey };
}

export type { CryptoKey, CryptoKeyPair };
