/**
 * The SSH transport on `ssh2`: connect (jump hosts through `forwardOut`), with the host key
 * verified (`hostKeys.ts`) and authentication in OpenSSH's order (`auth.ts`), then run commands
 * (as root through `sudo.ts` when asked) and move files (`sftp.ts`).
 *
 * ssh2 is loaded lazily from its own bundle (dist/ssh2.js), like etcd3.
 */
import { Readable, type Duplex, type Writable } from 'node:stream';
import type * as Ssh2Module from 'ssh2';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { CancelledError, K3sEtcdError } from '../errors';
import { authHandler } from './auth';
import { Deadline } from './deadline';
import { hostKeyCheck, hostKeyOrder, readKnownHosts } from './hostKeys';
import { knownKeyTypes, type KnownHostsText } from './knownHosts';
import { shellQuote } from './quote';
import { asRoot, detectSudo, type SudoMode } from './sudo';
import { installCommand, sftpPut } from './sftp';
import { describeHop, type SshHop, type SshTarget } from './target';
import {
  sshError,
  type ConnectOptions,
  type ExecOptions,
  type ExecResult,
  type PutOptions,
  type SshPrompts,
} from './types';

function loadSsh2(): typeof Ssh2Module {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('ssh2') as typeof Ssh2Module;
}

const DEFAULT_TIMEOUT_MS = 20_000;

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

/** An open SSH connection to one host (through its jump hosts). */

/** An open SSH connection to one host (through its jump hosts). */
export class SshSession {
  private sudoMode: SudoMode | undefined;
  private sudoPassword: string | undefined;
  private sftpChannel: Promise<SFTPWrapper> | undefined;
  private closed = false;
  private lost: Error | undefined;

  constructor(
    readonly target: SshTarget,
    private readonly clients: Client[],
    private readonly prompts: SshPrompts,
    /** The verified SHA256 fingerprint of the target's host key (what a sudo password is bound to). */
    readonly hostKey: string,
  ) {
    const last = clients[clients.length - 1];
    last?.on('close', () => {
      if (!this.closed)
        this.lost = sshError('ssh-disconnected', `The SSH connection to ${this.label} was lost.`);
    });
    last?.on('error', () => undefined);
  }

  get label(): string {
    return describeHop(this.target);
  }

  private get client(): Client {
    const c = this.clients[this.clients.length - 1];
    if (!c) throw new Error('no SSH client');
    return c;
  }

