/**
 * The lab's state file (`<state>/lab.json`), process identities that survive pid reuse, the
 * lock that keeps two `lab` commands from working on one lab at once, and `teardown()`: stop a
 * running lab (asking its keeper first) and remove whatever a dead one left behind.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { groupAlive } from '../harness/processes';

export const STATE_FILE = 'lab.json';
export const LOCK_FILE = 'lab.lock';

/** A process as it was when recorded: a pid plus its start time (field 22 of /proc/pid/stat). */
export interface ProcRef {
  pid: number;
  startTime: string;
}

export interface LabHostRecord {
  name: string;
  address: string;
  /** nspawn machine name (k3se-<run>-<name>); nspawn's command line carries it. */
  machine: string;
  nspawn: ProcRef;
  /** The container's systemd (PID 1 inside): killing it takes the container's processes with it. */
  leader: ProcRef;
  /** The host's temp dir on this machine (root overlay or copy, upper, work, log). */
  dir: string;
  rootMode: 'overlay' | 'copy';
  /** The host's cgroup dirs (one per hierarchy), removed once empty. */
  cgroups: string[];
}

export interface LabState {
  version: 1;
  /** 'starting' until the hosts and VS Code are up, then 'running'. */
  status: 'starting' | 'running';
  stateDir: string;
  workspace: string;
  /** The workbench URL, with the connection token (so this file is 0600). */
  url: string;
  port: number;
  addresses: string[];
  keeper: ProcRef;
  vscode?: ProcRef;
  /** `--remote`: VS Code runs on this host (stopped with it), as this user, in this folder. */
  remote?: { host: string; workspace: string; user: string };
  hosts: LabHostRecord[];
  key: string;
  knownHosts: string;
  log: string;
  vscodeLog: string;
  startedAt: string;
  /** Milliseconds from the keeper's start to "running". */
  upMs?: number;
}

// ---- processes -----------------------------------------------------------------------------

/** The process's start time, or undefined when it is gone or a zombie. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields 3.. of proc(5)
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

export function procRef(pid: number): ProcRef {
  const startTime = startTimeOf(pid);
  if (startTime === undefined) throw new Error(`process ${pid} is not running`);
  return { pid, startTime };
}

/** Whether the recorded process still runs (the same one, not a reused pid). */
export function alive(ref: ProcRef | undefined): boolean {
  return ref !== undefined && startTimeOf(ref.pid) === ref.startTime;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 100 ms; true once it holds, false at the deadline. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (cond()) return true;
  return cond();
}

