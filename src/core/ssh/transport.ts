/**
 * The SSH transport on `ssh2`: connect (jump hosts through `forwardOut`), with the host key
 * verified (`hostKeys.ts`) and authentication in OpenSSH's order (`auth.ts`); the open
 * connection is an `SshSession` (`session.ts`), which runs commands and moves files.
 *
 * ssh2 is loaded lazily from its own bundle (dist/ssh2.js), like etcd3.
 */
import type { Duplex } from 'node:stream';
import type * as Ssh2Module from 'ssh2';
import type { Client } from 'ssh2';
import type { K3sEtcdError } from '../errors';
import { CancelledError } from '../errors';
import { authHandler } from './auth';
import { Deadline } from './deadline';
import { hostKeyCheck, hostKeyOrder, readKnownHosts } from './hostKeys';
import { knownKeyTypes, type KnownHostsText } from './knownHosts';
import { describeHop, type SshHop, type SshTarget } from './target';
import { sshError, type ConnectOptions } from './types';
import { SshSession } from './session';

function loadSsh2(): typeof Ssh2Module {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('ssh2') as typeof Ssh2Module;
}

/** How long a connection may take to be ready when the caller names no timeout (the editor's default too). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

/** Words a connection failure of `hop`. */
function classifyConnectError(
  hop: SshHop,
  err: Error & { code?: string; level?: string },
  timeoutMs: number,
): K3sEtcdError {
  const where = describeHop(hop);
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return sshError(
        'ssh-dns',
        `Cannot resolve ${hop.hostName}: check the host's address in k3s-etcd.yaml (or HostName in ~/.ssh/config) and this machine's DNS.`,
        err,
      );
    case 'ECONNREFUSED':
      return sshError(
        'ssh-refused',
        `${hop.hostName}:${hop.port} refused the connection: sshd is not running there, or listens on another port (the host's port in k3s-etcd.yaml).`,
        err,
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return sshError(
        'ssh-unreachable',
        `${hop.hostName} is unreachable from this machine (${err.code}): check the address and the network route.`,
        err,
      );
    case 'ETIMEDOUT':
      return sshError(
        'ssh-timeout',
        `No answer from ${where} within ${Math.round(timeoutMs / 1000)} s: check the address, the network path and firewalls.`,
        err,
      );
    case 'ECONNRESET':
      return sshError(
        'ssh-disconnected',
        `${where} closed the connection during the handshake (ECONNRESET): sshd may limit connections (MaxStartups) or block this client.`,
        err,
      );
    default:
      return sshError('ssh-disconnected', `SSH to ${where} failed: ${err.message}`, err);
  }
}

async function connectHop(
  hop: SshHop,
  known: KnownHostsText[],
  recordIn: string,
  sock: Duplex | undefined,
  opts: ConnectOptions,
): Promise<{ client: Client; hostKey: string }> {
  const { Client: Ssh2Client, utils } = loadSsh2();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const client = new Ssh2Client();
  const agent = opts.agentSocket ?? process.env['SSH_AUTH_SOCK'] ?? '';
  let settled = false;

  return new Promise<{ client: Client; hostKey: string }>((resolve, reject) => {
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      deadline.clear();
      opts.signal?.removeEventListener('abort', onAbort);
      client.end();
      reject(err);
    };
    const deadline = new Deadline(timeoutMs, () =>
      fail(
        sshError(
          'ssh-timeout',
          `No answer from ${describeHop(hop)} within ${Math.round(timeoutMs / 1000)} s: check the address, the network path and firewalls.`,
        ),
      ),
    );
    const onAbort = () => fail(new CancelledError(`SSH connection to ${describeHop(hop)}`));
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const keys = hostKeyCheck(hop, known, recordIn, opts, deadline);
    const { handler, auth } = authHandler({
      hop,
      agentSocket: agent,
      prompts: opts.prompts,
      deadline,
      verifiedKey: () => keys.verifiedKey,
      parseKey: utils.parseKey,
      fail,
    });

    client.on('ready', () => {
      if (settled) return;
      // ssh2 verifies the host key before it authenticates; without one, nothing is trusted.
      const verifiedKey = keys.verifiedKey;
      if (verifiedKey === undefined)
        return fail(sshError('ssh-host-key-unknown', `${describeHop(hop)}: no verified host key.`));
      settled = true;
      deadline.clear();
      opts.signal?.removeEventListener('abort', onAbort);
      for (const p of auth.pending) void opts.prompts.secretResult?.(p.req, true, p.value);
      resolve({ client, hostKey: verifiedKey });
    });
    client.on('error', (err: Error & { code?: string; level?: string }) => {
      if (keys.failure) return fail(keys.failure);
      if (err.level === 'client-authentication') {
        const tried =
          auth.tried.length > 0 ? auth.tried.join(', ') : 'nothing (no agent, no key file)';
        return fail(
          sshError(
            'ssh-auth',
            `Permission denied for ${describeHop(hop)}. Tried: ${tried}. The server accepts: ${auth.allowed.join(', ') || 'unknown'}. Put your public key in ~${hop.user}/.ssh/authorized_keys on the host, set identityFile (or user) for the host in k3s-etcd.yaml, or load the key into ssh-agent.`,
            err,
          ),
        );
      }
      fail(classifyConnectError(hop, err, timeoutMs));
    });
    client.on('close', () =>
      fail(
        keys.failure ??
          sshError('ssh-disconnected', `${describeHop(hop)} closed the connection during set-up.`),
      ),
    );

    deadline.start();
    const knownTypes = knownKeyTypes(known, hop.hostName, hop.port);
    client.connect({
      ...(sock ? { sock } : { host: hop.hostName, port: hop.port }),
      username: hop.user,
      readyTimeout: 24 * 3600 * 1000, // our own Deadline applies, paused during prompts
      keepaliveInterval: opts.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: 3,
      hostVerifier: keys.verifier,
      authHandler: handler as never,
      algorithms: { serverHostKey: hostKeyOrder(knownTypes) as never },
      ...(opts.log ? { debug: (m: string) => opts.log?.(m) } : {}),
    });
  });
}

function forwardThrough(client: Client, to: SshHop): Promise<Duplex> {
  return new Promise((resolve, reject) =>
    client.forwardOut('127.0.0.1', 0, to.hostName, to.port, (err, stream) =>
      err
        ? reject(
            sshError(
              'ssh-unreachable',
              `The jump host cannot reach ${to.hostName}:${to.port}: ${err.message}`,
              err,
            ),
          )
        : resolve(stream),
    ),
  );
}

/** Opens an SSH session to `target`, through its jump hosts. */
export async function connectSsh(target: SshTarget, opts: ConnectOptions): Promise<SshSession> {
  const known = await readKnownHosts(target);
  const recordIn = target.workspaceKnownHostsFile ?? target.knownHostsFiles[0] ?? '';
  const hops: SshHop[] = [...target.jumps, target];
  const clients: Client[] = [];
  let hostKey = '';
  try {
    let sock: Duplex | undefined;
    for (let i = 0; i < hops.length; i++) {
      const hop = hops[i] as SshHop;
      const hopDone = await connectHop(hop, known, recordIn, sock, opts);
      const client = hopDone.client;
      hostKey = hopDone.hostKey;
      clients.push(client);
      const nextHop = hops[i + 1];
      if (nextHop) sock = await forwardThrough(client, nextHop);
    }
  } catch (err) {
    for (const c of clients.reverse()) c.end();
    throw err;
  }
  return new SshSession(target, clients, opts.prompts, hostKey);
}
