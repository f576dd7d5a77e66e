/**
 * The transport for the inventory host this window runs on: commands run on this machine, and
 * those that need root run in one root shell that `sudo` opens in a pseudo-terminal (`script`)
 * whose conversation is the task's terminal: sudo asks for the password there itself, the
 * person types it there, and it is never stored or seen by this code beyond passing keystrokes
 * on while sudo asks. Each root command reads its stdin from a private file and writes stdout
 * and stderr into FIFOs of a private (0700) folder, so its output stays apart from the
 * terminal's; its exit code comes back framed by a random marker.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, K3sEtcdError } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import type { HostTransport } from '../plan/runner';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote as q } from '../ssh/quote';
import type { ExecOptions, ExecResult, TransferOptions } from '../ssh/types';

/** The task's terminal as the transport sees it. */
export interface TerminalIo {
  write(text: string): void;
  /** Keystrokes typed in the terminal. */
  onInput(listener: (data: string) => void): { dispose(): void };
}

export interface LocalTransportOptions {
  label: string;
  io: TerminalIo;
  /** The command that makes us root (tests give a stand-in); default `sudo`. */
  sudo?: string[];
  /** How long sudo may wait for the password, default 5 minutes. */
  passwordTimeoutMs?: number;
}

const READY = '__K3S_ETCD_ROOT_READY_';
const DONE = '__K3S_ETCD_DONE_';

/** The length of the longest end of `text` that begins `marker`. */
function markerPrefix(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--)
    if (text.endsWith(marker.slice(0, k))) return k;
  return 0;
}

/** Opens and closes a FIFO for writing: a reader still waiting for a writer sees its end. */
async function unblock(fifo: string): Promise<void> {
  try {
    const fh = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    await fh.close();
  } catch {
    // No reader any more (ENXIO) or gone: nothing waits.
  }
}

/** Runs `command` with pipes (no root), collecting and streaming its output. */
function runPlain(command: string, opts: ExecOptions): Promise<ExecResult> {
  if (opts.signal?.aborted) return Promise.reject(new CancelledError('Local command'));
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      opts.onStdout?.(c);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      opts.onStderr?.(c);
    });
    const abort = () => child.kill('SIGTERM');
    opts.signal?.addEventListener('abort', abort, { once: true });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', abort);
      resolve({ code: code ?? 128, ...(signal ? { signal } : {}), stdout, stderr });
    });
    // A command that does not read its stdin may be gone before it is written: not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.stdin ?? '');
  });
}

/** `cat` of a FIFO: resolves with everything written into it once its writer closed it. */
function drain(
  fifo: string,
  onChunk?: (c: string) => void,
): { done: Promise<string>; child: ChildProcess } {
  const child = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    text += c;
    onChunk?.(c);
  });
  return { child, done: new Promise((resolve) => child.once('close', () => resolve(text))) };
}