/** Whether something accepts TCP connections on host:port. */
export function listening(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// ---- the state file -------------------------------------------------------------------------

export function readState(stateDir: string): LabState | undefined {
  const file = join(stateDir, STATE_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as LabState;
    return v.version === 1 && typeof v.keeper?.pid === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState): void {
  const file = join(state.stateDir, STATE_FILE);
  // 0600: the URL in it carries VS Code's connection token.
  rmSync(`${file}.tmp`, { force: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(`${file}.tmp`, file);
}

export function removeState(stateDir: string): void {
  rmSync(join(stateDir, STATE_FILE), { force: true });
}

/** What of a recorded lab is not running (empty: all of it runs). */
export function deadParts(state: LabState): string[] {
  const dead: string[] = [];
  if (state.status !== 'running') dead.push(`it never finished starting (${state.status})`);
  if (!alive(state.keeper)) dead.push(`its keeper process ${state.keeper.pid} is gone`);
  // --remote: VS Code lives inside its host, which is checked below.
  if (!state.remote && !alive(state.vscode)) dead.push('VS Code is not running');
  for (const h of state.hosts) {
    if (!alive(h.nspawn) || !alive(h.leader)) dead.push(`host ${h.name} is not running`);
  }
  return dead;
}

// ---- the lock -------------------------------------------------------------------------------

/**
 * Takes `<state>/lab.lock` for this process (released by the returned function, or removed as
 * stale by the next taker once this process is gone). Throws naming the holder when busy.
 */
export function takeLock(stateDir: string): () => void {
  const file = join(stateDir, LOCK_FILE);
  const me = procRef(process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, JSON.stringify(me));
      closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        try {
          const held = JSON.parse(readFileSync(file, 'utf8')) as ProcRef;
          if (held.pid === me.pid && held.startTime === me.startTime) unlinkSync(file);
        } catch {
          // already gone
        }
      };
      process.on('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: ProcRef | undefined;
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as ProcRef;
      } catch {
        holder = undefined; // half-written by a process that died: stale
      }
      if (holder && alive(holder)) {
        throw new Error(
          `another lab command (pid ${holder.pid}) is working on ${stateDir} right now; wait for it to finish`,
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new Error(`could not take ${file}`);
}

// ---- cgroups and mounts ---------------------------------------------------------------------

function mountinfo(): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  } catch {
    return [];
  }
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Mount points at or below `path`, deepest first. */
export function mountsUnder(path: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo()) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = unescapeMount(mp);
    if (p === path || p.startsWith(`${path}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * The cgroup dirs of an edge host's nspawn process (cgroup2, and the named `name=systemd` v1
 * hierarchy on hybrid machines), cut at the host's own dir `.../k3s-etcd-edge/<pid>-<machine>`.
 */
export function hostCgroups(nspawnPid: number): string[] {
  let own = '';
  try {
    own = readFileSync(`/proc/${nspawnPid}/cgroup`, 'utf8');
  } catch {
    return [];
  }
  const mounts: { v2?: string; named?: string } = {};
  for (const line of mountinfo()) {
    const [pre, post] = line.split(' - ');
    const mp = pre?.split(' ')[4];
    const [fstype, , opts] = post?.split(' ') ?? [];
    if (!mp) continue;
    if (fstype === 'cgroup2') mounts.v2 ??= unescapeMount(mp);
    if (fstype === 'cgroup' && (opts ?? '').split(',').includes('name=systemd'))
      mounts.named ??= unescapeMount(mp);
  }
  const out: string[] = [];
  const cut = (p: string) => /^(.*\/k3s-etcd-edge\/[^/]+)/.exec(p)?.[1];
  const v2 = /^0::(.*)$/m.exec(own)?.[1];
  const named = /^\d+:name=systemd:(.*)$/m.exec(own)?.[1];
  const a = v2 === undefined ? undefined : cut(v2);
  const b = named === undefined ? undefined : cut(named);
  if (mounts.v2 && a) out.push(join(mounts.v2, a));
  if (mounts.named && b) out.push(join(mounts.named, b));
  return out;
}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n'))
        if (p) pids.push(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // gone
    }
  };
  walk(dir);
  return pids;
}

function removeCgroup(dir: string): void {
  const rmTree = (d: string) => {
    try {
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) rmTree(join(d, e.name));
      rmdirSync(d);
    } catch {
      // busy or gone
    }
  };
  rmTree(dir);
  try {
    rmdirSync(dirname(dir)); // k3s-etcd-edge itself, once no host is left in it
  } catch {
    // other hosts (tests, another lab) still in there
  }
}

/** pids whose command line has an argument starting with `prefix`. */
function processesWithArgPrefix(prefix: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const args = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.startsWith(prefix))) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Children of `pid` (by /proc/<n>/stat's ppid). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** The temp dirs edge hosts of keeper `pid` were given: `<tmp>/k3se-<pid>-<name>-XXXXXX`. */
function hostDirPrefix(keeperPid: number): string {
  return join(tmpdir(), `k3se-${keeperPid}-`);
}

// ---- teardown -------------------------------------------------------------------------------

export interface TeardownResult {
  /** How the keeper ended: it stopped everything itself, or had to be killed, or was gone. */
  keeper: 'stopped' | 'killed' | 'gone';
  /** What the sweep after the keeper still found and killed or removed. */
  swept: string[];
  /** What is still there after everything (should be empty). */
  leftovers: string[];
}

/**
 * Stops a lab: SIGUSR2 asks its keeper to stop VS Code and power the hosts off (up to 90 s),
 * then SIGTERM (its exit hooks kill the hosts' cgroups and VS Code's process group), then SIGKILL.
 * Whatever is still there afterwards (a keeper that was SIGKILLed, say) is killed and removed
 * here from the record and from the keeper's pid: nspawn processes whose root is one of its host
 * dirs, their containers' systemd (the rest of a container dies with its PID 1), the overlay
 * mounts and dirs, and the cgroups. Removes the state file. Never touches the workspace.
 */
export async function teardown(
  state: LabState,
  say: (line: string) => void = () => undefined,
): Promise<TeardownResult> {
  const swept: string[] = [];
  let keeper: TeardownResult['keeper'] = 'gone';
  if (alive(state.keeper)) {
    say(`asking the lab's keeper (pid ${state.keeper.pid}) to stop VS Code and the hosts`);
    signal(state.keeper.pid, 'SIGUSR2');
    keeper = 'stopped';
    if (!(await waitFor(() => !alive(state.keeper), 90_000))) {
      say('the keeper did not stop within 90 s: terminating it');
      keeper = 'killed';
      signal(state.keeper.pid, 'SIGTERM');
      if (!(await waitFor(() => !alive(state.keeper), 20_000))) {
        signal(state.keeper.pid, 'SIGKILL');
        await waitFor(() => !alive(state.keeper), 5_000);
      }
    }
  }

  // VS Code's process group (server, extension hosts, pty host).
  if (state.vscode && groupAlive(state.vscode.pid) && alive(state.vscode)) {
    swept.push(`VS Code (process group ${state.vscode.pid})`);
    signal(-state.vscode.pid, 'SIGKILL');
    await waitFor(() => !groupAlive(state.vscode?.pid ?? 0), 5_000);
  } else if (state.vscode && groupAlive(state.vscode.pid)) {
    // The leader is gone but its group may still hold extension hosts.
    const members = processesInGroup(state.vscode.pid);
    if (members.length > 0) {
      swept.push(`VS Code's leftover processes ${members.join(', ')}`);
      signal(-state.vscode.pid, 'SIGKILL');
      await waitFor(() => processesInGroup(state.vscode?.pid ?? 0).length === 0, 5_000);
    }
  }

  // The hosts: recorded ones, and any nspawn whose root lies in one of this keeper's host dirs
  // (unless its pid now belongs to another process, whose hosts would have the same prefix).
  const prefix = hostDirPrefix(state.keeper.pid);
  const pidReused = !alive(state.keeper) && startTimeOf(state.keeper.pid) !== undefined;
  const nspawns = new Set<number>(pidReused ? [] : processesWithArgPrefix(prefix));
  for (const h of state.hosts) {
    if (alive(h.nspawn)) nspawns.add(h.nspawn.pid);
    if (alive(h.leader)) {
      swept.push(`host ${h.name} (its systemd, pid ${h.leader.pid})`);
      signal(h.leader.pid, 'SIGKILL');
    }
  }
  for (const pid of nspawns) {
    for (const c of childrenOf(pid)) signal(c, 'SIGKILL');
    signal(pid, 'SIGKILL');
    swept.push(`systemd-nspawn pid ${pid}`);
  }
  const cgroups = state.hosts.flatMap((h) => h.cgroups);
  for (const d of cgroups) {
    try {
      if (existsSync(join(d, 'cgroup.kill'))) writeFileSync(join(d, 'cgroup.kill'), '1');
    } catch {
      // not there
    }
    for (const pid of cgroupPids(d)) signal(pid, 'SIGKILL');
  }
  await waitFor(
    () =>
      [...nspawns].every((p) => startTimeOf(p) === undefined) &&
      cgroups.every((d) => cgroupPids(d).length === 0),
    10_000,
  );
  // Their root file systems (overlay mounts or copies) and dirs.
  const dirs = new Set(state.hosts.map((h) => h.dir));
  try {
    for (const e of readdirSync(tmpdir()))
      if (!pidReused && join(tmpdir(), e).startsWith(prefix)) dirs.add(join(tmpdir(), e));
  } catch {
    // no tmp
  }
  for (const d of dirs) {
    if (!d.startsWith(prefix)) continue; // never anything but this keeper's host dirs
    for (const mp of mountsUnder(d)) {
      spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
      swept.push(`mount ${mp}`);
    }
    if (existsSync(d)) {
      rmSync(d, { recursive: true, force: true });
      swept.push(`dir ${d}`);
    }
  }
  for (const d of cgroups) if (existsSync(d)) removeCgroup(d);
  removeState(state.stateDir);

  const leftovers: string[] = [];
  if (alive(state.keeper)) leftovers.push(`keeper pid ${state.keeper.pid}`);
  if (state.vscode && processesInGroup(state.vscode.pid).length > 0)
    leftovers.push(`VS Code process group ${state.vscode.pid}`);
  for (const h of state.hosts) {
    if (alive(h.nspawn) || alive(h.leader)) leftovers.push(`host ${h.name}`);
    if (existsSync(h.dir)) leftovers.push(`dir ${h.dir}`);
  }
  if (await listening('127.0.0.1', state.port)) leftovers.push(`127.0.0.1:${state.port} listens`);
  for (const a of state.addresses) {
    for (const p of [22, 2379, 2380])
      if (await listening(a, p)) leftovers.push(`${a}:${p} listens`);
  }
  return { keeper, swept, leftovers };
}

/** Live (non-zombie) processes in the process group `pgid`. */
export function processesInGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (rest[0] !== 'Z' && Number(rest[2]) === pgid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}
