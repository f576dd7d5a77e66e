/**
 * Typed errors of the core. Every error a user can see carries a `code` so the editor layer and
 * the CLI can word and route it, and a message that says what failed and what to do.
 */
import type { PkiErrorCode } from './pki/errors';

export type ErrorCode =
  | PkiErrorCode
  | 'inventory-missing'
  | 'inventory-invalid'
  | 'cluster-unknown'
  | 'cluster-ambiguous'
  | 'etcd-unreachable'
  | 'cancelled'
  | 'usage'
  | 'certs-missing';

export class K3sEtcdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'K3sEtcdError';
  }
}

/** Raised when the user cancels; callers stay silent about it. */
export class CancelledError extends K3sEtcdError {
  constructor(what = 'Operation') {
    super('cancelled', `${what} cancelled.`);
    this.name = 'CancelledError';
  }
}

export function isCancelled(err: unknown): boolean {
  return err instanceof CancelledError || (err instanceof Error && err.name === 'AbortError');
}

export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
