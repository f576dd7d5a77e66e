/**
 * The SSH transport on `ssh2`: connect (jump hosts through `forwardOut`), verify the host key
 * against known_hosts (never "accept any key"), authenticate in OpenSSH's order (agent keys,
 * identity files with a passphrase asked once, keyboard-interactive, password), then run
 * commands (optionally through sudo, with the password written to sudo's stdin, never on a
 * command line) and upload files over SFTP to a temp path before moving them into place.
 *
 * ssh2 is loaded lazily from its own bundle (dist/ssh2.js), like etcd3.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, type Duplex, type Writable } from 'node:stream';
import type * as Ssh2Module from 'ssh2';
import type { AnyAuthMethod, AuthenticationType, Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { CancelledError, K3sEtcdError, errorMessage, type SshErrorCode } from '../errors';
import {
  judgeHostKey,
  knownHostsLine,
  knownKeyTypes,
  sha256Fingerprint,
  type KnownHostsText,
} from './knownHosts';
import { shellQuote } from './quote';
import { describeHop, type SshHop, type SshTarget } from './target';

function loadSsh2(): typeof Ssh2Module {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('ssh2') as typeof Ssh2Module;
}

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

export interface PutOptions {
  mode: number;
  owner?: string;
  group?: string;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 20_000;
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

class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private remaining: number;
  private startedAt = 0;
  constructor(
    ms: number,
    private readonly onExpire: () => void,
  ) {
    this.remaining = ms;
  }
  start(): void {
    this.startedAt = Date.now();
    this.timer = setTimeout(this.onExpire, this.remaining);
  }
  pause(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.remaining -= Date.now() - this.startedAt;
  }
  resume(): void {
    if (!this.timer && !this.cleared) this.start();
  }
  private cleared = false;
  clear(): void {
    this.cleared = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  /** Runs `f` with the clock stopped (a person is answering a prompt). */
  async paused<T>(f: () => Promise<T>): Promise<T> {
    this.pause();
    try {
      return await f();
    } finally {
      this.resume();
    }
  }
}

/** The target's known_hosts files with their text: the workspace file (if any) first, then the user's own. */
async function readKnownHosts(target: SshTarget): Promise<KnownHostsText[]> {
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
function hostKeyOrder(knownTypes: string[]): string[] {
  const preferred = knownTypes.flatMap((t) =>
    t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t],
  );
  return [...new Set([...preferred, ...HOST_KEY_ALGORITHMS])];
}

function sshError(code: SshErrorCode, message: string, cause?: unknown): K3sEtcdError {
  return new K3sEtcdError(code, message, cause === undefined ? undefined : { cause });
}

