/** Typed errors of the certificate core; messages say what is wrong and what to do. */
import { K3sEtcdError } from '../errors';

export type PkiErrorCode =
  | 'unknown-algorithm'
  | 'invalid-san'
  | 'passphrase-required'
  | 'passphrase-wrong'
  | 'key-unreadable'
  | 'key-mismatch'
  | 'not-a-ca'
  | 'ca-expired'
  | 'ca-incomplete'
  | 'not-writable'
  | 'unknown-member'
  | 'name-clash'
  | 'declined';

export class PkiError extends K3sEtcdError {
  declare readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'PkiError';
  }
}
