/**
 * Authentication in OpenSSH's order: the order is data (`authOrder`, then up to
 * `PASSWORD_ATTEMPTS` password or keyboard-interactive answers), and `authHandler` walks it for
 * ssh2: agent keys, identity files (a passphrase asked at most three times), then a password,
 * never sent to a host whose key was not verified. A secret that worked is reported as good
 * once the connection is ready; a refused password is forgotten before the next try.
 */
import { readFile } from 'node:fs/promises';
import type { AnyAuthMethod, AuthenticationType, ParsedKey } from 'ssh2';
import type { Deadline } from './deadline';
import { describeHop, type SshHop } from './target';
import { hostSecretId, type SecretRequest, type SshPrompts } from './types';

/** One way to authenticate, tried in the order `authOrder` lists them. */
export type AuthCandidate =
  | { kind: 'agent'; needs: 'publickey'; socket: string }
  | { kind: 'identity'; needs: 'publickey'; path: string; explicit: boolean };

/** How often a password (or keyboard-interactive answer) is asked before giving up. */
export const PASSWORD_ATTEMPTS = 3;

/** How often a key file's passphrase is asked before that file is skipped. */
export const PASSPHRASE_ATTEMPTS = 3;

/**
 * The key-based candidates in OpenSSH's order: the agent (when there is a socket), then each
 * identity file of the hop. Passwords come after them (`passwordMethod`).
 */
export function authOrder(
  hop: Pick<SshHop, 'identityFiles'>,
  agentSocket: string,
): AuthCandidate[] {
  return [
    ...(agentSocket ? [{ kind: 'agent', needs: 'publickey', socket: agentSocket } as const] : []),
    ...hop.identityFiles.map(
      ({ path, explicit }) => ({ kind: 'identity', needs: 'publickey', path, explicit }) as const,
    ),
  ];
}

/** The password method a server that still allows `methodsLeft` takes, if any. */
export function passwordMethod(
  methodsLeft: readonly string[],
): 'password' | 'keyboard-interactive' | undefined {
  if (methodsLeft.includes('password')) return 'password';
  if (methodsLeft.includes('keyboard-interactive')) return 'keyboard-interactive';
  return undefined;
}

/** What authentication tried, what the server allows, and the secrets waiting for a verdict. */
export interface AuthState {
  tried: string[];
  allowed: string[];
  pending: { req: SecretRequest; value: string }[];
}

export interface AuthContext {
  hop: SshHop;
  agentSocket: string;
  prompts: SshPrompts;
  /** The connection deadline: stopped while a person answers. */
  deadline: Deadline;
  /** The verified host key's fingerprint, once verified. */
  verifiedKey(): string | undefined;
  /** ssh2's key parser. */
  parseKey(data: Buffer, passphrase?: string): ParsedKey | Error;
  /** An unexpected failure of the handler. */
  fail(err: Error): void;
}

/** The method of one candidate, or undefined to skip it. */
async function candidateMethod(
  c: AuthCandidate,
  ctx: AuthContext,
  auth: AuthState,
): Promise<AnyAuthMethod | undefined> {
  const { hop } = ctx;
  if (c.kind === 'agent') {
    auth.tried.push(`ssh-agent (${c.socket})`);
    return { type: 'agent', username: hop.user, agent: c.socket };
  }
  const { path, explicit } = c;
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch {
    if (explicit) auth.tried.push(`${path} (file not found)`);
    return undefined;
  }
  let parsed = ctx.parseKey(data);
  if (!(parsed instanceof Error)) {
    auth.tried.push(path);
    return { type: 'publickey', username: hop.user, key: data };
  }
  if (!/passphrase/i.test(parsed.message)) {
    auth.tried.push(`${path} (unreadable: ${parsed.message})`);
    return undefined;
  }
  for (let attempt = 1; attempt <= PASSPHRASE_ATTEMPTS; attempt++) {
    const req: SecretRequest = {
      kind: 'passphrase',
      id: `passphrase:${path}`,
      subject: path,
      prompt: `Passphrase for ${path}`,
      attempt,
    };
    const pass = await ctx.deadline.paused(() => ctx.prompts.secret(req));
    if (pass === undefined) {
      auth.tried.push(`${path} (passphrase not given)`);
      return undefined;
    }
    parsed = ctx.parseKey(data, pass);
    if (!(parsed instanceof Error)) {
      auth.tried.push(path);
      auth.pending.push({ req, value: pass });
      return { type: 'publickey', username: hop.user, key: data, passphrase: pass };
    }
    await ctx.prompts.secretResult?.(req, false, pass);
  }
  auth.tried.push(`${path} (wrong passphrase)`);
  return undefined;
}

/** A password (or keyboard-interactive answer), or undefined when none is given. */
async function passwordAuth(
  attempt: number,
  keyboard: boolean,
  ctx: AuthContext,
  auth: AuthState,
): Promise<AnyAuthMethod | undefined> {
  const { hop } = ctx;
  // Never a password to a host whose key was not verified (ssh2 verifies before auth).
  const verifiedKey = ctx.verifiedKey();
  if (verifiedKey === undefined) return undefined;
  const req: SecretRequest = {
    kind: 'password',
    id: hostSecretId('password', hop, verifiedKey),
    subject: describeHop(hop),
    hostKey: verifiedKey,
    prompt: `Password for ${describeHop(hop)}`,
    attempt,
  };
  const pw = await ctx.deadline.paused(() => ctx.prompts.secret(req));
  if (pw === undefined) return undefined;
  auth.tried.push(keyboard ? 'keyboard-interactive' : 'password');
  auth.pending.push({ req, value: pw });
  if (!keyboard) return { type: 'password', username: hop.user, password: pw };
  return {
    type: 'keyboard-interactive',
    username: hop.user,
    prompt: (_n, _i, _l, prompts, finish) => finish(prompts.map(() => pw)),
  };
}

/** ssh2's `authHandler` over `authOrder`, and the state it keeps for messages. */
export function authHandler(ctx: AuthContext): {
  handler: (
    methodsLeft: AuthenticationType[] | null,
    partial: boolean | null,
    next: (m: AnyAuthMethod | false | AuthenticationType) => void,
  ) => void;
  auth: AuthState;
} {
  const auth: AuthState = { tried: [], allowed: [], pending: [] };
  const candidates = authOrder(ctx.hop, ctx.agentSocket);
  let passwordAttempts = 0;
  const handler = (
    methodsLeft: AuthenticationType[] | null,
    _partial: boolean | null,
    next: (m: AnyAuthMethod | false | AuthenticationType) => void,
  ) => {
    if (methodsLeft === null) return next('none');
    auth.allowed = methodsLeft;
    // A failed password: forget it before the next try.
    const failed = auth.pending.filter((p) => p.req.kind === 'password');
    for (const p of failed) void ctx.prompts.secretResult?.(p.req, false, p.value);
    auth.pending = auth.pending.filter((p) => p.req.kind !== 'password');
    void (async () => {
      while (candidates.length > 0) {
        const c = candidates.shift();
        if (!c || !methodsLeft.includes(c.needs)) continue;
        const m = await candidateMethod(c, ctx, auth);
        if (m) return next(m);
      }
      const method = passwordMethod(methodsLeft);
      if (passwordAttempts < PASSWORD_ATTEMPTS && method) {
        passwordAttempts++;
        const m = await passwordAuth(
          passwordAttempts,
          method === 'keyboard-interactive',
          ctx,
          auth,
        );
        if (m) return next(m);
      }
      next(false);
    })().catch((err: unknown) => ctx.fail(err instanceof Error ? err : new Error(String(err))));
  };
  return { handler, auth };
}
