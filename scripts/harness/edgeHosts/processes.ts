/**
 * Processes of edge hosts: /proc (a process's start time, the container's systemd under nspawn),
 * the per-host cgroups that get killed and removed, and the sweep of what crashed runs left.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { mountsUnder, sleepSync } from './exec';

interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
  startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
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
export function sameProcess(pid: number, startTime: string): boolean {
  const st = procStat(pid);
  return st !== undefined && st.startTime === startTime && st.state !== 'Z';
}

/** The container's systemd: the child of nspawn that has exec'd systemd. */
export function findLeader(nspawnPid: number): { pid: number; startTime: string } | undefined {
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

export function cgroupParents(): string[] {
  return hierarchies().map((h) => join(h.mount, h.own, CGROUP_PARENT));
}

/** All pids in the cgroup `dir` and below. */
export function cgroupPids(dir: string): number[] {
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
export function killCgroupsSync(dirs: string[]): void {
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

export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Removes the (empty) cgroups, deepest first. */
export function removeCgroupsSync(dirs: string[]): void {
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
export function removeParentCgroupsSync(dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(dirname(d));
    } catch {
      // other hosts still in there
    }
  }
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
export function sweepOrphans(): void {
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