  /** Runs one command line (already quoted by the caller with `shellQuote`). */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    let line = command;
    let stdin: Buffer | undefined = opts.stdin === undefined ? undefined : Buffer.from(opts.stdin);
    if (opts.sudo) {
      const mode = await this.ensureSudo(opts.signal);
      ({ line, stdin } = asRoot(mode, this.sudoPassword, command, stdin));
    }
    return this.run(line, stdin, opts, opts.sudo === true);
  }

  /**
   * Runs `line` in the login shell. The shell first prints its pid on stderr (sshd makes it a
   * process-group leader), so a cancel can stop the whole group from a second channel: sshd's
   * "signal" channel request is not honoured for every session.
   */
  private run(
    line: string,
    stdin: Buffer | undefined,
    opts: ExecOptions,
    asRoot = false,
  ): Promise<ExecResult> {
    if (this.lost) return Promise.reject(this.lost);
    if (opts.signal?.aborted) return Promise.reject(new CancelledError('Remote command'));
    return new Promise<ExecResult>((resolve, reject) => {
      this.client.exec(
        `echo "$$" >&2; ${line}`,
        (err: Error | undefined, stream: ClientChannel) => {
          if (err) {
            reject(
              sshError(
                'ssh-disconnected',
                `Cannot run a command on ${this.label}: ${err.message}`,
                err,
              ),
            );
            return;
          }
          let stdout = '';
          let stderr = '';
          let pidLine: string | undefined;
          let code: number | undefined;
          let signal: string | undefined;
          let cancelled = false;
          let inputError: Error | undefined;
          const killGroup = () => {
            const pid = Number(pidLine);
            if (!Number.isInteger(pid) || pid <= 1) return;
            const kill = `kill -TERM -- -${pid} 2>/dev/null; sleep 1; kill -KILL -- -${pid} 2>/dev/null; true`;
            void this.exec(kill, { sudo: asRoot }).catch(() => undefined);
          };
          const onAbort = () => {
            cancelled = true;
            // Without the pid yet, the kill happens as soon as the pid line arrives.
            if (pidLine !== undefined) killGroup();
            setTimeout(() => stream.close(), 3000).unref();
          };
          opts.signal?.addEventListener('abort', onAbort, { once: true });
          // A cancel while the channel was opening fired before the listener existed.
          if (opts.signal?.aborted) onAbort();
          if (opts.stdoutStream) {
            stream.pipe(opts.stdoutStream, { end: false });
          } else {
            stream.on('data', (d: Buffer) => {
              const s = d.toString('utf8');
              stdout += s;
              opts.onStdout?.(s);
            });
          }
          stream.stderr.on('data', (d: Buffer) => {
            let s = d.toString('utf8');
            if (pidLine === undefined) {
              const nl = s.indexOf('\n');
              if (nl < 0) {
                stderr += s; // the pid line arrives in pieces: keep collecting
                return;
              }
              s = stderr + s;
              const at = s.indexOf('\n');
              pidLine = s.slice(0, at);
              if (cancelled) killGroup();
              stderr = '';
              s = s.slice(at + 1);
              if (!s) return;
            }
            stderr += s;
            opts.onStderr?.(s);
          });
          stream.on('exit', (c: number | null, sig?: string) => {
            if (typeof c === 'number') code = c;
            if (sig) signal = sig;
          });
          stream.on('close', () => {
            opts.signal?.removeEventListener('abort', onAbort);
            if (inputError)
              return reject(
                sshError(
                  'ssh-disconnected',
                  `Sending data to ${this.label} failed: ${inputError.message}`,
                  inputError,
                ),
              );
            if (cancelled) return reject(new CancelledError('Remote command'));
            if (code === undefined && signal === undefined && this.lost) return reject(this.lost);
            resolve({
              code: code ?? (signal ? 128 : 255),
              ...(signal ? { signal } : {}),
              stdout,
              stderr,
            });
          });
          if (opts.stdinStream) {
            if (stdin) stream.write(stdin);
            // A source that fails mid-way never reaches the command as an end of input (which it
            // would take for the whole file): its process group is stopped as for a cancel.
            opts.stdinStream.on('error', (e) => {
              inputError = e;
              onAbort();
            });
            opts.stdinStream.pipe(stream);
          } else if (stdin) stream.end(stdin);
          else stream.end();
        },
      );
    });
  }

  /** Works out once how this session becomes root, asking for the sudo password if needed. */
  async ensureSudo(signal?: AbortSignal): Promise<SudoMode> {
    if (this.sudoMode) return this.sudoMode;
    const found = await detectSudo(
      {
        label: this.label,
        target: this.target,
        hostKey: this.hostKey,
        prompts: this.prompts,
        run: (line, stdin, opts) => this.run(line, stdin, opts),
      },
      signal,
    );
    if (found.password !== undefined) this.sudoPassword = found.password;
    return (this.sudoMode = found.mode);
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpChannel ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
    });
    return this.sftpChannel;
  }

  /** Streams `source` into place as root (`installCommand`). */
  private async install(
    dest: string,
    opts: PutOptions & { sha256?: string },
    source: Readable,
  ): Promise<void> {
    const check = Boolean(opts.sha256);
    const r = await this.exec(installCommand(dest, opts), {
      sudo: true,
      stdinStream: source,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (r.code !== 0) {
      throw sshError(
        'ssh-disconnected',
        `Cannot put ${dest} in place on ${this.label}: ${r.stderr.trim() || `exit ${r.code}`}${check ? ' (or the bytes that arrived do not have the expected SHA-256)' : ''}`,
      );
    }
  }

  async writeFile(dest: string, data: string | Buffer, opts: PutOptions): Promise<void> {
    await this.writeFileStream(dest, Readable.from([Buffer.from(data)]), opts);
  }

  /**
   * Streams `source` into `dest` as root with owner and mode, through no temporary copy outside
   * `dest`'s own folder (no /tmp: a state.db may have gigabytes): the bytes go over the
   * command's stdin into the fresh root-only folder `install` makes. With `sha256`, the host
   * checks the bytes it received before they replace `dest`.
   */
  async writeFileStream(
    dest: string,
    source: Readable,
    opts: PutOptions & { sha256?: string },
  ): Promise<void> {
    if (opts.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(opts.sha256))
      throw new K3sEtcdError('usage', `Not a SHA-256: ${JSON.stringify(opts.sha256)}.`);
    await this.install(dest, opts, source);
  }

  /**
   * Streams `remotePath` (read as root) into `sink` on this machine with backpressure: no copy
   * on the host, nothing held in memory. `sink` is not ended.
   */
  async readFileStream(
    remotePath: string,
    sink: Writable,
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const r = await this.exec(`cat -- ${shellQuote(remotePath)}`, {
      sudo: true,
      stdoutStream: sink,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (r.code !== 0)
      throw sshError(
        'ssh-disconnected',
        `Cannot read ${remotePath} on ${this.label}: ${r.stderr.trim() || `exit ${r.code}`}`,
      );
  }

  /** Uploads a local file or bytes to `remotePath` as the SSH user (mode 0600), nothing more. */
  async put(remotePath: string, source: { localPath: string } | { data: Buffer }): Promise<void> {
    await sftpPut(() => this.sftp(), this.label, remotePath, source);
  }

  /** A TCP stream to `host:port` as seen from the remote host (an SSH tunnel). */
  forwardOut(host: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      this.client.forwardOut('127.0.0.1', 0, host, port, (err, stream) =>
        err
          ? reject(
              sshError(
                'ssh-disconnected',
                `Tunnel to ${host}:${port} through ${this.label} failed: ${err.message}`,
                err,
              ),
            )
          : resolve(stream),
      );
    });
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.clients].reverse()) c.end();
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
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
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
