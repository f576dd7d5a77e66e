/**
 * Becoming root on a host: directly when the SSH user is root, else through sudo without a
 * password, else with the user's sudo password (asked at most three times, bound to the host's
 * verified key, and written to sudo's stdin, never on a command line).
 */
import { shellQuote } from './quote';
import type { SshHop } from './target';
import {
  hostSecretId,
  sshError,
  type ExecOptions,
  type ExecResult,
  type SecretRequest,
  type SshPrompts,
} from './types';

export type SudoMode = 'root' | 'nopasswd' | 'password';

/** How often a sudo password is asked before giving up. */
export const SUDO_ATTEMPTS = 3;

/** `command` as root in `mode`, with the stdin it then needs (the password first). */
export function asRoot(
  mode: SudoMode,
  password: string | undefined,
  command: string,
  stdin: Buffer | undefined,
): { line: string; stdin: Buffer | undefined } {
  if (mode === 'nopasswd') return { line: `sudo -n -- sh -c ${shellQuote(command)}`, stdin };
  if (mode === 'password') {
    // -k: always read the password (from stdin, -S) so it never reaches the command's stdin.
    return {
      line: `sudo -k -S -p '' -- sh -c ${shellQuote(command)}`,
      stdin: Buffer.concat([Buffer.from(`${password ?? ''}\n`), stdin ?? Buffer.alloc(0)]),
    };
  }
  return { line: command, stdin };
}

/** The session sudo is worked out on. */
export interface SudoHost {
  label: string;
  target: SshHop;
  /** The verified SHA256 fingerprint of the host's key (what a sudo password is bound to). */
  hostKey: string;
  prompts: SshPrompts;
  /** Runs a line as the SSH user. */
  run(line: string, stdin: Buffer | undefined, opts: ExecOptions): Promise<ExecResult>;
}

/** Works out how the session becomes root, asking for the sudo password if needed. */
export async function detectSudo(
  h: SudoHost,
  signal?: AbortSignal,
): Promise<{ mode: SudoMode; password?: string }> {
  const id = await h.run('id -u', undefined, signal ? { signal } : {});
  if (id.code === 0 && id.stdout.trim() === '0') return { mode: 'root' };
  const np = await h.run('sudo -n true', undefined, signal ? { signal } : {});
  if (np.code === 0) return { mode: 'nopasswd' };
  if (/not found/i.test(np.stderr)) {
    throw sshError(
      'ssh-sudo-refused',
      `${h.label} is not root and has no sudo: connect as root (user: root in k3s-etcd.yaml) or install sudo on the host.`,
    );
  }
  const notAllowed = (text: string) =>
    /not in the sudoers|not allowed to (run|execute)|may not run sudo/i.test(text);
  if (notAllowed(np.stderr)) {
    throw sshError(
      'ssh-sudo-refused',
      `sudo refused ${h.label}: ${np.stderr.trim()}. Give the user sudo rights on the host, or connect as root.`,
    );
  }
  for (let attempt = 1; attempt <= SUDO_ATTEMPTS; attempt++) {
    const req: SecretRequest = {
      kind: 'sudo',
      id: hostSecretId('sudo', h.target, h.hostKey),
      subject: h.label,
      hostKey: h.hostKey,
      prompt: `sudo password for ${h.label}`,
      attempt,
    };
    const pw = await h.prompts.secret(req);
    if (pw === undefined) {
      throw sshError(
        'ssh-sudo-refused',
        `${h.label} needs a sudo password and none was given: answer the prompt (the CLI asks on a terminal), connect as root, or allow the user password-less sudo.`,
      );
    }
    const check = await h.run(
      "sudo -k -S -p '' true",
      Buffer.from(`${pw}\n`),
      signal ? { signal } : {},
    );
    if (check.code === 0) {
      void h.prompts.secretResult?.(req, true, pw);
      return { mode: 'password', password: pw };
    }
    if (/must have a tty|requiretty/i.test(check.stderr)) {
      throw sshError(
        'ssh-sudo-refused',
        `sudo on ${h.label} requires a terminal (requiretty): allow this user sudo without a tty (Defaults:${h.target.user} !requiretty) or connect as root.`,
      );
    }
    void h.prompts.secretResult?.(req, false, pw);
    if (notAllowed(check.stderr)) {
      throw sshError(
        'ssh-sudo-refused',
        `sudo refused ${h.label}: the user may not run commands as root there. Give it sudo rights, or connect as root.`,
      );
    }
  }
  throw sshError(
    'ssh-sudo-refused',
    `sudo refused the password for ${h.label} three times: check the user's password on the host.`,
  );
}
