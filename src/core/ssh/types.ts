/**
 * What the SSH transport is given and gives back: the prompts it asks a person through (the
 * editor's input boxes and SecretStorage, or the CLI's terminal), the options of a connection and
 * of a command, and the error every SSH failure is worded as.
 */
import type { Readable, Writable } from 'node:stream';
import { K3sEtcdError, type SshErrorCode } from '../errors';
import type { SshHop } from './target';

export interface SecretRequest {
  kind: 'passphrase' | 'password' | 'sudo';
  /**
   * Stable id to store it under (and the only one to read a stored value by):
   * `passphrase:<key file>` for a local key file; for a secret sent to a host,
   * `password:` or `sudo:` + `<user@host:port> <SHA256 fingerprint of its verified host key>`
   * (`hostSecretId`), so a stored secret only ever goes back to the host key it was first
   * used with, never to another host that answers to the same name.
   */
  id: string;
  /** Whose secret, for messages: the key file, or `user@host:port`. */
  subject: string;
  /** For a secret sent to a host: the verified SHA256 fingerprint of that host's key. */
  hostKey?: string;
  /** What to show the person ("Passphrase for /home/me/.ssh/id_ed25519"). */
  prompt: string;
  /** 1 for the first ask; more after a wrong answer. */
  attempt: number;
}

/**
 * The id a password or sudo password is stored under: the user, the name *and* the verified
 * host key, so an inventory that routes the same name to another host (another jump host, a
 * workspace known_hosts pinning another key) finds nothing stored and the person is asked.
 */
export function hostSecretId(
  kind: 'password' | 'sudo',
  hop: Pick<SshHop, 'user' | 'hostName' | 'port'>,
  hostKey: string,
): string {
  return `${kind}:${hop.user}@${hop.hostName}:${hop.port} ${hostKey}`;
}

export interface UnknownHostKey {
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
  /** Where the key is recorded on acceptance. */
  knownHostsFile: string;
}

/** How the transport asks the person (editor: input boxes and SecretStorage; CLI: the terminal). */
export interface SshPrompts {
  /** A secret, or undefined to give up on this method. */
  secret(req: SecretRequest): Promise<string | undefined>;
  /** Told whether a secret worked (store it if the person agreed) or not (forget it). */
  secretResult?(req: SecretRequest, ok: boolean, value: string): void | Promise<void>;
  /** An unknown host key: true to trust it and record it in known_hosts. */
  unknownHostKey(info: UnknownHostKey): Promise<boolean>;
}

export interface ConnectOptions {
  prompts: SshPrompts;
  signal?: AbortSignal;
  /** Deadline for TCP connect + handshake + authentication, not counting time spent in prompts. */
  timeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** ssh-agent socket; defaults to SSH_AUTH_SOCK. Empty string: no agent. */
  agentSocket?: string;
  /** Debug lines (never secrets). */
  log?: (line: string) => void;
}

export interface ExecOptions {
  /** Run as root: directly when the user is root, else through sudo. */
  sudo?: boolean;
  signal?: AbortSignal;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  /** Streamed to the command's stdin with backpressure (after `stdin`), then stdin is closed. */
  stdinStream?: Readable;
  /**
   * The command's stdout as bytes, streamed here with backpressure instead of being collected
   * (`stdout` is then empty). Not ended: the caller ends it after the command.
   */
  stdoutStream?: Writable;
}

export interface ExecResult {
  code: number;
  /** Set when the remote command was killed by a signal. */
  signal?: string;
  stdout: string;
  stderr: string;
}

/** How an upload reports its bytes and is stopped. */
export interface TransferOptions {
  signal?: AbortSignal;
  onBytes?(sent: number, total: number): void;
}

export interface PutOptions {
  mode: number;
  owner?: string;
  group?: string;
  signal?: AbortSignal;
}

export function sshError(code: SshErrorCode, message: string, cause?: unknown): K3sEtcdError {
  return new K3sEtcdError(code, message, cause === undefined ? undefined : { cause });
}
