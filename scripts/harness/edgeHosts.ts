/**
 * Edge-host harness: boots REAL Debian bookworm "edge hosts" (systemd as PID 1, sshd, sudo) on
 * this machine with systemd-nspawn, for system tests and the `npm run lab` script.
 *
 * - `ensureRootfs()` builds one minbase root file system with debootstrap (once, cached under
 *   ~/.cache/k3s-etcd/rootfs-bookworm, built in a temp dir and renamed into place under a flock).
 * - `startEdgeHosts()` gives every host its own root (an overlayfs over the cached root, or a
 *   `cp -a` copy where overlayfs cannot be mounted), fresh SSH host keys, an sshd that listens on
 *   the host's own loopback address 127.0.1.N only, root's authorized_keys and two non-root users
 *   (sudo with password, sudo without), boots them in parallel and resolves when systemd says
 *   running/degraded and sshd answers with its banner on address:22.
 * - network 'shared' (default): hosts share this machine's network namespace (no private
 *   network): every loopback address 127.0.0.0/8 is local on Linux, so the etcd of host 127.0.1.N
 *   binds 127.0.1.N:2379/2380 itself. Addresses outside 127.0.0.0/8 are refused.
 * - network 'bridge' (opt-in): a Linux bridge `k3seb<4 hex>` in this machine's namespace with
 *   10.213.X.1/24 (X picked per run, a /24 nothing here uses), and every host in its own network
 *   namespace (`systemd-nspawn --network-bridge`) with interface host0 carrying the one address
 *   the harness gives it (10.213.X.N/24; lo up; no default route, no NAT, no forwarding, IPv6 off
 *   on our links). sshd listens on 0.0.0.0, so `changeAddress()` can really move a host: its old
 *   address then answers nothing. The bridge (and any veth left on it) is deleted with the last
 *   host, by the exit hooks, or by a later run once its owner process is gone.
 * - Nothing is left behind: `stop()` powers the host off cleanly (deadline, then SIGKILL of its
 *   cgroup), unmounts its root and removes its dir; a process-level exit/SIGINT/SIGTERM hook
 *   (run before ./processes' own hook) kills every container still running and lazily unmounts
 *   its overlay, and ./processes removes the temp dirs. Each nspawn runs in its own cgroup
 *   (k3s-etcd-edge/<pid>-<machine>, see `hierarchies()`), which is what gets killed; hosts that a
 *   SIGKILLed test process could not clean up are swept by the next `startEdgeHosts()`.
 * - Runs as root (mount, nspawn, cgroups). The Debian mirror is the one apt uses here
 *   (override: K3S_ETCD_DEBIAN_MIRROR); K3S_ETCD_EDGE_ROOT=copy forces copies instead of overlays.
 *   Neither mode touches net.ipv4.ip_forward or any firewall rule.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
} from './processes';

// ---- public API -------------------------------------------------------------------------------
export interface EdgeHostSpec {
  name: string;
  /**
   * network 'shared': the host's own loopback address (127.0.1.N), required: its sshd listens
   * there, and later its etcd. network 'bridge': an address inside the bridge's /24 (only
   * knowable beforehand with `createBridgeNetwork()` + `EdgeHostsOptions.bridge`), or omitted:
   * host i (0-based) then gets `bridge.address(11 + i)`.
   */
  address?: string;
}

/** A private IPv4 network for edge hosts: a Linux bridge in this machine's network namespace. */
export interface BridgeNetwork {
  /** The bridge's interface name here: k3seb<4 hex>. */
  readonly name: string;
  /** The /24 of this network, e.g. '10.213.57.0/24'. */
  readonly subnet: string;
  /** The bridge's own address (this machine's side), 10.213.X.1; no host may take it. */
  readonly gateway: string;
  /** 10.213.X.n, for n in 2..254. */
  address(n: number): string;
  /** Whether `address` may be given to a host on this network (inside the /24, not .0/.1/.255). */
  contains(address: string): boolean;
  /** Deletes the bridge and any link still enslaved to it. Idempotent. Stop its hosts first. */
  remove(): Promise<void>;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Default 60 s; on expiry the command's process group is SIGKILLed and code is 124. */
  timeoutMs?: number;
  /** Written to the command's stdin (otherwise stdin is empty). */
  input?: string;
}

export interface EdgeHost {
  name: string;
  /** The host's current address (`changeAddress()` updates it). */
  readonly address: string;
  /** How the host is networked (see `EdgeHostsOptions.network`). */
  readonly network: 'shared' | 'bridge';
  /** network 'bridge': the bridge the host is on; undefined for 'shared'. */
  readonly bridge: BridgeNetwork | undefined;
  /** network 'bridge': the host side of the host's veth pair, in this machine's namespace (vb-...). */
  readonly veth: string | undefined;
  /** nspawn machine name, unique per test run: k3se-<rand>-<name>. */
  machine: string;
  /** The host's root directory on this machine (the overlay's merged dir, or the copy). */
  root: string;
  /** pid (in this machine's pid namespace) of the container's systemd, for nsenter. */
  leaderPid: number;
  /** pid of the systemd-nspawn process (also its process-group id). */
  nspawnPid: number;
  /** How `root` was made. */
  rootMode: 'overlay' | 'copy';
  /** systemd's state when the host came up: 'running' or 'degraded'. */
  systemState: string;
  /** Units that had failed when the host came up (empty when `systemState` is 'running'). */
  failedUnits: string[];
  /**
   * Milliseconds: rootMs making the root (overlay mount or copy); bootMs from spawning nspawn to
   * sshd's banner (including setupMs, creating the users inside the booted host).
   */
  timings: { rootMs: number; bootMs: number; setupMs: number };
  /** systemd-nspawn's own output, including the container's console (--console=passive). */
  logFile: string;
  /** The temp dir holding root/upper/work/log; removed by `stop()`. */
  dir: string;
  /**
   * How the last `stop()` ended the host: 'poweroff' (systemd shut down within the deadline and
   * nspawn exited by itself) or 'kill' (SIGKILL of its cgroup); undefined while it runs.
   */
  readonly stoppedBy: 'poweroff' | 'kill' | undefined;
  /**
   * Runs a shell command inside the host as root (nsenter -t leaderPid -a sh -c ...), resolves
   * with code/stdout/stderr; never throws on a non-zero exit.
   */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /**
   * network 'bridge' only: moves the host to `newAddress` (same /24): removes the old address from
   * host0 and adds the new one inside the host, forgets this machine's ARP entry for the old one,
   * rewrites the host's /etc/hosts line, updates `address`, and resolves once sshd answers on the
   * new address. Services stay as they are (an etcd bound to the old address keeps that socket,
   * which nobody can reach any more). Rejects in shared mode.
   */
  changeAddress(newAddress: string): Promise<void>;
  /** Clean shutdown (systemctl poweroff, deadline, then SIGKILL), unmount, remove dir. Idempotent. */
  stop(): Promise<void>;
}

