/**
 * Root file systems of edge hosts: the Debian bookworm minbase root built once with debootstrap
 * and cached (under a flock), and each host's own root made from it (an overlay, or a copy).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { killGroup, trackGroup, untrackGroup } from '../processes';
import { fileTail, lockFile, must, onExitSync, run, unmountAllSync } from './exec';

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

export async function makeRoot(
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
