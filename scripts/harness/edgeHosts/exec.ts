/**
 * Commands on this machine for the edge-host harness: `run`/`must` in their own process group
 * with a deadline, sh quoting, log tails, the mount table, exclusive file locks, and the
 * synchronous clean-ups run on exit/SIGINT/SIGTERM before ../processes' own hook.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { killGroup, trackGroup, untrackGroup } from '../processes';
import type { ExecResult } from './types';

export const NSENTER = '/usr/bin/nsenter';

export const CONTAINER_ENV: NodeJS.ProcessEnv = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
};

/** Single-quotes `s` for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a program on this machine; resolves with code/stdout/stderr, never rejects on exit codes. */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve) => {
    // Own process group, so a timeout kills whatever the command started too.
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const pid = child.pid;
    if (pid !== undefined) trackGroup(pid, () => child.exitCode === null && !settled);
    const finish = (r: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(hardTimer);
      if (pid !== undefined) untrackGroup(pid);
      resolve(r);
    };
    let hardTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
      // A grandchild that escaped the group may hold the pipes open: do not wait forever.
      hardTimer = setTimeout(
        () => finish({ code: 124, stdout, stderr: `${stderr}timed out after ${timeoutMs} ms` }),
        2_000,
      );
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined); // EPIPE when the command does not read its stdin
    child.stdin.end(opts.input ?? '');
    child.once('error', (err) => finish({ code: 127, stdout, stderr: `${stderr}${err.message}` }));
    child.once('close', (code, signal) => {
      if (timedOut)
        finish({ code: 124, stdout, stderr: `${stderr}timed out after ${timeoutMs} ms` });
      else
        finish({
          code: code ?? 128,
          stdout,
          stderr: signal ? `${stderr}killed by ${signal}` : stderr,
        });
    });
  });
}

/** Like `run`, but throws (with the output) on a non-zero exit. */
export async function must(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<ExecResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.code}):\n${(r.stderr || r.stdout).trim().slice(-4000)}`,
    );
  }
  return r;
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function fileTail(file: string, lines = 30): string {
  try {
    return tail(readFileSync(file, 'utf8'), lines);
  } catch {
    return '(no log)';
  }
}

/** Mount points at or below `path` in this process's mount namespace, deepest first. */
export function mountsUnder(path: string): string[] {
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unescape = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = unescape(mp);
    if (p === path || p.startsWith(`${path}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything at or below `path` (synchronous: usable in an exit hook). */
export function unmountAllSync(path: string): void {
  for (const mp of mountsUnder(path)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
}

/** Synchronous clean-ups run on exit/SIGINT/SIGTERM before ./processes kills groups and removes dirs. */
const exitCleanups = new Set<() => void>();

let exitHooksInstalled = false;

function runExitCleanups(): void {
  // Last registered first: hosts (and their veths) go before the bridge they were put on.
  for (const fn of [...exitCleanups].reverse()) {
    try {
      fn();
    } catch {
      // best effort: keep cleaning the others
    }
  }
  exitCleanups.clear();
}

/** Registers `fn`; returns its remover. Call after ./processes installed its hooks (makeTempDir). */
export function onExitSync(fn: () => void): () => void {
  if (!exitHooksInstalled) {
    exitHooksInstalled = true;
    // prepend: these run before ../processes' hook, which exits the process on signals.
    process.prependListener('exit', runExitCleanups);
    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      process.prependListener(sig, () => {
        runExitCleanups();
        // Alone (../processes' hook not installed yet), a listener would swallow the signal.
        if (process.listenerCount(sig) <= 1) process.exit(code);
      });
    }
  }
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

/**
 * Takes an exclusive flock on `file`, held until the returned release() (or this process's end).
 * flock(1) locks the open file description it shares with us on fd 3, and the lock stays with
 * that description after flock(1) exits.
 */
export async function lockFile(file: string, waitSeconds: number): Promise<() => void> {
  const fd = openSync(file, 'a');
  const r = await new Promise<number>((resolve) => {
    const child = spawn('flock', ['--exclusive', '--wait', String(waitSeconds), '3'], {
      stdio: ['ignore', 'ignore', 'inherit', fd],
    });
    child.once('error', () => resolve(127));
    child.once('exit', (code) => resolve(code ?? 1));
  });
  if (r !== 0) {
    closeSync(fd);
    throw new Error(`could not lock ${file} within ${waitSeconds} s (flock exit ${r})`);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    closeSync(fd);
  };
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