export interface EdgeHostsOptions {
  hosts: EdgeHostSpec[];
  /** OpenSSH public key lines put in /root/.ssh/authorized_keys and in the non-root users' ones. */
  authorizedKeys: string[];
  /**
   * A non-root user created on each host: name, password (set with chpasswd) and sudo that
   * REQUIRES the password (no NOPASSWD; timestamp_timeout=0, so every sudo asks again).
   * Default { name: 'edge', password: 'edge-sudo-pw' }.
   */
  sudoUser?: { name: string; password: string };
  /**
   * A second non-root user with NOPASSWD sudo (key login only; its password is locked unless
   * given). Default { name: 'edgenp' }; `false` leaves it out.
   */
  nopasswdUser?: { name: string; password?: string } | false;
  /**
   * 'auto' (default): overlayfs, falling back to a copy if the mount fails; 'copy' forces
   * `cp -a --reflink=auto`. The environment variable K3S_ETCD_EDGE_ROOT=copy does the same.
   */
  rootMode?: 'auto' | 'overlay' | 'copy';
  /** Deadline for every host to be up, default 60 000 ms. */
  bootTimeoutMs?: number;
  /**
   * 'shared' (default): hosts share this machine's network, each on its own 127.0.1.N.
   * 'bridge': every host in its own network namespace on a private bridge (see the file header).
   */
  network?: 'shared' | 'bridge';
  /**
   * network 'bridge': put the hosts on this network (from `createBridgeNetwork()`; the caller
   * removes it after stopping the hosts). Default: a new one, deleted when the last of these
   * hosts stops.
   */
  bridge?: BridgeNetwork;
}

export const DEFAULT_SUDO_USER: Readonly<{ name: string; password: string }> = {
  name: 'edge',
  password: 'edge-sudo-pw',
};
export const DEFAULT_NOPASSWD_USER: Readonly<{ name: string; password?: string }> = {
  name: 'edgenp',
};