function hostKeyName(hop: SshHop): string {
  return hop.port === 22 ? hop.hostName : `[${hop.hostName}]:${hop.port}`;
}

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
export class SshSession {
  private sudoMode: 'root' | 'nopasswd' | 'password' | undefined;
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
      if (mode === 'nopasswd') line = `sudo -n -- sh -c ${shellQuote(command)}`;
      if (mode === 'password') {
        // -k: always read the password (from stdin, -S) so it never reaches the command's stdin.
        line = `sudo -k -S -p '' -- sh -c ${shellQuote(command)}`;
        stdin = Buffer.concat([
          Buffer.from(`${this.sudoPassword ?? ''}\n`),
          stdin ?? Buffer.alloc(0),
        ]);
      }
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
  async ensureSudo(signal?: AbortSignal): Promise<'root' | 'nopasswd' | 'password'> {
    if (this.sudoMode) return this.sudoMode;
    const id = await this.run('id -u', undefined, signal ? { signal } : {});
    if (id.code === 0 && id.stdout.trim() === '0') return (this.sudoMode = 'root');
    const np = await this.run('sudo -n true', undefined, signal ? { signal } : {});
    if (np.code === 0) return (this.sudoMode = 'nopasswd');
    if (/not found/i.test(np.stderr)) {
      throw sshError(
        'ssh-sudo-refused',
        `${this.label} is not root and has no sudo: connect as root (user: root in k3s-etcd.yaml) or install sudo on the host.`,
      );
    }
    const notAllowed = (text: string) =>
      /not in the sudoers|not allowed to (run|execute)|may not run sudo/i.test(text);
    if (notAllowed(np.stderr)) {
      throw sshError(
        'ssh-sudo-refused',
        `sudo refused ${this.label}: ${np.stderr.trim()}. Give the user sudo rights on the host, or connect as root.`,
      );
    }
    for (let attempt = 1; attempt <= 3; attempt++) {
      const req: SecretRequest = {
        kind: 'sudo',
        id: hostSecretId('sudo', this.target, this.hostKey),
        subject: this.label,
        hostKey: this.hostKey,
        prompt: `sudo password for ${this.label}`,
        attempt,
      };
      const pw = await this.prompts.secret(req);
      if (pw === undefined) {
        throw sshError(
          'ssh-sudo-refused',
          `${this.label} needs a sudo password and none was given: answer the prompt (the CLI asks on a terminal), connect as root, or allow the user password-less sudo.`,
        );
      }
      const check = await this.run(
        "sudo -k -S -p '' true",
        Buffer.from(`${pw}\n`),
        signal ? { signal } : {},
      );
      if (check.code === 0) {
        void this.prompts.secretResult?.(req, true, pw);
        this.sudoPassword = pw;
        return (this.sudoMode = 'password');
      }
      if (/must have a tty|requiretty/i.test(check.stderr)) {
        throw sshError(
          'ssh-sudo-refused',
          `sudo on ${this.label} requires a terminal (requiretty): allow this user sudo without a tty (Defaults:${this.target.user} !requiretty) or connect as root.`,
        );
      }
      void this.prompts.secretResult?.(req, false, pw);
      if (notAllowed(check.stderr)) {
        throw sshError(
          'ssh-sudo-refused',
          `sudo refused ${this.label}: the user may not run commands as root there. Give it sudo rights, or connect as root.`,
        );
      }
    }
    throw sshError(
      'ssh-sudo-refused',
      `sudo refused the password for ${this.label} three times: check the user's password on the host.`,
    );
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpChannel ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
    });
    return this.sftpChannel;
  }

  /** A temp path on the host, readable only by the SSH user. */
  /**
   * Moves an uploaded temp file into place as root with owner and mode, atomically, through no
   * path another user controls: the new file is made in a fresh folder only root can enter
   * (mktemp -d beside `dest`, worked in relative to itself), owner and mode set there, then
   * renamed over `dest` with `mv -T`, so a symlink at `dest` or planted anywhere in its folder (a
   * folder the etcd user owns, say) is replaced, never followed.
   */
  private async install(
    dest: string,
    opts: PutOptions & { sha256?: string },
    source: Readable,
  ): Promise<void> {
    const owner = opts.owner ?? 'root';
    const group = opts.group ?? owner;
    const q = shellQuote;
    const check = opts.sha256 ? ` && [ "$(sha256sum new | cut -d' ' -f1)" = ${opts.sha256} ]` : '';
    const cmd = [
      `d=${q(dirname(dest))}`,
      'mkdir -p "$d" && w=$(mktemp -d "$d/.k3s-etcd-XXXXXXXX") && cd "$w" || exit 1',
      'ok=0',
      `if [ "$(stat -c '%u %a' .)" = "0 700" ] && cat > new${check} && chown ${q(`${owner}:${group}`)} new && chmod ${(opts.mode & 0o7777).toString(8).padStart(4, '0')} new && mv -fT new ${q(dest)}; then ok=1; fi`,
      'rm -f new; cd / && rmdir "$w" 2>/dev/null',
      '[ "$ok" = 1 ]',
    ].join('\n');
    const r = await this.exec(cmd, {
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
    const sftp = await this.sftp().catch((err: unknown) => {
      throw sshError(
        'ssh-disconnected',
        `SFTP is not available on ${this.label} (${errorMessage(err)}): enable the sftp subsystem in sshd_config.`,
        err,
      );
    });
    await new Promise<void>((resolve, reject) => {
      const done = (err: Error | null | undefined) => (err ? reject(err) : resolve());
      if ('localPath' in source) sftp.fastPut(source.localPath, remotePath, { mode: 0o600 }, done);
      else sftp.writeFile(remotePath, source.data, { mode: 0o600 }, done);
    }).catch((err: unknown) => {
      const text = errorMessage(err);
      const full = /no space|failure/i.test(text)
        ? ' (is the disk full? check `df -h /tmp` on the host)'
        : '';
      throw sshError(
        'ssh-disconnected',
        `Upload to ${this.label}:${remotePath} failed: ${text}${full}`,
        err,
      );
    });
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

interface AuthState {
  tried: string[];
  allowed: string[];
  pending: { req: SecretRequest; value: string }[];
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
  const auth: AuthState = { tried: [], allowed: [], pending: [] };
  let hostKeyFailure: K3sEtcdError | undefined;
  /** The fingerprint of the host key once verified: secrets for the host are bound to it. */
  let verifiedKey: string | undefined;
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

    const hostVerifier = (blob: Buffer, verify: (ok: boolean) => void) => {
      const keyType = keyTypeOfBlob(blob);
      const key = blob.toString('base64');
      const verdict = judgeHostKey(known, hop.hostName, hop.port, keyType, key);
      const fingerprint = sha256Fingerprint(key);
      const removeOld = (file: string) =>
        `\`ssh-keygen -R ${shellQuote(hostKeyName(hop))} -f ${shellQuote(file)}\``;
      if (verdict.status === 'match') {
        verifiedKey = fingerprint;
        return verify(true);
      }
      if (verdict.status === 'revoked') {
        hostKeyFailure = sshError(
          'ssh-host-key-revoked',
          `The host key of ${hostKeyName(hop)} (${keyType} ${fingerprint}) is marked @revoked in ${verdict.file} line ${verdict.line}: refusing to connect.`,
        );
        return verify(false);
      }
      if (verdict.status === 'conflict') {
        hostKeyFailure = sshError(
          'ssh-host-key-changed',
          `Refusing to connect to ${hostKeyName(hop)}: it offers ${keyType} ${fingerprint}, which the workspace file ${verdict.file} (line ${verdict.line}, the cluster's knownHostsFile) pins, but your own ${verdict.ownFile} (line ${verdict.ownLines.join(', ')}) knows this host with another key. A workspace known_hosts file may add hosts, never replace a key you trust: check the inventory's knownHostsFile and proxyJump (they route this name to another machine), and remove that line from ${verdict.file}. Only if you know the host was reinstalled, remove its old key with ${removeOld(verdict.ownFile)} and connect again.`,
        );
        return verify(false);
      }
      if (verdict.status === 'changed') {
        hostKeyFailure = sshError(
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
            hostKeyFailure = sshError(
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
          verifiedKey = fingerprint;
          verify(true);
        })
        .catch((err: unknown) => {
          hostKeyFailure = sshError(
            'ssh-host-key-unknown',
            `Cannot record the host key of ${hostKeyName(hop)} in ${file}: ${errorMessage(err)}`,
            err,
          );
          verify(false);
        });
    };

    // Candidates in OpenSSH's order; each yields a method or undefined (skip it).
    type Candidate = { needs: AuthenticationType; next: () => Promise<AnyAuthMethod | undefined> };
    const candidates: Candidate[] = [];
    if (agent) {
      candidates.push({
        needs: 'publickey',
        next: async () => {
          auth.tried.push(`ssh-agent (${agent})`);
          return { type: 'agent', username: hop.user, agent };
        },
      });
    }
    for (const { path, explicit } of hop.identityFiles) {
      candidates.push({
        needs: 'publickey',
        next: async () => {
          let data: Buffer;
          try {
            data = await readFile(path);
          } catch {
            if (explicit) auth.tried.push(`${path} (file not found)`);
            return undefined;
          }
          let parsed = utils.parseKey(data);
          if (!(parsed instanceof Error)) {
            auth.tried.push(path);
            return { type: 'publickey', username: hop.user, key: data };
          }
          if (!/passphrase/i.test(parsed.message)) {
            auth.tried.push(`${path} (unreadable: ${parsed.message})`);
            return undefined;
          }
          for (let attempt = 1; attempt <= 3; attempt++) {
            const req: SecretRequest = {
              kind: 'passphrase',
              id: `passphrase:${path}`,
              subject: path,
              prompt: `Passphrase for ${path}`,
              attempt,
            };
            const pass = await deadline.paused(() => opts.prompts.secret(req));
            if (pass === undefined) {
              auth.tried.push(`${path} (passphrase not given)`);
              return undefined;
            }
            parsed = utils.parseKey(data, pass);
            if (!(parsed instanceof Error)) {
              auth.tried.push(path);
              auth.pending.push({ req, value: pass });
              return { type: 'publickey', username: hop.user, key: data, passphrase: pass };
            }
            await opts.prompts.secretResult?.(req, false, pass);
          }
          auth.tried.push(`${path} (wrong passphrase)`);
          return undefined;
        },
      });
    }
    const passwordCandidate = (attempt: number, keyboard: boolean): Candidate => ({
      needs: keyboard ? 'keyboard-interactive' : 'password',
      next: async () => {
        // Never a password to a host whose key was not verified (ssh2 verifies before auth).
        if (verifiedKey === undefined) return undefined;
        const req: SecretRequest = {
          kind: 'password',
          id: hostSecretId('password', hop, verifiedKey),
          subject: describeHop(hop),
          hostKey: verifiedKey,
          prompt: `Password for ${describeHop(hop)}`,
          attempt,
        };
        const pw = await deadline.paused(() => opts.prompts.secret(req));
        if (pw === undefined) return undefined;
        auth.tried.push(keyboard ? 'keyboard-interactive' : 'password');
        auth.pending.push({ req, value: pw });
        if (!keyboard) return { type: 'password', username: hop.user, password: pw };
        return {
          type: 'keyboard-interactive',
          username: hop.user,
          prompt: (_n, _i, _l, prompts, finish) => finish(prompts.map(() => pw)),
        };
      },
    });
    let passwordAttempts = 0;

    const authHandler = (
      methodsLeft: AuthenticationType[] | null,
      _partial: boolean | null,
      next: (m: AnyAuthMethod | false | AuthenticationType) => void,
    ) => {
      if (methodsLeft === null) return next('none');
      auth.allowed = methodsLeft;
      // A failed password: forget it before the next try.
      const failed = auth.pending.filter((p) => p.req.kind === 'password');
      for (const p of failed) void opts.prompts.secretResult?.(p.req, false, p.value);
      auth.pending = auth.pending.filter((p) => p.req.kind !== 'password');
      void (async () => {
        while (candidates.length > 0) {
          const c = candidates.shift();
          if (!c || !methodsLeft.includes(c.needs)) continue;
          const m = await c.next();
          if (m) return next(m);
        }
        const kbd = methodsLeft.includes('keyboard-interactive');
        if (passwordAttempts < 3 && (methodsLeft.includes('password') || kbd)) {
          passwordAttempts++;
          const m = await passwordCandidate(
            passwordAttempts,
            !methodsLeft.includes('password'),
          ).next();
          if (m) return next(m);
        }
        next(false);
      })().catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));
    };

    client.on('ready', () => {
      if (settled) return;
      // ssh2 verifies the host key before it authenticates; without one, nothing is trusted.
      if (verifiedKey === undefined)
        return fail(sshError('ssh-host-key-unknown', `${describeHop(hop)}: no verified host key.`));
      settled = true;
      deadline.clear();
      opts.signal?.removeEventListener('abort', onAbort);
      for (const p of auth.pending) void opts.prompts.secretResult?.(p.req, true, p.value);
      resolve({ client, hostKey: verifiedKey });
    });
    client.on('error', (err: Error & { code?: string; level?: string }) => {
      if (hostKeyFailure) return fail(hostKeyFailure);
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
        hostKeyFailure ??
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
      hostVerifier,
      authHandler: authHandler as never,
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
