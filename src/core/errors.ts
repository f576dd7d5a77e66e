/**
 * Typed errors of the core, one family: every error a user can see is a `K3sEtcdError` and
 * carries a `code` so the editor layer and the CLI can word and route it, and a message that
 * says what failed and what to do.
 */

export type ErrorCode =
  | PkiErrorCode
  | 'inventory-missing'
  | 'inventory-invalid'
  | 'cluster-unknown'
  | 'cluster-ambiguous'
  | 'etcd-unreachable'
  | 'cancelled'
  | 'usage'
  | 'certs-missing'
  | SshErrorCode
  | ProvisionErrorCode
  | RestoreErrorCode
  | UpgradeErrorCode
  | RecoverErrorCode
  | 'monitoring-refused'
  | K3sErrorCode;

/** Refusals and failures around K3s servers. */
export type K3sErrorCode =
  | 'k3s-not-backed-up'
  | 'k3s-datastore-check'
  | 'k3s-token'
  | 'k3s-backup'
  | 'migrate-source'
  | 'migrate-token'
  | 'migrate-target';

/** Failures of the SSH transport, each worded with what to do. */
export type SshErrorCode =
  | 'ssh-dns'
  | 'ssh-refused'
  | 'ssh-timeout'
  | 'ssh-unreachable'
  | 'ssh-auth'
  | 'ssh-key-file'
  | 'ssh-host-key-unknown'
  | 'ssh-host-key-changed'
  | 'ssh-host-key-revoked'
  | 'ssh-sudo-refused'
  | 'ssh-disconnected'
  | 'ssh-config';

/** Certificate errors (`PkiError`). */
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
  | 'rotation-under-way'
  | 'declined';

/** Failures of a provisioning plan on a host. */
export type ProvisionErrorCode =
  'provision-step-failed' | 'provision-unsupported' | 'provision-refused' | 'provision-unhealthy';

/**
 * Restoring an etcd snapshot onto the hosts: the snapshot does not match its record (nothing
 * touched), refused before any member was stopped, or failed after (the message says where
 * every host stands and where its old data is).
 */
export type RestoreErrorCode = 'snapshot-invalid' | 'restore-refused' | 'restore-failed';

/** Upgrading etcd: refused before anything was touched (the reason says why). */
export type UpgradeErrorCode = 'upgrade-refused';

/**
 * Recovering from quorum loss: refused before anything was touched (quorum still there, no
 * member to recover from, a chosen member behind another), or failed after (the message says
 * where every host stands and where its data is kept).
 */
export type RecoverErrorCode = 'recover-refused' | 'recover-failed';

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

/** Errors of the certificate core; messages say what is wrong and what to do. */
export class PkiError extends K3sEtcdError {
  declare readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'PkiError';
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