// ---- small helpers ----------------------------------------------------------------------------
const NSENTER = '/usr/bin/nsenter';
const CONTAINER_ENV: NodeJS.ProcessEnv = {
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
function run(
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
async function must(
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

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function fileTail(file: string, lines = 30): string {
  try {
    return tail(readFileSync(file, 'utf8'), lines);
  } catch {
    return '(no log)';
  }
}

/** Mount points at or below `path` in this process's mount namespace, deepest first. */
function mountsUnder(path: string): string[] {
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
function unmountAllSync(path: string): void {
  for (const mp of mountsUnder(path)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
}

// ---- process-exit fallback --------------------------------------------------------------------
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
function onExitSync(fn: () => void): () => void {
  if (!exitHooksInstalled) {
    exitHooksInstalled = true;
    // prepend: these run before ./processes' hook, which exits the process on signals.
    process.prependListener('exit', runExitCleanups);
    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      process.prependListener(sig, () => {
        runExitCleanups();
        // Alone (./processes' hook not installed yet), a listener would swallow the signal.
        if (process.listenerCount(sig) <= 1) process.exit(code);
      });
    }
  }
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

// ---- the cached root file system --------------------------------------------------------------
const SUITE = 'bookworm';
const INCLUDE = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'openssh-server',
  'iproute2',
  'sudo',
  'curl',
  'ca-certificates',
  'tar',
  'gzip',
];
/** Written into the cached root; a cache made with other packages is rebuilt. */
const STAMP_FILE = '.k3s-etcd-rootfs';
const STAMP = `debootstrap --variant=minbase --include=${INCLUDE.join(',')} ${SUITE}\n`;

export function rootfsCacheDir(): string {
  return join(homedir(), '.cache', 'k3s-etcd', `rootfs-${SUITE}`);
}

/** The Debian mirror this machine's apt uses (deb822 debian.sources or sources.list). */
export function debianMirror(): string {
  const fromEnv = process.env['K3S_ETCD_DEBIAN_MIRROR'];
  if (fromEnv) return fromEnv;
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const files = ['/etc/apt/sources.list.d/debian.sources'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.sources')) files.push(join('/etc/apt/sources.list.d', f));
    }
  } catch {
    // no directory
  }
  for (const f of files) {
    for (const stanza of read(f).split(/\n\s*\n/)) {
      const field = (k: string) =>
        new RegExp(`^${k}:[ \\t]*(.*)$`, 'im').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
      if (!field('Types').includes('deb') || !field('Suites').includes(SUITE)) continue;
      const uri = field('URIs').find((u) => /^https?:\/\//.test(u));
      if (uri) return uri;
    }
  }
  for (const f of ['/etc/apt/sources.list']) {
    for (const line of read(f).split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+)\s+(\S+)/.exec(line);
      if (m?.[1] && m[2] === SUITE) return m[1];
    }
  }
  return 'http://deb.debian.org/debian';
}

function stampMatches(dir: string): boolean {
  try {
    return readFileSync(join(dir, STAMP_FILE), 'utf8') === STAMP;
  } catch {
    return false;
  }
}

/**
 * Takes an exclusive flock on `file`, held until the returned release() (or this process's end).
 * flock(1) locks the open file description it shares with us on fd 3, and the lock stays with
 * that description after flock(1) exits.
 */
async function lockFile(file: string, waitSeconds: number): Promise<() => void> {
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

let rootfsPromise: Promise<string> | undefined;

/**
 * Builds (once) and caches the Debian bookworm minbase root file system; returns its path.
 * The cached root holds no SSH host keys and an empty machine-id: every host gets its own.
 */
export function ensureRootfs(): Promise<string> {
  rootfsPromise ??= buildRootfs().catch((err: unknown) => {
    rootfsPromise = undefined;
    throw err;
  });
  return rootfsPromise;
}

async function buildRootfs(): Promise<string> {
  const target = rootfsCacheDir();
  if (stampMatches(target)) return target;
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const release = await lockFile(`${target}.lock`, 1800);
  try {
    if (stampMatches(target)) return target; // another run built it while we waited
    // Leftovers of builds that died (we hold the lock: nobody is building them now).
    for (const f of readdirSync(parent)) {
      const p = join(parent, f);
      if (f.startsWith(`rootfs-${SUITE}.tmp-`) || f.startsWith(`rootfs-${SUITE}.old-`)) {
        unmountAllSync(p);
        rmSync(p, { recursive: true, force: true });
      }
    }
    const build = `${target}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
    let child: ChildProcess | undefined;
    const removeBuild = onExitSync(() => {
      if (child?.pid !== undefined && child.exitCode === null) killGroup(child.pid, 'SIGKILL');
      unmountAllSync(build);
      rmSync(build, { recursive: true, force: true });
    });
    const mirror = debianMirror();
    const log = `${build}.log`;
    const started = Date.now();
    console.error(`[edgeHosts] building ${SUITE} root file system from ${mirror} (once) ...`);
    try {
      const args = ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, build, mirror];
      const fd = openSync(log, 'w');
      child = spawn('debootstrap', args, { detached: true, stdio: ['ignore', fd, fd] });
      closeSync(fd);
      const c = child;
      if (c.pid !== undefined)
        trackGroup(c.pid, () => c.exitCode === null && c.signalCode === null);
      const code = await new Promise<number>((resolve) => {
        c.once('error', () => resolve(127));
        c.once('exit', (x) => resolve(x ?? 128));
      });
      if (c.pid !== undefined) untrackGroup(c.pid);
      if (code !== 0) {
        throw new Error(
          `debootstrap failed (${code}); last lines of ${log}:\n${fileTail(log, 40)}`,
        );
      }
      // Per-host identity is made per host: no shared SSH host keys, no shared machine-id.
      for (const f of readdirSync(join(build, 'etc/ssh'))) {
        if (f.startsWith('ssh_host_')) rmSync(join(build, 'etc/ssh', f));
      }
      writeFileSync(join(build, 'etc/machine-id'), '');
      rmSync(join(build, 'var/lib/dbus/machine-id'), { force: true });
      // The downloaded .debs are not needed at run time.
      for (const f of readdirSync(join(build, 'var/cache/apt/archives'))) {
        if (f.endsWith('.deb')) rmSync(join(build, 'var/cache/apt/archives', f));
      }
      unmountAllSync(build); // debootstrap unmounts proc/sys itself; make sure
      writeFileSync(join(build, STAMP_FILE), STAMP);
      if (existsSync(target)) {
        // A cache made with other packages: swap it away (running overlays keep their lower).
        await rename(target, `${target}.old-${randomBytes(3).toString('hex')}`);
      }
      await rename(build, target);
      rmSync(log, { force: true });
      console.error(`[edgeHosts] root file system ready in ${Date.now() - started} ms: ${target}`);
      return target;
    } finally {
      removeBuild();
      if (existsSync(build)) {
        unmountAllSync(build);
        await rm(build, { recursive: true, force: true });
      }
    }
  } finally {
    release();
  }
}

// ---- /proc and cgroups ------------------------------------------------------------------------
interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  startTime: string;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = s.indexOf('(');
    const close = s.lastIndexOf(')');
    const rest = s.slice(close + 2).split(' '); // fields 3.. of proc(5)
    return {
      comm: s.slice(open + 1, close),
      state: rest[0] ?? '',
      ppid: Number(rest[1]),
      startTime: rest[19] ?? '',
    };
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still the (non-zombie) process that started at `startTime`. */
function sameProcess(pid: number, startTime: string): boolean {
  const st = procStat(pid);
  return st !== undefined && st.startTime === startTime && st.state !== 'Z';
}

/** The container's systemd: the child of nspawn that has exec'd systemd. */
function findLeader(nspawnPid: number): { pid: number; startTime: string } | undefined {
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && st.ppid === nspawnPid && st.comm === 'systemd' && st.state !== 'Z') {
      return { pid: Number(e), startTime: st.startTime };
    }
  }
  return undefined;
}

/**
 * The cgroup hierarchies nspawn uses here (the cgroup2 one, and the named v1 `name=systemd` one
 * on hybrid machines), each with this process's own cgroup in it. Every host's nspawn is moved
 * into its own child cgroup before it starts: with --keep-unit, nspawn makes `payload` and
 * `supervisor` beside itself, and two containers started from the same cgroup would share them
 * (one container's systemd would then stop the other's services).
 */
interface Hierarchy {
  mount: string;
  own: string;
  v2: boolean;
}

function hierarchies(): Hierarchy[] {
  const out: Hierarchy[] = [];
  let mountinfo = '';
  let own = '';
  try {
    mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    own = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return out;
  }
  const ownV2 = /^0::(.*)$/m.exec(own)?.[1];
  const ownNamed = /^\d+:name=systemd:(.*)$/m.exec(own)?.[1];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    const mp = pre?.split(' ')[4];
    const [fstype, , opts] = post?.split(' ') ?? [];
    if (!mp) continue;
    if (fstype === 'cgroup2' && ownV2 !== undefined && !out.some((h) => h.v2)) {
      out.push({ mount: mp, own: ownV2, v2: true });
    } else if (
      fstype === 'cgroup' &&
      ownNamed !== undefined &&
      (opts ?? '').split(',').includes('name=systemd') &&
      !out.some((h) => !h.v2)
    ) {
      out.push({ mount: mp, own: ownNamed, v2: false });
    }
  }
  return out;
}

const CGROUP_PARENT = 'k3s-etcd-edge';

function cgroupParents(): string[] {
  return hierarchies().map((h) => join(h.mount, h.own, CGROUP_PARENT));
}

/** All pids in the cgroup `dir` and below. */
function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        if (p) pids.push(Number(p));
      }
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
      }
    } catch {
      // gone
    }
  };
  walk(dir);
  return pids;
}

/** SIGKILLs every process in the cgroups (cgroup.kill where the kernel has it, and each pid). */
function killCgroupsSync(dirs: string[]): void {
  for (const d of dirs) {
    try {
      if (existsSync(join(d, 'cgroup.kill'))) writeFileSync(join(d, 'cgroup.kill'), '1');
    } catch {
      // not there
    }
    for (const pid of cgroupPids(d)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Removes the (empty) cgroups, deepest first. */
function removeCgroupsSync(dirs: string[]): void {
  const rmTree = (d: string) => {
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) rmTree(join(d, e.name));
      }
      rmdirSync(d);
    } catch {
      // busy or gone
    }
  };
  for (const d of dirs) rmTree(d);
}

/** The shared parent cgroups go with the last host: a plain rmdir fails while one is left. */
function removeParentCgroupsSync(dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(dirname(d));
    } catch {
      // other hosts still in there
    }
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills and removes what crashed earlier runs left behind: cgroups `k3s-etcd-edge/<pid>-*` and
 * overlay mounts `<tmp>/k3se-<pid>-*` whose owning test process <pid> is gone.
 */
function sweepOrphans(): void {
  const orphan = (entry: string) => {
    const owner = Number(/^(\d+)-/.exec(entry)?.[1] ?? NaN);
    return Number.isInteger(owner) && owner !== process.pid && !pidAlive(owner);
  };
  for (const parent of cgroupParents()) {
    let entries: string[] = [];
    try {
      entries = readdirSync(parent);
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!orphan(e)) continue;
      const dirs = cgroupParents().map((p) => join(p, e));
      killCgroupsSync(dirs);
      for (let i = 0; i < 50 && dirs.some((d) => cgroupPids(d).length > 0); i++) sleepSync(100);
      removeCgroupsSync(dirs);
    }
  }
  const tmp = tmpdir();
  for (const mp of mountsUnder(tmp)) {
    const m = new RegExp(`^${tmp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/k3se-(\\d+-[^/]*)`).exec(
      mp,
    );
    if (m?.[1] && orphan(m[1])) {
      spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
      rmSync(join(tmp, `k3se-${m[1]}`), { recursive: true, force: true });
    }
  }
}

// ---- checks -----------------------------------------------------------------------------------
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const USER_RE = /^[a-z_][a-z0-9_-]{0,30}$/;

function isLoopback(address: string): boolean {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/** Whether `port` can be bound on `address` right now (nothing on it, nor on 0.0.0.0:port). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: address, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Resolves with the first line sshd sends on address:22, or rejects. */
function sshBanner(address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: address, port: 22 });
    let data = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(data.split('\n')[0]?.trim() ?? '');
    };
    const timer = setTimeout(() => done(new Error(`no banner within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (data.includes('\n')) done();
    });
    sock.once('error', (err) => done(err));
    sock.once('end', () => done(new Error(`closed before a banner (got ${JSON.stringify(data)})`)));
  });
}

/**
 * The known_hosts line for the host's ed25519 host key: `<address> ssh-ed25519 AAAA...`, for the
 * host's current address (after `changeAddress()`, the new one) or for `address` when given.
 */
export async function hostKeyLine(
  host: Pick<EdgeHost, 'address' | 'root'>,
  address: string = host.address,
): Promise<string> {
  const pub = await readFile(join(host.root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
  const [type, key] = pub.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !key)
    throw new Error(`unexpected host key in ${host.root}: ${pub}`);
  return `${address} ${type} ${key}`;
}

// ---- the private bridge network ('bridge' mode) ------------------------------------------------
const IP = 'ip';
const SYS_NET = '/sys/class/net';
/** Bridges are k3seb<4 hex>; their owner (pid:starttime) is written in the link's alias. */
const BRIDGE_RE = /^k3seb[0-9a-f]{4}$/;
const BRIDGE_BASE = '10.213';
const ROUTE_TYPES = new Set([
  'unicast',
  'local',
  'broadcast',
  'multicast',
  'throw',
  'unreachable',
  'prohibit',
  'blackhole',
  'nat',
  'anycast',
]);

/** The IPv4 address as a number, or undefined if it is not a dotted quad. */
function ipv4(address: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}

/** Whether the prefixes a/aLen and b/bLen share an address. */
function prefixesOverlap(a: number, aLen: number, b: number, bLen: number): boolean {
  const block = 2 ** (32 - Math.min(aLen, bLen));
  return Math.floor(a / block) === Math.floor(b / block);
}

interface Prefix {
  net: number;
  len: number;
  text: string;
}

/** IPv4 prefixes this machine has addresses in or routes to, in every table (default aside). */
async function usedPrefixes(): Promise<Prefix[]> {
  const out: Prefix[] = [];
  const add = (text: string) => {
    const [a = '', l] = text.split('/');
    const net = ipv4(a);
    const len = l === undefined ? 32 : Number(l);
    if (net !== undefined && Number.isInteger(len) && len >= 0 && len <= 32)
      out.push({ net, len, text });
  };
  const addrs = await must(IP, ['-o', '-4', 'addr', 'show']);
  for (const m of addrs.stdout.matchAll(/\b(?:inet|peer) (\d+\.\d+\.\d+\.\d+(?:\/\d+)?)/g)) {
    if (m[1]) add(m[1]);
  }
  const routes = await must(IP, ['-4', 'route', 'show', 'table', 'all']);
  for (const line of routes.stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    const dst = ROUTE_TYPES.has(words[0] ?? '') ? words[1] : words[0];
    if (dst && dst !== 'default') add(dst);
  }
  return out;
}

function linkExists(name: string): boolean {
  return existsSync(join(SYS_NET, name));
}

/** The links enslaved to bridge `name` (its ports). */
function bridgePorts(name: string): string[] {
  try {
    return readdirSync(join(SYS_NET, name, 'brif'));
  } catch {
    return [];
  }
}

/** The name of the link with this ifindex in this machine's network namespace. */
function linkByIndex(index: number): string | undefined {
  try {
    for (const name of readdirSync(SYS_NET)) {
      try {
        if (Number(readFileSync(join(SYS_NET, name, 'ifindex'), 'utf8')) === index) return name;
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no sysfs
  }
  return undefined;
}

/** No IPv6 (not even a link-local address) on a link of ours here. Best effort. */
function disableIpv6Sync(link: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${link}/disable_ipv6`, '1');
  } catch {
    // no IPv6 on this kernel, or the link is gone
  }
}

function deleteLinkSync(name: string): void {
  if (linkExists(name)) spawnSync(IP, ['link', 'del', 'dev', name], { stdio: 'ignore' });
}

/** Deletes bridge `name` and every link still enslaved to it (synchronous: for exit hooks). */
function deleteBridgeSync(name: string): void {
  for (const port of bridgePorts(name)) deleteLinkSync(port);
  deleteLinkSync(name);
}

const ownerTag = (): string =>
  `k3s-etcd edge hosts owner=${process.pid}:${procStat(process.pid)?.startTime ?? '0'}`;
/** Bridges this process made and has not removed. */
const liveBridges = new Set<string>();

/** Serializes choosing/creating and sweeping bridges between the test processes of this machine. */
async function withNetLock<T>(fn: () => Promise<T>): Promise<T> {
  const file = join(dirname(rootfsCacheDir()), 'bridges.lock');
  await mkdir(dirname(file), { recursive: true });
  const release = await lockFile(file, 120);
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * Deletes bridges k3seb* whose owner process is gone, with the veths left on them. Call under
 * the network lock: a bridge is created and tagged with its owner under that lock, so an untagged
 * one seen here was left by a creator that died in between.
 */
function sweepStaleBridgesLocked(): void {
  let names: string[] = [];
  try {
    names = readdirSync(SYS_NET);
  } catch {
    return;
  }
  for (const name of names) {
    if (!BRIDGE_RE.test(name) || liveBridges.has(name)) continue;
    let tag = '';
    try {
      tag = readFileSync(join(SYS_NET, name, 'ifalias'), 'utf8').trim();
    } catch {
      continue; // gone meanwhile
    }
    const m = /\bowner=(\d+):(\d+)$/.exec(tag);
    if (m?.[1] && m[2] && sameProcess(Number(m[1]), m[2])) continue;
    deleteBridgeSync(name);
  }
}

class Bridge implements BridgeNetwork {
  readonly subnet: string;
  readonly gateway: string;
  /** Machines started on this bridge and not stopped yet. */
  readonly hosts = new Set<string>();
  private removing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly third: number,
    /** Made by startEdgeHosts: removed when its last host stops. */
    readonly owned: boolean,
    private readonly removeExitHook: () => void,
  ) {
    this.subnet = `${BRIDGE_BASE}.${third}.0/24`;
    this.gateway = `${BRIDGE_BASE}.${third}.1`;
  }

  address(n: number): string {
    if (!Number.isInteger(n) || n < 2 || n > 254) throw new Error(`host number ${n} not in 2..254`);
    return `${BRIDGE_BASE}.${this.third}.${n}`;
  }

  contains(address: string): boolean {
    const a = ipv4(address);
    const base = ipv4(`${BRIDGE_BASE}.${this.third}.0`) ?? NaN;
    return a !== undefined && a - base >= 2 && a - base <= 254;
  }

  remove(): Promise<void> {
    return (this.removing ??= (async () => {
      for (const port of bridgePorts(this.name)) await run(IP, ['link', 'del', 'dev', port]);
      if (linkExists(this.name)) {
        const r = await run(IP, ['link', 'del', 'dev', this.name]);
        if (r.code !== 0 && linkExists(this.name)) {
          this.removing = undefined; // let a later call (or the exit hook) try again
          throw new Error(`could not delete bridge ${this.name}: ${r.stderr.trim()}`);
        }
      }
      liveBridges.delete(this.name);
      this.removeExitHook();
    })());
  }

  /** A host on this bridge stopped; the last one takes an owned bridge with it. */
  async release(machine: string): Promise<void> {
    this.hosts.delete(machine);
    if (this.owned && this.hosts.size === 0) await this.remove();
  }
}

async function makeBridge(owned: boolean): Promise<Bridge> {
  return withNetLock(async () => {
    sweepStaleBridgesLocked();
    const used = await usedPrefixes();
    const first = randomBytes(1)[0] ?? 0;
    let third: number | undefined;
    for (let i = 0; i < 256 && third === undefined; i++) {
      const x = (first + i) % 256;
      const net = ipv4(`${BRIDGE_BASE}.${x}.0`) ?? NaN;
      if (!used.some((p) => prefixesOverlap(net, 24, p.net, p.len))) third = x;
    }
    if (third === undefined) {
      throw new Error(
        `no free /24 in ${BRIDGE_BASE}.0.0/16 on this machine (in use: ${used.map((p) => p.text).join(', ')})`,
      );
    }
    let name = '';
    for (let i = 0; i < 50 && (name === '' || linkExists(name)); i++) {
      name = `k3seb${randomBytes(2).toString('hex')}`;
    }
    if (linkExists(name)) throw new Error('no free bridge name k3seb<4 hex>');
    const bridgeName = name;
    liveBridges.add(bridgeName);
    const removeExitHook = onExitSync(() => deleteBridgeSync(bridgeName));
    try {
      await must(IP, ['link', 'add', 'name', bridgeName, 'type', 'bridge']);
      await must(IP, ['link', 'set', 'dev', bridgeName, 'alias', ownerTag()]);
      disableIpv6Sync(bridgeName);
      await must(IP, ['addr', 'add', `${BRIDGE_BASE}.${third}.1/24`, 'dev', bridgeName]);
      await must(IP, ['link', 'set', 'dev', bridgeName, 'up']);
    } catch (err) {
      deleteBridgeSync(bridgeName);
      liveBridges.delete(bridgeName);
      removeExitHook();
      throw err;
    }
    return new Bridge(bridgeName, third, owned, removeExitHook);
  });
}

/**
 * Creates a private bridge network now (for tests that want to choose host addresses before the
 * hosts boot: pass it as `EdgeHostsOptions.bridge`). The caller removes it (`remove()`) after
 * stopping its hosts; the exit hooks and later runs' sweeps remove it otherwise.
 */
export async function createBridgeNetwork(): Promise<BridgeNetwork> {
  return makeBridge(false);
}

/**
 * Gives the host (in its own network namespace, as the container's systemd `pid` sees it) lo and
 * host0 with `address`/24; returns the name of the host side of its veth pair here.
 */
async function attachToBridge(pid: number, address: string, deadline: number): Promise<string> {
  const script = [
    'set -e',
    // nspawn moves host0 in before the container's init runs; wait briefly all the same
    'i=0; until ip link show dev host0 >/dev/null 2>&1; do',
    '  i=$((i+1)); [ $i -lt 50 ] || { echo "no host0" >&2; exit 1; }; sleep 0.1',
    'done',
    'echo 1 > /proc/sys/net/ipv6/conf/host0/disable_ipv6 2>/dev/null || true',
    'ip link set dev lo up',
    `ip addr add ${address}/24 dev host0`,
    'ip link set dev host0 up',
    'ip -o link show dev host0',
  ].join('\n');
  const r = await run(NSENTER, ['-t', String(pid), '-n', '/bin/sh', '-c', script], {
    timeoutMs: Math.max(5_000, deadline - Date.now()),
  });
  if (r.code !== 0) throw new Error(`configuring host0 failed (${r.code}): ${r.stderr.trim()}`);
  const peer = Number(/^\d+: host0@if(\d+):/m.exec(r.stdout)?.[1] ?? NaN);
  const veth = Number.isInteger(peer) ? linkByIndex(peer) : undefined;
  if (!veth) throw new Error(`cannot find the veth peer of host0 here: ${r.stdout.trim()}`);
  disableIpv6Sync(veth);
  return veth;
}

// ---- one host ---------------------------------------------------------------------------------
const usedAddresses = new Set<string>(); // held by this process's running hosts

interface HostConfig {
  spec: EdgeHostSpec;
  /** The spec's address, or the one given for it on the bridge. */
  address: string;
  /** network 'bridge': the bridge; undefined for 'shared'. */
  bridge: Bridge | undefined;
  rootfs: string;
  runId: string;
  authorizedKeys: string[];
  sudoUser: { name: string; password: string };
  nopasswdUser: { name: string; password?: string } | undefined;
  rootMode: 'auto' | 'overlay' | 'copy';
  deadline: number;
}

async function makeRoot(
  rootfs: string,
  dir: string,
  mode: 'auto' | 'overlay' | 'copy',
): Promise<{ root: string; mode: 'overlay' | 'copy'; overlayError?: string }> {
  const root = join(dir, 'root');
  await mkdir(root);
  let overlayError: string | undefined;
  if (mode !== 'copy') {
    await mkdir(join(dir, 'upper'));
    await mkdir(join(dir, 'work'));
    const opts = `lowerdir=${rootfs},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`;
    const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, root]);
    if (r.code === 0) return { root, mode: 'overlay' };
    overlayError = (r.stderr || r.stdout).trim();
    if (mode === 'overlay') throw new Error(`overlay mount failed: ${overlayError}`);
    console.error(`[edgeHosts] overlay mount failed (${overlayError}); copying the root instead`);
  }
  await rm(root, { recursive: true, force: true });
  await must('cp', ['-a', '--reflink=auto', rootfs, root], { timeoutMs: 300_000 });
  return overlayError === undefined ? { root, mode: 'copy' } : { root, mode: 'copy', overlayError };
}

/** The host's /etc/hosts: localhost, and its name on `address`. */
function hostsFile(name: string, address: string): string {
  return `127.0.0.1\tlocalhost\n${address}\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}

/** Host identity and sshd/root configuration, written from outside before the boot. */
async function configureRoot(root: string, cfg: HostConfig): Promise<void> {
  const { name } = cfg.spec;
  const { address } = cfg;
  const etc = (p: string) => join(root, 'etc', p);
  await writeFile(etc('hostname'), `${name}\n`);
  await writeFile(etc('hosts'), hostsFile(name, address));
  await writeFile(etc('machine-id'), `${randomBytes(16).toString('hex')}\n`);
  await writeFile(
    etc('ssh/sshd_config.d/lab.conf'),
    [
      ...(cfg.bridge
        ? [
            '# k3s-etcd edge-host harness: this host has its own network namespace on a private',
            '# bridge, so sshd listens on every address and keeps answering after an address change.',
            'ListenAddress 0.0.0.0',
          ]
        : [
            '# k3s-etcd edge-host harness: this host shares the machine network, so sshd keeps to its',
            '# own loopback address.',
            `ListenAddress ${address}`,
          ]),
      'PasswordAuthentication yes',
      'PermitRootLogin prohibit-password',
      '',
    ].join('\n'),
  );
  // Fresh host keys for this host (the cached root has none).
  for (const f of readdirSync(etc('ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(etc(`ssh/${f}`), { force: true });
  }
  await must('ssh-keygen', ['-A', '-f', root]);
  const sshDir = join(root, 'root/.ssh');
  await mkdir(sshDir, { recursive: true });
  await chmod(sshDir, 0o700);
  await writeFile(
    join(sshDir, 'authorized_keys'),
    cfg.authorizedKeys.map((k) => `${k.trim()}\n`).join(''),
    {
      mode: 0o600,
    },
  );
  await chmod(join(sshDir, 'authorized_keys'), 0o600);
}

/** The non-root users, made inside the running host with its own useradd/chpasswd/visudo. */
function usersScript(cfg: HostConfig): { script: string; input: string } {
  const keys = cfg.authorizedKeys.map((k) => shq(k.trim())).join(' ');
  const lines = ['set -eu'];
  const sudoers: string[] = [];
  let input = '';
  const users: { name: string; password?: string; nopasswd: boolean }[] = [
    { ...cfg.sudoUser, nopasswd: false },
  ];
  if (cfg.nopasswdUser) users.push({ ...cfg.nopasswdUser, nopasswd: true });
  for (const u of users) {
    const n = shq(u.name);
    lines.push(
      `id -u ${n} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group ${n}`,
      `install -d -m 0700 -o ${n} -g ${n} /home/${u.name}/.ssh`,
      `printf '%s\\n' ${keys} > /home/${u.name}/.ssh/authorized_keys`,
      `chown ${n}:${n} /home/${u.name}/.ssh/authorized_keys`,
      `chmod 0600 /home/${u.name}/.ssh/authorized_keys`,
    );
    if (u.password !== undefined) input += `${u.name}:${u.password}\n`;
    sudoers.push(
      u.nopasswd
        ? `${u.name} ALL=(ALL:ALL) NOPASSWD: ALL`
        : `Defaults:${u.name} timestamp_timeout=0\n${u.name} ALL=(ALL:ALL) ALL`,
    );
  }
  if (input) lines.push('chpasswd'); // reads name:password lines from stdin
  lines.push(
    `printf '%s\\n' ${sudoers.map(shq).join(' ')} > /etc/sudoers.d/k3s-etcd-lab`,
    'chmod 0440 /etc/sudoers.d/k3s-etcd-lab',
    'visudo -c -q',
  );
  return { script: lines.join('\n'), input };
}

async function startHost(cfg: HostConfig): Promise<EdgeHost> {
  const { name } = cfg.spec;
  const { bridge } = cfg;
  let address = cfg.address; // changeAddress() moves it
  let veth: string | undefined; // bridge mode: the host side of the veth pair, once known
  const machine = `k3se-${cfg.runId}-${name}`;
  const dir = await makeTempDir(`k3se-${process.pid}-${name}-`);
  const logFile = join(dir, 'nspawn.log');
  const cgroups = cgroupParents().map((p) => join(p, `${process.pid}-${machine}`));
  const root = join(dir, 'root'); // the overlay's merged dir or the copy (see makeRoot)
  let mode: 'overlay' | 'copy' = 'copy';
  let child: ChildProcess | undefined;
  let leader: { pid: number; startTime: string } | undefined;
  const nspawnAlive = () =>
    child !== undefined && child.exitCode === null && child.signalCode === null;
  const leaderAlive = () => leader !== undefined && sameProcess(leader.pid, leader.startTime);

  // Process-exit fallback: kill everything of this host, detach its overlay (./processes then
  // kills nspawn's group again and removes the dir).
  const removeExitHook = onExitSync(() => {
    killCgroupsSync(cgroups);
    if (leader && leaderAlive()) killPid(leader.pid);
    if (child?.pid !== undefined && nspawnAlive()) killGroup(child.pid, 'SIGKILL');
    for (let i = 0; i < 30 && cgroups.some((d) => cgroupPids(d).length > 0); i++) sleepSync(100);
    unmountAllSync(dir); // by the mount table, not by a flag a signal may have raced
    removeCgroupsSync(cgroups);
    removeParentCgroupsSync(cgroups);
    // Goes with the container's network namespace; the bridge's own hook deletes any port left.
    if (veth) deleteLinkSync(veth);
  });

  const exec = (command: string, opts: ExecOptions = {}): Promise<ExecResult> => {
    if (!leader || !leaderAlive()) {
      return Promise.resolve({ code: 255, stdout: '', stderr: `edge host ${name} is not running` });
    }
    return run(NSENTER, ['-t', String(leader.pid), '-a', '/bin/sh', '-c', command], {
      env: CONTAINER_ENV,
      timeoutMs: opts.timeoutMs ?? 60_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  };

  let stopping: Promise<void> | undefined;
  let stoppedBy: 'poweroff' | 'kill' | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (nspawnAlive()) {
        // A booted host gets 30 s to shut down; one that is not up (or whose systemctl failed)
        // gets SIGTERM, which nspawn turns into SIGRTMIN+3 (poweroff) for its systemd, and 5 s.
        let graceMs = 5_000;
        const off = leaderAlive()
          ? await exec('systemctl poweroff', { timeoutMs: 10_000 })
          : undefined;
        if (off?.code === 0) graceMs = 30_000;
        else if (child?.pid !== undefined) killGroup(child.pid, 'SIGTERM');
        for (const end = Date.now() + graceMs; nspawnAlive() && Date.now() < end;) await sleep(100);
      }
      const leftovers = () =>
        nspawnAlive() || leaderAlive() || cgroups.some((d) => cgroupPids(d).length > 0);
      const clean = !leftovers() && child?.signalCode == null && (child?.exitCode ?? 0) === 0;
      stoppedBy = clean ? 'poweroff' : 'kill';
      if (leftovers()) {
        killCgroupsSync(cgroups);
        if (leader && leaderAlive()) killPid(leader.pid);
        if (child?.pid !== undefined && nspawnAlive()) killGroup(child.pid, 'SIGKILL');
        for (const end = Date.now() + 10_000; leftovers() && Date.now() < end;) await sleep(100);
      }
      if (child?.pid !== undefined) untrackGroup(child.pid);
      if (mountsUnder(dir).length > 0) {
        let r = await run('umount', [root]);
        for (let i = 0; r.code !== 0 && i < 20 && mountsUnder(root).length > 0; i++) {
          await sleep(100);
          r = await run('umount', [root]);
        }
        unmountAllSync(dir);
      }
      removeCgroupsSync(cgroups);
      // The veth goes with the container's network namespace (the kernel frees that a moment
      // after its last process); delete it here so nothing is left whatever the timing.
      if (veth) {
        for (const end = Date.now() + 5_000; linkExists(veth) && Date.now() < end; await sleep(100))
          await run(IP, ['link', 'del', 'dev', veth]);
      }
      removeExitHook();
      await removeTempDir(dir);
      removeParentCgroupsSync(cgroups);
      usedAddresses.delete(address);
      await bridge?.release(machine);
    })());

  const changeAddress = async (newAddress: string): Promise<void> => {
    if (!bridge) throw new Error(`edge host ${name}: changeAddress needs network 'bridge'`);
    if (!leader || !leaderAlive()) throw new Error(`edge host ${name} is not running`);
    if (!bridge.contains(newAddress)) {
      throw new Error(`${newAddress} is not a host address in ${bridge.name}'s ${bridge.subnet}`);
    }
    if (newAddress === address) return;
    if (usedAddresses.has(newAddress))
      throw new Error(`${newAddress} is already used by a running host`);
    const old = address;
    usedAddresses.add(newAddress);
    try {
      // Old one first: deleting an interface's primary address would take secondaries with it.
      const r = await run(NSENTER, [
        '-t',
        String(leader.pid),
        '-n',
        '/bin/sh',
        '-c',
        `set -e; ip addr del ${old}/24 dev host0; ip addr add ${newAddress}/24 dev host0`,
      ]);
      if (r.code !== 0) {
        throw new Error(
          `edge host ${name}: moving ${old} -> ${newAddress} failed (${r.code}): ${r.stderr.trim()}`,
        );
      }
    } catch (err) {
      usedAddresses.delete(newAddress);
      throw err;
    }
    address = newAddress;
    usedAddresses.delete(old);
    // This machine forgets the old address's MAC: the next packet to it asks ARP, unanswered.
    await run(IP, ['neigh', 'flush', 'to', old, 'dev', bridge.name]);
    await writeFile(join(root, 'etc/hosts'), hostsFile(name, newAddress));
    let last = '';
    for (const end = Date.now() + 10_000; ; await sleep(100)) {
      try {
        if ((await sshBanner(newAddress, 2_000)).startsWith('SSH-')) return;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > end) {
        throw new Error(`edge host ${name}: sshd does not answer on ${newAddress}:22: ${last}`);
      }
    }
  };

  try {
    const t0 = Date.now();
    const made = await makeRoot(cfg.rootfs, dir, cfg.rootMode);
    mode = made.mode;
    const rootMs = Date.now() - t0;
    await configureRoot(root, cfg);

    for (const d of cgroups) mkdirSync(d, { recursive: true });
    // Move into the host's own cgroups, then become systemd-nspawn (same pid, own group).
    const enter = cgroups.map((d) => `echo $$ > ${shq(join(d, 'cgroup.procs'))}`).join(' && ');
    const nspawnArgs = [
      '-D',
      root,
      '--register=no',
      '--keep-unit',
      '-b',
      '--console=passive',
      '-M',
      machine,
      `--hostname=${name}`,
      '--link-journal=no',
      // Own network namespace, a veth pair: host0 inside, vb-... here enslaved to the bridge.
      ...(bridge ? [`--network-bridge=${bridge.name}`] : []),
    ];
    const t1 = Date.now();
    const fd = openSync(logFile, 'a');
    child = spawn(
      '/bin/sh',
      ['-c', `${enter ? `${enter} && ` : ''}exec systemd-nspawn "$@"`, 'sh', ...nspawnArgs],
      { detached: true, stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    const c = child;
    c.once('error', () => undefined); // no pid then: reported just below
    if (c.pid === undefined) throw new Error('could not spawn systemd-nspawn');
    c.unref(); // a forgotten host must not keep the test process alive; the exit hook kills it
    trackGroup(c.pid, () => c.exitCode === null && c.signalCode === null);
    const nspawnPid = c.pid;

    const failEarly = (what: string) => {
      if (!nspawnAlive()) {
        throw new Error(
          `edge host ${name}: systemd-nspawn exited (${c.exitCode ?? c.signalCode}) ${what}\n` +
            `--- ${logFile} ---\n${fileTail(logFile, 40)}`,
        );
      }
    };
    const notUp = async (what: string) => {
      const journal = leaderAlive()
        ? await exec('journalctl -b --no-pager -n 40 -o short-monotonic', { timeoutMs: 5_000 })
        : undefined;
      return new Error(
        `edge host ${name} (${address}) not up within the deadline: ${what}\n` +
          `--- journal ---\n${journal ? tail(journal.stdout || journal.stderr, 40) : '(no journal)'}\n` +
          `--- ${logFile} ---\n${fileTail(logFile, 20)}`,
      );
    };

    // 1. the container's systemd
    while (!leader) {
      failEarly('before its systemd started');
      leader = findLeader(nspawnPid);
      if (leader) break;
      if (Date.now() > cfg.deadline) throw await notUp('no systemd process under nspawn');
      await sleep(50);
    }
    const leaderPid = leader.pid;
    if (bridge) veth = await attachToBridge(leaderPid, address, cfg.deadline);

    // 2. systemd finished booting
    let state = '';
    for (;;) {
      failEarly(`while booting (last state "${state}")`);
      const r = await exec('systemctl is-system-running', { timeoutMs: 5_000 });
      state = r.stdout.trim() || r.stderr.trim();
      if (state === 'running' || state === 'degraded') break;
      if (state === 'maintenance' || state === 'stopping') throw await notUp(`systemd is ${state}`);
      if (Date.now() > cfg.deadline) throw await notUp(`systemd is "${state}"`);
      await sleep(200);
    }

    // 3. users and sudo
    const t2 = Date.now();
    const users = usersScript(cfg);
    const u = await exec(users.script, { input: users.input, timeoutMs: 30_000 });
    if (u.code !== 0)
      throw new Error(`edge host ${name}: creating users failed (${u.code}):\n${u.stderr}`);
    const setupMs = Date.now() - t2;

    // 4. sshd answers on the host's own address
    let sshErr = '';
    for (;;) {
      failEarly('while waiting for sshd');
      try {
        const banner = await sshBanner(address, 2_000);
        if (banner.startsWith('SSH-')) break;
        sshErr = `unexpected banner ${JSON.stringify(banner)}`;
      } catch (err) {
        sshErr = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > cfg.deadline) {
        const ssh = await exec('systemctl status --no-pager ssh', { timeoutMs: 5_000 });
        throw await notUp(`sshd on ${address}:22: ${sshErr}\n${ssh.stdout}`);
      }
      await sleep(100);
    }
    const bootMs = Date.now() - t1;

    const failed = await exec('systemctl --failed --no-legend --plain', { timeoutMs: 5_000 });
    const failedUnits = failed.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((x) => x !== '');
    if (failedUnits.length > 0) {
      console.error(`[edgeHosts] ${name} is ${state}; failed units: ${failedUnits.join(', ')}`);
    }
    return {
      name,
      get address() {
        return address;
      },
      network: bridge ? 'bridge' : 'shared',
      bridge,
      veth,
      machine,
      root,
      leaderPid,
      nspawnPid,
      rootMode: mode,
      systemState: state,
      failedUnits,
      timings: { rootMs, bootMs, setupMs },
      logFile,
      dir,
      get stoppedBy() {
        return stoppedBy;
      },
      exec,
      changeAddress,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- many hosts -------------------------------------------------------------------------------
/**
 * Boots all hosts in parallel; resolves when every one has systemd running (or degraded: see
 * `failedUnits`) and its sshd answering on address:22. On any failure every host is stopped
 * and the error names the host with its last journal lines.
 */
export async function startEdgeHosts(opts: EdgeHostsOptions): Promise<EdgeHost[]> {
  const sudoUser = opts.sudoUser ?? DEFAULT_SUDO_USER;
  const nopasswdUser =
    opts.nopasswdUser === false ? undefined : (opts.nopasswdUser ?? DEFAULT_NOPASSWD_USER);
  const rootMode =
    opts.rootMode ?? (process.env['K3S_ETCD_EDGE_ROOT'] === 'copy' ? 'copy' : 'auto');
  if (opts.hosts.length === 0) throw new Error('no hosts');
  if (opts.authorizedKeys.length === 0) throw new Error('authorizedKeys is empty');
  for (const k of opts.authorizedKeys) {
    if (/[\r\n]/.test(k.trim())) throw new Error(`an authorized key spans lines: ${k}`);
  }
  for (const u of [sudoUser, nopasswdUser]) {
    if (u && (!USER_RE.test(u.name) || u.name === 'root'))
      throw new Error(`bad user name ${u.name}`);
    if (u?.password !== undefined && /[\n:]/.test(u.password)) {
      throw new Error(`the password of ${u.name} may not contain ':' or a newline`);
    }
  }
  if (nopasswdUser?.name === sudoUser.name) throw new Error('the two users need different names');
  const network = opts.network ?? 'shared';
  if (network !== 'shared' && network !== 'bridge') throw new Error(`unknown network ${network}`);
  if (opts.bridge !== undefined) {
    if (network !== 'bridge') throw new Error("a bridge is only for network 'bridge'");
    if (!(opts.bridge instanceof Bridge) || !liveBridges.has(opts.bridge.name)) {
      throw new Error('opts.bridge must be a live network from createBridgeNetwork()');
    }
  }
  const given = opts.bridge instanceof Bridge ? opts.bridge : undefined;
  const seen = new Set<string>();
  for (const [i, h] of opts.hosts.entries()) {
    if (!NAME_RE.test(h.name)) throw new Error(`bad host name "${h.name}" (a-z, 0-9, -)`);
    if (network === 'shared') {
      if (h.address === undefined || !isLoopback(h.address)) {
        throw new Error(`${h.name}: address ${h.address} is not in 127.0.0.0/8 (loopback only)`);
      }
    } else if (h.address !== undefined && !given?.contains(h.address)) {
      throw new Error(
        given
          ? `${h.name}: address ${h.address} is not a host address in ${given.subnet}`
          : `${h.name}: an address on a bridge the harness makes itself is not known yet: leave ` +
              'it out (host i gets .11+i), or pass a network from createBridgeNetwork()',
      );
    }
    const address = h.address ?? `.${11 + i}`;
    if (seen.has(h.name) || seen.has(address)) throw new Error(`duplicate ${h.name}/${address}`);
    if (usedAddresses.has(address)) throw new Error(`${address} is already used by a running host`);
    seen.add(h.name);
    seen.add(address);
  }

  const rootfs = await ensureRootfs();
  sweepOrphans();
  await withNetLock(async () => sweepStaleBridgesLocked());
  if (network === 'shared') {
    // The host's sshd takes address:22, its etcd address:2379/2380: all must be free here.
    for (const h of opts.hosts) {
      for (const port of [22, 2379, 2380]) {
        if (!(await portFree(h.address ?? '', port))) {
          throw new Error(
            `${h.address}:${port} is already in use on this machine (a host left from an earlier run?)`,
          );
        }
      }
    }
  }
  // In its own network namespace a host's ports are its own: nothing to check here.
  const bridge = network === 'bridge' ? (given ?? (await makeBridge(true))) : undefined;
  const addresses = opts.hosts.map((h, i) => h.address ?? bridge?.address(11 + i) ?? '');
  for (const [i, a] of addresses.entries()) {
    if (usedAddresses.has(a) || addresses.indexOf(a) !== i) {
      if (bridge?.owned) await bridge.remove();
      throw new Error(`${a} is used twice, or already used by a running host`);
    }
  }
  for (const a of addresses) usedAddresses.add(a);

  const runId = randomBytes(3).toString('hex');
  const machines = opts.hosts.map((h) => `k3se-${runId}-${h.name}`);
  for (const m of machines) bridge?.hosts.add(m);
  const deadline = Date.now() + (opts.bootTimeoutMs ?? 60_000);
  const results = await Promise.allSettled(
    opts.hosts.map((spec, i) =>
      startHost({
        spec,
        address: addresses[i] ?? '',
        bridge,
        rootfs,
        runId,
        authorizedKeys: opts.authorizedKeys,
        sudoUser,
        nopasswdUser,
        rootMode,
        deadline,
      }),
    ),
  );
  const hosts = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (errors.length > 0) {
    await stopEdgeHosts(hosts);
    for (const a of addresses) usedAddresses.delete(a);
    if (bridge) {
      for (const m of machines) bridge.hosts.delete(m);
      if (bridge.owned) await bridge.remove();
    }
    const msg = errors.map((e) => (e instanceof Error ? e.message : String(e))).join('\n\n');
    throw new Error(`${errors.length} of ${opts.hosts.length} edge hosts failed to start:\n${msg}`);
  }
  return hosts;
}

export async function stopEdgeHosts(hosts: EdgeHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.stop()));
}
