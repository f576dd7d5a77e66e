/**
 * Host-key trust: the known_hosts files a target is checked against (the workspace file first,
 * then the user's own), the order host key algorithms are asked in, and the verifier ssh2 calls
 * with the key a host offers: a known key is accepted, a changed, conflicting or revoked one
 * refused with what to do, an unknown one shown to the person and, if accepted, recorded.
 * Never "accept any key".
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errorMessage, type K3sEtcdError } from '../errors';
import type { Deadline } from './deadline';
import { judgeHostKey, knownHostsLine, sha256Fingerprint, type KnownHostsText } from './knownHosts';
import { shellQuote } from './quote';
import type { SshHop, SshTarget } from './target';
import { sshError, type SshPrompts } from './types';

const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** The key type named at the start of an SSH public key blob. */
export function keyTypeOfBlob(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** The target's known_hosts files with their text: the workspace file (if any) first, then the user's own. */
export async function readKnownHosts(target: SshTarget): Promise<KnownHostsText[]> {
  const ws = target.workspaceKnownHostsFile;
  const files = [
    ...(ws && !target.knownHostsFiles.includes(ws) ? [{ file: ws, own: false }] : []),
    ...target.knownHostsFiles.map((file) => ({ file, own: true })),
  ];
  return Promise.all(
    files.map(async (f) => ({ ...f, text: await readFile(f.file, 'utf8').catch(() => '') })),
  );
}

/** Host key algorithms with the ones already known for this host first, as OpenSSH orders them. */
export function hostKeyOrder(knownTypes: string[]): string[] {
  const preferred = knownTypes.flatMap((t) =>
    t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t],
  );
  return [...new Set([...preferred, ...HOST_KEY_ALGORITHMS])];
}

export function hostKeyName(hop: SshHop): string {
  return hop.port === 22 ? hop.hostName : `[${hop.hostName}]:${hop.port}`;
}

/** The verifier of one hop's host key, and what it found. */
export interface HostKeyCheck {
  /** ssh2's `hostVerifier`. */
  verifier(blob: Buffer, verify: (ok: boolean) => void): void;
  /** Why the key was refused, once it was. */
  readonly failure: K3sEtcdError | undefined;
  /** The fingerprint of the host key once verified: secrets for the host are bound to it. */
  readonly verifiedKey: string | undefined;
}

/**
 * Checks the key `hop` offers against `known`; an unknown key is shown to the person (with the
 * connection deadline stopped) and, when accepted, recorded in `recordIn`.
 */
export function hostKeyCheck(
  hop: SshHop,
  known: KnownHostsText[],
  recordIn: string,
  opts: { prompts: SshPrompts; log?: (line: string) => void },
  deadline: Deadline,
): HostKeyCheck {
  const state: { failure: K3sEtcdError | undefined; verifiedKey: string | undefined } = {
    failure: undefined,
    verifiedKey: undefined,
  };
  const verifier = (blob: Buffer, verify: (ok: boolean) => void) => {
    const keyType = keyTypeOfBlob(blob);
    const key = blob.toString('base64');
    const verdict = judgeHostKey(known, hop.hostName, hop.port, keyType, key);
    const fingerprint = sha256Fingerprint(key);
    const removeOld = (file: string) =>
      `\`ssh-keygen -R ${shellQuote(hostKeyName(hop))} -f ${shellQuote(file)}\``;
    if (verdict.status === 'match') {
      state.verifiedKey = fingerprint;
      return verify(true);
    }
    if (verdict.status === 'revoked') {
      state.failure = sshError(
        'ssh-host-key-revoked',
        `The host key of ${hostKeyName(hop)} (${keyType} ${fingerprint}) is marked @revoked in ${verdict.file} line ${verdict.line}: refusing to connect.`,
      );
      return verify(false);
    }
    if (verdict.status === 'conflict') {
      state.failure = sshError(
        'ssh-host-key-changed',
        `Refusing to connect to ${hostKeyName(hop)}: it offers ${keyType} ${fingerprint}, which the workspace file ${verdict.file} (line ${verdict.line}, the cluster's knownHostsFile) pins, but your own ${verdict.ownFile} (line ${verdict.ownLines.join(', ')}) knows this host with another key. A workspace known_hosts file may add hosts, never replace a key you trust: check the inventory's knownHostsFile and proxyJump (they route this name to another machine), and remove that line from ${verdict.file}. Only if you know the host was reinstalled, remove its old key with ${removeOld(verdict.ownFile)} and connect again.`,
      );
      return verify(false);
    }
    if (verdict.status === 'changed') {
      state.failure = sshError(
        'ssh-host-key-changed',
        `The host key of ${hostKeyName(hop)} has CHANGED: it now offers ${keyType} ${fingerprint}, which does not match ${verdict.file} line ${verdict.lines.join(', ')}. Someone may be intercepting the connection, or the host was reinstalled. If you know it was reinstalled, remove the old key with ${removeOld(verdict.file)} and connect again.`,
      );
      return verify(false);
    }
    const file = recordIn;
    void deadline
      .paused(() =>
        opts.prompts.unknownHostKey({
          host: hop.hostName,
          port: hop.port,
          keyType,
          fingerprint,
          knownHostsFile: file,
        }),
      )
      .then(async (ok) => {
        if (!ok) {
          state.failure = sshError(
            'ssh-host-key-unknown',
            `The host key of ${hostKeyName(hop)} (${keyType} ${fingerprint}) is not known and was not accepted. Compare the fingerprint with \`ssh-keygen -lf /etc/ssh/ssh_host_${keyType.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub\` on the host, then accept it (CLI: --accept-new-host-keys).`,
          );
          return verify(false);
        }
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        const before = await readFile(file, 'utf8').catch(() => '');
        await appendFile(
          file,
          `${before && !before.endsWith('\n') ? '\n' : ''}${knownHostsLine(hop.hostName, hop.port, keyType, key, randomBytes(20))}\n`,
          { mode: 0o600 },
        );
        opts.log?.(`recorded ${keyType} ${fingerprint} for ${hostKeyName(hop)} in ${file}`);
        state.verifiedKey = fingerprint;
        verify(true);
      })
      .catch((err: unknown) => {
        state.failure = sshError(
          'ssh-host-key-unknown',
          `Cannot record the host key of ${hostKeyName(hop)} in ${file}: ${errorMessage(err)}`,
          err,
        );
        verify(false);
      });
  };
  return {
    verifier,
    get failure() {
      return state.failure;
    },
    get verifiedKey() {
      return state.verifiedKey;
    },
  };
}