export class LocalTransport implements HostTransport {
  readonly label: string;
  private dir: string | undefined;
  private shell: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private ptyText = '';
  private waiters: { marker: string; resolve(code: number): void }[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private n = 0;
  private closed = false;

  constructor(private readonly opts: LocalTransportOptions) {
    this.label = opts.label;
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    // Root already (and no stand-in for sudo given): nothing to ask.
    if (!opts.sudo || (process.getuid?.() === 0 && !this.opts.sudo)) return runPlain(command, opts);
    // One root command at a time: they share the root shell.
    const next = this.queue.then(() => this.execAsRoot(command, opts));
    this.queue = next.catch(() => undefined);
    return next;
  }

  async put(
    remotePath: string,
    source: { localPath: string } | { data: Buffer },
    opts: TransferOptions = {},
  ): Promise<void> {
    // A local copy: quick, so a cancel is only honoured before it.
    if (opts.signal?.aborted) throw new CancelledError('copy');
    if ('localPath' in source) await copyFile(source.localPath, remotePath);
    else await writeFile(remotePath, source.data, { mode: 0o600 });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The pseudo-terminal's end hangs the root shell up.
    this.shell?.kill('SIGTERM');
    for (const w of this.waiters.splice(0)) w.resolve(129);
    if (this.dir) void rm(this.dir, { recursive: true, force: true });
  }

  private async privateDir(): Promise<string> {
    this.dir ??= await mkdtemp(join(tmpdir(), 'k3s-etcd-root-'));
    return this.dir;
  }

  /** The root shell, opened once: sudo asks for the password in the task's terminal. */
  private rootShell(signal?: AbortSignal): Promise<void> {
    this.ready ??= this.openRootShell(signal);
    return this.ready;
  }

  private async openRootShell(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new CancelledError('Local command');
    const nonce = randomBytes(8).toString('hex');
    const sudo = (this.opts.sudo ?? ['sudo']).map(q).join(' ');
    // Echo off and no prompts once root: our command lines never show in the terminal.
    const inner = `stty -echo 2>/dev/null; PS1=; PS2=; export PS1 PS2; echo ${READY}${nonce}; exec sh`;
    const line = `${sudo} sh -c ${q(inner)}`;
    const shell = spawn('script', ['-q', '-e', '-c', line, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // script runs the line with $SHELL -c: POSIX sh whatever the person's shell is.
      env: { ...process.env, TERM: 'dumb', SHELL: '/bin/sh' },
    });
    this.shell = shell;
    shell.stdin?.on('error', () => undefined);
    const input = this.opts.io.onInput((data) => {
      if (!this.closed) shell.stdin?.write(data);
    });
    const readyMarker = `${READY}${nonce}`;
    let isReady = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          fail(
            new K3sEtcdError(
              'provision-step-failed',
              `${this.label}: sudo did not become root within ${Math.round((this.opts.passwordTimeoutMs ?? 300_000) / 1000)} s.`,
            ),
          ),
        this.opts.passwordTimeoutMs ?? 300_000,
      );
      const fail = (err: Error) => {
        clearTimeout(timer);
        input.dispose();
        reject(err);
      };
      const abort = () => {
        this.close();
        fail(new CancelledError('sudo'));
      };
      signal?.addEventListener('abort', abort, { once: true });
      shell.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        if (isReady) return this.onShellOutput(chunk);
        this.ptyText += chunk;
        const i = this.ptyText.indexOf(readyMarker);
        // Until root: sudo's own words (its prompt, "Sorry, try again.") go to the terminal as
        // they come, all but a tail that may be the start of the marker.
        const shown = i >= 0 ? i : this.ptyText.length - markerPrefix(this.ptyText, readyMarker);
        this.opts.io.write(this.ptyText.slice(0, shown).replace(/\r?\n/g, '\r\n'));
        if (i < 0) {
          this.ptyText = this.ptyText.slice(shown);
          return;
        }
        this.ptyText = this.ptyText.slice(i + readyMarker.length).replace(/^\r?\n/, '');
        isReady = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        input.dispose();
        resolve();
        this.onShellOutput('');
      });
      shell.once('error', (err) => fail(err));
      shell.once('close', (code) => {
        for (const w of this.waiters.splice(0)) w.resolve(code ?? 129);
        if (!isReady)
          fail(
            new K3sEtcdError(
              'provision-step-failed',
              `${this.label}: sudo did not make this window's terminal root (exit ${code ?? 'signal'}): check the password, or that your user may use sudo here.`,
            ),
          );
      });
    });
  }

  /** Output of the root shell: only the end markers matter; anything else is shown. */
  private onShellOutput(chunk: string): void {
    this.ptyText += chunk;
    for (const w of [...this.waiters]) {
      const m = new RegExp(`${w.marker} (\\d+)\\r?\\n`).exec(this.ptyText);
      if (!m) continue;
      this.ptyText = this.ptyText.slice(0, m.index) + this.ptyText.slice(m.index + m[0].length);
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(Number(m[1]));
    }
    const rest = this.ptyText.replace(/\r/g, '').trim();
    if (rest && !rest.includes('__K3S')) {
      this.opts.io.write(`${rest.replace(/\n/g, '\r\n')}\r\n`);
      this.ptyText = '';
    }
  }

  private async execAsRoot(command: string, opts: ExecOptions): Promise<ExecResult> {
    if (opts.signal?.aborted) throw new CancelledError('Local command');
    if (opts.stdinStream || opts.stdoutStream)
      throw new Error('LocalTransport: streamed stdin/stdout are not supported');
    await this.rootShell(opts.signal);
    const dir = await this.privateDir();
    const k = ++this.n;
    const files = {
      cmd: join(dir, `cmd-${k}`),
      in: join(dir, `in-${k}`),
      out: join(dir, `out-${k}`),
      err: join(dir, `err-${k}`),
    };
    await writeFile(files.cmd, command, { mode: 0o600 });
    await writeFile(files.in, opts.stdin ?? '', { mode: 0o600 });
    const mk = spawnSync('mkfifo', ['-m', '600', files.out, files.err]);
    if (mk.status !== 0) throw new Error(`mkfifo: ${String(mk.stderr)}`);
    const out = drain(files.out, opts.onStdout);
    const err = drain(files.err, opts.onStderr);
    const marker = `${DONE}${randomBytes(8).toString('hex')}`;
    const code = new Promise<number>((resolve) => this.waiters.push({ marker, resolve }));
    const abort = () => this.shell?.stdin?.write('\x03');
    opts.signal?.addEventListener('abort', abort, { once: true });
    this.shell?.stdin?.write(
      `sh ${q(files.cmd)} <${q(files.in)} >${q(files.out)} 2>${q(files.err)}; echo "${marker} $?"\n`,
    );
    // The shell gone before the command opened its FIFOs: their readers are let go.
    void code.then(() => Promise.all([unblock(files.out), unblock(files.err)]));
    try {
      const [c, stdout, stderr] = await Promise.all([code, out.done, err.done]);
      if (opts.signal?.aborted) throw new CancelledError('Local command');
      return { code: c, stdout, stderr };
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      out.child.kill();
      err.child.kill();
      await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
    }
  }
}

/** The inventory host this window runs on, and how to open its transport (the editor's). */
export interface HereHost {
  host: string;
  open(signal?: AbortSignal): Promise<HostTransport>;
}

/** How a job reaches `host`: here through `here`, otherwise over SSH. */
export function openerFor(
  cluster: Cluster,
  host: Host,
  ssh: SshContext,
  here?: HereHost,
): (signal?: AbortSignal) => Promise<HostTransport> {
  return here?.host === host.name ? (signal) => here.open(signal) : sshOpener(cluster, host, ssh);
}
