/**
 * An open SSH connection to one host (through its jump hosts): runs commands (as root through
 * `sudo.ts` when asked, a cancel stopping the remote process group) and moves files (`sftp.ts`).
 */
import { Readable, type Duplex, type Writable } from 'node:stream';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { CancelledError, K3sEtcdError } from '../errors';
import { asRoot, detectSudo, type SudoMode } from './sudo';
import { installCommand, sftpPut } from './sftp';
import { describeHop, type SshTarget } from './target';
import {
  sshError,
  type ExecOptions,
  type ExecResult,
  type PutOptions,
  type SshPrompts,
  type TransferOptions,
} from './types';
import { shellQuote } from './quote';

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
  async put(
    remotePath: string,
    source: { localPath: string } | { data: Buffer },
    opts: TransferOptions = {},
  ): Promise<void> {
    try {
      await sftpPut(() => this.sftp(), this.label, remotePath, source, opts);
    } catch (err) {
      // A cancel ends the channel: the next transfer opens a new one.
      if (err instanceof CancelledError) this.sftpChannel = undefined;
      throw err;
    }
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
