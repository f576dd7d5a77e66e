/**
 * Process and temp-dir bookkeeping shared by the test harnesses (etcd clusters, VS Code servers,
 * browsers) of one test process.
 *
 * Detached child process groups registered with `trackGroup()` and temp dirs made with
 * `makeTempDir()` are SIGKILLed / removed by one process-level hook on 'exit', SIGINT (exit 130)
 * and SIGTERM (exit 143), installed once, whatever a crashed test left behind. A harness that
 * stops a group itself calls `untrackGroup()`; `removeTempDir()` forgets the dir it removes.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** pid (= process-group id) -> optional liveness check; without one the whole group is killed. */
const liveGroups = new Map<number, (() => boolean) | undefined>();
const liveDirs = new Set<string>();
let hooksInstalled = false;

/** Sends `signal` to the process group `pid` (spawned detached: the pid is also the group id). */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Whether any process of the group `pid` is still there. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (30 s deadline by default); never throws on a non-zero exit. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.on('error', () => undefined); // EPIPE when the command exits without reading it
    child.stdin?.end(opts.input ?? '');
  });
}

/** Whether the process `pid` exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** pids whose command line has the argument `arg` (e.g. nspawn's machine name). */
export function processesWithArg(arg: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(arg)) out.push(+e);
    } catch {
      // gone
    }
  }
  return out;
}

/** Polls `cond` every 200 ms until it holds; rejects naming `what` after `ms`. */
export async function waitUntil(
  cond: () => Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(200);
  }
}

function killAllNow(): void {
  for (const [pid, isAlive] of liveGroups) {
    if (isAlive === undefined || isAlive()) killGroup(pid, 'SIGKILL');
  }
  liveGroups.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(sig, () => {
      killAllNow();
      process.exit(code);
    });
  }
}

/**
 * Registers the detached process group `pid` to be SIGKILLed when the test process ends.
 * With `isAlive`, the group is killed only while it returns true (e.g. "this child has not
 * exited", so a reaped pid that may have been reused is left alone); without it, the whole group
 * is killed regardless (e.g. a server whose leader exited but whose children may linger).
 */
export function trackGroup(pid: number, isAlive?: () => boolean): void {
  installHooks();
  liveGroups.set(pid, isAlive);
}

/** Forgets a group the harness has stopped itself. */
export function untrackGroup(pid: number): void {
  liveGroups.delete(pid);
}

/** A temp dir removed by `removeTempDir()` or, at the latest, when the test process exits. */
export async function makeTempDir(prefix: string): Promise<string> {
  installHooks();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}
